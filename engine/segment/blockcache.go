package segment

import (
	"sync"
)

// Block cache sizing.
const (
	blockCacheShardsMax = 16
	// blockCacheShardBytesMin keeps small caches from being split into
	// shards too small to hold a few blocks.
	blockCacheShardBytesMin = 1 << 20
	// blockCacheEntryOverhead is charged per cached block on top of its
	// length, for the entry, its map slot and list links.
	blockCacheEntryOverhead = 96
)

// BlockCache is a cache of verified data blocks shared by all Readers, keyed
// by (file number, block offset). It is sharded: each shard has its own
// mutex, replacement list and an equal part of the capacity. Replacement is
// CLOCK (second chance), the usual approximation of LRU: a hit only sets the
// entry's reference bit instead of moving it to the front of a list, which
// would touch two other random entries (cache misses) on every hit; eviction
// skips, and clears, referenced entries. Cached blocks are immutable and
// never recycled, so a block stays valid for whoever holds it after eviction
// (the garbage collector frees it).
//
// All methods are safe for concurrent use. A nil *BlockCache caches nothing.
type BlockCache struct {
	shards []blockCacheShard
	mask   uint64
}

// BlockCacheStats is a snapshot of a BlockCache's counters.
type BlockCacheStats struct {
	Hits, Misses  int64
	Blocks        int64 // blocks cached
	SizeBytes     int64 // bytes charged: block lengths plus per-block overhead
	CapacityBytes int64
}

type blockKey struct {
	fileNum, off uint64
}

type cacheEntry struct {
	key  blockKey
	data []byte
	ref  bool // referenced since the clock hand last passed
	// Links in the shard's clock ring and in the list of the same file's
	// entries (nil-terminated, head in files).
	prev, next   *cacheEntry
	fprev, fnext *cacheEntry
}

func (e *cacheEntry) charge() int64 { return int64(len(e.data)) + blockCacheEntryOverhead }

type blockCacheShard struct {
	mu    sync.Mutex
	m     map[blockKey]*cacheEntry
	files map[uint64]*cacheEntry
	// hand is the next eviction candidate in the clock ring (nil when
	// empty); hand.prev is the most recently inserted entry.
	hand     *cacheEntry
	size     int64
	capacity int64
	hits     int64
	misses   int64
	_        [64]byte // keep shards' mutexes on separate cache lines
}

// NewBlockCache returns a cache that holds at most capacityBytes of blocks
// (counting a small per-block overhead). A capacity <= 0 gives a cache that
// keeps nothing. Blocks larger than a shard's part of the capacity are not
// cached.
func NewBlockCache(capacityBytes int64) *BlockCache {
	capacityBytes = max(capacityBytes, 0)
	n := blockCacheShardsMax
	for n > 1 && capacityBytes/int64(n) < blockCacheShardBytesMin {
		n /= 2
	}
	c := &BlockCache{shards: make([]blockCacheShard, n), mask: uint64(n - 1)}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[blockKey]*cacheEntry)
		s.files = make(map[uint64]*cacheEntry)
		s.capacity = capacityBytes / int64(n)
	}
	return c
}

func (c *BlockCache) shard(k blockKey) *blockCacheShard {
	h := k.fileNum*0x9e3779b97f4a7c15 ^ k.off*0xc2b2ae3d27d4eb4f
	h ^= h >> 31
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return &c.shards[h&c.mask]
}

// get returns the cached block or nil, counting a hit or a miss.
func (c *BlockCache) get(fileNum, off uint64) []byte {
	k := blockKey{fileNum, off}
	s := c.shard(k)
	s.mu.Lock()
	e := s.m[k]
	if e == nil {
		s.misses++
		s.mu.Unlock()
		return nil
	}
	s.hits++
	if !e.ref {
		e.ref = true
	}
	b := e.data
	s.mu.Unlock()
	return b
}

// insert caches b (which must not be modified afterwards) and returns the
// block to use: b, or the block another reader cached first.
func (c *BlockCache) insert(fileNum, off uint64, b []byte) []byte {
	k := blockKey{fileNum, off}
	s := c.shard(k)
	e := &cacheEntry{key: k, data: b}
	if e.charge() > s.capacity {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[k]; old != nil {
		return old.data
	}
	s.m[k] = e
	s.link(e)
	if head := s.files[fileNum]; head != nil {
		head.fprev = e
		e.fnext = head
	}
	s.files[fileNum] = e
	s.size += e.charge()
	for s.size > s.capacity {
		s.evictOne()
	}
	return b
}

// Evict drops every cached block of fileNum. Call it when the file is
// deleted; file numbers must not be reused.
func (c *BlockCache) Evict(fileNum uint64) {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for e := s.files[fileNum]; e != nil; e = s.files[fileNum] {
			s.remove(e)
		}
		s.mu.Unlock()
	}
}

// Stats returns the cache's counters summed over its shards.
func (c *BlockCache) Stats() BlockCacheStats {
	var st BlockCacheStats
	if c == nil {
		return st
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		st.Blocks += int64(len(s.m))
		st.SizeBytes += s.size
		st.CapacityBytes += s.capacity
		s.mu.Unlock()
	}
	return st
}

// link inserts e just behind the hand, where the hand reaches it last.
func (s *blockCacheShard) link(e *cacheEntry) {
	if s.hand == nil {
		e.prev, e.next = e, e
		s.hand = e
		return
	}
	e.prev, e.next = s.hand.prev, s.hand
	e.prev.next = e
	s.hand.prev = e
}

// evictOne advances the hand past referenced entries, clearing their bits,
// and removes the first unreferenced one. It ends within two turns.
func (s *blockCacheShard) evictOne() {
	for s.hand.ref {
		s.hand.ref = false
		s.hand = s.hand.next
	}
	s.remove(s.hand)
}

// remove drops e from the map, the clock ring and its file's list.
func (s *blockCacheShard) remove(e *cacheEntry) {
	if e.next == e {
		s.hand = nil
	} else {
		if s.hand == e {
			s.hand = e.next
		}
		e.prev.next = e.next
		e.next.prev = e.prev
	}
	delete(s.m, e.key)
	if e.fprev != nil {
		e.fprev.fnext = e.fnext
	} else if e.fnext != nil {
		s.files[e.key.fileNum] = e.fnext
	} else {
		delete(s.files, e.key.fileNum)
	}
	if e.fnext != nil {
		e.fnext.fprev = e.fprev
	}
	s.size -= e.charge()
	*e = cacheEntry{}
}
