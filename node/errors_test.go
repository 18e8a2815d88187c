package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

// TestRemoteErrSaysWhetherApplied: a forwarded request's failure tells the
// client whether it can have been applied. The old code answered "-ERR
// owner unreachable: … connection closed: EOF" for writes that had been
// applied, with the same prefix as a request that was never sent.
func TestRemoteErrSaysWhetherApplied(t *testing.T) {
	net := transport.NewInmemNetwork()
	a, err := transport.NewInmem(net, "a", transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := transport.NewInmem(net, "b", transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	block := make(chan struct{})
	defer close(block)
	started := make(chan struct{}, 8)
	b.Serve(func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
		switch method {
		case "fenced":
			return nil, fmt.Errorf("%w: bucket 7", errFenced)
		default:
			started <- struct{}{}
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil, ctx.Err()
		}
	})
	call := func(method string, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := a.Call(ctx, "b", method, nil)
		return remoteErr("n2", "b", err)
	}
	reply := func(err error) string {
		switch {
		case errors.Is(err, server.ErrNoReply):
			return "unknown"
		case errors.Is(err, server.ErrOwnerDown):
			return "not applied"
		case errors.Is(err, server.ErrTryAgain):
			return "tryagain"
		}
		return "other: " + err.Error()
	}
	// Sent, then the deadline: unknown.
	if got := reply(call("block", 50*time.Millisecond)); got != "unknown" {
		t.Errorf("deadline after sending: %s", got)
	}
	<-started
	// A fenced bucket relayed from the owner keeps its identity over the
	// wire (the forward loop waits on it) and is TRYAGAIN for the client.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, ferr := a.Call(ctx, "b", "fenced", nil)
	cancel()
	if !errors.Is(ferr, errFenced) {
		t.Errorf("fenced over the wire: %v, want errFenced", ferr)
	}
	if got := reply(remoteErr("n2", "b", ferr)); got != "tryagain" {
		t.Errorf("fenced: %s", got)
	}
	// The connection cut while the request runs: unknown.
	done := make(chan error, 1)
	go func() { done <- call("block", 5*time.Second) }()
	<-started // the request is running on b
	net.Disconnect("a", "b")
	if got := reply(<-done); got != "unknown" {
		t.Errorf("link cut after sending: %s", got)
	}
	// The owner's handler ran out of time (its copy of the deadline ends
	// first): unknown too.
	remote := fmt.Errorf("%w: %w", transport.ErrRemote, context.DeadlineExceeded)
	if got := reply(remoteErr("n2", "b", remote)); got != "unknown" {
		t.Errorf("remote deadline: %s", got)
	}
	// Never sent (the link is down): not applied.
	err = call("block", time.Second)
	if got := reply(err); got != "not applied" {
		t.Errorf("link down before sending: %s (%v)", got, err)
	}
	if !strings.Contains(err.Error(), "n2") {
		t.Errorf("error does not name the owner: %v", err)
	}
}
