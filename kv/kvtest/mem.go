package kvtest

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/router"
)

// Mem is the in-memory twin of kv.Engine: one map with expiries behind
// one mutex, with the same methods and the same results (Run checks
// both). Tests of the code above the keyspace (the server, benchmarks)
// use it where an engine would only cost time. It is safe for concurrent
// use.
type Mem struct {
	now func() time.Time

	mu       sync.Mutex
	items    map[string]memItem
	byBucket map[uint16]map[string]struct{}
	seq      uint64 // last version given out
}

type memItem struct {
	v   []byte
	at  int64  // Unix ms, 0 = none
	ver uint64 // WATCH version: set from Mem.seq by put
}

// NewMem returns an empty Mem using clock now (nil: time.Now) for expiry.
func NewMem(now func() time.Time) *Mem {
	if now == nil {
		now = time.Now
	}
	return &Mem{
		now:      now,
		items:    map[string]memItem{},
		byBucket: map[uint16]map[string]struct{}{},
	}
}

// lookup returns key's live item; an expired one is deleted. m.mu is held.
func (m *Mem) lookup(key string) (memItem, bool) {
	it, ok := m.items[key]
	if ok && it.at != 0 && it.at <= m.now().UnixMilli() {
		m.remove(key)
		return memItem{}, false
	}
	return it, ok
}

func (m *Mem) put(key string, it memItem) {
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

func (m *Mem) remove(key string) {
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

// Get behaves as kv.Engine.Get.
func (m *Mem) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.lookup(string(key))
	if !ok {
		return nil, 0, kv.ErrNotFound
	}
	return it.v, it.at, nil
}

// Set behaves as kv.Engine.Set.
func (m *Mem) Set(ctx context.Context, key, value []byte, opt kv.SetOptions) (kv.SetResult, error) {
	if err := ctx.Err(); err != nil {
		return kv.SetResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(key)
	old, found := m.lookup(k)
	r := kv.SetResult{}
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

// Del behaves as kv.Engine.Del.
func (m *Mem) Del(ctx context.Context, keys ...[]byte) (int, error) {
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

// Exists behaves as kv.Engine.Exists.
func (m *Mem) Exists(ctx context.Context, keys ...[]byte) (int, error) {
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

// MGet behaves as kv.Engine.MGet.
func (m *Mem) MGet(ctx context.Context, keys ...[]byte) ([][]byte, error) {
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

// MSet behaves as kv.Engine.MSet.
func (m *Mem) MSet(ctx context.Context, pairs ...kv.KV) error {
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

// IncrBy behaves as kv.Engine.IncrBy.
func (m *Mem) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(key)
	it, _ := m.lookup(k)
	v, err := kv.AddInt(it.v, delta)
	if err != nil {
		return 0, err
	}
	m.put(k, memItem{v: strconv.AppendInt(nil, v, 10), at: it.at})
	return v, nil
}

// Expire behaves as kv.Engine.Expire.
func (m *Mem) Expire(ctx context.Context, key []byte, atMs int64) (bool, error) {
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

// Persist behaves as kv.Engine.Persist.
func (m *Mem) Persist(ctx context.Context, key []byte) (bool, error) {
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

// ExpireTime behaves as kv.Engine.ExpireTime.
func (m *Mem) ExpireTime(ctx context.Context, key []byte) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.lookup(string(key))
	if !ok {
		return 0, kv.ErrNotFound
	}
	return it.at, nil
}

// DBSize behaves as kv.Engine.DBSize.
func (m *Mem) DBSize(ctx context.Context) (int64, error) {
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

// Scan behaves as kv.Engine.Scan, with its cursor: the next bucket to
// visit, whole buckets at a time.
func (m *Mem) Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (uint64, [][]byte, error) {
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
			if _, ok := m.lookup(k); ok && kv.Match(pattern, []byte(k)) {
				keys = append(keys, []byte(k))
			}
		}
		if seen >= count {
			if b+1 >= router.NumBuckets {
				return 0, keys, nil
			}
			return b + 1, keys, nil
		}
	}
	return 0, keys, nil
}

// Versions behaves as kv.Engine.Versions.
func (m *Mem) Versions(ctx context.Context, keys [][]byte) ([]uint64, error) {
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

// Exec behaves as kv.Engine.Exec, under Mem's one mutex.
func (m *Mem) Exec(ctx context.Context, req *kv.TxRequest, run kv.TxFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	items := make(map[string]kv.TxItem, len(req.Keys))
	for _, k := range req.Keys {
		if it, ok := m.lookup(string(k)); ok {
			items[string(k)] = kv.TxItem{Value: it.v, ExpireAtMs: it.at, Found: true}
		}
	}
	for _, w := range req.Watch {
		it, _ := m.lookup(string(w.Key))
		if it.ver != w.Version {
			return kv.ErrWatchFailed
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
