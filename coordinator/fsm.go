package coordinator

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/dbx-kv/dbx/router"
	"github.com/hashicorp/raft"
)

// FSM adapts State to raft.FSM and publishes every new state to readers.
//
// Concurrency (raft's rules): Apply, Restore and Snapshot are called from
// Raft's FSM goroutine, one at a time; Persist and Release of a snapshot run
// on another goroutine, concurrently with later Applies — which is safe
// because a snapshot holds an immutable *State. Current and Watch may be
// called from any goroutine at any time and never block on Apply.
type FSM struct {
	cur    atomic.Pointer[State]
	holder *router.Holder // optional; gets every new table
	log    *slog.Logger
	notify func() // optional; called after every new state, must not block

	mu      sync.Mutex    // guards changed (and orders publishes)
	changed chan struct{} // closed when cur is replaced
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM holding the empty state. holder, if not nil, is
// updated with every new placement table; notify, if not nil, is called
// (on the FSM goroutine, so it must not block) after every new state.
func NewFSM(holder *router.Holder, notify func(), log *slog.Logger) *FSM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FSM{holder: holder, notify: notify, log: log, changed: make(chan struct{})}
	f.cur.Store(NewState())
	return f
}

// Current returns the latest applied state. It never blocks.
func (f *FSM) Current() *State { return f.cur.Load() }

// Watch returns the latest applied state and a channel that is closed as
// soon as a newer state is published.
func (f *FSM) Watch() (*State, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur.Load(), f.changed
}

func (f *FSM) publish(next *State) {
	prev := f.cur.Load()
	// The router gets the table before anyone can see the state: a source
	// that lifts its fence when it sees a move's switch wakes writes that
	// route again at once, and they must route by the new table.
	if t := next.Table(); f.holder != nil && t != nil && t != prev.Table() {
		if err := f.holder.Store(t); err != nil {
			f.log.Warn("coordinator: placement not published to the router", "epoch", t.Epoch(), "err", err)
		}
	}
	f.mu.Lock()
	f.cur.Store(next)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if f.notify != nil {
		f.notify()
	}
}

// Apply applies a committed log entry and returns its Result.
func (f *FSM) Apply(l *raft.Log) any {
	next, res := f.cur.Load().Apply(l.Index, l.Data)
	if res.Err != nil {
		f.log.Debug("coordinator: command rejected", "index", l.Index, "err", res.Err)
	}
	f.publish(next)
	return res
}

// Snapshot captures the current state. It returns at once: the state is
// immutable, so Persist can encode it later without a lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return fsmSnapshot{s: f.cur.Load()}, nil
}

// Restore replaces the state with the one read from rc, discarding the
// prior state entirely.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	s, err := ParseState(data)
	if err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	f.publish(s)
	return nil
}

type fsmSnapshot struct{ s *State }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	data, err := s.s.MarshalBinary()
	if err == nil {
		_, err = sink.Write(data)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("coordinator: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}
