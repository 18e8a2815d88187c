package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/segment"
)

// Ingestion writes the entries of some buckets straight into new segment
// files and adds them to the store in one step per shard, bypassing the
// WAL and the memtables: a bulk load (a migration's copy) then costs one
// write of its bytes, and leaves the WAL and its fsyncs to ordinary
// writes.
//
// The buckets must hold nothing the ingested entries should lose to: the
// caller deletes them first (DeleteBuckets) and writes none of them until
// Commit returns (writes after that win over the ingested entries, as any
// later write does).
//
// NewIngestion reserves each shard's next sequence number S for all the
// shard's entries: every entry already in the shard is older, every later
// write newer. Commit puts the files into level 0 where S falls (ordered
// by newest sequence number: behind flushes of later writes, in front of
// older ones) and publishes S. A memtable can span S (entries written
// before and after the reservation) and be flushed in front of the file:
// that is why no memtable may hold a key of the buckets when the
// ingestion starts (NewIngestion flushes them if one does) — reads find
// the first version of a key in level order. Abort, or a crash before
// Commit, leaves nothing behind (on open, files no manifest lists are
// removed).
type Ingestion struct {
	s       *Store
	buckets map[uint16]bool
	shards  map[int]*ingShard
	done    bool
}

type ingShard struct {
	sh   *shard
	seq  uint64 // every entry's sequence number
	w    *segment.Writer
	meta *fileMeta
	out  []*fileMeta // one file: level 0 files may not share a sequence number
	last []byte      // last user key added
}

// NewIngestion prepares an ingestion into buckets.
// (The store's close lock is taken per step, never held across a request
// to a shard's worker: submit takes it itself.)
func (s *Store) NewIngestion(ctx context.Context, buckets []uint16) (*Ingestion, error) {
	in := &Ingestion{s: s, buckets: map[uint16]bool{}, shards: map[int]*ingShard{}}
	for _, b := range buckets {
		in.buckets[b] = true
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	dirty := slices.ContainsFunc(s.shards, func(sh *shard) bool { return sh.memHasBuckets(in.buckets) })
	s.leave()
	if dirty { // entries left by an earlier attempt, deleted since
		if err := s.Flush(ctx); err != nil {
			return nil, fmt.Errorf("engine: ingestion: flush: %w", err)
		}
	}
	for b := range in.buckets {
		i := int(b) % len(s.shards)
		if in.shards[i] != nil {
			continue
		}
		is := &ingShard{sh: s.shards[i]}
		r := &writeReq{fn: func() error { // on the shard's worker: between two writes
			is.sh.nextSeq++
			is.seq = is.sh.nextSeq
			return nil
		}, done: make(chan struct{})}
		if err := s.submit(ctx, is.sh, r); err != nil {
			return nil, err
		}
		in.shards[i] = is
	}
	return in, nil
}

// memHasBuckets reports whether the active or a frozen memtable holds an
// entry (a value or a tombstone) of one of buckets.
func (sh *shard) memHasBuckets(buckets map[uint16]bool) bool {
	rs := sh.loadReadState()
	defer rs.unref()
	mems := append([]*memtable{rs.mem}, rs.imm...)
	for b := range buckets {
		if int(b)%len(sh.s.shards) != sh.id {
			continue
		}
		prefix := appendUserKey(nil, b, nil)
		for _, m := range mems {
			it := &memIter{m: m}
			it.SeekGE(prefix)
			if it.Valid() && bytes.HasPrefix(it.Key().UserKey, prefix) {
				return true
			}
		}
	}
	return false
}

// Add appends an entry (expireAt: Unix ms, 0 = none). Within a shard,
// entries must come in ascending (bucket, key) order, each key once.
func (in *Ingestion) Add(bucket uint16, key, value []byte, expireAt int64) error {
	if in.done {
		return errors.New("engine: ingestion already committed or aborted")
	}
	if !in.buckets[bucket] {
		return fmt.Errorf("engine: ingestion: bucket %d is not one of the ingestion's", bucket)
	}
	if err := checkEntry(&in.s.cfg, base.KindSet, key, len(value)); err != nil {
		return err
	}
	is := in.shards[int(bucket)%len(in.s.shards)]
	ukey := appendUserKey(nil, bucket, key)
	if is.last != nil && bytes.Compare(ukey, is.last) <= 0 {
		return fmt.Errorf("engine: ingestion: key %q of bucket %d out of order", key, bucket)
	}
	is.last = ukey
	if is.w == nil {
		num := in.s.nextFileNum()
		f, err := in.s.fs.Create(segName(is.sh.dir, num))
		if err != nil {
			return err
		}
		is.w = segment.NewWriter(f, segment.DefaultWriterOptions())
		is.meta = &fileMeta{Num: num, shard: is.sh, Smallest: ukey, MinSeq: is.seq, MaxSeq: is.seq, Ingested: true}
	}
	if err := is.w.Add(base.InternalKey{UserKey: ukey, Seq: is.seq, Kind: base.KindSet}, appendStoredValue(nil, value, expireAt)); err != nil {
		return err
	}
	is.meta.Largest = ukey
	if expireAt != 0 {
		is.meta.Expiring++
	}
	return nil
}

func (is *ingShard) finish() error {
	props, err := is.w.Finish()
	is.w = nil
	if err != nil {
		is.sh.s.removeFile(segName(is.sh.dir, is.meta.Num))
		return err
	}
	is.meta.Size = int64(props.FileBytes)
	is.meta.Entries = props.Entries
	is.out = append(is.out, is.meta)
	is.meta = nil
	return nil
}

// Commit makes the files durable and adds them to their shards. On error
// the ingestion is aborted (a shard that already took its files keeps
// them: its entries are then readable, as after any partial failure the
// caller retries after deleting the buckets).
func (in *Ingestion) Commit(ctx context.Context) error {
	if in.done {
		return errors.New("engine: ingestion already committed or aborted")
	}
	for _, is := range in.shards {
		if is.w != nil {
			if err := is.finish(); err != nil {
				in.Abort()
				return err
			}
		}
		if len(is.out) > 0 {
			if err := in.s.fs.SyncDir(is.sh.dir); err != nil {
				in.Abort()
				return err
			}
		}
	}
	ids := make([]int, 0, len(in.shards))
	for i := range in.shards {
		ids = append(ids, i)
	}
	slices.Sort(ids)
	for _, i := range ids {
		is := in.shards[i]
		if len(is.out) == 0 {
			continue
		}
		r := &writeReq{fn: is.install, done: make(chan struct{})}
		if err := in.s.submit(ctx, is.sh, r); err != nil {
			in.Abort()
			return err
		}
		is.out = nil // the shard owns them now
	}
	in.done = true
	return nil
}

// install runs on the shard's worker: everything written before is made
// durable and visible, the reserved sequence number becomes visible, and
// the files go into level 0.
func (is *ingShard) install() error {
	sh := is.sh
	if err := sh.syncNow(); err != nil {
		return err
	}
	if sh.visibleSeq.Load() < is.seq {
		sh.publish(is.seq) // no other entry has it; every smaller one is durable (syncNow)
	}
	if sh.appliedSeq.Load() < is.seq {
		sh.appliedSeq.Store(is.seq)
	}
	sh.manifestMu.Lock()
	defer sh.manifestMu.Unlock()
	sh.mu.Lock()
	for _, f := range is.out {
		f.refs.Store(0)
	}
	nv := newVersion(l0Insert(sh.cur.l0, is.out...), sh.cur.l1, sh.cur.dels)
	man := sh.manifestLocked(nv, sh.flushedSeq, sh.oldestLogLocked())
	sh.mu.Unlock()
	if err := sh.s.writeManifest(sh.dir, man); err != nil {
		nv.unref()
		return err
	}
	sh.mu.Lock()
	old := sh.cur
	sh.cur = nv
	sh.installReadStateLocked(sh.rs.mem)
	l0n := len(nv.l0)
	sh.mu.Unlock()
	old.unref()
	if l0n >= sh.s.cfg.L0CompactionTrigger {
		sh.kickCompaction()
	}
	return nil
}

// Abort removes the files written so far. It is safe after Commit (a
// no-op) and more than once.
func (in *Ingestion) Abort() {
	if in.done {
		return
	}
	in.done = true
	for _, is := range in.shards {
		if is.w != nil {
			is.w.Abort()
			in.s.removeFile(segName(is.sh.dir, is.meta.Num))
			is.w = nil
		}
		for _, f := range is.out {
			in.s.removeFile(segName(is.sh.dir, f.Num))
		}
		is.out = nil
	}
}
