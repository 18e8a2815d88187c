// Package bench is the logic of dbx-bench: a closed-loop load generator for
// any RESP server (a dbx node or cluster, a plain Redis, a Redis Cluster).
// It owns the workloads, the key distributions, the client workers, the
// latency histograms and the report; cmd/dbx-bench only maps flags to a
// Config and prints what Run returns.
//
// # Usage
//
//	cfg := bench.DefaultConfig()
//	cfg.Addrs, cfg.Workload, cfg.Clients = []string{"127.0.0.1:6379"}, "ycsb-a", 50
//	if err := cfg.Validate(); err != nil { ... }        // lists every problem
//	res, err := bench.Run(ctx, cfg, os.Stderr)           // progress lines go to the writer (nil: none)
//	res.WriteText(os.Stdout)                             // or res.WriteJSON
//
// Run dials every address first and fails with ErrUnreachable naming each
// address that does not accept a TCP connection. It then optionally loads
// every key (Config.Load), runs the workload unrecorded for Config.Warmup,
// and runs the measured phase until Config.Requests operations have
// completed or Config.Duration has passed, whichever comes first. When ctx
// is cancelled (Ctrl-C) Run stops, returns the partial Result with
// Interrupted set, and ErrInterrupted.
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
//
// # Targets
//
// Without Config.Cluster, worker i talks to Addrs[i mod len(Addrs)] through
// its own connection: the node receiving a request forwards it if needed (as
// a dbx node does) or answers MOVED (counted as an error). With Cluster,
// one go-redis ClusterClient seeded with Addrs routes each key to its
// owner by CLUSTER SLOTS and follows MOVED/ASK.
//
// # Caveats
//
//   - Zipfian keys follow YCSB's generator with θ = 0.99; rank r is key
//     "key:r", so the hottest keys are the lowest numbers (their buckets are
//     spread by CRC16 anyway). ζ(n, θ) is summed exactly up to 10⁶ keys and
//     by Euler–Maclaurin beyond, so setup is bounded for any --keys.
//   - mset sends one MSET of MSetKeys keys per operation. Against a Redis
//     Cluster in Cluster mode the keys span slots and get CROSSSLOT errors;
//     dbx accepts cross-bucket MSET (not atomically across nodes).
//   - txn is reserved: dbx does not implement MULTI/EXEC yet, so it fails
//     validation with ErrNotSupported.
//   - The generator shares the machine with whatever it measures when run on
//     loopback; on a 2-core box, expect the client to be the bottleneck at
//     high client counts.
package bench
