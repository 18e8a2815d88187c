package rebalancer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/ring"
	"github.com/dbx-kv/dbx/router"
)

// The simulation: a cluster of nodes running the move protocol's state
// machines (Local on every node, Leader on the lowest-named live node)
// over a modelled metadata log that each node applies at its own pace,
// a message queue delivered in any order (or dropped), client writes
// checked where they apply (the node's guard: caught up, not fenced,
// owner by its applied table), crashes that lose a node's volatile state
// and restarts that catch up first — optionally with a wiped disk, which
// replays the log from its start. The driver's part (snapshot, scan,
// delta, fence, delete) is modelled on node/migrate.go, one step at a
// time, so every interleaving of those steps can happen.
//
// Invariants: after every step no bucket has two nodes that would accept
// a write for it; at the end, once the cluster is healed and the moves
// are done, every acknowledged write is what its key's owner holds.

// simView is one applied state of the modelled metadata log.
type simView struct {
	index   uint64
	table   *router.Table
	target  *router.Table
	moves   map[string]Move
	pending []uint16
}

func (v *simView) Index() uint64         { return v.index }
func (v *simView) Table() *router.Table  { return v.table }
func (v *simView) Target() *router.Table { return v.target }
func (v *simView) Pending() []uint16     { return v.pending }
func (v *simView) Move(tok string) (Move, bool) {
	mv, ok := v.moves[tok]
	return mv, ok
}
func (v *simView) Moves() []Move {
	out := make([]Move, 0, len(v.moves))
	for _, tok := range sortedKeys(v.moves) {
		out = append(out, v.moves[tok])
	}
	return out
}

func (v *simView) next() *simView {
	moves := make(map[string]Move, len(v.moves))
	for k, mv := range v.moves {
		moves[k] = mv
	}
	return &simView{index: v.index + 1, table: v.table, target: v.target, moves: moves}
}

func (v *simView) settle() *simView {
	v.pending = nil
	if v.target == nil {
		return v
	}
	plan, err := Plan(v.table, v.target)
	if err != nil {
		panic(err)
	}
	if plan.Moved == 0 {
		v.target = nil
		return v
	}
	moving := map[uint16]bool{}
	for _, mv := range v.moves {
		for _, b := range mv.Buckets {
			moving[b] = true
		}
	}
	for _, t := range plan.Tasks {
		for _, r := range t.Ranges {
			for b := int(r.Lo); b <= int(r.Hi); b++ {
				if !moving[uint16(b)] {
					v.pending = append(v.pending, uint16(b))
				}
			}
		}
	}
	return v
}

type simVal struct {
	val string
	ok  bool // false: deleted
}

// simNode is one node: its durable part (data, log applied so far) and
// its volatile part (Local, snapshots, pulls, queued deletes).
type simNode struct {
	id      string
	up      bool
	applied uint64 // log index applied
	data    map[string]string
	l       *Local
	snaps   map[string]map[string]string // token → snapshot of the move's buckets
	pulls   map[string]*simPull
	deletes []DeleteBuckets
	cancels []string // proposed cancellations not yet delivered to the log
	asked   bool     // catching up: asked the leader for the log's end
}

// simPull is a target's pull in progress: rebalancer.Pull's steps, one
// per schedule step, with the RPC to the source in flight between.
type simPull struct {
	mv        Move
	index     uint64
	p         *Pull
	started   bool // PullStart admitted it
	cleared   bool
	waiting   bool // an RPC is in flight
	cancelled bool
}

type simMsg struct {
	kind     string // begin, scan, delta, fence, abort, pull-done; "+reply" for an answer
	from, to string
	token    string
	entries  map[string]simVal
	left     int
	err      error
}

type sim struct {
	t       testing.TB
	rng     *rand.Rand
	trace   func(string)
	log     []*simView // log[i] has index i+1
	nodes   map[string]*simNode
	ids     []string
	keys    []string
	buckets []uint16
	acked   map[string]simVal
	msgs    []simMsg
	leader  *Leader
	leadID  string
	tokens  int
	writes  int
	// mutation switches for the mutation checks (all false in the real test)
	mut map[string]bool
}

func newSim(t testing.TB, seed uint64, ids []string, nkeys int) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), trace: func(string) {},
		nodes: map[string]*simNode{}, ids: ids, acked: map[string]simVal{}, mut: map[string]bool{}}
	seen := map[uint16]bool{}
	for i := 0; len(s.keys) < nkeys; i++ {
		k := fmt.Sprintf("k%d", i)
		b := router.BucketString(k)
		s.keys = append(s.keys, k)
		if !seen[b] {
			seen[b] = true
			s.buckets = append(s.buckets, b)
		}
	}
	slices.Sort(s.buckets)
	owners := make([]uint16, router.NumBuckets)
	for i, b := range s.buckets {
		owners[b] = uint16(i % len(ids))
	}
	tab, err := router.NewTable(1, ring.Assignment{Nodes: ids, RF: 1, Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	s.log = []*simView{(&simView{index: 1, table: tab, moves: map[string]Move{}}).settle()}
	for _, id := range ids {
		s.nodes[id] = &simNode{id: id, up: true, applied: 1, data: map[string]string{}, l: NewLocal(id, s.localConfig(), false),
			snaps: map[string]map[string]string{}, pulls: map[string]*simPull{}}
		s.nodes[id].l.Applied(s.log[0])
	}
	s.electLeader()
	return s
}

func (s *sim) localConfig() LocalConfig {
	return LocalConfig{DirtyKeysMax: 1000, FenceTimeout: 8, CancelRetry: 2}
}

func (s *sim) head() *simView { return s.log[len(s.log)-1] }

func (s *sim) viewAt(index uint64) *simView { return s.log[index-1] }

// migrate proposes a new target: each bucket of the keys to owners[b].
func (s *sim) migrate(owner func(b uint16) string) {
	ids := slices.Clone(s.head().table.Nodes())
	for _, id := range s.ids {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	owners := make([]uint16, router.NumBuckets)
	cur := s.head().table
	for b := range owners {
		o := cur.OwnerOfBucket(uint16(b))
		if slices.Contains(s.buckets, uint16(b)) {
			o = owner(uint16(b))
		}
		owners[b] = uint16(slices.Index(ids, o))
	}
	tab, err := router.NewTable(cur.Epoch()+1, ring.Assignment{Nodes: ids, RF: 1, Owners: owners})
	if err != nil {
		s.t.Fatal(err)
	}
	v := s.head().next()
	v.target = tab
	s.append(v.settle(), "set-target")
}

func (s *sim) append(v *simView, what string) {
	s.log = append(s.log, v)
	s.trace(fmt.Sprintf("log %d: %s", v.index, what))
}

// propose applies a move command to the log head.
func (s *sim) propose(e Effect) (uint64, error) {
	h := s.head()
	switch e := e.(type) {
	case ProposeStart:
		for _, b := range e.Move.Buckets {
			if h.table.OwnerOfBucket(b) != e.Move.From || h.target == nil || h.target.OwnerOfBucket(b) != e.Move.To {
				return 0, fmt.Errorf("%w: bucket %d", ErrBadMove, b)
			}
		}
		v := h.next()
		v.moves[e.Move.Token] = e.Move
		s.append(v.settle(), "start "+e.Move.Token)
		return v.index, nil
	case ProposeFinish:
		mv, ok := h.moves[e.Token]
		if !ok {
			return 0, ErrUnknownMove
		}
		v := h.next()
		delete(v.moves, e.Token)
		t, err := v.table.Reassign(v.table.Epoch()+1, mv.Buckets, mv.To)
		if err != nil {
			s.t.Fatal(err)
		}
		v.table = t
		s.append(v.settle(), "finish "+e.Token)
		return v.index, nil
	case ProposeCancel:
		if _, ok := h.moves[e.Token]; !ok {
			return 0, ErrUnknownMove
		}
		v := h.next()
		delete(v.moves, e.Token)
		s.append(v.settle(), "cancel "+e.Token)
		return v.index, nil
	}
	return 0, fmt.Errorf("not a proposal: %v", e)
}

func (s *sim) electLeader() {
	id := ""
	for _, n := range s.ids {
		if s.nodes[n].up {
			id = n
			break
		}
	}
	if id != s.leadID {
		s.leadID, s.leader = id, NewLeader()
		s.trace("leader " + id)
	}
}

func (s *sim) perform(n *simNode, effs []Effect) {
	for _, e := range effs {
		s.trace(fmt.Sprintf("%s: %v", n.id, e))
		switch e := e.(type) {
		case Release:
			delete(n.snaps, e.Token)
		case DeleteBuckets:
			n.deletes = append(n.deletes, e)
		case ProposeCancel:
			n.cancels = append(n.cancels, e.Token)
		case CancelPull:
			if p := n.pulls[e.Token]; p != nil {
				p.cancelled = true
			}
		}
	}
}

// accepts is the node's guard for a write of bucket b.
func (s *sim) accepts(n *simNode, b uint16) bool {
	if !n.up || n.l.CatchingUp() && !s.mut["no-catch-up"] {
		return false
	}
	if n.l.Fenced(b) && !s.mut["no-fence-check"] {
		return false
	}
	return s.viewAt(n.applied).table.OwnerOfBucket(b) == n.id
}

// checkOwners: no bucket has two nodes accepting writes.
func (s *sim) checkOwners() error {
	for _, b := range s.buckets {
		var who []string
		for _, id := range s.ids {
			if s.accepts(s.nodes[id], b) {
				who = append(who, id)
			}
		}
		if len(who) > 1 {
			return fmt.Errorf("bucket %d accepts writes at %v", b, who)
		}
	}
	return nil
}

// ---- the operations a schedule picks from ----

// write: a client writes key k through node via (routed by via's table).
func (s *sim) write(k, val, via string) bool {
	b := router.BucketString(k)
	vn := s.nodes[via]
	if !vn.up {
		return false
	}
	owner := s.nodes[s.viewAt(vn.applied).table.OwnerOfBucket(b)]
	if owner == nil || !s.accepts(owner, b) {
		s.trace(fmt.Sprintf("write %s=%s via %s: refused", k, val, via))
		return false
	}
	owner.data[k] = val
	owner.l.Written(b, []byte(k))
	s.acked[k] = simVal{val: val, ok: true}
	s.trace(fmt.Sprintf("write %s=%s at %s: ok", k, val, owner.id))
	return true
}

// apply: node n applies the next log entry.
func (s *sim) apply(n *simNode) bool {
	if !n.up || int(n.applied) >= len(s.log) {
		return false
	}
	n.applied++
	s.perform(n, n.l.Applied(s.viewAt(n.applied)))
	return true
}

func (s *sim) tick(n *simNode) {
	if n.up {
		s.perform(n, n.l.Tick())
	}
}

// catchUp: a catching-up node learns the log's end from the leader.
func (s *sim) catchUp(n *simNode) bool {
	if !n.up || !n.l.CatchingUp() || n.asked || s.leadID == "" {
		return false
	}
	n.asked = true
	s.perform(n, n.l.CatchUpTo(uint64(len(s.log))))
	return true
}

// runDelete: node n performs its oldest queued DeleteBuckets.
func (s *sim) runDelete(n *simNode) bool {
	if !n.up || len(n.deletes) == 0 {
		return false
	}
	d := n.deletes[0]
	n.deletes = n.deletes[1:]
	for k := range n.data {
		if slices.Contains(d.Buckets, router.BucketString(k)) {
			delete(n.data, k)
		}
	}
	n.l.Deleted(d.Buckets)
	return true
}

// clean: node n's scan for data of buckets it neither owns nor receives.
func (s *sim) clean(n *simNode) bool {
	if !n.up || !n.l.IsSynced() {
		return false
	}
	v := s.viewAt(n.applied)
	receiving := map[uint16]bool{}
	for _, mv := range v.moves {
		if mv.To == n.id {
			for _, b := range mv.Buckets {
				receiving[b] = true
			}
		}
	}
	var cands []uint16
	for k := range n.data {
		b := router.BucketString(k)
		if v.table.OwnerOfBucket(b) != n.id && !receiving[b] && !slices.Contains(cands, b) {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		return false
	}
	slices.Sort(cands)
	s.perform(n, n.l.Clean(v, cands))
	return true
}

// proposeCancel: a node's queued cancellation reaches the log.
func (s *sim) proposeCancel(n *simNode) bool {
	if !n.up || len(n.cancels) == 0 || s.leadID == "" {
		return false
	}
	tok := n.cancels[0]
	n.cancels = n.cancels[1:]
	_, err := s.propose(ProposeCancel{Token: tok})
	s.trace(fmt.Sprintf("%s: cancel %s proposed: %v", n.id, tok, errString(err)))
	return true
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// lead: the leader plans and proposes.
func (s *sim) lead() bool {
	if s.leadID == "" {
		return false
	}
	h := s.head()
	alive := func(id string) bool { return s.nodes[id] != nil && s.nodes[id].up }
	effs := s.leader.Plan(h, alive, 2, func() string { s.tokens++; return fmt.Sprintf("t%d", s.tokens) })
	did := false
	for _, e := range effs {
		switch e := e.(type) {
		case ProposeCancel:
			_, err := s.propose(e)
			s.trace(fmt.Sprintf("leader: cancel orphan %s: %v", e.Token, errString(err)))
			did = true
		case ProposeStart:
			idx, err := s.propose(e)
			if err != nil {
				s.leader.StartFailed(e.Move.Token)
				continue
			}
			did = true
			for _, r := range s.leader.Started(e.Move, idx, 0) {
				rp := r.(RunPull)
				s.msgs = append(s.msgs, simMsg{kind: "pull", from: s.leadID, to: rp.Move.To, token: rp.Move.Token})
				s.trace(fmt.Sprintf("leader -> %s: pull %s %s->%s %s", rp.Move.To, rp.Move.Token, rp.Move.From, rp.Move.To, fmtBuckets(rp.Move.Buckets)))
			}
		}
	}
	return did
}

func (s *sim) send(m simMsg) { s.msgs = append(s.msgs, m) }

// deliver handles message i.
func (s *sim) deliver(i int) {
	m := s.msgs[i]
	s.msgs = slices.Delete(s.msgs, i, i+1)
	to := s.nodes[m.to]
	if m.kind == "pull-done" {
		s.pullDone(m)
		return
	}
	if to == nil || !to.up {
		s.fail(m, fmt.Errorf("%s is down", m.to))
		return
	}
	if strings.HasSuffix(m.kind, "+reply") {
		p := to.pulls[m.token]
		if p == nil {
			return
		}
		p.waiting = false
		s.pullReply(to, p, m)
		return
	}
	if m.kind == "pull" {
		h := s.head()
		mv, ok := h.moves[m.token]
		if !ok {
			s.send(simMsg{kind: "pull-done", from: m.to, to: m.from, token: m.token, err: ErrUnknownMove})
			return
		}
		to.pulls[m.token] = &simPull{mv: mv, index: h.index, p: NewPull(PullConfig{TailRoundsMax: 3, FenceLag: 2})}
		s.trace(fmt.Sprintf("%s: pull %s registered", to.id, m.token))
		return
	}
	s.serve(to, m)
}

// pullDone: the leader's pull call returns.
func (s *sim) pullDone(m simMsg) {
	if m.to != s.leadID {
		s.trace(fmt.Sprintf("pull-done %s: leader %s is gone", m.token, m.to))
		return
	}
	for _, e := range s.leader.PullDone(m.token, 0, m.err) {
		_, err := s.propose(e)
		s.trace(fmt.Sprintf("leader: %v: %v", e, errString(err)))
	}
	s.leader.Ended(m.token)
}

// serve runs a source's handler.
func (s *sim) serve(n *simNode, m simMsg) {
	reply := simMsg{kind: m.kind + "+reply", from: n.id, to: m.from, token: m.token}
	v := s.viewAt(n.applied)
	switch m.kind {
	case "begin":
		mv, ok := v.moves[m.token]
		if !ok {
			reply.err = fmt.Errorf("%w: not applied at %s", ErrUnknownMove, n.id)
			break
		}
		gen, effs, err := n.l.Begin(v, m.token, mv.Buckets)
		s.perform(n, effs)
		if err != nil {
			reply.err = err
			break
		}
		snap := map[string]string{}
		for k, val := range n.data {
			if slices.Contains(mv.Buckets, router.BucketString(k)) {
				snap[k] = val
			}
		}
		if n.l.Snapshotted(m.token, gen) {
			n.snaps[m.token] = snap
		}
	case "scan":
		if _, err := n.l.Serving(m.token); err != nil {
			reply.err = err
			break
		}
		reply.entries = map[string]simVal{}
		for k, val := range n.snaps[m.token] {
			reply.entries[k] = simVal{val: val, ok: true}
		}
	case "delta", "fence":
		if m.kind == "fence" {
			if _, err := n.l.Fence(m.token); err != nil {
				reply.err = err
				break
			}
		}
		max := 0
		if m.kind == "delta" {
			max = 64
		}
		keys, left, err := n.l.TakeDelta(m.token, max)
		if err != nil {
			reply.err = err
			break
		}
		reply.entries, reply.left = map[string]simVal{}, left
		for _, k := range keys {
			val, ok := n.data[k.Key]
			reply.entries[k.Key] = simVal{val: val, ok: ok}
		}
	case "abort":
		s.perform(n, n.l.Abort(m.token))
		return
	}
	s.trace(fmt.Sprintf("%s: %s %s: %s", n.id, m.kind, m.token, errString(reply.err)))
	s.send(reply)
}

// fail turns a lost message into its sender's error.
func (s *sim) fail(m simMsg, err error) {
	switch {
	case m.kind == "pull":
		s.send(simMsg{kind: "pull-done", from: m.to, to: m.from, token: m.token, err: err})
	case m.kind == "pull-done": // the leader's call fails
		m.err = err
		s.pullDone(m)
	case m.kind == "abort":
	case strings.HasSuffix(m.kind, "+reply"):
		// the answer is lost: the target's call fails
		if n := s.nodes[m.to]; n != nil && n.up {
			if p := n.pulls[m.token]; p != nil {
				p.waiting = false
				s.pullDid(n, p, err, 0)
			}
		}
	default: // a request: the target's call fails
		if n := s.nodes[m.from]; n != nil && n.up {
			if p := n.pulls[m.token]; p != nil {
				p.waiting = false
				s.pullDid(n, p, err, 0)
			}
		}
	}
}

// drop loses message i.
func (s *sim) drop(i int) {
	m := s.msgs[i]
	s.msgs = slices.Delete(s.msgs, i, i+1)
	s.trace(fmt.Sprintf("drop %s %s %s->%s", m.kind, m.token, m.from, m.to))
	s.fail(m, fmt.Errorf("%s lost", m.kind))
}

// pullStep advances a pull that is not waiting for an answer.
func (s *sim) pullStep(n *simNode, tok string) bool {
	p := n.pulls[tok]
	if p == nil || p.waiting {
		return false
	}
	if p.cancelled && p.p.Next() != StepFailed && p.p.Next() != StepDone {
		s.pullDid(n, p, fmt.Errorf("cancelled"), 0)
		return true
	}
	if !p.started && p.p.Next() != StepFailed {
		v := s.viewAt(n.applied)
		if _, ok := v.moves[tok]; !ok {
			if n.applied >= p.index {
				s.pullDid(n, p, ErrUnknownMove, 0)
				return true
			}
			return false // not applied here yet
		}
		wait, effs, err := n.l.PullStart(v, tok, p.mv.Buckets)
		s.perform(n, effs)
		if err != nil {
			s.pullDid(n, p, err, 0)
			return true
		}
		if wait {
			return false
		}
		p.started = true
		s.trace(fmt.Sprintf("%s: pull %s started", n.id, tok))
		return true
	}
	if !p.cleared && p.p.Next() != StepFailed {
		if s.admit(n, tok, func() {
			for k := range n.data {
				if slices.Contains(p.mv.Buckets, router.BucketString(k)) {
					delete(n.data, k)
				}
			}
		}) != nil {
			s.pullDid(n, p, fmt.Errorf("clear refused"), 0)
			return true
		}
		p.cleared = true
		return true
	}
	switch p.p.Next() {
	case StepBegin, StepCopy, StepTail, StepFence:
		kind := map[Step]string{StepBegin: "begin", StepCopy: "scan", StepTail: "delta", StepFence: "fence"}[p.p.Next()]
		p.waiting = true
		s.send(simMsg{kind: kind, from: n.id, to: p.mv.From, token: tok})
	case StepDurable:
		s.pullDid(n, p, nil, 0)
	case StepDone, StepFailed:
		var err error
		if p.p.Next() == StepFailed {
			err = p.p.Err
			if p.p.AbortSource {
				s.send(simMsg{kind: "abort", from: n.id, to: p.mv.From, token: tok})
			}
		}
		delete(n.pulls, tok)
		s.perform(n, n.l.PullEnd(tok))
		s.send(simMsg{kind: "pull-done", from: n.id, to: s.leaderOf(), token: tok, err: err})
		s.trace(fmt.Sprintf("%s: pull %s ended: %s", n.id, tok, errString(err)))
	}
	return true
}

func (s *sim) leaderOf() string { return s.leadID }

func (s *sim) admit(n *simNode, tok string, f func()) error {
	if err := n.l.ApplyBegin(tok); err != nil && !s.mut["stale-delta"] {
		return err
	}
	f()
	n.l.ApplyEnd(tok)
	return nil
}

func (s *sim) pullReply(n *simNode, p *simPull, m simMsg) {
	if m.err != nil {
		s.pullDid(n, p, m.err, 0)
		return
	}
	err := s.admit(n, m.token, func() {
		for k, e := range m.entries {
			if e.ok {
				n.data[k] = e.val
			} else {
				delete(n.data, k)
			}
		}
	})
	s.pullDid(n, p, err, len(m.entries)+m.left)
}

func (s *sim) pullDid(n *simNode, p *simPull, err error, changes int) {
	before := p.p.Next()
	after := p.p.Did(err, changes)
	if before != after {
		s.trace(fmt.Sprintf("%s: pull %s %s -> %s %s", n.id, p.mv.Token, before, after, errString(err)))
	}
}

// crash loses n's volatile state; its messages in flight are lost.
func (s *sim) crash(n *simNode) {
	n.up = false
	for _, tok := range sortedKeys(n.pulls) { // the leader's pull calls fail
		s.pullDone(simMsg{kind: "pull-done", from: n.id, to: s.leadID, token: tok, err: fmt.Errorf("%s crashed", n.id)})
	}
	n.pulls, n.snaps, n.deletes, n.cancels = map[string]*simPull{}, map[string]map[string]string{}, nil, nil
	s.trace("crash " + n.id)
	for i := 0; i < len(s.msgs); {
		if m := s.msgs[i]; m.to == n.id || m.from == n.id {
			s.drop(i)
			continue
		}
		i++
	}
	s.electLeader()
}

// restart brings n back, catching up before it serves; wiped: with an
// empty disk, replaying the log from its start.
func (s *sim) restart(n *simNode, wiped bool) {
	n.up, n.asked = true, false
	if wiped {
		n.data, n.applied = map[string]string{}, 1
	}
	n.l = NewLocal(n.id, s.localConfig(), true)
	n.l.Applied(s.viewAt(n.applied))
	s.trace(fmt.Sprintf("restart %s wiped=%v", n.id, wiped))
	s.electLeader()
}

// step runs one random operation; faults: crashes and drops allowed.
func (s *sim) step(faults bool) {
	r := s.rng.IntN(100)
	up := []*simNode{}
	for _, id := range s.ids {
		if s.nodes[id].up {
			up = append(up, s.nodes[id])
		}
	}
	pick := func() *simNode { return s.nodes[s.ids[s.rng.IntN(len(s.ids))]] }
	switch {
	case r < 20 && faults:
		s.writes++
		s.write(s.keys[s.rng.IntN(len(s.keys))], fmt.Sprintf("v%d", s.writes), s.ids[s.rng.IntN(len(s.ids))])
	case r < 40:
		if len(s.msgs) > 0 {
			i := s.rng.IntN(len(s.msgs))
			if s.rng.IntN(2) == 0 { // the newest: older ones wait (reordering)
				i = len(s.msgs) - 1
			}
			if faults && s.rng.IntN(20) == 0 {
				s.drop(i)
			} else {
				s.deliver(i)
			}
		}
	case r < 55:
		s.apply(pick())
	case r < 70:
		n := pick()
		for _, tok := range sortedKeys(n.pulls) {
			if s.pullStep(n, tok) {
				break
			}
		}
	case r < 75:
		s.lead()
	case r < 80:
		s.tick(pick())
	case r < 84:
		s.runDelete(pick())
	case r < 87:
		s.clean(pick())
	case r < 90:
		s.proposeCancel(pick())
	case r < 93:
		s.catchUp(pick())
	case r < 95 && faults && len(up) > 1:
		s.crash(up[s.rng.IntN(len(up))])
	case r < 98:
		for _, id := range s.ids {
			if n := s.nodes[id]; !n.up && s.rng.IntN(2) == 0 {
				s.restart(n, faults && s.rng.IntN(2) == 0 && s.emptyHanded(n.id))
				break
			}
		}
	}
}

// emptyHanded: the log gives id no bucket and no move: its disk may be
// wiped without losing data (a drained node coming back empty).
func (s *sim) emptyHanded(id string) bool {
	h := s.head()
	for _, b := range s.buckets {
		if h.table.OwnerOfBucket(b) == id {
			return false
		}
	}
	for _, mv := range h.moves {
		if mv.From == id || mv.To == id {
			return false
		}
	}
	return true
}

// heal restarts every node and runs the schedule without faults or writes
// until the migration is done and everything is applied (bounded).
func (s *sim) heal(maxSteps int) error {
	for _, id := range s.ids {
		if n := s.nodes[id]; !n.up {
			s.restart(n, false)
		}
	}
	for i := 0; i < maxSteps; i++ {
		if s.quiet() {
			return nil
		}
		s.step(false)
	}
	var nodes []string
	for _, id := range s.ids {
		n := s.nodes[id]
		nodes = append(nodes, fmt.Sprintf("%s applied %d/%d catching-up=%v pulls=%v deletes=%d", id, n.applied, len(s.log), n.l.CatchingUp(), sortedKeys(n.pulls), len(n.deletes)))
	}
	return fmt.Errorf("not quiet after %d steps: %d moves, %d pending, %d messages, target %v; %s", maxSteps,
		len(s.head().moves), len(s.head().pending), len(s.msgs), s.head().target != nil, strings.Join(nodes, ", "))
}

func (s *sim) quiet() bool {
	h := s.head()
	if h.target != nil || len(h.moves) > 0 || len(s.msgs) > 0 {
		return false
	}
	for _, id := range s.ids {
		n := s.nodes[id]
		if int(n.applied) < len(s.log) || n.l.CatchingUp() || len(n.pulls) > 0 || len(n.deletes) > 0 {
			return false
		}
	}
	return true
}

// lost lists acknowledged writes the final owner does not hold.
func (s *sim) lost() []string {
	var out []string
	t := s.head().table
	for _, k := range sortedKeys(s.acked) {
		want := s.acked[k]
		got, ok := s.nodes[t.OwnerString(k)].data[k]
		if ok != want.ok || got != want.val {
			out = append(out, fmt.Sprintf("%s: acked %q, owner %s has %q", k, want.val, t.OwnerString(k), got))
		}
	}
	return out
}

// runSchedule runs one seeded schedule; it returns the first violation.
func runSchedule(t testing.TB, seed uint64, steps int, mut map[string]bool, trace func(string)) (err error) {
	s := newSim(t, seed, []string{"a", "b", "c"}, 8)
	if trace != nil {
		s.trace = trace
	}
	for k, v := range mut {
		s.mut[k] = v
	}
	for round := 0; round < 3; round++ {
		s.migrate(func(b uint16) string { return s.ids[s.rng.IntN(len(s.ids))] })
		for i := 0; i < steps; i++ {
			s.step(true)
			if err := s.checkOwners(); err != nil {
				return fmt.Errorf("round %d step %d: %w", round, i, err)
			}
		}
		if err := s.heal(20 * steps); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		if l := s.lost(); len(l) > 0 {
			return fmt.Errorf("round %d: %d acknowledged writes lost: %s", round, len(l), strings.Join(l, "; "))
		}
	}
	if s.writes == 0 {
		return fmt.Errorf("no writes")
	}
	return nil
}
