package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
	"github.com/dbx-kv/dbx/twophase"
)

// Transaction RPC methods.
const (
	methodTxnMsg     = "txn.msg"     // a twophase.Message
	methodTxnRead    = "txn.read"    // read keys with their versions
	methodTxnCommit1 = "txn.commit1" // one-node commit if versions still match
)

const (
	// txnBucket is the engine bucket holding prepare and transaction
	// records: outside the 16384 data buckets, so SCAN, DBSIZE and bucket
	// moves never see it, while checkpoints include it.
	txnBucket uint16 = 0xFFFE
	// txnTick is the twophase clock period (twophase.DefaultConfig assumes it).
	txnTick = 100 * time.Millisecond
	// txnSendsMax bounds the protocol messages in flight from this node;
	// beyond it a message is dropped (the protocol tolerates loss).
	txnSendsMax = 4096
	// txnResolveAfter is how long a client waits on a key of a prepared
	// transaction before the node asks the record holder at once.
	txnResolveAfter = 500 * time.Millisecond
)

type (
	txnReadReq struct {
		Keys [][]byte
		// VersionsOnly asks for the versions GET's state has (WATCH), no
		// values.
		VersionsOnly bool
	}
	txnReadResp struct {
		Items    []server.TxItem
		Versions []uint64
	}
	txnCommitReq struct {
		Keys   [][]byte // every key, locked
		Watch  []server.WatchedKey
		Writes []server.TxWrite
	}
)

// txns drives this node's twophase Coordinator and Participant: it
// delivers messages, performs effects (records in the engine's txnBucket,
// through twophase's storage adapter; a commit's intents, then its marker),
// ticks the clock and keeps the keys the participant has locked away from
// every other operation (guard).
//
// Effects are performed in order per transaction and state machine: every
// state machine call queues its effects under mu (queues), and the
// goroutine that finds a queue idle performs it until it is empty, so
// the effects of one transaction never race each other while different
// transactions proceed concurrently. The participant's lock table is the
// one authority on locked keys: a key stays locked from its Prepare until
// the driver reports the decision durable (Participant.Applied).
//
// Locking: mu guards the state machines, the clock, the queues and
// released. Order: a key's stripe lock (kv.Engine) before mu. No I/O
// under mu.
type txns struct {
	n     *Node
	st    *engine.Store
	local *kv.Engine
	log   *slog.Logger
	self  twophase.NodeID

	mu      sync.Mutex
	coord   *twophase.Coordinator
	part    *twophase.Participant
	now     twophase.Tick
	waiters map[twophase.TxID]chan twophase.ReplyClient
	queues  map[queueID]*effQueue
	// released is closed (and replaced) whenever the participant releases
	// locks.
	released chan struct{}
	// nheld is the participant's number of locked keys, for the lock-free
	// fast path of guard and holdsAny.
	nheld atomic.Int64

	incarnation uint32
	seq         atomic.Uint64
	sends       chan struct{}
	m           *txnMetrics
	// gate holds commit decisions and Prepares while a global snapshot is
	// taken (gsnapshot.go).
	gate snapGate
}

// queueID names the effects of one transaction from one state machine:
// the coordinator's and the participant's of a transaction are ordered
// separately (they only talk through messages, which may be reordered
// anyway), so a client's reply never waits for this node's own apply.
type queueID struct {
	txn   twophase.TxID
	coord bool
}

// effQueue is the effects of one queueID not yet performed. It exists
// while a goroutine performs it (drain), or for good once a write of the
// transaction failed (failed): the rest of its effects are dropped, as if
// the node had crashed for that transaction, and a restart replays it from
// its records.
type effQueue struct {
	effs   []twophase.Effect
	failed bool
}

type txnMetrics struct {
	commits   *prometheus.CounterVec // path = 1pc | 2pc
	aborts    *prometheus.CounterVec // reason
	retries   prometheus.Counter
	lockWaits prometheus.Counter
	dropped   prometheus.Counter
	inDoubt   prometheus.GaugeFunc
}

func newTxns(n *Node, reg prometheus.Registerer) (*txns, error) {
	cfg := twophase.DefaultConfig()
	cfg.KeysPerTxnMax = n.cfg.TxnKeysMax
	cfg.DeadlineTicks = twophase.Tick(n.cfg.TxnDeadline / txnTick)
	cfg.RecordTTLTicks = max(cfg.RecordTTLTicks, cfg.DeadlineTicks+10)
	self := twophase.NodeID(n.cfg.ID)
	coord, err := twophase.NewCoordinator(self, cfg)
	if err != nil {
		return nil, err
	}
	part, err := twophase.NewParticipant(self, cfg)
	if err != nil {
		return nil, err
	}
	var inc [4]byte
	_, _ = rand.Read(inc[:])
	t := &txns{
		n: n, st: n.store, local: n.local, log: n.log.With("component", "txn"), self: self,
		coord: coord, part: part, waiters: map[twophase.TxID]chan twophase.ReplyClient{},
		queues: map[queueID]*effQueue{}, released: make(chan struct{}),
		incarnation: binary.BigEndian.Uint32(inc[:]), sends: make(chan struct{}, txnSendsMax),
	}
	t.m = &txnMetrics{
		commits:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbx_txn_commits_total", Help: "Committed transactions by path (1pc: one node, one batch; 2pc: two-phase commit)."}, []string{"path"}),
		aborts:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbx_txn_aborts_total", Help: "Transactions that ended without committing, by reason."}, []string{"reason"}),
		retries:   prometheus.NewCounter(prometheus.CounterOpts{Name: "dbx_txn_retries_total", Help: "Transaction attempts retried after a conflict."}),
		lockWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbx_txn_lock_waits_total", Help: "Operations that waited for a key held by a prepared transaction."}),
		dropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "dbx_txn_messages_dropped_total", Help: "Protocol messages dropped because too many were in flight."}),
	}
	t.m.inDoubt = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dbx_txn_in_doubt", Help: "Transactions prepared on this node and not yet resolved."}, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(len(t.part.InDoubt()))
	})
	// Every path and reason from the start: rate() and the dashboard see
	// zeros rather than no series.
	for _, p := range []string{"1pc", "2pc"} {
		t.m.commits.WithLabelValues(p)
	}
	for _, r := range []string{"conflict", "watch", "watch_moved", "error", "unknown"} {
		t.m.aborts.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{t.m.commits, t.m.aborts, t.m.retries, t.m.lockWaits, t.m.dropped, t.m.inDoubt} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// register installs the transaction RPCs.
func (t *txns) register(r *transport.Router) {
	transport.Register(r, methodTxnMsg, func(ctx context.Context, m *twophase.Message) (*emptyResp, error) {
		t.deliver(ctx, *m)
		return &emptyResp{}, nil
	})
	transport.Register(r, methodTxnRead, func(ctx context.Context, req *txnReadReq) (*txnReadResp, error) {
		if err := t.n.backend.checkOwned(req.Keys...); err != nil {
			return nil, err
		}
		if req.VersionsOnly {
			vers, err := t.local.Versions(ctx, req.Keys)
			if err != nil {
				return nil, err
			}
			return &txnReadResp{Items: make([]server.TxItem, len(req.Keys)), Versions: vers}, nil
		}
		items, vers, err := t.local.Items(ctx, req.Keys)
		if err != nil {
			return nil, err
		}
		return &txnReadResp{Items: items, Versions: vers}, nil
	})
	transport.Register(r, methodTxnCommit1, func(ctx context.Context, req *txnCommitReq) (*emptyResp, error) {
		return &emptyResp{}, t.commit1(ctx, req)
	})
}

// commit1 commits writes on this node if every key still has the version
// the coordinator read: the one-node path for keys owned by another node.
func (t *txns) commit1(ctx context.Context, req *txnCommitReq) error {
	if err := t.n.backend.checkOwned(req.Keys...); err != nil {
		return err
	}
	return t.local.Exec(ctx, &server.TxRequest{Keys: req.Keys, Watch: req.Watch}, func(map[string]server.TxItem) ([]server.TxWrite, error) {
		return req.Writes, nil
	})
}

// ---- records ----

// restore loads the persisted records into the participant (twophase's
// storage adapter decodes them); prepared transactions take their locks
// again. The node calls it before serving.
func (t *txns) restore() error {
	it, err := t.st.NewIter(txnBucket, txnBucket)
	if err != nil {
		return err
	}
	var stored twophase.Stored
	for it.First(); it.Valid(); it.Next() {
		if err := stored.Add(it.Key(), it.Value()); err != nil {
			it.Close()
			return fmt.Errorf("node: %w", err)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	var rerr error
	t.call(false, func() []twophase.Effect {
		effs, err := stored.Restore(t.part, t.now)
		rerr = err
		return effs
	})
	if rerr != nil {
		return rerr
	}
	if len(stored.Prepares)+len(stored.Records) > 0 {
		t.log.Info("transaction records restored", "prepares", len(stored.Prepares), "records", len(stored.Records), "in_doubt", stored.InDoubt())
	}
	return nil
}

// isRecordWrite reports whether e joins a run of record writes (persist):
// every PersistRecord and PersistPrepare except a Committed one, which is
// applied on its own (applyCommitted).
func isRecordWrite(e twophase.Effect) bool {
	switch e := e.(type) {
	case twophase.PersistRecord:
		return true
	case twophase.PersistPrepare:
		return e.Rec.State != twophase.StateCommitted
	}
	return false
}

// persist writes a run of record writes of one transaction as one durable
// batch (all in txnBucket, one engine shard), then releases the yes vote
// of a Prepared record (Persisted) and the keys of an Aborted one
// (Applied). It reports false when the write failed and the transaction's
// later effects must not be performed; a Prepared record that could not
// be written aborts its transaction instead (AbortUnvoted).
func (t *txns) persist(run []twophase.Effect) bool {
	var b engine.Batch
	var prepared, finished []twophase.TxID
	decided := false
	for _, e := range run {
		op, _ := twophase.StorageOp(e)
		b.Set(txnBucket, op.Key, op.Value)
		switch e := e.(type) {
		case twophase.PersistRecord:
			decided = decided || e.Rec.Status == twophase.StatusCommitted
		case twophase.PersistPrepare:
			if e.Rec.State == twophase.StatePrepared {
				prepared = append(prepared, e.Rec.Txn)
			} else {
				finished = append(finished, e.Rec.Txn)
			}
		}
	}
	if err := t.st.Write(t.n.life, &b); err != nil {
		t.log.Error("transaction records not written", "err", err, "txn", twophase.TxnOf(run[0]), "prepared", len(prepared))
		if len(prepared) == 0 {
			// A decision or an abort that is not durable: serving its keys
			// could expose a state it contradicts. They stay locked; a
			// restart replays the transaction from its records.
			return false
		}
		for _, id := range prepared {
			t.call(false, func() []twophase.Effect {
				out, _ := t.part.AbortUnvoted(t.now, id)
				return out
			})
		}
		return true
	}
	if decided {
		t.n.failpoint("holder-after-decide-write")
	}
	for _, id := range prepared {
		t.n.failpoint("part-after-prepare")
		t.call(false, func() []twophase.Effect { return t.part.Persisted(t.now, id) })
	}
	for _, id := range finished {
		t.call(false, func() []twophase.Effect { t.part.Applied(id); return nil })
	}
	return true
}

// applyCommitted applies a committed transaction's intents, then writes its
// Committed marker, then reports it Applied, which releases its keys.
// Intents go in one batch per engine shard, written concurrently, and the
// marker in a batch of its own: one batch with all of them would take the
// engine's cross-shard path, serialized per store and stalling every shard
// it touches for two syncs (twophase/doc.go says why the split is safe).
// It reports false when a write failed: the keys then stay locked until a
// restart replays the transaction from its Prepared record.
func (t *txns) applyCommitted(rec twophase.PrepareRecord) bool {
	t.n.failpoint("part-before-apply")
	byShard := map[int]*engine.Batch{}
	for _, in := range rec.Intents {
		bk := router.BucketString(in.Key)
		sh := t.st.ShardOf(bk)
		b := byShard[sh]
		if b == nil {
			b = &engine.Batch{}
			byShard[sh] = b
		}
		if in.Delete {
			b.Delete(bk, []byte(in.Key))
		} else {
			b.SetWithExpiry(bk, []byte(in.Key), in.Value, in.ExpireAtMs)
		}
	}
	errs := make(chan error, len(byShard))
	for _, b := range byShard {
		go func() {
			// With replication the intents commit on every replica of
			// their buckets (the keys stay locked by the participant).
			if handled, err := t.n.repl.replicate(t.n.life, b, func(bool) {}); handled {
				errs <- err
				return
			}
			errs <- t.st.Write(t.n.life, b)
		}()
	}
	var err error
	for range byShard {
		err = errors.Join(err, <-errs)
	}
	if err == nil {
		var marker engine.Batch
		op, _ := twophase.StorageOp(twophase.PersistPrepare{Rec: rec})
		marker.Set(txnBucket, op.Key, op.Value)
		err = t.st.Write(t.n.life, &marker)
	}
	if err != nil {
		t.log.Error("committed transaction not applied: its keys stay locked until a restart replays it", "err", err, "txn", rec.Txn)
		return false
	}
	// Keys of buckets being moved off this node are recorded before the
	// transaction's keys are released.
	for _, b := range byShard {
		b.ForEachKey(t.n.mig.onApplied)
	}
	t.call(false, func() []twophase.Effect { t.part.Applied(rec.Txn); return nil })
	return true
}

func (t *txns) forget(e twophase.Effect) {
	op, _ := twophase.StorageOp(e)
	var b engine.Batch
	b.Delete(txnBucket, op.Key)
	if err := t.st.Write(t.n.life, &b); err != nil {
		t.log.Warn("forgetting a transaction record", "txn", twophase.TxnOf(e), "err", err)
	}
}

// ---- locked keys ----

// holdsAny reports whether a transaction holds a key of buckets locked
// (prepared, or decided and not yet applied). released is closed when
// locks are released next: wait on it before asking again.
func (t *txns) holdsAny(buckets map[uint16]bool) (held bool, released <-chan struct{}) {
	if t.nheld.Load() == 0 {
		return false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.part.Locks().All() {
		if buckets[router.BucketString(k)] {
			return true, t.released
		}
	}
	return false, nil
}

// guard is the prepared-key half of the local keyspace's kv.KeyGuard
// (Node.guard): it waits while any of keys is locked by a transaction
// (prepared, or decided and not yet applied), asking the record holder
// after txnResolveAfter, until ctx ends.
func (t *txns) guard(ctx context.Context, keys ...[]byte) error {
	if t.nheld.Load() == 0 {
		return nil
	}
	var timer *time.Timer
	waited := false
	for {
		t.mu.Lock()
		var holder twophase.TxID
		for _, k := range keys {
			if h, ok := t.part.Locks().Holder(string(k)); ok {
				holder = h
				break
			}
		}
		ch := t.released
		t.mu.Unlock()
		if holder == "" {
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		if !waited {
			waited = true
			t.m.lockWaits.Inc()
			timer = time.NewTimer(txnResolveAfter)
		}
		select {
		case <-ch:
		case <-timer.C:
			t.call(false, func() []twophase.Effect { return t.part.Resolve(t.now, holder) })
			timer.Reset(txnResolveAfter)
		case <-ctx.Done():
			timer.Stop()
			// ErrTryAgain (not a RedisError) so that the reply stays
			// TRYAGAIN when this runs for a forwarded call on another node.
			return fmt.Errorf("%w: key is held by transaction %s, which is not resolved yet: %v", server.ErrTryAgain, holder, ctx.Err())
		}
	}
}

// ---- messages ----

// deliver hands one protocol message to the state machine it is for and
// performs the effects.
func (t *txns) deliver(ctx context.Context, m twophase.Message) {
	switch m.Type {
	case twophase.MsgVote, twophase.MsgDecision:
		t.call(true, func() []twophase.Effect { return t.coord.Step(t.now, m) })
	case twophase.MsgPrepare:
		if m.Prepare == nil {
			return
		}
		if !t.gate.enterPrepare(ctx) {
			return // lost: the coordinator's deadline aborts it
		}
		t.prepare(ctx, m)
	default:
		t.call(false, func() []twophase.Effect { return t.part.Step(t.now, m, nil) })
	}
}

// prepare runs a Prepare under the stripe locks of its keys, so the
// versions it checks cannot change before the participant has locked the
// keys.
func (t *txns) prepare(ctx context.Context, m twophase.Message) {
	keys := m.Prepare.Keys()
	bkeys := make([][]byte, len(keys))
	for i, k := range keys {
		bkeys[i] = []byte(k)
	}
	unlock, err := t.local.LockKeys(ctx, bkeys...)
	if err != nil {
		return // lost: the coordinator's deadline aborts it
	}
	versions := make(map[string]uint64, len(keys))
	// Not ours (any more), or fenced for a move: vote no, the coordinator
	// retries. A key locked by another transaction votes no too, before
	// its version is read: that transaction's intents are applied without
	// the stripe lock, so the version could be one about to change.
	busy := t.n.catchingUp.Load() || t.n.backend.checkOwned(bkeys...) != nil || t.n.mig.fencedErr(bkeys...) != nil
	t.mu.Lock()
	for _, k := range keys {
		if h, ok := t.part.Locks().Holder(k); busy || (ok && h != m.Txn) {
			versions[k] = twophase.VersionBusy
		}
	}
	t.mu.Unlock()
	for k := range m.Prepare.Watch {
		if versions[k] == twophase.VersionBusy {
			continue
		}
		it, err := t.st.GetLatestItem(router.BucketString(k), []byte(k))
		switch {
		case err == nil:
			versions[k] = it.Seq
		case !errors.Is(err, engine.ErrNotFound):
			versions[k] = twophase.VersionBusy // cannot read it: vote no
		}
	}
	mine := t.step(false, func() []twophase.Effect { return t.part.Step(t.now, m, versions) })
	unlock()
	t.drain(mine)
}

// call runs f, a call of the coordinator (coord) or of the participant,
// and performs the effects it returns in order (step, then drain).
func (t *txns) call(coord bool, f func() []twophase.Effect) {
	t.drain(t.step(coord, f))
}

// step runs f under mu and queues its effects by transaction. It returns
// the queues that were idle, which the caller must drain.
func (t *txns) step(coord bool, f func() []twophase.Effect) []queueID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.queueLocked(coord, f())
}

// queueLocked appends effs to their queues and publishes the lock count;
// mu is held. It returns the queues that were idle.
func (t *txns) queueLocked(coord bool, effs []twophase.Effect) []queueID {
	var idle []queueID
	for _, e := range effs {
		id := queueID{txn: twophase.TxnOf(e), coord: coord}
		q := t.queues[id]
		if q == nil {
			q = &effQueue{}
			t.queues[id] = q
			idle = append(idle, id)
		}
		if !q.failed {
			q.effs = append(q.effs, e)
		}
	}
	if n := int64(t.part.Locks().Len()); n < t.nheld.Swap(n) {
		close(t.released)
		t.released = make(chan struct{})
	}
	return idle
}

// drain performs the queues ids until they are empty; effects queued
// meanwhile by other goroutines are performed too, in order.
func (t *txns) drain(ids []queueID) {
	for _, id := range ids {
		for {
			t.mu.Lock()
			q := t.queues[id]
			if q.failed || len(q.effs) == 0 {
				if !q.failed {
					delete(t.queues, id)
				}
				t.mu.Unlock()
				break
			}
			effs := q.effs
			q.effs = nil
			t.mu.Unlock()
			if !t.perform(effs) {
				t.mu.Lock()
				q.failed, q.effs = true, nil
				t.mu.Unlock()
				break
			}
		}
	}
}

// perform carries out effects of one queue in order: a run of record
// writes is one durable batch before anything after it, a committed
// transaction's intents are applied before its marker. It reports false
// when a write failed and the transaction's later effects must not be
// performed.
func (t *txns) perform(effs []twophase.Effect) bool {
	for i := 0; i < len(effs); {
		switch e := effs[i].(type) {
		case twophase.PersistPrepare, twophase.PersistRecord:
			if !isRecordWrite(e) {
				if !t.applyCommitted(e.(twophase.PersistPrepare).Rec) {
					return false
				}
				i++
				continue
			}
			// A run ends before a second write of the same record: one
			// batch must not hold two values of a key.
			j := i + 1
			for j < len(effs) && isRecordWrite(effs[j]) && !sameRecord(effs[i:j], effs[j]) {
				j++
			}
			if !t.persist(effs[i:j]) {
				return false
			}
			i = j
			continue
		case twophase.Send:
			t.send(e.Msg)
		case twophase.Forget, twophase.ForgetRecord:
			t.forget(e)
		case twophase.ReplyClient:
			t.mu.Lock()
			ch := t.waiters[e.Txn]
			delete(t.waiters, e.Txn)
			t.mu.Unlock()
			if ch != nil {
				ch <- e
			}
		}
		i++
	}
	return true
}

// sameRecord reports whether e writes a record that run already writes.
func sameRecord(run []twophase.Effect, e twophase.Effect) bool {
	op, _ := twophase.StorageOp(e)
	for _, r := range run {
		if o, _ := twophase.StorageOp(r); string(o.Key) == string(op.Key) {
			return true
		}
	}
	return false
}

// send delivers m asynchronously: to this node directly, to others over
// the transport. Failures are dropped; the protocol retries or times out.
func (t *txns) send(m twophase.Message) {
	switch {
	case m.Type == twophase.MsgDecide && m.Status == twophase.StatusCommitted:
		if t.gate.holdDecide(m) {
			return // sent when the snapshot pause ends
		}
		t.n.failpoint("coord-before-decide")
	case m.Type == twophase.MsgCommit:
		t.n.failpoint("coord-before-commit")
	}
	select {
	case t.sends <- struct{}{}:
	default:
		t.m.dropped.Inc()
		return
	}
	if !t.n.goFunc(func() {
		defer func() { <-t.sends }()
		ctx, cancel := context.WithTimeout(t.n.life, 5*time.Second)
		defer cancel()
		if m.To == t.self {
			t.deliver(ctx, m)
			return
		}
		p, ok := t.n.peer(string(m.To))
		if !ok || p.RPCAddr == "" {
			return
		}
		if _, err := transport.Call[twophase.Message, emptyResp](ctx, t.n.rpc, p.RPCAddr, methodTxnMsg, &m); err != nil {
			t.log.Debug("transaction message not delivered", "msg", m.String(), "to", m.To, "err", err)
		}
	}) {
		<-t.sends // closing: the message is dropped, as on a crash
	}
}

// loop ticks the state machines until the node closes.
func (t *txns) loop() {
	tk := time.NewTicker(txnTick)
	defer tk.Stop()
	for {
		select {
		case <-t.n.done:
			return
		case <-tk.C:
		}
		t.mu.Lock()
		t.now++
		idle := t.queueLocked(false, t.part.Tick(t.now))
		idle = append(idle, t.queueLocked(true, t.coord.Tick(t.now))...)
		t.mu.Unlock()
		t.drain(idle)
	}
}

// ---- coordinating ----

func (t *txns) newID() twophase.TxID {
	return twophase.TxID(fmt.Sprintf("%s.%08x.%d", t.self, t.incarnation, t.seq.Add(1)))
}

// run2PC runs txn to its outcome (or ctx's end: unknown).
func (t *txns) run2PC(ctx context.Context, txn twophase.Txn) twophase.ReplyClient {
	ch := make(chan twophase.ReplyClient, 1)
	var err error
	t.call(true, func() []twophase.Effect {
		var effs []twophase.Effect
		if effs, err = t.coord.Begin(t.now, txn); err == nil {
			t.waiters[txn.ID] = ch
		}
		return effs
	})
	if err != nil {
		return twophase.ReplyClient{Txn: txn.ID, Outcome: twophase.OutcomeAborted, Err: err}
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.mu.Lock()
		delete(t.waiters, txn.ID)
		t.mu.Unlock()
		return twophase.ReplyClient{Txn: txn.ID, Outcome: twophase.OutcomeUnknown,
			Err: fmt.Errorf("%w: %s: %v", twophase.ErrOutcomeUnknown, txn.ID, ctx.Err())}
	}
}

// ---- failpoints (fault tests only) ----

// failpoint kills the process with SIGKILL at the configured hit of name
// (internal/failpoint; Config.Failpoints).
func (n *Node) failpoint(name string) {
	if n.failpoints.Hit(name) {
		n.log.Warn("failpoint reached: killing this process", "failpoint", name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
