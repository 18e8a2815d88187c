package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Nemesis is one kind of fault. Inject starts it on a healthy cluster and
// returns the Fault, which knows how to heal it; the runner holds the fault
// for Hold (the run's default when zero), heals it and waits for recovery.
type Nemesis struct {
	Name string
	// Missing reports why the nemesis cannot run on this host or cluster
	// (nil: it can). Checked once per run; a nemesis that cannot run is
	// skipped and the reason printed.
	Missing func(ctx context.Context, c *Cluster) error
	// Prepare, if set, runs once before the workloads start (e.g. loads
	// data the nemesis needs); an error ends the run.
	Prepare func(ctx context.Context, c *Cluster) error
	Inject  func(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error)
	// Hold overrides the run's hold time (pause must outlast the gossip
	// suspicion timeout).
	Hold time.Duration
	// HealTimeout bounds Heal (default 2 minutes): rebalance heals wait
	// for migrations.
	HealTimeout time.Duration
}

// Fault is an injected fault.
type Fault struct {
	// Desc says what was done, e.g. "[n1 n4] | [n2 n3 n5]".
	Desc string
	// Heal undoes the fault (restarts killed nodes, removes rules, ...).
	Heal func(ctx context.Context) error
	// Note, if set, is called after Heal and adds an observation to the
	// report (e.g. whether a paused node was declared failed).
	Note func() string
}

// PauseHold is how long pause freezes a node: longer than memberlist's
// suspicion timeout for 5 nodes on the LAN profile (4 s with enough
// confirmations, at most 24 s without), so the node is normally declared
// failed and must be re-admitted. The report says whether it was.
const PauseHold = 20 * time.Second

// Nemeses returns every nemesis the harness knows, in a fixed order: the
// faults (FaultNemeses), then the rebalance ones (RebalanceNemeses: join,
// reweight, drain, kill-migration-target, kill-migration-source); the
// checkers need no change for them.
func Nemeses() []Nemesis {
	return append(FaultNemeses(), RebalanceNemeses()...)
}

// FaultNemeses returns the network, process and pause faults. The default
// list adds the rebalance nemeses unless -chaos.rebalance=false
// (DefaultNemeses).
func FaultNemeses() []Nemesis {
	netMissing := func(ctx context.Context, c *Cluster) error { return c.netToolsMissing(ctx, c.Nodes[0], false) }
	return []Nemesis{
		{Name: "partition-halves", Missing: netMissing, Inject: partitionHalves},
		{Name: "isolate-leader", Missing: netMissing, Inject: isolateLeader},
		{Name: "bridge", Missing: func(ctx context.Context, c *Cluster) error {
			if len(c.Nodes) < 5 {
				return fmt.Errorf("needs 5 nodes, the cluster has %d", len(c.Nodes))
			}
			return netMissing(ctx, c)
		}, Inject: bridge},
		{Name: "kill-one", Inject: func(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
			return kill(ctx, c, pick(rnd, c.Nodes, 1))
		}},
		{Name: "kill-minority", Inject: func(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
			return kill(ctx, c, pick(rnd, c.Nodes, (len(c.Nodes)-1)/2))
		}},
		{Name: "pause", Inject: pause, Hold: PauseHold},
		{Name: "restart", Inject: restart},
		{Name: "loss", Missing: func(ctx context.Context, c *Cluster) error { return c.netToolsMissing(ctx, c.Nodes[0], true) }, Inject: loss},
		{Name: "delay", Missing: func(ctx context.Context, c *Cluster) error { return c.netemMissing(ctx, c.Nodes[0]) }, Inject: delay},
	}
}

// DefaultNemeses is the list a run uses when none are named: the faults,
// plus the rebalance nemeses when rebalance is set.
func DefaultNemeses(rebalance bool) []Nemesis {
	if rebalance {
		return Nemeses()
	}
	return FaultNemeses()
}

// SelectNemeses returns the nemeses named in names (any of Nemeses), or
// DefaultNemeses(rebalance) when names is empty, none for "none".
func SelectNemeses(names []string, rebalance bool) ([]Nemesis, error) {
	all := Nemeses()
	if len(names) == 0 {
		return DefaultNemeses(rebalance), nil
	}
	if len(names) == 1 && names[0] == "none" {
		return nil, nil
	}
	var out []Nemesis
	for _, name := range names {
		found := false
		for _, n := range all {
			if n.Name == name {
				out = append(out, n)
				found = true
			}
		}
		if !found {
			var known []string
			for _, n := range all {
				known = append(known, n.Name)
			}
			return nil, fmt.Errorf("unknown nemesis %q (known: %s)", name, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// pick returns k distinct random nodes.
func pick(rnd *rand.Rand, nodes []*Node, k int) []*Node {
	p := rnd.Perm(len(nodes))
	out := make([]*Node, k)
	for i := range k {
		out[i] = nodes[p[i]]
	}
	return out
}

func ids(nodes []*Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.ID)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// cross returns every pair with one node in a and one in b.
func cross(a, b []*Node) [][2]*Node {
	var out [][2]*Node
	for _, x := range a {
		for _, y := range b {
			out = append(out, [2]*Node{x, y})
		}
	}
	return out
}

func netHeal(c *Cluster) func(ctx context.Context) error {
	return func(ctx context.Context) error { return c.HealNetwork(ctx) }
}

func partitionHalves(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
	p := pick(rnd, c.Nodes, len(c.Nodes))
	a, b := p[:len(p)/2], p[len(p)/2:]
	f := &Fault{Desc: ids(a) + " | " + ids(b), Heal: netHeal(c)}
	return f, c.Cut(ctx, cross(a, b))
}

func isolateLeader(ctx context.Context, c *Cluster, _ *rand.Rand) (*Fault, error) {
	l, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	f := &Fault{Desc: "leader " + l.ID + " | " + ids(c.others(l)), Heal: netHeal(c)}
	return f, c.Cut(ctx, cross([]*Node{l}, c.others(l)))
}

// bridge splits the nodes in two groups that cannot talk, plus one node
// that talks to both (Jepsen's bridge).
func bridge(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
	p := pick(rnd, c.Nodes, len(c.Nodes))
	h := (len(p) - 1) / 2
	a, mid, b := p[:h], p[h], p[h+1:]
	f := &Fault{Desc: ids(a) + " | " + mid.ID + " (bridge) | " + ids(b), Heal: netHeal(c)}
	return f, c.Cut(ctx, cross(a, b))
}

func loss(ctx context.Context, c *Cluster, _ *rand.Rand) (*Fault, error) {
	const p = 0.3
	f := &Fault{Desc: fmt.Sprintf("%.0f%% of packets between nodes dropped", 100*p), Heal: netHeal(c)}
	return f, c.Lose(ctx, p)
}

func delay(ctx context.Context, c *Cluster, _ *rand.Rand) (*Fault, error) {
	f := &Fault{Desc: "every packet delayed 150 ms ± 50 ms", Heal: netHeal(c)}
	return f, c.Delay(ctx, 150, 50)
}

// kill sends SIGKILL to victims; healing restarts them on their volumes.
func kill(ctx context.Context, c *Cluster, victims []*Node) (*Fault, error) {
	f := &Fault{Desc: "SIGKILL " + ids(victims), Heal: restartAll(c, victims)}
	for _, v := range victims {
		if err := c.Kill(ctx, v); err != nil {
			return f, err
		}
	}
	return f, nil
}

func restartAll(c *Cluster, nodes []*Node) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() { errs[i] = c.Restart(ctx, n) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}

// restart stops a node gracefully (SIGTERM) and starts it again at heal.
func restart(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
	v := pick(rnd, c.Nodes, 1)
	f := &Fault{Desc: "SIGTERM " + ids(v) + ", start again at heal", Heal: restartAll(c, v)}
	return f, c.Stop(ctx, v[0])
}

// pause freezes a node and watches, from another node, when the cluster
// declares it failed.
func pause(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
	v := pick(rnd, c.Nodes, 1)[0]
	observer := c.others(v)[0]
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var failedAfter time.Duration
	start := time.Now()
	f := &Fault{Desc: "docker pause " + v.ID}
	f.Heal = func(ctx context.Context) error {
		stop()
		wg.Wait()
		return c.Unpause(ctx, v)
	}
	f.Note = func() string {
		if failedAfter == 0 {
			return fmt.Sprintf("%s not declared failed (as seen by %s) while paused", v.ID, observer.ID)
		}
		return fmt.Sprintf("%s declared failed %s after the pause (as seen by %s)", v.ID, failedAfter.Round(100*time.Millisecond), observer.ID)
	}
	if err := c.Pause(ctx, v); err != nil {
		stop()
		return f, err
	}
	wg.Go(func() {
		for wctx.Err() == nil {
			if ci, err := c.Info(wctx, observer); err == nil {
				for _, m := range ci.Nodes {
					if m.ID == v.ID && m.State == "failed" {
						failedAfter = time.Since(start)
						return
					}
				}
			}
			select {
			case <-wctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	return f, nil
}
