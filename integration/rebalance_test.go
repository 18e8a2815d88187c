package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/node"
	"github.com/dbx-kv/dbx/rebalancer"
	"github.com/dbx-kv/dbx/router"
)

// setWorkload inserts unique keys from several clients until stopped,
// recording which were acknowledged and which failed.
type setWorkload struct {
	attempted, acked sync.Map // key → value
	failed           sync.Map // key → error text, every failed write
	errs             atomic.Int64
	leftRefusals     atomic.Int64 // writes a drained node refused after it left
	firstErrs        sync.Map
	n                atomic.Int64
	batches          [16]atomic.Int64 // per client: batches started (each with addrs() read afresh)
	stop             chan struct{}
	wg               sync.WaitGroup
}

func startSetWorkload(t *testing.T, addrs func() []string, clients int) *setWorkload {
	w := &setWorkload{stop: make(chan struct{})}
	if clients > len(w.batches) {
		t.Fatalf("at most %d clients", len(w.batches))
	}
	for c := 0; c < clients; c++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			ctx := context.Background()
			for i := 0; i < 1_000_000; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				w.batches[c].Add(1)
				as := addrs()
				cl := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: as[(c+i)%len(as)], MaxRetries: -1, PoolSize: 1, ReadTimeout: 5 * time.Second})
				for j := 0; j < 50; j++ {
					k := fmt.Sprintf("set:%d:%d:%d", c, i, j)
					w.attempted.Store(k, k)
					if err := cl.Set(ctx, k, k, 0).Err(); err != nil {
						w.failed.Store(k, err.Error())
						if strings.HasPrefix(err.Error(), "CLUSTERDOWN This node (") && strings.Contains(err.Error(), "has left the cluster") {
							// A drained node that left says so (nothing
							// applied); a client moves on to another node.
							w.leftRefusals.Add(1)
							break
						}
						if w.errs.Add(1) <= 5 {
							w.firstErrs.Store(k, err.Error())
						}
						continue
					}
					w.acked.Store(k, k)
					w.n.Add(1)
				}
				cl.Close()
			}
		}()
	}
	return w
}

// waitNewBatches waits until every client has started a new batch (so
// none uses an address removed before the call).
func (w *setWorkload) waitNewBatches(t *testing.T) {
	t.Helper()
	var seen [len(w.batches)]int64
	for i := range seen {
		seen[i] = w.batches[i].Load()
	}
	waitFor(t, 30*time.Second, "every client on a new batch", func() error {
		for i := range seen {
			if seen[i] > 0 && w.batches[i].Load() == seen[i] {
				return fmt.Errorf("client %d still on batch %d", i, seen[i])
			}
		}
		return nil
	})
}

// hammer writes up to count unique keys prefix:<i> to addr from one
// client, as fast as it answers, recording them in w (attempted, acked)
// and its own errors in the returned workload (halt it to wait).
func (w *setWorkload) hammer(addr, prefix string, count int) *setWorkload {
	h := &setWorkload{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		cl := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: addr, MaxRetries: -1, PoolSize: 1, ReadTimeout: 5 * time.Second})
		defer cl.Close()
		for i := 0; i < count; i++ {
			select {
			case <-h.stop:
				return
			default:
			}
			k := fmt.Sprintf("%s:%d", prefix, i)
			w.attempted.Store(k, k)
			if err := cl.Set(context.Background(), k, k, 0).Err(); err != nil {
				if h.errs.Add(1) <= 5 {
					h.firstErrs.Store(k, err.Error())
				}
				continue
			}
			w.acked.Store(k, k)
			h.n.Add(1)
		}
	}()
	return h
}

func (w *setWorkload) halt() {
	close(w.stop)
	w.wg.Wait()
}

// waitMigrated waits until no migration is in progress and every node has
// applied the same state; it returns that state.
func waitMigrated(t *testing.T, nodes []*node.Node, d time.Duration) *coordinator.State {
	t.Helper()
	var s *coordinator.State
	waitFor(t, d, "migration done on every node", func() error {
		s = nodes[0].Coordinator().Current()
		if s.Target() != nil || len(s.Moves()) > 0 {
			return fmt.Errorf("%s: %d buckets pending, %d moves, progress %+v", nodes[0].ID(), len(s.Pending()), len(s.Moves()), s.Migration())
		}
		for _, n := range nodes[1:] {
			if o := n.Coordinator().Current(); o.Digest() != s.Digest() {
				return fmt.Errorf("%s at epoch %d, %s at %d", n.ID(), o.Epoch(), nodes[0].ID(), s.Epoch())
			}
		}
		return nil
	})
	return s
}

// checkPlacementOfData reads every node's local store: each key there must
// be owned by that node under the final table; and every acknowledged key
// must be stored.
func checkPlacementOfData(t *testing.T, nodes []*node.Node, tab *router.Table, w *setWorkload) {
	t.Helper()
	found := map[string]string{}
	for _, n := range nodes {
		misplaced := 0
		for _, k := range storedKeys(t, n.Engine(), "set:") {
			if o := tab.OwnerString(k); o != n.ID() {
				misplaced++
			}
			if prev, dup := found[k]; dup {
				t.Errorf("key %s stored on both %s and %s", k, prev, n.ID())
			}
			found[k] = n.ID()
		}
		if misplaced > 0 {
			t.Errorf("%s stores %d keys it does not own", n.ID(), misplaced)
		}
	}
	lost, unexpected := 0, 0
	w.acked.Range(func(k, _ any) bool {
		if _, ok := found[k.(string)]; !ok {
			lost++
		}
		return true
	})
	for k := range found {
		if _, ok := w.attempted.Load(k); !ok {
			unexpected++
		}
	}
	acked := 0
	w.acked.Range(func(_, _ any) bool { acked++; return true })
	t.Logf("keys stored %d, acknowledged %d, lost %d, unexpected %d", len(found), acked, lost, unexpected)
	if lost != 0 || unexpected != 0 {
		t.Fatalf("lost %d acknowledged writes, %d unexpected keys", lost, unexpected)
	}
}

// TestRebalanceOnline: a set workload runs through a join, a reweight and
// a drain; each change moves exactly the buckets the planner predicts,
// with no client error, no lost or unexpected key, every key on its owner
// only, and one epoch everywhere after each change.
func TestRebalanceOnline(t *testing.T) {
	c := startCluster(t, 3)
	live := func() []*node.Node { return c.live() }
	// Throttled, so the workload keeps writing while buckets move.
	if code, body, err := post(c.nodes[0].HTTPAddr(), "/v1/migration/limits", `{"concurrency": 2, "bytes_per_sec": 65536}`); err != nil || code != 200 {
		t.Fatalf("set limits: %d %s %v", code, body, err)
	}
	var addrMu sync.Mutex
	addrs := []string{}
	for _, n := range c.nodes {
		addrs = append(addrs, n.RESPAddr())
	}
	getAddrs := func() []string {
		addrMu.Lock()
		defer addrMu.Unlock()
		return append([]string(nil), addrs...)
	}
	w := startSetWorkload(t, getAddrs, 4)
	defer func() {
		select {
		case <-w.stop:
		default:
			w.halt()
		}
	}()
	waitFor(t, 10*time.Second, "some data", func() error {
		if w.n.Load() < 2000 {
			return fmt.Errorf("%d keys", w.n.Load())
		}
		return nil
	})
	leader := func() *node.Node {
		for _, n := range live() {
			if n.IsLeader() {
				return n
			}
		}
		return live()[0]
	}
	change := func(name string, do func()) {
		t.Helper()
		before := leader().Coordinator().Current().Table()
		start := time.Now()
		do()
		var target *router.Table
		waitFor(t, 10*time.Second, name+": migration planned", func() error {
			s := leader().Coordinator().Current()
			if s.Target() == nil {
				if s.Table() != before && s.Migration().Total > 0 {
					return nil // already done
				}
				return fmt.Errorf("no target yet")
			}
			target = s.Target()
			return nil
		})
		s := waitMigrated(t, live(), 60*time.Second)
		m, err := rebalancer.Plan(before, s.Table())
		if err != nil {
			t.Fatal(err)
		}
		predicted := m.Moved
		if target != nil {
			if first, _ := rebalancer.Plan(before, target); first.Moved != predicted {
				t.Logf("%s: the placement was recomputed during the migration (first plan %d buckets)", name, first.Moved)
			}
		}
		t.Logf("%s: moved %d buckets (planner: %d, %d bytes) in %s; epoch %d on every node", name, s.Migration().Done,
			predicted, s.Migration().Bytes, time.Since(start).Round(time.Millisecond), s.Epoch())
		if s.Migration().Done != predicted || s.Migration().Total != predicted {
			t.Fatalf("%s moved %d of %d buckets, planner predicted %d", name, s.Migration().Done, s.Migration().Total, predicted)
		}
	}

	// Join a fourth node.
	dir := t.TempDir()
	var n4 *node.Node
	change("join n4", func() {
		n4 = startNode(t, nodeConfig(t, "n4", dir, []string{c.nodes[0].GossipAddr()}))
		c.nodes = append(c.nodes, n4)
	})
	addrMu.Lock()
	addrs = append(addrs, n4.RESPAddr())
	addrMu.Unlock()

	// The throttle is changeable at run time, from any node.
	if code, body, err := post(c.nodes[1].HTTPAddr(), "/v1/migration/limits", `{"concurrency": 3, "bytes_per_sec": 100000}`); err != nil || code != 200 {
		t.Fatalf("set limits: %d %s %v", code, body, err)
	}
	if code, _, _ := post(c.nodes[1].HTTPAddr(), "/v1/migration/limits", `{"concurrency": 0}`); code != 400 {
		t.Fatalf("concurrency 0 accepted: %d", code)
	}
	waitFor(t, 5*time.Second, "limits visible", func() error {
		cj, err := getCluster(c.nodes[2].HTTPAddr())
		if err != nil || cj.Migration.Concurrency != 3 || cj.Migration.BytesPerSec != 100000 {
			return fmt.Errorf("%+v %v", cj.Migration, err)
		}
		return nil
	})

	// Reweight n2.
	change("reweight n2 to 2", func() {
		code, body, err := post(leader().HTTPAddr(), "/v1/nodes/n2/weight", `{"weight": 2}`)
		if err != nil || code != 200 {
			t.Fatalf("reweight: %d %s %v", code, body, err)
		}
	})

	// Drain a node that is not the leader.
	var victim *node.Node
	for _, n := range live() {
		if !n.IsLeader() && n != n4 {
			victim = n
		}
	}
	change("drain "+victim.ID(), func() {
		code, body, err := post(leader().HTTPAddr(), "/v1/nodes/"+victim.ID()+"/drain", ``)
		if err != nil || code != 200 {
			t.Fatalf("drain: %d %s %v", code, body, err)
		}
	})
	waitFor(t, 10*time.Second, victim.ID()+" left", func() error {
		s := leader().Coordinator().Current()
		if m, _ := s.Member(victim.ID()); m.State != coordinator.StateLeft {
			return fmt.Errorf("%s is %s", victim.ID(), m.State)
		}
		if _, in := suffrages(t, leader())[victim.ID()]; in {
			return fmt.Errorf("%s still in the Raft configuration", victim.ID())
		}
		return nil
	})

	// The drained node comes back with an empty data dir under the same ID
	// (a replaced disk). Joining, it replays the metadata log, whose old
	// tables give it buckets it no longer owns: until it has caught up it
	// must neither take writes for them (acknowledged, then lost) nor judge
	// what to delete by them. A client writes to it from the moment it
	// is started.
	addrMu.Lock()
	addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == victim.RESPAddr() })
	addrMu.Unlock()
	w.waitNewBatches(t) // no client writes through the victim any more
	vi := slices.Index(c.nodes, victim)
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	c.nodes[vi] = nil
	var back *node.Node
	var early *setWorkload
	change("rejoin "+victim.ID()+" with an empty data dir", func() {
		back = startNode(t, nodeConfig(t, victim.ID(), t.TempDir(), []string{leader().GossipAddr()}))
		c.nodes[vi] = back
		early = w.hammer(back.RESPAddr(), "set:rejoin", 2000)
	})
	addrMu.Lock()
	addrs = append(addrs, back.RESPAddr())
	addrMu.Unlock()
	early.halt()
	t.Logf("writes to %s from its start: %d acknowledged, %d failed", back.ID(), early.n.Load(), early.errs.Load())
	if n := early.errs.Load(); n != 0 {
		var msgs []string
		early.firstErrs.Range(func(k, v any) bool { msgs = append(msgs, fmt.Sprintf("%s: %s", k, v)); return true })
		t.Errorf("%d errors writing to the rejoined node, e.g. %v", n, msgs)
	}

	w.halt()
	t.Logf("writes refused by %s after it left (clients moved on): %d", victim.ID(), w.leftRefusals.Load())
	if n := w.errs.Load(); n != 0 {
		var msgs []string
		w.firstErrs.Range(func(k, v any) bool { msgs = append(msgs, fmt.Sprintf("%s: %s", k, v)); return true })
		sort.Strings(msgs)
		t.Fatalf("%d client errors during the changes, e.g. %v", n, msgs)
	}
	s := waitMigrated(t, live(), 10*time.Second)
	checkPlacementOfData(t, live(), s.Table(), w)
}
