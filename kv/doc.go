// Package kv is one node's keyspace over its engine: Engine serves Redis
// strings with expiry from a local *engine.Store (key → router.Bucket →
// engine bucket), makes each key's read-modify-write atomic with striped
// key locks held across the engine commit, and gives WATCH versions and
// transactions (Versions, Items, Exec). It also owns the keyspace's types
// and their rules: SetOptions, the transaction types, INCRBY's integer
// encoding (AddInt), SCAN's glob (Match), and the errors (ErrNotFound,
// ErrNotInteger, ErrOverflow, ErrWatchFailed). The server names the same
// types in its Backend interface; kv never imports the server.
//
// # Usage
//
//	st, _ := engine.Open(dir, ecfg)
//	e := kv.New(st, ecfg.Now,                   // the clock st was opened with
//		kv.WithGuard(guard),                    // before every op; writes: under the stripe lock
//		kv.WithRecheck(recheck),                // every read again, after reading
//		kv.WithOnApplied(record),               // each applied key, stripe lock still held
//		kv.WithReplicator(replicate))           // writes of replicated buckets commit there
//	r, err := e.Set(ctx, key, value, kv.SetOptions{NX: true})
//	unlock, err := e.LockKeys(ctx, keys...)     // hold keys still, as a write does
//	err = e.Barrier(ctx)                        // every write holding a stripe now is applied
//
// The per-key checks are given to New, not set later and not layered on
// as decorators around an Engine: the write check has to run between
// taking the stripe locks and reading, and the applied-key report between
// the engine's apply and the release of the stripes, points only the
// Engine sees (a decorator would have to hold the stripes through the
// fsync, and writers of a hot key would stop sharing group commits). The
// node composes its checks (ownership and fence, then prepared keys) into
// one KeyGuard; package node says why their order loses no acknowledged
// write during a bucket move.
//
// With WithReplicator every write batch is offered to the replicator
// first; one it takes holds its stripe locks until the replicator has
// applied it (every replica has it) or knows it never will be here, and
// EncodeOps / DecodeOps are the batch's replicated form.
//
// kv/kvtest holds the conformance suite every keyspace passes (Run) and
// Engine's in-memory twin (Mem), for tests of the code above.
//
// # What it must not do
//
// Know about other nodes: placement, ownership, forwarding, fences and
// transactions across nodes are the node's (through the options), the
// cluster view and RESP the server's. It starts no goroutines and reads
// no clock but the one given to New.
//
// # Caveats
//
//   - Plain reads take no lock and see durable, published state; reads
//     inside a write (and Items, Exec) see applied writes, durable or not.
//   - DBSize, Scan, ScanRanges, CountRanges and CountKeys (keys, expiries
//     and their time left, for INFO keyspace) iterate (O(keys)).
//   - A KeyGuard that waits must honour ctx: writes wait in it holding
//     their stripe locks, so other writers of those stripes, LockKeys and
//     Barrier wait too.
package kv
