package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/replica"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

// Replication RPC methods and storage.
const (
	// methodReplMsgs carries a batch of replica.Messages (replica's wire
	// form) one way; the answer is empty.
	methodReplMsgs = "repl.msgs"
	// methodReplPing is the metadata leader's liveness probe.
	methodReplPing = "repl.ping"
	// replBucket is the engine bucket holding the replication logs
	// (replica's storage adapter).
	replBucket uint16 = 0xFFFD
)

// Replication driver bounds.
const (
	// replTick is the duration of one replica.Tick.
	replTick = 10 * time.Millisecond
	// replOutboxMax bounds the messages queued for one peer; beyond it
	// the oldest are dropped (the protocol tolerates loss and resends).
	replOutboxMax = 1 << 14
	// replSendTimeout bounds one batch's RPC.
	replSendTimeout = 2 * time.Second
	// replProbeEvery and replProbeTimeout: the leader's liveness probes.
	replProbeEvery   = 100 * time.Millisecond
	replProbeTimeout = 300 * time.Millisecond
	// replProposeMax bounds the metadata proposals in flight.
	replProposeMax = 4
	// replMarkEvery: applied points are written at most this often when
	// no log write carries them.
	replMarkEvery = time.Second
	// replTrimKeep entries below the applied point stay in the durable log
	// (catch-up by delta after this node restarts), trimmed when twice as
	// many are there.
	replTrimKeep = 4096
)

// replicator drives this node's replica.Replica (every bucket it holds
// as primary, backup or learner) and, while this node leads the
// metadata, a replica.Failover. It is active once the metadata's
// replication factor is above 1; below that every write commits locally
// as before.
//
// One goroutine (loop) performs every effect, in the order the state
// machines returned them: client goroutines that Propose or Touch under
// mu only queue their effects. An iteration steps the inputs (ticks,
// messages, metadata), writes every Persist and Truncate of the
// iteration as one engine batch in replBucket (one fsync for all of
// them: the group commit), reports them Persisted, applies what became
// committed to the store (each bucket's entries as one engine batch,
// the buckets' batches in parallel), then wakes the writers whose
// entries committed, hands messages to the per-peer senders and
// proposals to the metadata. A write's client is answered only after its
// entry is applied here and durable on every replica of the set.
//
// Locking: mu guards the state machines, the queue, the waiters and the
// clock; the loop's own maps are touched only by the loop. Order: a key's
// stripe lock (kv.Engine) before mu. No I/O under mu.
type replicator struct {
	n    *Node
	st   *engine.Store
	log  *slog.Logger
	self replica.NodeID
	cfg  replica.Config

	start time.Time

	mu       sync.Mutex
	r        *replica.Replica
	fo       *replica.Failover
	seen     map[replica.NodeID]bool // members the Failover has heard of
	now      replica.Tick
	queue    []replica.Effect
	inbox    []replica.Message
	waiters  map[uint64]*replWaiter
	nextRef  uint64
	progress chan struct{} // closed and replaced after every iteration
	status   replStatus

	wake chan struct{}

	// Loop-owned.
	unapplied map[replica.Bucket][]replica.Entry
	applied   map[replica.Bucket]replica.Seq
	appliedID map[replica.Bucket]replica.EntryID
	diskFirst map[replica.Bucket]replica.Seq
	diskLast  map[replica.Bucket]replica.Seq
	marks     map[replica.Bucket]bool // applied points not written yet
	lastMark  time.Time
	senders   map[replica.NodeID]*replSender
	proposing chan struct{}
	lastView  *coordinator.State
}

// replStatus is what status and metrics show (under mu).
type replStatus struct {
	Failovers   int64 // promotions this node proposed as leader
	Removed     int64 // replicas this node's primaries proposed out of a set
	NeedCopy    int64 // learners that need a full copy (not done yet)
	BadMessages int64
}

// replWaiter is one client write: its parts (one entry per bucket) and
// the stripe locks it releases when they are resolved.
type replWaiter struct {
	parts   int
	err     error
	release func(applied bool)
	done    chan struct{}
}

func newReplicator(n *Node, cfg replica.Config) (*replicator, error) {
	d := &replicator{n: n, st: n.store, log: n.log.With("component", "replica"), self: replica.NodeID(n.cfg.ID), cfg: cfg,
		start: time.Now(), waiters: map[uint64]*replWaiter{}, progress: make(chan struct{}), wake: make(chan struct{}, 1),
		unapplied: map[replica.Bucket][]replica.Entry{}, applied: map[replica.Bucket]replica.Seq{},
		appliedID: map[replica.Bucket]replica.EntryID{}, diskFirst: map[replica.Bucket]replica.Seq{},
		diskLast: map[replica.Bucket]replica.Seq{}, marks: map[replica.Bucket]bool{},
		senders: map[replica.NodeID]*replSender{}, proposing: make(chan struct{}, replProposeMax)}
	r, err := replica.New(d.self, cfg, 0)
	if err != nil {
		return nil, err
	}
	d.r = r
	return d, nil
}

// on reports whether replication is in force: a replication factor above
// 1 in the applied metadata (set at bootstrap, before any placement).
func (d *replicator) on() bool { return d != nil && d.n.coord.Current().ReplicationFactor() > 1 }

func (d *replicator) clock() replica.Tick { return replica.Tick(time.Since(d.start) / replTick) }

func (d *replicator) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// restore loads every bucket's durable log into the state machine and
// applies what was committed but not yet applied (entries are physical:
// applying some twice is harmless). Called once at start, before the
// loop and before any key is served.
func (d *replicator) restore() error {
	it, err := d.st.NewIter(replBucket, replBucket)
	if err != nil {
		return err
	}
	l := replica.NewLoader()
	for it.First(); it.Valid(); it.Next() {
		if err := l.Add(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	buckets, err := l.Buckets()
	if err != nil {
		return err
	}
	replayed := 0
	for b, s := range buckets {
		if err := d.r.Restore(b, s.Base, s.Entries, s.Commit); err != nil {
			return err
		}
		d.diskFirst[b], d.diskLast[b] = s.Base.Seq+1, s.Base.Seq+replica.Seq(len(s.Entries))
		d.applied[b], d.appliedID[b] = s.Base.Seq, s.Base
		for _, e := range s.Entries {
			if e.Seq <= s.Applied {
				d.applied[b], d.appliedID[b] = e.Seq, e.ID()
			} else {
				d.unapplied[b] = append(d.unapplied[b], e)
			}
		}
		n, wait, err := d.applyUpTo(b, min(s.Commit, d.diskLast[b]))
		if err == nil {
			err = wait()
		}
		if err != nil {
			return err
		}
		replayed += n
	}
	if len(buckets) > 0 {
		d.log.Info("replication log restored", "buckets", len(buckets), "replayed", replayed)
	}
	return nil
}

// register serves the replication methods.
func (d *replicator) register(r *transport.Router) {
	r.HandleFunc(methodReplMsgs, func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
		// The entries alias the body, which the transport reuses.
		msgs, err := replica.DecodeBatch(slices.Clone(body))
		if err != nil {
			d.mu.Lock()
			d.status.BadMessages++
			d.mu.Unlock()
			d.log.Warn("replication batch refused", "from", from, "err", err)
			return nil, err
		}
		d.mu.Lock()
		for _, m := range msgs {
			if m.To != d.self {
				d.status.BadMessages++
				continue
			}
			d.inbox = append(d.inbox, m)
		}
		d.mu.Unlock()
		d.kick()
		return []byte{}, nil
	})
	r.HandleFunc(methodReplPing, func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
		return []byte{}, nil
	})
}

// loop is the driver goroutine (see replicator).
func (d *replicator) loop() {
	tick := time.NewTicker(replTick)
	defer tick.Stop()
	var probeAt time.Time
	for {
		_, viewCh := d.n.coord.Watch()
		select {
		case <-d.n.done:
			return
		case <-d.wake:
		case <-tick.C:
		case <-viewCh:
		}
		s := d.n.coord.Current()
		if s.ReplicationFactor() <= 1 {
			// Not replicating (yet: a restarted node replays its
			// metadata first): what arrives is dropped, not hoarded.
			d.mu.Lock()
			d.inbox = d.inbox[:0]
			d.mu.Unlock()
			continue
		}
		leading := d.n.coord.IsLeader()
		if leading && time.Since(probeAt) >= replProbeEvery {
			probeAt = time.Now()
			d.probe(s)
		}
		t0 := time.Now()
		d.mu.Lock()
		d.now = d.clock()
		nin := len(d.inbox)
		effs := d.queue
		d.queue = nil
		if s != d.lastView {
			d.lastView = s
			effs = append(effs, d.r.Applied(d.now, s)...)
		}
		shipped := map[replica.Bucket]bool{}
		for _, m := range d.inbox {
			shipped[m.Bucket] = true // its commit point may have moved
			effs = append(effs, d.r.Step(d.now, m)...)
			if d.fo != nil {
				d.fo.Heard(d.now, m.From)
			}
		}
		d.inbox = d.inbox[:0]
		effs = append(effs, d.r.Tick(d.now)...)
		effs = append(effs, d.failoverTick(s, leading)...)
		d.mu.Unlock()
		t1 := time.Now()
		neffs := len(effs)
		d.perform(effs, shipped)
		if el := time.Since(t0); el > time.Second {
			d.log.Warn("slow replication iteration", "step", t1.Sub(t0), "perform", time.Since(t1), "messages", nin, "effects", neffs)
		}
		d.mu.Lock()
		close(d.progress)
		d.progress = make(chan struct{})
		d.mu.Unlock()
	}
}

// failoverTick runs the leader's Failover (under mu); a new leader starts
// a fresh one.
func (d *replicator) failoverTick(s *coordinator.State, leading bool) []replica.Effect {
	if !leading {
		d.fo = nil
		return nil
	}
	if d.fo == nil {
		d.seen = map[replica.NodeID]bool{}
		fo, err := replica.NewFailover(d.cfg, d.now)
		if err != nil {
			d.log.Error("replication failover", "err", err)
			return nil
		}
		d.fo = fo
	}
	d.fo.Heard(d.now, d.self)
	anyDead := false
	for _, m := range s.Members() {
		if !d.seen[replica.NodeID(m.ID)] {
			// A member first seen now gets a full DeadTicks to answer.
			d.seen[replica.NodeID(m.ID)] = true
			d.fo.Heard(d.now, replica.NodeID(m.ID))
		}
		if m.State != coordinator.StateLeft && d.fo.Dead(d.now, replica.NodeID(m.ID)) {
			anyDead = true
			break
		}
	}
	if !anyDead {
		return nil
	}
	effs := d.fo.Tick(d.now, s)
	for _, e := range effs {
		p, ok := e.(replica.ProposeChange)
		if !ok {
			continue
		}
		for _, c := range p.Changes {
			if m, ok := s.Membership(c.To.Bucket); ok && m.Primary != c.To.Primary {
				d.status.Failovers++ // a promotion (the rest only shrink sets)
			}
		}
	}
	return effs
}

// probe asks every member whether it is alive (the leader's liveness
// source for Failover), one goroutine per member, bounded by a timeout.
func (d *replicator) probe(s *coordinator.State) {
	for _, m := range s.Members() {
		if m.ID == d.n.cfg.ID || m.State == coordinator.StateLeft || m.RPCAddr == "" {
			continue
		}
		id, addr := replica.NodeID(m.ID), m.RPCAddr
		d.n.goFunc(func() {
			ctx, cancel := context.WithTimeout(d.n.life, replProbeTimeout)
			defer cancel()
			if _, err := d.n.rpc.Call(ctx, addr, methodReplPing, nil); err == nil {
				d.mu.Lock()
				if d.fo != nil {
					d.fo.Heard(d.clock(), id)
				}
				d.mu.Unlock()
			}
		})
	}
}

// perform carries out effs in order (see replicator), repeating for the
// effects that reporting the disk writes produces.
// touched are buckets whose commit point may have moved without an
// effect saying so (a Ship's commit on a backup).
func (d *replicator) perform(effs []replica.Effect, touched map[replica.Bucket]bool) {
	for first := true; first || len(effs) > 0; first = false {
		if !first {
			touched = map[replica.Bucket]bool{}
		}
		var (
			logBatch engine.Batch
			written  = map[replica.Bucket]uint64{}
			replies  []replica.Reply
			changes  []replica.Change
			reasons  []string
			out      = map[replica.NodeID][]replica.Message{}
		)
		for _, e := range effs {
			switch e := e.(type) {
			case replica.Persist:
				for _, en := range e.Entries {
					logBatch.Set(replBucket, replica.EntryKey(e.Bucket, en.Seq), replica.EncodeEntry(e.Bucket, en))
					u := d.unapplied[e.Bucket]
					for len(u) > 0 && u[len(u)-1].Seq >= en.Seq {
						u = u[:len(u)-1]
					}
					d.unapplied[e.Bucket] = append(u, en)
					d.diskLast[e.Bucket] = en.Seq
					if d.diskFirst[e.Bucket] == 0 {
						d.diskFirst[e.Bucket] = en.Seq
					}
				}
				logBatch.Set(replBucket, replica.CommitKey(e.Bucket), replica.EncodeSeq(e.Commit))
				written[e.Bucket] = e.Write
				touched[e.Bucket] = true
			case replica.Truncate:
				for s := e.After + 1; s <= d.diskLast[e.Bucket]; s++ {
					logBatch.Delete(replBucket, replica.EntryKey(e.Bucket, s))
				}
				if d.diskLast[e.Bucket] > e.After {
					d.diskLast[e.Bucket] = e.After
				}
				u := d.unapplied[e.Bucket]
				for len(u) > 0 && u[len(u)-1].Seq > e.After {
					u = u[:len(u)-1]
				}
				d.unapplied[e.Bucket] = u
				written[e.Bucket] = e.Write
				touched[e.Bucket] = true
			case replica.Send:
				q := append(out[e.Msg.To], e.Msg)
				out[e.Msg.To] = q
				// A new configuration's reconciliation (it sends) or an
				// acknowledgement (it answers) can move the commit point
				// without a Reply.
				touched[e.Msg.Bucket] = true
			case replica.Reply:
				replies = append(replies, e)
				touched[e.Bucket] = true
			case replica.ProposeChange:
				changes = append(changes, e.Changes...)
				reasons = append(reasons, e.Reason)
				if isFailoverReason(e.Reason) {
					reason := e.Reason
					if len(reason) > 200 {
						reason = reason[:200] + "…"
					}
					d.log.Info("failover: the buckets of nodes not heard from get a new configuration", "buckets", len(e.Changes), "changes", reason)
				} else if e.Reason != "" {
					d.mu.Lock()
					d.status.Removed++
					d.mu.Unlock()
				}
			case replica.NeedCopy:
				d.mu.Lock()
				d.status.NeedCopy++
				d.mu.Unlock()
				d.log.Warn("replica needs a full copy of the bucket, which this version does not make yet: it stays a learner",
					"bucket", e.Bucket, "to", e.To, "upto", e.Upto.Seq)
			}
		}
		d.writeMarks(&logBatch, false)
		effs = nil
		// Ships go out before this node's own log write is durable (the
		// replicas' fsyncs overlap ours; acknowledgements only ever cover
		// durable entries), and the log write overlaps the apply of what
		// was committed before it (other engine shards, other entries).
		for to, msgs := range out {
			d.send(to, msgs)
		}
		logDone := make(chan error, 1)
		if logBatch.Len() > 0 {
			go func() { logDone <- d.st.Write(d.n.life, &logBatch) }()
		} else {
			logDone <- nil
		}
		d.applyTouched(touched)
		if err := <-logDone; err != nil {
			// The disk failed: acknowledge nothing more (as if crashed).
			d.log.Error("replication log write failed: this node stops replicating", "err", err)
			d.fail(replies)
			return
		}
		if len(written) > 0 {
			d.mu.Lock()
			for b, w := range written {
				effs = append(effs, d.r.Persisted(d.now, b, w)...)
			}
			d.mu.Unlock()
		}
		d.answer(replies)
		if len(changes) > 0 {
			d.propose(changes, reasons)
		}
	}
	d.trim()
}

func isFailoverReason(r string) bool { return strings.HasPrefix(r, "nodes dead") }

// applyTouched applies, for every bucket touched, what became committed.
func (d *replicator) applyTouched(touched map[replica.Bucket]bool) {
	if len(touched) == 0 {
		return
	}
	d.mu.Lock()
	upto := make(map[replica.Bucket]replica.Seq, len(touched))
	for b := range touched {
		upto[b] = d.r.Applicable(b)
	}
	d.mu.Unlock()
	// Every bucket's batch is applied first, then all are waited for:
	// they share the engine shards' group commits.
	var waits []func() error
	for b, s := range upto {
		_, wait, err := d.applyUpTo(b, s)
		if err != nil {
			d.log.Error("applying committed entries failed", "bucket", b, "err", err)
			continue
		}
		waits = append(waits, wait)
	}
	for _, w := range waits {
		if err := w(); err != nil {
			d.log.Error("applying committed entries failed", "err", err)
		}
	}
}

// applyUpTo applies bucket b's unapplied entries up to seq to the store
// as one engine batch; wait returns once it is durable and visible, and
// only then is the applied point (what reads check) raised.
func (d *replicator) applyUpTo(b replica.Bucket, seq replica.Seq) (int, func() error, error) {
	nop := func() error { return nil }
	u := d.unapplied[b]
	k := 0
	for k < len(u) && u[k].Seq <= seq {
		k++
	}
	if k == 0 {
		return 0, nop, nil
	}
	batch := new(engine.Batch)
	for _, e := range u[:k] {
		if err := kv.DecodeOps(e.Data, batch); err != nil {
			d.log.Error("replicated entry does not decode: skipped", "bucket", b, "seq", e.Seq, "err", err)
		}
	}
	engineWait := nop
	if batch.Len() > 0 {
		w, err := d.st.WriteApplied(d.n.life, batch)
		if err != nil {
			return 0, nil, err
		}
		engineWait = w
	}
	last := u[k-1].ID()
	d.unapplied[b] = append(u[:0:0], u[k:]...)
	return k, func() error {
		if err := engineWait(); err != nil {
			return err
		}
		d.mu.Lock()
		d.applied[b] = last.Seq
		d.mu.Unlock()
		d.appliedID[b] = last
		d.marks[b] = true
		return nil
	}, nil
}

// writeMarks adds the applied points not written yet to batch (always
// when force, else when a log write goes out anyway or a second passed).
func (d *replicator) writeMarks(batch *engine.Batch, force bool) {
	if len(d.marks) == 0 || !force && batch.Len() == 0 && time.Since(d.lastMark) < replMarkEvery {
		return
	}
	d.mu.Lock()
	for b := range d.marks {
		batch.Set(replBucket, replica.AppliedKey(b), replica.EncodeSeq(d.applied[b]))
	}
	d.mu.Unlock()
	clear(d.marks)
	d.lastMark = time.Now()
}

// trim drops durable log entries far below the applied point, keeping
// replTrimKeep of them for catch-up by delta after a restart.
func (d *replicator) trim() {
	var batch engine.Batch
	d.mu.Lock()
	applied := maps.Clone(d.applied)
	d.mu.Unlock()
	for b, first := range d.diskFirst {
		a := applied[b]
		if first == 0 || a < first+2*replTrimKeep {
			continue
		}
		cut := a - replTrimKeep
		v, err := d.st.Get(replBucket, replica.EntryKey(b, cut))
		if err != nil {
			continue
		}
		l := replica.NewLoader()
		if err := l.Add(replica.EntryKey(b, cut), v); err != nil {
			continue
		}
		got, err := l.Buckets()
		if err != nil || len(got[b].Entries) != 1 {
			continue
		}
		for s := first; s <= cut; s++ {
			batch.Delete(replBucket, replica.EntryKey(b, s))
		}
		batch.Set(replBucket, replica.BaseKey(b), replica.EncodeEntryID(got[b].Entries[0].ID()))
		d.diskFirst[b] = cut + 1
		if batch.Len() > 1<<14 {
			break // the rest next time
		}
	}
	d.writeMarks(&batch, batch.Len() > 0)
	if batch.Len() > 0 {
		if err := d.st.Write(d.n.life, &batch); err != nil {
			d.log.Warn("replication log trim failed", "err", err)
		}
	}
}

// answer wakes the writers whose entries were resolved.
func (d *replicator) answer(replies []replica.Reply) {
	if len(replies) == 0 {
		return
	}
	d.mu.Lock()
	var done []*replWaiter
	for _, rep := range replies {
		w := d.waiters[rep.Ref]
		if w == nil {
			continue
		}
		delete(d.waiters, rep.Ref)
		if rep.Err != nil && w.err == nil {
			w.err = replErr(rep.Err)
		}
		w.parts--
		if w.parts == 0 {
			done = append(done, w)
		}
	}
	d.mu.Unlock()
	for _, w := range done {
		w.release(w.err == nil)
		close(w.done)
	}
}

// fail answers every waiting writer "outcome unknown" (the disk failed).
func (d *replicator) fail(replies []replica.Reply) {
	d.mu.Lock()
	ws := d.waiters
	d.waiters = map[uint64]*replWaiter{}
	d.mu.Unlock()
	seen := map[*replWaiter]bool{}
	for _, w := range ws {
		if seen[w] {
			continue
		}
		seen[w] = true
		w.err = fmt.Errorf("%w: the replication log could not be written", server.ErrOutcomeUnknown)
		w.release(false)
		close(w.done)
	}
	_ = replies
}

// replErr maps a replication error to what the client is told.
func replErr(err error) error {
	switch {
	case errors.Is(err, replica.ErrOutcomeUnknown):
		return fmt.Errorf("%w: %v", server.ErrOutcomeUnknown, err)
	case errors.Is(err, replica.ErrNotPrimary):
		return fmt.Errorf("%w: %v", ErrNotOwner, err)
	case errors.Is(err, replica.ErrNoReplicas):
		return fmt.Errorf("%w: %v", server.ErrNoReplicas, err)
	case errors.Is(err, replica.ErrNotReady), errors.Is(err, replica.ErrBackpressure), errors.Is(err, replica.ErrNoLease):
		return fmt.Errorf("%w: %v", errReplNotReady, err)
	}
	return err
}

// errReplNotReady: the bucket's primary cannot serve yet (lease, restart,
// window full); the guard waits and tries again. It wraps
// server.ErrTryAgain: one that reaches a client is "-TRYAGAIN".
var errReplNotReady = fmt.Errorf("%w: node: bucket's primary not ready", server.ErrTryAgain)

// replicate is the keyspace's kv.Replicator: while replication is
// active, every write is proposed to its buckets' primaries here (one
// entry per bucket) and answered once every part is committed and
// applied. A write spanning buckets is atomic on this node but its parts
// commit one by one: a failover between them can leave some applied and
// others not (the client is told "outcome unknown").
func (d *replicator) replicate(ctx context.Context, b *engine.Batch, release func(applied bool)) (bool, error) {
	if !d.on() {
		return false, nil
	}
	parts := splitByBucket(b)
	w := &replWaiter{release: release, done: make(chan struct{})}
	d.mu.Lock()
	for i, p := range parts {
		d.nextRef++
		ref := d.nextRef
		effs, err := d.r.Propose(d.now, p.bucket, p.data, ref)
		if err != nil {
			if i == 0 {
				d.mu.Unlock()
				release(false)
				return true, replErr(err)
			}
			w.err = fmt.Errorf("%w: %d of %d buckets proposed: %v", server.ErrOutcomeUnknown, i, len(parts), replErr(err))
			break
		}
		w.parts++
		d.waiters[ref] = w
		d.queue = append(d.queue, effs...)
	}
	d.mu.Unlock()
	d.kick()
	select {
	case <-w.done:
		return true, w.err
	case <-ctx.Done():
		// The entry may still commit: its keys stay locked until then.
		return true, fmt.Errorf("%w: replication not confirmed before the deadline: %v", server.ErrOutcomeUnknown, ctx.Err())
	}
}

type bucketPart struct {
	bucket replica.Bucket
	data   []byte
}

func splitByBucket(b *engine.Batch) []bucketPart {
	first, single := -1, true
	b.ForEachKey(func(bucket uint16, _ []byte) {
		if first < 0 {
			first = int(bucket)
		} else if int(bucket) != first {
			single = false
		}
	})
	if single {
		return []bucketPart{{bucket: replica.Bucket(first), data: kv.EncodeOps(b)}}
	}
	sub := map[uint16]*engine.Batch{}
	var order []uint16
	b.ForEachOp(func(op engine.Op) {
		s := sub[op.Bucket]
		if s == nil {
			s = new(engine.Batch)
			sub[op.Bucket] = s
			order = append(order, op.Bucket)
		}
		if op.Delete {
			s.Delete(op.Bucket, op.Key)
		} else {
			s.SetWithExpiry(op.Bucket, op.Key, op.Value, op.ExpireAtMs)
		}
	})
	parts := make([]bucketPart, 0, len(order))
	for _, bk := range order {
		parts = append(parts, bucketPart{bucket: replica.Bucket(bk), data: kv.EncodeOps(sub[bk])})
	}
	return parts
}

// readable reports whether this node may serve keys' buckets now, as
// their primary with a lease, everything committed applied (Touch first:
// a quiesced bucket starts a round). errReplNotReady: wait and retry.
func (d *replicator) readable(keys ...[]byte) error {
	if !d.on() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock()
	for _, k := range keys {
		b := replica.Bucket(router.Bucket(k))
		if effs := d.r.Touch(now, b); len(effs) > 0 {
			d.queue = append(d.queue, effs...)
			d.kick()
		}
		if err := d.r.CanRead(now, b); err != nil {
			return replErr(err)
		}
		if d.r.Applicable(b) > d.appliedLocked(b) {
			return fmt.Errorf("%w: bucket %d: committed entries not applied yet", errReplNotReady, b)
		}
	}
	return nil
}

// appliedLocked is bucket b's applied point (under mu).
func (d *replicator) appliedLocked(b replica.Bucket) replica.Seq {
	return d.applied[b]
}

// waitProgress waits for the next loop iteration (or ctx).
func (d *replicator) waitProgress(ctx context.Context) error {
	d.mu.Lock()
	ch := d.progress
	d.mu.Unlock()
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// propose commits configuration changes through the metadata leader,
// split into entries of at most coordinator.MaxReplicaChanges; at most
// replProposeMax proposals are in flight (the state machines propose
// again after ProposeRetryTicks).
func (d *replicator) propose(changes []replica.Change, reasons []string) {
	for len(changes) > 0 {
		n := min(len(changes), coordinator.MaxReplicaChanges)
		part := changes[:n]
		changes = changes[n:]
		select {
		case d.proposing <- struct{}{}:
		default:
			return
		}
		if !d.n.goFunc(func() {
			defer func() { <-d.proposing }()
			ctx, cancel := context.WithTimeout(d.n.life, 5*time.Second)
			defer cancel()
			if _, err := d.n.leaderDo(ctx, leaderOp{Op: opChangeReplicas, Changes: part}, d.n.gossip.peerRPCAddrs()); err != nil &&
				!errors.Is(err, coordinator.ErrStaleMembership) {
				d.log.Debug("replica configuration change not committed", "changes", len(part), "err", err)
			}
			d.kick()
		}) {
			<-d.proposing
			return
		}
		if len(reasons) > 0 {
			d.log.Debug("replica configuration change proposed", "changes", len(part), "reason", reasons[0])
		}
	}
}

// send hands msgs to to's sender, starting it on first use.
func (d *replicator) send(to replica.NodeID, msgs []replica.Message) {
	s := d.senders[to]
	if s == nil {
		s = &replSender{d: d, to: to, kick: make(chan struct{}, 1)}
		d.senders[to] = s
		if !d.n.goFunc(s.run) {
			return
		}
	}
	s.mu.Lock()
	s.q = append(s.q, msgs...)
	if over := len(s.q) - replOutboxMax; over > 0 {
		s.q = append(s.q[:0:0], s.q[over:]...) // drop the oldest
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// replSender sends one peer's messages in batches, one RPC at a time.
type replSender struct {
	d    *replicator
	to   replica.NodeID
	kick chan struct{}
	mu   sync.Mutex
	q    []replica.Message
}

func (s *replSender) run() {
	var buf []byte
	for {
		select {
		case <-s.d.n.done:
			return
		case <-s.kick:
		}
		for {
			s.mu.Lock()
			q := s.q
			s.q = nil
			s.mu.Unlock()
			if len(q) == 0 {
				break
			}
			m, ok := s.d.n.peer(string(s.to))
			if !ok || m.RPCAddr == "" {
				continue // dropped: resent by the protocol
			}
			for len(q) > 0 {
				k, size := 0, 0
				for k < len(q) && k < replica.WireMessagesMax && size < replica.WireBytesMax/2 {
					for _, e := range q[k].Entries {
						size += len(e.Data) + 32
					}
					size += 64
					k++
				}
				var err error
				buf, err = replica.AppendBatch(buf[:0], q[:k])
				q = q[k:]
				if err != nil {
					s.d.log.Error("replication batch not encoded", "to", s.to, "err", err)
					continue
				}
				ctx, cancel := context.WithTimeout(s.d.n.life, replSendTimeout)
				_, err = s.d.n.rpc.Call(ctx, m.RPCAddr, methodReplMsgs, buf)
				cancel()
				if err != nil {
					// The peer is down or slow: what queued meanwhile is
					// stale (heartbeats, ships the protocol resends), so
					// it goes too, rather than flooding the peer when it
					// is back.
					s.d.log.Debug("replication batch not delivered", "to", s.to, "err", err)
					q = nil
					s.mu.Lock()
					s.q = nil
					s.mu.Unlock()
				}
			}
		}
	}
}

// ReplicaStatus describes this node's replication state of bucket b, and
// why it may not serve it (for status and tests).
func (n *Node) ReplicaStatus(b uint16) string {
	d := n.repl
	if d == nil {
		return "replication not started"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.r.Status(replica.Bucket(b))
	if !ok {
		return "no state"
	}
	m, _ := n.coord.Current().Membership(replica.Bucket(b))
	why := "servable"
	if err := d.r.CanRead(d.clock(), replica.Bucket(b)); err != nil {
		why = err.Error()
	}
	return fmt.Sprintf("%+v applied=%d metadata: %s: %s {%s}", st, d.applied[replica.Bucket(b)], m, why, d.r.Describe(replica.Bucket(b)))
}
