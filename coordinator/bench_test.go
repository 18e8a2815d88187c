package coordinator

import (
	"fmt"
	"testing"

	"github.com/dbx-kv/dbx/replica"
)

// benchState is a placed 8-node state holding data, with a migration
// target (a ninth node) so FinishMove has work.
func benchState(b *testing.B) *stepper {
	st := newStepper(b)
	for i := range 8 {
		id := fmt.Sprintf("n%d", i)
		st.s, _ = st.s.ApplyCommand(st.s.Index()+1, AddMember{Member: member(id, 1)})
		st.s, _ = st.s.ApplyCommand(st.s.Index()+1, SetState{ID: id, State: StateActive})
	}
	cmd, _, err := Plan(st.s, testPlacement())
	if err != nil {
		b.Fatal(err)
	}
	st.s, _ = st.s.ApplyCommand(st.s.Index()+1, cmd)
	st.s, _ = st.s.ApplyCommand(st.s.Index()+1, MarkHasData{})
	return st
}

// BenchmarkApplySetWeight is the clone path: a small command on a placed
// state (every Apply clones the State twice when rejected, once when not).
func BenchmarkApplySetWeight(b *testing.B) {
	st := benchState(b)
	data, _ := Encode(SetWeight{ID: "n1", Weight: 1})
	s := st.s
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s, _ = s.Apply(uint64(i)+100, data)
	}
}

// BenchmarkApplyFinishMove switches one bucket's owner: a new table.
func BenchmarkApplyFinishMove(b *testing.B) {
	st := benchState(b)
	st.s, _ = st.s.ApplyCommand(st.s.Index()+1, AddMember{Member: member("n8", 1)})
	st.s, _ = st.s.ApplyCommand(st.s.Index()+1, SetState{ID: "n8", State: StateActive})
	cmd, _, err := Plan(st.s, testPlacement())
	if err != nil {
		b.Fatal(err)
	}
	st.s, _ = st.s.ApplyCommand(st.s.Index()+1, cmd)
	p := st.s.Pending()[0]
	start, _ := Encode(StartMove{Token: "m", From: st.s.Table().OwnerOfBucket(p), To: st.s.Target().OwnerOfBucket(p), Buckets: []uint16{p}})
	finish, _ := Encode(FinishMove{Token: "m"})
	s, _ := st.s.Apply(st.s.Index()+1, start)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Apply(uint64(i)+100, finish)
	}
}

// BenchmarkApplyChangeReplicas commits one bucket's next epoch (an RF-1
// primary's restart bump): the replica metadata's copy on write.
func BenchmarkApplyChangeReplicas(b *testing.B) {
	st := benchState(b)
	data, _ := Encode(ChangeReplicas{Changes: []replica.Change{rf1Change(st.s, 42)}})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		st.s.Apply(uint64(i)+100, data)
	}
}
