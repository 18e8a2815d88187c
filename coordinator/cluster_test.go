package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testCluster is a set of Coordinators over connected in-memory transports.
type testCluster struct {
	t     *testing.T
	nodes map[string]*Coordinator
	trans map[string]*raft.InmemTransport
	order []string
}

func newTestCluster(t *testing.T) *testCluster {
	tc := &testCluster{t: t, nodes: map[string]*Coordinator{}, trans: map[string]*raft.InmemTransport{}}
	t.Cleanup(func() {
		for _, id := range tc.order {
			if c := tc.nodes[id]; c != nil {
				_ = c.Close()
			}
		}
	})
	return tc
}

func testConfig(id string) Config {
	c := Config{
		NodeID:             id,
		Self:               member(id, 1),
		HeartbeatTimeout:   150 * time.Millisecond,
		ElectionTimeout:    150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		Placement:          testPlacement(),
	}
	c.Self.RaftAddr = "" // the transport's
	if os.Getenv("COORDINATOR_TEST_LOG") != "" {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)
	}
	return c
}

// start opens node id on a fresh transport connected to every other one.
func (tc *testCluster) start(cfg Config) *Coordinator {
	tc.t.Helper()
	id := cfg.NodeID
	addr, tr := raft.NewInmemTransport(raft.ServerAddress("inmem-" + id))
	for oid, o := range tc.trans {
		if tc.nodes[oid] == nil {
			continue
		}
		tr.Connect(o.LocalAddr(), o)
		o.Connect(addr, tr)
	}
	c, err := Open(cfg, tr)
	if err != nil {
		tc.t.Fatalf("Open %s: %v", id, err)
	}
	tc.nodes[id], tc.trans[id] = c, tr
	if !slices.Contains(tc.order, id) {
		tc.order = append(tc.order, id)
	}
	return c
}

func (tc *testCluster) stop(id string) {
	tc.t.Helper()
	if err := tc.nodes[id].Close(); err != nil {
		tc.t.Logf("close %s: %v", id, err)
	}
	tc.nodes[id] = nil
	for oid, o := range tc.trans {
		if oid != id && tc.nodes[oid] != nil {
			o.Disconnect(tc.trans[id].LocalAddr())
		}
	}
}

func (tc *testCluster) live() []*Coordinator {
	var out []*Coordinator
	for _, id := range tc.order {
		if c := tc.nodes[id]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tc *testCluster) leader(d time.Duration) *Coordinator {
	tc.t.Helper()
	var l *Coordinator
	eventually(tc.t, d, "no leader", func() bool {
		for _, c := range tc.live() {
			if c.IsLeader() {
				l = c
				return true
			}
		}
		return false
	})
	return l
}

// converged waits until every live node holds the same state, with a
// placement of the given nodes, and returns it.
func (tc *testCluster) converged(nodes ...string) *State {
	tc.t.Helper()
	var s *State
	eventually(tc.t, 10*time.Second, fmt.Sprintf("states not converged on a placement of %v", nodes), func() bool {
		live := tc.live()
		s = live[0].Current()
		if s.Table() == nil || !slices.Equal(s.Table().Nodes(), nodes) || !s.PlacementCurrent() {
			return false
		}
		for _, c := range live[1:] {
			if c.Current().Digest() != s.Digest() {
				return false
			}
		}
		return true
	})
	return s
}

func suffrage(t *testing.T, c *Coordinator) map[string]raft.ServerSuffrage {
	t.Helper()
	f := c.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	out := map[string]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s.Suffrage
	}
	return out
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	tc := newTestCluster(t)

	// Bootstrap: the first node leads, registers itself and places.
	cfg := testConfig("n1")
	cfg.Bootstrap = true
	n1 := tc.start(cfg)
	if l := tc.leader(5 * time.Second); l != n1 {
		t.Fatal("bootstrap node does not lead")
	}
	s := tc.converged("n1")
	if s.Epoch() != 1 {
		t.Fatalf("first epoch %d", s.Epoch())
	}

	// Joins: n2, n3 voters, n4 a non-voter (VotersMax 3).
	epochs := []uint64{s.Epoch()}
	for _, id := range []string{"n2", "n3", "n4"} {
		c := tc.start(testConfig(id))
		m := member(id, 1)
		m.RaftAddr = string(tc.trans[id].LocalAddr())
		if err := n1.Join(ctx, m); err != nil {
			t.Fatalf("Join %s: %v", id, err)
		}
		if err := n1.Join(ctx, m); err != nil { // again: harmless
			t.Fatalf("Join %s again: %v", id, err)
		}
		// Not the leader: ErrNotLeader naming the leader.
		_, err := c.Apply(ctx, MarkHasData{})
		var nl *NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Apply on follower %s: %v", id, err)
		}
		eventually(t, 5*time.Second, id+" does not know the leader", func() bool {
			id, _ := c.Leader()
			return id == "n1"
		})
	}
	want := map[string]raft.ServerSuffrage{"n1": raft.Voter, "n2": raft.Voter, "n3": raft.Voter, "n4": raft.Nonvoter}
	if got := suffrage(t, n1); !mapsEqual(got, want) {
		t.Fatalf("suffrage %v, want %v", got, want)
	}
	s = tc.converged("n1", "n2", "n3", "n4")
	epochs = append(epochs, s.Epoch())
	if _, err := tc.nodes["n2"].Apply(ctx, MarkHasData{}); err != nil {
		var nl *NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderID != "n1" || nl.RPCAddr != "rpc-n1" {
			t.Fatalf("NotLeaderError %+v", nl)
		}
	}
	for _, m := range s.Members() {
		if m.State != StateActive {
			t.Fatalf("member %+v not active", m)
		}
	}

	// Weight change → new epoch, n2 gets more buckets.
	if _, err := n1.Apply(ctx, SetWeight{ID: "n2", Weight: 3}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no epoch after reweight", func() bool {
		s := n1.Current()
		return s.Epoch() > epochs[len(epochs)-1] && s.PlacementCurrent()
	})
	s = tc.converged("n1", "n2", "n3", "n4")
	epochs = append(epochs, s.Epoch())
	if s.Table().Count("n2") < 2*s.Table().Count("n3") {
		t.Fatalf("reweight not placed: %v", s.Table().Counts())
	}
	if rs, err := n1.LinearizableRead(ctx); err != nil || rs.Epoch() != s.Epoch() {
		t.Fatalf("LinearizableRead: %v", err)
	}

	// Leader loss: a new leader among the voters, serving Apply, in < 5 s.
	start := time.Now()
	tc.stop("n1")
	l := tc.leader(5 * time.Second)
	var served time.Duration
	eventually(t, 5*time.Second, "new leader does not serve Apply", func() bool {
		l = tc.leader(5 * time.Second)
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := l.Apply(ctx, SetState{ID: "n1", State: StateFailed})
		served = time.Since(start)
		return err == nil
	})
	t.Logf("failover: %s leads and applied a command %s after the old leader's shutdown", l.cfg.NodeID, served)
	if lid := l.cfg.NodeID; lid != "n2" && lid != "n3" {
		t.Fatalf("non-voter %s leads", lid)
	}
	// The failed node is taken out of the placement (no data yet); the
	// non-voter n4 applies it too.
	s = tc.converged("n2", "n3", "n4")
	if s.Epoch() <= epochs[len(epochs)-1] {
		t.Fatalf("epoch %d after failure, was %d", s.Epoch(), epochs[len(epochs)-1])
	}
	epochs = append(epochs, s.Epoch())

	// Data: a placement change becomes a migration target; the table
	// (routing) stays until moves finish (node/ runs them).
	if _, err := l.Apply(ctx, MarkHasData{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, SetWeight{ID: "n3", Weight: 5}); err != nil {
		t.Fatalf("reweight with data: %v", err)
	}
	n5 := tc.start(testConfig("n5"))
	m5 := member("n5", 1)
	m5.RaftAddr = string(tc.trans["n5"].LocalAddr())
	if err := l.Join(ctx, m5); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no migration target with n5 active", func() bool {
		s := l.Current()
		m, _ := s.Member("n5")
		return m.State == StateActive && s.Target() != nil && s.Target().Count("n5") > 0 && n5.Current().HasData()
	})
	if s = l.Current(); s.Epoch() != epochs[len(epochs)-1] || s.Table().Count("n5") != 0 {
		t.Fatalf("with data the table changed without moves: epoch %d (was %d), n5 owns %d", s.Epoch(), epochs[len(epochs)-1], s.Table().Count("n5"))
	}
	// Removing n1 (not placed any more) deletes it and frees a voter seat:
	// the oldest non-voter, n4, is promoted.
	if err := l.Remove(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Current().Member("n1"); ok {
		t.Fatal("n1 still a member")
	}
	eventually(t, 5*time.Second, "n4 not promoted after n1's removal", func() bool {
		return suffrage(t, l)["n4"] == raft.Voter
	})
	// Removing a placed member with data leaves it as left; n5 takes its seat.
	if err := l.Remove(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	if m, _ := l.Current().Member("n4"); m.State != StateLeft {
		t.Fatalf("n4 after Remove with data: %+v", m)
	}
	eventually(t, 5*time.Second, "n5 not promoted after n4's removal", func() bool {
		sf := suffrage(t, l)
		_, has4 := sf["n4"]
		return sf["n5"] == raft.Voter && !has4
	})
	t.Logf("epochs %v", epochs)
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestReopen runs a node on raft-boltdb in a temp dir, snapshots, applies
// more, closes, reopens and checks the state is recovered.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*Coordinator, *raft.InmemTransport) {
		cfg := testConfig("solo")
		cfg.DataDir = dir
		cfg.Bootstrap = true
		_, tr := raft.NewInmemTransport("inmem-solo")
		c, err := Open(cfg, tr)
		if err != nil {
			t.Fatal(err)
		}
		return c, tr
	}
	c, _ := open()
	eventually(t, 5*time.Second, "not placed", func() bool { return c.IsLeader() && c.Current().PlacementCurrent() })
	if err := c.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, SetWeight{ID: "solo", Weight: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, MarkHasData{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "not replaced", func() bool { return c.Current().PlacementCurrent() })
	want := c.Current()
	if want.Epoch() != 2 {
		t.Fatalf("epoch %d", want.Epoch())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}

	c, _ = open()
	defer c.Close()
	eventually(t, 5*time.Second, "state not recovered", func() bool {
		return c.Current().Index() >= want.Index()
	})
	got := c.Current()
	if got.Epoch() != 2 || !got.HasData() || got.Table().Digest() != want.Table().Digest() {
		t.Fatalf("recovered epoch %d hasData %v", got.Epoch(), got.HasData())
	}
	if m, _ := got.Member("solo"); m.Weight != 2 || m.State != StateActive {
		t.Fatalf("recovered member %+v", m)
	}
	eventually(t, 5*time.Second, "reopened node does not lead", c.IsLeader)
	if _, err := c.Apply(ctx, SetState{ID: "solo", State: StateActive}); err != nil {
		t.Fatal(err)
	}
}

// TestFailoverDefaultTimeouts measures a leader change with the default
// Raft timeouts: a new leader must serve Apply within 5 s (the target is
// 2–3 s on loopback).
func TestFailoverDefaultTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds")
	}
	ctx := context.Background()
	tc := newTestCluster(t)
	cfgFor := func(id string) Config {
		c := testConfig(id)
		d := DefaultConfig()
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout =
			d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout, d.CommitTimeout
		return c
	}
	cfg := cfgFor("a")
	cfg.Bootstrap = true
	a := tc.start(cfg)
	tc.leader(10 * time.Second)
	for _, id := range []string{"b", "c"} {
		tc.start(cfgFor(id))
		m := member(id, 1)
		m.RaftAddr = string(tc.trans[id].LocalAddr())
		if err := a.Join(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	tc.converged("a", "b", "c")
	start := time.Now()
	tc.stop("a")
	eventually(t, 5*time.Second, "no new leader serving Apply", func() bool {
		for _, c := range tc.live() {
			if c.IsLeader() {
				ctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				_, err := c.Apply(ctx, SetState{ID: "a", State: StateFailed})
				return err == nil
			}
		}
		return false
	})
	t.Logf("failover with default timeouts: %s", time.Since(start))
	tc.converged("b", "c")
}
