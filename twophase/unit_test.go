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
	// The prepare record could not be written: abort, vote no, and unlock
	// once the Aborted record is durable (Applied).
	effs, err = p.AbortUnvoted(1, "t1")
	if err != nil || p.State("t1") != StateAborted || p.Locks().Len() != 1 {
		t.Fatalf("AbortUnvoted: %v, state %s, %d locks, want aborted with its lock until Applied", err, p.State("t1"), p.Locks().Len())
	}
	if v := effs[len(effs)-1].(Send).Msg; v.Type != MsgVote || v.Yes || v.Reason != ReasonParticipantAborted {
		t.Fatalf("want a no vote, got %v", v)
	}
	p.Applied("t1")
	if p.Locks().Len() != 0 {
		t.Fatalf("%d locks after Applied", p.Locks().Len())
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

// A holder that crashed between making its record COMMITTED and committing
// its own prepared part finds both on disk: Restore must finish the part
// from its own record (there is nobody else to ask).
func TestRestoreSelfHolderLearnsOwnRecord(t *testing.T) {
	for _, st := range []Status{StatusCommitted, StatusAborted} {
		p, _ := NewParticipant("p1", DefaultConfig())
		effs, err := p.Restore(0, []PrepareRecord{{
			Txn: "t1", State: StatePrepared, Coordinator: "c", Holder: "p1",
			Intents: []Intent{{Key: "a", Value: []byte("1")}}, Locks: []string{"a"},
		}}, []TxnRecord{{Txn: "t1", Status: st}})
		if err != nil {
			t.Fatal(err)
		}
		want := StateCommitted
		if st == StatusAborted {
			want = StateAborted
		}
		if p.State("t1") != want || p.Locks().Len() != 1 {
			t.Fatalf("record %s: after Restore state %s with %d locks, want %s with its lock until Applied", st, p.State("t1"), p.Locks().Len(), want)
		}
		var got *PrepareRecord
		for _, e := range effs {
			if pp, ok := e.(PersistPrepare); ok {
				got = &pp.Rec
			}
		}
		if got == nil || got.State != want || (want == StateCommitted && len(got.Intents) != 1) {
			t.Fatalf("record %s: effects %v, want a %s prepare record (with the intents if committed)", st, effs, want)
		}
		p.Applied("t1")
		if p.Locks().Len() != 0 || len(p.Holding()) != 0 {
			t.Fatalf("record %s: %d locks, holding %v after Applied", st, p.Locks().Len(), p.Holding())
		}
	}
}

// VersionBusy for any locked key makes the Prepare vote no with a lock
// conflict and take no lock.
func TestPrepareVersionBusy(t *testing.T) {
	p, _ := NewParticipant("p1", DefaultConfig())
	m := Message{Type: MsgPrepare, Txn: "t1", From: "c", To: "p1",
		Prepare: &Prepare{Holder: "p2", Intents: []Intent{{Key: "a"}}, Reads: []string{"b"}}}
	effs := p.Step(0, m, map[string]uint64{"b": VersionBusy})
	v, ok := effs[len(effs)-1].(Send)
	if !ok || v.Msg.Type != MsgVote || v.Msg.Yes || v.Msg.Reason != ReasonLockConflict {
		t.Fatalf("want a no vote for a lock conflict, got %v", effs)
	}
	if p.Locks().Len() != 0 {
		t.Fatalf("%d locks held after a refused prepare", p.Locks().Len())
	}
}

// Final records are dropped: ABORTED after FinishedTTLTicks, COMMITTED
// after RecordKeepTicks.
func TestRecordsExpire(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FinishedTTLTicks, cfg.RecordKeepTicks = 100, 1000
	p, _ := NewParticipant("h", cfg)
	for _, id := range []TxID{"tc", "ta"} {
		p.Step(0, Message{Type: MsgPrepare, Txn: id, From: "c", To: "h",
			Prepare: &Prepare{Holder: "h", Intents: []Intent{{Key: string(id)}}}}, nil)
		p.Persisted(0, id)
	}
	p.Step(1, Message{Type: MsgDecide, Txn: "tc", From: "c", To: "h", Status: StatusCommitted}, nil)
	p.Step(1, Message{Type: MsgDecide, Txn: "ta", From: "c", To: "h", Status: StatusAborted}, nil)
	forgotten := func(now Tick) []TxID {
		var out []TxID
		for _, e := range p.Tick(now) {
			if f, ok := e.(ForgetRecord); ok {
				out = append(out, f.Txn)
			}
		}
		return out
	}
	if got := forgotten(100); len(got) != 0 {
		t.Fatalf("tick 100: forgot %v too early", got)
	}
	if got := forgotten(101); len(got) != 1 || got[0] != "ta" || p.Record("ta") != StatusUnknown {
		t.Fatalf("tick 101: forgot %v, want [ta]", got)
	}
	if got := forgotten(1000); len(got) != 0 || p.Record("tc") != StatusCommitted {
		t.Fatalf("tick 1000: forgot %v, want nothing (committed kept 1000 ticks)", got)
	}
	if got := forgotten(1001); len(got) != 1 || got[0] != "tc" {
		t.Fatalf("tick 1001: forgot %v, want [tc]", got)
	}
}

// A decided transaction keeps its locks until Applied, and is not
// forgotten before: its Forget waits until it is applied.
func TestLockedUntilApplied(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FinishedTTLTicks, cfg.RecordKeepTicks = 100, 1000
	p, _ := NewParticipant("p1", cfg)
	p.Step(0, Message{Type: MsgPrepare, Txn: "t1", From: "c", To: "p1",
		Prepare: &Prepare{Holder: "p2", Intents: []Intent{{Key: "a", Value: []byte("1")}}}}, nil)
	p.Persisted(0, "t1")
	effs := p.Step(1, Message{Type: MsgCommit, Txn: "t1", From: "c", To: "p1"}, nil)
	if len(effs) != 1 || effs[0].(PersistPrepare).Rec.State != StateCommitted || len(effs[0].(PersistPrepare).Rec.Intents) != 1 {
		t.Fatalf("commit: effects %v, want the Committed record with its intents", effs)
	}
	if h, ok := p.Locks().Holder("a"); !ok || h != "t1" {
		t.Fatalf("a is held by %q (%v) after the commit, before Applied; want t1", h, ok)
	}
	if v := p.Step(2, Message{Type: MsgPrepare, Txn: "t2", From: "c", To: "p1",
		Prepare: &Prepare{Holder: "p2", Intents: []Intent{{Key: "a"}}}}, nil); v[len(v)-1].(Send).Msg.Reason != ReasonLockConflict {
		t.Fatalf("prepare of a committed, unapplied key: %v, want a lock conflict", v)
	}
	for _, e := range p.Tick(200) {
		if f, ok := e.(Forget); ok && f.Txn == "t1" {
			t.Fatal("t1 forgotten before it was applied")
		}
	}
	p.Applied("t1")
	if p.Locks().Len() != 0 || len(p.Holding()) != 0 {
		t.Fatalf("after Applied: %d locks, holding %v; want none", p.Locks().Len(), p.Holding())
	}
	forgot := false
	for _, e := range p.Tick(400) {
		if f, ok := e.(Forget); ok && f.Txn == "t1" {
			forgot = true
		}
	}
	if !forgot {
		t.Fatal("t1 not forgotten FinishedTTLTicks after it was applied")
	}
}
