package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/rebalancer"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

// Bucket move RPCs. The target of a move pulls (mig.pull, from the leader);
// the source serves the snapshot, the changes since, and the fence.
const (
	methodMigPull  = "mig.pull"
	methodMigBegin = "mig.begin"
	methodMigScan  = "mig.scan"
	methodMigDelta = "mig.delta"
	methodMigFence = "mig.fence"
	methodMigAbort = "mig.abort"
)

// Move driver bounds (the protocol's own are rebalancer's configs).
const (
	// migPageBytes bounds one snapshot page or delta answer.
	migPageBytes = 1 << 20
	// migScanAhead is how many snapshot pages a target fetches ahead of
	// the one it applies.
	migScanAhead = 2
	// migArenaBytes is the size of the buffers a snapshot page's keys and
	// values are copied into.
	migArenaBytes = 256 << 10
	// migHeldWait bounds how long a fence waits for prepared transactions
	// on its buckets to resolve.
	migHeldWait = 5 * time.Second
	// migTick is the move protocol's logical tick (rebalancer.LocalConfig's
	// times are in ticks: a fence times out after 40, 10 s).
	migTick = 250 * time.Millisecond
	// migAwaitTimeout bounds how long a source or target waits to apply a
	// move's start (its metadata lagging the leader's).
	migAwaitTimeout = 30 * time.Second
	// migPullTimeout bounds one move (copy included).
	migPullTimeout = 30 * time.Minute
)

// errFenced: the key's bucket is fenced for its switch to a new owner; the
// caller waits for the fence to go and routes again.
//
// It wraps server.ErrTryAgain, so one that reaches a client, from this node
// or relayed from another, is "-TRYAGAIN", never an internal error text.
var errFenced = fmt.Errorf("%w: node: bucket is switching owner", server.ErrTryAgain)

type (
	migEntry struct {
		Bucket   uint16
		Key      []byte
		Value    []byte
		ExpireAt int64
		Deleted  bool
	}
	// Index (in begin and pull) is the log index of the move's start.
	migBeginReq struct {
		Token   string
		Buckets []uint16
		Index   uint64
	}
	// migScanReq asks for the next page of the move's snapshot, in
	// (bucket, key) order across all its buckets, after (Bucket, After)
	// when Started.
	migScanReq struct {
		Token    string
		Bucket   uint16
		After    []byte
		Started  bool
		MaxBytes int
	}
	migScanResp struct {
		Entries []migEntry
		Done    bool
	}
	migDeltaReq  struct{ Token string }
	migDeltaResp struct {
		Entries []migEntry
		Left    int
	}
	migTokenReq struct{ Token string }
	migPullReq  struct {
		Token, From, FromAddr string
		Buckets               []uint16
		BytesPerSec           int64
		Index                 uint64
	}
	migPullResp struct{ Bytes, Keys int64 }
)

// outSnap is what the driver holds for one generation of an outgoing move:
// its engine snapshot and the scan's iterator, kept between pages (a wide
// iterator reads ahead in large chunks: opening one per page re-read and
// re-allocated that for every file), positioned at the entry after
// (lastBucket, lastKey), the end of the page served last. Under scanMu.
type outSnap struct {
	gen     uint64
	buckets []uint16 // ascending

	scanMu     sync.Mutex
	snap       *engine.Snapshot
	it         *engine.Iter
	lastBucket uint16
	lastKey    []byte
}

// migrator drives the move protocol's state machines (package rebalancer):
// Local, this node's side as source, target and cleanup, and Leader, the
// orchestration while this node leads. It feeds them the applied metadata
// (feed), a Tick, the RPCs, and performs their effects in order: engine
// snapshots, scans, deletes, proposals. Every call into a state machine is
// under mu; no I/O is.
type migrator struct {
	n *Node

	mu     sync.Mutex
	l      *rebalancer.Local
	leader *rebalancer.Leader
	pcfg   rebalancer.PullConfig
	snaps  map[string]*outSnap           // outgoing moves' snapshots by token
	pulls  map[string]context.CancelFunc // pulls running here
	// fenceCh is closed and replaced when a fence goes (Unfenced); wake
	// when a deletion, a pull or a pull's write ends (what PullStart waits
	// for); caughtUp is closed when the catch-up ends (Synced, or given up).
	fenceCh  chan struct{}
	wake     chan struct{}
	caughtUp chan struct{}
	delSem   chan struct{} // one DeleteBuckets at a time
	// lastWaiting is the last waiting message the leader logged (loop
	// goroutine only).
	lastWaiting string
	// nout and nfenced mirror Local's tapped and fenced bucket counts: the
	// data path's lock-free fast path.
	nout    atomic.Int64
	nfenced atomic.Int64
	copied  atomic.Int64 // leader: bytes copied by running moves so far
	kick    chan struct{}
	// etaStart and etaDone anchor the ETA (under mu).
	etaStart time.Time
	etaDone  int
}

func newMigrator(n *Node, catchUp bool) *migrator {
	return &migrator{n: n, l: rebalancer.NewLocal(n.cfg.ID, rebalancer.DefaultLocalConfig(), catchUp), leader: rebalancer.NewLeader(),
		pcfg: rebalancer.DefaultPullConfig(), snaps: map[string]*outSnap{}, pulls: map[string]context.CancelFunc{},
		fenceCh: make(chan struct{}), wake: make(chan struct{}), caughtUp: make(chan struct{}), delSem: make(chan struct{}, 1),
		kick: make(chan struct{}, 1)}
}

func (m *migrator) register(r *transport.Router) {
	transport.Register(r, methodMigPull, m.handlePull)
	transport.Register(r, methodMigBegin, m.handleBegin)
	transport.Register(r, methodMigScan, m.handleScan)
	transport.Register(r, methodMigDelta, m.handleDelta)
	transport.Register(r, methodMigFence, m.handleFence)
	transport.Register(r, methodMigAbort, func(ctx context.Context, req *migTokenReq) (*emptyResp, error) {
		m.step(func(l *rebalancer.Local) []rebalancer.Effect { return l.Abort(req.Token) })
		return &emptyResp{}, nil
	})
}

// step calls f on Local under mu, then performs its effects in order
// (outside mu).
func (m *migrator) step(f func(l *rebalancer.Local) []rebalancer.Effect) {
	m.mu.Lock()
	effs := f(m.l)
	m.mirrorLocked()
	m.mu.Unlock()
	m.perform(effs)
}

// mirrorLocked copies Local's counts to the fast-path atomics; mu is held.
func (m *migrator) mirrorLocked() {
	m.nout.Store(int64(m.l.Tapping()))
	m.nfenced.Store(int64(m.l.FencedCount()))
}

// broadcastLocked wakes whoever waits on *ch; mu is held.
func broadcastLocked(ch *chan struct{}) {
	close(*ch)
	*ch = make(chan struct{})
}

// perform carries out Local's effects, in order.
func (m *migrator) perform(effs []rebalancer.Effect) {
	n := m.n
	for _, e := range effs {
		switch e := e.(type) {
		case rebalancer.Unfenced:
			m.mu.Lock()
			broadcastLocked(&m.fenceCh)
			m.mu.Unlock()
		case rebalancer.Release:
			m.release(e.Token, e.Gen)
		case rebalancer.DeleteBuckets:
			if !n.goFunc(func() { m.deleteBuckets(e) }) {
				m.mu.Lock()
				m.l.Deleted(e.Buckets)
				m.mu.Unlock()
			}
		case rebalancer.CancelPull:
			m.mu.Lock()
			if cancel := m.pulls[e.Token]; cancel != nil {
				cancel()
			}
			m.mu.Unlock()
		case rebalancer.ProposeCancel:
			n.log.Warn("cancelling a move", "token", e.Token, "reason", e.Reason)
			n.goFunc(func() {
				ctx, cancel := context.WithTimeout(n.life, 3*time.Second)
				defer cancel()
				if _, err := n.leaderDo(ctx, leaderOp{Op: opCancelMove, ID: e.Token}, n.gossip.peerRPCAddrs()); err != nil {
					n.log.Warn("proposing a move's cancellation", "token", e.Token, "err", err)
				}
			})
		case rebalancer.Synced:
			n.synced.Store(true)
			n.catchingUp.Store(false)
			m.endCatchUp()
			n.log.Info("caught up with the metadata log", "index", e.Index)
		default:
			n.log.Error("move effect not performed here", "effect", fmt.Sprint(e))
		}
	}
}

// endCatchUp wakes what waits for the catch-up to end.
func (m *migrator) endCatchUp() {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.caughtUp:
	default:
		close(m.caughtUp)
	}
}

// feed gives Local every applied metadata change and a Tick every migTick.
func (m *migrator) feed() {
	n := m.n
	tick := time.NewTicker(migTick)
	defer tick.Stop()
	for {
		s, ch := n.coord.Watch()
		m.step(func(l *rebalancer.Local) []rebalancer.Effect { return l.Applied(s) })
		select {
		case <-ch:
		case <-tick.C:
			m.step(func(l *rebalancer.Local) []rebalancer.Effect { return l.Tick() })
		case <-n.done:
			return
		}
	}
}

// release closes what the driver holds for generation gen of token.
func (m *migrator) release(token string, gen uint64) {
	m.mu.Lock()
	os := m.snaps[token]
	if os == nil || os.gen != gen {
		m.mu.Unlock()
		return
	}
	delete(m.snaps, token)
	m.mu.Unlock()
	os.scanMu.Lock() // a page being served finishes first
	sn, it := os.snap, os.it
	os.snap, os.it = nil, nil
	os.scanMu.Unlock()
	if it != nil {
		it.Close()
	}
	if sn != nil {
		sn.Close()
	}
}

// ---- hooks on the data path ----

// onApplied records a key written to a bucket being moved off this node.
func (m *migrator) onApplied(bucket uint16, key []byte) {
	if m.nout.Load() == 0 {
		return
	}
	m.mu.Lock()
	m.l.Written(bucket, key)
	m.mu.Unlock()
}

// fencedErr returns errFenced if any key's bucket is fenced.
func (m *migrator) fencedErr(keys ...[]byte) error {
	if m.nfenced.Load() == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if m.l.Fenced(router.Bucket(k)) {
			return fmt.Errorf("%w: bucket %d", errFenced, router.Bucket(k))
		}
	}
	return nil
}

// waitUnfenced waits until key's bucket is not fenced and the node is not
// catching up (or ctx ends).
func (m *migrator) waitUnfenced(ctx context.Context, key []byte) error {
	b := router.Bucket(key)
	for {
		m.mu.Lock()
		f, ch, synced := m.l.Fenced(b), m.fenceCh, m.caughtUp
		m.mu.Unlock()
		if !f && !m.n.catchingUp.Load() {
			return nil
		}
		if !f {
			ch = synced
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: bucket %d still switching owner: %v", errFenced, b, ctx.Err())
		}
	}
}

// ---- source side ----

func (m *migrator) handleBegin(ctx context.Context, req *migBeginReq) (*emptyResp, error) {
	n := m.n
	// The leader committed StartMove before asking the target; wait until
	// this node has applied it too.
	s, err := m.awaitMove(ctx, req.Token, req.Index)
	if err != nil {
		return nil, err
	}
	var gen uint64
	m.step(func(l *rebalancer.Local) (effs []rebalancer.Effect) {
		gen, effs, err = l.Begin(s, req.Token, req.Buckets)
		return effs
	})
	if err != nil {
		return nil, err
	}
	drop := func() {
		m.step(func(l *rebalancer.Local) []rebalancer.Effect { return l.Drop(req.Token, gen) })
	}
	// The tap is on: every write applied from now on is recorded. Writes
	// applied before may not be durable yet, and a snapshot sees only
	// durable ones: wait for them, so the snapshot has everything the tap
	// missed.
	if err := n.store.WaitVisible(ctx); err != nil {
		drop()
		return nil, err
	}
	sn, err := n.store.Snapshot()
	if err != nil {
		drop()
		return nil, err
	}
	m.mu.Lock()
	live := m.l.Snapshotted(req.Token, gen)
	if live {
		m.snaps[req.Token] = &outSnap{gen: gen, buckets: slices.Sorted(slices.Values(req.Buckets)), snap: sn}
	}
	m.mu.Unlock()
	if !live { // ended meanwhile
		sn.Close()
		return nil, fmt.Errorf("%w: move %s ended while it started", coordinator.ErrUnknownMove, req.Token)
	}
	return &emptyResp{}, nil
}

// awaitMove waits until this node has applied the start of move token
// (log index index; 0 if unknown) and returns the state that has it; it
// fails if the move has ended by then (cancelled, or switched), or when
// ctx ends.
func (m *migrator) awaitMove(ctx context.Context, token string, index uint64) (*coordinator.State, error) {
	ctx, cancel := context.WithTimeout(ctx, migAwaitTimeout)
	defer cancel()
	for {
		s, ch := m.n.coord.Watch()
		if _, ok := s.Move(token); ok {
			return s, nil
		}
		if index > 0 && s.Index() >= index {
			return nil, fmt.Errorf("%w: move %s has already ended", coordinator.ErrUnknownMove, token)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("move %s unknown here: %w", token, ctx.Err())
		}
	}
}

// snapOf returns the live snapshot generation of token.
func (m *migrator) snapOf(token string) (*outSnap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gen, err := m.l.Serving(token)
	if err != nil {
		return nil, err
	}
	os := m.snaps[token]
	if os == nil || os.gen != gen {
		return nil, fmt.Errorf("%w: move %s has no snapshot here", coordinator.ErrUnknownMove, token)
	}
	return os, nil
}

func (m *migrator) handleScan(ctx context.Context, req *migScanReq) (*migScanResp, error) {
	os, err := m.snapOf(req.Token)
	if err != nil {
		return nil, err
	}
	buckets := os.buckets
	maxBytes := min(max(req.MaxBytes, 4096), migPageBytes)
	os.scanMu.Lock()
	defer os.scanMu.Unlock()
	if os.snap == nil {
		return nil, fmt.Errorf("%w: move %s has no snapshot here (not begun, or ended)", coordinator.ErrUnknownMove, req.Token)
	}
	it := os.it
	continues := it != nil && req.Started && req.Bucket == os.lastBucket && bytes.Equal(req.After, os.lastKey)
	if !continues { // the first page, or a page asked again (a retry)
		if it == nil {
			it = os.snap.NewIter(buckets[0], buckets[len(buckets)-1])
			os.it = it
		}
		if req.Started {
			it.SeekGE(req.Bucket, req.After)
			if it.Valid() && it.Bucket() == req.Bucket && bytes.Equal(it.Key(), req.After) {
				it.Next()
			}
		} else {
			it.First()
		}
	}
	resp := &migScanResp{}
	var arena []byte
	defer func() {
		if n := len(resp.Entries); n > 0 {
			os.lastBucket, os.lastKey = resp.Entries[n-1].Bucket, resp.Entries[n-1].Key
		}
	}()
	size := 0
	for it.Valid() {
		b := it.Bucket()
		i, in := slices.BinarySearch(buckets, b)
		if !in { // skip to the next bucket of the move
			if i == len(buckets) {
				break
			}
			it.SeekGE(buckets[i], nil)
			continue
		}
		if size >= maxBytes {
			return resp, nil
		}
		// Keys and values are copied into one arena per page (the
		// iterator's memory is reused): two allocations per entry made
		// the source's GC the migration's bottleneck.
		k, v := it.Key(), it.Value()
		if len(arena)+len(k)+len(v) > cap(arena) {
			arena = make([]byte, 0, max(migArenaBytes, len(k)+len(v)))
		}
		arena = append(arena, k...)
		key := arena[len(arena)-len(k) : len(arena) : len(arena)]
		arena = append(arena, v...)
		val := arena[len(arena)-len(v) : len(arena) : len(arena)]
		e := migEntry{Bucket: b, Key: key, Value: val, ExpireAt: it.ExpireAt()}
		size += len(e.Key) + len(e.Value) + 16
		resp.Entries = append(resp.Entries, e)
		it.Next()
	}
	if err := it.Error(); err != nil {
		it.Close() // the next page (a retry) opens a fresh one
		os.it, resp.Entries = nil, nil
		return nil, err
	}
	resp.Done = true
	return resp, nil
}

// takeDelta takes up to maxBytes worth of changed keys from Local (all
// when maxBytes <= 0) and reads their current values.
func (m *migrator) takeDelta(token string, maxBytes int) ([]migEntry, int, error) {
	m.mu.Lock()
	keys, left, err := m.l.TakeDelta(token, maxBytes)
	m.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	out := make([]migEntry, 0, len(keys))
	for _, k := range keys {
		it, err := m.n.store.GetLatestItem(k.Bucket, []byte(k.Key))
		switch {
		case errors.Is(err, engine.ErrNotFound):
			out = append(out, migEntry{Bucket: k.Bucket, Key: []byte(k.Key), Deleted: true})
		case err != nil:
			return nil, 0, err
		default:
			out = append(out, migEntry{Bucket: k.Bucket, Key: []byte(k.Key), Value: it.Value, ExpireAt: it.ExpireAt})
		}
	}
	return out, left, nil
}

func (m *migrator) handleDelta(ctx context.Context, req *migDeltaReq) (*migDeltaResp, error) {
	e, left, err := m.takeDelta(req.Token, migPageBytes)
	if err != nil {
		return nil, err
	}
	return &migDeltaResp{Entries: e, Left: left}, nil
}

// handleFence has Local fence the move's buckets here (no read or write of
// them until the log's verdict), waits for writes in flight and for
// prepared transactions on them, and returns the last changes.
func (m *migrator) handleFence(ctx context.Context, req *migDeltaReq) (*migDeltaResp, error) {
	m.mu.Lock()
	buckets, err := m.l.Fence(req.Token)
	m.mirrorLocked()
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m.n.failpoint("mig-source-fence")
	unfence := func() {
		m.step(func(l *rebalancer.Local) []rebalancer.Effect { return l.Unfence(req.Token) })
	}
	// Writes that passed the fence check hold a stripe lock until applied
	// (and recorded); prepares hold them until their keys are held.
	if err := m.n.local.Barrier(ctx); err != nil {
		unfence()
		return nil, err
	}
	// Prepared transactions block the fence of their buckets until
	// resolved: their commit would write here after the last delta. New
	// prepares on fenced buckets vote no (txns.prepare).
	set := make(map[uint16]bool, len(buckets))
	for _, b := range buckets {
		set[b] = true
	}
	deadline := time.NewTimer(migHeldWait)
	defer deadline.Stop()
	for {
		held, released := m.n.txns.holdsAny(set)
		if !held {
			break
		}
		select {
		case <-released:
		case <-deadline.C:
			unfence()
			return nil, fmt.Errorf("move %s: prepared transactions still hold keys of its buckets after %s", req.Token, migHeldWait)
		case <-ctx.Done():
			unfence()
			return nil, fmt.Errorf("move %s: prepared transactions still hold keys of its buckets: %w", req.Token, ctx.Err())
		}
	}
	e, _, err := m.takeDelta(req.Token, 0)
	if err != nil {
		return nil, err
	}
	return &migDeltaResp{Entries: e}, nil
}

// ---- target side ----

// handlePull runs the target side of a move: rebalancer.Pull's steps
// (begin, copy, tail rounds, fence, durable), each write admitted by
// Local (ApplyBegin: a newer pull of the same buckets, or the move's end,
// stops this one's writes).
func (m *migrator) handlePull(ctx context.Context, req *migPullReq) (*migPullResp, error) {
	ctx, cancel := context.WithTimeout(ctx, migPullTimeout)
	defer cancel()
	n := m.n
	// Wait until this node has applied the move's start, as the source
	// does: from then until its switch or cancellation is applied here the
	// move protects the buckets from cleanup (Local judges by the newest
	// state it was given, this one included).
	s, err := m.awaitMove(ctx, req.Token, req.Index)
	if err != nil {
		return nil, err
	}
	for {
		var wait bool
		m.mu.Lock()
		wait, effs, err := m.l.PullStart(s, req.Token, req.Buckets)
		if err == nil && !wait {
			m.pulls[req.Token] = cancel
		}
		wake := m.wake
		m.mu.Unlock()
		m.perform(effs)
		if err != nil {
			return nil, err
		}
		if !wait {
			break
		}
		select { // a cleanup deletes stale data of these buckets, or an older pull's write ends
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer m.step(func(l *rebalancer.Local) []rebalancer.Effect {
		delete(m.pulls, req.Token)
		broadcastLocked(&m.wake)
		return l.PullEnd(req.Token)
	})
	// admit runs f as one of the pull's writes, if Local still admits them.
	admit := func(f func() error) error {
		m.mu.Lock()
		err := m.l.ApplyBegin(req.Token)
		m.mu.Unlock()
		if err != nil {
			return err
		}
		defer func() {
			m.mu.Lock()
			m.l.ApplyEnd(req.Token)
			broadcastLocked(&m.wake)
			m.mu.Unlock()
		}()
		return f()
	}
	// Whatever an earlier attempt left is stale.
	if err := admit(func() error { return n.store.DeleteBuckets(ctx, req.Buckets) }); err != nil {
		return nil, err
	}
	res := &migPullResp{}
	lim := newRateLimiter(req.BytesPerSec)
	var waits []func() error
	defer func() { // nothing left behind on an early return
		for _, w := range waits {
			_ = w()
		}
	}()
	// applyAsync writes changes (one engine batch per shard, so none takes
	// the store-wide cross-shard path) without waiting for their sync: the
	// waits are collected, and all are durable before the fence's answer is
	// confirmed (StepDurable).
	applyAsync := func(es []migEntry) error {
		if len(es) == 0 {
			return nil
		}
		byShard := map[int]*engine.Batch{}
		size := 0
		for _, e := range es {
			sh := n.store.ShardOf(e.Bucket)
			b := byShard[sh]
			if b == nil {
				b = &engine.Batch{}
				byShard[sh] = b
			}
			if e.Deleted {
				b.Delete(e.Bucket, e.Key)
			} else {
				b.SetWithExpiry(e.Bucket, e.Key, e.Value, e.ExpireAt)
			}
			size += len(e.Key) + len(e.Value)
		}
		if err := admit(func() error {
			for _, b := range byShard {
				wait, err := n.store.WriteApplied(ctx, b)
				if err != nil {
					return err
				}
				waits = append(waits, wait)
			}
			return nil
		}); err != nil {
			return err
		}
		n.failpoint("mig-target-copy")
		res.Bytes += int64(size)
		res.Keys += int64(len(es))
		m.copied.Add(int64(size))
		return lim.wait(ctx, size)
	}
	p := rebalancer.NewPull(m.pcfg)
	for {
		switch p.Next() {
		case rebalancer.StepBegin:
			_, err := transport.Call[migBeginReq, emptyResp](ctx, n.rpc, req.FromAddr, methodMigBegin, &migBeginReq{Token: req.Token, Buckets: req.Buckets, Index: req.Index})
			p.Did(err, 0)
		case rebalancer.StepCopy:
			p.Did(admit(func() error { return m.copySnapshot(ctx, req, res, lim) }), 0)
		case rebalancer.StepTail:
			r, err := transport.Call[migDeltaReq, migDeltaResp](ctx, n.rpc, req.FromAddr, methodMigDelta, &migDeltaReq{Token: req.Token})
			if err == nil {
				err = applyAsync(r.Entries)
			}
			changes := 0
			if r != nil {
				changes = r.Left + len(r.Entries)
			}
			p.Did(err, changes)
		case rebalancer.StepFence:
			r, err := transport.Call[migDeltaReq, migDeltaResp](ctx, n.rpc, req.FromAddr, methodMigFence, &migDeltaReq{Token: req.Token})
			if err == nil {
				err = applyAsync(r.Entries)
			}
			p.Did(err, 0)
		case rebalancer.StepDurable:
			var err error
			for _, w := range waits {
				err = errors.Join(err, w())
			}
			waits = nil
			p.Did(err, 0)
		case rebalancer.StepDone:
			return res, nil
		default: // StepFailed
			if p.AbortSource {
				actx, acancel := context.WithTimeout(n.life, 2*time.Second)
				_, _ = transport.Call[migTokenReq, emptyResp](actx, n.rpc, req.FromAddr, methodMigAbort, &migTokenReq{Token: req.Token})
				acancel()
			}
			return nil, fmt.Errorf("move %s from %s: %w", req.Token, req.From, p.Err)
		}
	}
}

// copySnapshot copies the source's snapshot of the move into an engine
// ingestion (segment files added to the store when complete: no WAL, no
// memtable). The next page is fetched while this one is applied: a
// fetcher runs migScanAhead pages ahead at most (a bounded channel), so
// the copy is not one round trip plus one apply per page.
func (m *migrator) copySnapshot(ctx context.Context, req *migPullReq, res *migPullResp, lim *rateLimiter) error {
	n := m.n
	type page struct {
		r   *migScanResp
		err error
	}
	fctx, stopFetch := context.WithCancel(ctx)
	pages := make(chan page, migScanAhead)
	fetched := make(chan struct{})
	go func() { // owned: copySnapshot waits for it (fetched) on every path
		defer close(fetched)
		defer close(pages)
		var bk uint16
		var after []byte
		started := false
		for {
			r, err := transport.Call[migScanReq, migScanResp](fctx, n.rpc, req.FromAddr, methodMigScan, &migScanReq{Token: req.Token, Bucket: bk, After: after, Started: started, MaxBytes: migPageBytes})
			select {
			case pages <- page{r, err}:
			case <-fctx.Done():
				return
			}
			if err != nil || r.Done || len(r.Entries) == 0 {
				return
			}
			last := r.Entries[len(r.Entries)-1]
			bk, after, started = last.Bucket, last.Key, true
		}
	}()
	defer func() {
		stopFetch()
		<-fetched
	}()
	ing, err := n.store.NewIngestion(ctx, req.Buckets)
	if err != nil {
		return err
	}
	for p := range pages {
		if p.err != nil {
			ing.Abort()
			return fmt.Errorf("from %s: %w", req.From, p.err)
		}
		size := 0
		for _, e := range p.r.Entries {
			if err := ing.Add(e.Bucket, e.Key, e.Value, e.ExpireAt); err != nil {
				ing.Abort()
				return err
			}
			size += len(e.Key) + len(e.Value)
		}
		n.failpoint("mig-target-copy")
		res.Bytes += int64(size)
		res.Keys += int64(len(p.r.Entries))
		m.copied.Add(int64(size))
		if err := lim.wait(ctx, size); err != nil {
			ing.Abort()
			return err
		}
	}
	if err := ing.Commit(ctx); err != nil {
		ing.Abort()
		return err
	}
	return nil
}

// ---- leader side ----

// loop runs on every node: as leader it starts and finishes moves; on any
// node it cleans buckets it holds but does not own.
//
// Cleanup is cheap where the node knows what it left: a source deletes
// what it handed over, a target what a cancelled move had copied (Local
// asks for both). The full scan for anything else (a node that crashed
// before deleting) runs once the node is synced after its start, and
// again whenever a placement change has finished — never during a
// migration, where it would compete with the moves on every switch.
func (m *migrator) loop() {
	n := m.n
	var lastClean time.Time
	cleanDue := true
	var lastDigest [32]byte
	for {
		s, ch := n.coord.Watch()
		if d := s.Table(); d != nil && d.Digest() != lastDigest {
			lastDigest, cleanDue = d.Digest(), true
		}
		if cleanDue && n.synced.Load() && (lastClean.IsZero() || s.Target() == nil && len(s.Moves()) == 0) &&
			time.Since(lastClean) > 2*time.Second {
			lastClean, cleanDue = time.Now(), false
			m.cleanup(s)
		}
		if n.coord.IsLeader() {
			m.lead(s)
		}
		select {
		case <-ch:
		case <-m.kick:
		case <-time.After(time.Second):
		case <-n.done:
			return
		}
	}
}

// newToken makes a move's token.
func newToken() string {
	var tb [8]byte
	_, _ = rand.Read(tb[:])
	return hex.EncodeToString(tb[:])
}

// lead performs the Leader's plan: cancel orphan moves, start new ones
// and have their targets pull them.
func (m *migrator) lead(s *coordinator.State) {
	n := m.n
	ctx, cancel := context.WithTimeout(n.life, 5*time.Second)
	defer cancel()
	lim := s.Limits()
	m.mu.Lock()
	effs := m.leader.Plan(s, func(id string) bool { return m.alive(s, id) }, lim.Concurrency, newToken)
	m.mu.Unlock()
	if s.Target() != nil {
		if w := m.waitingFor(s); w != m.lastWaiting {
			m.lastWaiting = w
			if w != "" {
				n.log.Warn("migration cannot finish until these nodes are back (or removed)", "waiting", w)
			} else {
				n.log.Info("migration no longer waiting for any node")
			}
		}
	}
	failed := false
	for _, e := range effs {
		switch e := e.(type) {
		case rebalancer.ProposeCancel:
			if _, err := n.coord.Apply(ctx, coordinator.CancelMove{Token: e.Token, Reason: e.Reason}); err != nil && !errors.Is(err, coordinator.ErrUnknownMove) {
				n.log.Warn("cancelling an orphan move", "token", e.Token, "err", err)
			}
		case rebalancer.ProposeStart:
			mv := e.Move
			if failed {
				m.mu.Lock()
				m.leader.StartFailed(mv.Token)
				m.mu.Unlock()
				continue
			}
			res, err := n.coord.Apply(ctx, coordinator.StartMove{Token: mv.Token, From: mv.From, To: mv.To, Buckets: mv.Buckets})
			m.mu.Lock()
			var run []rebalancer.Effect
			if err != nil {
				m.leader.StartFailed(mv.Token)
			} else {
				run = m.leader.Started(mv, res.Index, lim.BytesPerSec)
			}
			m.mu.Unlock()
			if err != nil {
				n.log.Warn("starting a move", "from", mv.From, "to", mv.To, "buckets", len(mv.Buckets), "err", err)
				failed = true
				continue
			}
			for _, r := range run {
				r := r.(rebalancer.RunPull)
				if !n.goFunc(func() { m.runMove(r) }) {
					m.mu.Lock()
					m.leader.Ended(mv.Token) // closing: the next leader cancels the move
					m.mu.Unlock()
				}
			}
		}
	}
}

// waitingFor says which nodes a migration cannot proceed without.
func (m *migrator) waitingFor(s *coordinator.State) string {
	return rebalancer.Waiting(s, func(id string) bool { return m.alive(s, id) }, func(id string) string {
		if mem, ok := s.Member(id); ok {
			return string(mem.State)
		}
		return "unknown member"
	})
}

func (m *migrator) alive(s *coordinator.State, id string) bool {
	mem, ok := s.Member(id)
	return ok && (mem.State == coordinator.StateActive || mem.State == coordinator.StateDraining || mem.State == coordinator.StateJoining)
}

// runMove has the target pull the buckets, then performs the Leader's
// verdict: commit the switch, or the cancellation if anything failed.
func (m *migrator) runMove(r rebalancer.RunPull) {
	n := m.n
	mv := r.Move
	defer func() {
		m.mu.Lock()
		m.leader.Ended(mv.Token)
		m.mu.Unlock()
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}()
	start := time.Now()
	src, ok1 := n.peer(mv.From)
	dst, ok2 := n.peer(mv.To)
	var res *migPullResp
	err := fmt.Errorf("no address for %s or %s", mv.From, mv.To)
	if ok1 && ok2 {
		ctx, cancel := context.WithTimeout(n.life, migPullTimeout)
		res, err = transport.Call[migPullReq, migPullResp](ctx, n.rpc, dst.RPCAddr, methodMigPull,
			&migPullReq{Token: mv.Token, From: mv.From, FromAddr: src.RPCAddr, Buckets: mv.Buckets, BytesPerSec: r.BytesPerSec, Index: r.Index})
		cancel()
	}
	var bytes int64
	if res != nil {
		bytes = res.Bytes
	}
	m.mu.Lock()
	effs := m.leader.PullDone(mv.Token, bytes, err)
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(n.life, 10*time.Second)
	defer cancel()
	for _, e := range effs {
		switch e := e.(type) {
		case rebalancer.ProposeCancel:
			n.log.Warn("move failed, cancelling", "token", mv.Token, "from", mv.From, "to", mv.To, "buckets", len(mv.Buckets), "err", e.Reason)
			if _, cerr := n.coord.Apply(ctx, coordinator.CancelMove{Token: e.Token, Reason: e.Reason}); cerr != nil && !errors.Is(cerr, coordinator.ErrUnknownMove) {
				n.log.Warn("cancelling a failed move", "token", e.Token, "err", cerr)
			}
		case rebalancer.ProposeFinish:
			if _, err := n.coord.Apply(ctx, coordinator.FinishMove{Token: e.Token, Bytes: e.Bytes}); err != nil {
				// Not committed (or unknown): a later leader pass cancels it if it
				// is still there; the source stays fenced until then.
				n.log.Warn("switching moved buckets", "token", e.Token, "err", err)
				return
			}
			n.log.Info("buckets moved", "from", mv.From, "to", mv.To, "buckets", len(mv.Buckets), "keys", res.Keys, "bytes", res.Bytes, "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// ---- cleanup ----

// cleanup finds local data of buckets s says this node neither owns nor
// receives (left by a cancelled or interrupted move, or by a source that
// restarted before deleting what it handed over) and has Local's gate
// delete it. It seeks only through the runs of such buckets, one seek per
// run and per bucket with data.
func (m *migrator) cleanup(s *coordinator.State) {
	n := m.n
	t := s.Table()
	if t == nil {
		return
	}
	self := n.cfg.ID
	receiving := map[uint16]bool{}
	for _, mv := range s.Moves() {
		if mv.To == self {
			for _, b := range mv.Buckets {
				receiving[b] = true
			}
		}
	}
	// A replica's buckets are its own too (every owner keeps its copy).
	foreign := func(b uint16) bool { return !t.HasOwner(b, self) && !receiving[b] }
	it, err := n.store.NewIter(0, router.NumBuckets-1)
	if err != nil {
		return
	}
	var stale []uint16
	for b := 0; b < router.NumBuckets; {
		if !foreign(uint16(b)) {
			b++
			continue
		}
		it.SeekGE(uint16(b), nil)
		if !it.Valid() {
			break
		}
		got := int(it.Bucket())
		if got == b {
			stale = append(stale, uint16(b))
			b++
			continue
		}
		b = got // the next bucket with data: foreign or not, judged next
	}
	it.Close()
	if len(stale) == 0 {
		return
	}
	m.mu.Lock()
	effs := m.l.Clean(s, stale)
	m.mu.Unlock()
	for _, e := range effs {
		if d, ok := e.(rebalancer.DeleteBuckets); ok {
			m.deleteBuckets(d)
		}
	}
}

// deleteBuckets performs a DeleteBuckets: Local marked the buckets
// deleting, so no pull registers them meanwhile; the store's delete runs
// outside mu, one at a time.
func (m *migrator) deleteBuckets(d rebalancer.DeleteBuckets) {
	n := m.n
	ctx, cancel := context.WithTimeout(n.life, time.Minute)
	defer cancel()
	var err error
	select {
	case m.delSem <- struct{}{}:
		err = n.store.DeleteBuckets(ctx, d.Buckets)
		<-m.delSem
	case <-ctx.Done():
		err = ctx.Err()
	}
	m.mu.Lock()
	m.l.Deleted(d.Buckets)
	broadcastLocked(&m.wake)
	m.mu.Unlock()
	if err != nil {
		n.log.Warn("deleting data of buckets not owned here", "buckets", len(d.Buckets), "why", d.Why, "err", err)
		return
	}
	n.log.Info("deleted the data of buckets not owned here", "buckets", len(d.Buckets), "why", d.Why)
}

// rateLimiter spaces writes to bytesPerSec (0: unlimited).
type rateLimiter struct {
	rate  int64
	start time.Time
	sent  int64
}

func newRateLimiter(rate int64) *rateLimiter { return &rateLimiter{rate: rate, start: time.Now()} }

func (l *rateLimiter) wait(ctx context.Context, n int) error {
	if l.rate <= 0 {
		return nil
	}
	l.sent += int64(n)
	due := l.start.Add(time.Duration(float64(l.sent) / float64(l.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// guard is the local keyspace's kv.KeyGuard (kv.WithGuard): keys are not
// served while the node catches up after a restart or while their bucket
// is fenced for a move (errFenced: the caller waits and routes again), nor
// while a prepared transaction holds them.
//
// It also checks, for writes under the key's stripe lock, that this node
// owns every key in the applied metadata: ownership was judged before
// (routing, the forwarded call's check) by a table that a move's switch
// may have replaced since — e.g. a write that waited on the fence and was
// woken when it lifted. The order matters: the fence is lifted only after
// the switch is applied, so a write that finds its bucket unfenced here
// also finds the new owner in the table read after it. A write that
// passes holds its stripe lock until applied, and a source's fence waits
// for every stripe lock (Barrier) before its last delta: the switch cannot
// overtake it.
//
// With replication, this node must also be the buckets' primary holding
// a lease with everything committed applied (replicator.readable); while
// it is not yet (a lease round in flight, a restart's new epoch) the
// guard waits for the replication loop, until ctx ends.
func (n *Node) guard(ctx context.Context, keys ...[]byte) error {
	for {
		err := n.servable(keys...)
		if err == nil {
			break
		}
		if !errors.Is(err, errReplNotReady) {
			return err
		}
		if werr := n.repl.waitProgress(ctx); werr != nil {
			return err
		}
	}
	return n.txns.guard(ctx, keys...)
}

// servable is the guard without the wait for prepared transactions; reads
// check it again after reading (kv.WithRecheck). A read whose
// bucket is still unfenced and owned here after the read cannot have
// missed a write at a new owner: the fence goes up before the last delta,
// hence before any switch, and comes down only once the switch is applied
// here, so the table read after it names the new owner.
func (n *Node) servable(keys ...[]byte) error {
	if n.catchingUp.Load() {
		return fmt.Errorf("%w: node is catching up with the cluster's metadata", errFenced)
	}
	if err := n.mig.fencedErr(keys...); err != nil {
		return err
	}
	s := n.coord.Current()
	t := s.Table()
	if t == nil {
		return fmt.Errorf("%w: no placement yet", server.ErrClusterDown)
	}
	for _, k := range keys {
		if o := n.ownerOf(t, k); o != n.cfg.ID {
			return fmt.Errorf("%w: bucket %d belongs to %s at epoch %d", ErrNotOwner, router.Bucket(k), o, t.Epoch())
		}
	}
	return n.repl.readable(keys...)
}

// primaries is the bucket → primary map of one metadata state: the
// buckets a failover gave to another replica than the table's first owner.
type primaries struct {
	s *coordinator.State
	m map[uint16]string
}

// ownerOf is the node serving key: its bucket's primary — the table's
// first owner unless a failover promoted another replica.
func (n *Node) ownerOf(t *router.Table, key []byte) string {
	s := n.coord.Current()
	p := n.prims.Load()
	if p == nil || p.s != s {
		p = &primaries{s: s, m: s.PrimaryOverrides()}
		n.prims.Store(p)
	}
	if len(p.m) > 0 {
		if o, ok := p.m[router.Bucket(key)]; ok {
			return o
		}
	}
	return t.Owner(key)
}

// catchUp waits until this restarted node has applied the metadata log as
// far as the leader had committed when asked (bounded: after 30 s without
// a leader it serves anyway), so it does not serve buckets a move switched
// away while it was down. Local decides when that is (CatchUpTo, then
// Applied) and says Synced.
func (n *Node) catchUp() {
	m := n.mig
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(n.life, 2*time.Second)
		r, err := n.leaderDo(ctx, leaderOp{Op: opIndex}, n.gossip.peerRPCAddrs())
		cancel()
		if err == nil {
			m.step(func(l *rebalancer.Local) []rebalancer.Effect {
				// The feeder may not have given it the newest state yet.
				return append(l.Applied(n.coord.Current()), l.CatchUpTo(r.Index)...)
			})
			m.mu.Lock()
			synced := m.caughtUp
			m.mu.Unlock()
			select {
			case <-synced:
				return
			case <-time.After(time.Until(deadline)):
			case <-n.done:
				return
			}
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-n.done:
			return
		}
	}
	m.mu.Lock()
	m.l.GiveUpCatchUp()
	m.mu.Unlock()
	n.catchingUp.Store(false)
	m.endCatchUp()
	n.log.Warn("no leader told the metadata log's end within 30 s: serving anyway")
}

// progress summarises the migration for the admin API. The ETA comes from
// the buckets this node saw finish since the migration began.
func (m *migrator) progress(s *coordinator.State) server.MigrationInfo {
	p := s.Migration()
	moving := 0
	for _, mv := range s.Moves() {
		moving += len(mv.Buckets)
	}
	lim := s.Limits()
	info := server.MigrationInfo{Active: s.Target() != nil, Pending: len(s.Pending()), Moving: moving, Done: p.Done, Total: p.Total,
		Bytes: p.Bytes, ETASeconds: -1, Concurrency: lim.Concurrency, BytesPerSec: lim.BytesPerSec, Waiting: m.waitingFor(s)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !info.Active {
		m.etaStart, m.etaDone = time.Time{}, 0
		if p.Total > 0 {
			info.ETASeconds = 0
		}
		return info
	}
	if m.etaStart.IsZero() || p.Done < m.etaDone {
		m.etaStart, m.etaDone = time.Now(), p.Done
	}
	if el := time.Since(m.etaStart).Seconds(); p.Done > m.etaDone && el > 0 {
		rate := float64(p.Done-m.etaDone) / el
		info.ETASeconds = float64(info.Pending+moving) / rate
	}
	return info
}

// applyMoveLimits sets the migration limits given at start (--move-*),
// retrying until a leader takes them (bounded: 1 minute).
func (n *Node) applyMoveLimits() {
	for i := 0; i < 60; i++ {
		lim := n.coord.Current().Limits()
		if n.cfg.MoveConcurrency > 0 {
			lim.Concurrency = n.cfg.MoveConcurrency
		}
		if n.cfg.MoveBytesPerSec >= 0 {
			lim.BytesPerSec = n.cfg.MoveBytesPerSec
		}
		ctx, cancel := context.WithTimeout(n.life, 2*time.Second)
		_, err := n.leaderDo(ctx, leaderOp{Op: opLimits, Limits: lim}, n.gossip.peerRPCAddrs())
		cancel()
		if err == nil {
			return
		}
		select {
		case <-n.done:
			return
		case <-time.After(time.Second):
		}
	}
	n.log.Warn("migration limits from the command line not applied: no leader took them")
}
