package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/segment"
)

// dropPolicy says which entries a segment write may drop. Both keep only
// the newest version of each user key: snapshots and iterators pin the
// files and memtables they read, so no older version is needed by them.
type dropPolicy int

const (
	// dropNothing keeps the newest version even if it is a tombstone (flush:
	// older files below may hold the key).
	dropNothing dropPolicy = iota
	// dropBottom also drops keys whose newest version is a tombstone,
	// expired, or under a range tombstone: the output is the bottom level
	// and the inputs hold every version of the keys they contain.
	dropBottom
)

// writeSegments writes the newest version of every key of it into new
// segment files, split at splitBytes (0 = one file), and returns their
// metadata. Outputs are synced and their directory entries too.
func (s *Store) writeSegments(sh *shard, it internalIter, dels []rangeDel, policy dropPolicy, splitBytes int64) (out []*fileMeta, err error) {
	now := s.cfg.Now().UnixMilli()
	var w *segment.Writer
	var meta *fileMeta
	defer func() {
		if err != nil {
			if w != nil {
				w.Abort()
				s.removeFile(segName(sh.dir, meta.Num))
			}
			for _, f := range out {
				s.removeFile(segName(sh.dir, f.Num))
			}
			out = nil
		}
	}()
	finish := func() error {
		props, err := w.Finish()
		w = nil
		if err != nil {
			s.removeFile(segName(sh.dir, meta.Num))
			return err
		}
		meta.Size = int64(props.FileBytes)
		meta.Entries = props.Entries
		meta.refs.Store(0)
		out = append(out, meta)
		return nil
	}
	var prev []byte
	havePrev := false
	var maxDel uint64
	for _, d := range dels {
		maxDel = max(maxDel, d.Seq)
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if havePrev && bytes.Equal(k.UserKey, prev) {
			continue // older version
		}
		prev = append(prev[:0], k.UserKey...)
		havePrev = true
		v := it.Value()
		var expiring bool
		if k.Kind == base.KindSet {
			_, exp, ok := decodeStoredValue(v)
			if !ok {
				return nil, errCorruptValue(k)
			}
			expiring = exp != 0
			if policy == dropBottom && expiring && exp <= now {
				continue
			}
		}
		if policy == dropBottom && (k.Kind == base.KindDelete || coveredBy(dels, k.UserKey, k.Seq, base.SeqMax)) {
			continue
		}
		if err := checkStored(k.UserKey, v); err != nil {
			// Only an entry that bypassed the write checks (old data) can
			// get here. Retrying would fail forever: drop it, loudly.
			sh.stats.skipped.Add(1)
			s.logf("engine: shard %d: dropped an entry no segment can store (bucket %d, seq %d, key %d bytes, stored value %d bytes): %v",
				sh.id, bucketOf(k.UserKey), k.Seq, len(k.UserKey)-userKeyPrefixLen, len(v), err)
			continue
		}
		if w != nil && splitBytes > 0 && w.EstimatedSize() >= splitBytes {
			if err := finish(); err != nil {
				return nil, err
			}
		}
		if w == nil {
			num := s.nextFileNum()
			f, err := s.fs.Create(segName(sh.dir, num))
			if err != nil {
				return nil, err
			}
			w = segment.NewWriter(f, segment.DefaultWriterOptions())
			meta = &fileMeta{Num: num, shard: sh, Smallest: append([]byte(nil), k.UserKey...), MinSeq: k.Seq, DeadSeq: maxDel}
		}
		if err := w.Add(k, v); err != nil {
			return nil, err
		}
		meta.Largest = append(meta.Largest[:0], k.UserKey...)
		meta.MinSeq = min(meta.MinSeq, k.Seq)
		meta.MaxSeq = max(meta.MaxSeq, k.Seq)
		if expiring {
			meta.Expiring++
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if w != nil {
		if err := finish(); err != nil {
			return nil, err
		}
	}
	if len(out) > 0 {
		if err := s.fs.SyncDir(sh.dir); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// compactor runs compactions for one shard when signalled.
func (sh *shard) compactor() {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-sh.compactCh:
		case <-sh.s.bgQuit:
			return
		}
		for sh.needsCompaction() {
			select {
			case sh.s.compSem <- struct{}{}:
			case <-sh.s.bgQuit:
				return
			}
			err := sh.compact(false)
			<-sh.s.compSem
			if err != nil {
				sh.s.logf("engine: shard %d: compaction failed (will retry): %v", sh.id, err)
				select {
				case <-time.After(backoff):
				case <-sh.s.bgQuit:
					return
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
		}
	}
}

func (sh *shard) needsCompaction() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.cur.l0) >= sh.s.cfg.L0CompactionTrigger
}

// compact merges every level-0 file with the level-1 files they overlap
// (all level-1 files when full) into new level-1 files, dropping garbage,
// and retires range tombstones whose covered data is gone.
func (sh *shard) compact(full bool) error {
	sh.mu.Lock()
	v := sh.cur
	v.ref()
	flushedAtPick := sh.flushedSeq
	sh.mu.Unlock()
	defer v.unref()

	inL0 := v.l0
	var lo, hi []byte
	for _, f := range inL0 {
		if lo == nil || bytes.Compare(f.Smallest, lo) < 0 {
			lo = f.Smallest
		}
		if hi == nil || bytes.Compare(f.Largest, hi) > 0 {
			hi = f.Largest
		}
	}
	var inL1 []*fileMeta
	for _, f := range v.l1 {
		if full || (lo != nil && f.overlaps(lo, hi)) || overlapsDels(f, v.dels) {
			inL1 = append(inL1, f)
		}
	}
	// Range tombstones retire once every entry they may cover is in the
	// inputs: all memtable data older than them is flushed, and every file
	// overlapping them is an input (every L0 file is; overlapping L1 files
	// were added above).
	var retire []rangeDel
	for _, d := range v.dels {
		if flushedAtPick+1 >= d.Seq {
			retire = append(retire, d)
		}
	}
	if len(inL0) == 0 && len(inL1) == 0 && len(retire) == 0 {
		return nil
	}
	var kids []internalIter
	for _, f := range inL0 {
		kids = append(kids, &lazySegIter{s: sh.s, num: f.Num, scan: true})
	}
	if len(inL1) > 0 {
		kids = append(kids, &concatIter{s: sh.s, files: inL1, scan: true})
	}
	m := &mergeIter{kids: kids}
	out, err := sh.s.writeSegments(sh, m, v.dels, dropBottom, sh.s.cfg.TargetFileBytes)
	m.Close()
	if err != nil {
		return err
	}
	return sh.installCompaction(inL0, inL1, out, retire, false)
}

func overlapsDels(f *fileMeta, dels []rangeDel) bool {
	for _, d := range dels {
		if f.DeadSeq >= d.Seq || f.MinSeq >= d.Seq {
			continue
		}
		lo := appendUserKey(nil, d.Lo, nil)
		var hi []byte
		if d.Hi < 0xffff {
			hi = appendUserKey(nil, d.Hi+1, nil)
		}
		if bytes.Compare(f.Largest, lo) >= 0 && (hi == nil || bytes.Compare(f.Smallest, hi) < 0) {
			return true
		}
	}
	return false
}

// installCompaction replaces inputs by outputs in a new version, durably.
func (sh *shard) installCompaction(inL0, inL1, out []*fileMeta, retire []rangeDel, rewrite bool) error {
	sh.manifestMu.Lock()
	defer sh.manifestMu.Unlock()
	sh.mu.Lock()
	cur := sh.cur
	gone := make(map[uint64]bool, len(inL0)+len(inL1))
	for _, f := range inL0 {
		gone[f.Num] = true
	}
	for _, f := range inL1 {
		gone[f.Num] = true
	}
	var l0, l1 []*fileMeta
	for _, f := range cur.l0 {
		if !gone[f.Num] {
			l0 = append(l0, f)
		}
	}
	for _, f := range cur.l1 {
		if !gone[f.Num] {
			l1 = append(l1, f)
		}
	}
	l1 = append(l1, out...)
	slices.SortFunc(l1, func(a, b *fileMeta) int { return bytes.Compare(a.Smallest, b.Smallest) })
	var dels []rangeDel
	for _, d := range cur.dels {
		if !slices.Contains(retire, d) {
			dels = append(dels, d)
		}
	}
	nv := newVersion(l0, l1, dels)
	man := sh.manifestLocked(nv, sh.flushedSeq, sh.oldestLogLocked())
	sh.mu.Unlock()
	if err := sh.s.writeManifest(sh.dir, man); err != nil {
		nv.unref() // releases the outputs (deleting them) and drops nothing else
		return err
	}
	sh.mu.Lock()
	sh.cur = nv
	sh.installReadStateLocked(sh.rs.mem)
	sh.mu.Unlock()
	cur.unref()
	var n int64
	for _, f := range out {
		n += f.Size
	}
	sh.stats.bytesCompacted.Add(n)
	if rewrite {
		sh.stats.rewrites.Add(1)
	} else {
		sh.stats.compactions.Add(1)
	}
	return nil
}

// oldestLogLocked is the WAL number of the oldest unflushed memtable.
func (sh *shard) oldestLogLocked() uint64 {
	if len(sh.imm) > 0 {
		return sh.imm[0].walNum
	}
	return sh.rs.mem.walNum
}

// Compact flushes every shard and then merges all of each shard's files
// into level 1, dropping every tombstone, expired value and range-deleted
// entry, and runs the maintenance pass.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.Flush(ctx); err != nil {
		return err
	}
	for _, sh := range s.shards {
		select {
		case s.compSem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := sh.compact(true)
		<-s.compSem
		if err != nil {
			return fmt.Errorf("engine: compact shard %d: %w", sh.id, err)
		}
	}
	return nil
}
