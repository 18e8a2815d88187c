package coordinator

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/dbx-kv/dbx/rebalancer"
	"github.com/dbx-kv/dbx/ring"
	"github.com/dbx-kv/dbx/router"
)

// State is the cluster metadata: members, the current placement table and
// its epoch, the inputs it was computed from, whether the cluster holds
// data, and the replication factor and every bucket's replica
// configuration (State is a replica.View: Buckets, Membership). It is the pure state machine behind the Raft FSM: Apply is
// deterministic and does no I/O, so every node that applies the same log
// reaches a byte-identical state (see MarshalBinary).
//
// A *State is immutable: Apply returns a new State and leaves its receiver
// alone, so a *State may be read from any number of goroutines. The zero
// State is not valid; use NewState.
type State struct {
	index   uint64            // log index of the last applied command
	members map[string]Member // by ID
	table   *router.Table     // current placement; nil before the first
	placed  []ring.Node       // inputs of the placement (target's if any), sorted by ID
	hasData bool
	// target is the placement being migrated to (nil when table is it):
	// set by SetPlacement while the cluster holds data. table moves towards
	// it one FinishMove at a time.
	target *router.Table
	// moves are the bucket moves in progress, by token.
	moves map[string]Move
	// mig counts the current migration: buckets to move in all, moved so
	// far and bytes copied.
	mig MigrationProgress
	// limits throttle the migration (changeable at run time).
	limits MoveLimits
	// snapshots are the committed global snapshot manifests, oldest
	// first. Shared between states: replaced, never modified in place.
	snapshots []SnapshotManifest
	// rf is the replication factor set at bootstrap.
	rf int
	// repl is every bucket's replica epoch and explicit configurations
	// (nil before the first table). Shared between states: replaced,
	// never modified in place.
	repl *replicas
}

// Move is a bucket move in progress: the buckets' primary goes from From
// to To once FinishMove commits. It is the move protocol's type (package
// rebalancer), so a State is the protocol's View.
type Move = rebalancer.Move

// MigrationProgress counts the current migration.
type MigrationProgress struct {
	Total int   `json:"total"`
	Done  int   `json:"done"`
	Bytes int64 `json:"bytes"`
}

// MoveLimits throttle migrations: bucket moves run at once and bytes per
// second copied by each (0: unlimited).
type MoveLimits struct {
	Concurrency int   `json:"concurrency"`
	BytesPerSec int64 `json:"bytes_per_sec"`
}

// DefaultMoveLimits: 2 moves at once, unthrottled.
var DefaultMoveLimits = MoveLimits{Concurrency: 2}

// Target returns the placement being migrated to, nil when none.
func (s *State) Target() *router.Table { return s.target }

// Moves returns the moves in progress, sorted by token (copies).
func (s *State) Moves() []Move {
	out := make([]Move, 0, len(s.moves))
	for _, m := range s.moves {
		m.Buckets = slices.Clone(m.Buckets)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Move) int { return strings.Compare(a.Token, b.Token) })
	return out
}

// Move returns the move with the given token.
func (s *State) Move(token string) (Move, bool) {
	m, ok := s.moves[token]
	return m, ok
}

// Migration returns the current migration's progress.
func (s *State) Migration() MigrationProgress { return s.mig }

// Limits returns the migration limits.
func (s *State) Limits() MoveLimits { return s.limits }

// Pending returns the buckets whose owner differs from the target's (the
// table diff of rebalancer.Plan, the one the leader and the tests use) and
// that no move is carrying, ascending.
func (s *State) Pending() []uint16 {
	if s.target == nil || s.table == nil {
		return nil
	}
	plan, err := rebalancer.Plan(s.table, s.target)
	if err != nil {
		return nil
	}
	moving := map[uint16]bool{}
	for _, m := range s.moves {
		for _, b := range m.Buckets {
			moving[b] = true
		}
	}
	out := make([]uint16, 0, plan.Moved)
	for _, t := range plan.Tasks {
		for _, r := range t.Ranges {
			for b := int(r.Lo); b <= int(r.Hi); b++ {
				if !moving[uint16(b)] {
					out = append(out, uint16(b))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// Result is the outcome of applying one command: Err is nil if it was
// accepted, else the (deterministic) reason it was rejected; a rejected
// command leaves the state unchanged except for Index.
type Result struct {
	// Index is the command's log index.
	Index uint64
	// Epoch is the placement epoch after the command.
	Epoch uint64
	// Err is why the command was rejected, or nil.
	Err error
	// Changes is, for a ChangeReplicas, why each of its changes was
	// refused (nil: applied), in order; nil for other commands and for
	// an entry rejected whole.
	Changes []error
}

// NewState returns the empty state: no members, no placement, epoch 0.
func NewState() *State {
	return &State{members: map[string]Member{}, moves: map[string]Move{}, limits: DefaultMoveLimits, rf: DefaultReplicationFactor}
}

// Index returns the log index of the last command applied (0 for none).
func (s *State) Index() uint64 { return s.index }

// Epoch returns the epoch of the current placement, 0 before the first one.
// It only grows.
func (s *State) Epoch() uint64 {
	if s.table == nil {
		return 0
	}
	return s.table.Epoch()
}

// Table returns the current placement, or nil before the first one.
func (s *State) Table() *router.Table { return s.table }

// HasData reports whether a MarkHasData was applied.
func (s *State) HasData() bool { return s.hasData }

// Member returns the member with the given ID.
func (s *State) Member(id string) (Member, bool) {
	m, ok := s.members[id]
	return m, ok
}

// Members returns every member sorted by ID (a copy).
func (s *State) Members() []Member {
	out := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// PlacedMembers returns the nodes and weights the current table was computed
// from, sorted by ID (a copy).
func (s *State) PlacedMembers() []ring.Node { return slices.Clone(s.placed) }

// ActiveNodes returns the members placement is computed from, with their
// weights, sorted by ID: the active ones, and once the cluster holds data
// the failed ones that own buckets — a failed node keeps its buckets
// (nothing could copy them off it) until it returns.
func (s *State) ActiveNodes() []ring.Node {
	var out []ring.Node
	for _, m := range s.members {
		if m.State == StateActive || (s.hasData && m.State == StateFailed && s.table != nil && s.table.Count(m.ID) > 0) {
			out = append(out, ring.Node{ID: m.ID, Weight: m.Weight})
		}
	}
	slices.SortFunc(out, func(a, b ring.Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// PlacementCurrent reports whether the current table was computed from the
// current active members and weights.
func (s *State) PlacementCurrent() bool {
	return s.table != nil && slices.Equal(s.placed, s.ActiveNodes())
}

// Digest returns the SHA-256 of the state's canonical encoding: two nodes
// that applied the same log have the same digest.
func (s *State) Digest() [32]byte {
	b, err := s.MarshalBinary()
	if err != nil {
		// Only an invalid state fails to encode, and Apply never builds one.
		panic(err)
	}
	return sha256.Sum256(b)
}

func (s *State) clone() *State {
	n := *s
	n.members = make(map[string]Member, len(s.members))
	for k, v := range s.members {
		n.members[k] = v
	}
	n.moves = make(map[string]Move, len(s.moves))
	for k, v := range s.moves {
		n.moves[k] = v
	}
	return &n
}

// Apply applies the encoded command data at log index and returns the new
// state and the result. s is not modified. A command that does not decode
// or is rejected yields a state that differs from s only in Index; Apply
// never panics on bad input.
func (s *State) Apply(index uint64, data []byte) (*State, Result) {
	next := s.clone()
	next.index = index
	var changes []error
	cmd, err := Decode(data)
	if c, ok := cmd.(ChangeReplicas); ok && err == nil {
		changes, err = next.changeReplicas(c)
	} else if err == nil {
		err = next.apply(index, cmd)
	}
	if err != nil {
		// Rejected: keep every field but the index.
		next = s.clone()
		next.index = index
	}
	return next, Result{Index: index, Epoch: next.Epoch(), Err: err, Changes: changes}
}

// ApplyCommand is Apply for a command value (it encodes it first), for tests
// and tools that build states without a log.
func (s *State) ApplyCommand(index uint64, c Command) (*State, Result) {
	data, err := Encode(c)
	if err != nil {
		next := s.clone()
		next.index = index
		return next, Result{Index: index, Epoch: next.Epoch(), Err: err}
	}
	return s.Apply(index, data)
}

// apply mutates s (a fresh clone) with cmd.
func (s *State) apply(index uint64, cmd Command) error {
	switch c := cmd.(type) {
	case AddMember:
		return s.addMember(index, c.Member)
	case RemoveMember:
		return s.removeMember(c.ID)
	case SetWeight:
		return s.setWeight(c.ID, c.Weight)
	case SetState:
		return s.setState(c.ID, c.State)
	case SetPlacement:
		return s.setPlacement(c)
	case MarkHasData:
		s.hasData = true
		return nil
	case StartMove:
		return s.startMove(c)
	case FinishMove:
		return s.finishMove(c)
	case CancelMove:
		if _, ok := s.moves[c.Token]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownMove, truncate(c.Token))
		}
		delete(s.moves, c.Token)
		return nil
	case SetMoveLimits:
		if c.Limits.Concurrency < 1 || c.Limits.Concurrency > MaxMoveConcurrency || c.Limits.BytesPerSec < 0 {
			return fmt.Errorf("%w: move concurrency %d must be in [1, %d], bytes/s %d not negative", ErrBadCommand, c.Limits.Concurrency, MaxMoveConcurrency, c.Limits.BytesPerSec)
		}
		s.limits = c.Limits
		return nil
	case AddSnapshot:
		return s.addSnapshot(c.Manifest)
	case DropSnapshots:
		return s.dropSnapshots(c.IDs)
	case SetReplicationFactor:
		return s.setReplicationFactor(c.Factor)
	}
	return fmt.Errorf("%w: unhandled %T", ErrBadCommand, cmd)
}

func (s *State) addMember(index uint64, m Member) error {
	if err := m.validate(); err != nil {
		return err
	}
	if old, ok := s.members[m.ID]; ok {
		old.RaftAddr, old.RPCAddr, old.RESPAddr, old.ClusterRESPAddr, old.HTTPAddr = m.RaftAddr, m.RPCAddr, m.RESPAddr, m.ClusterRESPAddr, m.HTTPAddr
		if old.State == StateLeft {
			old.State = StateJoining
			old.JoinedIndex = index
			old.Weight = m.Weight
		}
		s.members[m.ID] = old
		return nil
	}
	if len(s.members) >= MaxMembers {
		return fmt.Errorf("%w: already %d members", ErrBadCommand, MaxMembers)
	}
	m.State = StateJoining
	m.JoinedIndex = index
	s.members[m.ID] = m
	return nil
}

func (s *State) removeMember(id string) error {
	if _, ok := s.members[id]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMember, truncate(id))
	}
	if s.owns(id) {
		return fmt.Errorf("%w: member %s owns buckets", ErrHasData, id)
	}
	delete(s.members, id)
	return nil
}

// owns reports whether id owns buckets in the table or the target, or takes
// part in a move.
func (s *State) owns(id string) bool {
	if s.table != nil && s.table.Count(id) > 0 || s.target != nil && s.target.Count(id) > 0 {
		return true
	}
	for _, m := range s.moves {
		if m.From == id || m.To == id {
			return true
		}
	}
	return false
}

func (s *State) setWeight(id string, w float64) error {
	m, ok := s.members[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMember, truncate(id))
	}
	if err := validWeight(w); err != nil {
		return fmt.Errorf("member %s: %w", id, err)
	}
	if w == m.Weight {
		return nil
	}
	m.Weight = w
	s.members[id] = m
	return nil
}

func (s *State) setState(id string, st MemberState) error {
	m, ok := s.members[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMember, truncate(id))
	}
	if !st.Valid() {
		return fmt.Errorf("%w: member %s: unknown state %q", ErrBadCommand, id, truncate(string(st)))
	}
	if m.State == st {
		return nil
	}
	if m.State == StateLeft {
		return fmt.Errorf("%w: member %s has left: add it again instead of setting it %s", ErrBadCommand, id, st)
	}
	m.State = st
	s.members[id] = m
	return nil
}

func (s *State) setPlacement(c SetPlacement) error {
	if c.Epoch != s.Epoch()+1 {
		return fmt.Errorf("%w: epoch %d, want %d", ErrStaleEpoch, c.Epoch, s.Epoch()+1)
	}
	t, err := router.ParseTable(c.Table)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPlacement, err)
	}
	if t.Epoch() != c.Epoch {
		return fmt.Errorf("%w: table epoch %d, command epoch %d", ErrBadPlacement, t.Epoch(), c.Epoch)
	}
	active := s.ActiveNodes()
	if !slices.Equal(c.Inputs, active) {
		return fmt.Errorf("%w: computed from %s, active members are %s", ErrBadPlacement, nodesString(c.Inputs), nodesString(active))
	}
	nodes := t.Nodes()
	if len(nodes) != len(active) {
		return fmt.Errorf("%w: table has %d nodes, %d active members", ErrBadPlacement, len(nodes), len(active))
	}
	for i, id := range nodes {
		if id != active[i].ID {
			return fmt.Errorf("%w: table node %s is not active member %s", ErrBadPlacement, id, active[i].ID)
		}
	}
	s.placed = active
	if !s.hasData || s.table == nil || (len(s.moves) == 0 && sameOwners(s.table, t)) {
		s.setTable(t)
		s.target, s.mig = nil, MigrationProgress{}
		return nil
	}
	// With data, buckets move one FinishMove at a time: t becomes the
	// target and the table stays (its epoch is unchanged).
	// A change while a migration runs extends it: progress accumulates.
	if s.target == nil {
		s.mig = MigrationProgress{}
	}
	s.target = t
	s.mig.Total = s.mig.Done + len(s.Pending()) + s.movingBuckets()
	return nil
}

func (s *State) movingBuckets() int {
	n := 0
	for _, m := range s.moves {
		n += len(m.Buckets)
	}
	return n
}

func (s *State) startMove(c StartMove) error {
	switch {
	case c.Token == "" || len(c.Token) > 64:
		return fmt.Errorf("%w: move token of %d bytes", ErrBadCommand, len(c.Token))
	case s.moves[c.Token].Token != "":
		return fmt.Errorf("%w: move %s exists", ErrBadCommand, c.Token)
	case s.target == nil:
		return fmt.Errorf("%w: no migration in progress", ErrBadMove)
	case len(c.Buckets) == 0 || len(c.Buckets) > MaxMoveBuckets:
		return fmt.Errorf("%w: %d buckets, want 1 to %d", ErrBadMove, len(c.Buckets), MaxMoveBuckets)
	case c.From == c.To:
		return fmt.Errorf("%w: from and to are both %s", ErrBadMove, c.From)
	}
	for _, id := range []string{c.From, c.To} {
		if _, ok := s.members[id]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownMember, truncate(id))
		}
	}
	pending := map[uint16]bool{}
	for _, b := range s.Pending() {
		pending[b] = true
	}
	for _, b := range c.Buckets {
		if !pending[b] || s.table.OwnerOfBucket(b) != c.From || s.target.OwnerOfBucket(b) != c.To {
			return fmt.Errorf("%w: bucket %d is not pending from %s to %s", ErrBadMove, b, c.From, c.To)
		}
		delete(pending, b) // a bucket listed twice fails the check above
	}
	s.moves[c.Token] = Move{Token: c.Token, From: c.From, To: c.To, Buckets: slices.Clone(c.Buckets)}
	return nil
}

func (s *State) finishMove(c FinishMove) error {
	m, ok := s.moves[c.Token]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMove, truncate(c.Token))
	}
	for _, b := range m.Buckets {
		if s.table.OwnerOfBucket(b) != m.From {
			return fmt.Errorf("%w: bucket %d is owned by %s, not %s", ErrBadMove, b, s.table.OwnerOfBucket(b), m.From)
		}
	}
	if c.Bytes < 0 {
		return fmt.Errorf("%w: negative bytes", ErrBadCommand)
	}
	t, err := s.table.Reassign(s.table.Epoch()+1, m.Buckets, m.To)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadMove, err)
	}
	delete(s.moves, c.Token)
	s.mig.Done += len(m.Buckets)
	s.mig.Bytes += c.Bytes
	s.moveBuckets(t, m.Buckets) // each changed owner: StartMove checked From != To
	if s.target != nil && len(s.moves) == 0 && sameOwners(s.table, s.target) {
		// The same owners: no bucket's replica epoch changes.
		s.table, s.target = s.target.WithEpoch(s.table.Epoch()), nil
	}
	return nil
}

// sameOwners reports whether a and b give every bucket the same owners.
func sameOwners(a, b *router.Table) bool {
	if a.RF() != b.RF() {
		return false
	}
	for bk := range router.NumBuckets {
		if !slices.Equal(a.Owners(uint16(bk)), b.Owners(uint16(bk))) {
			return false
		}
	}
	return true
}

func nodesString(ns []ring.Node) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, n := range ns {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i == 8 {
			fmt.Fprintf(&b, "...(%d)", len(ns))
			break
		}
		fmt.Fprintf(&b, "%s:%g", n.ID, n.Weight)
	}
	b.WriteByte(']')
	return b.String()
}
