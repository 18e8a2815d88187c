package twophase

import (
	"encoding/hex"
	"errors"
	"slices"
	"testing"
)

// The stored format is what earlier versions wrote: a node restarted on
// old data must read it. These bytes pin it.
func TestStorageFormat(t *testing.T) {
	for _, tc := range []struct {
		e        Effect
		key, val string
	}{
		{PersistRecord{TxnRecord{Txn: "n1.1", Status: StatusCommitted}}, "r/n1.1",
			"82a354786ea46e312e31a6537461747573cc02"},
		{PersistPrepare{PrepareRecord{Txn: "n1.1", State: StatePrepared, Coordinator: "n1", Holder: "n2",
			Intents: []Intent{{Key: "a", Value: []byte("v"), ExpireAtMs: 7}}, Locks: []string{"a"}}}, "p/n1.1",
			"86a354786ea46e312e31a55374617465cc01ab436f6f7264696e61746f72a26e31a6486f6c646572a26e32a7496e74656e74739184a34b6579a161a556616c7565c40176a644656c657465c2aa45787069726541744d73d30000000000000007a54c6f636b7391a161"},
		// A Committed record is a marker: no intents, no locks.
		{PersistPrepare{PrepareRecord{Txn: "n1.1", State: StateCommitted, Coordinator: "n1", Holder: "n2",
			Intents: []Intent{{Key: "a", Value: []byte("v")}}, Locks: []string{"a"}}}, "p/n1.1",
			"86a354786ea46e312e31a55374617465cc02ab436f6f7264696e61746f72a26e31a6486f6c646572a26e32a7496e74656e7473c0a54c6f636b73c0"},
		{Forget{Txn: "n1.1"}, "p/n1.1", ""},
		{ForgetRecord{Txn: "n1.1"}, "r/n1.1", ""},
	} {
		op, ok := StorageOp(tc.e)
		if !ok || string(op.Key) != tc.key || hex.EncodeToString(op.Value) != tc.val {
			t.Errorf("%T: got %v %q %x, want %q %s", tc.e, ok, op.Key, op.Value, tc.key, tc.val)
		}
	}
	for _, e := range []Effect{Send{}, ReplyClient{}} {
		if _, ok := StorageOp(e); ok {
			t.Errorf("%T writes something", e)
		}
	}
}

func TestStoredRoundTrip(t *testing.T) {
	prepared := PrepareRecord{Txn: "t1", State: StatePrepared, Coordinator: "c", Holder: "p2",
		Intents: []Intent{{Key: "a", Value: []byte("1")}, {Key: "b", Delete: true}}, Locks: []string{"a", "b", "w"}}
	aborted := PrepareRecord{Txn: "t2", State: StateAborted, Coordinator: "c", Holder: "p1"}
	record := TxnRecord{Txn: "t3", Status: StatusPending}
	var st Stored
	for _, e := range []Effect{PersistPrepare{prepared}, PersistPrepare{aborted}, PersistRecord{record}} {
		op, _ := StorageOp(e)
		if err := st.Add(op.Key, op.Value); err != nil {
			t.Fatal(err)
		}
	}
	// Keys the adapter did not write are not its business.
	if err := st.Add([]byte("x/other"), []byte{0xff}); err != nil {
		t.Fatalf("foreign key: %v", err)
	}
	if len(st.Prepares) != 2 || len(st.Records) != 1 || st.InDoubt() != 1 {
		t.Fatalf("stored %+v", st)
	}
	got := st.Prepares[0]
	if got.Txn != "t1" || got.State != StatePrepared || !slices.Equal(got.Locks, prepared.Locks) ||
		len(got.Intents) != 2 || string(got.Intents[0].Value) != "1" || !got.Intents[1].Delete {
		t.Fatalf("prepared record read back as %+v", got)
	}
	if st.Records[0] != record {
		t.Fatalf("record read back as %+v", st.Records[0])
	}
	if err := st.Add(PrepareKey("t9"), []byte{0xc1}); !errors.Is(err, ErrBadRecords) {
		t.Fatalf("undecodable value: %v, want ErrBadRecords", err)
	}
}

// Restore from storage: a Prepared record holds its keys and asks its
// holder; an Aborted marker holds nothing; a Committed marker written
// before the crash is applied and holds nothing either.
func TestStoredRestore(t *testing.T) {
	var st Stored
	for _, e := range []Effect{
		PersistPrepare{PrepareRecord{Txn: "t1", State: StatePrepared, Coordinator: "c", Holder: "p2",
			Intents: []Intent{{Key: "a", Value: []byte("1")}}, Locks: []string{"a"}}},
		PersistPrepare{PrepareRecord{Txn: "t2", State: StateAborted, Holder: "p1"}},
		PersistPrepare{PrepareRecord{Txn: "t3", State: StateCommitted, Holder: "p2",
			Intents: []Intent{{Key: "b", Value: []byte("1")}}, Locks: []string{"b"}}},
	} {
		op, _ := StorageOp(e)
		if err := st.Add(op.Key, op.Value); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := NewParticipant("p1", DefaultConfig())
	effs, err := st.Restore(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := p.Locks().Holder("a"); !ok || h != "t1" || p.Locks().Len() != 1 {
		t.Fatalf("locks after restore: a held by %q (%v), %d keys", h, ok, p.Locks().Len())
	}
	if !slices.Equal(p.Holding(), []TxID{"t1"}) || !slices.Equal(p.InDoubt(), []TxID{"t1"}) {
		t.Fatalf("holding %v, in doubt %v", p.Holding(), p.InDoubt())
	}
	if len(effs) != 1 || effs[0].(Send).Msg.Type != MsgResolve || effs[0].(Send).To != "p2" {
		t.Fatalf("effects %v, want a resolve to p2", effs)
	}
	if p.State("t2") != StateAborted || p.State("t3") != StateCommitted {
		t.Fatalf("markers restored as %s, %s", p.State("t2"), p.State("t3"))
	}
	if _, err := st.Restore(p, 0); !errors.Is(err, ErrBadRecords) {
		t.Fatalf("restoring twice: %v, want ErrBadRecords", err)
	}
}
