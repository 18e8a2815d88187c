package kv

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

// lockStripes is the number of key locks of an Engine.
const lockStripes = 1024

// Engine is one node's keyspace over a local *engine.Store: it serves every
// key it is asked for (key → router.Bucket → engine bucket) and knows
// nothing of other nodes; the node layer decides which keys reach it and
// adds its per-key checks with the options of New.
//
// Atomicity: every write (SET with or without conditions, DEL, MSET, INCR,
// EXPIRE, PERSIST, Exec) holds the locks of its keys' stripes (a key hashes
// to one of 1024 stripes; multi-key writes take them in ascending order)
// across its read-modify-write until the engine has applied it in commit
// order (engine.Store.WriteApplied); reads under the lock see applied
// writes (GetLatestItem). The stripes are released before the fsync, so
// writers of one hot key share group commits; each still replies only once
// its write is durable, which implies every earlier write of the key is
// durable too. Writes of one key are therefore linearizable; plain reads
// take no lock and see durable, published state.
// Lock waits honour ctx. MSET and DEL commit as one engine batch (atomic
// even across shards); MGET reads one engine snapshot.
//
// Every method may be called from any number of goroutines at once. Key,
// value and pattern slices passed in are only read during the call.
type Engine struct {
	st        *engine.Store
	now       func() time.Time
	seed      maphash.Seed
	locks     [lockStripes]chan struct{}
	guard     KeyGuard
	recheck   func(keys ...[]byte) error
	onApplied func(bucket uint16, key []byte)
	repl      Replicator
}

// Replicator commits a write through replication instead of the local
// engine (WithReplicator). It is called with the write's stripe locks
// held and returns handled = false for a write it does not take (its
// buckets are not replicated): the Engine then commits it itself. For a
// write it takes, it owns release: it must call it exactly once, with
// applied true once b is applied to the store and visible (every replica
// has it), or false once it is certain b will never be applied here by
// this call — which may be after it returned (a write whose outcome is
// unknown when ctx ends keeps its keys locked until it is resolved, so no
// later write of them reads around it). err nil means committed.
type Replicator func(ctx context.Context, b *engine.Batch, release func(applied bool)) (handled bool, err error)

// WithReplicator has every write offer its batch to r first.
func WithReplicator(r Replicator) Option { return func(e *Engine) { e.repl = r } }

// KeyGuard is called before a key is read or written (for writes, under the
// key's stripe lock). It may wait (honouring ctx) and fails the operation
// with its error. The node uses it to keep keys of prepared transactions
// out of reach until the transaction is resolved, and keys of buckets it
// does not own or has fenced for a move out of reach at all.
type KeyGuard func(ctx context.Context, keys ...[]byte) error

// Option is a per-key check or notification of an Engine, given to New:
// the checks run inside the Engine's operations (under the stripe lock,
// between the read and the commit), where a decorator around the Engine
// could not reach without holding the stripes through the fsync.
type Option func(*Engine)

// WithGuard has every operation call g first: reads before reading,
// writes (Exec included) once they hold their keys' stripe locks and
// before they read, so a write that passes g is applied (and reported to
// WithOnApplied) before anyone else takes the stripe — in particular
// before Barrier returns. An error of g fails the operation, which then
// writes nothing.
func WithGuard(g KeyGuard) Option { return func(e *Engine) { e.guard = g } }

// WithRecheck has every read (Get, Exists, MGet, ExpireTime, Versions,
// Items) call f again after reading, without a lock: the guard before the
// read may have passed just before the key's bucket switched owner, and
// the value read is then only good if f still passes — the node checks
// that the bucket is neither fenced nor owned elsewhere now. An error of f
// fails the read.
func WithRecheck(f func(keys ...[]byte) error) Option {
	return func(e *Engine) { e.recheck = f }
}

// WithOnApplied has every write call f for each key it applied, after the
// engine applied the write and before the key's stripe lock is released
// (so a reader that takes the lock afterwards, or Barrier's caller, finds
// f's effect). The node records keys of buckets being migrated with it.
func WithOnApplied(f func(bucket uint16, key []byte)) Option {
	return func(e *Engine) { e.onApplied = f }
}

// New returns the keyspace over st. now must be the clock st was opened
// with (engine.Config.Now), nil meaning time.Now. The options install the
// per-key checks; without them every key is served.
func New(st *engine.Store, now func() time.Time, opts ...Option) *Engine {
	if now == nil {
		now = time.Now
	}
	e := &Engine{st: st, now: now, seed: maphash.MakeSeed()}
	for i := range e.locks {
		e.locks[i] = make(chan struct{}, 1)
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Barrier takes and releases every stripe lock: every write that held one
// when Barrier was called has been applied (and reported to WithOnApplied's
// f) when it returns.
func (e *Engine) Barrier(ctx context.Context) error {
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

// LockKeys takes the stripe locks of keys (ascending, honouring ctx), as
// every write of the Engine does; the returned func releases them. The
// node holds them while it prepares a transaction on those keys.
func (e *Engine) LockKeys(ctx context.Context, keys ...[]byte) (func(), error) {
	return e.lock(ctx, keys...)
}

// checkAfterRead is the read's second check (WithRecheck).
func (e *Engine) checkAfterRead(keys ...[]byte) error {
	if e.recheck == nil {
		return nil
	}
	return e.recheck(keys...)
}

func (e *Engine) check(ctx context.Context, keys ...[]byte) error {
	if e.guard == nil {
		return nil
	}
	return e.guard(ctx, keys...)
}

// lock takes the stripes of keys in ascending order; the returned func
// releases them.
func (e *Engine) lock(ctx context.Context, keys ...[]byte) (func(), error) {
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
	var released atomic.Bool
	return func() { // idempotent: commit releases early, the deferred call is then a no-op
		if !released.CompareAndSwap(false, true) {
			return // (a Replicator may release from another goroutine)
		}
		for _, s := range idx {
			<-e.locks[s]
		}
	}, nil
}

func (e *Engine) item(key []byte) (engine.Item, bool, error) {
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
func (e *Engine) latest(key []byte) (engine.Item, bool, error) {
	it, err := e.st.GetLatestItem(router.Bucket(key), key)
	if errors.Is(err, engine.ErrNotFound) {
		return engine.Item{}, false, nil
	}
	if err != nil {
		return engine.Item{}, false, err
	}
	return it, true, nil
}

// commit applies b in commit order, reports its keys (WithOnApplied),
// releases the stripes (unlock) and then waits until b is durable: writers
// of one key queue only for the apply, not for the fsync, so they share
// group commits. The report comes before the release so that whoever takes
// the stripe next — Barrier, before a move's last delta — finds it.
func (e *Engine) commit(ctx context.Context, b *engine.Batch, unlock func()) error {
	if e.repl != nil {
		release := func(applied bool) {
			if applied && e.onApplied != nil {
				b.ForEachKey(e.onApplied)
			}
			unlock()
		}
		if handled, err := e.repl(ctx, b, release); handled {
			return err
		}
	}
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

func (e *Engine) write(ctx context.Context, key, value []byte, atMs int64, unlock func()) error {
	var b engine.Batch
	b.SetWithExpiry(router.Bucket(key), key, value, atMs)
	return e.commit(ctx, &b, unlock)
}

// Get returns key's value and expiry, or ErrNotFound.
func (e *Engine) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
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

// Set writes key under opt's conditions, atomically with respect to every
// other write of key.
func (e *Engine) Set(ctx context.Context, key, value []byte, opt SetOptions) (SetResult, error) {
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

// Del removes keys, as one engine batch, and returns how many existed (a
// key named twice counts once).
func (e *Engine) Del(ctx context.Context, keys ...[]byte) (int, error) {
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

// Exists returns how many of keys exist, counting a key named twice twice.
func (e *Engine) Exists(ctx context.Context, keys ...[]byte) (int, error) {
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

// MGet returns one entry per key, nil for a missing key: every key is read
// from one snapshot.
func (e *Engine) MGet(ctx context.Context, keys ...[]byte) ([][]byte, error) {
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

// MSet writes every pair as one engine batch, clearing their expiries (a
// key named twice gets its last value).
func (e *Engine) MSet(ctx context.Context, pairs ...KV) error {
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

// IncrBy adds delta to key's integer value (a missing key counts as 0),
// keeping its expiry (see AddInt).
func (e *Engine) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
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
	v, err := AddInt(cur, delta)
	if err != nil {
		return 0, err
	}
	if err := e.write(ctx, key, strconv.AppendInt(nil, v, 10), it.ExpireAt, unlock); err != nil {
		return 0, err
	}
	return v, nil
}

// Expire sets key's expiry to atMs if key exists and reports whether it
// did. An atMs not in the future deletes the key (and reports true).
func (e *Engine) Expire(ctx context.Context, key []byte, atMs int64) (bool, error) {
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

// Persist removes key's expiry and reports whether it had one.
func (e *Engine) Persist(ctx context.Context, key []byte) (bool, error) {
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

// ExpireTime returns key's expiry (0 if none) or ErrNotFound.
func (e *Engine) ExpireTime(ctx context.Context, key []byte) (int64, error) {
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

// DBSize counts the visible keys (O(keys)).
func (e *Engine) DBSize(ctx context.Context) (int64, error) {
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

// Scan returns keys matching pattern (see Match) from cursor on, and the
// cursor to continue from (0 when done). The cursor is the next bucket to
// visit; a call visits whole buckets until it has visited at least count
// keys (matching or not, as Redis's COUNT is an amount of work), so it may
// return more or fewer than count keys, and none with a non-zero cursor.
func (e *Engine) Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (uint64, [][]byte, error) {
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
func (e *Engine) ScanRanges(ctx context.Context, ranges []BucketRange, pattern []byte, count int) (stop int, keys [][]byte, err error) {
	seen, size := 0, 0
	for _, r := range ranges {
		if r.Start > r.End || int(r.End) >= router.NumBuckets {
			return 0, nil, fmt.Errorf("kv: bad bucket range [%d, %d]", r.Start, r.End)
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
func (e *Engine) CountRanges(ctx context.Context, ranges []BucketRange) (int64, error) {
	c, err := e.CountKeys(ctx, ranges)
	return c.Keys, err
}

// KeyCounts are what INFO keyspace says of some buckets: the visible keys,
// how many of them have an expiry, and the sum of those expiries' time
// left in ms.
type KeyCounts struct {
	Keys, Expires, TTLSumMs int64
}

// CountKeys counts the visible keys of the buckets of ranges and those
// with an expiry (O(keys)).
func (e *Engine) CountKeys(ctx context.Context, ranges []BucketRange) (KeyCounts, error) {
	var c KeyCounts
	now := e.now().UnixMilli()
	for _, r := range ranges {
		if r.Start > r.End || int(r.End) >= router.NumBuckets {
			return KeyCounts{}, fmt.Errorf("kv: bad bucket range [%d, %d]", r.Start, r.End)
		}
		it, err := e.st.NewIter(r.Start, r.End)
		if err != nil {
			return KeyCounts{}, err
		}
		for it.First(); it.Valid(); it.Next() {
			if at := it.ExpireAt(); at != 0 {
				c.Expires++
				c.TTLSumMs += max(at-now, 0)
			}
			if c.Keys++; c.Keys%4096 == 0 {
				if err := ctx.Err(); err != nil {
					it.Close()
					return KeyCounts{}, err
				}
			}
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return KeyCounts{}, err
		}
	}
	return c, nil
}

// Versions returns the WATCH version of each key: the engine sequence
// number of its write that GET sees (engine.Item.Seq of the published,
// durable state), 0 when absent or expired, read after every write applied
// so far has become visible. WATCH must match what the client reads next:
// a write applied but not yet durable is invisible to GET, and a version
// taken from it would let EXEC commit over a value the client never saw.
// (EXEC compares with the latest applied version: a write after WATCH
// fails it, as in Redis.)
func (e *Engine) Versions(ctx context.Context, keys [][]byte) ([]uint64, error) {
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
func (e *Engine) Items(ctx context.Context, keys [][]byte) ([]TxItem, []uint64, error) {
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

// Exec runs a transaction as the server's TxBackend.Exec does, with
// locks: it holds every key's stripe from the read to the apply, so run is
// called once and the writes commit as one engine batch (atomic across
// shards). A watched key whose version differs fails it with
// ErrWatchFailed, before run.
func (e *Engine) Exec(ctx context.Context, req *TxRequest, run TxFunc) error {
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
