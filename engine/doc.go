// Package engine is a dbx node's local storage: every bucket the node owns
// lives here. It knows nothing about other nodes.
//
// # Model
//
// Keys are (bucket, key) pairs; internally the key is prefixed with the
// 2-byte big-endian bucket, so a bucket is one contiguous key range (a
// migration scans it with NewIter, dropping it is DeleteBucketRange).
// Values may carry an expiry (Batch.SetWithExpiry): an expired value is
// invisible at once and purged by compaction.
//
// What can be stored is decided in one place (limits.go), counting the
// internal encoding: a key of at most KeyBytesLimit bytes (the segment
// format's 64 KiB less the bucket prefix) and a value of at most
// ValueBytesLimit (63 MiB, so that one entry always fits in a 64 MiB WAL
// record). Config.KeyBytesMax and ValueBytesMax may only lower them, and
// every write path (Batch, Put, cross-shard batches, ingestion) checks
// them, so nothing is acknowledged that cannot be flushed; a front end
// should use the two constants as its ceilings.
//
//	s, err := engine.Open(dir, engine.DefaultConfig())
//	err = s.Put(ctx, bucket, key, value)
//	v, err := s.Get(bucket, key)             // engine.ErrNotFound if absent
//	var b engine.Batch; b.Set(...); b.Delete(...)
//	err = s.Write(ctx, &b)                   // atomic, even across shards
//	sn, _ := s.Snapshot(); defer sn.Close()  // point-in-time view
//	it := sn.NewIter(lo, hi)                 // ordered scan of buckets [lo, hi]
//	info, err := s.Checkpoint(ctx, dir2)     // hard-linked on-disk copy
//
// # Structure
//
// A Store has N shards (Config.Shards, fixed at creation); bucket b belongs
// to shard b mod N. Each shard owns a WAL, an active memtable, a queue of
// frozen memtables waiting for flush, and its segment files in two levels:
// level 0 (flushed memtables and ingested files, overlapping, ordered by
// newest sequence number) and level 1 (sorted, disjoint). An Ingestion
// (ingest.go) writes sorted entries of some buckets straight into level-0
// files, bypassing the WAL and the memtables, under one reserved sequence
// number per shard: a migration's bulk copy. A read consults the memtables, at most
// L0StopWrites level-0 files and one level-1 file; bloom filters skip most
// files. One worker goroutine per shard serializes writes: it gathers a
// commit group from its bounded mailbox, appends it to the WAL, fsyncs once
// for the whole group (SyncAlways), applies it to the memtable and then
// publishes it by advancing the shard's visible sequence number. A full
// mailbox makes callers wait (honouring ctx); a full flush queue makes the
// worker wait: a hot shard slows its own callers, not the others.
//
// Sequence numbers are per shard. A Snapshot is the vector of every shard's
// visible sequence, taken under an exclusive lock that publishers hold
// shared, plus pinned read states (memtables and version). Because
// snapshots and iterators pin the files they read, compaction keeps only
// the newest version of each key.
//
// A batch whose keys fall in several shards is committed with a small
// internal protocol (xbatch.go): each participant logs its part, the home
// shard logs a commit record, and recovery applies a part only if that
// record exists; publication is atomic with respect to snapshots.
//
// # Files and their lifetime
//
// Every segment file is reference-counted by the versions that list it; a
// version is referenced by the shard (while current) and by every read
// state, snapshot, iterator and compaction using it. The last reference
// deletes the file. A WAL file is referenced by its memtable until that is
// flushed, and by other shards' memtables holding parts of cross-shard
// batches whose commit record it stores. Each shard's MANIFEST (rewritten
// atomically with a checksum) lists its segment files and live WALs;
// segments it does not list are removed on Open, and the replayed WALs once
// every shard has flushed what it replayed. Checkpoints are recorded in the store's CHECKPOINTS list
// until ReleaseCheckpoint.
//
// # Durability and recovery
//
// With SyncAlways (default) a write returns after its group's fsync. Open
// replays every live WAL, flushes what it replayed to level 0 and starts
// new WALs. After a WAL write or sync error the shard turns read-only
// (ErrReadOnly) and keeps serving reads; reopening recovers. All file I/O
// goes through vfs.FS, so tests run the engine on vfs.MemFS, crash it
// (keeping only synced data) and inject errors.
//
// Open refuses (ErrCorrupt) what it cannot explain as a crash: damage in
// the middle of a WAL (a bad record followed by an intact one), a WAL with
// a bad header or magic, a segment the manifest lists that is missing, and
// a live WAL that is missing (ErrMissingWAL). Each shard's MANIFEST lists
// its live WALs: a new WAL is recorded there (one manifest write per
// rotation) before the first write to it can be acknowledged, so the loss
// of any of them, the newest included, is detected. Config.ForceRecover
// opens without a missing WAL, reporting the loss; it overrides nothing
// else. (A manifest written by an older version names only the oldest
// live WAL, so there a missing newer WAL cannot be detected.)
//
// A damaged tail is tolerated, and reported: with SyncAlways a crash during
// a write that was never acknowledged can leave a partial last record,
// zeros, or a torn sector, and that is indistinguishable from damage to the
// last records (or a file cut inside a record). Refusing it would make
// every crash an outage, so replay stops at the last good record, the tail
// is cut off, and a RecoveryEvent records the file, the offset, the bytes
// dropped, the records still recognisable in them (a lower bound; exact
// only when the tail is whole records failing their checksums) and the
// reason. Open logs every event (Config.Logf); Store.Recovery returns them
// with totals, which Stats also carries for monitoring. A cut exactly at a
// record boundary leaves a well-formed shorter file and cannot be detected
// from the file alone: replication re-fetches what a node lost; until it
// has, the report is what an operator sees.
//
// A replayed entry that no segment could store (a key over KeyBytesLimit,
// which older versions accepted) is skipped with a report instead of
// failing every flush and the next Open; a flush meeting one (only old data
// can hold one) drops it and logs it rather than retrying forever.
//
// # Statistics
//
// Stats reports per shard the commit groups and their writes, WAL payload
// bytes, fsyncs with a log2 histogram of their durations (SyncHist,
// SyncNanos), flushes, compactions and their bytes, write stalls,
// memtables and files per level: counters are atomics bumped by the shard
// worker (one per record, one clock read per fsync), read without
// stopping writes. The node turns them into Prometheus metrics at scrape
// time.
//
// # Caveats
//
//   - Cross-shard batches are serialized per store (one in flight at a time)
//     and cost two WAL syncs; batches within one shard cost one.
//   - Level-0 compaction rewrites the level-1 files it overlaps; with
//     uniformly random keys that is all of level 1, so write amplification
//     grows with data size / memtable size. A multi-level layout is future work.
//   - A long-lived snapshot keeps its memtables and files alive (memory and
//     disk), like an open file handle.
package engine
