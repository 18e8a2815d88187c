package twophase

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "run TestRandomized with this seed only")
	seedsFlag = flag.Int("seeds", 1000, "number of seeds TestRandomized runs")
)

// TestRandomized runs transactions over three participants with random
// delivery order, duplicated and lost messages, participant and
// coordinator crashes, clock skew, slow drivers (writes queued per
// transaction and performed later, or lost in a crash) and plain writes,
// then heals the cluster and checks: no transaction committed on one
// participant and aborted on another, no client told an outcome the
// participants contradict, committed intents applied only while their
// keys are still locked and never overtaken by a plain write, persisted
// records that always restore, nothing left in doubt and no lock held.
func TestRandomized(t *testing.T) {
	seeds := make([]uint64, 0, *seedsFlag)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for i := range *seedsFlag {
			seeds = append(seeds, uint64(i+1))
		}
	}
	committed, replies := 0, map[Outcome]int{}
	for _, seed := range seeds {
		c, n, err := randomRun(seed)
		if err != nil {
			t.Fatalf("seed %d (rerun with -run TestRandomized -seed %d): %v", seed, seed, err)
		}
		committed += n
		for _, r := range c.replies {
			replies[r.Outcome]++
		}
	}
	t.Logf("%d seeds: %d transactions committed; client replies: %d committed, %d aborted, %d unknown",
		len(seeds), committed, replies[OutcomeCommitted], replies[OutcomeAborted], replies[OutcomeUnknown])
	if *seedFlag == 0 && committed == 0 {
		t.Fatalf("no transaction committed over %d seeds: the test exercises nothing", len(seeds))
	}
}

// owner places the keys a..f on p1..p3.
func owner(k string) NodeID { return NodeID(fmt.Sprintf("p%d", int(k[0]-'a')%3+1)) }

func randomRun(seed uint64) (c *cluster, committed int, err error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c = newCluster(testConfig(), 3)
	c.quiet = true
	nodes := []NodeID{coordID, "p1", "p2", "p3"}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	next := 0
	for step := 0; step < 400; step++ {
		switch r := rng.IntN(100); {
		case r < 5:
			n := c.nodes[c.order[rng.IntN(len(c.order))]]
			if n.p != nil {
				n.hold = !n.hold
			}
		case r < 10:
			n := c.nodes[c.order[rng.IntN(len(c.order))]]
			if len(n.qorder) == 0 {
				continue
			}
			if id := n.qorder[rng.IntN(len(n.qorder))]; rng.IntN(2) == 0 {
				c.release(n, id)
			} else {
				c.releaseOne(n, id)
			}
		case r < 13:
			k := keys[rng.IntN(len(keys))]
			if n := c.nodes[owner(k)]; n.p != nil {
				_ = c.plainWrite(n, k, "w") // refused while locked
			}
		case r < 60 && len(c.queue) > 0:
			i := rng.IntN(len(c.queue))
			m := c.queue[i]
			c.queue = slices.Delete(c.queue, i, i+1)
			c.deliver(m)
		case r < 65 && len(c.queue) > 0:
			c.queue = append(c.queue, c.queue[rng.IntN(len(c.queue))]) // duplicate
		case r < 67 && len(c.queue) > 0:
			i := rng.IntN(len(c.queue))
			c.queue = slices.Delete(c.queue, i, i+1) // lose
		case r < 69:
			c.crash(nodes[rng.IntN(len(nodes))])
		case r < 75:
			if err := c.recover(nodes[rng.IntN(len(nodes))]); err != nil {
				return nil, 0, err
			}
		case r < 88:
			var only []NodeID
			if rng.IntN(2) == 0 { // skew: one node's clock stands still
				stalled := rng.IntN(len(nodes))
				only = slices.Concat(nodes[:stalled], nodes[stalled+1:])
			}
			c.tick(1+rng.IntN(3), only...)
		default:
			if next >= 40 {
				continue
			}
			next++
			t := Txn{ID: TxID(fmt.Sprintf("t%d", next))}
			for _, k := range keys {
				if rng.IntN(4) != 0 {
					continue
				}
				i := slices.IndexFunc(t.Parts, func(p Part) bool { return p.Node == owner(k) })
				if i < 0 {
					t.Parts = append(t.Parts, Part{Node: owner(k)})
					i = len(t.Parts) - 1
				}
				t.Parts[i].Intents = append(t.Parts[i].Intents, Intent{Key: k, Value: []byte(t.ID)})
				if rng.IntN(4) == 0 {
					if t.Parts[i].Watch == nil {
						t.Parts[i].Watch = map[string]uint64{}
					}
					t.Parts[i].Watch[k] = c.nodes[owner(k)].disk.versions[k]
				}
			}
			if len(t.Parts) == 0 {
				continue
			}
			rng.Shuffle(len(t.Parts), func(i, j int) { t.Parts[i], t.Parts[j] = t.Parts[j], t.Parts[i] })
			_ = c.begin(t) // fails only while the coordinator is down
		}
	}
	// Heal: everyone up, no more loss, no slow driver, time moves until
	// all is resolved.
	for _, id := range nodes {
		if err := c.recover(id); err != nil {
			return nil, 0, err
		}
		if n := c.nodes[id]; n != nil {
			c.release(n, "")
		}
	}
	settled := false
	for round := 0; round < 500 && !settled; round++ {
		for n := 0; len(c.queue) > 0; n++ {
			if n > 10000 {
				return nil, 0, fmt.Errorf("queue does not drain")
			}
			m := c.queue[0]
			c.queue = c.queue[1:]
			c.deliver(m)
		}
		settled = c.coord.InFlight() == 0
		for _, id := range c.order {
			settled = settled && len(c.nodes[id].p.InDoubt()) == 0
		}
		c.tick(1)
	}
	c.checkAtomic()
	if len(c.violations) > 0 {
		return nil, 0, fmt.Errorf("violations: %v", c.violations)
	}
	if !settled {
		return nil, 0, fmt.Errorf("not settled after healing: %v", c.state())
	}
	for _, id := range c.order {
		if n := c.nodes[id].p.Locks().Len(); n != 0 {
			return nil, 0, fmt.Errorf("%s holds %d locks after every transaction resolved: %v", id, n, c.state())
		}
	}
	// A committed transaction committed on every participant.
	for _, id := range slices.Sorted(maps.Keys(c.history)) {
		h := c.history[id]
		if !slices.Contains(slices.Collect(maps.Values(h)), StateCommitted) {
			continue
		}
		committed++
		for _, p := range c.parts[id] {
			if h[p] != StateCommitted {
				return nil, 0, fmt.Errorf("%s committed but participant %s is %s", id, p, h[p])
			}
		}
	}
	return c, committed, nil
}
