package coordinator

import (
	"bytes"
	"io"
	"testing"

	"github.com/dbx-kv/dbx/router"
	"github.com/hashicorp/raft"
)

type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string            { return "mem" }
func (s *memSink) Close() error          { s.closed = true; return nil }
func (s *memSink) Cancel() error         { s.cancelled = true; return nil }
func (s *memSink) Reader() io.ReadCloser { return io.NopCloser(bytes.NewReader(s.Bytes())) }

func TestFSMSnapshotRestore(t *testing.T) {
	var holder router.Holder
	kicks := 0
	f := NewFSM(&holder, func() { kicks++ }, nil)
	s0, changed := f.Watch()
	for i, data := range buildLog(t) {
		f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data})
	}
	select {
	case <-changed:
	default:
		t.Fatal("Watch channel not closed after Apply")
	}
	if s0.Index() != 0 || kicks == 0 {
		t.Fatalf("published state mutated (index %d) or no notification (%d)", s0.Index(), kicks)
	}
	want := f.Current()
	if holder.Load() == nil || holder.Load().Digest() != want.Table().Digest() {
		t.Fatal("holder does not hold the current table")
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Apply after Snapshot must not leak into the snapshot.
	extra, _ := Encode(AddMember{Member: member("late", 1)})
	f.Apply(&raft.Log{Index: want.Index() + 1, Data: extra})
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("Persist: %v closed %v", err, sink.closed)
	}
	snap.Release()

	// Restore into an FSM with other state: the prior state is discarded.
	g := NewFSM(nil, nil, nil)
	for i := range 3 {
		d, _ := Encode(AddMember{Member: member("other", float64(i+1))})
		g.Apply(&raft.Log{Index: uint64(i + 1), Data: d})
	}
	if err := g.Restore(sink.Reader()); err != nil {
		t.Fatal(err)
	}
	if g.Current().Digest() != want.Digest() {
		t.Fatal("restored state differs from the snapshotted one")
	}
	if _, ok := g.Current().Member("other"); ok {
		t.Fatal("restore kept prior state")
	}
	if _, ok := g.Current().Member("late"); ok {
		t.Fatal("snapshot includes a later Apply")
	}
	// A corrupt snapshot is refused and leaves the state alone.
	b := append([]byte(nil), sink.Bytes()...)
	b[len(b)/2] ^= 1
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err == nil {
		t.Fatal("corrupt snapshot restored")
	}
	if g.Current().Digest() != want.Digest() {
		t.Fatal("failed restore changed the state")
	}
}
