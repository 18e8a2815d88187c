package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

// Node-to-node key methods, served on every node by its local keyspace
// (kv.Engine) for the buckets it owns.
const (
	methodGet        = "kv.get"
	methodSet        = "kv.set"
	methodDel        = "kv.del"
	methodExists     = "kv.exists"
	methodMGet       = "kv.mget"
	methodMSet       = "kv.mset"
	methodIncrBy     = "kv.incrby"
	methodExpire     = "kv.expire"
	methodPersist    = "kv.persist"
	methodExpireTime = "kv.expiretime"
)

type (
	keyReq  struct{ Key []byte }
	keysReq struct{ Keys [][]byte }
	getResp struct {
		Value      []byte
		ExpireAtMs int64
		Found      bool
	}
	setReq struct {
		Key, Value []byte
		ExpireAtMs int64
		KeepTTL    bool
		NX, XX     bool
		Get        bool
	}
	setResp struct {
		Applied  bool
		Old      []byte
		OldFound bool
	}
	countResp struct{ N int }
	mgetResp  struct {
		Values  [][]byte
		Present []bool
	}
	kvPair    struct{ Key, Value []byte }
	msetReq   struct{ Pairs []kvPair }
	emptyResp struct{}
	incrReq   struct {
		Key   []byte
		Delta int64
	}
	intResp   struct{ N int64 }
	expireReq struct {
		Key  []byte
		AtMs int64
	}
	boolResp struct{ OK bool }
)

// backend is the node's server.Backend: every key goes to its bucket's
// owner under the current placement table, served by the local
// kv.Engine when that is this node and forwarded over the transport
// otherwise. Multi-key commands are split by owner and fanned out.
type backend struct {
	n     *Node
	local *kv.Engine
}

var _ server.Backend = (*backend)(nil)

func (b *backend) table() (*router.Table, error) {
	if b.n.leftGossip.Load() {
		if err := b.n.leftErr(b.n.coord.Current()); err != nil {
			return nil, err
		}
	}
	t := b.n.holder.Load()
	if t == nil {
		if b.n.catchingUp.Load() { // joined, the metadata not here yet: wait
			return nil, fmt.Errorf("%w: no placement here yet", errFenced)
		}
		return nil, fmt.Errorf("%w: no placement yet", server.ErrClusterDown)
	}
	return t, nil
}

// ownerAddr returns the owner of key and its RPC address ("" when local).
func (b *backend) ownerAddr(key []byte) (id, addr string, err error) {
	t, err := b.table()
	if err != nil {
		return "", "", err
	}
	id = b.n.ownerOf(t, key)
	if id == b.n.cfg.ID {
		return id, "", nil
	}
	m, ok := b.n.peer(id)
	if !ok || m.RPCAddr == "" {
		return id, "", fmt.Errorf("%w: no address for owner %s", server.ErrOwnerDown, id)
	}
	return id, m.RPCAddr, nil
}

// checkOwned fails with ErrNotOwner unless this node owns every key.
func (b *backend) checkOwned(keys ...[]byte) error {
	t, err := b.table()
	if err != nil {
		return err
	}
	for _, k := range keys {
		if o := b.n.ownerOf(t, k); o != b.n.cfg.ID {
			return fmt.Errorf("%w: bucket %d belongs to %s at epoch %d", ErrNotOwner, router.Bucket(k), o, t.Epoch())
		}
	}
	return nil
}

// ensureHasData makes sure MarkHasData is committed before this node
// stores its first key, so no placement change can move a bucket that holds
// data (the coordinator refuses those once it is committed).
//
// keys are the keys about to be written: the first write checked their
// owner under a table that a placement committed just before MarkHasData
// may have replaced (such a change moves no data), so once the mark is
// known here their ownership is checked again (ErrNotOwner: route again).
func (b *backend) ensureHasData(ctx context.Context, keys ...[]byte) error {
	n := b.n
	if n.hasData.Load() {
		return nil
	}
	select {
	case n.markSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-n.markSem }()
	if !n.hasData.Load() && !n.coord.Current().HasData() {
		r, err := n.leaderDo(ctx, leaderOp{Op: opMarkData}, nil)
		if err != nil {
			return fmt.Errorf("%w: recording that the cluster holds data: %v", server.ErrClusterDown, err)
		}
		// Apply everything up to the mark here before judging ownership.
		for {
			s, ch := n.coord.Watch()
			if s.Index() >= r.Index && s.HasData() {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n.log.Info("cluster marked as holding data: placement changes now move buckets")
	}
	n.hasData.Store(true)
	return b.checkOwned(keys...)
}

// forward runs call against key's owner: locally, or remotely. While the
// key's bucket switches owner (fenced here, or the owner's table and ours
// disagree for a moment) it waits and routes again, until ctx ends: a
// client sees latency, not an error.
func forward[T any](ctx context.Context, b *backend, key []byte, local func() (T, error), remote func(addr string) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		id, addr, err := b.ownerAddr(key)
		if errors.Is(err, errFenced) {
			if werr := b.n.mig.waitUnfenced(ctx, key); werr != nil {
				return zero, fmt.Errorf("%w: %v", server.ErrTryAgain, werr)
			}
			continue
		}
		if err != nil {
			return zero, err
		}
		if addr == "" {
			v, err := local()
			switch {
			case errors.Is(err, errFenced):
				if werr := b.n.mig.waitUnfenced(ctx, key); werr != nil {
					return zero, fmt.Errorf("%w: %v", server.ErrTryAgain, werr)
				}
				continue
			case errors.Is(err, ErrNotOwner): // the table changed under the call: route again
				if werr := b.movedBackoff(ctx, attempt); werr != nil {
					return zero, fmt.Errorf("%w: %v", server.ErrTryAgain, err)
				}
				continue
			}
			return v, err
		}
		v, err := remote(addr)
		if err == nil {
			return v, nil
		}
		if errors.Is(err, ErrNotOwner) || errors.Is(err, errFenced) {
			if werr := b.movedBackoff(ctx, attempt); werr != nil {
				return zero, remoteErr(id, addr, err)
			}
			continue
		}
		return zero, remoteErr(id, addr, err)
	}
}

// movedBackoff waits before routing again after a bucket was found
// switching owner: 5 ms, doubling to 100 ms, until ctx ends.
func (b *backend) movedBackoff(ctx context.Context, attempt int) error {
	d := min(5*time.Millisecond<<min(attempt, 5), 100*time.Millisecond)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// movedErr reports an error that means "a bucket is switching owner".
func movedErr(err error) bool {
	return errors.Is(err, errFenced) || errors.Is(err, ErrNotOwner) || errors.Is(err, server.ErrTryAgain)
}

// retryMoved runs a multi-key operation again while one of its keys'
// buckets is switching owner (every such operation fails before writing
// anything, so running it again is safe).
func (b *backend) retryMoved(ctx context.Context, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if !movedErr(err) {
			return err
		}
		if werr := b.movedBackoff(ctx, attempt); werr != nil {
			return err
		}
	}
}

// remoteErr classifies a forwarding failure for the server by whether the
// request can have been applied: sent with no answer (the connection broke,
// the deadline passed, here or in the owner's handler) is ErrNoReply,
// "outcome unknown"; never sent (no
// connection, the peer not serving or overloaded, the deadline passed
// before sending) is ErrOwnerDown, "not applied"; a bucket switching owner
// is ErrTryAgain.
func remoteErr(id, addr string, err error) error {
	switch {
	case errors.Is(err, transport.ErrNoReply),
		errors.Is(err, transport.ErrRemote) && errors.Is(err, context.DeadlineExceeded): // the owner's handler ran out of time
		return fmt.Errorf("%w: node %s at %s did not answer: %v", server.ErrNoReply, id, addr, err)
	case errors.Is(err, transport.ErrUnreachable), errors.Is(err, transport.ErrConnClosed),
		errors.Is(err, transport.ErrClosed), errors.Is(err, transport.ErrBackpressure),
		errors.Is(err, transport.ErrNotServing), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: owner %s at %s unreachable: %v", server.ErrOwnerDown, id, addr, err)
	case errors.Is(err, ErrNotOwner), errors.Is(err, errFenced):
		return fmt.Errorf("%w: %v", server.ErrTryAgain, err)
	}
	return err
}

func call[Req, Resp any](ctx context.Context, b *backend, addr, method string, req *Req) (*Resp, error) {
	start := time.Now()
	r, err := transport.Call[Req, Resp](ctx, b.n.rpc, addr, method, req)
	b.n.metrics.forwarded(method, start, err)
	return r, err
}

// Get implements server.Backend.
func (b *backend) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	r, err := forward(ctx, b, key,
		func() (getResp, error) { return b.localGet(ctx, key) },
		func(addr string) (getResp, error) {
			r, err := call[keyReq, getResp](ctx, b, addr, methodGet, &keyReq{Key: key})
			if err != nil {
				return getResp{}, err
			}
			return *r, nil
		})
	if err != nil {
		return nil, 0, err
	}
	if !r.Found {
		return nil, 0, server.ErrNotFound
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	return r.Value, r.ExpireAtMs, nil
}

func (b *backend) localGet(ctx context.Context, key []byte) (getResp, error) {
	v, exp, err := b.local.Get(ctx, key)
	if errors.Is(err, server.ErrNotFound) {
		return getResp{}, nil
	}
	if err != nil {
		return getResp{}, err
	}
	return getResp{Value: v, ExpireAtMs: exp, Found: true}, nil
}

// Set implements server.Backend.
func (b *backend) Set(ctx context.Context, key, value []byte, opt server.SetOptions) (server.SetResult, error) {
	req := setReq{Key: key, Value: value, ExpireAtMs: opt.ExpireAtMs, KeepTTL: opt.KeepTTL, NX: opt.NX, XX: opt.XX, Get: opt.Get}
	r, err := forward(ctx, b, key,
		func() (setResp, error) { return b.localSet(ctx, &req) },
		func(addr string) (setResp, error) {
			r, err := call[setReq, setResp](ctx, b, addr, methodSet, &req)
			if err != nil {
				return setResp{}, err
			}
			return *r, nil
		})
	if err != nil {
		return server.SetResult{}, err
	}
	if r.OldFound && r.Old == nil {
		r.Old = []byte{}
	}
	return server.SetResult{Applied: r.Applied, Old: r.Old, OldFound: r.OldFound}, nil
}

func (b *backend) localSet(ctx context.Context, req *setReq) (setResp, error) {
	if err := b.ensureHasData(ctx, req.Key); err != nil {
		return setResp{}, err
	}
	r, err := b.local.Set(ctx, req.Key, req.Value, server.SetOptions{ExpireAtMs: req.ExpireAtMs, KeepTTL: req.KeepTTL, NX: req.NX, XX: req.XX, Get: req.Get})
	return setResp{Applied: r.Applied, Old: r.Old, OldFound: r.OldFound}, err
}

// IncrBy implements server.Backend.
func (b *backend) IncrBy(ctx context.Context, key []byte, delta int64) (int64, error) {
	req := incrReq{Key: key, Delta: delta}
	return forward(ctx, b, key,
		func() (int64, error) { return b.localIncr(ctx, &req) },
		func(addr string) (int64, error) {
			r, err := call[incrReq, intResp](ctx, b, addr, methodIncrBy, &req)
			if err != nil {
				return 0, err
			}
			return r.N, nil
		})
}

func (b *backend) localIncr(ctx context.Context, req *incrReq) (int64, error) {
	if err := b.ensureHasData(ctx, req.Key); err != nil {
		return 0, err
	}
	return b.local.IncrBy(ctx, req.Key, req.Delta)
}

// Expire implements server.Backend.
func (b *backend) Expire(ctx context.Context, key []byte, atMs int64) (bool, error) {
	req := expireReq{Key: key, AtMs: atMs}
	return forward(ctx, b, key,
		func() (bool, error) { return b.local.Expire(ctx, key, atMs) },
		func(addr string) (bool, error) {
			r, err := call[expireReq, boolResp](ctx, b, addr, methodExpire, &req)
			if err != nil {
				return false, err
			}
			return r.OK, nil
		})
}

// Persist implements server.Backend.
func (b *backend) Persist(ctx context.Context, key []byte) (bool, error) {
	return forward(ctx, b, key,
		func() (bool, error) { return b.local.Persist(ctx, key) },
		func(addr string) (bool, error) {
			r, err := call[keyReq, boolResp](ctx, b, addr, methodPersist, &keyReq{Key: key})
			if err != nil {
				return false, err
			}
			return r.OK, nil
		})
}

// ExpireTime implements server.Backend.
func (b *backend) ExpireTime(ctx context.Context, key []byte) (int64, error) {
	r, err := forward(ctx, b, key,
		func() (getResp, error) {
			at, err := b.local.ExpireTime(ctx, key)
			if errors.Is(err, server.ErrNotFound) {
				return getResp{}, nil
			}
			return getResp{ExpireAtMs: at, Found: err == nil}, err
		},
		func(addr string) (getResp, error) {
			r, err := call[keyReq, getResp](ctx, b, addr, methodExpireTime, &keyReq{Key: key})
			if err != nil {
				return getResp{}, err
			}
			return *r, nil
		})
	if err != nil {
		return 0, err
	}
	if !r.Found {
		return 0, server.ErrNotFound
	}
	return r.ExpireAtMs, nil
}

// group is the part of a multi-key command for one owner: the indexes of
// its keys in the command.
type group struct {
	id, addr string // addr "" for this node
	idx      []int
}

// split groups keys by owner, in first-appearance order.
func (b *backend) split(keys [][]byte) ([]*group, error) {
	t, err := b.table()
	if err != nil {
		return nil, err
	}
	byID := map[string]*group{}
	var out []*group
	for i, k := range keys {
		id := b.n.ownerOf(t, k)
		g := byID[id]
		if g == nil {
			g = &group{id: id}
			if id != b.n.cfg.ID {
				m, ok := b.n.peer(id)
				if !ok || m.RPCAddr == "" {
					return nil, fmt.Errorf("%w: no address for owner %s", server.ErrOwnerDown, id)
				}
				g.addr = m.RPCAddr
			}
			byID[id] = g
			out = append(out, g)
		}
		g.idx = append(g.idx, i)
	}
	return out, nil
}

// fanOut runs f for every group concurrently (one goroutine per owner, so at
// most the cluster's size) and returns the first error.
func fanOut(groups []*group, f func(g *group) error) error {
	if len(groups) == 1 {
		return f(groups[0])
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(g)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func pick(keys [][]byte, idx []int) [][]byte {
	out := make([][]byte, len(idx))
	for j, i := range idx {
		out[j] = keys[i]
	}
	return out
}

// countKeys runs a counting multi-key method (DEL, EXISTS) per owner.
func (b *backend) countKeys(ctx context.Context, method string, local func(context.Context, ...[]byte) (int, error), keys [][]byte) (int, error) {
	var n int
	err := b.retryMoved(ctx, func() error {
		var err error
		n, err = b.countKeysOnce(ctx, method, local, keys)
		return err
	})
	return n, err
}

func (b *backend) countKeysOnce(ctx context.Context, method string, local func(context.Context, ...[]byte) (int, error), keys [][]byte) (int, error) {
	groups, err := b.split(keys)
	if err != nil {
		return 0, err
	}
	counts := make([]int, len(groups))
	err = fanOut(groups, func(g *group) error {
		ks := pick(keys, g.idx)
		if g.addr == "" {
			c, err := local(ctx, ks...)
			counts[indexOf(groups, g)] = c
			return err
		}
		r, err := call[keysReq, countResp](ctx, b, g.addr, method, &keysReq{Keys: ks})
		if err != nil {
			return remoteErr(g.id, g.addr, err)
		}
		counts[indexOf(groups, g)] = r.N
		return nil
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, err
}

func indexOf(groups []*group, g *group) int {
	for i := range groups {
		if groups[i] == g {
			return i
		}
	}
	return -1
}

// Del implements server.Backend: atomically, through a transaction when
// the keys have several owners.
func (b *backend) Del(ctx context.Context, keys ...[]byte) (int, error) {
	groups, err := b.split(keys)
	if err != nil {
		return 0, err
	}
	if len(groups) == 1 {
		return b.countKeys(ctx, methodDel, b.localDel, keys)
	}
	distinct := distinctKeys(keys)
	n := 0
	err = b.execWrites(ctx, distinct, distinct, func(items map[string]server.TxItem) ([]server.TxWrite, error) {
		var ws []server.TxWrite
		for _, k := range distinct {
			if items[string(k)].Found {
				ws = append(ws, server.TxWrite{Key: k, Delete: true})
			}
		}
		n = len(ws)
		return ws, nil
	})
	return n, err
}

// distinctKeys drops repeated keys, keeping first appearances in order.
func distinctKeys(keys [][]byte) [][]byte {
	seen := make(map[string]bool, len(keys))
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		if !seen[string(k)] {
			seen[string(k)] = true
			out = append(out, k)
		}
	}
	return out
}

func (b *backend) localDel(ctx context.Context, keys ...[]byte) (int, error) {
	if err := b.checkOwned(keys...); err != nil {
		return 0, err
	}
	return b.local.Del(ctx, keys...)
}

// Exists implements server.Backend.
func (b *backend) Exists(ctx context.Context, keys ...[]byte) (int, error) {
	return b.countKeys(ctx, methodExists, b.local.Exists, keys)
}

// MGet implements server.Backend: each owner's keys are read from one
// snapshot on that owner; there is no snapshot across owners.
func (b *backend) MGet(ctx context.Context, keys ...[]byte) ([][]byte, error) {
	var out [][]byte
	err := b.retryMoved(ctx, func() error {
		var err error
		out, err = b.mgetOnce(ctx, keys)
		return err
	})
	return out, err
}

func (b *backend) mgetOnce(ctx context.Context, keys [][]byte) ([][]byte, error) {
	groups, err := b.split(keys)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	err = fanOut(groups, func(g *group) error {
		ks := pick(keys, g.idx)
		var vals [][]byte
		if g.addr == "" {
			v, err := b.local.MGet(ctx, ks...)
			if err != nil {
				return err
			}
			vals = v
		} else {
			r, err := call[keysReq, mgetResp](ctx, b, g.addr, methodMGet, &keysReq{Keys: ks})
			if err != nil {
				return remoteErr(g.id, g.addr, err)
			}
			if len(r.Values) != len(ks) || len(r.Present) != len(ks) {
				return fmt.Errorf("node %s answered %d values for %d keys", g.id, len(r.Values), len(ks))
			}
			vals = r.Values
			for j := range vals {
				if r.Present[j] && vals[j] == nil {
					vals[j] = []byte{}
				} else if !r.Present[j] {
					vals[j] = nil
				}
			}
		}
		for j, i := range g.idx {
			out[i] = vals[j]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MSet implements server.Backend: pairs of one owner commit in one batch
// on it; pairs of several owners commit atomically through a transaction.
func (b *backend) MSet(ctx context.Context, pairs ...server.KV) error {
	keys := make([][]byte, len(pairs))
	last := make(map[string]int, len(pairs))
	for i, p := range pairs {
		keys[i] = p.Key
		last[string(p.Key)] = i
	}
	groups, err := b.split(keys)
	if err != nil {
		return err
	}
	if len(groups) == 1 {
		return b.retryMoved(ctx, func() error { return b.msetOnce(ctx, pairs, keys) })
	}
	distinct := distinctKeys(keys)
	return b.execWrites(ctx, distinct, nil, func(map[string]server.TxItem) ([]server.TxWrite, error) {
		ws := make([]server.TxWrite, len(distinct))
		for i, k := range distinct {
			ws[i] = server.TxWrite{Key: k, Value: pairs[last[string(k)]].Value}
		}
		return ws, nil
	})
}

// msetOnce writes pairs whose keys one owner has.
func (b *backend) msetOnce(ctx context.Context, pairs []server.KV, keys [][]byte) error {
	groups, err := b.split(keys)
	if err != nil {
		return err
	}
	return fanOut(groups, func(g *group) error {
		req := msetReq{Pairs: make([]kvPair, len(g.idx))}
		for j, i := range g.idx {
			req.Pairs[j] = kvPair{Key: pairs[i].Key, Value: pairs[i].Value}
		}
		if g.addr == "" {
			_, err := b.localMSet(ctx, &req)
			return err
		}
		if _, err := call[msetReq, emptyResp](ctx, b, g.addr, methodMSet, &req); err != nil {
			return remoteErr(g.id, g.addr, err)
		}
		return nil
	})
}

func (b *backend) localMSet(ctx context.Context, req *msetReq) (*emptyResp, error) {
	kvs := make([]server.KV, len(req.Pairs))
	keys := make([][]byte, len(req.Pairs))
	for i, p := range req.Pairs {
		kvs[i] = server.KV{Key: p.Key, Value: p.Value}
		keys[i] = p.Key
	}
	if err := b.checkOwned(keys...); err != nil {
		return nil, err
	}
	if err := b.ensureHasData(ctx, keys...); err != nil {
		return nil, err
	}
	return &emptyResp{}, b.local.MSet(ctx, kvs...)
}

// ClusterView implements server.Backend from the placement table and the
// members' RESP addresses. It never blocks.
func (b *backend) ClusterView() server.ClusterView {
	v := server.ClusterView{Self: b.n.cfg.ID}
	if p := b.n.view.Load(); p != nil {
		v = *p
	}
	health := b.n.memberHealth(b.n.coord.Current())
	v.Nodes = slices.Clone(v.Nodes)
	for i := range v.Nodes {
		v.Nodes[i].Health = health[v.Nodes[i].ID]
	}
	return v
}

// register installs the key methods served to other nodes.
func (b *backend) register(r *transport.Router) {
	b.registerScan(r)
	transport.Register(r, methodGet, func(ctx context.Context, req *keyReq) (*getResp, error) {
		if err := b.checkOwned(req.Key); err != nil {
			return nil, err
		}
		r, err := b.localGet(ctx, req.Key)
		return &r, err
	})
	transport.Register(r, methodSet, func(ctx context.Context, req *setReq) (*setResp, error) {
		if err := b.checkOwned(req.Key); err != nil {
			return nil, err
		}
		r, err := b.localSet(ctx, req)
		return &r, err
	})
	transport.Register(r, methodIncrBy, func(ctx context.Context, req *incrReq) (*intResp, error) {
		if err := b.checkOwned(req.Key); err != nil {
			return nil, err
		}
		v, err := b.localIncr(ctx, req)
		return &intResp{N: v}, err
	})
	transport.Register(r, methodExpire, func(ctx context.Context, req *expireReq) (*boolResp, error) {
		if err := b.checkOwned(req.Key); err != nil {
			return nil, err
		}
		ok, err := b.local.Expire(ctx, req.Key, req.AtMs)
		return &boolResp{OK: ok}, err
	})
	transport.Register(r, methodPersist, func(ctx context.Context, req *keyReq) (*boolResp, error) {
		if err := b.checkOwned(req.Key); err != nil {
			return nil, err
		}
		ok, err := b.local.Persist(ctx, req.Key)
		return &boolResp{OK: ok}, err
	})
	transport.Register(r, methodExpireTime, func(ctx context.Context, req *keyReq) (*getResp, error) {
		if err := b.checkOwned(req.Key); err != nil {
			return nil, err
		}
		at, err := b.local.ExpireTime(ctx, req.Key)
		if errors.Is(err, server.ErrNotFound) {
			return &getResp{}, nil
		}
		return &getResp{ExpireAtMs: at, Found: err == nil}, err
	})
	transport.Register(r, methodDel, func(ctx context.Context, req *keysReq) (*countResp, error) {
		c, err := b.localDel(ctx, req.Keys...)
		return &countResp{N: c}, err
	})
	transport.Register(r, methodExists, func(ctx context.Context, req *keysReq) (*countResp, error) {
		if err := b.checkOwned(req.Keys...); err != nil {
			return nil, err
		}
		c, err := b.local.Exists(ctx, req.Keys...)
		return &countResp{N: c}, err
	})
	transport.Register(r, methodMGet, func(ctx context.Context, req *keysReq) (*mgetResp, error) {
		if err := b.checkOwned(req.Keys...); err != nil {
			return nil, err
		}
		vals, err := b.local.MGet(ctx, req.Keys...)
		if err != nil {
			return nil, err
		}
		present := make([]bool, len(vals))
		for i, v := range vals {
			present[i] = v != nil
		}
		return &mgetResp{Values: vals, Present: present}, nil
	})
	transport.Register(r, methodMSet, b.localMSet)
}
