package rebalancer

import (
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/internal/scenario"
	"github.com/dbx-kv/dbx/router"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs in testdata/*.txt")

// A scenario file drives the simulation (sim_test.go) one step at a time:
//
//	# comments and blank lines, kept on rewrite
//	command args...
//	----
//	expected output lines (the trace the command produced)
//
// ended by a blank line. Commands:
//
//	setup nodes=a,b,c keys=N         a fresh cluster; key i's bucket on node i mod len
//	migrate KEY=NODE ...             a new target placement for the keys' buckets
//	lead                             the leader plans (cancels orphans, starts moves)
//	deliver KIND TOKEN [to=N]        deliver the first queued matching message
//	drop KIND TOKEN                  lose it (its sender's call fails)
//	apply NODE [n=N|all]             NODE applies the next N log entries (1)
//	pull NODE TOKEN [n=N]            NODE's pull of TOKEN takes N steps (1)
//	write KEY VAL via=NODE           a client write, routed by NODE's table
//	tick NODE [n=N]                  N ticks of NODE's clock
//	cancel TOKEN                     a cancellation reaches the log
//	crash NODE | restart NODE [wiped]
//	catchup NODE                     NODE learns the log's end from the leader
//	delete NODE                      NODE performs its oldest queued delete
//	clean NODE [at=INDEX]            NODE's scan for foreign data, judged by INDEX's state
//	mutate NAME                      switch a modelled driver check off
//	check                            owners accepting writes, acknowledged writes lost
//	queue | state
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
	var s *sim
	problems, err := scenario.Play(path, *rewrite, func(b scenario.Block) []string {
		var got []string
		trace := func(l string) { got = append(got, l) }
		if s != nil {
			s.trace = trace
		}
		s = runCommand(t, s, b.Cmd, trace)
		return got
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func runCommand(t *testing.T, s *sim, line string, trace func(string)) *sim {
	name, pos, args := scenario.Args(line)
	num := func(k string, def int) int {
		if v, ok := args[k]; ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %s=%q is not a number", line, k, v)
			}
			return n
		}
		return def
	}
	node := func(i int) *simNode {
		if i >= len(pos) || s.nodes[pos[i]] == nil {
			t.Fatalf("%s: no such node", line)
		}
		return s.nodes[pos[i]]
	}
	switch name {
	case "setup":
		s = newSim(t, 1, strings.Split(args["nodes"], ","), num("keys", 3))
		s.trace = trace
		for i, k := range s.keys {
			trace(fmt.Sprintf("%s: bucket %d on %s", k, router.BucketString(k), s.head().table.OwnerString(k)))
			_ = i
		}
	case "migrate":
		to := map[uint16]string{}
		for k, v := range args {
			to[router.BucketString(k)] = v
		}
		s.migrate(func(b uint16) string {
			if n, ok := to[b]; ok {
				return n
			}
			return s.head().table.OwnerOfBucket(b)
		})
	case "lead":
		s.lead()
	case "deliver", "drop":
		i := slices.IndexFunc(s.msgs, func(m simMsg) bool {
			return m.kind == pos[0] && m.token == pos[1] && (args["to"] == "" || m.to == args["to"])
		})
		if i < 0 {
			trace(fmt.Sprintf("no %s %s queued", pos[0], pos[1]))
			break
		}
		if name == "drop" {
			s.drop(i)
		} else {
			s.deliver(i)
		}
	case "apply":
		n := node(0)
		k := len(s.log)
		if args["n"] != "all" {
			k = num("n", 1)
		}
		for j := 0; j < k && s.apply(n); j++ {
		}
		trace(fmt.Sprintf("%s applied %d", n.id, n.applied))
	case "pull":
		n := node(0)
		for j := 0; j < num("n", 1); j++ {
			if !s.pullStep(n, pos[1]) {
				trace(fmt.Sprintf("%s: pull %s waits", n.id, pos[1]))
				break
			}
		}
	case "write":
		s.write(pos[0], pos[1], args["via"])
	case "tick":
		n := node(0)
		for j := 0; j < num("n", 1); j++ {
			s.tick(n)
		}
	case "cancel":
		_, err := s.propose(ProposeCancel{Token: pos[0]})
		trace("cancel " + pos[0] + ": " + errString(err))
	case "crash":
		s.crash(node(0))
	case "restart":
		s.restart(node(0), slices.Contains(pos, "wiped"))
	case "catchup":
		s.catchUp(node(0))
	case "delete":
		if !s.runDelete(node(0)) {
			trace("nothing to delete")
		}
	case "clean":
		n := node(0)
		if at := num("at", 0); at > 0 {
			saved := n.applied
			n.applied = uint64(at)
			s.clean(n)
			n.applied = saved
		} else {
			s.clean(n)
		}
	case "mutate":
		s.mut[pos[0]] = true
	case "check":
		if err := s.checkOwners(); err != nil {
			trace("VIOLATION: " + err.Error())
		} else {
			trace("one owner accepts writes for every bucket")
		}
		if l := s.lost(); len(l) > 0 {
			trace(fmt.Sprintf("VIOLATION: %d acknowledged writes lost: %s", len(l), strings.Join(l, "; ")))
		} else {
			trace(fmt.Sprintf("no acknowledged write lost (%d keys)", len(s.acked)))
		}
	case "queue":
		for _, m := range s.msgs {
			trace(fmt.Sprintf("%s %s %s->%s", m.kind, m.token, m.from, m.to))
		}
	case "state":
		for _, id := range s.ids {
			n := s.nodes[id]
			var data []string
			for _, k := range sortedKeys(n.data) {
				data = append(data, k+"="+n.data[k])
			}
			var fenced []uint16
			for _, b := range s.buckets {
				if n.l.Fenced(b) {
					fenced = append(fenced, b)
				}
			}
			trace(fmt.Sprintf("%s: up=%v applied=%d catching-up=%v out=%v fenced=%s pulls=%v data=%s", id, n.up, n.applied,
				n.l.CatchingUp(), n.l.Outgoing(), fmtBuckets(fenced), sortedKeys(n.pulls), strings.Join(data, ",")))
		}
	default:
		t.Fatalf("unknown command %q", line)
	}
	return s
}
