package server

import (
	"context"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/router"
)

// MemBackend is an in-memory Backend: one map with expiries behind one
// mutex, presenting a single-node cluster view (SetClusterView changes it).
// It is the twin EngineBackend is tested against, and a backend for tests of
// code above the server. It is safe for concurrent use.
type MemBackend struct {
	now func() time.Time

	mu       sync.Mutex
	items    map[string]memItem
	byBucket map[uint16]map[string]struct{}
	view     ClusterView
	seq      uint64 // last version given out
}

type memItem struct {
	v   []byte
	at  int64  // Unix ms, 0 = none
	ver uint64 // WATCH version: set from MemBackend.seq by put
}

// NewMemBackend returns an empty MemBackend using clock now (nil: time.Now)
// for expiry, with SingleNodeView("mem", "127.0.0.1:6379").
func NewMemBackend(now func() time.Time) *MemBackend {
	if now == nil {
		now = time.Now
	}
	return &MemBackend{
		now:      now,
		items:    map[string]memItem{},
		byBucket: map[uint16]map[string]struct{}{},
		view:     SingleNodeView("mem", "127.0.0.1:6379"),
	}
}

// SetClusterView replaces the view ClusterView returns.
func (m *MemBackend) SetClusterView(v ClusterView) {
	m.mu.Lock()
	m.view = v
	m.mu.Unlock()
}

// ClusterView implements Backend.
func (m *MemBackend) ClusterView() ClusterView {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// lookup returns key's live item; an expired one is deleted. m.mu is held.
func (m *MemBackend) lookup(key string) (memItem, bool) {
	it, ok := m.items[key]
	if ok && it.at != 0 && it.at <= m.now().UnixMilli() {
		m.remove(key)
		return memItem{}, false
	}
	return it, ok
}

func (m *MemBackend) put(key string, it memItem) {
	if it.at != 0 && it.at <= m.now().UnixMilli() {
		m.remove(key)
		return
	}
	m.seq++
	it.ver = m.seq
	if _, ok := m.items[key]; !ok {
		b := router.BucketString(key)
		set := m.byBucket[b]
		if set == nil {
			set = map[string]struct{}{}
			m.byBucket[b] = set
		}
		set[key] = struct{}{}
	}
	m.items[key] = it
}

func (m *MemBackend) remove(key string) {
	if _, ok := m.items[key]; !ok {
		return
	}
	delete(m.items, key)
	b := router.BucketString(key)
	delete(m.byBucket[b], key)
	if len(m.byBucket[b]) == 0 {
		delete(m.byBucket, b)
	}
}

// Get implements Backend.
func (m *MemBackend) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.lookup(string(key))
	if !ok {
		return nil, 0, ErrNotFound
	}
	return it.v, it.at, nil
}

// Set implements Backend.
func (m *MemBackend) Set(ctx context.Context, key, value []byte, opt SetOptions) (SetResult, error) {
	if err := ctx.Err(); err != nil {
		return SetResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(key)
	old, found := m.lookup(k)
	r := SetResult{}
	if opt.Get && found {
		r.Old, r.OldFound = old.v, true
	}
	if (opt.NX && found) || (opt.XX && !found) {
		return r, nil
	}
	at := opt.ExpireAtMs
	if opt.KeepTTL {
		at = old.at
	}
	m.put(k, memItem{v: slices.Clone(value), at: at})
	r.Applied = true
	return r, nil
}

// Del implements Backend.
func (m *MemBackend) Del(ctx context.Context, keys ...[]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := m.lookup(string(k)); ok {
			m.remove(string(k))
			n++
		}
	}
	return n, nil
}

// Exists implements Backend.
func (m *MemBackend) Exists(ctx context.Context, keys ...[]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := m.lookup(string(k)); ok {
			n++
		}
	}
	return n, nil
}

// MGet implements Backend.
func (m *MemBackend) MGet(ctx context.Context, keys ...[]byte) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if it, ok := m.lookup(string(k)); ok {
			out[i] = it.v
		}
	}
	return out, nil
}

// MSet implements Backend.
func (m *MemBackend) MSet(ctx context.Context, pairs ...KV) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range pairs {
		m.put(string(p.Key), memItem{v: slices.Clone(p.Value)})
	}
	return nil
}

// IncrBy implements Backend.
func (m *MemBackend) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(key)
	it, _ := m.lookup(k)
	v, err := addInt(it.v, delta)
	if err != nil {
		return 0, err
	}
	m.put(k, memItem{v: strconv.AppendInt(nil, v, 10), at: it.at})
	return v, nil
}

// addInt parses cur (nil: 0) as a canonical int64 and adds delta.
func addInt(cur []byte, delta int64) (int64, error) {
	var v int64
	if cur != nil {
		var ok bool
		if v, ok = parseInt(cur); !ok {
			return 0, ErrNotInteger
		}
	}
	if (delta > 0 && v > math.MaxInt64-delta) || (delta < 0 && v < math.MinInt64-delta) {
		return 0, ErrOverflow
	}
	return v + delta, nil
}

// Expire implements Backend.
func (m *MemBackend) Expire(ctx context.Context, key []byte, atMs int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(key)
	it, ok := m.lookup(k)
	if !ok {
		return false, nil
	}
	it.at = atMs
	m.put(k, it) // removes it when atMs is not in the future
	return true, nil
}

// Persist implements Backend.
func (m *MemBackend) Persist(ctx context.Context, key []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(key)
	it, ok := m.lookup(k)
	if !ok || it.at == 0 {
		return false, nil
	}
	it.at = 0
	m.put(k, it)
	return true, nil
}

// ExpireTime implements Backend.
func (m *MemBackend) ExpireTime(ctx context.Context, key []byte) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.lookup(string(key))
	if !ok {
		return 0, ErrNotFound
	}
	return it.at, nil
}

// DBSize implements Backend.
func (m *MemBackend) DBSize(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixMilli()
	n := int64(0)
	for _, it := range m.items {
		if it.at == 0 || it.at > now {
			n++
		}
	}
	return n, nil
}

// Scan implements Backend with EngineBackend's cursor: the next bucket to
// visit, whole buckets at a time.
func (m *MemBackend) Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (uint64, [][]byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys [][]byte
	var batch []string
	seen := 0
	for b := cursor; b < router.NumBuckets; b++ {
		batch = batch[:0]
		for k := range m.byBucket[uint16(b)] {
			batch = append(batch, k)
		}
		slices.Sort(batch)
		seen += len(batch)
		for _, k := range batch {
			if _, ok := m.lookup(k); ok && Match(pattern, []byte(k)) {
				keys = append(keys, []byte(k))
			}
		}
		if seen >= count {
			return nextCursor(b), keys, nil
		}
	}
	return 0, keys, nil
}

// nextCursor is the cursor after bucket b: b+1, or 0 past the last bucket.
func nextCursor(b uint64) uint64 {
	if b+1 >= router.NumBuckets {
		return 0
	}
	return b + 1
}

// Versions implements TxBackend.
func (m *MemBackend) Versions(ctx context.Context, keys [][]byte) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, len(keys))
	for i, k := range keys {
		if it, ok := m.lookup(string(k)); ok {
			out[i] = it.ver
		}
	}
	return out, nil
}

// Exec implements TxBackend under the backend's one mutex.
func (m *MemBackend) Exec(ctx context.Context, req *TxRequest, run TxFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	items := make(map[string]TxItem, len(req.Keys))
	for _, k := range req.Keys {
		if it, ok := m.lookup(string(k)); ok {
			items[string(k)] = TxItem{Value: it.v, ExpireAtMs: it.at, Found: true}
		}
	}
	for _, w := range req.Watch {
		it, _ := m.lookup(string(w.Key))
		if it.ver != w.Version {
			return ErrWatchFailed
		}
	}
	writes, err := run(items)
	if err != nil {
		return err
	}
	for _, w := range writes {
		if w.Delete {
			m.remove(string(w.Key))
		} else {
			m.put(string(w.Key), memItem{v: slices.Clone(w.Value), at: w.ExpireAtMs})
		}
	}
	return nil
}
