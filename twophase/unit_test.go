package twophase

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := Config{KeysPerTxnMax: 0, DeadlineTicks: 10, ResolveTicks: 0, RecordTTLTicks: 5, FinishedTTLTicks: 1}
	err := bad.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("want ErrBadConfig, got %v", err)
	}
	for _, want := range []string{"KeysPerTxnMax (0)", "ResolveTicks (0)", "RecordTTLTicks (5) must be equal or greater than DeadlineTicks (10)", "FinishedTTLTicks (1)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := NewCoordinator("c", bad); !errors.Is(err, ErrBadConfig) {
		t.Errorf("NewCoordinator accepted a bad config: %v", err)
	}
}

func TestLocksAllOrNothing(t *testing.T) {
	var l Locks
	if _, _, ok := l.Acquire("t1", []string{"a", "b"}); !ok {
		t.Fatal("t1 refused on an empty table")
	}
	if k, h, ok := l.Acquire("t2", []string{"c", "b"}); ok || k != "b" || h != "t1" {
		t.Fatalf("t2 got (%q, %q, %v), want conflict on b with t1", k, h, ok)
	}
	if _, held := l.Holder("c"); held {
		t.Fatal("a refused acquisition left c locked")
	}
	l.Release("t2", []string{"a", "b"})
	if l.Len() != 2 {
		t.Fatal("t2 released t1's locks")
	}
	l.Release("t1", []string{"a", "b"})
	if l.Len() != 0 {
		t.Fatal("locks left after release")
	}
}

// A participant may abort on its own only before its yes vote leaves.
func TestAbortOnlyBeforeVote(t *testing.T) {
	p, err := NewParticipant("p1", DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	prep := func(id TxID) Message {
		return Message{Type: MsgPrepare, Txn: id, From: "c", To: "p1",
			Prepare: &Prepare{Holder: "p2", Intents: []Intent{{Key: string(id)}}}}
	}
	effs := p.Step(0, prep("t1"), nil)
	if len(effs) != 1 || effs[0].(PersistPrepare).Rec.State != StatePrepared {
		t.Fatalf("prepare: want only the prepare record before the vote, got %v", effs)
	}
	// The prepare record could not be written: abort, vote no, unlock.
	effs, err = p.AbortUnvoted(1, "t1")
	if err != nil || p.State("t1") != StateAborted || p.Locks().Len() != 0 {
		t.Fatalf("AbortUnvoted: %v, state %s, %d locks", err, p.State("t1"), p.Locks().Len())
	}
	if v := effs[len(effs)-1].(Send).Msg; v.Type != MsgVote || v.Yes || v.Reason != ReasonParticipantAborted {
		t.Fatalf("want a no vote, got %v", v)
	}
	p.Step(2, prep("t2"), nil)
	p.Persisted(3, "t2")
	if _, err := p.AbortUnvoted(4, "t2"); !errors.Is(err, ErrAlreadyVoted) {
		t.Fatalf("AbortUnvoted after the vote: want ErrAlreadyVoted, got %v", err)
	}
	if p.State("t2") != StatePrepared {
		t.Fatal("t2 left prepared state after the vote without a decision")
	}
}

func TestRestoreRejectsOverlappingLocks(t *testing.T) {
	p, _ := NewParticipant("p1", DefaultConfig())
	_, err := p.Restore(0, []PrepareRecord{
		{Txn: "t1", State: StatePrepared, Holder: "p1", Locks: []string{"a"}},
		{Txn: "t2", State: StatePrepared, Holder: "p1", Locks: []string{"a"}},
	}, nil)
	if !errors.Is(err, ErrBadRecords) {
		t.Fatalf("want ErrBadRecords, got %v", err)
	}
}
