package snapshot

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/twophase"
)

func testPlan() Plan {
	return Plan{
		ID: "s1", Epoch: 4, CreatedMs: 1000,
		Owners: []Target{{"b", "b:1"}, {"a", "a:1"}},
		Gated:  []Target{{"b", "b:1"}, {"a", "a:1"}, {"c", "c:1"}},
		Ranges: map[string][]coordinator.BucketRange{"a": {{From: 0, To: 9}}, "b": {{From: 10, To: 16383}}},
	}
}

// nodeState is a fake node's answers to the steps.
type nodeState struct {
	err     map[string]error // method → error
	held    []twophase.TxID
	decided []twophase.TxID
	lapsed  bool
}

// drive runs t to Done against fake nodes, advancing a fake clock by
// step per effect (and by the wait asked), and returns the trace of
// effects and the final one.
func drive(t *testing.T, tk *Take, nodes map[string]*nodeState, step time.Duration, commitErr error) ([]string, Effect) {
	t.Helper()
	var trace []string
	var now time.Duration
	e := tk.Start()
	for range 10000 {
		var ev Event
		switch e.Kind {
		case Call:
			var ids []string
			for _, tg := range e.To {
				ids = append(ids, tg.ID)
				ns := nodes[tg.ID]
				r := Reply{Node: tg.ID, Err: ns.err[e.Method]}
				switch e.Method {
				case MethodDrain:
					r.Drain = DrainResp{Held: ns.held}
					for _, id := range e.Req.Txns {
						for _, d := range ns.decided {
							if d == id {
								r.Drain.Decided = append(r.Drain.Decided, id)
							}
						}
					}
				case MethodResume:
					r.Was.WasActive = !ns.lapsed
				case MethodDescribe:
					r.Part = coordinator.SnapshotPart{Node: tg.ID, Files: []coordinator.SnapshotFile{{Name: "f", Bytes: 1}}}
				}
				if e.Req.ID != "s1" || e.Req.Epoch != 4 {
					t.Fatalf("request %+v", e.Req)
				}
				ev.Replies = append(ev.Replies, r)
			}
			trace = append(trace, e.Method+" "+strings.Join(ids, ","))
		case Wait:
			now += e.For
			trace = append(trace, "wait")
		case Release:
			var ids []string
			for _, tg := range e.To {
				ids = append(ids, tg.ID)
			}
			trace = append(trace, "release "+strings.Join(ids, ","))
		case Commit:
			ev.Err = commitErr
			trace = append(trace, "commit")
		case Done:
			return trace, e
		}
		now += step
		ev.Now = now
		e = tk.Step(ev)
	}
	t.Fatal("the take did not end")
	return nil, e
}

// squash collapses repeated drain rounds in a trace into one.
func squash(trace []string) string {
	s := strings.Join(trace, "\n")
	round := "snap.drain a,b,c\nsnap.drain a,b,c\nwait\n"
	for strings.Contains(s, round+round) {
		s = strings.ReplaceAll(s, round+round, round)
	}
	return s
}

func fakeNodes() map[string]*nodeState {
	return map[string]*nodeState{"a": {}, "b": {}, "c": {}}
}

func TestTake(t *testing.T) {
	const (
		pause    = "snap.pause b,a,c"
		drain    = "snap.drain a,b,c"
		ckpt     = "snap.checkpoint b,a"
		resume   = "snap.resume b,a,c"
		describe = "snap.describe b,a"
		release  = "release b,a"
	)
	cases := []struct {
		name      string
		set       func(map[string]*nodeState)
		commitErr error
		trace     []string
		err       string // "" : committed
	}{
		{name: "taken", trace: []string{pause, drain, ckpt, resume, describe, "commit"}},
		{name: "held but not decided", set: func(ns map[string]*nodeState) { ns["a"].held = []twophase.TxID{"t1"} },
			trace: []string{pause, drain, drain, ckpt, resume, describe, "commit"}},
		{name: "a decided transaction applies", set: func(ns map[string]*nodeState) {
			ns["a"].held, ns["c"].decided = []twophase.TxID{"t1"}, []twophase.TxID{"t1"}
		}, trace: []string{pause, drain, drain, "wait", resume}, err: "1 decided transactions (first t1) still not applied after 5s"},
		{name: "pause refused", set: func(ns map[string]*nodeState) { ns["c"].err = map[string]error{MethodPause: errors.New("busy")} },
			trace: []string{pause, resume}, err: "snap.pause: node c: busy"},
		{name: "drain fails", set: func(ns map[string]*nodeState) { ns["b"].err = map[string]error{MethodDrain: errors.New("down")} },
			trace: []string{pause, drain, resume}, err: "drain: node b: down"},
		{name: "checkpoint fails", set: func(ns map[string]*nodeState) { ns["a"].err = map[string]error{MethodCheckpt: errors.New("disk")} },
			trace: []string{pause, drain, ckpt, resume, release}, err: "snap.checkpoint: node a: disk"},
		{name: "pause ran out", set: func(ns map[string]*nodeState) { ns["c"].lapsed = true },
			trace: []string{pause, drain, ckpt, resume, release}, err: "the pause ran out on c before the checkpoints were done"},
		{name: "describe fails", set: func(ns map[string]*nodeState) { ns["b"].err = map[string]error{MethodDescribe: errors.New("gone")} },
			trace: []string{pause, drain, ckpt, resume, describe, release}, err: "snap.describe: node b: gone"},
		{name: "commit refused", commitErr: coordinator.ErrNotLeader,
			trace: []string{pause, drain, ckpt, resume, describe, "commit", release}, err: "committing the manifest"},
		{name: "commit outcome unknown keeps the checkpoints", commitErr: fmt.Errorf("x: %w", coordinator.ErrUnknownOutcome),
			trace: []string{pause, drain, ckpt, resume, describe, "commit"}, err: "committing the manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodes := fakeNodes()
			if c.set != nil {
				c.set(nodes)
			}
			trace, done := drive(t, NewTake(testPlan(), DefaultConfig()), nodes, time.Millisecond, c.commitErr)
			if got, want := squash(trace), strings.Join(c.trace, "\n"); got != want {
				t.Fatalf("effects:\n%s\nwant:\n%s", got, want)
			}
			if c.err != "" {
				if !errors.Is(done.Err, ErrFailed) || !strings.Contains(done.Err.Error(), c.err) {
					t.Fatalf("error %v, want ErrFailed with %q", done.Err, c.err)
				}
				return
			}
			if done.Err != nil {
				t.Fatal(done.Err)
			}
			m := done.Manifest
			if m.ID != "s1" || m.Epoch != 4 || m.CreatedMs != 1000 || len(m.Parts) != 2 ||
				m.Parts[0].Node != "b" || m.Parts[0].Ranges[0].From != 10 || m.Parts[1].Ranges[0].To != 9 {
				t.Fatalf("manifest %+v", m)
			}
			if done.Pause <= 0 {
				t.Fatalf("pause %s", done.Pause)
			}
		})
	}
}

// TestTakeDrainRounds: with a clock that does not move, the rounds bound
// the drain.
func TestTakeDrainRounds(t *testing.T) {
	nodes := fakeNodes()
	nodes["a"].held, nodes["a"].decided = []twophase.TxID{"t1"}, []twophase.TxID{"t1"}
	cfg := DefaultConfig()
	cfg.DrainRoundsMax, cfg.DrainPoll = 3, time.Nanosecond
	trace, done := drive(t, NewTake(testPlan(), cfg), nodes, 0, nil)
	if !strings.Contains(fmt.Sprint(done.Err), "decided transactions still not applied") || len(trace) != 1+3*3+1 {
		t.Fatalf("%v after %q", done.Err, trace)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := Config{DrainMax: -time.Second}.Validate()
	for _, want := range []string{"StepTimeout (0s)", "DrainMax (-1s)", "DrainRoundsMax (0)"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("%v: want %q", err, want)
		}
	}
}
