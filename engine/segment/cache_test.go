package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

func TestBlockCacheCapacity(t *testing.T) {
	const capacity = 64 << 10
	c := NewBlockCache(capacity)
	if n := len(c.shards); n != 1 {
		t.Fatalf("small cache has %d shards, want 1", n)
	}
	block := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000) }
	for i := range 1000 {
		b := block(i)
		if got := c.insert(uint64(i%3), uint64(i), b); &got[0] != &b[0] {
			t.Fatal("insert of a new block returned another block")
		}
		if st := c.Stats(); st.SizeBytes > capacity {
			t.Fatalf("after %d inserts size %d > capacity %d", i+1, st.SizeBytes, capacity)
		}
	}
	st := c.Stats()
	perBlock := int64(1000 + blockCacheEntryOverhead)
	if st.Blocks != capacity/perBlock || st.SizeBytes != st.Blocks*perBlock || st.CapacityBytes != capacity {
		t.Fatalf("stats %+v, want %d blocks", st, capacity/perBlock)
	}
	// The most recent blocks are cached, the oldest are not.
	if b := c.get(999%3, 999); !bytes.Equal(b, block(999)) {
		t.Fatal("newest block missing")
	}
	if b := c.get(0, 0); b != nil {
		t.Fatal("oldest block still cached")
	}
	st = c.Stats()
	if st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("hits, misses = %d, %d, want 1, 1", st.Hits, st.Misses)
	}

	// A hit on the oldest block (the clock hand) gives it a second chance:
	// the next eviction takes the block after it.
	oldest := 1000 - int(st.Blocks)
	if c.get(uint64(oldest%3), uint64(oldest)) == nil {
		t.Fatalf("block %d should be cached", oldest)
	}
	c.insert(5, 5000, block(5))
	if c.get(uint64(oldest%3), uint64(oldest)) == nil {
		t.Fatal("recently used block was evicted")
	}
	if c.get(uint64((oldest+1)%3), uint64(oldest+1)) != nil {
		t.Fatal("the unreferenced block after the hand was not evicted")
	}

	// A duplicate insert returns the cached block.
	dup := block(7)
	if got := c.insert(5, 5000, dup); &got[0] == &dup[0] {
		t.Fatal("duplicate insert replaced the cached block")
	}

	// A block larger than the shard capacity is not cached.
	big := make([]byte, capacity)
	c.insert(9, 0, big)
	if c.get(9, 0) != nil {
		t.Fatal("oversized block cached")
	}
}

func TestBlockCacheEvictFile(t *testing.T) {
	c := NewBlockCache(64 << 20)
	if n := len(c.shards); n != blockCacheShardsMax {
		t.Fatalf("%d shards, want %d", n, blockCacheShardsMax)
	}
	for f := range uint64(4) {
		for off := range uint64(100) {
			c.insert(f, off*4096, []byte{byte(f), byte(off)})
		}
	}
	c.Evict(2)
	c.Evict(42) // unknown file: no-op
	for f := range uint64(4) {
		for off := range uint64(100) {
			b := c.get(f, off*4096)
			if (b == nil) != (f == 2) {
				t.Fatalf("file %d block %d: cached=%v after Evict(2)", f, off, b != nil)
			}
			if b != nil && (b[0] != byte(f) || b[1] != byte(off)) {
				t.Fatalf("file %d block %d: wrong block %v", f, off, b)
			}
		}
	}
	st := c.Stats()
	if st.Blocks != 300 || st.SizeBytes != 300*(2+blockCacheEntryOverhead) {
		t.Fatalf("stats after evict: %+v", st)
	}
	for f := range uint64(4) {
		c.Evict(f)
	}
	if st := c.Stats(); st.Blocks != 0 || st.SizeBytes != 0 {
		t.Fatalf("stats after evicting all: %+v", st)
	}
	for i := range c.shards {
		if len(c.shards[i].files) != 0 {
			t.Fatalf("shard %d keeps file lists: %v", i, c.shards[i].files)
		}
	}
}

func TestBlockCacheZeroAndNil(t *testing.T) {
	c := NewBlockCache(0)
	c.insert(1, 1, []byte("x"))
	if c.get(1, 1) != nil {
		t.Fatal("zero-capacity cache kept a block")
	}
	var nilCache *BlockCache
	nilCache.Evict(1)
	if st := nilCache.Stats(); st != (BlockCacheStats{}) {
		t.Fatalf("nil cache stats %+v", st)
	}
}

// TestBlockCacheReaderHits checks that a reader's second pass is served from
// the cache without reading the file.
func TestBlockCacheReaderHits(t *testing.T) {
	es := genEntries(rand.New(rand.NewPCG(1, 2)), 500)
	b, props := buildSegment(t, WriterOptions{BlockSize: 512, BloomBitsPerKey: 10, RestartInterval: 16}, es)
	c := NewBlockCache(8 << 20)
	f := newMemFile(b)
	r, err := Open(f, 1, c)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkScan(t, r, es)
	if st := c.Stats(); uint64(st.Misses) != props.DataBlocks || uint64(st.Blocks) != props.DataBlocks {
		t.Fatalf("after a cold scan: %+v, want %d misses and blocks", st, props.DataBlocks)
	}
	reads := f.reads.Load()
	checkScan(t, r, es)
	for _, e := range es {
		if _, _, found, err := r.Get(e.key.UserKey, e.key.Seq); !found || err != nil {
			t.Fatalf("get %s: %v %v", e.key, found, err)
		}
	}
	if n := f.reads.Load(); n != reads {
		t.Fatalf("warm reads hit the file %d times", n-reads)
	}
	c.Evict(1)
	checkScan(t, r, es)
	if f.reads.Load() == reads {
		t.Fatal("scan after Evict did not read the file")
	}
}

// tableCacheHarness opens segments from memory and counts opens.
type tableCacheHarness struct {
	seg    []byte
	opens  atomic.Int64
	mu     sync.Mutex
	files  map[uint64][]*memFile
	gate   chan struct{} // if non-nil, open waits on it
	failOn uint64
}

func newTableCacheHarness(t *testing.T) *tableCacheHarness {
	b, _ := buildSegment(t, DefaultWriterOptions(), []entry{{key: base.InternalKey{UserKey: []byte("k"), Seq: 1, Kind: base.KindSet}, value: []byte("v")}})
	return &tableCacheHarness{seg: b, files: make(map[uint64][]*memFile), failOn: ^uint64(0)}
}

func (h *tableCacheHarness) open(fileNum uint64) (*Reader, error) {
	h.opens.Add(1)
	if h.gate != nil {
		<-h.gate
	}
	if fileNum == h.failOn {
		return nil, fmt.Errorf("open %d: %w", fileNum, errInjected)
	}
	f := newMemFile(h.seg)
	h.mu.Lock()
	h.files[fileNum] = append(h.files[fileNum], f)
	h.mu.Unlock()
	return Open(f, fileNum, nil)
}

var errInjected = errors.New("injected")

// openFiles counts the files opened and not closed.
func (h *tableCacheHarness) openFiles() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, fs := range h.files {
		for _, f := range fs {
			if !f.closed.Load() {
				n++
			}
		}
	}
	return n
}

func mustGet(t *testing.T, r *Reader) {
	t.Helper()
	if err := getK(r); err != nil {
		t.Fatal(err)
	}
}

// getK checks the one entry of a harness segment.
func getK(r *Reader) error {
	v, _, found, err := r.Get([]byte("k"), 1)
	if err != nil || !found || string(v) != "v" {
		return fmt.Errorf("get from reader %d: %q %v %v", r.FileNum(), v, found, err)
	}
	return nil
}

func TestTableCacheCapacity(t *testing.T) {
	if _, err := NewTableCache(0, func(uint64) (*Reader, error) { return nil, nil }); err == nil {
		t.Fatal("capacity 0 accepted")
	}
	if _, err := NewTableCache(1, nil); err == nil {
		t.Fatal("nil open accepted")
	}
	h := newTableCacheHarness(t)
	c, err := NewTableCache(4, h.open)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(20) {
		r, release, err := c.Acquire(i)
		if err != nil {
			t.Fatal(err)
		}
		mustGet(t, r)
		release()
		if c.Len() > 4 || h.openFiles() > 4 {
			t.Fatalf("after file %d: %d cached, %d open files; capacity 4", i, c.Len(), h.openFiles())
		}
	}
	// Files 16..19 are cached; 15 is not.
	opens := h.opens.Load()
	for i := uint64(16); i < 20; i++ {
		_, release, _ := c.Acquire(i)
		release()
	}
	if h.opens.Load() != opens {
		t.Fatal("cached files were reopened")
	}
	_, release, _ := c.Acquire(15)
	release()
	if h.opens.Load() != opens+1 {
		t.Fatal("evicted file was not reopened")
	}
	// LRU: 15 was just used, so acquiring a new file evicts 16, not 15.
	_, release, _ = c.Acquire(100)
	release()
	opens = h.opens.Load()
	_, release, _ = c.Acquire(15)
	release()
	if h.opens.Load() != opens {
		t.Fatal("recently used file was evicted")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.openFiles(); n != 0 {
		t.Fatalf("%d files open after Close", n)
	}
	if _, _, err := c.Acquire(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("acquire after close: %v", err)
	}
}

func TestTableCacheEvictedWhileInUse(t *testing.T) {
	h := newTableCacheHarness(t)
	c, _ := NewTableCache(1, h.open)
	r1, release1, err := c.Acquire(1)
	if err != nil {
		t.Fatal(err)
	}
	r1again, release1again, _ := c.Acquire(1)
	if r1again != r1 {
		t.Fatal("second Acquire opened another reader")
	}
	it := r1.NewIter()
	// Acquiring file 2 evicts file 1 from the cache (capacity 1).
	r2, release2, _ := c.Acquire(2)
	mustGet(t, r2)
	release2()
	if c.Len() != 1 {
		t.Fatalf("Len = %d", c.Len())
	}
	f1 := h.files[1][0]
	mustGet(t, r1)
	if !it.First() || string(it.Value()) != "v" {
		t.Fatalf("iterator over evicted reader: %v", it.Error())
	}
	release1()
	if f1.closed.Load() {
		t.Fatal("reader closed while still referenced")
	}
	mustGet(t, r1again)
	it.Close()
	release1again()
	if !f1.closed.Load() {
		t.Fatal("evicted reader not closed after its last release")
	}

	// Evict of a file in use: same rule.
	r3, release3, _ := c.Acquire(3)
	c.Evict(3)
	mustGet(t, r3)
	if f := h.files[3][0]; f.closed.Load() {
		t.Fatal("Evict closed a reader in use")
	}
	release3()
	if f := h.files[3][0]; !f.closed.Load() {
		t.Fatal("evicted reader not closed on release")
	}
	// Close with a reader in use.
	r4, release4, _ := c.Acquire(4)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mustGet(t, r4)
	release4()
	if h.openFiles() != 0 {
		t.Fatalf("%d files open", h.openFiles())
	}
}

func TestTableCacheSingleflight(t *testing.T) {
	h := newTableCacheHarness(t)
	h.gate = make(chan struct{})
	c, _ := NewTableCache(8, h.open)
	const n = 8
	var wg sync.WaitGroup
	readers := make([]*Reader, n)
	for i := range n {
		wg.Go(func() {
			r, release, err := c.Acquire(7)
			if err != nil {
				t.Error(err)
				return
			}
			readers[i] = r
			if err := getK(r); err != nil {
				t.Error(err)
			}
			release()
		})
	}
	// Every Acquire joins the pending open before it completes.
	waitRefs(t, c, 7, n+1)
	close(h.gate)
	wg.Wait()
	if got := h.opens.Load(); got != 1 {
		t.Fatalf("file opened %d times", got)
	}
	for _, r := range readers {
		if r != readers[0] {
			t.Fatal("Acquires got different readers")
		}
	}
	if c.Len() != 1 || h.openFiles() != 1 {
		t.Fatalf("Len %d, open files %d", c.Len(), h.openFiles())
	}

	// A failed open reaches every waiter and is not cached.
	h.gate = make(chan struct{})
	h.failOn = 9
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, _, err := c.Acquire(9)
			errs <- err
		})
	}
	waitRefs(t, c, 9, n+1)
	close(h.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, errInjected) {
			t.Fatalf("acquire of failing file: %v", err)
		}
	}
	opens := h.opens.Load()
	h.failOn = ^uint64(0)
	r, release, err := c.Acquire(9)
	if err != nil || h.opens.Load() != opens+1 {
		t.Fatalf("retry after failed open: %v (opens %d -> %d)", err, opens, h.opens.Load())
	}
	mustGet(t, r)
	release()
	c.Close()
}

// waitRefs waits until fileNum's entry (pending or loaded) holds refs
// references: the cache's own and one per Acquire that has joined it.
func waitRefs(t *testing.T, c *TableCache, fileNum uint64, refs int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		e := c.mu.m[fileNum]
		got := 0
		if e != nil {
			got = e.refs
		}
		c.mu.Unlock()
		if got == refs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("file %d: %d references, want %d", fileNum, got, refs)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTableCacheConcurrent hammers Acquire, Evict and release (run with -race).
func TestTableCacheConcurrent(t *testing.T) {
	h := newTableCacheHarness(t)
	c, _ := NewTableCache(3, h.open)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 500 {
				n := uint64(rng.IntN(8))
				if rng.IntN(10) == 0 {
					c.Evict(n)
					continue
				}
				r, release, err := c.Acquire(n)
				if err != nil {
					t.Error(err)
					return
				}
				if err := getK(r); err != nil {
					t.Error(err)
				}
				release()
			}
		})
	}
	wg.Wait()
	if c.Len() > 3 || h.openFiles() > 3 {
		t.Fatalf("Len %d, open files %d, capacity 3", c.Len(), h.openFiles())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.openFiles(); n != 0 {
		t.Fatalf("%d files open after Close", n)
	}
}
