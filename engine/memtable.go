package engine

import (
	"bytes"
	"math/rand/v2"
	"sync/atomic"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

// memtable is a skiplist of internal keys. It has a single writer (the
// shard worker) and any number of concurrent readers: nodes are published
// with atomic pointer stores after they are fully built, so a reader never
// sees a half-linked node. Entries are never removed; a memtable is dropped
// whole once flushed and released by every reader.
const memMaxHeight = 20

type memNode struct {
	key   base.InternalKey
	value []byte
	next  []atomic.Pointer[memNode] // len = the node's height (most nodes: 1 or 2)
}

// memNodeOverhead approximates a node's fixed cost: the struct, its tower
// slice header and allocator rounding, so MemtableBytes bounds real memory.
const memNodeOverhead = 112

type memtable struct {
	head   memNode
	height atomic.Int32
	bytes  atomic.Int64 // approximate memory footprint
	count  atomic.Int64
	rnd    *rand.Rand // writer only

	// Set by the shard worker; read after the memtable is frozen.
	walNum uint64     // WAL holding this memtable's records
	wal    *walFile   // its reference (nil for recovered memtables)
	minSeq uint64     // smallest seq applied (0 if empty)
	maxSeq uint64     // largest seq applied
	pins   []*walFile // other shards' WALs holding commit records for parts applied here
	refs   atomic.Int32
}

func newMemtable(walNum uint64) *memtable {
	m := &memtable{walNum: walNum, rnd: rand.New(rand.NewPCG(uint64(walNum), 0x9e3779b97f4a7c15))}
	m.head.next = make([]atomic.Pointer[memNode], memMaxHeight)
	m.height.Store(1)
	m.refs.Store(1)
	return m
}

func (m *memtable) randomHeight() int {
	h := 1
	for h < memMaxHeight && m.rnd.Uint32()&3 == 0 {
		h++
	}
	return h
}

// findGE returns the first node >= k, filling prev (if non-nil) with the
// predecessors at every level.
//
// It returns the node it compared at level 0, never a fresh load of
// x.next[0]: the writer may have linked a smaller node after x since.
func (m *memtable) findGE(k base.InternalKey, prev *[memMaxHeight]*memNode) *memNode {
	x := &m.head
	var next *memNode
	for level := int(m.height.Load()) - 1; level >= 0; level-- {
		for {
			next = x.next[level].Load()
			if next == nil || base.Compare(next.key, k) >= 0 {
				break
			}
			x = next
		}
		if prev != nil {
			prev[level] = x
		}
	}
	return next
}

// add inserts an entry. Only the shard worker calls it. key and value are
// owned by the memtable from now on.
func (m *memtable) add(k base.InternalKey, value []byte) {
	var prev [memMaxHeight]*memNode
	m.findGE(k, &prev)
	h := m.randomHeight()
	if cur := int(m.height.Load()); h > cur {
		for l := cur; l < h; l++ {
			prev[l] = &m.head
		}
		m.height.Store(int32(h))
	}
	n := &memNode{key: k, value: value, next: make([]atomic.Pointer[memNode], h)}
	for l := 0; l < h; l++ {
		n.next[l].Store(prev[l].next[l].Load())
	}
	for l := 0; l < h; l++ {
		prev[l].next[l].Store(n)
	}
	m.bytes.Add(int64(cap(k.UserKey)+len(value)) + memNodeOverhead + int64(h)*8)
	m.count.Add(1)
	if m.minSeq == 0 || k.Seq < m.minSeq {
		m.minSeq = k.Seq
	}
	if k.Seq > m.maxSeq {
		m.maxSeq = k.Seq
	}
}

// get returns the newest entry for userKey with seq <= snap.
func (m *memtable) get(userKey []byte, snap uint64) (*memNode, bool) {
	n := m.findGE(base.InternalKey{UserKey: userKey, Seq: snap, Kind: base.KindMax}, nil)
	if n == nil || !bytes.Equal(n.key.UserKey, userKey) {
		return nil, false
	}
	return n, true
}

func (m *memtable) empty() bool { return m.count.Load() == 0 }

// memIter walks a memtable in internal-key order.
type memIter struct {
	m *memtable
	n *memNode
}

func (it *memIter) First() { it.n = it.m.head.next[0].Load() }
func (it *memIter) SeekGE(userKey []byte) {
	it.n = it.m.findGE(base.InternalKey{UserKey: userKey, Seq: base.SeqMax, Kind: base.KindMax}, nil)
}
func (it *memIter) Next()                 { it.n = it.n.next[0].Load() }
func (it *memIter) Valid() bool           { return it.n != nil }
func (it *memIter) Key() base.InternalKey { return it.n.key }
func (it *memIter) Value() []byte         { return it.n.value }
func (it *memIter) Error() error          { return nil }
func (it *memIter) Close() error          { return nil }
