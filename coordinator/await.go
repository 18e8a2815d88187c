package coordinator

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
)

// await waits for f under ctx and the Coordinator's lifetime.
//
// Raft does not always answer a future: one it accepted just before
// Shutdown can be dropped with no response (hashicorp/raft#498, still open),
// and a plain f.Error() then blocks forever. The leader loop blocked that
// way in promoteVoters kept Close waiting for it. await gives up when ctx
// ends or the Coordinator closes; the outcome of the command is then
// unknown (ErrUnknownOutcome), as for a lost leadership.
//
// The goroutine that reads f ends when Raft answers; for a dropped future
// it never does and stays parked on f (it holds no lock and does no work).
// That is the one goroutine Close does not wait for.
func (c *Coordinator) await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return c.mapErr(err)
	default:
	}
	select {
	case err := <-done:
		return c.mapErr(err)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
	case <-c.ctx.Done():
		return fmt.Errorf("%w: %w", ErrClosed, ErrUnknownOutcome)
	}
}
