package replica

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Role is what a node is for one bucket.
type Role uint8

// Roles. A node is primary, backup (in the set) or learner (an owner
// outside the set, catching up) of a bucket by the configuration it has
// applied, or none of them.
const (
	RoleNone Role = iota
	RolePrimary
	RoleBackup
	RoleLearner
)

func (r Role) String() string { return [...]string{"none", "primary", "backup", "learner"}[r] }

// mutations switch rules off for the tests' mutation checks; all false
// outside tests.
type mutations struct {
	ackWithoutAll    bool // commit once one backup has an entry
	acceptStaleEpoch bool // a backup accepts ships of an older epoch
	noLeaseWait      bool // a new primary serves before the lease it granted expired
	noTruncate       bool // a replica keeps the entries it holds (no truncation on reconciliation)
	leaseWithoutSet  bool // lease counted from one backup's acknowledgement
	noBump           bool // a restarted primary writes on in the epoch it found
	ackDuringChange  bool // acknowledge while a proposed change is pending
	noPrevCheck      bool // a backup appends without matching the entry before
}

type peer struct {
	match Seq // durable and matching there (from its acks)
	next  Seq // next seq to ship
	round uint64
	// lastAck is when it last answered; behindSince when it fell behind
	// the log end target (it must reach target within LagTicksMax).
	lastAck     Tick
	behind      bool
	behindSince Tick
	target      Seq
	member      bool // in the set (else a learner)
	acked       bool // acknowledged in the current configuration
	retried     Seq  // next after the last refusal (0: none since an ack)
	copying     bool
	copyAt      Tick
}

type pendingWrite struct {
	seq Seq
	ref uint64
}

type sentRound struct {
	round uint64
	at    Tick
}

type bucket struct {
	id    Bucket
	m     Membership
	known bool
	role  Role
	// The in-memory log: base is the entry just below log[0] (committed
	// and durable); wid[i] is the write that persists log[i] (0: durable
	// when restored).
	base      EntryID
	log       []Entry
	wid       []uint64
	writeNext uint64
	written   uint64
	durable   Seq
	commit    Seq
	// matched: the highest seq known to match the current epoch's
	// primary (a backup's acknowledgements never go beyond it).
	matched Seq
	// promised: this node acknowledged a lease round; it serves as
	// primary of a later epoch only after promised + LeaseMarginTicks.
	promised  Tick
	lastRound uint64 // newest round seen from the primary
	lastShip  Tick

	// primary
	peers        map[NodeID]*peer
	peerIDs      []NodeID // the keys of peers, ascending
	pending      []pendingWrite
	round        uint64
	rounds       []sentRound
	leaseFloor   uint64
	lastBeat     Tick
	proposal     *Change
	proposedAt   Tick
	promotedLast Seq
	deposed      bool
	needBump     bool
	// active is the last write, Touch or configuration; quiet: no
	// heartbeats until the next activity (Config.QuiesceTicks).
	active Tick
	quiet  bool
	// beatCommit is the commit point the newest round carried, and
	// beatRound that round: a bucket quiesces only once every member
	// acknowledged a round carrying its commit point (so backups apply
	// everything committed before the heartbeats stop).
	beatCommit Seq
	beatRound  uint64
}

func (st *bucket) last() Seq { return st.base.Seq + Seq(len(st.log)) }

// setPeers sets the primary's peers and their sorted IDs (the order every
// loop over them uses: outputs never depend on map order).
func (st *bucket) setPeers(peers map[NodeID]*peer) {
	st.peers = peers
	st.peerIDs = slices.Sorted(maps.Keys(peers))
}

// entryID returns the ID of the entry at s, if still known here.
func (st *bucket) entryID(s Seq) (EntryID, bool) {
	switch {
	case s == st.base.Seq:
		return st.base, true
	case s < st.base.Seq || s > st.last():
		return EntryID{}, false
	}
	return st.log[s-st.base.Seq-1].ID(), true
}

func (st *bucket) index(s Seq) int { return int(s - st.base.Seq - 1) }

// Replica is one node's side of replication for every bucket it holds:
// primary (orders writes, ships them, commits when the whole set has them
// durable, serves reads under a lease, proposes set changes), backup
// (accepts the current epoch's next entries, acknowledges once durable)
// and learner (catches up, then is proposed into the set).
//
// It is a pure state machine: no I/O, no clock, no goroutines. The driver
// serialises every call, passes its current Tick, and performs the
// returned effects in order.
type Replica struct {
	self    NodeID
	cfg     Config
	now     Tick
	started Tick
	buckets map[Bucket]*bucket
	order   []*bucket // buckets, ascending by id
	// seen: the newest epoch Applied looked at, per bucket (a bucket
	// whose epoch did not move is skipped without building its
	// Membership).
	seen map[Bucket]Epoch
	mut  mutations
}

// New returns node self's replication state, started at now. It knows no
// bucket: Restore each bucket's durable log, then feed Applied.
func New(self NodeID, cfg Config, now Tick) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Replica{self: self, cfg: cfg, now: now, started: now, buckets: map[Bucket]*bucket{}}, nil
}

func (r *Replica) bucket(b Bucket) *bucket {
	st := r.buckets[b]
	if st == nil {
		// A restarted node does not know which leases it granted: it
		// waits a whole lease from its start before serving as primary.
		st = &bucket{id: b, promised: r.started + r.cfg.LeaseTicks, active: r.now}
		r.buckets[b] = st
		i, _ := slices.BinarySearchFunc(r.order, b, func(x *bucket, b Bucket) int { return int(x.id) - int(b) })
		r.order = slices.Insert(r.order, i, st)
	}
	return st
}

// unquiet records activity on the bucket now; a quiesced primary
// resumes its heartbeats, and its replicas' answer clocks restart (none
// was expected while quiet). It reports whether the bucket was quiet.
func (r *Replica) unquiet(st *bucket) bool {
	st.active = r.now
	if !st.quiet {
		return false
	}
	st.quiet = false
	for _, p := range st.peers {
		p.lastAck, p.behind = r.now, false
	}
	return true
}

// wake is unquiet with a round at once when the bucket was quiet: a read
// waiting for a lease needs it now, not at the next heartbeat.
func (r *Replica) wake(st *bucket) []Effect {
	if r.unquiet(st) {
		return r.broadcast(st)
	}
	return nil
}

// canQuiesce: nothing a heartbeat would move — no write or change
// pending, the set complete and caught up, no learner, the lease wait
// of a promotion over.
func (r *Replica) canQuiesce(st *bucket) bool {
	if len(st.pending) > 0 || st.proposal != nil || st.commit != st.last() || st.durable != st.last() ||
		r.now < st.promised+r.cfg.LeaseMarginTicks || st.commit < st.promotedLast {
		return false
	}
	if st.beatCommit != st.commit {
		return false
	}
	for _, p := range st.peers {
		if !p.member || p.match != st.last() || p.copying || p.round < st.beatRound {
			return false
		}
	}
	return true
}

// Touch records a read (or any use) of bucket b at now on its primary:
// the bucket stays out of quiescence, and a quiesced one starts a round
// at once so that it holds a lease again after one round trip. Call it
// before CanRead; it returns the effects of that round.
func (r *Replica) Touch(now Tick, b Bucket) []Effect {
	r.now = now
	st := r.buckets[b]
	if st == nil || st.role != RolePrimary || st.deposed || st.needBump {
		return nil
	}
	return r.wake(st)
}

// Restore loads a bucket's durable log at start: base is the last entry
// below tail (committed; {0,0} for an empty log), tail the entries after
// it in order, commit the durable commit hint (at least base.Seq). Every
// uncommitted entry must be in tail.
func (r *Replica) Restore(b Bucket, base EntryID, tail []Entry, commit Seq) error {
	if commit < base.Seq {
		return fmt.Errorf("%w: bucket %d: commit %d below base %d", ErrBadRestore, b, commit, base.Seq)
	}
	for i, e := range tail {
		if e.Seq != base.Seq+Seq(i)+1 {
			return fmt.Errorf("%w: bucket %d: entry %d at position %d after base %d", ErrBadRestore, b, e.Seq, i, base.Seq)
		}
	}
	st := r.bucket(b)
	st.base, st.log, st.wid = base, slices.Clone(tail), make([]uint64, len(tail))
	st.durable, st.commit = st.last(), min(commit, st.last())
	st.matched = st.commit
	r.compact(st)
	return nil
}

// Applied feeds the applied metadata: every bucket whose configuration
// is newer than the one this node acts on and names this node (or that
// it already holds) changes role. Call it with every applied View.
func (r *Replica) Applied(now Tick, v View) []Effect {
	r.now = now
	var effs []Effect
	if r.seen == nil {
		r.seen = map[Bucket]Epoch{}
	}
	for _, b := range v.Buckets() {
		if e, ok := v.BucketEpoch(b); !ok || e <= r.seen[b] {
			continue
		} else {
			r.seen[b] = e
		}
		m, ok := v.Membership(b)
		if !ok {
			continue
		}
		st := r.buckets[b]
		if st == nil && m.Primary != r.self && !m.IsOwner(r.self) {
			continue
		}
		st = r.bucket(b)
		if st.known && m.Epoch <= st.m.Epoch {
			continue
		}
		effs = append(effs, r.setMembership(st, m)...)
	}
	return effs
}

func (r *Replica) setMembership(st *bucket, m Membership) []Effect {
	first := !st.known
	r.unquiet(st)
	// The same primary goes on only into the very next epoch: after a
	// jump, another primary may have written in between.
	continuing := st.role == RolePrimary && !st.needBump && !st.deposed && m.Epoch == st.m.Epoch+1
	st.m, st.known = m.clone(), true
	st.proposal = nil
	// Rounds are numbered by each primary: one seen from the previous
	// primary means nothing to the next (acknowledging it would name a
	// round the new primary never sent, and keep its lease away).
	st.lastRound = 0
	st.matched = st.commit
	st.leaseFloor = st.round + 1
	var effs []Effect
	if m.Primary != r.self {
		if st.role == RolePrimary {
			effs = r.failPending(st)
			st.setPeers(nil)
		}
		st.needBump, st.deposed = false, false
		switch {
		case m.InSet(r.self):
			st.role = RoleBackup
		case m.IsOwner(r.self):
			st.role = RoleLearner
			effs = append(effs, r.catchUp(st))
		default:
			st.role = RoleNone
		}
		return effs
	}
	if first && !r.mut.noBump {
		// This node may have been the primary of this very epoch before
		// it restarted, and have shipped entries it lost: it never writes
		// in an epoch it did not see begin. It asks for a new one.
		st.role, st.needBump = RolePrimary, true
		st.setPeers(nil)
		to := m.clone()
		to.Epoch++
		return r.propose(st, to, "primary restarted: new epoch")
	}
	if !continuing {
		// Promotion (or our restart's new epoch): reconcile from our
		// commit point.
		if st.role == RolePrimary {
			effs = r.failPending(st)
		}
		st.promotedLast = st.last()
		st.setPeers(nil)
	}
	old := st.peers
	peers := map[NodeID]*peer{}
	for _, o := range m.Owners {
		if o == r.self {
			continue
		}
		p := old[o]
		if p == nil {
			p = &peer{next: st.commit + 1}
		}
		p.member = m.InSet(o)
		p.lastAck, p.behind, p.acked = r.now, false, false
		peers[o] = p
	}
	st.setPeers(peers)
	st.role, st.needBump, st.deposed = RolePrimary, false, false
	if r.cfg.QuiesceTicks > 0 && st.last() == 0 {
		// An empty bucket has nothing to reconcile: it starts quiet and
		// runs its first round when it is used. (A cluster's first
		// placements reconfigure every bucket, several times.)
		st.quiet = true
		return effs
	}
	effs = append(effs, r.broadcast(st)...)
	return append(effs, r.advance(st)...)
}

func (r *Replica) propose(st *bucket, to Membership, reason string) []Effect {
	c := Change{From: st.m.Epoch, To: to}
	st.proposal, st.proposedAt = &c, r.now
	return []Effect{ProposeChange{Changes: []Change{{From: c.From, To: c.To.clone()}}, Reason: fmt.Sprintf("bucket %d: %s", st.id, reason)}}
}

func (r *Replica) failPending(st *bucket) []Effect {
	var effs []Effect
	for _, w := range st.pending {
		effs = append(effs, Reply{Bucket: st.id, Ref: w.ref, Seq: w.seq, Epoch: st.m.Epoch, Err: fmt.Errorf("bucket %d seq %d: %w", st.id, w.seq, ErrOutcomeUnknown)})
	}
	st.pending = nil
	return effs
}

func (r *Replica) nextWrite(st *bucket) uint64 {
	st.writeNext++
	return st.writeNext
}

// Propose orders a client write on the bucket's primary: it is appended
// at the next seq, persisted here and shipped; a Reply with the same ref
// follows once every replica of the set has it durable.
func (r *Replica) Propose(now Tick, b Bucket, data []byte, ref uint64) ([]Effect, error) {
	r.now = now
	st := r.buckets[b]
	switch {
	case st == nil || st.role != RolePrimary || st.deposed:
		return nil, fmt.Errorf("bucket %d: %w", b, ErrNotPrimary)
	case st.needBump:
		return nil, fmt.Errorf("bucket %d: restarted, waiting for a new epoch: %w", b, ErrNotReady)
	case now < st.promised+r.cfg.LeaseMarginTicks && !r.mut.noLeaseWait:
		return nil, fmt.Errorf("bucket %d: the previous primary's lease may last until tick %d: %w", b, st.promised+r.cfg.LeaseMarginTicks, ErrNotReady)
	case len(st.m.Set) < 1+r.cfg.MinReplicasToWrite:
		return nil, fmt.Errorf("bucket %d: %d of %d replicas needed in the set: %w", b, len(st.m.Set), 1+r.cfg.MinReplicasToWrite, ErrNoReplicas)
	case len(data) > r.cfg.BatchBytesMax:
		return nil, fmt.Errorf("bucket %d: %d bytes, at most %d: %w", b, len(data), r.cfg.BatchBytesMax, ErrTooLarge)
	}
	if n := st.last() - st.commit; n >= Seq(r.cfg.InflightEntriesMax) {
		return nil, fmt.Errorf("bucket %d: %d entries in flight: %w", b, n, ErrBackpressure)
	}
	if n := bytesAfter(st, st.commit); n+int64(len(data)) > r.cfg.InflightBytesMax {
		return nil, fmt.Errorf("bucket %d: %d bytes in flight: %w", b, n, ErrBackpressure)
	}
	effs := r.wake(st)
	e := Entry{Seq: st.last() + 1, Epoch: st.m.Epoch, Data: slices.Clone(data)}
	w := r.nextWrite(st)
	st.log, st.wid = append(st.log, e), append(st.wid, w)
	st.pending = append(st.pending, pendingWrite{seq: e.Seq, ref: ref})
	effs = append(effs, Persist{Bucket: b, Write: w, Entries: []Entry{e}, Commit: st.commit})
	for _, o := range st.peerIDs {
		if p := st.peers[o]; p.next == e.Seq {
			effs = append(effs, r.sendTo(st, o, p)...)
		}
	}
	return effs, nil
}

// bytesAfter sums the payload of the entries after s.
func bytesAfter(st *bucket, s Seq) int64 {
	var n int64
	for i := max(0, st.index(s+1)); i < len(st.log); i++ {
		n += int64(len(st.log[i].Data))
	}
	return n
}

// broadcast starts a round: a Ship to every other owner.
func (r *Replica) broadcast(st *bucket) []Effect {
	st.round++
	st.rounds = append(st.rounds, sentRound{round: st.round, at: r.now})
	if len(st.rounds) > roundsMax {
		st.rounds = slices.Delete(st.rounds, 0, len(st.rounds)-roundsMax)
	}
	st.lastBeat = r.now
	st.beatCommit, st.beatRound = st.commit, st.round
	var effs []Effect
	for _, o := range st.peerIDs {
		effs = append(effs, r.sendTo(st, o, st.peers[o])...)
	}
	return effs
}

// sendTo ships the next batch (possibly empty) to o.
func (r *Replica) sendTo(st *bucket, o NodeID, p *peer) []Effect {
	prev := p.next - 1
	if prev < st.base.Seq {
		if p.copying && r.now-p.copyAt < r.cfg.ProposeRetryTicks {
			return nil
		}
		p.copying, p.copyAt = true, r.now
		upto, _ := st.entryID(st.commit)
		return []Effect{NeedCopy{Bucket: st.id, To: o, Upto: upto}}
	}
	if prev > st.last() {
		prev, p.next = st.last(), st.last()+1
	}
	prevID, _ := st.entryID(prev)
	var entries []Entry
	size := 0
	for i := st.index(prev + 1); i >= 0 && i < len(st.log) && len(entries) < r.cfg.BatchEntriesMax; i++ {
		if len(entries) > 0 && size+len(st.log[i].Data) > r.cfg.BatchBytesMax {
			break
		}
		size += len(st.log[i].Data)
		entries = append(entries, st.log[i])
	}
	p.next = prev + Seq(len(entries)) + 1
	return []Effect{Send{Msg: Message{Type: MsgShip, Bucket: st.id, From: r.self, To: o, Epoch: st.m.Epoch, Round: st.round,
		Prev: prevID, Entries: entries, Last: st.last(), Commit: st.commit}}}
}

// advance moves the primary's commit point to what every replica of the
// set holds durable, and replies to the writes it covers.
func (r *Replica) advance(st *bucket) []Effect {
	if st.role != RolePrimary || st.needBump || st.deposed || (st.proposal != nil && !r.mut.ackDuringChange) {
		return nil
	}
	c := st.durable
	var best Seq
	for _, o := range st.m.Set {
		if o == r.self {
			continue
		}
		p := st.peers[o]
		if p == nil {
			return nil
		}
		c = min(c, p.match)
		best = max(best, p.match)
	}
	if r.mut.ackWithoutAll && len(st.m.Set) > 1 {
		c = min(st.durable, best)
	}
	if c <= st.commit {
		return nil
	}
	st.commit = c
	var effs []Effect
	for len(st.pending) > 0 && st.pending[0].seq <= st.commit {
		w := st.pending[0]
		st.pending = st.pending[1:]
		effs = append(effs, Reply{Bucket: st.id, Ref: w.ref, Seq: w.seq, Epoch: st.m.Epoch})
	}
	r.compact(st)
	return effs
}

// compact drops committed, durable entries beyond RetainEntriesMax, a
// quarter at a time.
func (r *Replica) compact(st *bucket) {
	limit := r.cfg.RetainEntriesMax
	if len(st.log) <= limit+limit/4 {
		return
	}
	k := 0
	for k < len(st.log)-limit && st.log[k].Seq <= min(st.commit, st.durable) {
		k++
	}
	if k == 0 {
		return
	}
	st.base = st.log[k-1].ID()
	st.log, st.wid = slices.Clone(st.log[k:]), slices.Clone(st.wid[k:])
}

// Persisted reports that write (a Persist or Truncate of the bucket) and
// every earlier one are durable.
func (r *Replica) Persisted(now Tick, b Bucket, write uint64) []Effect {
	r.now = now
	st := r.buckets[b]
	if st == nil || write <= st.written {
		return nil
	}
	st.written = write
	old := st.durable
	d := st.base.Seq
	for i := range st.log {
		if st.wid[i] > st.written {
			break
		}
		d = st.log[i].Seq
	}
	st.durable = d
	switch st.role {
	case RolePrimary:
		return r.advance(st)
	case RoleBackup, RoleLearner:
		if st.durable > old {
			return []Effect{r.ack(st, st.lastRound)}
		}
	}
	return nil
}

func (r *Replica) ack(st *bucket, round uint64) Effect {
	if st.role == RoleBackup {
		st.promised = max(st.promised, r.now+r.cfg.LeaseTicks)
	}
	return Send{Msg: Message{Type: MsgAck, Bucket: st.id, From: r.self, To: st.m.Primary, Epoch: st.m.Epoch, Round: round, Seq: min(st.durable, st.matched)}}
}

func (r *Replica) refuse(m Message, epoch Epoch, why Reason, hint Seq) []Effect {
	return []Effect{Send{Msg: Message{Type: MsgAck, Bucket: m.Bucket, From: r.self, To: m.From, Epoch: epoch, Round: m.Round, Reject: why, Hint: hint}}}
}

func (r *Replica) catchUp(st *bucket) Effect {
	st.lastShip = r.now
	lastID, _ := st.entryID(st.last())
	return Send{Msg: Message{Type: MsgCatchUp, Bucket: st.id, From: r.self, To: st.m.Primary, Epoch: st.m.Epoch, Prev: lastID, Seq: st.last(), Commit: st.commit}}
}

// Step handles a message addressed to this node.
func (r *Replica) Step(now Tick, m Message) []Effect {
	r.now = now
	st := r.buckets[m.Bucket]
	switch m.Type {
	case MsgShip:
		if st == nil || !st.known {
			return r.refuse(m, 0, ReasonFutureEpoch, 0)
		}
		return r.stepShip(st, m)
	case MsgAck:
		if st == nil || st.role != RolePrimary || st.needBump {
			return nil
		}
		return r.stepAck(st, m)
	case MsgCatchUp:
		if st == nil || st.role != RolePrimary || st.needBump || st.deposed || m.Epoch > st.m.Epoch {
			return nil
		}
		return r.stepCatchUp(st, m)
	}
	return nil
}

func (r *Replica) stepShip(st *bucket, m Message) []Effect {
	epoch := st.m.Epoch
	switch {
	case m.Epoch < st.m.Epoch && !r.mut.acceptStaleEpoch:
		return r.refuse(m, st.m.Epoch, ReasonStaleEpoch, 0)
	case m.Epoch > st.m.Epoch:
		return r.refuse(m, st.m.Epoch, ReasonFutureEpoch, 0)
	case m.Epoch == st.m.Epoch && m.From != st.m.Primary:
		return r.refuse(m, st.m.Epoch, ReasonNotPrimary, 0)
	case st.role == RoleNone || st.role == RolePrimary:
		return r.refuse(m, st.m.Epoch, ReasonNotOwner, 0)
	}
	if m.Epoch < epoch {
		epoch = m.Epoch // only under the acceptStaleEpoch mutation
	}
	st.lastShip = r.now
	if m.Prev.Seq > st.last() {
		return r.refuse(m, epoch, ReasonGap, st.last())
	}
	if m.Prev.Seq > st.commit {
		if id, ok := st.entryID(m.Prev.Seq); (!ok || id.Epoch != m.Prev.Epoch) && !r.mut.noPrevCheck {
			return r.refuse(m, epoch, ReasonMismatch, st.commit)
		}
	}
	var effs []Effect
	// Entries already held (same ID) are skipped: nothing is applied
	// twice. The first new or different one starts the fresh part.
	k := 0
	for ; k < len(m.Entries); k++ {
		e := m.Entries[k]
		if e.Seq <= st.commit && e.Seq <= st.last() {
			continue
		}
		if id, ok := st.entryID(e.Seq); ok && (id == e.ID() || r.mut.noTruncate) {
			continue
		}
		break
	}
	if k < len(m.Entries) {
		if at := m.Entries[k].Seq - 1; at < st.last() {
			effs = append(effs, r.truncate(st, at))
		}
		fresh := slices.Clone(m.Entries[k:])
		w := r.nextWrite(st)
		for _, e := range fresh {
			st.log, st.wid = append(st.log, e), append(st.wid, w)
		}
		effs = append(effs, Persist{Bucket: st.id, Write: w, Entries: fresh, Commit: min(m.Commit, m.Prev.Seq+Seq(len(m.Entries)))})
	}
	end := m.Prev.Seq + Seq(len(m.Entries))
	// Reconciliation: the primary's log ended at end when it sent this.
	// An entry beyond it from an older epoch is not in the primary's log
	// (its old entries all lie below what it held at promotion, which
	// every Last of its epoch covers), so it was never committed, and it
	// and what follows go. An entry of this epoch beyond end came from a
	// later ship (this one is late) and stays.
	if m.Last == end && end >= st.commit && st.last() > end && st.log[st.index(end+1)].Epoch < m.Epoch && !r.mut.noTruncate {
		effs = append(effs, r.truncate(st, end))
	}
	st.matched = max(st.matched, end)
	st.commit = max(st.commit, min(m.Commit, end, st.last()))
	st.lastRound = max(st.lastRound, m.Round)
	// The acknowledgement (of the round, and of what is durable) goes
	// first; Persisted acknowledges the new entries once durable.
	a := r.ack(st, m.Round).(Send)
	a.Msg.Epoch, a.Msg.To = epoch, m.From
	r.compact(st)
	return append([]Effect{a}, effs...)
}

func (r *Replica) truncate(st *bucket, after Seq) Effect {
	if after < st.commit {
		// Never reached by the protocol: committed entries are the same
		// everywhere. Refuse to lose one.
		panic(fmt.Sprintf("replica: bucket %d: truncate after %d below commit %d", st.id, after, st.commit))
	}
	n := st.index(after + 1)
	st.log, st.wid = st.log[:n], st.wid[:n]
	st.durable = min(st.durable, after)
	st.matched = min(st.matched, after)
	return Truncate{Bucket: st.id, Write: r.nextWrite(st), After: after}
}

func (r *Replica) stepAck(st *bucket, m Message) []Effect {
	if m.Epoch > st.m.Epoch && m.Reject == ReasonStaleEpoch {
		// A replica has a newer configuration: this node was deposed and
		// can never collect its acknowledgement again.
		st.deposed = true
		return r.failPending(st)
	}
	if m.Epoch != st.m.Epoch {
		return nil
	}
	p := st.peers[m.From]
	if p == nil {
		return nil
	}
	p.lastAck = r.now
	switch m.Reject {
	case ReasonNone:
		if m.Seq > p.match {
			p.match = m.Seq
		}
		p.next = max(p.next, p.match+1)
		if m.Round <= st.round { // only rounds this primary sent count
			p.round = max(p.round, m.Round)
		}
		p.copying, p.acked, p.retried = false, true, 0
	case ReasonGap, ReasonMismatch:
		h := m.Hint
		if p.member {
			// A member of the set holds every committed entry.
			h = max(h, st.commit)
		}
		p.next = min(p.next, h+1)
		if p.retried == p.next {
			// Refused at the same place again: the heartbeat retries,
			// so a refusal never starts an unbounded exchange.
			return nil
		}
		p.retried = p.next
		return r.sendTo(st, m.From, p)
	default:
		return nil
	}
	effs := r.advance(st)
	if p.next <= st.last() {
		effs = append(effs, r.sendTo(st, m.From, p)...)
	}
	return effs
}

func (r *Replica) stepCatchUp(st *bucket, m Message) []Effect {
	p := st.peers[m.From]
	if p == nil {
		return nil
	}
	r.unquiet(st)
	p.lastAck, p.copying = r.now, false
	last := m.Prev
	prefix := last.Seq <= st.last() && last.Seq <= min(m.Commit, st.commit)
	if id, ok := st.entryID(last.Seq); ok && id == last {
		prefix = true
	}
	if prefix {
		p.next = last.Seq + 1 // a delta
	} else {
		p.next = m.Commit + 1 // it truncates above its commit point
	}
	p.match = min(p.match, p.next-1)
	return r.sendTo(st, m.From, p)
}

// Install reports that the driver copied the bucket (NeedCopy) up to upto
// into this node's store, replacing its log: it then catches up by delta.
func (r *Replica) Install(now Tick, b Bucket, upto EntryID) []Effect {
	r.now = now
	st := r.buckets[b]
	if st == nil || st.role != RoleLearner {
		return nil
	}
	st.base, st.log, st.wid = upto, nil, nil
	st.durable, st.commit, st.matched = upto.Seq, upto.Seq, upto.Seq
	return []Effect{r.catchUp(st)}
}

// Tick advances the node's time: heartbeats, lease rounds, detection of
// replicas to take out of the set (or, caught up, into it), proposal
// retries, learner catch-up requests.
//
// The configuration changes of all buckets due at one Tick come as one
// ProposeChange, last: one metadata entry for a node's whole batch (each
// change is still a compare-and-set of its own bucket).
func (r *Replica) Tick(now Tick) []Effect {
	r.now = now
	var effs []Effect
	var batch ProposeChange
	for _, st := range r.order {
		switch st.role {
		case RolePrimary:
			for _, e := range r.tickPrimary(st) {
				if p, ok := e.(ProposeChange); ok {
					batch.Changes = append(batch.Changes, p.Changes...)
					if batch.Reason == "" {
						batch.Reason = p.Reason
					}
					continue
				}
				effs = append(effs, e)
			}
		case RoleLearner:
			if now-st.lastShip >= r.cfg.AckTimeoutTicks {
				effs = append(effs, r.catchUp(st))
			}
		}
	}
	if n := len(batch.Changes); n > 0 {
		if n > 1 {
			batch.Reason = fmt.Sprintf("%s (and %d more buckets)", batch.Reason, n-1)
		}
		effs = append(effs, batch)
	}
	return effs
}

func (r *Replica) tickPrimary(st *bucket) []Effect {
	if st.proposal != nil {
		if r.now-st.proposedAt >= r.cfg.ProposeRetryTicks {
			return r.propose(st, st.proposal.To, "retry")
		}
		if st.needBump {
			return nil
		}
	}
	if st.deposed || st.quiet {
		return nil
	}
	if r.cfg.QuiesceTicks > 0 && r.now-st.active >= r.cfg.QuiesceTicks && r.canQuiesce(st) {
		st.quiet = true
		return nil
	}
	var effs []Effect
	if r.now-st.lastBeat >= r.cfg.HeartbeatTicks {
		effs = r.broadcast(st)
	}
	if st.proposal != nil {
		return effs
	}
	last := st.last()
	var out []NodeID
	for _, o := range st.peerIDs {
		p := st.peers[o]
		if p.behind && p.match >= p.target {
			p.behind = false
		}
		if !p.behind && p.match < last {
			p.behind, p.behindSince, p.target = true, r.now, last
		}
		if !p.member {
			continue
		}
		if r.now-p.lastAck >= r.cfg.AckTimeoutTicks || (p.behind && r.now-p.behindSince >= r.cfg.LagTicksMax) ||
			bytesAfter(st, max(p.match, st.base.Seq)) > r.cfg.LagBytesMax {
			out = append(out, o)
		}
	}
	if len(out) > 0 {
		to := st.m.clone()
		to.Epoch++
		to.Set = slices.DeleteFunc(to.Set, func(id NodeID) bool { return slices.Contains(out, id) })
		return append(effs, r.propose(st, to, "replicas "+joinIDs(out)+" fell behind or stopped answering")...)
	}
	if r.now < st.promised+r.cfg.LeaseMarginTicks && !r.mut.noLeaseWait {
		// A replica joining now never acknowledged the previous
		// primary's rounds: wait until they cannot be in force.
		return effs
	}
	for _, o := range st.peerIDs {
		if p := st.peers[o]; !p.member && p.acked && !p.copying && p.match == last && r.now-p.lastAck < r.cfg.AckTimeoutTicks {
			to := st.m.clone()
			to.Epoch++
			to.Set = append(to.Set, o)
			slices.Sort(to.Set)
			// No write is acknowledged until the new set is applied, so
			// the joining replica misses none.
			return append(effs, r.propose(st, to, "replica "+string(o)+" caught up")...)
		}
	}
	return effs
}

// leaseUntil is the tick the primary's read lease ends: a round sent in
// the current configuration and acknowledged by every other replica of
// the set lasts LeaseTicks from its sending.
func (r *Replica) leaseUntil(st *bucket) Tick {
	until := Tick(math.MaxInt64)
	var best Tick
	for _, o := range st.m.Set {
		if o == r.self {
			continue
		}
		p := st.peers[o]
		if p == nil || p.round < st.leaseFloor {
			if r.mut.leaseWithoutSet {
				continue
			}
			return 0
		}
		i, ok := slices.BinarySearchFunc(st.rounds, p.round, func(s sentRound, n uint64) int { return int(int64(s.round) - int64(n)) })
		if !ok {
			return 0
		}
		until = min(until, st.rounds[i].at+r.cfg.LeaseTicks)
		best = max(best, st.rounds[i].at+r.cfg.LeaseTicks)
	}
	if r.mut.leaseWithoutSet && best > 0 {
		return best
	}
	return until
}

// CanRead says whether the primary may serve a read of the bucket at now:
// nil only while it holds its lease, the lease it granted its predecessor
// has run out, and what it held at promotion is committed.
func (r *Replica) CanRead(now Tick, b Bucket) error {
	st := r.buckets[b]
	switch {
	case st == nil || st.role != RolePrimary || st.deposed:
		return fmt.Errorf("bucket %d: %w", b, ErrNotPrimary)
	case st.needBump:
		return fmt.Errorf("bucket %d: restarted, waiting for a new epoch: %w", b, ErrNotReady)
	case now < st.promised+r.cfg.LeaseMarginTicks && !r.mut.noLeaseWait:
		return fmt.Errorf("bucket %d: the previous primary's lease may last until tick %d: %w", b, st.promised+r.cfg.LeaseMarginTicks, ErrNotReady)
	case st.commit < st.promotedLast:
		return fmt.Errorf("bucket %d: reconciling, commit %d < %d: %w", b, st.commit, st.promotedLast, ErrNotReady)
	}
	if until := r.leaseUntil(st); now >= until {
		return fmt.Errorf("bucket %d: lease ended at tick %d: %w", b, until, ErrNoLease)
	}
	if st.proposal != nil {
		return fmt.Errorf("bucket %d: configuration change in progress: %w", b, ErrNoLease)
	}
	return nil
}

// Status is what a node knows of one bucket (for status and metrics).
type Status struct {
	Role                  Role
	Epoch                 Epoch
	Last, Commit, Durable Seq
	// Lagging lists, on a primary, the replicas behind its log end.
	Lagging []NodeID
	Pending int
	// Quiet: a quiesced primary (no heartbeats until it is used).
	Quiet bool
}

// Status describes the bucket; false if the node holds no state for it.
func (r *Replica) Status(b Bucket) (Status, bool) {
	st := r.buckets[b]
	if st == nil {
		return Status{}, false
	}
	s := Status{Role: st.role, Epoch: st.m.Epoch, Last: st.last(), Commit: st.commit, Durable: st.durable, Pending: len(st.pending), Quiet: st.quiet}
	for _, o := range st.peerIDs {
		if st.peers[o].match < st.last() {
			s.Lagging = append(s.Lagging, o)
		}
	}
	return s, true
}

// Applicable is the highest seq of bucket b the driver may apply to its
// store: committed and durable here (0 for a bucket it holds no state of).
func (r *Replica) Applicable(b Bucket) Seq {
	st := r.buckets[b]
	if st == nil {
		return 0
	}
	return min(st.commit, st.durable)
}

// Role returns this node's role for bucket b by the configuration it
// acts on.
func (r *Replica) Role(b Bucket) Role {
	if st := r.buckets[b]; st != nil {
		return st.role
	}
	return RoleNone
}

// Describe is a one-line dump of bucket b's primary-side state (peers,
// rounds, lease floor), for status pages and debugging.
func (r *Replica) Describe(b Bucket) string {
	st := r.buckets[b]
	if st == nil {
		return "-"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "round=%d floor=%d lastBeat=%d now=%d promised=%d", st.round, st.leaseFloor, st.lastBeat, r.now, st.promised)
	if n := len(st.rounds); n > 0 {
		fmt.Fprintf(&sb, " rounds=%d..%d", st.rounds[0].round, st.rounds[n-1].round)
	}
	for _, o := range st.peerIDs {
		p := st.peers[o]
		fmt.Fprintf(&sb, " [%s member=%v match=%d next=%d round=%d lastAck=%d acked=%v]", o, p.member, p.match, p.next, p.round, p.lastAck, p.acked)
	}
	return sb.String()
}

// Stats sums what metrics show over every bucket this node holds.
type Stats struct {
	Primary, Backup, Learner int
	// Quiet counts quiesced primaries; Lagging the in-set replicas (of
	// this node's primaries) behind the log end, LagEntries by how many
	// entries in all.
	Quiet, Lagging int
	LagEntries     int64
}

// Stats returns the sums over every bucket (O(buckets)).
func (r *Replica) Stats() Stats {
	var s Stats
	for _, st := range r.order {
		switch st.role {
		case RolePrimary:
			s.Primary++
			if st.quiet {
				s.Quiet++
			}
			for _, o := range st.peerIDs {
				if p := st.peers[o]; p.member && p.match < st.last() {
					s.Lagging++
					s.LagEntries += int64(st.last() - p.match)
				}
			}
		case RoleBackup:
			s.Backup++
		case RoleLearner:
			s.Learner++
		}
	}
	return s
}
