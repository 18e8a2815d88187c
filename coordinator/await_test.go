package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"
)

// silentFuture is a Raft future that is never answered, as one Raft drops
// at Shutdown (hashicorp/raft#498).
type silentFuture struct{ never chan struct{} }

func (f silentFuture) Error() error { <-f.never; return nil }

// TestAwaitUnansweredFuture: a wait on a future Raft never answers ends
// with the caller's context or the Coordinator's Close. Waiting with
// f.Error(), the leader loop blocked in promoteVoters and Close hung.
func TestAwaitUnansweredFuture(t *testing.T) {
	c := &Coordinator{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	f := silentFuture{never: make(chan struct{})}
	defer close(f.never)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.await(ctx, f); !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("await past the caller's deadline = %v, want ErrUnknownOutcome and DeadlineExceeded", err)
	}

	done := make(chan error, 1)
	go func() { done <- c.await(context.Background(), f) }()
	c.cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("await after close = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("await still blocked 10 s after the Coordinator closed")
	}
}
