package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
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

// Move bounds.
const (
	// migChunkBuckets is the most buckets one move carries: big enough to
	// amortize the two Raft entries and the fence of a move.
	migChunkBuckets = 256
	// migPageBytes bounds one snapshot page or delta answer.
	migPageBytes = 1 << 20
	// migScanAhead is how many snapshot pages a target fetches ahead of
	// the one it applies.
	migScanAhead = 2
	// migArenaBytes is the size of the buffers a snapshot page's keys and
	// values are copied into.
	migArenaBytes = 256 << 10
	// migDirtyMax bounds the keys a source remembers as changed during one
	// move; past it the move fails and is retried from scratch.
	migDirtyMax = 1 << 20
	// migTailRounds bounds the catch-up rounds before the fence;
	// migFenceLag is the change count small enough to fence at.
	migTailRounds = 64
	migFenceLag   = 512
	// migHeldWait bounds how long a fence waits for prepared transactions
	// on its buckets to resolve.
	migHeldWait = 5 * time.Second
	// migFenceTimeout: a source fenced this long without the switch or the
	// cancellation committed proposes the cancellation itself.
	migFenceTimeout = 10 * time.Second
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

// outMove is this node's side of a move as source.
type outMove struct {
	token   string
	buckets map[uint16]bool
	snap    *engine.Snapshot
	// The snapshot scan's iterator, kept between pages (a wide iterator
	// reads ahead in large chunks: opening one per page re-read and
	// re-allocated that for every file), positioned at the entry after
	// (lastBucket, lastKey), the end of the page served last. Under scanMu.
	scanMu     sync.Mutex
	it         *engine.Iter
	lastBucket uint16
	lastKey    []byte
	dirty      map[string]uint16 // changed keys → bucket
	overflow   bool
	fenced     bool
	fencedAt   time.Time
}

// migrator runs bucket moves: as source (tap, snapshot, fence), as target
// (pull), as leader (orchestration), and on every node the cleanup of
// buckets it holds data for but does not own.
type migrator struct {
	n *Node

	mu       sync.Mutex
	out      map[string]*outMove
	byBucket map[uint16]*outMove
	fenced   map[uint16]bool
	fenceCh  chan struct{} // closed and replaced when a fence goes
	incoming map[uint16]string
	pulled   map[string][]uint16 // moves into this node that have written here, until they end (dropCancelled)
	running  map[string]bool     // leader: moves this node runs
	// deleting marks the buckets a deleteBuckets is deleting (outside mu);
	// deleted is closed and replaced when one finishes. A pull waits for
	// its buckets to leave deleting before it registers them.
	deleting map[uint16]bool
	deleted  chan struct{}
	delSem   chan struct{} // one deleteBuckets at a time
	// lastWaiting is the last waitingFor the leader logged (loop goroutine only).
	lastWaiting string
	nout        atomic.Int64
	nfenced     atomic.Int64
	copied      atomic.Int64 // leader: bytes copied by running moves so far
	kick        chan struct{}
	// etaStart and etaDone anchor the ETA (under mu).
	etaStart time.Time
	etaDone  int
}

func newMigrator(n *Node) *migrator {
	return &migrator{n: n, out: map[string]*outMove{}, byBucket: map[uint16]*outMove{}, fenced: map[uint16]bool{},
		fenceCh: make(chan struct{}), incoming: map[uint16]string{}, pulled: map[string][]uint16{}, running: map[string]bool{}, kick: make(chan struct{}, 1),
		deleting: map[uint16]bool{}, deleted: make(chan struct{}), delSem: make(chan struct{}, 1)}
}

func (m *migrator) register(r *transport.Router) {
	transport.Register(r, methodMigPull, m.handlePull)
	transport.Register(r, methodMigBegin, m.handleBegin)
	transport.Register(r, methodMigScan, m.handleScan)
	transport.Register(r, methodMigDelta, m.handleDelta)
	transport.Register(r, methodMigFence, m.handleFence)
	transport.Register(r, methodMigAbort, func(ctx context.Context, req *migTokenReq) (*emptyResp, error) {
		m.mu.Lock()
		om := m.out[req.Token]
		m.mu.Unlock()
		if om != nil && !om.fenced {
			m.endOut(om, false)
		}
		return &emptyResp{}, nil
	})
}

// ---- hooks on the data path ----

// onApplied records a key written to a bucket being moved off this node.
func (m *migrator) onApplied(bucket uint16, key []byte) {
	if m.nout.Load() == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	om := m.byBucket[bucket]
	if om == nil || om.overflow {
		return
	}
	if len(om.dirty) >= migDirtyMax {
		om.overflow, om.dirty = true, nil
		return
	}
	om.dirty[string(key)] = bucket
}

// fencedErr returns errFenced if any key's bucket is fenced.
func (m *migrator) fencedErr(keys ...[]byte) error {
	if m.nfenced.Load() == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if m.fenced[router.Bucket(k)] {
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
		f, ch := m.fenced[b], m.fenceCh
		m.mu.Unlock()
		if !f && !m.n.catchingUp.Load() {
			return nil
		}
		var tick <-chan time.Time
		if !f {
			tick = time.After(20 * time.Millisecond)
		}
		select {
		case <-ch:
		case <-tick:
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
	mv, err := m.awaitMove(ctx, req.Token, req.Index)
	if err != nil {
		return nil, err
	}
	if mv.From != n.cfg.ID || !slices.Equal(mv.Buckets, req.Buckets) {
		return nil, fmt.Errorf("%w: move %s is %s→%s, not from this node", coordinator.ErrBadMove, req.Token, mv.From, mv.To)
	}
	m.mu.Lock()
	if old := m.out[req.Token]; old != nil { // a retried begin: start over
		m.mu.Unlock()
		m.endOut(old, false)
		m.mu.Lock()
	}
	om := &outMove{token: req.Token, buckets: map[uint16]bool{}, dirty: map[string]uint16{}}
	for _, b := range req.Buckets {
		if o := m.byBucket[b]; o != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("%w: bucket %d is in move %s", coordinator.ErrBadMove, b, o.token)
		}
		om.buckets[b] = true
	}
	for b := range om.buckets {
		m.byBucket[b] = om
	}
	m.out[req.Token] = om
	m.nout.Store(int64(len(m.byBucket)))
	m.mu.Unlock()
	// The tap is on: every write applied from now on is recorded. Writes
	// applied before may not be durable yet, and a snapshot sees only
	// durable ones: wait for them, so the snapshot has everything the tap
	// missed.
	if err := n.store.WaitVisible(ctx); err != nil {
		m.endOut(om, false)
		return nil, err
	}
	sn, err := n.store.Snapshot()
	if err != nil {
		m.endOut(om, false)
		return nil, err
	}
	om.scanMu.Lock()
	m.mu.Lock()
	live := m.out[req.Token] == om
	m.mu.Unlock()
	if live {
		om.snap = sn
	}
	om.scanMu.Unlock()
	if !live { // aborted meanwhile (endOut found no snapshot to close)
		sn.Close()
		return nil, fmt.Errorf("%w: move %s ended while it started", coordinator.ErrUnknownMove, req.Token)
	}
	n.goFunc(func() { m.watchOut(om) })
	return &emptyResp{}, nil
}

// awaitMove waits until this node has applied the start of move token
// (log index index; 0 if unknown) and returns the move; it fails if the
// move has ended by then (cancelled, or switched), or when ctx ends.
func (m *migrator) awaitMove(ctx context.Context, token string, index uint64) (coordinator.Move, error) {
	ctx, cancel := context.WithTimeout(ctx, migAwaitTimeout)
	defer cancel()
	for {
		s, ch := m.n.coord.Watch()
		if mv, ok := s.Move(token); ok {
			return mv, nil
		}
		if index > 0 && s.Index() >= index {
			return coordinator.Move{}, fmt.Errorf("%w: move %s has already ended", coordinator.ErrUnknownMove, token)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return coordinator.Move{}, fmt.Errorf("move %s unknown here: %w", token, ctx.Err())
		}
	}
}

func (m *migrator) outOf(token string) (*outMove, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	om := m.out[token]
	if om == nil {
		return nil, fmt.Errorf("%w: no outgoing move %s here (restarted or cancelled)", coordinator.ErrUnknownMove, token)
	}
	return om, nil
}

func (m *migrator) handleScan(ctx context.Context, req *migScanReq) (*migScanResp, error) {
	om, err := m.outOf(req.Token)
	if err != nil {
		return nil, err
	}
	buckets := make([]uint16, 0, len(om.buckets))
	for b := range om.buckets {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	maxBytes := min(max(req.MaxBytes, 4096), migPageBytes)
	om.scanMu.Lock()
	defer om.scanMu.Unlock()
	if om.snap == nil {
		return nil, fmt.Errorf("%w: move %s has no snapshot here (not begun, or ended)", coordinator.ErrUnknownMove, req.Token)
	}
	it := om.it
	continues := it != nil && req.Started && req.Bucket == om.lastBucket && bytes.Equal(req.After, om.lastKey)
	if !continues { // the first page, or a page asked again (a retry)
		if it == nil {
			it = om.snap.NewIter(buckets[0], buckets[len(buckets)-1])
			om.it = it
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
			om.lastBucket, om.lastKey = resp.Entries[n-1].Bucket, resp.Entries[n-1].Key
		}
	}()
	size := 0
	for it.Valid() {
		b := it.Bucket()
		if !om.buckets[b] { // skip to the next bucket of the move
			i, _ := slices.BinarySearch(buckets, b)
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
		om.it, resp.Entries = nil, nil
		return nil, err
	}
	resp.Done = true
	return resp, nil
}

// takeDelta removes up to maxBytes worth of changed keys (all when
// maxBytes <= 0) and reads their current values.
func (m *migrator) takeDelta(om *outMove, maxBytes int) ([]migEntry, int, error) {
	m.mu.Lock()
	if om.overflow {
		m.mu.Unlock()
		return nil, 0, fmt.Errorf("move %s: more than %d keys changed during the copy; retry it", om.token, migDirtyMax)
	}
	keys := make([]string, 0, len(om.dirty))
	for k := range om.dirty {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var take []string
	size := 0
	for _, k := range keys {
		if maxBytes > 0 && size >= maxBytes {
			break
		}
		take = append(take, k)
		size += len(k) + 64
	}
	buckets := make([]uint16, len(take))
	for i, k := range take {
		buckets[i] = om.dirty[k]
		delete(om.dirty, k)
	}
	left := len(om.dirty)
	m.mu.Unlock()
	out := make([]migEntry, 0, len(take))
	for i, k := range take {
		it, err := m.n.store.GetLatestItem(buckets[i], []byte(k))
		switch {
		case errors.Is(err, engine.ErrNotFound):
			out = append(out, migEntry{Bucket: buckets[i], Key: []byte(k), Deleted: true})
		case err != nil:
			return nil, 0, err
		default:
			out = append(out, migEntry{Bucket: buckets[i], Key: []byte(k), Value: it.Value, ExpireAt: it.ExpireAt})
		}
	}
	return out, left, nil
}

func (m *migrator) handleDelta(ctx context.Context, req *migDeltaReq) (*migDeltaResp, error) {
	om, err := m.outOf(req.Token)
	if err != nil {
		return nil, err
	}
	e, left, err := m.takeDelta(om, migPageBytes)
	if err != nil {
		return nil, err
	}
	return &migDeltaResp{Entries: e, Left: left}, nil
}

// handleFence stops every read and write of the move's buckets here, waits
// for writes in flight and for prepared transactions on them, and returns
// the last changes. The fence stays until the move's switch or its
// cancellation is applied here (watchOut).
func (m *migrator) handleFence(ctx context.Context, req *migDeltaReq) (*migDeltaResp, error) {
	om, err := m.outOf(req.Token)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if !om.fenced {
		om.fenced, om.fencedAt = true, time.Now()
		for b := range om.buckets {
			m.fenced[b] = true
		}
		m.nfenced.Store(int64(len(m.fenced)))
	}
	m.mu.Unlock()
	m.n.failpoint("mig-source-fence")
	// Writes that passed the fence check hold a stripe lock until applied
	// (and recorded); prepares hold them until their keys are held.
	if err := m.n.local.Barrier(ctx); err != nil {
		return nil, err
	}
	// Prepared transactions block the fence of their buckets until
	// resolved: their commit would write here after the last delta. New
	// prepares on fenced buckets vote no (txns.prepare).
	deadline := time.Now().Add(migHeldWait)
	for m.n.txns.holdsAny(om.buckets) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			m.mu.Lock()
			om.fenced = false
			m.unfenceLocked(om)
			m.mu.Unlock()
			return nil, fmt.Errorf("move %s: prepared transactions still hold keys of its buckets after %s", om.token, migHeldWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e, _, err := m.takeDelta(om, 0)
	if err != nil {
		return nil, err
	}
	return &migDeltaResp{Entries: e}, nil
}

// unfenceLocked lifts om's fence; m.mu is held.
func (m *migrator) unfenceLocked(om *outMove) {
	changed := false
	for b := range om.buckets {
		if m.fenced[b] {
			delete(m.fenced, b)
			changed = true
		}
	}
	m.nfenced.Store(int64(len(m.fenced)))
	if changed {
		close(m.fenceCh)
		m.fenceCh = make(chan struct{})
	}
}

// endOut forgets an outgoing move: the tap, the snapshot, the fence. If the
// buckets were switched away, their data here is deleted (after the fence
// is lifted, so waiting requests go to the new owner).
func (m *migrator) endOut(om *outMove, switched bool) {
	m.mu.Lock()
	if m.out[om.token] != om {
		m.mu.Unlock()
		return
	}
	delete(m.out, om.token)
	for b := range om.buckets {
		if m.byBucket[b] == om {
			delete(m.byBucket, b)
		}
	}
	m.nout.Store(int64(len(m.byBucket)))
	m.unfenceLocked(om)
	m.mu.Unlock()
	om.scanMu.Lock() // a page being served finishes first
	sn, it := om.snap, om.it
	om.snap, om.it = nil, nil
	om.scanMu.Unlock()
	if it != nil {
		it.Close()
	}
	if sn != nil {
		sn.Close()
	}
	if switched {
		m.deleteBuckets(om.buckets)
	}
}

// watchOut ends an outgoing move once its fate is in the applied log: the
// move gone and the buckets owned elsewhere (switched) or still here
// (cancelled). A fence held too long proposes the cancellation.
func (m *migrator) watchOut(om *outMove) {
	n := m.n
	for {
		s, ch := n.coord.Watch()
		m.mu.Lock()
		live, fenced, since := m.out[om.token] == om, om.fenced, om.fencedAt
		m.mu.Unlock()
		if !live {
			return
		}
		if _, ok := s.Move(om.token); !ok {
			switched := false
			for b := range om.buckets {
				switched = s.Table().OwnerOfBucket(b) != n.cfg.ID
				break
			}
			n.log.Info("outgoing move ended", "token", om.token, "switched", switched, "buckets", len(om.buckets))
			m.endOut(om, switched)
			return
		}
		if fenced && time.Since(since) > migFenceTimeout {
			ctx, cancel := context.WithTimeout(n.life, 3*time.Second)
			_, err := n.leaderDo(ctx, leaderOp{Op: opCancelMove, ID: om.token}, n.gossip.peerRPCAddrs())
			cancel()
			n.log.Warn("fence held too long: cancelling the move", "token", om.token, "err", err)
		}
		select {
		case <-ch:
		case <-time.After(500 * time.Millisecond):
		case <-n.done:
			return
		}
	}
}

// fenceUnknownMoves fences the buckets of moves from this node that it
// does not run (it restarted in the middle of one) and has them cancelled:
// until the log says whether they switched, nothing may write them here.
func (m *migrator) fenceUnknownMoves(s *coordinator.State) {
	for _, mv := range s.Moves() {
		if mv.From != m.n.cfg.ID {
			continue
		}
		m.mu.Lock()
		if m.out[mv.Token] != nil {
			m.mu.Unlock()
			continue
		}
		om := &outMove{token: mv.Token, buckets: map[uint16]bool{}, dirty: map[string]uint16{}, fenced: true,
			fencedAt: time.Now().Add(-migFenceTimeout)} // cancel at once
		for _, b := range mv.Buckets {
			om.buckets[b] = true
			m.fenced[b] = true
		}
		m.out[mv.Token] = om
		m.nfenced.Store(int64(len(m.fenced)))
		m.mu.Unlock()
		m.n.log.Warn("found a move from this node it does not run (restart?): fenced until resolved", "token", mv.Token)
		m.n.goFunc(func() { m.watchOut(om) })
	}
}

// ---- target side ----

func (m *migrator) handlePull(ctx context.Context, req *migPullReq) (*migPullResp, error) {
	ctx, cancel := context.WithTimeout(ctx, migPullTimeout)
	defer cancel()
	n := m.n
	// Wait until this node has applied the move's start, as the source
	// does: from then until its switch or cancellation is applied here the
	// move protects the buckets from cleanup (which judges by the applied
	// state; incoming covers only the pull itself).
	mv, err := m.awaitMove(ctx, req.Token, req.Index)
	if err != nil {
		return nil, err
	}
	if mv.To != n.cfg.ID || !slices.Equal(mv.Buckets, req.Buckets) {
		return nil, fmt.Errorf("%w: move %s is %s→%s, not to this node", coordinator.ErrBadMove, req.Token, mv.From, mv.To)
	}
	for {
		m.mu.Lock()
		busy := slices.ContainsFunc(req.Buckets, func(b uint16) bool { return m.deleting[b] })
		if !busy {
			break // registered below, still under mu
		}
		wait := m.deleted
		m.mu.Unlock()
		select { // a cleanup deletes stale data of these buckets: let it finish
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for _, b := range req.Buckets {
		m.incoming[b] = req.Token
	}
	m.pulled[req.Token] = req.Buckets
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		for _, b := range req.Buckets {
			if m.incoming[b] == req.Token {
				delete(m.incoming, b)
			}
		}
		m.mu.Unlock()
	}()
	// Whatever an earlier attempt left is stale.
	if err := n.store.DeleteBuckets(ctx, req.Buckets); err != nil {
		return nil, err
	}
	if _, err := transport.Call[migBeginReq, emptyResp](ctx, n.rpc, req.FromAddr, methodMigBegin, &migBeginReq{Token: req.Token, Buckets: req.Buckets, Index: req.Index}); err != nil {
		return nil, fmt.Errorf("begin at %s: %w", req.From, err)
	}
	abort := func() {
		actx, acancel := context.WithTimeout(n.life, 2*time.Second)
		defer acancel()
		_, _ = transport.Call[migTokenReq, emptyResp](actx, n.rpc, req.FromAddr, methodMigAbort, &migTokenReq{Token: req.Token})
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
	// confirmed, below.
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
		for _, b := range byShard {
			wait, err := n.store.WriteApplied(ctx, b)
			if err != nil {
				return err
			}
			waits = append(waits, wait)
		}
		n.failpoint("mig-target-copy")
		res.Bytes += int64(size)
		res.Keys += int64(len(es))
		m.copied.Add(int64(size))
		return lim.wait(ctx, size)
	}
	// durable waits for every page written so far.
	durable := func() error {
		var err error
		for _, w := range waits {
			err = errors.Join(err, w())
		}
		waits = nil
		return err
	}
	// The snapshot, page by page.
	// The next page is fetched while this one is applied: a fetcher runs
	// migScanAhead pages ahead at most (a bounded channel), so the copy is
	// not one round trip plus one apply per page.
	type page struct {
		r   *migScanResp
		err error
	}
	fctx, stopFetch := context.WithCancel(ctx)
	pages := make(chan page, migScanAhead)
	fetched := make(chan struct{})
	go func() {
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
	// The snapshot goes straight into segment files (an engine ingestion:
	// no WAL, no memtable), added to the store when complete; the changes
	// since are ordinary writes after it.
	ing, err := n.store.NewIngestion(ctx, req.Buckets)
	if err != nil {
		stopFetch()
		<-fetched
		abort()
		return nil, err
	}
	copyErr := func() error {
		for p := range pages {
			if p.err != nil {
				return fmt.Errorf("copy from %s: %w", req.From, p.err)
			}
			size := 0
			for _, e := range p.r.Entries {
				if err := ing.Add(e.Bucket, e.Key, e.Value, e.ExpireAt); err != nil {
					return err
				}
				size += len(e.Key) + len(e.Value)
			}
			n.failpoint("mig-target-copy")
			res.Bytes += int64(size)
			res.Keys += int64(len(p.r.Entries))
			m.copied.Add(int64(size))
			if err := lim.wait(ctx, size); err != nil {
				return err
			}
		}
		return ing.Commit(ctx)
	}()
	stopFetch()
	<-fetched
	if copyErr != nil {
		ing.Abort()
		abort()
		return nil, copyErr
	}
	for round := 0; round < migTailRounds; round++ {
		r, err := transport.Call[migDeltaReq, migDeltaResp](ctx, n.rpc, req.FromAddr, methodMigDelta, &migDeltaReq{Token: req.Token})
		if err != nil {
			abort()
			return nil, fmt.Errorf("catch up from %s: %w", req.From, err)
		}
		if err := applyAsync(r.Entries); err != nil {
			abort()
			return nil, err
		}
		if r.Left+len(r.Entries) < migFenceLag {
			break
		}
	}
	r, err := transport.Call[migDeltaReq, migDeltaResp](ctx, n.rpc, req.FromAddr, methodMigFence, &migDeltaReq{Token: req.Token})
	if err != nil {
		// The source may be fenced: only the log's verdict lifts it; the
		// leader cancels the move.
		return nil, fmt.Errorf("fence at %s: %w", req.From, err)
	}
	// Everything durable before the leader may switch.
	if err := applyAsync(r.Entries); err != nil {
		return nil, err
	}
	if err := durable(); err != nil {
		return nil, err
	}
	return res, nil
}

// ---- leader side ----

// loop runs on every node: as leader it starts and finishes moves; on any
// node it cleans buckets it holds but does not own. (Moves from this node
// it does not know about are fenced once, after a restart: catchUp.)
//
// Cleanup is cheap where the node knows what it left: a source deletes
// what it handed over (endOut), a target what a cancelled move had copied
// (dropCancelled). The full scan for anything else (a node that crashed
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
		m.dropCancelled(s)
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

// lead starts moves for pending buckets up to the concurrency limit and
// cancels moves no running leader carries (a previous leader's).
func (m *migrator) lead(s *coordinator.State) {
	n := m.n
	ctx, cancel := context.WithTimeout(n.life, 5*time.Second)
	defer cancel()
	m.mu.Lock()
	var orphans []string
	for _, mv := range s.Moves() {
		if !m.running[mv.Token] {
			orphans = append(orphans, mv.Token)
		}
	}
	running := len(m.running)
	m.mu.Unlock()
	for _, tok := range orphans {
		if _, err := n.coord.Apply(ctx, coordinator.CancelMove{Token: tok, Reason: "no leader runs it"}); err != nil && !errors.Is(err, coordinator.ErrUnknownMove) {
			n.log.Warn("cancelling an orphan move", "token", tok, "err", err)
		}
	}
	if s.Target() == nil {
		return
	}
	if w := m.waitingFor(s); w != m.lastWaiting {
		m.lastWaiting = w
		if w != "" {
			n.log.Warn("migration cannot finish until these nodes are back (or removed)", "waiting", w)
		} else {
			n.log.Info("migration no longer waiting for any node")
		}
	}
	lim := s.Limits()
	pending := s.Pending()
	busy := map[string]bool{}
	for _, mv := range s.Moves() {
		busy[mv.From+">"+mv.To] = true
	}
	for len(pending) > 0 && running < lim.Concurrency {
		from, to := s.Table().OwnerOfBucket(pending[0]), s.Target().OwnerOfBucket(pending[0])
		var chunk, rest []uint16
		for _, b := range pending {
			if len(chunk) < migChunkBuckets && s.Table().OwnerOfBucket(b) == from && s.Target().OwnerOfBucket(b) == to {
				chunk = append(chunk, b)
			} else {
				rest = append(rest, b)
			}
		}
		pending = rest
		if !m.alive(s, from) || !m.alive(s, to) {
			continue
		}
		var tb [8]byte
		_, _ = rand.Read(tb[:])
		tok := hex.EncodeToString(tb[:])
		res, err := n.coord.Apply(ctx, coordinator.StartMove{Token: tok, From: from, To: to, Buckets: chunk})
		if err != nil {
			n.log.Warn("starting a move", "from", from, "to", to, "buckets", len(chunk), "err", err)
			return
		}
		m.mu.Lock()
		m.running[tok] = true
		m.mu.Unlock()
		running++
		if !n.goFunc(func() { m.runMove(tok, from, to, chunk, lim.BytesPerSec, res.Index) }) {
			m.mu.Lock()
			delete(m.running, tok) // closing: the next leader cancels the move
			m.mu.Unlock()
			return
		}
	}
}

// waitingFor says which nodes a migration cannot proceed without: the
// pending buckets whose source or target is not alive (failed, left), as
// "waiting for n3 (failed): 1488 buckets move from or to it; ..." — empty
// when none.
func (m *migrator) waitingFor(s *coordinator.State) string {
	if s.Target() == nil || s.Table() == nil {
		return ""
	}
	blocked := map[string]int{}
	for _, b := range s.Pending() {
		for _, id := range []string{s.Table().OwnerOfBucket(b), s.Target().OwnerOfBucket(b)} {
			if !m.alive(s, id) {
				blocked[id]++
				break
			}
		}
	}
	ids := make([]string, 0, len(blocked))
	for id := range blocked {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var parts []string
	for _, id := range ids {
		state := "unknown member"
		if mem, ok := s.Member(id); ok {
			state = string(mem.State)
		}
		parts = append(parts, fmt.Sprintf("waiting for %s (%s): %d buckets move from or to it", id, state, blocked[id]))
	}
	return strings.Join(parts, "; ")
}

func (m *migrator) alive(s *coordinator.State, id string) bool {
	mem, ok := s.Member(id)
	return ok && (mem.State == coordinator.StateActive || mem.State == coordinator.StateDraining || mem.State == coordinator.StateJoining)
}

// runMove has the target pull the buckets, then commits the switch, or the
// cancellation if anything failed.
func (m *migrator) runMove(tok, from, to string, buckets []uint16, rate int64, index uint64) {
	n := m.n
	defer func() {
		m.mu.Lock()
		delete(m.running, tok)
		m.mu.Unlock()
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}()
	start := time.Now()
	src, ok1 := n.peer(from)
	dst, ok2 := n.peer(to)
	var res *migPullResp
	err := fmt.Errorf("no address for %s or %s", from, to)
	if ok1 && ok2 {
		ctx, cancel := context.WithTimeout(n.life, migPullTimeout)
		res, err = transport.Call[migPullReq, migPullResp](ctx, n.rpc, dst.RPCAddr, methodMigPull,
			&migPullReq{Token: tok, From: from, FromAddr: src.RPCAddr, Buckets: buckets, BytesPerSec: rate, Index: index})
		cancel()
	}
	ctx, cancel := context.WithTimeout(n.life, 10*time.Second)
	defer cancel()
	if err != nil {
		n.log.Warn("move failed, cancelling", "token", tok, "from", from, "to", to, "buckets", len(buckets), "err", err)
		if _, cerr := n.coord.Apply(ctx, coordinator.CancelMove{Token: tok, Reason: err.Error()}); cerr != nil && !errors.Is(cerr, coordinator.ErrUnknownMove) {
			n.log.Warn("cancelling a failed move", "token", tok, "err", cerr)
		}
		return
	}
	if _, err := n.coord.Apply(ctx, coordinator.FinishMove{Token: tok, Bytes: res.Bytes}); err != nil {
		// Not committed (or unknown): a later leader pass cancels it if it
		// is still there; the source stays fenced until then.
		n.log.Warn("switching moved buckets", "token", tok, "err", err)
		return
	}
	n.log.Info("buckets moved", "from", from, "to", to, "buckets", len(buckets), "keys", res.Keys, "bytes", res.Bytes, "took", time.Since(start).Round(time.Millisecond))
}

// ---- cleanup ----

// dropCancelled deletes what pulls into this node copied for moves that
// have ended without giving it the buckets (cancelled), once the applied
// state says so.
func (m *migrator) dropCancelled(s *coordinator.State) {
	t := s.Table()
	if t == nil {
		return
	}
	m.mu.Lock()
	var drop []uint16
	for tok, buckets := range m.pulled {
		if _, live := s.Move(tok); live {
			continue
		}
		delete(m.pulled, tok)
		for _, b := range buckets {
			if t.OwnerOfBucket(b) != m.n.cfg.ID {
				drop = append(drop, b)
			}
		}
	}
	m.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	set := map[uint16]bool{}
	for _, b := range drop {
		set[b] = true
	}
	m.deleteBuckets(set)
	m.n.log.Info("deleted the data of cancelled moves into this node", "buckets", len(drop))
}

// cleanup deletes local data of buckets this node neither owns nor is
// receiving (left by a cancelled or interrupted move, or by a source that
// restarted before deleting what it handed over). It seeks only through
// the runs of such buckets, one seek per run and per bucket with data.
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
	foreign := func(b uint16) bool { return t.OwnerOfBucket(b) != self && !receiving[b] }
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
	set := map[uint16]bool{}
	for _, b := range stale {
		set[b] = true
	}
	m.deleteBuckets(set)
	n.log.Info("deleted data of buckets this node does not own", "buckets", len(stale))
}

// deleteBuckets deletes the data of buckets not owned here and not being
// pulled here (checked again under the lock, bucket by bucket).
func (m *migrator) deleteBuckets(set map[uint16]bool) {
	n := m.n
	ctx, cancel := context.WithTimeout(n.life, time.Minute)
	defer cancel()
	if !n.synced.Load() {
		return // the table may be an old one replayed from the log
	}
	select {
	case m.delSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-m.delSem }()
	m.mu.Lock()
	// The state now, not the one the caller judged by: a move into this
	// node may have started (and its copy finished) since. Pulls register
	// their buckets in incoming under m.mu before writing, and wait while
	// a bucket is marked deleting, so the store's delete runs outside mu.
	s := n.coord.Current()
	t := s.Table()
	if t == nil {
		m.mu.Unlock()
		return
	}
	receiving := map[uint16]bool{}
	for _, mv := range s.Moves() {
		if mv.To == n.cfg.ID {
			for _, b := range mv.Buckets {
				receiving[b] = true
			}
		}
	}
	var del []uint16
	for b := range set {
		if _, in := m.incoming[b]; in || receiving[b] || t.OwnerOfBucket(b) == n.cfg.ID || m.byBucket[b] != nil {
			continue
		}
		del = append(del, b)
		m.deleting[b] = true
	}
	m.mu.Unlock()
	err := n.store.DeleteBuckets(ctx, del)
	m.mu.Lock()
	for _, b := range del {
		delete(m.deleting, b)
	}
	close(m.deleted)
	m.deleted = make(chan struct{})
	m.mu.Unlock()
	if err != nil {
		n.log.Warn("deleting data of buckets not owned here", "buckets", len(del), "err", err)
	}
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
func (n *Node) guard(ctx context.Context, keys ...[]byte) error {
	if err := n.servable(keys...); err != nil {
		return err
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
	t := n.coord.Current().Table()
	if t == nil {
		return fmt.Errorf("%w: no placement yet", server.ErrClusterDown)
	}
	for _, k := range keys {
		if o := t.Owner(k); o != n.cfg.ID {
			return fmt.Errorf("%w: bucket %d belongs to %s at epoch %d", ErrNotOwner, router.Bucket(k), o, t.Epoch())
		}
	}
	return nil
}

// catchUp waits until this restarted node has applied the metadata log as
// far as the leader had committed when asked (bounded: after 30 s without
// a leader it serves anyway), so it does not serve buckets a move switched
// away while it was down.
func (n *Node) catchUp() {
	defer n.catchingUp.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(n.life, 2*time.Second)
		r, err := n.leaderDo(ctx, leaderOp{Op: opIndex}, n.gossip.peerRPCAddrs())
		cancel()
		if err == nil {
			for time.Now().Before(deadline) {
				s, ch := n.coord.Watch()
				if s.Index() >= r.Index {
					n.synced.Store(true)
					n.mig.fenceUnknownMoves(s)
					n.log.Info("caught up with the metadata log", "index", s.Index())
					return
				}
				select {
				case <-ch:
				case <-time.After(100 * time.Millisecond):
				case <-n.done:
					return
				}
			}
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-n.done:
			return
		}
	}
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
