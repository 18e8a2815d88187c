package engine

import (
	"encoding/binary"
)

// Cross-shard batches.
//
// A batch whose keys fall in several shards must still be all-or-nothing,
// both to readers and across a crash. Protocol (serialized by Store.xmu, so
// at most one cross-shard batch is in flight and workers cannot deadlock):
//
//  1. Every participant's worker appends an xpart record (xid, participant
//     list, its ops with sequence numbers) in its next commit group, syncs,
//     acks, and then waits for the coordinator: it publishes nothing more
//     until the batch is resolved, so its sequence order stays intact.
//  2. If every participant acked, the home participant (lowest shard)
//     appends and syncs an xcommit record. That record is the decision.
//  3. Every participant applies its part to its memtable; non-home parts pin
//     the home WAL file holding the xcommit record until their memtable is
//     flushed (walFile refcounts), so the decision stays on disk as long as
//     any part depends on it for replay.
//  4. The coordinator publishes every participant's visible sequence under
//     Store.pubmu, which snapshots take exclusively: a snapshot sees all the
//     parts or none.
//
// Recovery applies an xpart found in a live WAL only if an xcommit record
// with its xid exists in some WAL of the home shard; otherwise the batch
// never committed and its parts are dropped. If any participant fails
// before step 2 (WAL I/O error, closing), the batch aborts: nothing is
// applied and the caller gets the error.

// appendUvarint is binary.AppendUvarint, named for symmetry with the decoders.
func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

// driveXPart runs on the participant's worker after its xpart record is
// durable and acked; it follows the coordinator's instructions.
func (sh *shard) driveXPart(r *writeReq) {
	x := r.x
	for c := range x.ctl {
		switch c {
		case xWriteCommit:
			buf := append(sh.encBuf[:0], recXCommit)
			buf = appendUvarint(buf, x.xid)
			sh.encBuf = buf
			sh.walMu.Lock()
			err := sh.wal.Append(buf)
			if err == nil {
				err = sh.wal.Sync() // the syncer is idle: the part was synced by syncNow
				sh.stats.syncs.Add(1)
			}
			sh.walMu.Unlock()
			if err != nil {
				sh.fail(err)
				r.err = sh.broken
				x.ack <- sh.broken
				sh.finishXPart(r, false)
				return
			}
			x.commitWAL = sh.walRef
			x.ack <- nil
		case xApply:
			sh.apply(r)
			if !x.home {
				sh.mem.pins = append(sh.mem.pins, x.commitWAL)
			}
			x.ack <- nil
		case xAbort:
			sh.finishXPart(r, false)
			return
		case xResume:
			sh.finishXPart(r, true)
			return
		}
	}
}

func (sh *shard) finishXPart(r *writeReq, committed bool) {
	if committed {
		r.err = nil
	} else if r.err == nil {
		r.err = errXAborted
	}
	close(r.done)
}
