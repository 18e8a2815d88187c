package segment

import (
	"errors"
	"fmt"
	"sync"
)

// TableCache is an LRU cache of open Readers, bounding the number of open
// segment files. Readers are reference counted: Acquire hands out a
// reference, and a Reader that leaves the cache (LRU eviction, Evict, Close)
// is closed only when its last reference is released. Concurrent Acquires of
// a file that is not open open it once.
//
// All methods are safe for concurrent use. The open function runs without
// the cache's mutex held, possibly concurrently for different files.
type TableCache struct {
	open     func(fileNum uint64) (*Reader, error)
	capacity int

	mu struct {
		sync.Mutex
		m        map[uint64]*tableEntry
		lru      tableEntry // sentinel of the loaded entries; lru.next is the most recent
		n        int        // entries in lru
		closed   bool
		closeErr error // first error closing a released reader
	}
}

type tableEntry struct {
	fileNum uint64
	r       *Reader
	err     error
	ready   chan struct{} // closed once open has returned
	loaded  bool
	// refs counts the outstanding Acquires plus one while the entry is in
	// the cache. Guarded by TableCache.mu.
	refs       int
	inCache    bool
	prev, next *tableEntry
	release    func()
}

// NewTableCache returns a cache of at most capacity open Readers (use
// DefaultTableCacheCapacity if unsure); open opens the Reader of a file.
func NewTableCache(capacity int, open func(fileNum uint64) (*Reader, error)) (*TableCache, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("segment: table cache capacity (%d) must be greater than 0", capacity)
	}
	if open == nil {
		return nil, errors.New("segment: table cache needs an open function")
	}
	c := &TableCache{open: open, capacity: capacity}
	c.mu.m = make(map[uint64]*tableEntry)
	c.mu.lru.next, c.mu.lru.prev = &c.mu.lru, &c.mu.lru
	return c, nil
}

// Acquire returns the Reader of fileNum, opening it if it is not cached, and
// a function that releases it. The caller must call release exactly once,
// after its last use of the Reader (including iterators). An open error is
// returned to every Acquire waiting on that open and is not cached.
func (c *TableCache) Acquire(fileNum uint64) (r *Reader, release func(), err error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("segment: acquire %06d: table cache: %w", fileNum, ErrClosed)
	}
	if e := c.mu.m[fileNum]; e != nil {
		e.refs++
		if e.loaded {
			if c.mu.lru.next != e {
				e.unlink()
				c.pushFront(e)
			}
			c.mu.Unlock()
			return e.r, e.release, nil
		}
		c.mu.Unlock()
		<-e.ready
		if e.err != nil {
			e.release()
			return nil, nil, e.err
		}
		return e.r, e.release, nil
	}
	e := &tableEntry{fileNum: fileNum, ready: make(chan struct{}), refs: 2, inCache: true}
	e.release = func() { c.unref(e) }
	c.mu.m[fileNum] = e
	c.mu.Unlock()

	r, err = c.open(fileNum)
	if err == nil && r == nil {
		err = fmt.Errorf("segment: table cache: open of %06d returned no reader and no error", fileNum)
	}

	var toClose []*Reader
	c.mu.Lock()
	e.r, e.err, e.loaded = r, err, true
	if e.inCache { // not evicted while opening
		if err != nil {
			toClose = c.dropLocked(e, toClose)
		} else {
			c.pushFront(e)
			c.mu.n++
			for c.mu.n > c.capacity {
				toClose = c.dropLocked(c.mu.lru.prev, toClose)
			}
		}
	}
	close(e.ready)
	c.mu.Unlock()
	c.closeReaders(toClose)
	if err != nil {
		e.release()
		return nil, nil, err
	}
	return r, e.release, nil
}

// Evict removes fileNum from the cache (call it when the file is deleted).
// Its Reader is closed once every reference is released. Evicting a file
// that is being opened makes the open's result leave the cache when done.
func (c *TableCache) Evict(fileNum uint64) {
	c.mu.Lock()
	var toClose []*Reader
	if e := c.mu.m[fileNum]; e != nil {
		toClose = c.dropLocked(e, toClose)
	}
	c.mu.Unlock()
	c.closeReaders(toClose)
}

// Len returns the number of open Readers in the cache.
func (c *TableCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.n
}

// Close empties the cache and makes later Acquires fail with ErrClosed.
// Readers still referenced are closed when released. Close returns the
// first error from closing a Reader, including earlier closes triggered by
// eviction or release.
func (c *TableCache) Close() error {
	c.mu.Lock()
	c.mu.closed = true
	var toClose []*Reader
	for _, e := range c.mu.m {
		toClose = c.dropLocked(e, toClose)
	}
	c.mu.Unlock()
	c.closeReaders(toClose)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.closeErr
}

// dropLocked takes e out of the cache and drops the cache's reference,
// appending e's Reader to toClose if that was the last one.
func (c *TableCache) dropLocked(e *tableEntry, toClose []*Reader) []*Reader {
	if !e.inCache {
		return toClose
	}
	e.inCache = false
	delete(c.mu.m, e.fileNum)
	if e.prev != nil {
		e.unlink()
		c.mu.n--
	}
	return c.derefLocked(e, toClose)
}

func (c *TableCache) derefLocked(e *tableEntry, toClose []*Reader) []*Reader {
	e.refs--
	if e.refs < 0 {
		panic(fmt.Sprintf("segment: table cache: file %06d released more times than acquired", e.fileNum))
	}
	if e.refs == 0 && e.r != nil {
		toClose = append(toClose, e.r)
		e.r = nil
	}
	return toClose
}

func (c *TableCache) unref(e *tableEntry) {
	c.mu.Lock()
	toClose := c.derefLocked(e, nil)
	c.mu.Unlock()
	c.closeReaders(toClose)
}

// closeReaders closes readers outside the mutex, remembering the first error.
func (c *TableCache) closeReaders(rs []*Reader) {
	for _, r := range rs {
		if err := r.Close(); err != nil {
			c.mu.Lock()
			if c.mu.closeErr == nil {
				c.mu.closeErr = fmt.Errorf("segment: close %06d: %w", r.FileNum(), err)
			}
			c.mu.Unlock()
		}
	}
}

func (c *TableCache) pushFront(e *tableEntry) {
	e.prev, e.next = &c.mu.lru, c.mu.lru.next
	c.mu.lru.next.prev = e
	c.mu.lru.next = e
}

func (e *tableEntry) unlink() {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}
