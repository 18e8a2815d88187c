package engine

import (
	"bytes"
	"encoding/binary"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/segment"
)

// internalIter walks entries in internal-key order (all versions).
type internalIter interface {
	First()
	SeekGE(userKey []byte)
	Next()
	Valid() bool
	Key() base.InternalKey
	Value() []byte
	Error() error
	Close() error
}

// segIter adapts a segment iterator and releases its table-cache reference on Close.
type segIter struct {
	it      *segment.Iter
	release func()
}

func (s *segIter) First()                { s.it.First() }
func (s *segIter) SeekGE(k []byte)       { s.it.SeekGE(k) }
func (s *segIter) Next()                 { s.it.Next() }
func (s *segIter) Valid() bool           { return s.it.Valid() }
func (s *segIter) Key() base.InternalKey { return s.it.Key() }
func (s *segIter) Value() []byte         { return s.it.Value() }
func (s *segIter) Error() error          { return s.it.Error() }
func (s *segIter) Close() error {
	err := s.it.Close()
	s.release()
	return err
}

// newSegIter opens an iterator over segment num. scan selects the
// sequential-read iterator that bypasses the block cache (compactions,
// maintenance), so background work does not evict the reads' working set.
func (s *Store) newSegIter(num uint64, scan bool) (internalIter, error) {
	r, release, err := s.tables.Acquire(num)
	if err != nil {
		return nil, err
	}
	it := r.NewIter()
	if scan {
		it = r.NewScanIter()
	}
	return &segIter{it: it, release: release}, nil
}

// concatIter walks disjoint sorted files (level 1) one after another,
// opening each lazily.
type concatIter struct {
	s     *Store
	scan  bool
	files []*fileMeta
	i     int
	cur   internalIter
	err   error
}

func (it *concatIter) open(i int) bool {
	if it.cur != nil {
		it.cur.Close()
		it.cur = nil
	}
	it.i = i
	if i >= len(it.files) {
		return false
	}
	c, err := it.s.newSegIter(it.files[i].Num, it.scan)
	if err != nil {
		it.err = err
		return false
	}
	it.cur = c
	return true
}

func (it *concatIter) skipEmpty() {
	for it.cur != nil && !it.cur.Valid() {
		if err := it.cur.Error(); err != nil {
			it.err = err
			it.cur.Close()
			it.cur = nil
			return
		}
		if !it.open(it.i + 1) {
			return
		}
		it.cur.First()
	}
}

func (it *concatIter) First() {
	if it.open(0) {
		it.cur.First()
		it.skipEmpty()
	}
}

func (it *concatIter) SeekGE(userKey []byte) {
	i := 0
	for i < len(it.files) && bytes.Compare(it.files[i].Largest, userKey) < 0 {
		i++
	}
	if it.open(i) {
		it.cur.SeekGE(userKey)
		it.skipEmpty()
	}
}

func (it *concatIter) Next() {
	it.cur.Next()
	it.skipEmpty()
}

func (it *concatIter) Valid() bool           { return it.err == nil && it.cur != nil && it.cur.Valid() }
func (it *concatIter) Key() base.InternalKey { return it.cur.Key() }
func (it *concatIter) Value() []byte         { return it.cur.Value() }
func (it *concatIter) Error() error          { return it.err }
func (it *concatIter) Close() error {
	if it.cur != nil {
		it.cur.Close()
		it.cur = nil
	}
	return nil
}

// mergeIter merges children by internal key with a binary min-heap whose
// entries cache each child's current key, so a comparison makes no
// interface calls.
type mergeIter struct {
	kids []internalIter
	h    []mergeItem
	err  error
}

type mergeItem struct {
	key base.InternalKey
	kid int
}

func (m *mergeIter) less(i, j int) bool { return base.Compare(m.h[i].key, m.h[j].key) < 0 }

func (m *mergeIter) down(i int) {
	n := len(m.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && m.less(r, l) {
			c = r
		}
		if !m.less(c, i) {
			return
		}
		m.h[i], m.h[c] = m.h[c], m.h[i]
		i = c
	}
}

func (m *mergeIter) rebuild() {
	m.h = m.h[:0]
	for i, k := range m.kids {
		if k.Valid() {
			m.h = append(m.h, mergeItem{key: k.Key(), kid: i})
		} else if err := k.Error(); err != nil && m.err == nil {
			m.err = err
		}
	}
	for i := len(m.h)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
}

func (m *mergeIter) First() {
	for _, k := range m.kids {
		k.First()
	}
	m.rebuild()
}

func (m *mergeIter) SeekGE(userKey []byte) {
	for _, k := range m.kids {
		k.SeekGE(userKey)
	}
	m.rebuild()
}

func (m *mergeIter) Next() {
	k := m.kids[m.h[0].kid]
	k.Next()
	if k.Valid() {
		m.h[0].key = k.Key()
	} else {
		if err := k.Error(); err != nil && m.err == nil {
			m.err = err
		}
		last := len(m.h) - 1
		m.h[0] = m.h[last]
		m.h = m.h[:last]
	}
	m.down(0)
}

func (m *mergeIter) Valid() bool           { return m.err == nil && len(m.h) > 0 }
func (m *mergeIter) Key() base.InternalKey { return m.h[0].key }
func (m *mergeIter) Value() []byte         { return m.kids[m.h[0].kid].Value() }
func (m *mergeIter) Error() error          { return m.err }
func (m *mergeIter) Close() error {
	for _, k := range m.kids {
		k.Close()
	}
	return nil
}

// Iter walks the visible keys of a bucket range in (bucket, key) order, as
// of the snapshot it was created from. Use it as:
//
//	it := store.NewIter(lo, hi)
//	defer it.Close()
//	for it.First(); it.Valid(); it.Next() { ... it.Bucket(), it.Key(), it.Value() ... }
//	if err := it.Error(); err != nil { ... }
//
// Key and Value are valid until the next move. An Iter is not safe for
// concurrent use.
type Iter struct {
	snap     *Snapshot
	ownsSnap bool
	m        mergeIter
	kidShard []int // shard of each child (for seq and tombstones)
	lower    []byte
	upper    []byte // exclusive; nil = end of key space
	now      int64

	key      []byte // current user key (bucket-prefixed)
	value    []byte
	expireAt int64
	valid    bool
	err      error
}

// wideScanBuckets is the bucket span from which an iterator uses sequential reads.
const wideScanBuckets = 64

func (sn *Snapshot) newIter(lo, hi uint16) *Iter {
	s := sn.s
	it := &Iter{snap: sn, now: s.cfg.Now().UnixMilli()}
	it.lower = binary.BigEndian.AppendUint16(nil, lo)
	if hi < 0xffff {
		it.upper = binary.BigEndian.AppendUint16(nil, hi+1)
	}
	// Wide scans (migrations, full scans) read segments sequentially in
	// large chunks and leave the block cache to point reads.
	scan := int(hi)-int(lo) >= wideScanBuckets
	n := len(s.shards)
	for i := range s.shards {
		if !shardHasBucketIn(i, n, lo, hi) {
			continue
		}
		rs := sn.rs[i]
		add := func(k internalIter) {
			it.m.kids = append(it.m.kids, k)
			it.kidShard = append(it.kidShard, i)
		}
		add(&memIter{m: rs.mem})
		for _, m := range rs.imm {
			add(&memIter{m: m})
		}
		for _, f := range rs.v.l0 {
			if !f.overlaps(it.lower, it.upper) {
				continue
			}
			add(&lazySegIter{s: s, num: f.Num, scan: scan})
		}
		var l1 []*fileMeta
		for _, f := range rs.v.l1 {
			if f.overlaps(it.lower, it.upper) {
				l1 = append(l1, f)
			}
		}
		if len(l1) > 0 {
			add(&concatIter{s: s, files: l1, scan: scan})
		}
	}
	return it
}

// lazySegIter opens its segment on first positioning.
type lazySegIter struct {
	s    *Store
	num  uint64
	scan bool
	internalIter
	err error
}

func (l *lazySegIter) ensure() bool {
	if l.internalIter == nil && l.err == nil {
		l.internalIter, l.err = l.s.newSegIter(l.num, l.scan)
	}
	return l.err == nil
}
func (l *lazySegIter) First() {
	if l.ensure() {
		l.internalIter.First()
	}
}
func (l *lazySegIter) SeekGE(k []byte) {
	if l.ensure() {
		l.internalIter.SeekGE(k)
	}
}
func (l *lazySegIter) Valid() bool {
	return l.err == nil && l.internalIter != nil && l.internalIter.Valid()
}
func (l *lazySegIter) Error() error {
	if l.err != nil {
		return l.err
	}
	if l.internalIter == nil {
		return nil
	}
	return l.internalIter.Error()
}
func (l *lazySegIter) Close() error {
	if l.internalIter != nil {
		return l.internalIter.Close()
	}
	return nil
}

// First positions at the first visible key of the range.
func (it *Iter) First() {
	it.m.SeekGE(it.lower)
	it.key = it.key[:0]
	it.findNext(false)
}

// SeekGE positions at the first visible key >= (bucket, key), clamped to the range.
func (it *Iter) SeekGE(bucket uint16, key []byte) {
	target := appendUserKey(nil, bucket, key)
	if bytes.Compare(target, it.lower) < 0 {
		target = it.lower
	}
	it.m.SeekGE(target)
	it.key = it.key[:0]
	it.findNext(false)
}

// Next moves to the next visible key.
func (it *Iter) Next() {
	if !it.valid {
		return
	}
	it.findNext(true)
}

// findNext advances the merge to the newest visible version of the next
// user key that is live (not deleted, expired or range-deleted).
func (it *Iter) findNext(skipCurrent bool) {
	it.valid = false
	haveCur := skipCurrent
	for it.m.Valid() {
		k := it.m.Key()
		if it.upper != nil && bytes.Compare(k.UserKey, it.upper) >= 0 {
			break
		}
		sid := it.kidShard[it.m.h[0].kid]
		snap := it.snap.seqs[sid]
		if k.Seq > snap || (haveCur && bytes.Equal(k.UserKey, it.key)) {
			it.m.Next()
			continue
		}
		// Newest visible version of a new user key.
		it.key = append(it.key[:0], k.UserKey...)
		haveCur = true
		if k.Kind == base.KindDelete || coveredBy(it.snap.rs[sid].v.dels, k.UserKey, k.Seq, snap) {
			it.m.Next()
			continue
		}
		v, exp, ok := decodeStoredValue(it.m.Value())
		if !ok {
			it.err = errCorruptValue(k)
			break
		}
		if exp != 0 && exp <= it.now {
			it.m.Next()
			continue
		}
		it.value = v // aliases the child's buffer: valid until the next move
		it.expireAt = exp
		it.valid = true
		return
	}
	if err := it.m.Error(); err != nil && it.err == nil {
		it.err = err
	}
}

func coveredBy(dels []rangeDel, ukey []byte, seq, snap uint64) bool {
	if len(dels) == 0 {
		return false
	}
	b := bucketOf(ukey)
	for _, d := range dels {
		if d.covers(b, seq, snap) {
			return true
		}
	}
	return false
}

// Valid reports whether the iterator is at a key.
func (it *Iter) Valid() bool { return it.valid && it.err == nil }

// Bucket, Key, Value and ExpireAt describe the current entry (ExpireAt in
// Unix ms, 0 = none). Key and Value are valid until the next move.
func (it *Iter) Bucket() uint16  { return bucketOf(it.key) }
func (it *Iter) Key() []byte     { return it.key[2:] }
func (it *Iter) Value() []byte   { return it.value }
func (it *Iter) ExpireAt() int64 { return it.expireAt }

// Error returns the first error met (I/O or corruption).
func (it *Iter) Error() error { return it.err }

// Close releases the files and memtables the iterator pinned.
func (it *Iter) Close() error {
	it.m.Close()
	if it.ownsSnap {
		it.snap.Close()
	}
	return it.err
}
