// Package bench is the logic of dbx-bench: a closed-loop load generator for
// any RESP server (a dbx node or cluster, a plain Redis, a Redis Cluster).
// It owns the workloads, the key distributions, the client workers, the
// latency histograms and the report; cmd/dbx-bench only maps flags to a
// Config and prints what Run returns.
//
// # Usage
//
//	cfg := bench.DefaultConfig()
//	cfg.Addrs, cfg.Workload, cfg.Mix, cfg.Clients = []string{"127.0.0.1:6379"}, "mixed", "A", 50
//	cfg.Label = "dbx 1 node"
//	if err := cfg.Validate(); err != nil { ... }        // lists every problem
//	res, err := bench.Run(ctx, cfg, os.Stderr)           // progress lines go to the writer (nil: none)
//	res.WriteText(os.Stdout)                             // or res.WriteJSON
//
//	r1, _ := bench.ReadResult(f1)                        // saved WriteJSON output
//	bench.WriteComparison(os.Stdout, []string{"a", "b"}, []*bench.Result{r1, r2})
//
// Run dials every address first and fails with ErrUnreachable naming each
// address that does not accept a TCP connection. For the txn workload it
// then sends an empty transaction (MULTI, EXEC) to every address and fails
// with ErrNotSupported, quoting the reply, if MULTI is an unknown command
// or EXEC says transactions are not supported; with CrossNode or SameNode
// it reads CLUSTER SLOTS from Addrs[0] and fails with ErrInvalidConfig if
// that is not a cluster (plain Redis), has one node (CrossNode), or the key
// space is too small to place the keys. It then optionally loads every key
// (Config.Load), runs the workload unrecorded for Config.Warmup, and runs
// the measured phase until Config.Requests operations have completed or
// Config.Duration has passed, whichever comes first. When ctx is cancelled
// (Ctrl-C) Run stops, returns the partial Result with Interrupted set, and
// ErrInterrupted; a batch in flight then ends within Config.Timeout and is
// not counted.
//
// RunTarget runs the same phases against any Target (a Conn per worker
// that executes []Op), which is how bench/etcdbench drives etcd and
// reports in the same Result format.
//
// # Workloads
//
//   - set, get: one SET or GET of a random key per operation.
//   - mixed with Mix A, B, C or F, after YCSB's core workloads: A is 50%
//     GET and 50% SET, B 95%/5%, C GET only, F 50% GET and 50%
//     read-modify-write (GET, then SET of that key). ycsb-a, ycsb-b, ycsb-c
//     and ycsb-f are the same workloads under their older names; the
//     Result's config.mix says which mix ran either way.
//   - mset: one MSET of MSetKeys keys.
//   - txn: one transaction per operation: MULTI, TxnKeys plain SETs of
//     ValueBytes (distinct keys), EXEC, sent in one round trip. Throughput
//     counts transactions. An EXEC that answers nil (aborted) counts as an
//     error with ErrTxnAborted's message; a queued command's error or an
//     error inside EXEC's reply counts as an error with that message.
//     Without a placement flag the keys follow Distribution. CrossNode
//     draws key j from node (s+j) mod n for a random s, so a transaction
//     spans min(TxnKeys, n) owners; SameNode draws every key from one random
//     node. Both sort key:0 … key:min(Keys, 2²⁰)-1 by owner (router.Bucket
//     of the name, owners from CLUSTER SLOTS) before the run, and pick
//     within a node's keys uniformly or by a zipfian of that node's key
//     count; a node is picked uniformly, whatever its share of buckets.
//
// # Measurement
//
//   - Closed loop: each of Config.Clients workers sends a batch of
//     Config.Pipeline operations, waits for all replies, and records the
//     batch's round-trip time once per operation (as redis-benchmark -P
//     does). A read-modify-write (ycsb-f) batch is two round trips: the
//     GETs, then the SETs.
//   - Latencies go to an HDR histogram in microseconds, 1 µs to 60 s, 3
//     significant figures; values outside are clamped. Only successful
//     operations are recorded; a GET of a missing key is a success.
//   - Operations that fail count as errors; the first few distinct messages
//     are kept with their counts. Commands are not retried.
//   - Progress: one line per Config.ProgressInterval with the phase, the
//     interval's ops/s, errors and p99 ("n/a" when nothing succeeded), the
//     phase's operations so far and the interval's latest error message.
//
// # Targets
//
// Without Config.Cluster, worker i talks to Addrs[i mod len(Addrs)] through
// its own connection: the node receiving a request forwards it if needed (as
// a dbx node does) or answers MOVED (counted as an error). With Cluster,
// one go-redis ClusterClient seeded with Addrs routes each key to its
// owner by CLUSTER SLOTS and follows MOVED/ASK; a transaction goes to the
// owner of its first key (hence pipeline 1 for txn with Cluster).
//
// # Caveats
//
//   - Zipfian keys follow YCSB's generator with θ = 0.99; rank r is key
//     "key:r", so the hottest keys are the lowest numbers (their buckets are
//     spread by CRC16 anyway). ζ(n, θ) is summed exactly up to 10⁶ keys and
//     by Euler–Maclaurin beyond, so setup is bounded for any --keys.
//   - mset sends one MSET of MSetKeys keys per operation. Against a Redis
//     Cluster in Cluster mode the keys span slots and get CROSSSLOT errors;
//     dbx accepts cross-bucket MSET (atomic across nodes: 2PC).
//   - txn against a Redis Cluster with Cluster: keys of different slots get
//     CROSSSLOT (counted as errors); dbx accepts them. Without Cluster the
//     node a worker talks to receives the transaction whoever owns its keys.
//   - The error of a transaction whose replies were lost to the network is
//     the network error: whether it committed is unknown to the bench.
//   - The generator shares the machine with whatever it measures when run on
//     loopback; on a 2-core box, expect the client to be the bottleneck at
//     high client counts.
package bench
