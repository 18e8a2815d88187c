package coordinator

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/replica"
	"github.com/dbx-kv/dbx/router"
)

// derived is the RF-1 (or any RF) configuration the table implies for b.
func derived(s *State, b uint16, epoch replica.Epoch) replica.Membership {
	var owners []replica.NodeID
	for _, o := range s.Table().Owners(b) {
		owners = append(owners, replica.NodeID(o))
	}
	primary := owners[0]
	slices.Sort(owners)
	return replica.Membership{Bucket: replica.Bucket(b), Epoch: epoch, Primary: primary, Set: owners, Owners: slices.Clone(owners)}
}

// checkRF1 checks that every bucket's Membership is derived from s's table
// and that, against prev (nil: the first table), exactly the buckets whose
// owner changed went to the next epoch.
func checkRF1(t *testing.T, what string, prev, s *State) {
	t.Helper()
	bs := s.Buckets()
	if len(bs) != router.NumBuckets || bs[0] != 0 || bs[len(bs)-1] != router.NumBuckets-1 {
		t.Fatalf("%s: %d buckets listed", what, len(bs))
	}
	bumped := 0
	for b := range uint16(router.NumBuckets) {
		m, ok := s.Membership(replica.Bucket(b))
		if !ok {
			t.Fatalf("%s: bucket %d has no membership", what, b)
		}
		owner := s.Table().OwnerOfBucket(b)
		want := replica.Epoch(1)
		if prev != nil {
			pm, _ := prev.Membership(replica.Bucket(b))
			want = pm.Epoch
			if prev.Table().OwnerOfBucket(b) != owner {
				want++
				bumped++
			}
		}
		if !reflect.DeepEqual(m, derived(s, b, want)) || m.Primary != replica.NodeID(owner) {
			t.Fatalf("%s: bucket %d: membership %s, want %s", what, b, m, derived(s, b, want))
		}
	}
	if prev != nil && bumped == 0 && prev.Table() != s.Table() && !sameOwners(prev.Table(), s.Table()) {
		t.Fatalf("%s: owners changed but no epoch did", what)
	}
}

func TestReplicasRF1Derivation(t *testing.T) {
	st := newStepper(t)
	if st.s.Buckets() != nil || st.s.ReplicationFactor() != 1 {
		t.Fatalf("empty state: buckets %d, RF %d", len(st.s.Buckets()), st.s.ReplicationFactor())
	}
	if _, ok := st.s.Membership(0); ok {
		t.Fatal("membership before a placement")
	}
	for _, id := range []string{"a", "b"} {
		st.apply(AddMember{Member: member(id, 1)}, nil)
		st.apply(SetState{ID: id, State: StateActive}, nil)
	}
	st.place()
	checkRF1(t, "first placement", nil, st.s)
	if _, ok := st.s.Membership(router.NumBuckets); ok {
		t.Fatal("membership of a bucket out of range")
	}

	// A join without data replaces the table: moved buckets bump.
	prev := st.s
	st.apply(AddMember{Member: member("c", 1)}, nil)
	st.apply(SetState{ID: "c", State: StateActive}, nil)
	checkRF1(t, "member changes only", prev, st.s)
	st.place()
	checkRF1(t, "join without data", prev, st.s)

	// A weight change with data: a target, then moves; only FinishMove's
	// buckets bump, one move at a time.
	st.apply(MarkHasData{}, nil)
	prev = st.s
	st.apply(SetWeight{ID: "c", Weight: 3}, nil)
	st.place()
	checkRF1(t, "target set", prev, st.s)
	for n := 0; len(st.s.Pending()) > 0; n++ {
		p := st.s.Pending()
		from, to := st.s.Table().OwnerOfBucket(p[0]), st.s.Target().OwnerOfBucket(p[0])
		var chunk []uint16
		for _, b := range p {
			if len(chunk) < 500 && st.s.Table().OwnerOfBucket(b) == from && st.s.Target().OwnerOfBucket(b) == to {
				chunk = append(chunk, b)
			}
		}
		tok := fmt.Sprintf("t%d", n)
		prev = st.s
		st.apply(StartMove{Token: tok, From: from, To: to, Buckets: chunk}, nil)
		checkRF1(t, "start move", prev, st.s)
		if n == 0 {
			// A cancelled move switches nothing.
			st.apply(CancelMove{Token: tok}, nil)
			checkRF1(t, "cancel move", prev, st.s)
			st.apply(StartMove{Token: tok, From: from, To: to, Buckets: chunk}, nil)
		}
		st.apply(FinishMove{Token: tok}, nil)
		checkRF1(t, "finish move "+tok, prev, st.s)
		for _, b := range chunk {
			pm, _ := prev.Membership(replica.Bucket(b))
			if m, _ := st.s.Membership(replica.Bucket(b)); m.Epoch != pm.Epoch+1 || m.Primary != replica.NodeID(to) {
				t.Fatalf("moved bucket %d: %s (was %s)", b, m, pm)
			}
		}
		if n > 100 {
			t.Fatal("migration does not end")
		}
	}
	if st.s.Target() != nil {
		t.Fatal("migration not over")
	}
	// A drain with data moves c's buckets back.
	st.apply(SetState{ID: "c", State: StateDraining}, nil)
	st.place()
	for n := 0; len(st.s.Pending()) > 0; n++ {
		p := st.s.Pending()
		from, to := st.s.Table().OwnerOfBucket(p[0]), st.s.Target().OwnerOfBucket(p[0])
		var chunk []uint16
		for _, b := range p {
			if len(chunk) < 1000 && st.s.Table().OwnerOfBucket(b) == from && st.s.Target().OwnerOfBucket(b) == to {
				chunk = append(chunk, b)
			}
		}
		prev = st.s
		tok := fmt.Sprintf("d%d", n)
		st.apply(StartMove{Token: tok, From: from, To: to, Buckets: chunk}, nil)
		st.apply(FinishMove{Token: tok}, nil)
		checkRF1(t, "drain move "+tok, prev, st.s)
	}
	if st.s.Table().Count("c") != 0 {
		t.Fatal("c still owns buckets")
	}
}

// rf1Change is the change an RF-1 primary proposes after a restart: the
// same configuration at the next epoch.
func rf1Change(s *State, b uint16) replica.Change {
	m, _ := s.Membership(replica.Bucket(b))
	to := m
	to.Epoch++
	return replica.Change{From: m.Epoch, To: to}
}

func TestChangeReplicasCAS(t *testing.T) {
	st := newStepper(t)
	st.apply(ChangeReplicas{Changes: []replica.Change{{From: 1, To: replica.Membership{Epoch: 2}}}}, ErrBadMembership) // no placement
	for _, id := range []string{"a", "b"} {
		st.apply(AddMember{Member: member(id, 1)}, nil)
		st.apply(SetState{ID: id, State: StateActive}, nil)
	}
	st.place()
	before := st.s

	c0 := rf1Change(st.s, 0)
	res := st.apply(ChangeReplicas{Changes: []replica.Change{c0}}, nil)
	if len(res.Changes) != 1 || res.Changes[0] != nil {
		t.Fatalf("result changes %v", res.Changes)
	}
	if m, _ := st.s.Membership(0); !reflect.DeepEqual(m, c0.To) || m.Epoch != 2 {
		t.Fatalf("after change: %s, want %s", m, c0.To)
	}
	if m, _ := before.Membership(0); m.Epoch != 1 {
		t.Fatal("Apply modified its receiver")
	}
	if len(st.s.repl.over) != 0 {
		t.Fatal("a derived configuration was stored explicitly")
	}
	// The same change again lost the race: refused, state unchanged.
	res = st.apply(ChangeReplicas{Changes: []replica.Change{c0}}, ErrStaleMembership)
	if !errors.Is(res.Changes[0], ErrStaleMembership) {
		t.Fatalf("per-change refusal %v", res.Changes)
	}
	// Refusals are per change: the rest of the entry applies, in order.
	c1 := rf1Change(st.s, 1)
	c1b := c1
	c1b.From, c1b.To.Epoch = c1.To.Epoch, c1.To.Epoch+1
	res = st.apply(ChangeReplicas{Changes: []replica.Change{c0, c1, c1b, c1}}, nil)
	if res.Changes[0] == nil || res.Changes[1] != nil || res.Changes[2] != nil || !errors.Is(res.Changes[3], ErrStaleMembership) {
		t.Fatalf("mixed entry: %v", res.Changes)
	}
	if m, _ := st.s.Membership(1); m.Epoch != 3 {
		t.Fatalf("bucket 1 at epoch %d after two chained changes", m.Epoch)
	}
	if m, _ := st.s.Membership(0); m.Epoch != 2 {
		t.Fatalf("bucket 0 at epoch %d", m.Epoch)
	}
	// Untouched buckets keep their epoch.
	for b := uint16(2); b < router.NumBuckets; b++ {
		if m, _ := st.s.Membership(replica.Bucket(b)); m.Epoch != 1 {
			t.Fatalf("bucket %d at epoch %d", b, m.Epoch)
		}
	}

	// A change of owner after an explicit change: the next epoch again.
	st.apply(AddMember{Member: member("c", 1)}, nil)
	st.apply(SetState{ID: "c", State: StateActive}, nil)
	prev := st.s
	st.place()
	checkRF1(t, "join after changes", prev, st.s)
}

// rf2State is a placed, 3-node state with tables of RF 2.
func rf2State(t *testing.T) *stepper {
	st := newStepper(t)
	for _, id := range []string{"a", "b", "c"} {
		st.apply(AddMember{Member: member(id, 1)}, nil)
		st.apply(SetState{ID: id, State: StateActive}, nil)
	}
	cfg := testPlacement()
	cfg.RF = 2
	cmd, ok, err := Plan(st.s, cfg)
	if err != nil || !ok {
		t.Fatalf("Plan: %v %v", ok, err)
	}
	st.apply(cmd, nil)
	return st
}

func TestChangeReplicasValidation(t *testing.T) {
	st := rf2State(t)
	m, _ := st.s.Membership(7)
	if len(m.Owners) != 2 || !reflect.DeepEqual(m.Set, m.Owners) || m.Epoch != 1 {
		t.Fatalf("RF-2 derived membership %s", m)
	}
	other := m.Owners[0]
	if other == m.Primary {
		other = m.Owners[1]
	}
	var nonOwner replica.NodeID
	for _, id := range []replica.NodeID{"a", "b", "c"} {
		if !m.IsOwner(id) {
			nonOwner = id
		}
	}
	change := func(edit func(*replica.Membership)) replica.Change {
		to := m
		to.Set, to.Owners = slices.Clone(m.Set), slices.Clone(m.Owners)
		to.Epoch++
		edit(&to)
		return replica.Change{From: m.Epoch, To: to}
	}
	for _, tc := range []struct {
		name string
		c    replica.Change
		want error
	}{
		{"stale", func() replica.Change { c := change(func(*replica.Membership) {}); c.From, c.To.Epoch = 5, 6; return c }(), ErrStaleMembership},
		{"epoch skips", change(func(to *replica.Membership) { to.Epoch++ }), ErrBadMembership},
		{"epoch same", change(func(to *replica.Membership) { to.Epoch-- }), ErrBadMembership},
		{"bucket out of range", change(func(to *replica.Membership) { to.Bucket = router.NumBuckets }), ErrBadMembership},
		{"owners not the placement's", change(func(to *replica.Membership) { to.Owners = []replica.NodeID{"a", "b", "c"} }), ErrBadMembership},
		{"owners unsorted", change(func(to *replica.Membership) { to.Owners = []replica.NodeID{to.Owners[1], to.Owners[0]} }), ErrBadMembership},
		{"empty set", change(func(to *replica.Membership) { to.Set = nil }), ErrBadMembership},
		{"set unsorted", change(func(to *replica.Membership) { to.Set = []replica.NodeID{to.Set[1], to.Set[0]} }), ErrBadMembership},
		{"set repeats", change(func(to *replica.Membership) { to.Set = []replica.NodeID{to.Primary, to.Primary} }), ErrBadMembership},
		{"set not within owners", change(func(to *replica.Membership) { to.Set = []replica.NodeID{nonOwner}; to.Primary = nonOwner }), ErrBadMembership},
		{"primary not in set", change(func(to *replica.Membership) { to.Set = []replica.NodeID{other} }), ErrBadMembership},
		{"primary not an owner", change(func(to *replica.Membership) { to.Primary = nonOwner }), ErrBadMembership},
	} {
		res := st.apply(ChangeReplicas{Changes: []replica.Change{tc.c}}, tc.want)
		if !errors.Is(res.Changes[0], tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, res.Changes[0], tc.want)
		}
	}
	// A member that is not in the member list (cannot happen through the
	// log: owners cannot be removed) is refused too.
	broken := st.s.clone()
	delete(broken.members, string(other))
	if _, err := broken.changeReplicas(ChangeReplicas{Changes: []replica.Change{change(func(*replica.Membership) {})}}); !errors.Is(err, ErrUnknownMember) || !errors.Is(err, ErrBadMembership) {
		t.Fatalf("non-member in the set: %v", err)
	}

	// Bounds: the entry is rejected whole.
	st.apply(ChangeReplicas{}, ErrBadCommand)
	many := make([]replica.Change, MaxReplicaChanges+1)
	for i := range many {
		many[i] = change(func(*replica.Membership) {})
	}
	res := st.apply(ChangeReplicas{Changes: many}, ErrBadCommand)
	if res.Changes != nil {
		t.Fatal("an entry rejected whole reports per-change results")
	}

	// Valid: shrink the set to the primary, then grow it back with the
	// other owner promoted — explicit configurations.
	shrink := change(func(to *replica.Membership) { to.Set = []replica.NodeID{to.Primary} })
	st.apply(ChangeReplicas{Changes: []replica.Change{shrink}}, nil)
	if got, _ := st.s.Membership(7); !reflect.DeepEqual(got, shrink.To) || len(st.s.repl.over) != 1 {
		t.Fatalf("after shrink: %s, want %s", got, shrink.To)
	}
	m, _ = st.s.Membership(7)
	promote := change(func(to *replica.Membership) { to.Primary, to.Set = other, slices.Clone(to.Owners) })
	st.apply(ChangeReplicas{Changes: []replica.Change{promote}}, nil)
	if got, _ := st.s.Membership(7); !reflect.DeepEqual(got, promote.To) || got.Epoch != 3 {
		t.Fatalf("after promotion: %s, want %s", got, promote.To)
	}
	// Back to the derived configuration: nothing explicit kept.
	m, _ = st.s.Membership(7)
	back := change(func(to *replica.Membership) { to.Primary = replica.NodeID(st.s.Table().OwnerOfBucket(7)) }) // set: every owner
	st.apply(ChangeReplicas{Changes: []replica.Change{back}}, nil)
	if got, _ := st.s.Membership(7); !reflect.DeepEqual(got, back.To) || len(st.s.repl.over) != 0 {
		t.Fatalf("back to derived: %s (%d explicit)", got, len(st.s.repl.over))
	}
}

func TestChangeReplicasEncoding(t *testing.T) {
	c := ChangeReplicas{Changes: []replica.Change{
		{From: 3, To: replica.Membership{Bucket: 16383, Epoch: 4, Primary: "b", Set: []replica.NodeID{"b"}, Owners: []replica.NodeID{"a", "b"}}},
		{From: 1, To: replica.Membership{Bucket: 0, Epoch: 2, Primary: "a", Set: []replica.NodeID{"a", "b"}, Owners: []replica.NodeID{"a", "b"}}},
	}}
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != byte(kindChangeReplicas) || !strings.Contains(string(data), `"primary":"b"`) {
		t.Fatalf("encoding %s", data)
	}
	back, err := Decode(data)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("decode: %+v, %v", back, err)
	}
	for _, bad := range []string{
		`{"changes":[{"bucket":1,"from":1,"epoch":2,"primary":"a","set":["a"],"owners":["a"],"x":1}]}`,
		`{"changes":[{"bucket":70000,"from":1,"epoch":2,"primary":"a","set":["a"],"owners":["a"]}]}`,
		`{"changes":[],"more":1}`,
		`{"changes":[]} []`,
		`{"changes":[{"bucket":1,"from":-1}]}`,
	} {
		if _, err := Decode(append([]byte{byte(kindChangeReplicas)}, bad...)); !errors.Is(err, ErrBadCommand) {
			t.Errorf("decode %s: %v", bad, err)
		}
	}
	// MaxReplicaChanges changes of MaxReplicationFactor owners with
	// 32-byte IDs fit in one command.
	var owners []replica.NodeID
	for i := range MaxReplicationFactor {
		owners = append(owners, replica.NodeID(fmt.Sprintf("%032d", i)))
	}
	big := ChangeReplicas{Changes: make([]replica.Change, MaxReplicaChanges)}
	for i := range big.Changes {
		big.Changes[i] = replica.Change{From: 1 << 40, To: replica.Membership{Bucket: router.NumBuckets - 1, Epoch: 1<<40 + 1, Primary: owners[0], Set: owners, Owners: owners}}
	}
	if data, err := Encode(big); err != nil || len(data) > MaxCommandBytes {
		t.Fatalf("the largest entry does not fit: %v", err)
	}

	r := SetReplicationFactor{Factor: 3}
	data, _ = Encode(r)
	if back, err := Decode(data); err != nil || back != r {
		t.Fatalf("SetReplicationFactor decode: %v %v", back, err)
	}
}

func TestSetReplicationFactor(t *testing.T) {
	st := newStepper(t)
	st.apply(SetReplicationFactor{Factor: 0}, ErrBadCommand)
	st.apply(SetReplicationFactor{Factor: MaxReplicationFactor + 1}, ErrBadCommand)
	st.apply(SetReplicationFactor{Factor: 3}, nil)
	if st.s.ReplicationFactor() != 3 {
		t.Fatalf("RF %d", st.s.ReplicationFactor())
	}
	st.apply(AddMember{Member: member("a", 1)}, nil)
	st.apply(SetState{ID: "a", State: StateActive}, nil)
	st.place()
	st.apply(SetReplicationFactor{Factor: 2}, ErrBadCommand) // placed: set at bootstrap only
	st.apply(SetReplicationFactor{Factor: 3}, nil)           // no change
	if st.s.ReplicationFactor() != 3 || st.s.Table().RF() != 1 {
		t.Fatalf("RF %d, table RF %d", st.s.ReplicationFactor(), st.s.Table().RF())
	}
	b, _ := st.s.MarshalBinary()
	if back, err := ParseState(b); err != nil || back.ReplicationFactor() != 3 {
		t.Fatalf("round trip: %v", err)
	}
}

// TestReplicasSnapshot round-trips a state with bumped epochs and explicit
// configurations, and restores one written before replication existed.
func TestReplicasSnapshot(t *testing.T) {
	st := rf2State(t)
	st.apply(SetReplicationFactor{Factor: 2}, ErrBadCommand)
	var changes []replica.Change
	for b := uint16(100); b < 140; b++ {
		m, _ := st.s.Membership(replica.Bucket(b))
		to := m
		to.Epoch++
		if b%2 == 0 {
			to.Set = []replica.NodeID{to.Primary}
		}
		changes = append(changes, replica.Change{From: m.Epoch, To: to})
	}
	st.apply(ChangeReplicas{Changes: changes}, nil)
	if len(st.s.repl.over) != 20 {
		t.Fatalf("%d explicit configurations", len(st.s.repl.over))
	}
	data, err := st.s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseState(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest() != st.s.Digest() {
		t.Fatal("round trip changed the digest")
	}
	for b := range replica.Bucket(router.NumBuckets) {
		m1, _ := st.s.Membership(b)
		m2, _ := back.Membership(b)
		if !reflect.DeepEqual(m1, m2) {
			t.Fatalf("bucket %d: %s restored as %s", b, m1, m2)
		}
	}

	// Corrupt replica metadata (behind a valid checksum) is refused.
	body := snapshotBody(t, data)
	for name, edit := range map[string]func(map[string]any){
		"epoch runs short": func(b map[string]any) {
			b["bucket_epochs"] = []epochRun{{Epoch: 1, Buckets: router.NumBuckets - 1}}
		},
		"epoch zero": func(b map[string]any) { b["bucket_epochs"] = []epochRun{{Epoch: 0, Buckets: router.NumBuckets}} },
		"set is derived": func(b map[string]any) {
			m, _ := st.s.Membership(3)
			b["replica_sets"] = []replicaSetJSON{{Bucket: 3, Primary: string(m.Primary), Set: idStrings(m.Set)}}
		},
		"primary not in set": func(b map[string]any) {
			m, _ := st.s.Membership(3)
			b["replica_sets"] = []replicaSetJSON{{Bucket: 3, Primary: "zz", Set: idStrings(m.Set)}}
		},
		"sets unsorted": func(b map[string]any) {
			sets := b["replica_sets"].([]any)
			sets[0], sets[1] = sets[1], sets[0]
		},
		"rf out of range": func(b map[string]any) { b["replication_factor"] = 8 },
	} {
		b := snapshotBody(t, data)
		edit(b)
		if _, err := ParseState(snapshotWith(t, b)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v", name, err)
		}
	}

	// A snapshot written before replication (no such fields) restores:
	// RF 1, every bucket at epoch 1, derived.
	for _, k := range []string{"replication_factor", "bucket_epochs", "replica_sets"} {
		delete(body, k)
	}
	old, err := ParseState(snapshotWith(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if old.ReplicationFactor() != 1 {
		t.Fatalf("old snapshot RF %d", old.ReplicationFactor())
	}
	for b := range uint16(router.NumBuckets) {
		if m, _ := old.Membership(replica.Bucket(b)); !reflect.DeepEqual(m, derived(old, b, 1)) {
			t.Fatalf("old snapshot bucket %d: %s", b, m)
		}
	}
	// And an old snapshot of an empty state.
	empty := snapshotBody(t, must(NewState().MarshalBinary()))
	delete(empty, "replication_factor")
	if s, err := ParseState(snapshotWith(t, empty)); err != nil || s.ReplicationFactor() != 1 || s.Buckets() != nil {
		t.Fatalf("old empty snapshot: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// snapshotBody decodes a snapshot's JSON body into a map.
func snapshotBody(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data[snapshotHeader:len(data)-4], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// snapshotWith encodes body as a snapshot with a valid header and checksum.
func snapshotWith(t *testing.T, body map[string]any) []byte {
	t.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(snapshotMagic), 0, snapshotVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(len(js)))
	out = append(out, js...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// TestBootstrapReplicationFactor: the bootstrapping node records its
// configured factor before the first placement; the default records
// nothing.
func TestBootstrapReplicationFactor(t *testing.T) {
	tc := newTestCluster(t)
	cfg := testConfig("n1")
	cfg.Bootstrap = true
	cfg.ReplicationFactor = 3
	n1 := tc.start(cfg)
	tc.leader(5 * time.Second)
	s := tc.converged("n1")
	if s.ReplicationFactor() != 3 || s.Table().RF() != 1 {
		t.Fatalf("RF %d, table RF %d", s.ReplicationFactor(), s.Table().RF())
	}
	if _, err := n1.Apply(context.Background(), SetReplicationFactor{Factor: 2}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("RF change after placement: %v", err)
	}
	bad := testConfig("x")
	bad.ReplicationFactor = MaxReplicationFactor + 1
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "ReplicationFactor (8)") {
		t.Fatalf("Validate: %v", err)
	}
}

// TestReplicaDrivesState runs package replica's state machine on a State:
// a node that starts as the RF-1 primary of its buckets proposes the same
// configurations at the next epoch, the State accepts them as
// ChangeReplicas entries, and the same proposals again lose the race.
func TestReplicaDrivesState(t *testing.T) {
	st := newStepper(t)
	for _, id := range []string{"a", "b"} {
		st.apply(AddMember{Member: member(id, 1)}, nil)
		st.apply(SetState{ID: id, State: StateActive}, nil)
	}
	st.place()
	r, err := replica.New("a", replica.DefaultConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var changes []replica.Change
	for _, e := range r.Applied(0, st.s) {
		if p, ok := e.(replica.ProposeChange); ok {
			changes = append(changes, p.Changes...)
		}
	}
	if len(changes) != st.s.Table().Count("a") {
		t.Fatalf("%d changes proposed for a's %d buckets", len(changes), st.s.Table().Count("a"))
	}
	var entries []ChangeReplicas
	for len(changes) > 0 {
		n := min(len(changes), MaxReplicaChanges)
		entries = append(entries, ChangeReplicas{Changes: changes[:n]})
		changes = changes[n:]
	}
	prev := st.s
	for _, e := range entries {
		if res := st.apply(e, nil); slices.ContainsFunc(res.Changes, func(err error) bool { return err != nil }) {
			t.Fatalf("refused: %v", res.Changes)
		}
	}
	for b := range uint16(router.NumBuckets) {
		want := derived(st.s, b, 1)
		if st.s.Table().OwnerOfBucket(b) == "a" {
			want.Epoch = 2
		}
		if m, _ := st.s.Membership(replica.Bucket(b)); !reflect.DeepEqual(m, want) {
			t.Fatalf("bucket %d: %s, want %s", b, m, want)
		}
	}
	if len(st.s.repl.over) != 0 {
		t.Fatal("RF-1 bumps stored explicit configurations")
	}
	for _, e := range r.Applied(1, st.s) {
		if _, ok := e.(replica.ProposeChange); ok {
			t.Fatalf("proposal after the bump was applied: %v", e)
		}
	}
	for _, e := range entries {
		st.apply(e, ErrStaleMembership)
	}
	if st.s.Digest() == prev.Digest() {
		t.Fatal("nothing changed")
	}
}

// FuzzApply: no input makes Apply panic, a rejected command changes
// nothing but the index, and an accepted one still encodes and parses
// back. Seeds: every command of buildLog, ChangeReplicas included.
func FuzzApply(f *testing.F) {
	log := buildLog(f)
	for _, d := range log {
		f.Add(d)
	}
	base := NewState()
	for i, d := range log[:len(log)/2] {
		base, _ = base.Apply(uint64(i+1), d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		next, res := base.Apply(base.Index()+1, data)
		if res.Err != nil && !sameExceptIndex(base, next) {
			t.Fatalf("rejected command changed the state: %v", res.Err)
		}
		b, err := next.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseState(b)
		if err != nil || back.Digest() != next.Digest() {
			t.Fatalf("state after %x does not round-trip: %v", data, err)
		}
	})
}

// TestReplicationViews: PlacementRF follows the active members up to the
// factor, UnderReplicated counts buckets whose set is short of it, and
// PrimaryOverrides names the buckets a failover gave another primary.
func TestReplicationViews(t *testing.T) {
	st := newStepper(t)
	st.apply(SetReplicationFactor{Factor: 3}, nil)
	for i, id := range []string{"a", "b"} {
		st.apply(AddMember{Member: member(id, 1)}, nil)
		st.apply(SetState{ID: id, State: StateActive}, nil)
		if got := st.s.PlacementRF(); got != i+1 {
			t.Fatalf("%d active members: PlacementRF %d, want %d", i+1, got, i+1)
		}
	}
	cfg := testPlacement()
	cfg.RF = st.s.PlacementRF()
	cmd, ok, err := Plan(st.s, cfg)
	if err != nil || !ok {
		t.Fatalf("Plan: %v %v", ok, err)
	}
	st.apply(cmd, nil)
	if got := st.s.UnderReplicated(); got != router.NumBuckets {
		t.Fatalf("RF 3 over 2 nodes: UnderReplicated %d, want every bucket", got)
	}
	if o := st.s.PrimaryOverrides(); o != nil {
		t.Fatalf("no failover yet: overrides %v", o)
	}
	// Promote the other owner of bucket 5 and drop the first from its set.
	m, _ := st.s.Membership(5)
	to := m
	to.Epoch++
	for _, o := range m.Owners {
		if o != m.Primary {
			to.Primary, to.Set = o, []replica.NodeID{o}
		}
	}
	st.apply(ChangeReplicas{Changes: []replica.Change{{From: m.Epoch, To: to}}}, nil)
	if o := st.s.PrimaryOverrides(); len(o) != 1 || o[5] != string(to.Primary) {
		t.Fatalf("overrides after a promotion: %v, want 5 → %s", o, to.Primary)
	}
	if got := st.s.UnderReplicated(); got != router.NumBuckets {
		t.Fatalf("UnderReplicated %d", got)
	}
	st.apply(AddMember{Member: member("c", 1)}, nil)
	st.apply(SetState{ID: "c", State: StateActive}, nil)
	cfg.RF = st.s.PlacementRF()
	if cfg.RF != 3 {
		t.Fatalf("3 active members: PlacementRF %d", cfg.RF)
	}
	cmd, ok, err = Plan(st.s, cfg)
	if err != nil || !ok {
		t.Fatalf("Plan: %v %v", ok, err)
	}
	st.apply(cmd, nil)
	if got := st.s.UnderReplicated(); got != 0 {
		t.Fatalf("RF 3 over 3 nodes: UnderReplicated %d, want 0", got)
	}
}
