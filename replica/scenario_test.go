package replica

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/internal/scenario"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs in testdata/*.txt")

// A scenario file is a sequence of blocks:
//
//	# comments and blank lines, kept on rewrite
//	command args...
//	----
//	expected output lines
//
// ended by a blank line. Commands drive the simulation (sim_test.go):
//
//	setup [nodes=N] [buckets=N] [mut=NAME] [quiesce=T]
//	                                         a fresh cluster, all in sync; bucket b's primary n(b mod N + 1);
//	                                         idle primaries quiesce after T ticks (0: never)
//	write NODE BUCKET DATA                   a client write sent to NODE
//	read NODE BUCKET                         a client read served by NODE (if it may; it Touches the bucket first)
//	deliver TO TYPE [from=NODE]              deliver the first queued match
//	drop TO TYPE [from=NODE]                 lose it
//	deliver-all                              deliver the queue in order (paused nodes' messages wait)
//	dup | reorder | queue                    queue the last delivered again | reverse the queue | print it
//	tick N                                   N ticks of the global clock (leader, running nodes)
//	run N                                    N times: tick, deliver-all (heartbeats and plain acks not logged)
//	crash NODE | recover NODE                lose volatile state (and held writes) | restart from disk
//	pause NODE | resume NODE                 stop NODE entirely | let it run on (its clock jumped)
//	hold NODE | flush NODE                   queue NODE's disk writes | perform them in order
//	meta auto|manual                         commit proposals at once | only on commit
//	commit [I] | lose [I] | proposals        commit queued proposal I (0) | lose it | list them
//	lag NODE | catchup NODE                  NODE stops applying metadata | applies the head again
//	block A B | unblock A B                  messages between A and B are lost | get through again
//	cut NODE | uncut NODE                    the leader stops hearing NODE (its replicas still do) | hears it again
//	new-leader                               a new metadata leader takes office (fresh Failover)
//	state                                    every node and the metadata
//	check                                    every acknowledged write on every member of the set
func TestScenarios(t *testing.T) {
	files, err := scenario.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

func runScenario(t *testing.T, path string) {
	if caught := playScenario(t, path, ""); caught != "" {
		t.Error(caught)
	}
}

// TestScenariosCatchMutations: with a key rule switched off, the scenario
// written for it fails (its trace differs, or an invariant breaks).
func TestScenariosCatchMutations(t *testing.T) {
	if *rewrite {
		t.Skip("rewriting")
	}
	for _, c := range []struct{ mut, file string }{
		{"ack-without-all", "replica_crash"},
		{"accept-stale-epoch", "old_primary_resurfaces"},
		{"no-lease-wait", "primary_cut_from_leader"},
		{"no-truncate", "primary_crash_after_shipping"},
		{"lease-without-set", "lease_needs_whole_set"},
		{"promote-out-of-set", "promote_in_set_only"},
		{"no-bump", "restart_primary"},
	} {
		t.Run(c.mut, func(t *testing.T) {
			caught := playScenario(t, filepath.Join("testdata", c.file+".txt"), c.mut)
			if caught == "" {
				t.Fatalf("%s passes with the %s mutation", c.file, c.mut)
			}
			t.Logf("caught: %s", firstLine(caught))
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// playScenario runs the script (with mutation mut switched on, if any)
// and returns what went wrong: a trace differing from the file, a
// violation, a failed check. It rewrites the file with -rewrite (and no
// mutation).
func playScenario(t *testing.T, path, mut string) string {
	var s *sim
	problems, err := scenario.Play(path, *rewrite && mut == "", func(b scenario.Block) []string {
		if strings.HasPrefix(b.Cmd, "setup") {
			cmd := b.Cmd
			if mut != "" {
				cmd += " mut=" + mut
			}
			var err error
			if s, err = setup(cmd); err != nil {
				t.Fatalf("%s:%d: %v", path, b.Line, err)
			}
			return s.state()
		}
		if s == nil {
			t.Fatalf("%s:%d: no setup", path, b.Line)
		}
		s.out = nil
		if err := s.run(b.Cmd); err != nil {
			s.out = append(s.out, "error: "+err.Error())
		}
		return s.out
	})
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		for _, v := range s.violations {
			problems = append([]string{fmt.Sprintf("%s: violation: %s", path, v)}, problems...)
		}
	}
	return strings.Join(problems, "\n")
}

func setup(cmd string) (*sim, error) {
	_, _, args := scenario.Args(cmd)
	nodes, buckets := 3, 1
	var err error
	if v := args["nodes"]; v != "" {
		if nodes, err = strconv.Atoi(v); err != nil {
			return nil, err
		}
	}
	if v := args["buckets"]; v != "" {
		if buckets, err = strconv.Atoi(v); err != nil {
			return nil, err
		}
	}
	cfg := testConfig()
	if v := args["quiesce"]; v != "" {
		q, err := strconv.Atoi(v)
		if err != nil {
			return nil, err
		}
		cfg.QuiesceTicks = Tick(q)
	}
	return newSim(cfg, nodes, buckets, args["mut"]), nil
}

func (s *sim) run(cmd string) error {
	name, pos, args := scenario.Args(cmd)
	need := func(n int) error {
		if len(pos) != n {
			return fmt.Errorf("%s: want %d arguments, got %d", name, n, len(pos))
		}
		return nil
	}
	node := func(i int) (*simNode, error) {
		n := s.nodes[NodeID(pos[i])]
		if n == nil {
			return nil, fmt.Errorf("unknown node %s", pos[i])
		}
		return n, nil
	}
	index := func() (int, error) {
		i := 0
		if len(pos) > 0 {
			var err error
			if i, err = strconv.Atoi(pos[0]); err != nil {
				return 0, err
			}
		}
		if i < 0 || i >= len(s.proposals) {
			return 0, fmt.Errorf("no proposal %d", i)
		}
		return i, nil
	}
	switch name {
	case "write", "read":
		if len(pos) != 3 && !(name == "read" && len(pos) == 2) {
			return fmt.Errorf("%s: wrong arguments", name)
		}
		b, err := strconv.Atoi(pos[1])
		if err != nil {
			return err
		}
		if name == "read" {
			return s.clientRead(NodeID(pos[0]), Bucket(b))
		}
		return s.clientWrite(NodeID(pos[0]), Bucket(b), pos[2])
	case "deliver", "drop":
		if err := need(2); err != nil {
			return err
		}
		i := s.find(NodeID(pos[0]), pos[1], NodeID(args["from"]))
		if i < 0 {
			return fmt.Errorf("no queued %s to %s", pos[1], pos[0])
		}
		m := s.queue[i]
		s.queue = append(s.queue[:i], s.queue[i+1:]...)
		if name == "drop" {
			s.logf("dropped %s -> %s: %s", m.From, m.To, m)
			return nil
		}
		s.deliver(m)
	case "deliver-all":
		for n := 0; ; n++ {
			if n > 1000 {
				return fmt.Errorf("queue does not drain")
			}
			i := 0
			for i < len(s.queue) && s.nodes[s.queue[i].To] != nil && s.nodes[s.queue[i].To].paused {
				i++
			}
			if i == len(s.queue) {
				break
			}
			m := s.queue[i]
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			s.deliver(m)
		}
	case "dup":
		if s.last == nil {
			return fmt.Errorf("nothing delivered yet")
		}
		s.queue = append(s.queue, *s.last)
		s.logf("queued again %s -> %s: %s", s.last.From, s.last.To, *s.last)
	case "reorder":
		for i, j := 0, len(s.queue)-1; i < j; i, j = i+1, j-1 {
			s.queue[i], s.queue[j] = s.queue[j], s.queue[i]
		}
		s.printQueue()
	case "queue":
		s.printQueue()
	case "tick", "run":
		if err := need(1); err != nil {
			return err
		}
		k, err := strconv.Atoi(pos[0])
		if err != nil {
			return err
		}
		if name == "tick" {
			s.tick(k)
			return nil
		}
		s.hideBeats = true
		defer func() { s.hideBeats = false }()
		for range k {
			s.tick(1)
			if err := s.run("deliver-all"); err != nil {
				return err
			}
		}
	case "crash", "recover", "pause", "resume", "hold", "flush", "lag", "catchup", "cut", "uncut":
		if err := need(1); err != nil {
			return err
		}
		n, err := node(0)
		if err != nil {
			return err
		}
		switch name {
		case "crash":
			s.crash(n)
		case "recover":
			return s.recover(n)
		case "pause":
			n.paused = true
		case "resume":
			if n.paused {
				n.paused = false
				if !n.lagMeta {
					s.applyMeta(n)
				}
				s.apply(n.id, n.r.Tick(s.now))
			}
		case "hold":
			n.hold = true
		case "flush":
			s.flush(n)
		case "lag":
			n.lagMeta = true
		case "cut", "uncut":
			n.cut = name == "cut"
		case "catchup":
			n.lagMeta = false
			s.applyMeta(n)
		}
	case "block", "unblock":
		if err := need(2); err != nil {
			return err
		}
		a, b := NodeID(pos[0]), NodeID(pos[1])
		s.blocked[[2]NodeID{a, b}] = name == "block"
		s.blocked[[2]NodeID{b, a}] = name == "block"
	case "meta":
		if err := need(1); err != nil {
			return err
		}
		s.auto = pos[0] == "auto"
	case "commit", "lose":
		i, err := index()
		if err != nil {
			return err
		}
		if name == "lose" {
			s.logf("lost %v", s.proposals[i].p)
			s.proposals = append(s.proposals[:i], s.proposals[i+1:]...)
			return nil
		}
		s.commitProposal(i)
	case "proposals":
		for i, p := range s.proposals {
			s.logf("%d: %s: %v", i, p.from, p.p)
		}
	case "new-leader":
		s.leader, _ = NewFailover(s.cfg, s.now)
		s.leader.promoteOutOfSet = s.mut == "promote-out-of-set"
	case "state":
		s.out = append(s.out, s.state()...)
	case "check":
		if err := s.checkDurable(); err != nil {
			return err
		}
		s.logf("%d acknowledged writes on every member of the set; %d violations", s.countAcks(), len(s.violations))
	default:
		return fmt.Errorf("unknown command %q", name)
	}
	return nil
}

func (s *sim) countAcks() int {
	n := 0
	for _, a := range s.acks {
		n += len(a)
	}
	return n
}

func (s *sim) find(to NodeID, typ string, from NodeID) int {
	for i, m := range s.queue {
		if m.To == to && m.Type.String() == typ && (from == "" || m.From == from) {
			return i
		}
	}
	return -1
}

func (s *sim) printQueue() {
	if len(s.queue) == 0 {
		s.logf("queue empty")
	}
	for _, m := range s.queue {
		s.logf("%s -> %s: %s", m.From, m.To, m)
	}
}
