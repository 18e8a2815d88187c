package snapshot

import (
	"errors"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/twophase"
)

func commit(id string) twophase.Message {
	return twophase.Message{Type: twophase.MsgDecide, Txn: twophase.TxID(id), Status: twophase.StatusCommitted}
}

func TestGate(t *testing.T) {
	var g Gate
	t0 := time.Unix(1000, 0)
	if g.HoldDecide(t0, commit("t1")) {
		t.Fatal("held a decision while not paused")
	}
	if began, lapsed, err := g.Pause(t0, "s1", time.Minute); err != nil || !began || lapsed {
		t.Fatalf("pause: %v %v %v", began, lapsed, err)
	}
	if began, _, err := g.Pause(t0.Add(time.Second), "s1", time.Minute); err != nil || began {
		t.Fatalf("extending the pause: began %v, %v", began, err)
	}
	if _, _, err := g.Pause(t0, "s2", time.Minute); !errors.Is(err, ErrFailed) {
		t.Fatalf("a second snapshot paused over the first: %v", err)
	}
	if !g.HoldDecide(t0, commit("t2")) {
		t.Fatal("decision not held while paused")
	}
	if got := g.SentDecisions([]twophase.TxID{"t1", "t2", "t3"}); len(got) != 1 || got[0] != "t1" {
		t.Fatalf("sent decisions %v, want [t1]", got)
	}
	if _, _, ended := g.Resume(t0, "s2"); ended {
		t.Fatal("another snapshot's resume ended the pause in force")
	}
	held, active, ended := g.Resume(t0, "s1")
	if !active || !ended || len(held) != 1 || held[0].Txn != "t2" {
		t.Fatalf("resume: %v %v %v", held, active, ended)
	}
	if g.Paused(t0) {
		t.Fatal("paused after resume")
	}

	// A lease that runs out ends the pause by itself; the next pause of
	// another snapshot reports it lapsed, and its resume still hands back
	// what it held.
	g.Pause(t0, "s3", time.Second)
	g.HoldDecide(t0, commit("t4"))
	late := t0.Add(2 * time.Second)
	if g.Active(late, "s3") || g.HoldDecide(late, commit("t5")) {
		t.Fatal("pause in force past its lease")
	}
	if held, active, ended := g.Resume(late, "s3"); active || !ended || len(held) != 1 {
		t.Fatalf("resume after the lease: %v %v %v", held, active, ended)
	}
	g.Pause(t0, "s4", time.Second)
	if began, lapsed, err := g.Pause(late, "s5", time.Second); err != nil || !began || !lapsed {
		t.Fatalf("pause over a lapsed one: %v %v %v", began, lapsed, err)
	}

	// Remembered decisions age out after two generations.
	g.Resume(late, "s5")
	g.HoldDecide(late.Add(2*decidedKeep), commit("t6"))
	g.HoldDecide(late.Add(4*decidedKeep), commit("t7"))
	if got := g.SentDecisions([]twophase.TxID{"t1", "t6", "t7"}); len(got) != 2 || got[0] != "t6" {
		t.Fatalf("sent decisions %v, want [t6 t7]", got)
	}
}
