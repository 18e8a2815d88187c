package coordinator

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestJoinBeforeLeaderRegistersItself holds the new leader's first
// reconcile pass (which registers the leader as a member) until a join has
// been applied: the leader must still end up a member owning buckets. (A
// regression: the leader took the non-empty member list for "I was
// removed" and never added itself, so it was missing from every table.)
func TestJoinBeforeLeaderRegistersItself(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	reconcileHook = func() { once.Do(func() { <-release }) }
	// Registered before the cluster's own cleanup, so it runs after the
	// coordinators are closed (cleanups run last-in first-out).
	t.Cleanup(func() { reconcileHook = nil })

	tc := newTestCluster(t)
	cfg := testConfig("a")
	cfg.Bootstrap = true
	cfg.VotersMax = 1 // the joiner is a non-voter: its fake address cannot cost the quorum
	a := tc.start(cfg)
	eventually(t, 5*time.Second, "a leads", a.IsLeader)
	b := member("b", 1)
	b.RaftAddr = "inmem-b-unreachable"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := a.Join(ctx, b)
	cancel()
	close(release)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	eventually(t, 5*time.Second, "a and b both placed", func() bool {
		tab := a.Current().Table()
		if tab == nil {
			return false
		}
		counts := map[string]int{}
		for _, nc := range tab.Counts() {
			counts[nc.ID] = nc.Buckets
		}
		return counts["a"] > 0 && counts["b"] > 0
	})
}
