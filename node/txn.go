package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"

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
// intents applied in the same batch as the COMMITTED marker), ticks the
// clock and keeps the keys of prepared transactions away from every other
// operation.
//
// Locking: mu guards the state machines and the clock; hmu guards held.
// Order: a key's stripe lock (kv.Engine) before mu or hmu; mu and hmu
// are never held together. held is the authority for plain operations
// (the guard) and for later Prepares (VersionBusy): a key enters it when
// its transaction prepares here and leaves it only once the decision is
// durable and, for a commit, the intents are applied — later than the
// participant's own lock table, which releases inside Step.
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

	// recMu orders the record writes of one transaction (persist).
	recMu [256]sync.Mutex

	hmu      sync.Mutex
	held     map[string]twophase.TxID
	heldKeys map[twophase.TxID][]string
	released chan struct{} // closed (and replaced) whenever keys leave held
	nheld    atomic.Int64

	incarnation uint32
	seq         atomic.Uint64
	sends       chan struct{}
	m           *txnMetrics
	// gate holds commit decisions and Prepares while a global snapshot is
	// taken (gsnapshot.go).
	gate snapGate
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
		held: map[string]twophase.TxID{}, heldKeys: map[twophase.TxID][]string{}, released: make(chan struct{}),
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

func recKey(kind byte, id twophase.TxID) []byte { return append([]byte{kind, '/'}, id...) }

// restore loads the persisted records into the participant and takes the
// locks of prepared transactions; the node calls it before serving.
func (t *txns) restore() error {
	it, err := t.st.NewIter(txnBucket, txnBucket)
	if err != nil {
		return err
	}
	var prepares []twophase.PrepareRecord
	var records []twophase.TxnRecord
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		switch {
		case len(k) > 2 && k[0] == 'p':
			var r twophase.PrepareRecord
			if err := msgpack.Unmarshal(it.Value(), &r); err != nil {
				it.Close()
				return fmt.Errorf("node: prepare record %q: %w", k, err)
			}
			prepares = append(prepares, r)
		case len(k) > 2 && k[0] == 'r':
			var r twophase.TxnRecord
			if err := msgpack.Unmarshal(it.Value(), &r); err != nil {
				it.Close()
				return fmt.Errorf("node: transaction record %q: %w", k, err)
			}
			records = append(records, r)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	t.mu.Lock()
	effs, err := t.part.Restore(t.now, prepares, records)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	inDoubt := 0
	for _, r := range prepares {
		if r.State == twophase.StatePrepared {
			t.hold(r.Txn, r.Locks)
			inDoubt++
		}
	}
	if len(prepares)+len(records) > 0 {
		t.log.Info("transaction records restored", "prepares", len(prepares), "records", len(records), "in_doubt", inDoubt)
	}
	t.perform(effs)
	return nil
}

// persist writes a run of PersistPrepare/PersistRecord effects: records
// and Prepared/Aborted prepare records as one durable batch (all in
// txnBucket, one engine shard), then releases the votes of prepared
// transactions and the keys of aborted ones. COMMITTED prepare records are
// returned for applyCommitted, which the caller runs after the effects
// that follow (the holder's Decision leaves once the record is durable).
func (t *txns) persist(effs []twophase.Effect) (committed []twophase.PrepareRecord) {
	var b engine.Batch
	var prepared, aborted []twophase.TxID
	decided := false
	// Writes of one transaction's records must land in the order the state
	// machine made them, but runs of effects are performed by different
	// goroutines (a slow Prepared write can race the Tick's abort of the
	// same transaction). Each write holds its transactions' stripes and
	// skips a record the state machine has already moved past: the newer
	// one is, or will be, written instead.
	ids := make([]twophase.TxID, 0, len(effs))
	for _, e := range effs {
		switch e := e.(type) {
		case twophase.PersistRecord:
			ids = append(ids, e.Rec.Txn)
		case twophase.PersistPrepare:
			ids = append(ids, e.Rec.Txn)
		}
	}
	unlock := t.lockRecords(ids)
	t.mu.Lock()
	for _, e := range effs {
		switch e := e.(type) {
		case twophase.PersistRecord:
			if t.part.Record(e.Rec.Txn) != e.Rec.Status {
				continue // stale
			}
			b.Set(txnBucket, recKey('r', e.Rec.Txn), mustMsgpack(e.Rec))
			decided = decided || e.Rec.Status == twophase.StatusCommitted
		case twophase.PersistPrepare:
			rec := e.Rec
			if rec.State != twophase.StateCommitted && t.part.State(rec.Txn) != rec.State {
				continue // stale
			}
			switch rec.State {
			case twophase.StatePrepared:
				prepared = append(prepared, rec.Txn)
				b.Set(txnBucket, recKey('p', rec.Txn), mustMsgpack(rec))
			case twophase.StateCommitted:
				committed = append(committed, rec)
			default:
				aborted = append(aborted, rec.Txn)
				b.Set(txnBucket, recKey('p', rec.Txn), mustMsgpack(rec))
			}
		}
	}
	t.mu.Unlock()
	if b.Len() > 0 {
		err := t.st.Write(context.Background(), &b)
		unlock()
		if err != nil {
			t.log.Error("transaction records not written", "err", err, "prepared", len(prepared), "aborted", len(aborted))
			for _, id := range prepared {
				t.mu.Lock()
				out, _ := t.part.AbortUnvoted(t.now, id)
				t.mu.Unlock()
				t.perform(out) // its keys leave held once the abort is written
			}
			// A decided transaction whose write failed keeps its keys
			// held: serving them could expose a state the decision
			// contradicts. A restart replays the decision from the records.
			return committed
		}
	} else {
		unlock()
	}
	if decided {
		t.n.failpoint("holder-after-decide-write")
	}
	for _, id := range prepared {
		t.n.failpoint("part-after-prepare")
		t.mu.Lock()
		out := t.part.Persisted(t.now, id)
		t.mu.Unlock()
		t.perform(out)
	}
	for _, id := range aborted {
		t.unhold(id)
	}
	return committed
}

// lockRecords takes the record stripes of ids in ascending order.
func (t *txns) lockRecords(ids []twophase.TxID) func() {
	idx := make([]int, 0, len(ids))
	for _, id := range ids {
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		idx = append(idx, int(h.Sum32()%uint32(len(t.recMu))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		t.recMu[i].Lock()
	}
	return func() {
		for _, i := range idx {
			t.recMu[i].Unlock()
		}
	}
}

// applyCommitted applies committed transactions' intents, then marks them
// committed, then releases their keys. Intents go in one batch per engine
// shard, written concurrently: a batch spanning shards would take the
// store-wide cross-shard path. They need no atomicity with each other or
// with the marker: the keys stay held until the marker is durable, so a
// crash in between leaves the Prepared record, the transaction resolves to
// COMMITTED again after the restart, and the same values are written again
// with no other write in between.
func (t *txns) applyCommitted(recs []twophase.PrepareRecord) {
	if len(recs) == 0 {
		return
	}
	t.n.failpoint("part-before-apply")
	byShard := map[int]*engine.Batch{}
	for _, rec := range recs {
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
	}
	errs := make(chan error, len(byShard))
	for _, b := range byShard {
		go func() { errs <- t.st.Write(context.Background(), b) }()
	}
	var err error
	for range byShard {
		err = errors.Join(err, <-errs)
	}
	var marks engine.Batch
	for _, rec := range recs {
		rec.Intents, rec.Locks = nil, nil
		marks.Set(txnBucket, recKey('p', rec.Txn), mustMsgpack(rec))
	}
	if err == nil {
		err = t.st.Write(context.Background(), &marks)
	}
	if err != nil {
		t.log.Error("committed transactions not applied: their keys stay held until a restart replays them", "err", err, "txns", len(recs))
		return
	}
	// Keys of buckets being moved off this node are recorded before their
	// transaction's keys are released.
	for _, b := range byShard {
		b.ForEachKey(t.n.mig.onApplied)
	}
	for _, rec := range recs {
		t.unhold(rec.Txn)
	}
}

func (t *txns) forget(kind byte, id twophase.TxID) {
	var b engine.Batch
	b.Delete(txnBucket, recKey(kind, id))
	if err := t.st.Write(context.Background(), &b); err != nil {
		t.log.Warn("forgetting a transaction record", "txn", id, "err", err)
	}
}

func mustMsgpack(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("node: encoding %T: %v", v, err)) // plain structs: cannot fail
	}
	return b
}

// ---- held keys ----

func (t *txns) hold(id twophase.TxID, keys []string) {
	t.hmu.Lock()
	defer t.hmu.Unlock()
	if _, dup := t.heldKeys[id]; dup {
		return
	}
	for _, k := range keys {
		t.held[k] = id
	}
	t.heldKeys[id] = keys
	t.nheld.Add(int64(len(keys)))
}

func (t *txns) unhold(id twophase.TxID) {
	t.hmu.Lock()
	defer t.hmu.Unlock()
	keys, ok := t.heldKeys[id]
	if !ok {
		return
	}
	delete(t.heldKeys, id)
	for _, k := range keys {
		if t.held[k] == id {
			delete(t.held, k)
		}
	}
	t.nheld.Add(-int64(len(keys)))
	close(t.released)
	t.released = make(chan struct{})
}

// holdsAny reports whether a prepared transaction holds a key of buckets.
func (t *txns) holdsAny(buckets map[uint16]bool) bool {
	if t.nheld.Load() == 0 {
		return false
	}
	t.hmu.Lock()
	defer t.hmu.Unlock()
	for k := range t.held {
		if buckets[router.BucketString(k)] {
			return true
		}
	}
	return false
}

// guard is the prepared-key half of the local keyspace's kv.KeyGuard
// (Node.guard): it waits while any of keys is held by a prepared
// transaction, asking the record holder after txnResolveAfter, until ctx
// ends.
func (t *txns) guard(ctx context.Context, keys ...[]byte) error {
	if t.nheld.Load() == 0 {
		return nil
	}
	var timer *time.Timer
	waited := false
	for {
		t.hmu.Lock()
		var holder twophase.TxID
		for _, k := range keys {
			if h, ok := t.held[string(k)]; ok {
				holder = h
				break
			}
		}
		ch := t.released
		t.hmu.Unlock()
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
			t.mu.Lock()
			effs := t.part.Resolve(t.now, holder)
			t.mu.Unlock()
			t.perform(effs)
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
		t.mu.Lock()
		effs := t.coord.Step(t.now, m)
		t.mu.Unlock()
		t.perform(effs)
	case twophase.MsgPrepare:
		if m.Prepare == nil {
			return
		}
		if !t.gate.enterPrepare(ctx) {
			return // lost: the coordinator's deadline aborts it
		}
		t.prepare(ctx, m)
	default:
		t.mu.Lock()
		effs := t.part.Step(t.now, m, nil)
		t.mu.Unlock()
		t.perform(effs)
	}
}

// prepare runs a Prepare under the stripe locks of its keys, so the
// versions it checks cannot change before its locks are in held.
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
	// Not ours (any more), or fenced for a move: vote no, the coordinator retries.
	busy := t.n.catchingUp.Load() || t.n.backend.checkOwned(bkeys...) != nil || t.n.mig.fencedErr(bkeys...) != nil
	t.hmu.Lock()
	for _, k := range keys {
		if h, ok := t.held[k]; busy || (ok && h != m.Txn) {
			versions[k] = twophase.VersionBusy
		}
	}
	t.hmu.Unlock()
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
	t.mu.Lock()
	effs := t.part.Step(t.now, m, versions)
	t.mu.Unlock()
	for _, e := range effs {
		if pp, ok := e.(twophase.PersistPrepare); ok && pp.Rec.State == twophase.StatePrepared {
			t.hold(pp.Rec.Txn, pp.Rec.Locks)
		}
	}
	unlock()
	t.perform(effs)
}

// perform carries out effects in order; runs of persist effects become one
// durable batch before anything after them, except that committed
// transactions are applied last (applyCommitted).
func (t *txns) perform(effs []twophase.Effect) {
	var committed []twophase.PrepareRecord
	defer func() { t.applyCommitted(committed) }()
	for i := 0; i < len(effs); {
		switch e := effs[i].(type) {
		case twophase.PersistPrepare, twophase.PersistRecord:
			j := i + 1
			for j < len(effs) && isPersist(effs[j]) {
				j++
			}
			committed = append(committed, t.persist(effs[i:j])...)
			i = j
			continue
		case twophase.Send:
			t.send(e.Msg)
		case twophase.Forget:
			t.forget('p', e.Txn)
		case twophase.ForgetRecord:
			t.forget('r', e.Txn)
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
}

func isPersist(e twophase.Effect) bool {
	switch e.(type) {
	case twophase.PersistPrepare, twophase.PersistRecord:
		return true
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
		effs := t.part.Tick(t.now)
		effs = append(effs, t.coord.Tick(t.now)...)
		t.mu.Unlock()
		t.perform(effs)
	}
}

// ---- coordinating ----

func (t *txns) newID() twophase.TxID {
	return twophase.TxID(fmt.Sprintf("%s.%08x.%d", t.self, t.incarnation, t.seq.Add(1)))
}

// run2PC runs txn to its outcome (or ctx's end: unknown).
func (t *txns) run2PC(ctx context.Context, txn twophase.Txn) twophase.ReplyClient {
	ch := make(chan twophase.ReplyClient, 1)
	t.mu.Lock()
	effs, err := t.coord.Begin(t.now, txn)
	if err == nil {
		t.waiters[txn.ID] = ch
	}
	t.mu.Unlock()
	if err != nil {
		return twophase.ReplyClient{Txn: txn.ID, Outcome: twophase.OutcomeAborted, Err: err}
	}
	t.perform(effs)
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
