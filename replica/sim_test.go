package replica

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The simulation: nodes running a Replica each, a modelled driver (a disk
// per node that survives crashes, writes performed at once or held and
// performed later, lost in a crash), a metadata log of configurations
// (each ProposeChange is queued, then committed in any order as one entry
// whose changes are compare-and-set on the epoch, or lost), a leader
// running Failover, a message queue delivered in any order, duplicated or
// lost, crashes, restarts, pauses (a paused node neither ticks nor
// receives; its clock jumps on resume) and clients writing and reading.
// One global clock stands for real time; every running node's ticks equal
// it, so "at the same time" is well defined for the invariants.
//
// Invariants checked at every effect:
//   - at the moment a write is acknowledged, it is on the disk (at its
//     seq, with its data) of every member of the set of the newest
//     committed configuration — so whichever replica is promoted next has
//     it — and no seq is ever acknowledged for two different writes (two
//     primaries acknowledging conflicting writes). Acknowledgements of
//     two epochs may interleave in time: an old primary may still
//     acknowledge, late, a write committed under its configuration
//     (every replica of its set, the new primary included, had it
//     durable), which is safe; seed 11131 shows one;
//   - an acknowledged write's data is the entry at its seq on the node;
//   - a read served by a primary of epoch e at time t, once a primary of
//     a later epoch has accepted a write at or before t, is stale; so is
//     a read by a primary whose commit point is below a write already
//     acknowledged;
//   - a disk never truncates below its durable commit point, and writes
//     land contiguously.
//
// At the end (heal): every acknowledged write is on the disk of every
// member of the final set, at its seq, in order.

type simView struct {
	index uint64
	ms    map[Bucket]Membership
}

func (v *simView) Index() uint64     { return v.index }
func (v *simView) Buckets() []Bucket { return slices.Sorted(maps.Keys(v.ms)) }
func (v *simView) BucketEpoch(b Bucket) (Epoch, bool) {
	m, ok := v.ms[b]
	return m.Epoch, ok
}
func (v *simView) Membership(b Bucket) (Membership, bool) {
	m, ok := v.ms[b]
	return m, ok
}

type diskLog struct {
	entries []Entry
	commit  Seq
}

type simNode struct {
	id     NodeID
	r      *Replica // nil while down
	paused bool
	disk   map[Bucket]*diskLog
	// hold: the driver queues disk writes (slow disk) until flushed.
	hold    bool
	queued  []Effect
	lagMeta bool // applies metadata only when told
	// cut: the leader cannot hear the node (its replicas and clients
	// can).
	cut bool
}

type clientWrite struct {
	b    Bucket
	data string
	node NodeID
}

type ackRec struct {
	seq   Seq
	data  string
	epoch Epoch
	at    Tick
	node  NodeID
}

type acceptRec struct {
	epoch Epoch
	at    Tick
}

type proposal struct {
	from NodeID
	p    ProposeChange
}

type sim struct {
	cfg       Config
	now       Tick
	log       []*simView
	nodes     map[NodeID]*simNode
	order     []NodeID
	leader    *Failover
	queue     []Message
	last      *Message
	proposals []proposal
	auto      bool // commit proposals at once
	out       []string
	quiet     bool
	// hideBeats: do not log heartbeats and plain acks (run).
	hideBeats bool
	// blocked: messages from [0] to [1] are lost when sent.
	blocked map[[2]NodeID]bool

	refs       map[uint64]clientWrite
	nextRef    uint64
	acks       map[Bucket][]ackRec
	accepted   map[Bucket][]acceptRec
	lastSeq    map[Bucket]Seq
	reads      int
	quietSteps int // steps a primary bucket spent quiesced (random schedules)
	violations []string
	mut        string
}

func testConfig() Config {
	c := DefaultConfig()
	c.BatchEntriesMax = 4
	c.BatchBytesMax = 64
	c.InflightEntriesMax = 8
	c.InflightBytesMax = 256
	c.RetainEntriesMax = 8
	c.LagBytesMax = 128
	c.LagTicksMax = 16
	c.AckTimeoutTicks = 8
	c.HeartbeatTicks = 2
	c.LeaseTicks = 5
	c.LeaseMarginTicks = 1
	c.DeadTicks = 10
	c.ProposeRetryTicks = 6
	c.FailoverBatchMax = 2
	c.QuiesceTicks = 0 // the scenarios' heartbeats go on; quiesce.txt and half the random schedules set it
	return c
}

// newSim starts nodes with every bucket owned and in sync on all of them,
// bucket b's primary being node b mod n.
func newSim(cfg Config, nodes int, buckets int, mut string) *sim {
	s := &sim{cfg: cfg, nodes: map[NodeID]*simNode{}, auto: true, refs: map[uint64]clientWrite{}, acks: map[Bucket][]ackRec{},
		accepted: map[Bucket][]acceptRec{}, lastSeq: map[Bucket]Seq{}, mut: mut, blocked: map[[2]NodeID]bool{}}
	for i := 1; i <= nodes; i++ {
		s.order = append(s.order, NodeID(fmt.Sprintf("n%d", i)))
	}
	v := &simView{index: 1, ms: map[Bucket]Membership{}}
	for b := range buckets {
		v.ms[Bucket(b)] = Membership{Bucket: Bucket(b), Epoch: 1, Primary: s.order[b%nodes], Set: slices.Clone(s.order), Owners: slices.Clone(s.order)}
	}
	s.log = []*simView{v}
	s.leader, _ = NewFailover(cfg, 0)
	s.leader.promoteOutOfSet = mut == "promote-out-of-set"
	for _, id := range s.order {
		n := &simNode{id: id, disk: map[Bucket]*diskLog{}}
		s.nodes[id] = n
		n.r = s.newReplica(id)
		// A fresh cluster: the nodes saw epoch 1 begin (no restart).
		for _, b := range v.Buckets() {
			st := n.r.bucket(b)
			st.known, st.promised = true, -cfg.LeaseMarginTicks
			m := v.ms[b]
			st.m = m.clone()
			if m.Primary == id {
				st.role = RolePrimary
				peers := map[NodeID]*peer{}
				for _, o := range m.Owners {
					if o != id {
						peers[o] = &peer{next: 1, member: true}
					}
				}
				st.setPeers(peers)
			} else {
				st.role = RoleBackup
			}
		}
	}
	return s
}

func (s *sim) newReplica(id NodeID) *Replica {
	r, err := New(id, s.cfg, s.now)
	if err != nil {
		panic(err)
	}
	r.mut = mutations{
		ackWithoutAll:    s.mut == "ack-without-all",
		acceptStaleEpoch: s.mut == "accept-stale-epoch",
		noLeaseWait:      s.mut == "no-lease-wait",
		noTruncate:       s.mut == "no-truncate",
		leaseWithoutSet:  s.mut == "lease-without-set",
		noBump:           s.mut == "no-bump",
		ackDuringChange:  s.mut == "ack-during-change",
		noPrevCheck:      s.mut == "no-prev-check",
	}
	return r
}

func (s *sim) head() *simView { return s.log[len(s.log)-1] }

func (s *sim) logf(format string, args ...any) {
	if !s.quiet {
		s.out = append(s.out, fmt.Sprintf(format, args...))
	}
}

func (s *sim) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf("t=%d: ", s.now)+fmt.Sprintf(format, args...))
	s.logf("VIOLATION: "+format, args...)
}

func (s *sim) running(id NodeID) bool {
	n := s.nodes[id]
	return n != nil && n.r != nil && !n.paused
}

// apply performs the effects node id returned.
func (s *sim) apply(id NodeID, effs []Effect) {
	for _, e := range effs {
		s.perform(id, e)
	}
}

func (s *sim) perform(id NodeID, e Effect) {
	n := s.nodes[id]
	switch e := e.(type) {
	case Persist, Truncate:
		if n.hold {
			n.queued = append(n.queued, e)
			s.logf("%s: queued %v", id, e)
			return
		}
		s.write(n, e)
	case Send:
		if s.blocked[[2]NodeID{e.Msg.From, e.Msg.To}] {
			s.logf("%s -x %s: blocked %s", id, e.Msg.To, e.Msg)
			return
		}
		s.queue = append(s.queue, e.Msg)
		if !s.hideBeats || (e.Msg.Type == MsgShip && len(e.Msg.Entries) > 0) || e.Msg.Reject != ReasonNone || e.Msg.Type == MsgCatchUp {
			s.logf("%s %v", id, e)
		}
	case Reply:
		s.logf("%s: %v", id, e)
		s.reply(n, e)
	case ProposeChange:
		s.logf("%s: %v", id, e)
		s.proposals = append(s.proposals, proposal{from: id, p: e})
		if s.auto {
			s.commitProposal(0)
		}
	case NeedCopy:
		s.logf("%s: %v", id, e)
		s.copyTo(n, e)
	}
}

func (s *sim) diskOf(n *simNode, b Bucket) *diskLog {
	d := n.disk[b]
	if d == nil {
		d = &diskLog{}
		n.disk[b] = d
	}
	return d
}

// write performs one disk write and reports it durable.
func (s *sim) write(n *simNode, e Effect) {
	var b Bucket
	var w uint64
	switch e := e.(type) {
	case Persist:
		b, w = e.Bucket, e.Write
		d := s.diskOf(n, b)
		if len(e.Entries) > 0 && e.Entries[0].Seq != Seq(len(d.entries))+1 {
			s.violate("%s: b%d persist at %d onto a disk log ending at %d", n.id, b, e.Entries[0].Seq, len(d.entries))
			return
		}
		if len(e.Entries) > 0 {
			s.logf("%s: persisted %s", n.id, fmtEntries(e.Entries))
		}
		d.entries = append(d.entries, e.Entries...)
		d.commit = max(d.commit, min(e.Commit, Seq(len(d.entries))))
	case Truncate:
		b, w = e.Bucket, e.Write
		d := s.diskOf(n, b)
		if e.After < d.commit {
			s.violate("%s: b%d truncate after %d below the durable commit %d", n.id, b, e.After, d.commit)
		}
		if e.After < Seq(len(d.entries)) {
			s.logf("%s: truncated b%d after %d (dropped %s)", n.id, b, e.After, fmtEntries(d.entries[e.After:]))
			d.entries = d.entries[:e.After]
		}
	}
	if n.r != nil {
		s.apply(n.id, n.r.Persisted(s.now, b, w))
	}
}

func (s *sim) flush(n *simNode) {
	n.hold = false
	for len(n.queued) > 0 && n.r != nil {
		e := n.queued[0]
		n.queued = n.queued[1:]
		s.write(n, e)
	}
}

func (s *sim) copyTo(src *simNode, e NeedCopy) {
	dst := s.nodes[e.To]
	if dst == nil || dst.r == nil || dst.paused || len(dst.queued) > 0 {
		return
	}
	sd := s.diskOf(src, e.Bucket)
	if Seq(len(sd.entries)) < e.Upto.Seq {
		s.violate("%s: copy of b%d up to %d but the disk holds %d", src.id, e.Bucket, e.Upto.Seq, len(sd.entries))
		return
	}
	// The driver's copy (snapshot + tail) replaces the target's data.
	dst.disk[e.Bucket] = &diskLog{entries: slices.Clone(sd.entries[:e.Upto.Seq]), commit: e.Upto.Seq}
	s.logf("%s: copied b%d up to %d", dst.id, e.Bucket, e.Upto.Seq)
	s.apply(dst.id, dst.r.Install(s.now, e.Bucket, e.Upto))
}

func (s *sim) reply(n *simNode, e Reply) {
	cw, ok := s.refs[e.Ref]
	if !ok {
		s.violate("%s: reply for unknown ref %d", n.id, e.Ref)
		return
	}
	delete(s.refs, e.Ref)
	if e.Err != nil {
		if !errors.Is(e.Err, ErrOutcomeUnknown) {
			s.violate("%s: reply %d: unexpected error %v", n.id, e.Ref, e.Err)
		}
		return
	}
	b := e.Bucket
	// Two primaries never acknowledge different writes at one seq.
	for _, a := range s.acks[b] {
		if a.seq == e.Seq && a.data != cw.data {
			s.violate("%s: b%d acknowledged seq %d for %q (epoch %d); %s acknowledged it for %q (epoch %d) at t=%d", n.id, b, e.Seq, cw.data, e.Epoch, a.node, a.data, a.epoch, a.at)
		}
	}
	// The write is durable on every member of the newest committed
	// configuration's set: whoever is promoted next holds it.
	for _, id := range s.head().ms[b].Set {
		if d := s.diskOf(s.nodes[id], b).entries; Seq(len(d)) < e.Seq || string(d[e.Seq-1].Data) != cw.data {
			s.violate("%s: b%d acknowledged seq %d %q (epoch %d) but set member %s of epoch %d does not hold it (disk: %s)",
				n.id, b, e.Seq, cw.data, e.Epoch, id, s.head().ms[b].Epoch, fmtEntries(d))
		}
	}
	st := n.r.buckets[b]
	if id, ok := st.entryID(e.Seq); !ok || id.Epoch == 0 || st.log[st.index(e.Seq)].Data == nil || string(st.log[st.index(e.Seq)].Data) != cw.data {
		s.violate("%s: b%d acknowledged seq %d for %q but holds something else there", n.id, b, e.Seq, cw.data)
	}
	s.lastSeq[b] = max(s.lastSeq[b], e.Seq)
	s.acks[b] = append(s.acks[b], ackRec{seq: e.Seq, data: cw.data, epoch: e.Epoch, at: s.now, node: n.id})
}

// commitProposal commits queued proposal i as one metadata entry: each
// change applies only if the bucket's epoch is still its From.
func (s *sim) commitProposal(i int) {
	pr := s.proposals[i]
	s.proposals = slices.Delete(s.proposals, i, i+1)
	h := s.head()
	v := &simView{index: h.index + 1, ms: maps.Clone(h.ms)}
	var applied []string
	for _, c := range pr.p.Changes {
		cur := v.ms[c.To.Bucket]
		if cur.Epoch != c.From || c.To.Epoch != c.From+1 {
			s.logf("meta: refused b%d from e%d (at e%d)", c.To.Bucket, c.From, cur.Epoch)
			continue
		}
		v.ms[c.To.Bucket] = c.To.clone()
		applied = append(applied, c.To.String())
	}
	if len(applied) == 0 {
		return
	}
	s.log = append(s.log, v)
	s.logf("meta %d: %s", v.index, strings.Join(applied, "; "))
	for _, id := range s.order {
		if n := s.nodes[id]; !n.lagMeta {
			s.applyMeta(n)
		}
	}
}

func (s *sim) applyMeta(n *simNode) {
	if n.r == nil || n.paused {
		return
	}
	s.apply(n.id, n.r.Applied(s.now, s.head()))
}

func (s *sim) deliver(m Message) {
	if s.quiet == false && s.hideBeats == false && *traceFlag {
		s.logf("deliver %s -> %s: %s", m.From, m.To, m)
	}
	s.last = &m
	n := s.nodes[m.To]
	if n == nil || n.r == nil {
		s.logf("%s: down, dropped %s", m.To, m)
		return
	}
	s.apply(m.To, n.r.Step(s.now, m))
}

func (s *sim) crash(n *simNode) {
	n.r, n.paused, n.hold, n.queued = nil, false, false, nil
}

func (s *sim) recover(n *simNode) error {
	if n.r != nil {
		return nil
	}
	n.r = s.newReplica(n.id)
	for _, b := range slices.Sorted(maps.Keys(n.disk)) {
		d := n.disk[b]
		k := min(int(d.commit), max(0, len(d.entries)-s.cfg.RetainEntriesMax))
		var base EntryID
		if k > 0 {
			base = d.entries[k-1].ID()
		}
		if err := n.r.Restore(b, base, d.entries[k:], d.commit); err != nil {
			return err
		}
	}
	s.applyMeta(n)
	return nil
}

func (s *sim) tick(k int) {
	for range k {
		s.now++
		for _, id := range s.order {
			if s.running(id) && !s.nodes[id].cut {
				s.leader.Heard(s.now, id)
			}
		}
		if s.leader != nil {
			s.apply("leader", s.leader.Tick(s.now, s.head()))
		}
		for _, id := range s.order {
			if s.running(id) {
				s.apply(id, s.nodes[id].r.Tick(s.now))
			}
		}
	}
}

func (s *sim) clientWrite(id NodeID, b Bucket, data string) error {
	n := s.nodes[id]
	if !s.running(id) {
		return fmt.Errorf("%s is down or paused", id)
	}
	s.nextRef++
	ref := s.nextRef
	s.refs[ref] = clientWrite{b: b, data: data, node: id}
	effs, err := n.r.Propose(s.now, b, []byte(data), ref)
	if err != nil {
		delete(s.refs, ref)
		return err
	}
	s.accepted[b] = append(s.accepted[b], acceptRec{epoch: n.r.buckets[b].m.Epoch, at: s.now})
	s.apply(id, effs)
	return nil
}

func (s *sim) clientRead(id NodeID, b Bucket) error {
	n := s.nodes[id]
	if !s.running(id) {
		return fmt.Errorf("%s is down or paused", id)
	}
	s.apply(id, n.r.Touch(s.now, b))
	if err := n.r.CanRead(s.now, b); err != nil {
		return err
	}
	s.reads++
	st := n.r.buckets[b]
	for _, a := range s.accepted[b] {
		if a.epoch > st.m.Epoch && a.at <= s.now {
			s.violate("%s: stale read of b%d in epoch %d: a primary of epoch %d accepted a write at t=%d", id, b, st.m.Epoch, a.epoch, a.at)
			break
		}
	}
	if st.commit < s.lastSeq[b] {
		s.violate("%s: read of b%d misses acknowledged seq %d (commit %d)", id, b, s.lastSeq[b], st.commit)
	}
	s.logf("%s: read b%d ok (epoch %d commit %d)", id, b, st.m.Epoch, st.commit)
	return nil
}

// checkDurable: every acknowledged write is on the disk of every member
// of the bucket's current set.
func (s *sim) checkDurable() error {
	h := s.head()
	for _, b := range h.Buckets() {
		for _, id := range h.ms[b].Set {
			d := s.diskOf(s.nodes[id], b)
			for _, a := range s.acks[b] {
				if Seq(len(d.entries)) < a.seq || string(d.entries[a.seq-1].Data) != a.data {
					return fmt.Errorf("b%d: acknowledged seq %d %q (epoch %d by %s at t=%d) missing on set member %s (disk: %s)",
						b, a.seq, a.data, a.epoch, a.node, a.at, id, fmtEntries(d.entries))
				}
			}
		}
	}
	return nil
}

func fmtEntries(es []Entry) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("%d.%d:%s", e.Seq, e.Epoch, e.Data))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func (s *sim) state() []string {
	var out []string
	h := s.head()
	for _, b := range h.Buckets() {
		out = append(out, fmt.Sprintf("meta %d: %s", h.index, h.ms[b]))
	}
	for _, id := range s.order {
		n := s.nodes[id]
		var parts []string
		switch {
		case n.r == nil:
			parts = append(parts, "down")
		case n.paused:
			parts = append(parts, "paused")
		default:
			parts = append(parts, "up")
		}
		for _, b := range h.Buckets() {
			p := fmt.Sprintf("b%d[", b)
			if n.r != nil {
				if st, ok := n.r.Status(b); ok {
					p += fmt.Sprintf("%s e%d last=%d commit=%d durable=%d ", st.Role, st.Epoch, st.Last, st.Commit, st.Durable)
					if st.Quiet {
						p += "quiet "
					}
				}
			}
			p += fmt.Sprintf("disk=%s]", fmtEntries(s.diskOf(n, b).entries))
			parts = append(parts, p)
		}
		if len(n.queued) > 0 {
			parts = append(parts, fmt.Sprintf("queued=%d", len(n.queued)))
		}
		out = append(out, string(id)+": "+strings.Join(parts, " "))
	}
	return out
}
