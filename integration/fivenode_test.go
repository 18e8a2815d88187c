package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dbx-kv/dbx/node"
)

// suffrages returns the Raft suffrage of every server in n's configuration.
func suffrages(t *testing.T, n *node.Node) map[string]raft.ServerSuffrage {
	t.Helper()
	f := n.Coordinator().Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatalf("%s: raft configuration: %v", n.ID(), err)
	}
	out := map[string]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s.Suffrage
	}
	return out
}

// TestFiveNodesThreeVoters runs five nodes with VotersMax 3: two of them
// are non-voters that must still apply the metadata log, route and
// forward, and keep following it after the Raft leader is stopped.
func TestFiveNodesThreeVoters(t *testing.T) {
	c := startClusterWith(t, 5, func(cfg *node.Config) { cfg.VotersMax = 3 })
	ctx := context.Background()

	var leader *node.Node
	for _, n := range c.nodes {
		if n.IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	var voters, nonVoters []string
	for id, s := range suffrages(t, leader) {
		switch s {
		case raft.Voter:
			voters = append(voters, id)
		case raft.Nonvoter:
			nonVoters = append(nonVoters, id)
		default:
			t.Errorf("%s has suffrage %v", id, s)
		}
	}
	if len(voters) != 3 || len(nonVoters) != 2 {
		t.Fatalf("voters %v, non-voters %v: want 3 and 2", voters, nonVoters)
	}
	isNonVoter := func(id string) bool {
		for _, v := range nonVoters {
			if v == id {
				return true
			}
		}
		return false
	}
	t.Logf("leader %s, voters %v, non-voters %v", leader.ID(), voters, nonVoters)

	t.Run("Converged", func(t *testing.T) {
		tab := leader.Table()
		for _, n := range c.nodes {
			if tab.Count(n.ID()) == 0 {
				t.Errorf("%s owns no bucket", n.ID())
			}
			cj, err := getCluster(n.HTTPAddr())
			if err != nil {
				t.Fatal(err)
			}
			if cj.Epoch != tab.Epoch() || cj.Leader != leader.ID() || len(cj.Nodes) != 5 {
				t.Errorf("/v1/cluster on %s: epoch %d leader %q %d nodes, want %d %s 5", n.ID(), cj.Epoch, cj.Leader, len(cj.Nodes), tab.Epoch(), leader.ID())
			}
		}
	})

	t.Run("ForwardingFromEveryNode", func(t *testing.T) {
		tab := leader.Table()
		for i, from := range c.nodes {
			for _, to := range c.nodes {
				key := keyOwnedBy(t, tab, to.ID(), "five-"+from.ID())
				val := from.ID() + "->" + to.ID()
				if err := client(t, from).Set(ctx, key, val, 0).Err(); err != nil {
					t.Fatalf("SET on %s of a key of %s: %v", from.ID(), to.ID(), err)
				}
				reader := c.nodes[(i+1)%len(c.nodes)]
				if v, err := client(t, reader).Get(ctx, key).Result(); err != nil || v != val {
					t.Fatalf("GET on %s of a key of %s written via %s = %q, %v", reader.ID(), to.ID(), from.ID(), v, err)
				}
			}
		}
	})

	t.Run("LeaderStopNonVotersFollow", func(t *testing.T) {
		before := leader.Coordinator().Current().Index()
		oldID := leader.ID()
		for i, n := range c.nodes {
			if n == leader {
				c.nodes[i] = nil
			}
		}
		if err := leader.Close(); err != nil {
			t.Logf("close %s: %v", oldID, err)
		}
		stopped := time.Now()
		rest := c.live()
		var newLeader *node.Node
		waitFor(t, 5*time.Second, "new leader", func() error {
			for _, n := range rest {
				if n.IsLeader() {
					newLeader = n
					return nil
				}
			}
			return fmt.Errorf("no leader among %d nodes", len(rest))
		})
		t.Logf("new leader %s after %s", newLeader.ID(), time.Since(stopped).Round(time.Millisecond))
		if isNonVoter(newLeader.ID()) {
			t.Fatalf("non-voter %s became leader", newLeader.ID())
		}
		// The new leader commits the stopped leader's failure; every live
		// node, the non-voters included, must apply it. Bound: if the
		// leave broadcast is lost, memberlist keeps the node suspect (still
		// listed alive) for up to its suspicion timeout, about 12 s for 5
		// nodes with the local profile; one run under -count=3 took > 10 s.
		waitFor(t, 20*time.Second, "stopped leader marked failed", func() error {
			m, ok := newLeader.Coordinator().Current().Member(oldID)
			if !ok || m.State != "failed" {
				return fmt.Errorf("%s: %+v", oldID, m)
			}
			return nil
		})
		waitConverged(t, rest, 5)
		want := newLeader.Coordinator().Current()
		for _, n := range rest {
			s := n.Coordinator().Current()
			if s.Epoch() != want.Epoch() || s.Index() <= before {
				t.Errorf("%s (non-voter %v): epoch %d index %d; leader epoch %d, index before failover %d", n.ID(), isNonVoter(n.ID()), s.Epoch(), s.Index(), want.Epoch(), before)
			}
		}
		// Forwarding from a non-voter still works for live owners.
		tab := newLeader.Table()
		var nv *node.Node
		for _, n := range rest {
			if isNonVoter(n.ID()) {
				nv = n
			}
		}
		for _, to := range rest {
			key := keyOwnedBy(t, tab, to.ID(), "after-"+nv.ID())
			if err := client(t, nv).Set(ctx, key, "x", 0).Err(); err != nil {
				t.Fatalf("SET on non-voter %s of a key of %s after failover: %v", nv.ID(), to.ID(), err)
			}
		}
	})
}
