package server

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/router"
)

// lockStripes is the number of key locks of an EngineBackend.
const lockStripes = 1024

// EngineBackend is a Backend over a local *engine.Store that serves every
// key itself (key → router.Bucket → engine bucket): a single node's backend,
// which the node layer wraps with ownership checks and forwarding.
//
// Atomicity: every write (SET with or without conditions, DEL, MSET, INCR,
// EXPIRE, PERSIST) holds the locks of its keys' stripes (a key hashes to one
// of 1024 stripes; multi-key writes take them in ascending order) across its
// read-modify-write until the engine has applied it in commit order
// (engine.Store.WriteApplied); reads under the lock see applied writes
// (GetLatestItem). The stripes are released before the fsync, so writers of
// one hot key share group commits; each still replies only once its write is
// durable, which implies every earlier write of the key is durable too.
// Writes of one key are therefore linearizable; plain reads take no lock and
// see durable, published state.
// Lock waits honour ctx. MSET and DEL commit as one engine batch (atomic
// even across shards); MGET reads one engine snapshot.
type EngineBackend struct {
	st        *engine.Store
	now       func() time.Time
	seed      maphash.Seed
	locks     [lockStripes]chan struct{}
	view      atomic.Pointer[ClusterView]
	guard     KeyGuard
	recheck   func(keys ...[]byte) error
	onApplied func(bucket uint16, key []byte)
}

// SetOnApplied installs f, called for every key a write of this backend
// has applied, before the key's lock is released (so a reader that takes
// the lock afterwards finds f's effect). The node records keys of buckets
// being migrated with it. Call it before the backend serves anything.
func (e *EngineBackend) SetOnApplied(f func(bucket uint16, key []byte)) { e.onApplied = f }

// Barrier takes and releases every stripe lock: every write that held one
// when Barrier was called has been applied (and reported to OnApplied)
// when it returns.
func (e *EngineBackend) Barrier(ctx context.Context) error {
	for i := range e.locks {
		select {
		case e.locks[i] <- struct{}{}:
			<-e.locks[i]
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// KeyGuard is called before a key is read or written (for writes, under the
// key's stripe lock). It may wait (honouring ctx) and fails the operation
// with its error. The node uses it to keep keys of prepared transactions
// out of reach until the transaction is resolved.
type KeyGuard func(ctx context.Context, keys ...[]byte) error

// SetGuard installs g. Call it before the backend serves anything.
func (e *EngineBackend) SetGuard(g KeyGuard) { e.guard = g }

// SetRecheck installs f, which reads call again after reading (without
// a lock): the guard before the read may have passed just before the
// key's bucket switched owner, and the value read is then only good if f
// still passes — the node checks that the bucket is neither fenced nor
// owned elsewhere now. Call it before the backend serves anything.
func (e *EngineBackend) SetRecheck(f func(keys ...[]byte) error) { e.recheck = f }

// checkAfterRead is the read's second check (SetRecheck).
func (e *EngineBackend) checkAfterRead(keys ...[]byte) error {
	if e.recheck == nil {
		return nil
	}
	return e.recheck(keys...)
}

func (e *EngineBackend) check(ctx context.Context, keys ...[]byte) error {
	if e.guard == nil {
		return nil
	}
	return e.guard(ctx, keys...)
}

// LockKeys takes the stripe locks of keys (ascending, honouring ctx), as
// every write of the backend does; the returned func releases them. The
// node holds them while it prepares a transaction on those keys.
func (e *EngineBackend) LockKeys(ctx context.Context, keys ...[]byte) (func(), error) {
	return e.lock(ctx, keys...)
}

// NewEngineBackend returns a backend over st. now must be the clock st was
// opened with (engine.Config.Now), nil meaning time.Now. Its cluster view is
// SingleNodeView("local", "") until SetClusterView.
func NewEngineBackend(st *engine.Store, now func() time.Time) *EngineBackend {
	if now == nil {
		now = time.Now
	}
	e := &EngineBackend{st: st, now: now, seed: maphash.MakeSeed()}
	for i := range e.locks {
		e.locks[i] = make(chan struct{}, 1)
	}
	v := SingleNodeView("local", "")
	e.view.Store(&v)
	return e
}

// SetClusterView replaces the view ClusterView returns.
func (e *EngineBackend) SetClusterView(v ClusterView) { e.view.Store(&v) }

// ClusterView implements Backend.
func (e *EngineBackend) ClusterView() ClusterView { return *e.view.Load() }

// lock takes the stripes of keys in ascending order; the returned func
// releases them.
func (e *EngineBackend) lock(ctx context.Context, keys ...[]byte) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err // select below would pick a free stripe at random
	}
	var buf [8]int
	idx := buf[:0]
	for _, k := range keys {
		idx = append(idx, int(maphash.Bytes(e.seed, k)%lockStripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for i, s := range idx {
		select {
		case e.locks[s] <- struct{}{}:
		case <-ctx.Done():
			for _, t := range idx[:i] {
				<-e.locks[t]
			}
			return nil, ctx.Err()
		}
	}
	released := false
	return func() { // idempotent: commit releases early, the deferred call is then a no-op
		if released {
			return
		}
		released = true
		for _, s := range idx {
			<-e.locks[s]
		}
	}, nil
}

func (e *EngineBackend) item(key []byte) (engine.Item, bool, error) {
	it, err := e.st.GetItem(router.Bucket(key), key)
	if errors.Is(err, engine.ErrNotFound) {
		return engine.Item{}, false, nil
	}
	if err != nil {
		return engine.Item{}, false, err
	}
	return it, true, nil
}

// latest reads key including writes applied but not yet durable: only
// under the key's stripe lock, where it sees the previous holder's write.
func (e *EngineBackend) latest(key []byte) (engine.Item, bool, error) {
	it, err := e.st.GetLatestItem(router.Bucket(key), key)
	if errors.Is(err, engine.ErrNotFound) {
		return engine.Item{}, false, nil
	}
	if err != nil {
		return engine.Item{}, false, err
	}
	return it, true, nil
}

// commit applies b in commit order, releases the stripes (unlock) and then
// waits until b is durable: writers of one key queue only for the apply,
// not for the fsync, so they share group commits.
func (e *EngineBackend) commit(ctx context.Context, b *engine.Batch, unlock func()) error {
	wait, err := e.st.WriteApplied(ctx, b)
	if err == nil && e.onApplied != nil {
		b.ForEachKey(e.onApplied)
	}
	unlock()
	if err != nil {
		return err
	}
	return wait()
}

func (e *EngineBackend) write(ctx context.Context, key, value []byte, atMs int64, unlock func()) error {
	var b engine.Batch
	b.SetWithExpiry(router.Bucket(key), key, value, atMs)
	return e.commit(ctx, &b, unlock)
}

// Get implements Backend.
func (e *EngineBackend) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	if err := e.check(ctx, key); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	it, ok, err := e.item(key)
	if err != nil {
		return nil, 0, err
	}
	if err := e.checkAfterRead(key); err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, ErrNotFound
	}
	return it.Value, it.ExpireAt, nil
}

// Set implements Backend.
func (e *EngineBackend) Set(ctx context.Context, key, value []byte, opt SetOptions) (SetResult, error) {
	unlock, err := e.lock(ctx, key)
	if err != nil {
		return SetResult{}, err
	}
	defer unlock()
	if err := e.check(ctx, key); err != nil {
		return SetResult{}, err
	}
	var old engine.Item
	found := false
	if opt.NX || opt.XX || opt.Get || opt.KeepTTL {
		if old, found, err = e.latest(key); err != nil {
			return SetResult{}, err
		}
	}
	var r SetResult
	if opt.Get && found {
		r.Old, r.OldFound = old.Value, true
	}
	if (opt.NX && found) || (opt.XX && !found) {
		return r, nil
	}
	at := opt.ExpireAtMs
	if opt.KeepTTL {
		at = old.ExpireAt
	}
	if err := e.write(ctx, key, value, at, unlock); err != nil {
		return SetResult{}, err
	}
	r.Applied = true
	return r, nil
}

// Del implements Backend.
func (e *EngineBackend) Del(ctx context.Context, keys ...[]byte) (int, error) {
	unlock, err := e.lock(ctx, keys...)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := e.check(ctx, keys...); err != nil {
		return 0, err
	}
	var b engine.Batch
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		_, ok, err := e.latest(k)
		if err != nil {
			return 0, err
		}
		if ok {
			b.Delete(router.Bucket(k), k)
		}
	}
	if b.Len() == 0 {
		return 0, nil
	}
	if err := e.commit(ctx, &b, unlock); err != nil {
		return 0, err
	}
	return b.Len(), nil
}

// Exists implements Backend.
func (e *EngineBackend) Exists(ctx context.Context, keys ...[]byte) (int, error) {
	if err := e.check(ctx, keys...); err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		_, ok, err := e.item(k)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
		}
	}
	if err := e.checkAfterRead(keys...); err != nil {
		return 0, err
	}
	return n, nil
}

// MGet implements Backend: every key is read from one snapshot.
func (e *EngineBackend) MGet(ctx context.Context, keys ...[]byte) ([][]byte, error) {
	if err := e.check(ctx, keys...); err != nil {
		return nil, err
	}
	sn, err := e.st.Snapshot()
	if err != nil {
		return nil, err
	}
	defer sn.Close()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, err := sn.Get(router.Bucket(k), k)
		if errors.Is(err, engine.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = []byte{}
		}
		out[i] = v
	}
	if err := e.checkAfterRead(keys...); err != nil {
		return nil, err
	}
	return out, nil
}

// MSet implements Backend.
func (e *EngineBackend) MSet(ctx context.Context, pairs ...KV) error {
	keys := make([][]byte, len(pairs))
	last := make(map[string]int, len(pairs))
	for i, p := range pairs {
		keys[i] = p.Key
		last[string(p.Key)] = i
	}
	unlock, err := e.lock(ctx, keys...)
	if err != nil {
		return err
	}
	defer unlock()
	if err := e.check(ctx, keys...); err != nil {
		return err
	}
	var b engine.Batch
	for i, p := range pairs {
		if last[string(p.Key)] == i { // a repeated key: the last value wins
			b.Set(router.Bucket(p.Key), p.Key, p.Value)
		}
	}
	return e.commit(ctx, &b, unlock)
}

// IncrBy implements Backend.
func (e *EngineBackend) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
	unlock, err := e.lock(ctx, key)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := e.check(ctx, key); err != nil {
		return 0, err
	}
	it, ok, err := e.latest(key)
	if err != nil {
		return 0, err
	}
	cur := it.Value
	if ok && cur == nil {
		cur = []byte{}
	}
	v, err := addInt(cur, delta)
	if err != nil {
		return 0, err
	}
	if err := e.write(ctx, key, strconv.AppendInt(nil, v, 10), it.ExpireAt, unlock); err != nil {
		return 0, err
	}
	return v, nil
}

// Expire implements Backend.
func (e *EngineBackend) Expire(ctx context.Context, key []byte, atMs int64) (bool, error) {
	unlock, err := e.lock(ctx, key)
	if err != nil {
		return false, err
	}
	defer unlock()
	if err := e.check(ctx, key); err != nil {
		return false, err
	}
	it, ok, err := e.latest(key)
	if err != nil || !ok {
		return false, err
	}
	if atMs <= e.now().UnixMilli() {
		var b engine.Batch
		b.Delete(router.Bucket(key), key)
		return true, e.commit(ctx, &b, unlock)
	}
	return true, e.write(ctx, key, it.Value, atMs, unlock)
}

// Persist implements Backend.
func (e *EngineBackend) Persist(ctx context.Context, key []byte) (bool, error) {
	unlock, err := e.lock(ctx, key)
	if err != nil {
		return false, err
	}
	defer unlock()
	if err := e.check(ctx, key); err != nil {
		return false, err
	}
	it, ok, err := e.latest(key)
	if err != nil || !ok || it.ExpireAt == 0 {
		return false, err
	}
	return true, e.write(ctx, key, it.Value, 0, unlock)
}

// ExpireTime implements Backend.
func (e *EngineBackend) ExpireTime(ctx context.Context, key []byte) (int64, error) {
	if err := e.check(ctx, key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	it, ok, err := e.item(key)
	if err != nil {
		return 0, err
	}
	if err := e.checkAfterRead(key); err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrNotFound
	}
	return it.ExpireAt, nil
}

// DBSize implements Backend by counting the visible keys (O(keys)).
func (e *EngineBackend) DBSize(ctx context.Context) (int64, error) {
	it, err := e.st.NewIter(0, router.NumBuckets-1)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := int64(0)
	for it.First(); it.Valid(); it.Next() {
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
	}
	return n, it.Error()
}

// Scan implements Backend. The cursor is the next bucket to visit; a call
// visits whole buckets until it has visited at least count keys (matching
// or not, as Redis's COUNT is an amount of work), so it may return more or
// fewer than count keys, and none with a non-zero cursor.
func (e *EngineBackend) Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (uint64, [][]byte, error) {
	if cursor >= router.NumBuckets {
		return 0, nil, nil
	}
	it, err := e.st.NewIter(uint16(cursor), router.NumBuckets-1)
	if err != nil {
		return 0, nil, err
	}
	defer it.Close()
	var keys [][]byte
	seen := 0
	for it.First(); it.Valid(); {
		b := it.Bucket()
		for ; it.Valid() && it.Bucket() == b; it.Next() {
			if Match(pattern, it.Key()) {
				keys = append(keys, slices.Clone(it.Key()))
			}
			if seen++; seen%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return 0, nil, err
				}
			}
		}
		if seen >= count {
			if err := it.Error(); err != nil {
				return 0, nil, err
			}
			return nextCursor(uint64(b)), keys, nil
		}
	}
	return 0, keys, it.Error()
}

// scanRangesBytesMax bounds the key bytes one ScanRanges returns (checked
// at bucket ends, so the reply of a node fits a transport frame).
const scanRangesBytesMax = 8 << 20

// ScanRanges scans the buckets of ranges (ascending, disjoint) in order,
// whole buckets at a time, until it has visited at least count keys (or
// gathered scanRangesBytesMax of keys). It
// returns the first bucket it did not visit (router.NumBuckets when it
// visited every one) and the matching keys of the buckets before it. A node
// uses it to serve its part of a cluster-wide SCAN.
func (e *EngineBackend) ScanRanges(ctx context.Context, ranges []BucketRange, pattern []byte, count int) (stop int, keys [][]byte, err error) {
	seen, size := 0, 0
	for _, r := range ranges {
		if r.Start > r.End || int(r.End) >= router.NumBuckets {
			return 0, nil, fmt.Errorf("server: bad bucket range [%d, %d]", r.Start, r.End)
		}
		it, err := e.st.NewIter(r.Start, r.End)
		if err != nil {
			return 0, nil, err
		}
		for it.First(); it.Valid(); {
			b := it.Bucket()
			for ; it.Valid() && it.Bucket() == b; it.Next() {
				if Match(pattern, it.Key()) {
					keys = append(keys, slices.Clone(it.Key()))
					size += len(it.Key())
				}
				if seen++; seen%4096 == 0 {
					if err := ctx.Err(); err != nil {
						it.Close()
						return 0, nil, err
					}
				}
			}
			if (seen >= count || size >= scanRangesBytesMax) && it.Error() == nil {
				it.Close()
				return int(b) + 1, keys, nil
			}
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return 0, nil, err
		}
	}
	return router.NumBuckets, keys, nil
}

// CountRanges counts the visible keys of the buckets of ranges (O(keys)).
func (e *EngineBackend) CountRanges(ctx context.Context, ranges []BucketRange) (int64, error) {
	n := int64(0)
	for _, r := range ranges {
		if r.Start > r.End || int(r.End) >= router.NumBuckets {
			return 0, fmt.Errorf("server: bad bucket range [%d, %d]", r.Start, r.End)
		}
		it, err := e.st.NewIter(r.Start, r.End)
		if err != nil {
			return 0, err
		}
		for it.First(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					it.Close()
					return 0, err
				}
			}
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Versions implements TxBackend: a key's version is the engine sequence
// number of its write that GET sees (engine.Item.Seq of the published,
// durable state), 0 when absent or expired, read after every write applied
// so far has become visible. WATCH must match what the client reads next:
// a write applied but not yet durable is invisible to GET, and a version
// taken from it would let EXEC commit over a value the client never saw.
// (EXEC compares with the latest applied version: a write after WATCH
// fails it, as in Redis.)
func (e *EngineBackend) Versions(ctx context.Context, keys [][]byte) ([]uint64, error) {
	if err := e.check(ctx, keys...); err != nil {
		return nil, err
	}
	if err := e.st.WaitVisible(ctx); err != nil {
		return nil, err
	}
	out := make([]uint64, len(keys))
	for i, k := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, ok, err := e.item(k)
		if err != nil {
			return nil, err
		}
		if ok {
			out[i] = it.Seq
		}
	}
	if err := e.checkAfterRead(keys...); err != nil {
		return nil, err
	}
	return out, nil
}

// Items reads keys for a transaction that cannot hold their locks (keys
// on several nodes): their latest values and versions, after the guard.
func (e *EngineBackend) Items(ctx context.Context, keys [][]byte) ([]TxItem, []uint64, error) {
	if err := e.check(ctx, keys...); err != nil {
		return nil, nil, err
	}
	items := make([]TxItem, len(keys))
	vers := make([]uint64, len(keys))
	for i, k := range keys {
		it, ok, err := e.latest(k)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			items[i] = TxItem{Value: it.Value, ExpireAtMs: it.ExpireAt, Found: true}
			vers[i] = it.Seq
		}
	}
	if err := e.checkAfterRead(keys...); err != nil {
		return nil, nil, err
	}
	return items, vers, nil
}

// Exec implements TxBackend with locks: it holds every key's stripe from
// the read to the apply, so run is called once and the writes commit as
// one engine batch (atomic across shards).
func (e *EngineBackend) Exec(ctx context.Context, req *TxRequest, run TxFunc) error {
	unlock, err := e.lock(ctx, req.Keys...)
	if err != nil {
		return err
	}
	defer unlock()
	if err := e.check(ctx, req.Keys...); err != nil {
		return err
	}
	items := make(map[string]TxItem, len(req.Keys))
	vers := make(map[string]uint64, len(req.Keys))
	for _, k := range req.Keys {
		it, ok, err := e.latest(k)
		if err != nil {
			return err
		}
		if ok {
			items[string(k)] = TxItem{Value: it.Value, ExpireAtMs: it.ExpireAt, Found: true}
			vers[string(k)] = it.Seq
		}
	}
	for _, w := range req.Watch {
		if vers[string(w.Key)] != w.Version {
			return ErrWatchFailed
		}
	}
	writes, err := run(items)
	if err != nil || len(writes) == 0 {
		return err
	}
	var b engine.Batch
	for _, w := range writes {
		if w.Delete {
			b.Delete(router.Bucket(w.Key), w.Key)
		} else {
			b.SetWithExpiry(router.Bucket(w.Key), w.Key, w.Value, w.ExpireAtMs)
		}
	}
	return e.commit(ctx, &b, unlock)
}
