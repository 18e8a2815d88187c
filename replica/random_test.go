package replica

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "run TestRandomSchedules with this seed only")
	seedsFlag = flag.Int("seeds", 2000, "number of seeds TestRandomSchedules runs")
	stepsFlag = flag.Int("steps", 400, "schedule steps per seed")
	traceFlag = flag.Bool("sim.trace", false, "log the trace of a failing seed (go test's own -trace writes an execution trace)")
)

// TestRandomSchedules runs seeded schedules over three nodes and two
// buckets: client writes and reads at any node, message delivery in any
// order, loss and duplication, crashes and restarts, pauses, slow disks,
// metadata proposals committed in any order or lost, nodes applying the
// metadata late, nodes the leader cannot hear (but their replicas can),
// leader changes. After every step the simulation's
// invariants hold (sim_test.go); once healed, every owner is back in its
// bucket's set and every acknowledged write is on every member's disk, in
// order. Rerun one with -seed (and -sim.trace).
func TestRandomSchedules(t *testing.T) {
	seeds := make([]uint64, 0, *seedsFlag)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for i := range *seedsFlag {
			seeds = append(seeds, uint64(i+1))
		}
	}
	acks, reads, epochs, quiet := 0, 0, 0, 0
	for _, seed := range seeds {
		s, err := randomRun(seed, *stepsFlag, "")
		if err != nil {
			if *traceFlag && s != nil {
				for _, l := range s.out {
					t.Log(l)
				}
			}
			t.Fatalf("seed %d: %v (rerun: go test ./replica -run TestRandomSchedules -seed %d -sim.trace)", seed, err, seed)
		}
		acks += s.countAcks()
		reads += s.reads
		quiet += s.quietSteps
		for _, m := range s.head().ms {
			epochs += int(m.Epoch) - 1
		}
	}
	t.Logf("%d seeds × %d steps: %d writes acknowledged, %d reads served, %d configuration changes, %d bucket-steps quiesced", len(seeds), *stepsFlag, acks, reads, epochs, quiet)
	if *seedFlag == 0 && (acks == 0 || reads == 0 || epochs == 0 || quiet == 0) {
		t.Fatalf("the schedules exercise nothing: %d acks, %d reads, %d changes, %d quiesced", acks, reads, epochs, quiet)
	}
}

// TestRandomSchedulesCatchMutations: with each key rule switched off, some
// schedule (or the end check) fails.
func TestRandomSchedulesCatchMutations(t *testing.T) {
	// The lease mutations (no-lease-wait, lease-without-set) need a primary
	// that keeps reading while the refusals that depose it are still in
	// flight; random schedules did not find them in 5000 seeds, the
	// scenarios do (TestScenariosCatchMutations).
	for _, mut := range []string{"ack-without-all", "accept-stale-epoch", "no-truncate", "promote-out-of-set", "no-bump", "ack-during-change", "no-prev-check"} {
		t.Run(mut, func(t *testing.T) {
			for seed := uint64(1); seed <= 3000; seed++ {
				if _, err := randomRun(seed, *stepsFlag, mut); err != nil {
					t.Logf("seed %d: %v", seed, err)
					return
				}
			}
			t.Fatalf("no schedule of 3000 found the %s mutation", mut)
		})
	}
}

func randomRun(seed uint64, steps int, mut string) (s *sim, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cfg := testConfig()
	if seed%2 == 0 {
		// Half the schedules let idle buckets quiesce: reads then wake
		// them (Touch) and wait a round for a lease.
		cfg.QuiesceTicks = 6
	}
	s = newSim(cfg, 3, 2, mut)
	s.quiet = !*traceFlag
	s.auto = false
	words := 0
	fail := func() error {
		if len(s.violations) > 0 {
			return fmt.Errorf("violation: %s", s.violations[0])
		}
		return nil
	}
	pick := func() *simNode { return s.nodes[s.order[rng.IntN(len(s.order))]] }
	for step := 0; step < steps; step++ {
		s.logf("-- step %d", step)
		for _, n := range s.nodes {
			if n.r == nil {
				continue
			}
			for _, st := range n.r.buckets {
				if st.quiet {
					s.quietSteps++
				}
			}
		}
		r := rng.IntN(1000)
		if r >= 750 && r < 840 && len(s.proposals) == 0 {
			r = 300 // nothing to commit: deliver
		}
		if r >= 250 && r < 590 && len(s.queue) == 0 {
			r = 999 // nothing to deliver: time passes
		}
		switch {
		case r < 150:
			// Clients mostly find the primary the metadata names; some
			// hit a stale or wrong one.
			b := Bucket(rng.IntN(2))
			n := s.nodes[s.head().ms[b].Primary]
			if rng.IntN(3) == 0 {
				n = pick()
			}
			words++
			_ = s.clientWrite(n.id, b, fmt.Sprintf("w%d", words))
		case r < 250:
			b := Bucket(rng.IntN(2))
			n := s.nodes[s.head().ms[b].Primary]
			if rng.IntN(2) == 0 {
				n = pick()
			}
			_ = s.clientRead(n.id, b)
		case r < 550:
			// A few messages, mostly in order, sometimes reordered.
			for k := 1 + rng.IntN(6); k > 0 && len(s.queue) > 0; k-- {
				i := rng.IntN(min(len(s.queue), 3))
				if rng.IntN(5) == 0 {
					i = rng.IntN(len(s.queue))
				}
				m := s.queue[i]
				if n := s.nodes[m.To]; n != nil && n.paused {
					continue
				}
				s.queue = slices.Delete(s.queue, i, i+1)
				s.deliver(m)
			}
		case r < 570:
			s.queue = append(s.queue, s.queue[rng.IntN(len(s.queue))]) // duplicate
		case r < 590:
			i := rng.IntN(len(s.queue))
			s.queue = slices.Delete(s.queue, i, i+1) // lose
		case r < 605:
			s.crash(pick())
		case r < 635:
			if err := s.recover(pick()); err != nil {
				return s, err
			}
		case r < 650:
			if n := pick(); n.r != nil {
				n.paused = true
			}
		case r < 680:
			if n := pick(); n.paused {
				n.paused = false
				if !n.lagMeta {
					s.applyMeta(n)
				}
				s.apply(n.id, n.r.Tick(s.now))
			}
		case r < 700:
			if n := pick(); n.r != nil {
				n.hold = !n.hold
				if !n.hold {
					s.flush(n)
				}
			}
		case r < 720:
			n := pick()
			n.lagMeta = !n.lagMeta
			if !n.lagMeta {
				s.applyMeta(n)
			}
		case r < 750:
			n := pick()
			n.cut = !n.cut
		case r < 830:
			s.commitProposal(rng.IntN(len(s.proposals))) // in any order
		case r < 840:
			s.proposals = slices.Delete(s.proposals, 0, 1) // lost
		case r < 845:
			s.leader, _ = NewFailover(s.cfg, s.now)
			s.leader.promoteOutOfSet = mut == "promote-out-of-set"
		default:
			s.tick(1)
		}
		if err := fail(); err != nil {
			return s, fmt.Errorf("step %d: %w", step, err)
		}
	}
	// Heal: everyone up and applying, no loss, disks flushed; run until
	// every owner is back in its set and the logs agree.
	s.logf("-- heal")
	for _, id := range s.order {
		n := s.nodes[id]
		n.paused, n.lagMeta, n.cut = false, false, false
		if err := s.recover(n); err != nil {
			return s, err
		}
		s.flush(n)
		s.applyMeta(n)
	}
	healed := false
	for round := 0; round < 2000 && !healed; round++ {
		for k := 0; len(s.queue) > 0; k++ {
			if k > 10000 {
				return s, fmt.Errorf("queue does not drain")
			}
			m := s.queue[0]
			s.queue = s.queue[1:]
			s.deliver(m)
		}
		for len(s.proposals) > 0 {
			s.commitProposal(0)
		}
		if err := fail(); err != nil {
			return s, fmt.Errorf("heal: %w", err)
		}
		healed = s.healed()
		s.tick(1)
	}
	if err := s.checkDurable(); err != nil {
		return s, err
	}
	if !healed {
		return s, fmt.Errorf("not healed after 2000 rounds: %v", s.state())
	}
	// The healed cluster serves: a write to each primary is acknowledged.
	for _, b := range s.head().Buckets() {
		p := s.head().ms[b].Primary
		data := fmt.Sprintf("final-%d", b)
		if err := s.clientWrite(p, b, data); err != nil {
			return s, fmt.Errorf("healed b%d refuses writes: %v", b, err)
		}
		for k := 0; len(s.queue) > 0 && k < 100; k++ {
			m := s.queue[0]
			s.queue = s.queue[1:]
			s.deliver(m)
		}
		if a := s.acks[b]; len(a) == 0 || a[len(a)-1].data != data {
			return s, fmt.Errorf("healed b%d did not acknowledge a write", b)
		}
	}
	return s, fail()
}

// healed: every bucket's set holds all its owners, and every member's
// log equals the primary's up to its commit point.
func (s *sim) healed() bool {
	h := s.head()
	for _, b := range h.Buckets() {
		m := h.ms[b]
		if len(m.Set) != len(m.Owners) {
			return false
		}
		pst, ok := s.nodes[m.Primary].r.buckets[b]
		if !ok || pst.role != RolePrimary || pst.m.Epoch != m.Epoch || pst.proposal != nil {
			return false
		}
		if now := s.now; now < pst.promised+s.cfg.LeaseMarginTicks {
			return false
		}
		for _, id := range m.Set {
			st, ok := s.nodes[id].r.Status(b)
			if !ok || st.Epoch != m.Epoch || st.Durable < pst.last() {
				return false
			}
			// Same log as the primary's (disks are written in order).
			d, pd := s.diskOf(s.nodes[id], b).entries, s.diskOf(s.nodes[m.Primary], b).entries
			if !slices.EqualFunc(d, pd, func(x, y Entry) bool { return x.ID() == y.ID() }) {
				return false
			}
			if p := pst.peers[id]; id != m.Primary && (p == nil || !pst.quiet && (!p.acked || s.now-p.lastAck > 2) || p.match != pst.last()) {
				return false
			}
		}
	}
	return true
}
