package engine

import (
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/engine/wal"
)

// walFile is a WAL file's reference count: its own memtable holds one
// reference until flushed, and every other shard's memtable holding a part
// of a cross-shard batch whose commit record is in this WAL holds one more.
type walFile struct {
	num   uint64
	refs  atomic.Int32
	shard *shard
}

func (w *walFile) unref() {
	if w.refs.Add(-1) == 0 {
		w.shard.s.removeFile(walName(w.shard.dir, w.num))
	}
}

// readState is what a reader needs: the memtables and the version, pinned.
type readState struct {
	mem  *memtable
	imm  []*memtable // oldest first
	v    *version
	refs atomic.Int32
}

func (rs *readState) unref() {
	if rs.refs.Add(-1) == 0 {
		rs.v.unref()
	}
}

// writeReq is one caller's request to a shard worker.
type writeReq struct {
	b      *Batch
	idx    []int     // ops of b for this shard
	del    *rangeDel // DeleteBucketRange (seq filled by the worker)
	x      *xpart    // part of a cross-shard batch
	rotate bool      // Flush: freeze the active memtable
	// fn, if set, runs on the worker between groups (ingestions); its
	// error is the request's.
	fn func() error
	// applied, if set, is closed once the request is in the memtable (in
	// sequence order, not yet durable or visible): see Store.WriteApplied.
	applied chan struct{}
	size    int
	seq     uint64 // first seq assigned
	count   uint64
	err     error
	done    chan struct{}
}

// xpart drives one shard's share of a cross-shard batch (see xbatch.go).
type xpart struct {
	xid          uint64
	participants []int
	home         bool
	ctl          chan xctl  // coordinator -> worker
	ack          chan error // worker -> coordinator
	commitWAL    *walFile   // home: WAL holding the commit record
}

type xctl int

const (
	xWriteCommit xctl = iota // home only: append + sync the commit record
	xApply                   // apply the part to the memtable
	xAbort                   // drop the part
	xResume                  // the batch is published; continue
)

// shard owns a slice of the bucket space: its WAL, memtables, flush queue
// and segment files. One worker goroutine serializes writes; one flusher
// goroutine writes frozen memtables; one compactor goroutine merges files.
type shard struct {
	s   *Store
	id  int
	dir string

	mailbox chan *writeReq

	// Worker-owned, except wal and walFile: the syncer also uses them under walMu.
	wal      *wal.Writer
	walFile  vfs.File // the file under wal
	walRef   *walFile // reference count of the current WAL
	mem      *memtable
	nextSeq  uint64 // last assigned seq
	broken   error  // set after a WAL error: the shard refuses writes
	encBuf   []byte
	dirty    bool // unsynced WAL bytes (interval/none modes)
	syncTick <-chan time.Time

	walMu   sync.Mutex            // guards wal and walFile between the worker and the syncer
	syncErr atomic.Pointer[error] // set by the syncer after a failed fsync

	visibleSeq atomic.Uint64 // every entry with seq <= this is applied and readable
	appliedSeq atomic.Uint64 // every entry with seq <= this is in the memtable (maybe not yet durable)

	// rsMu guards the rs pointer only (readers take it shared).
	rsMu sync.RWMutex
	rs   *readState

	// manifestMu serializes version edits (flush, compaction, range deletes,
	// maintenance) including their manifest write; mu guards the fields below
	// and is never held during I/O.
	manifestMu sync.Mutex
	mu         sync.Mutex
	imm        []*memtable
	cur        *version
	flushedSeq uint64
	// logs are the WAL numbers of the memtables not yet flushed, oldest
	// first: what a manifest lists as live (manifest.Logs).
	logs     []uint64
	immSpace *sync.Cond // signalled when a flush frees a slot
	flushErr error

	flushCh   chan struct{}
	compactCh chan struct{}
	stats     shardCounters
}

type shardCounters struct {
	groups, groupWrites, syncs, flushes, compactions, rewrites atomic.Int64
	stalls, bytesFlushed, bytesCompacted                       atomic.Int64
	skipped                                                    atomic.Int64 // entries writeSegments dropped as unstorable
	walBytes                                                   atomic.Int64 // record payload bytes appended to WALs
	syncNanos                                                  atomic.Int64
	syncHist                                                   [SyncHistBuckets]atomic.Int64
}

// SyncHistBuckets is the length of ShardStats.SyncHist: bucket i counts
// WAL fsyncs that took less than 2^i µs (and at least 2^(i-1)); the last
// one everything slower.
const SyncHistBuckets = 24

// observeSync counts one WAL fsync that took d.
func (c *shardCounters) observeSync(d time.Duration) {
	c.syncs.Add(1)
	c.syncNanos.Add(int64(d))
	i := 0
	if us := d.Microseconds(); us > 0 {
		i = min(bits.Len64(uint64(us)), SyncHistBuckets-1)
	}
	c.syncHist[i].Add(1)
}

// loadReadState pins and returns the current read state.
func (sh *shard) loadReadState() *readState {
	sh.rsMu.RLock()
	rs := sh.rs
	rs.refs.Add(1)
	sh.rsMu.RUnlock()
	return rs
}

// installReadState publishes a new read state built from the shard's fields;
// the caller holds sh.mu.
func (sh *shard) installReadStateLocked(mem *memtable) {
	sh.cur.ref()
	rs := &readState{mem: mem, imm: append([]*memtable(nil), sh.imm...), v: sh.cur}
	rs.refs.Store(1)
	sh.rsMu.Lock()
	old := sh.rs
	sh.rs = rs
	sh.rsMu.Unlock()
	if old != nil {
		old.unref()
	}
}

// run is the shard worker: it gathers a commit group from the mailbox,
// appends it to the WAL, syncs once for the whole group, applies it to the
// memtable, publishes it and replies.
func (sh *shard) run() {
	defer sh.s.wg.Done()
	group := make([]*writeReq, 0, 256)
	for {
		var first *writeReq
		select {
		case first = <-sh.mailbox:
		case <-sh.syncTick:
			sh.syncIfDirty()
			continue
		case <-sh.s.quit:
			// Close stopped new requests before closing quit; finish what is queued.
			for {
				select {
				case r := <-sh.mailbox:
					if r.fn != nil {
						sh.runFn(r)
						continue
					}
					sh.commitGroup(append(group[:0], r))
				default:
					sh.syncIfDirty()
					sh.drainSyncs()
					return
				}
			}
		}
		if first.fn != nil {
			sh.runFn(first)
			continue
		}
		group = append(group[:0], first)
		size := first.size
		var fn *writeReq
	gather:
		for first.x == nil && len(group) < cap(group) && size < sh.s.cfg.GroupBytesMax {
			select {
			case r := <-sh.mailbox:
				if r.fn != nil {
					fn = r // after the group, in mailbox order
					break gather
				}
				group = append(group, r)
				size += r.size
				if r.x != nil {
					break gather
				}
			default:
				break gather
			}
		}
		sh.commitGroup(group)
		if fn != nil {
			sh.runFn(fn)
		}
	}
}

// runFn runs a function request on the worker.
func (sh *shard) runFn(r *writeReq) {
	if sh.broken != nil {
		r.err = sh.broken
	} else if err := r.fn(); err != nil {
		r.err = err
	}
	close(r.done)
}

func (sh *shard) syncIfDirty() {
	if sh.dirty && sh.broken == nil {
		start := time.Now()
		if err := sh.wal.Sync(); err != nil {
			sh.fail(err)
		}
		sh.dirty = false
		sh.stats.observeSync(time.Since(start))
	}
}

func (sh *shard) fail(err error) {
	if sh.broken == nil {
		sh.broken = fmt.Errorf("%w: shard %d: %v", ErrReadOnly, sh.id, err)
		sh.s.logf("engine: shard %d is read-only: %v", sh.id, err)
	}
}

func (sh *shard) commitGroup(group []*writeReq) {
	sh.stats.groups.Add(1)
	sh.stats.groupWrites.Add(int64(len(group)))
	if err := sh.syncFailure(); err != nil {
		sh.fail(err)
	}
	// Append every record; a failure fails the whole group (its earlier
	// records may or may not reach the disk: their outcome is unknown).
	rotate := false
	sh.walMu.Lock() // the syncer writes the WAL buffer out under walMu
	for _, r := range group {
		rotate = rotate || r.rotate
		if sh.broken != nil {
			break
		}
		if r.rotate {
			continue
		}
		if err := sh.appendRecord(r); err != nil {
			sh.fail(err)
		}
	}
	if sh.broken == nil && sh.s.syncer == nil {
		if err := sh.wal.Flush(); err != nil { // to the OS; the sync mode decides when to fsync
			sh.fail(err)
		}
	}
	sh.walMu.Unlock()
	last := group[len(group)-1]
	if sh.broken != nil {
		for _, r := range group {
			r.err = sh.broken
			if r.x != nil {
				r.x.ack <- r.err
				sh.finishXPart(r, false)
				continue
			}
			close(r.done)
		}
		return
	}
	// Apply to the memtable now; readers cannot see it until it is
	// published (visibleSeq), which happens once it is durable.
	var applied uint64
	pending := make([]*writeReq, 0, len(group))
	for _, r := range group {
		if r.x != nil || r.rotate {
			continue
		}
		sh.apply(r)
		applied = r.seq + r.count - 1
		pending = append(pending, r)
	}
	if applied != 0 {
		sh.appliedSeq.Store(applied)
	}
	for _, r := range pending {
		if r.applied != nil {
			close(r.applied)
		}
	}
	if len(pending) > 0 {
		if sh.s.cfg.Sync == SyncAlways {
			// The syncer fsyncs, publishes and replies while this worker
			// goes on gathering and appending the next group.
			sh.s.syncer.push(sh.id, pending, applied)
		} else {
			sh.dirty = true
			sh.publish(applied)
			for _, r := range pending {
				close(r.done)
			}
		}
	}
	if last.x != nil {
		// Cross-shard parts are always synced before they vote, whatever
		// the sync mode: the commit record must never outlive a part.
		err := sh.syncNow()
		last.x.ack <- err
		if err != nil {
			sh.fail(err)
			last.err = sh.broken
			sh.finishXPart(last, false)
		} else {
			sh.driveXPart(last)
		}
	}
	if sh.broken == nil && ((rotate && !sh.mem.empty()) || sh.mem.bytes.Load() >= sh.s.cfg.MemtableBytes) {
		if err := sh.rotate(); err != nil {
			sh.fail(err)
		}
	}
	for _, r := range group {
		if r.rotate {
			r.err = sh.broken
			close(r.done)
		}
	}
}

func (sh *shard) syncFailure() error {
	if p := sh.syncErr.Load(); p != nil {
		return *p
	}
	return nil
}

// publish makes every entry with seq <= last visible to readers.
func (sh *shard) publish(last uint64) {
	sh.s.pubmu.RLock()
	sh.visibleSeq.Store(last)
	sh.s.pubmu.RUnlock()
}

// drainSyncs waits until the syncer has made everything this shard queued durable.
func (sh *shard) drainSyncs() {
	if sh.s.syncer != nil {
		sh.s.syncer.drain(sh.id)
	}
}

// syncNow makes everything appended so far durable, on the worker.
func (sh *shard) syncNow() error {
	sh.drainSyncs()
	if err := sh.syncFailure(); err != nil {
		return err
	}
	sh.walMu.Lock()
	defer sh.walMu.Unlock()
	start := time.Now()
	err := sh.wal.Sync()
	sh.stats.observeSync(time.Since(start))
	return err
}

// appendRecord encodes r into the WAL and assigns its sequence numbers.
func (sh *shard) appendRecord(r *writeReq) error {
	buf := sh.encBuf[:0]
	switch {
	case r.del != nil:
		sh.nextSeq++
		r.seq, r.count = sh.nextSeq, 1
		r.del.Seq = r.seq
		buf = append(buf, recRangeDel)
		buf = appendUvarint(buf, r.seq)
		buf = append(buf, byte(r.del.Lo>>8), byte(r.del.Lo), byte(r.del.Hi>>8), byte(r.del.Hi))
	case r.x != nil:
		r.seq, r.count = sh.nextSeq+1, uint64(len(r.idx))
		sh.nextSeq += r.count
		buf = append(buf, recXPart)
		buf = appendUvarint(buf, r.x.xid)
		buf = appendUvarint(buf, uint64(len(r.x.participants)))
		for _, p := range r.x.participants {
			buf = appendUvarint(buf, uint64(p))
		}
		buf = appendOps(buf, r.b, r.idx, r.seq)
	default:
		r.seq, r.count = sh.nextSeq+1, uint64(len(r.idx))
		sh.nextSeq += r.count
		buf = append(buf, recBatch)
		buf = appendOps(buf, r.b, r.idx, r.seq)
	}
	sh.encBuf = buf
	sh.stats.walBytes.Add(int64(len(buf)))
	return sh.wal.Append(buf)
}

// apply inserts a committed request into the active memtable.
func (sh *shard) apply(r *writeReq) {
	if r.del != nil {
		sh.addRangeDel(*r.del)
		return
	}
	seq := r.seq
	for _, i := range r.idx {
		op := &r.b.ops[i]
		key := r.b.opKey(op)
		// One allocation holds the internal key and the stored value.
		n := len(key) + 2
		if op.kind == base.KindSet {
			n += len(r.b.opValue(op)) + 9
		}
		buf := appendUserKey(make([]byte, 0, n), op.bucket, key)
		ukey := buf[:len(buf):len(buf)]
		var val []byte
		if op.kind == base.KindSet {
			val = appendStoredValue(buf[len(buf):], r.b.opValue(op), op.expireAt)
		}
		sh.mem.add(base.InternalKey{UserKey: ukey, Seq: seq, Kind: op.kind}, val)
		seq++
	}
}

// addRangeDel installs a range tombstone in a new version (worker, after the WAL sync).
func (sh *shard) addRangeDel(d rangeDel) {
	sh.manifestMu.Lock()
	defer sh.manifestMu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.cur
	dels := append(append([]rangeDel(nil), old.dels...), d)
	sh.cur = newVersion(old.l0, old.l1, dels)
	old.unref()
	sh.installReadStateLocked(sh.mem)
}

// rotate freezes the active memtable, starting a new WAL. It waits
// (backpressure) while the flush queue is full.
func (sh *shard) rotate() error {
	sh.mu.Lock()
	for len(sh.imm) >= sh.s.cfg.ImmutableMax && !sh.s.closing.Load() {
		sh.stats.stalls.Add(1)
		sh.immSpace.Wait()
	}
	sh.mu.Unlock()
	// The old WAL must be durable before its memtable can be flushed and
	// the WAL released (interval/none modes leave it unsynced), and every
	// entry of the memtable published.
	if err := sh.syncNow(); err != nil {
		return err
	}
	sh.dirty = false
	num := sh.s.nextFileNum()
	w, f, err := sh.s.createWAL(sh.dir, num)
	if err != nil {
		return err
	}
	// The manifest names the new WAL before any write to it can be
	// acknowledged, so that losing the file is detected at Open.
	if err := sh.recordLog(num); err != nil {
		// Keep the (empty) file: the failed manifest write may still have
		// become durable, and a listed WAL must exist.
		w.Close()
		return err
	}
	sh.walMu.Lock()
	sh.wal.Close()
	sh.wal, sh.walFile = w, f
	sh.walMu.Unlock()
	wf := &walFile{num: num, shard: sh}
	wf.refs.Store(1)
	old := sh.mem
	mem := newMemtable(num)
	mem.wal = wf
	sh.walRef, sh.mem = wf, mem
	sh.mu.Lock()
	sh.imm = append(sh.imm, old)
	sh.installReadStateLocked(mem)
	sh.mu.Unlock()
	select {
	case sh.flushCh <- struct{}{}:
	default:
	}
	return nil
}

// recordLog adds WAL num to the shard's live logs and writes a manifest
// listing it (worker, before the WAL takes writes). On error num is
// dropped from the list again.
func (sh *shard) recordLog(num uint64) error {
	sh.manifestMu.Lock()
	defer sh.manifestMu.Unlock()
	sh.mu.Lock()
	sh.logs = append(sh.logs, num)
	man := sh.manifestLocked(sh.cur, sh.flushedSeq, sh.oldestLogLocked())
	sh.mu.Unlock()
	if err := sh.s.writeManifest(sh.dir, man); err != nil {
		sh.mu.Lock()
		sh.logs = slices.DeleteFunc(sh.logs, func(n uint64) bool { return n == num })
		sh.mu.Unlock()
		return fmt.Errorf("engine: shard %d: record wal %06d in the manifest: %w", sh.id, num, err)
	}
	return nil
}

// flusher writes frozen memtables to level-0 segments, oldest first.
func (sh *shard) flusher() {
	backoff := 10 * time.Millisecond
	for {
		select {
		case <-sh.flushCh:
		case <-sh.s.bgQuit:
			return
		}
		for {
			sh.mu.Lock()
			if len(sh.imm) == 0 {
				sh.mu.Unlock()
				break
			}
			m := sh.imm[0]
			sh.mu.Unlock()
			if err := sh.flushMemtable(m); err != nil {
				sh.mu.Lock()
				sh.flushErr = err
				sh.mu.Unlock()
				sh.s.logf("engine: shard %d: flush failed (will retry): %v", sh.id, err)
				select {
				case <-time.After(backoff):
				case <-sh.s.bgQuit:
					return
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 10 * time.Millisecond
		}
	}
}

// flushMemtable writes m (the oldest frozen memtable) to a new level-0 file
// and installs it.
func (sh *shard) flushMemtable(m *memtable) error {
	var meta *fileMeta
	if !m.empty() {
		out, err := sh.s.writeSegments(sh, &memIter{m: m}, nil, dropNothing, 0)
		if err != nil {
			return err
		}
		if len(out) == 1 {
			meta = out[0]
		}
	}
	sh.manifestMu.Lock()
	defer sh.manifestMu.Unlock()
	sh.mu.Lock()
	l0 := sh.cur.l0
	if meta != nil {
		l0 = l0Insert(sh.cur.l0, meta)
	}
	nv := newVersion(l0, sh.cur.l1, sh.cur.dels)
	next := sh.rs.mem // the read state's memtable is the active one (installed under mu)
	if len(sh.imm) > 1 {
		next = sh.imm[1]
	}
	flushed := max(sh.flushedSeq, m.maxSeq)
	man := sh.manifestLocked(nv, flushed, next.walNum)
	sh.mu.Unlock()
	if err := sh.s.writeManifest(sh.dir, man); err != nil {
		nv.unref()
		return err
	}
	sh.mu.Lock()
	old := sh.cur
	sh.cur = nv
	sh.flushedSeq = flushed
	sh.logs = slices.DeleteFunc(sh.logs, func(n uint64) bool { return n < next.walNum })
	sh.imm[0] = nil // let the flushed memtable go (the backing array outlives the slice)
	sh.imm = sh.imm[1:]
	sh.flushErr = nil
	sh.installReadStateLocked(sh.rs.mem)
	sh.immSpace.Broadcast()
	l0n := len(nv.l0)
	sh.mu.Unlock()
	old.unref()
	// The memtable's WAL (and WALs it pinned) are no longer needed for replay.
	sh.releaseMemtableWALs(m)
	sh.stats.flushes.Add(1)
	if meta != nil {
		sh.stats.bytesFlushed.Add(meta.Size)
	}
	if l0n >= sh.s.cfg.L0CompactionTrigger {
		sh.kickCompaction()
	}
	return nil
}

func (sh *shard) releaseMemtableWALs(m *memtable) {
	if m.wal != nil {
		m.wal.unref()
	}
	for _, p := range m.pins {
		p.unref()
	}
}

// manifestLocked renders the durable state with version v; sh.mu is held.
func (sh *shard) manifestLocked(v *version, flushed, logNum uint64) *manifest {
	clone := func(fs []*fileMeta) []*fileMeta {
		out := make([]*fileMeta, len(fs))
		for i, f := range fs {
			c := &fileMeta{Num: f.Num, Size: f.Size, Smallest: f.Smallest, Largest: f.Largest,
				MinSeq: f.MinSeq, MaxSeq: f.MaxSeq, Entries: f.Entries, Dead: f.Dead, DeadSeq: f.DeadSeq, Expiring: f.Expiring, Ingested: f.Ingested}
			out[i] = c
		}
		return out
	}
	var logs []uint64
	for _, n := range sh.logs {
		if n >= logNum {
			logs = append(logs, n)
		}
	}
	return &manifest{
		Format: manifestFormat, Shard: sh.id, FlushedSeq: flushed, LogNum: logNum, Logs: logs,
		LastSeq: max(flushed, sh.visibleSeq.Load()), MaxXID: sh.s.xidSeen(),
		NextFileNum: sh.s.fileNum.Load() + 1,
		L0:          clone(v.l0), L1: clone(v.l1), RangeDels: v.dels,
	}
}

// obsoleteFile is called when a segment's last reference goes.
func (sh *shard) obsoleteFile(f *fileMeta) {
	sh.s.tables.Evict(f.Num)
	sh.s.blocks.Evict(f.Num)
	sh.s.removeFile(segName(sh.dir, f.Num))
}

func (sh *shard) kickCompaction() {
	select {
	case sh.compactCh <- struct{}{}:
	default:
	}
}
