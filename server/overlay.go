package server

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/dbx-kv/dbx/kv"
)

// overlay is a transaction's private view, the Backend its queued commands
// run against (the same handlers as outside MULTI, so replies match): the
// values the TxBackend read for it, which the commands modify, and which
// keys they wrote. The commands of one EXEC run one after another on one
// goroutine, so it has no lock; it serves only the data methods those
// commands call (MULTI queues no SCAN, DBSIZE or CLUSTER).
type overlay struct {
	now     func() time.Time
	items   map[string]TxItem // the live keys, all Found
	loaded  map[string]bool   // keys live when loaded
	written map[string]bool   // keys a command stored since
}

var errNotInTx = errors.New("not available inside MULTI")

// newOverlay loads items (a key not Found, or already expired, is absent).
func newOverlay(now func() time.Time, items map[string]TxItem) *overlay {
	o := &overlay{now: now, items: make(map[string]TxItem, len(items)), loaded: make(map[string]bool, len(items)), written: map[string]bool{}}
	for k, it := range items {
		if it.Found && !o.expired(it.ExpireAtMs) {
			o.items[k] = it
			o.loaded[k] = true
		}
	}
	return o
}

func (o *overlay) expired(atMs int64) bool { return atMs != 0 && atMs <= o.now().UnixMilli() }

// lookup returns key's live item; an expired one is deleted.
func (o *overlay) lookup(key string) (TxItem, bool) {
	it, ok := o.items[key]
	if ok && o.expired(it.ExpireAtMs) {
		delete(o.items, key)
		return TxItem{}, false
	}
	return it, ok
}

// put stores value (copied) with expiry atMs: a write, or a delete when
// atMs is not in the future.
func (o *overlay) put(key string, value []byte, atMs int64) {
	if o.expired(atMs) {
		delete(o.items, key)
		return
	}
	o.items[key] = TxItem{Value: slices.Clone(value), ExpireAtMs: atMs, Found: true}
	o.written[key] = true
}

// writes returns the writes of the commands to keys: every key stored (a
// rewrite of the same value counts, as in Redis) and still live, and every
// loaded key no longer live as a delete.
func (o *overlay) writes(keys [][]byte) []TxWrite {
	var out []TxWrite
	for _, k := range keys {
		after, found := o.lookup(string(k))
		switch {
		case !found && o.loaded[string(k)]:
			out = append(out, TxWrite{Key: k, Delete: true})
		case found && (!o.loaded[string(k)] || o.written[string(k)]):
			out = append(out, TxWrite{Key: k, Value: after.Value, ExpireAtMs: after.ExpireAtMs})
		}
	}
	return out
}

func (o *overlay) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	it, ok := o.lookup(string(key))
	if !ok {
		return nil, 0, ErrNotFound
	}
	return it.Value, it.ExpireAtMs, nil
}

func (o *overlay) Set(ctx context.Context, key, value []byte, opt SetOptions) (SetResult, error) {
	if err := ctx.Err(); err != nil {
		return SetResult{}, err
	}
	old, found := o.lookup(string(key))
	var r SetResult
	if opt.Get && found {
		r.Old, r.OldFound = old.Value, true
	}
	if (opt.NX && found) || (opt.XX && !found) {
		return r, nil
	}
	at := opt.ExpireAtMs
	if opt.KeepTTL {
		at = old.ExpireAtMs
	}
	o.put(string(key), value, at)
	r.Applied = true
	return r, nil
}

func (o *overlay) Del(ctx context.Context, keys ...[]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if _, ok := o.lookup(string(k)); ok {
			delete(o.items, string(k))
			n++
		}
	}
	return n, nil
}

func (o *overlay) Exists(ctx context.Context, keys ...[]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if _, ok := o.lookup(string(k)); ok {
			n++
		}
	}
	return n, nil
}

func (o *overlay) MGet(ctx context.Context, keys ...[]byte) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if it, ok := o.lookup(string(k)); ok {
			out[i] = it.Value
		}
	}
	return out, nil
}

func (o *overlay) MSet(ctx context.Context, pairs ...KV) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, p := range pairs {
		o.put(string(p.Key), p.Value, 0)
	}
	return nil
}

func (o *overlay) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	it, ok := o.lookup(string(key))
	cur := it.Value
	if ok && cur == nil { // an empty string, not a missing key
		cur = []byte{}
	}
	v, err := kv.AddInt(cur, delta)
	if err != nil {
		return 0, err
	}
	o.put(string(key), strconv.AppendInt(nil, v, 10), it.ExpireAtMs)
	return v, nil
}

func (o *overlay) Expire(ctx context.Context, key []byte, atMs int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	it, ok := o.lookup(string(key))
	if !ok {
		return false, nil
	}
	o.put(string(key), it.Value, atMs) // deletes it when atMs is not in the future
	return true, nil
}

func (o *overlay) Persist(ctx context.Context, key []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	it, ok := o.lookup(string(key))
	if !ok || it.ExpireAtMs == 0 {
		return false, nil
	}
	o.put(string(key), it.Value, 0)
	return true, nil
}

func (o *overlay) ExpireTime(ctx context.Context, key []byte) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	it, ok := o.lookup(string(key))
	if !ok {
		return 0, ErrNotFound
	}
	return it.ExpireAtMs, nil
}

func (o *overlay) DBSize(context.Context) (int64, error) { return 0, errNotInTx }

func (o *overlay) Scan(context.Context, uint64, []byte, int) (uint64, [][]byte, error) {
	return 0, nil, errNotInTx
}

func (o *overlay) ClusterView() ClusterView { return ClusterView{} }
