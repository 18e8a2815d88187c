package coordinator

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/dbx-kv/dbx/replica"
	"github.com/dbx-kv/dbx/ring"
)

func member(id string, w float64) Member {
	return Member{ID: id, RaftAddr: "raft-" + id, RPCAddr: "rpc-" + id, RESPAddr: "resp-" + id, HTTPAddr: "http-" + id, Weight: w}
}

// stepper applies commands at increasing indexes and fails the test on an
// unexpected result.
type stepper struct {
	t testing.TB
	s *State
}

func newStepper(t testing.TB) *stepper { return &stepper{t: t, s: NewState()} }

func (st *stepper) apply(c Command, want error) Result {
	st.t.Helper()
	next, res := st.s.ApplyCommand(st.s.Index()+1, c)
	if want == nil && res.Err != nil || want != nil && !errors.Is(res.Err, want) {
		st.t.Fatalf("apply %T %+v: err %v, want %v", c, c, res.Err, want)
	}
	if res.Err != nil && !sameExceptIndex(st.s, next) {
		st.t.Fatalf("rejected %T changed the state", c)
	}
	st.s = next
	return res
}

// place plans and applies the placement, which must be needed.
func (st *stepper) place() {
	st.t.Helper()
	cmd, ok, err := Plan(st.s, testPlacement())
	if err != nil || !ok {
		st.t.Fatalf("Plan: ok %v err %v", ok, err)
	}
	st.apply(cmd, nil)
}

func testPlacement() ring.Config {
	c := ring.DefaultConfig()
	c.VnodesPerNode = 64 // fast builds in tests
	return c
}

func sameExceptIndex(a, b *State) bool {
	a2, b2 := a.clone(), b.clone()
	a2.index, b2.index = 0, 0
	return a2.Digest() == b2.Digest()
}

func TestStateCommands(t *testing.T) {
	st := newStepper(t)
	s0 := st.s

	// AddMember.
	st.apply(AddMember{Member: member("a", 1)}, nil)
	if m, _ := st.s.Member("a"); m.State != StateJoining || m.JoinedIndex != 1 || m.Weight != 1 || m.RPCAddr != "rpc-a" {
		t.Fatalf("added member: %+v", m)
	}
	if _, ok := s0.Member("a"); ok {
		t.Fatal("Apply modified its receiver")
	}
	st.apply(AddMember{Member: Member{ID: "", RaftAddr: "x", Weight: 1}}, ErrBadCommand)
	st.apply(AddMember{Member: Member{ID: "b", Weight: 1}}, ErrBadCommand) // no raft address
	st.apply(AddMember{Member: member("b", 0)}, ErrBadCommand)
	st.apply(AddMember{Member: member("b", 101)}, ErrBadCommand)
	// Re-adding updates addresses, keeps weight and state.
	m2 := member("a", 7)
	m2.RPCAddr = "rpc-a2"
	st.apply(AddMember{Member: m2}, nil)
	if m, _ := st.s.Member("a"); m.RPCAddr != "rpc-a2" || m.Weight != 1 || m.JoinedIndex != 1 {
		t.Fatalf("re-added member: %+v", m)
	}

	// SetState.
	st.apply(SetState{ID: "a", State: StateActive}, nil)
	st.apply(SetState{ID: "a", State: "bogus"}, ErrBadCommand)
	st.apply(SetState{ID: "zz", State: StateActive}, ErrUnknownMember)

	// SetWeight.
	st.apply(SetWeight{ID: "a", Weight: 2}, nil)
	st.apply(SetWeight{ID: "a", Weight: -1}, ErrBadCommand)
	st.apply(SetWeight{ID: "zz", Weight: 1}, ErrUnknownMember)
	if m, _ := st.s.Member("a"); m.Weight != 2 {
		t.Fatalf("weight %v", m.Weight)
	}

	// SetPlacement: the first epoch is 1.
	st.place()
	if st.s.Epoch() != 1 || !st.s.PlacementCurrent() || st.s.Table().Count("a") != ring.NumBuckets {
		t.Fatalf("after placement: epoch %d current %v", st.s.Epoch(), st.s.PlacementCurrent())
	}
	if _, ok, err := Plan(st.s, testPlacement()); ok || err != nil {
		t.Fatalf("Plan of a placed state: ok %v err %v", ok, err)
	}

	// A second member changes the plan; a stale or foreign table is refused.
	st.apply(AddMember{Member: member("b", 1)}, nil)
	st.apply(SetState{ID: "b", State: StateActive}, nil)
	cmd, ok, err := Plan(st.s, testPlacement())
	if !ok || err != nil || cmd.Epoch != 2 {
		t.Fatalf("Plan: %v %v epoch %d", ok, err, cmd.Epoch)
	}
	stale := cmd
	stale.Epoch = 1
	st.apply(stale, ErrStaleEpoch)
	skip := cmd
	skip.Epoch = 3
	st.apply(skip, ErrStaleEpoch)
	bad := cmd
	bad.Table = append([]byte(nil), cmd.Table...)
	bad.Table[len(bad.Table)-1] ^= 1
	st.apply(bad, ErrBadPlacement)
	wrongInputs := cmd
	wrongInputs.Inputs = []ring.Node{{ID: "a", Weight: 2}, {ID: "b", Weight: 3}}
	st.apply(wrongInputs, ErrBadPlacement)
	// Planned before a change of weight: refused, then replanned.
	st.apply(SetWeight{ID: "b", Weight: 3}, nil)
	st.apply(cmd, ErrBadPlacement)
	st.place()
	if st.s.Epoch() != 2 || st.s.Table().Count("b") <= st.s.Table().Count("a") {
		t.Fatalf("epoch %d counts %v", st.s.Epoch(), st.s.Table().Counts())
	}

	// Draining takes a member out of the plan.
	st.apply(SetState{ID: "b", State: StateDraining}, nil)
	if st.s.PlacementCurrent() {
		t.Fatal("placement current after drain")
	}
	st.place()
	if got := st.s.Table().Nodes(); len(got) != 1 || got[0] != "a" || st.s.Epoch() != 3 {
		t.Fatalf("after drain: nodes %v epoch %d", got, st.s.Epoch())
	}

	// Left is terminal until re-added; re-adding makes it joining again.
	st.apply(SetState{ID: "b", State: StateLeft}, nil)
	st.apply(SetState{ID: "b", State: StateActive}, ErrBadCommand)
	res := st.apply(AddMember{Member: member("b", 4)}, nil)
	if m, _ := st.s.Member("b"); m.State != StateJoining || m.JoinedIndex != res.Index || m.Weight != 4 {
		t.Fatalf("re-added left member: %+v", m)
	}

	// RemoveMember.
	st.apply(RemoveMember{ID: "b"}, nil)
	st.apply(RemoveMember{ID: "b"}, ErrUnknownMember)
	if _, ok := st.s.Member("b"); ok {
		t.Fatal("removed member still there")
	}

	// Garbage never panics and never changes the state.
	for _, data := range [][]byte{nil, {0}, {99, '{', '}'}, {byte(kindAddMember)}, {byte(kindAddMember), '['},
		append([]byte{byte(kindSetWeight)}, `{"id":"a","weight":1,"x":1}`...),
		append([]byte{byte(kindSetWeight)}, `{"id":"a","weight":1} {}`...),
		append([]byte{byte(kindMarkHasData)}, `{}x`...)} {
		next, res := st.s.Apply(st.s.Index()+1, data)
		if !errors.Is(res.Err, ErrBadCommand) || !sameExceptIndex(st.s, next) {
			t.Fatalf("garbage %q: err %v", data, res.Err)
		}
		st.s = next
	}
	if _, err := Encode(SetWeight{ID: "a", Weight: math.NaN()}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("encode NaN: %v", err)
	}
}

// With data, a placement change becomes a target reached one move at a
// time: StartMove checks the buckets, FinishMove and CancelMove race
// through the log (exactly one wins), and the last move makes the target
// the table.
func TestStateMigration(t *testing.T) {
	st := newStepper(t)
	for _, id := range []string{"a", "b"} {
		st.apply(AddMember{Member: member(id, 1)}, nil)
		st.apply(SetState{ID: id, State: StateActive}, nil)
	}
	st.place()
	st.apply(MarkHasData{}, nil)
	st.apply(MarkHasData{}, nil) // idempotent
	if !st.s.HasData() {
		t.Fatal("HasData false")
	}
	epoch := st.s.Epoch()
	before := st.s.Table()

	st.apply(AddMember{Member: member("c", 1)}, nil)
	st.apply(SetState{ID: "c", State: StateActive}, nil)
	cmd, ok, err := Plan(st.s, testPlacement())
	if !ok || err != nil {
		t.Fatalf("Plan with data: ok %v err %v", ok, err)
	}
	st.apply(cmd, nil)
	s := st.s
	if s.Target() == nil || s.Epoch() != epoch || s.Table() != before {
		t.Fatalf("with data SetPlacement must set a target and keep the table: target %v, epoch %d (was %d)", s.Target(), s.Epoch(), epoch)
	}
	pending := s.Pending()
	if len(pending) == 0 || len(pending) != s.Migration().Total {
		t.Fatalf("%d pending buckets, migration total %d", len(pending), s.Migration().Total)
	}
	for _, b := range pending {
		if s.Target().OwnerOfBucket(b) != "c" {
			t.Fatalf("adding c moves bucket %d to %s", b, s.Target().OwnerOfBucket(b))
		}
	}
	// Removal of an owner is refused; placement inputs follow the members.
	st.apply(RemoveMember{ID: "a"}, ErrHasData)
	st.apply(SetMoveLimits{Limits: MoveLimits{Concurrency: 0}}, ErrBadCommand)
	st.apply(SetMoveLimits{Limits: MoveLimits{Concurrency: 4, BytesPerSec: 1 << 20}}, nil)
	if st.s.Limits().Concurrency != 4 {
		t.Fatal("limits not set")
	}

	byFrom := map[string][]uint16{}
	for _, b := range pending {
		f := before.OwnerOfBucket(b)
		byFrom[f] = append(byFrom[f], b)
	}
	a := byFrom["a"]
	st.apply(StartMove{Token: "m0", From: "b", To: "c", Buckets: a[:2]}, ErrBadMove) // not b's
	st.apply(StartMove{Token: "m0", From: "a", To: "b", Buckets: a[:2]}, ErrBadMove) // target is c
	st.apply(StartMove{Token: "m0", From: "a", To: "c", Buckets: []uint16{a[0], a[0]}}, ErrBadMove)
	st.apply(StartMove{Token: "m1", From: "a", To: "c", Buckets: a[:2]}, nil)
	st.apply(StartMove{Token: "m2", From: "a", To: "c", Buckets: a[1:3]}, ErrBadMove) // a[1] is moving
	st.apply(CancelMove{Token: "m1"}, nil)
	st.apply(FinishMove{Token: "m1"}, ErrUnknownMove) // cancel won
	st.apply(CancelMove{Token: "m1"}, ErrUnknownMove)
	if st.s.Table().OwnerOfBucket(a[0]) != "a" {
		t.Fatal("a cancelled move switched its bucket")
	}
	st.apply(StartMove{Token: "m3", From: "a", To: "c", Buckets: a[:2]}, nil)
	st.apply(FinishMove{Token: "m3", Bytes: 100}, nil)
	st.apply(CancelMove{Token: "m3"}, ErrUnknownMove) // finish won
	if s := st.s; s.Table().OwnerOfBucket(a[0]) != "c" || s.Epoch() != epoch+1 || s.Migration().Done != 2 || s.Migration().Bytes != 100 {
		t.Fatalf("after FinishMove: owner %s, epoch %d, progress %+v", s.Table().OwnerOfBucket(a[0]), s.Epoch(), s.Migration())
	}
	// Mid-migration the state survives its encoding.
	b, err := st.s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseState(b)
	if err != nil || back.Digest() != st.s.Digest() || len(back.Pending()) != len(st.s.Pending()) {
		t.Fatalf("round trip mid-migration: %v", err)
	}
	// Move the rest, in chunks of 100.
	n := 0
	for len(st.s.Pending()) > 0 {
		p := st.s.Pending()
		from, to := st.s.Table().OwnerOfBucket(p[0]), st.s.Target().OwnerOfBucket(p[0])
		var chunk []uint16
		for _, b := range p {
			if len(chunk) < 100 && st.s.Table().OwnerOfBucket(b) == from && st.s.Target().OwnerOfBucket(b) == to {
				chunk = append(chunk, b)
			}
		}
		tok := fmt.Sprintf("t%d", n)
		n++
		st.apply(StartMove{Token: tok, From: from, To: to, Buckets: chunk}, nil)
		st.apply(FinishMove{Token: tok}, nil)
		if n > 200 {
			t.Fatal("migration does not end")
		}
	}
	s = st.s
	if s.Target() != nil || s.Table().Count("c") == 0 || s.Migration().Done != s.Migration().Total || !s.PlacementCurrent() {
		t.Fatalf("migration not complete: target %v, c owns %d, progress %+v", s.Target(), s.Table().Count("c"), s.Migration())
	}
	if got := s.Epoch(); got != epoch+uint64(n)+1 {
		t.Fatalf("epoch %d after %d moves from %d", got, n+1, epoch)
	}
}

// TestStateDeterminism applies one log (with rejections and garbage) to two
// states and compares their encodings byte for byte, and checks that the
// encoding round-trips.
func TestStateDeterminism(t *testing.T) {
	log := buildLog(t)
	a, b := NewState(), NewState()
	for i, data := range log {
		var ra, rb Result
		a, ra = a.Apply(uint64(i+1), data)
		b, rb = b.Apply(uint64(i+1), data)
		if (ra.Err == nil) != (rb.Err == nil) || ra.Epoch != rb.Epoch {
			t.Fatalf("entry %d: results differ: %+v %+v", i, ra, rb)
		}
	}
	ea, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := b.MarshalBinary()
	if !bytes.Equal(ea, eb) {
		t.Fatal("same log, different snapshots")
	}
	if a.Epoch() < 2 || len(a.Members()) < 3 {
		t.Fatalf("log too weak: epoch %d members %d", a.Epoch(), len(a.Members()))
	}
	r, err := ParseState(ea)
	if err != nil {
		t.Fatal(err)
	}
	er, _ := r.MarshalBinary()
	if !bytes.Equal(ea, er) || r.Digest() != a.Digest() || r.Table().Digest() != a.Table().Digest() {
		t.Fatal("round trip changed the state")
	}
}

// buildLog returns an encoded log exercising every command.
func buildLog(t testing.TB) [][]byte {
	t.Helper()
	st := newStepper(t)
	var log [][]byte
	add := func(c Command) {
		data, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		next, _ := st.s.Apply(st.s.Index()+1, data)
		st.s = next
		log = append(log, data)
	}
	for i, id := range []string{"n3", "n1", "n2", "n4"} {
		add(AddMember{Member: member(id, float64(i+1))})
		add(SetState{ID: id, State: StateActive})
	}
	plan := func() {
		cmd, ok, err := Plan(st.s, testPlacement())
		if err != nil || !ok {
			t.Fatalf("Plan: %v %v", ok, err)
		}
		add(cmd)
	}
	add(SetReplicationFactor{Factor: 2})
	plan()
	c := rf1Change(st.s, 5)
	add(ChangeReplicas{Changes: []replica.Change{c, rf1Change(st.s, 6)}})
	add(ChangeReplicas{Changes: []replica.Change{c}}) // stale: rejected
	add(SetWeight{ID: "n2", Weight: 9})
	add(SetState{ID: "n4", State: StateFailed})
	plan()
	add(RemoveMember{ID: "nope"})
	log = append(log, []byte{42})
	add(MarkHasData{})
	add(SetWeight{ID: "n1", Weight: 5}) // rejected
	return log
}

func TestParseStateRejects(t *testing.T) {
	log := buildLog(t)
	s := NewState()
	for i, d := range log {
		s, _ = s.Apply(uint64(i+1), d)
	}
	good, _ := s.MarshalBinary()
	if _, err := ParseState(good); err != nil {
		t.Fatal(err)
	}
	// Every truncation and every single-bit flip is detected.
	for n := 0; n < len(good); n += 1 + n/7 {
		if _, err := ParseState(good[:n]); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := 0; i < len(good); i += 1 + i/5 {
		b := append([]byte(nil), good...)
		b[i] ^= 0x10
		if _, err := ParseState(b); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{NodeID: "a"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = Config{VotersMax: 6, HeartbeatTimeout: 100e6, ElectionTimeout: 50e6, LeaderLeaseTimeout: 200e6}
	err := c.Validate()
	for _, want := range []string{"NodeID", "VotersMax (6)", "ElectionTimeout (50ms)", "LeaderLeaseTimeout (200ms)"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("Validate: %v, want a mention of %s", err, want)
		}
	}
	if !errors.Is(err, ErrBadConfig) {
		t.Errorf("not ErrBadConfig: %v", err)
	}
}
