// Package transporttest holds the contract every transport.Transport must
// meet, as a test suite: RunConformance runs it against the TCP transport
// and the in-memory twin alike, so tests that use the twin test what the
// cluster runs.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/transport"
)

// Errors the suite's handlers return; ErrRegistered is registered with
// transport.RegisterError under CodeRegistered.
var (
	ErrRegistered   = errors.New("transporttest: registered sentinel")
	ErrUnregistered = errors.New("transporttest: unregistered sentinel")
)

// CodeRegistered is the code of ErrRegistered.
const CodeRegistered = "transporttest.registered"

func init() { transport.RegisterError(CodeRegistered, ErrRegistered) }

// Slack is how much later than asked a call may return or a handler may
// see cancellation (the race detector and a busy machine are slow).
const Slack = 2 * time.Second

// RunConformance runs the Transport contract against pairs of transports
// made by newPair. Each subtest calls newPair once; the two transports must
// be fresh, must reach each other by LocalAddr, and should have a small
// FrameBytesMax (1 MiB keeps the size tests fast), HandlerConcurrencyMax of
// at least 200, and DialTimeout and CallTimeout of a few seconds at most.
// The suite closes both transports.
func RunConformance(t *testing.T, newPair func(t *testing.T) (a, b transport.Transport)) {
	run := func(name string, f func(t *testing.T, a, b transport.Transport)) {
		t.Run(name, func(t *testing.T) {
			a, b := newPair(t)
			t.Cleanup(func() {
				closeWithin(t, a, 10*time.Second)
				closeWithin(t, b, 10*time.Second)
			})
			f(t, a, b)
		})
	}
	run("RoundTrip", testRoundTrip)
	run("BothDirections", testBothDirections)
	run("ConcurrentMultiplexed", testConcurrent)
	run("HandlerErrors", testHandlerErrors)
	run("NotServing", testNotServing)
	run("BadMethod", testBadMethod)
	run("DeadlineHonoured", testDeadline)
	run("CancelReachesHandler", testCancel)
	run("DeadlineTravels", testDeadlineTravels)
	run("Unreachable", testUnreachable)
	run("FrameTooLarge", testFrameTooLarge)
	run("CloseServerWithCallsInFlight", testCloseServer)
	run("CloseCallerWithCallsInFlight", testCloseCaller)
	run("HandlerPanic", testPanic)
	run("Typed", testTyped)
	run("CloseIdempotent", testCloseIdempotent)
}

func closeWithin(t *testing.T, tr transport.Transport, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tr.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(d):
		t.Errorf("Close of %s did not return within %s", tr.LocalAddr(), d)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func echo(_ context.Context, _, _ string, body []byte) ([]byte, error) { return body, nil }

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testRoundTrip(t *testing.T, a, b transport.Transport) {
	type seen struct{ from, method string }
	got := make(chan seen, 10)
	b.Serve(func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
		got <- seen{from, method}
		return append([]byte("re:"), body...), nil
	})
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, 64 << 10} {
		body := randBytes(r, n)
		out, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.echo", body)
		if err != nil {
			t.Fatalf("Call with %d bytes: %v", n, err)
		}
		if want := append([]byte("re:"), body...); !bytes.Equal(out, want) {
			t.Fatalf("Call with %d bytes: got %d bytes, want %d (content differs)", n, len(out), len(want))
		}
		s := <-got
		if s.method != "test.echo" {
			t.Errorf("handler saw method %q, want test.echo", s.method)
		}
		if s.from != a.LocalAddr() {
			t.Errorf("handler saw from %q, want the caller's address %q", s.from, a.LocalAddr())
		}
	}
	// A handler returning nothing gives an empty response.
	b.Serve(func(context.Context, string, string, []byte) ([]byte, error) { return nil, nil })
	out, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.nil", []byte("x"))
	if err != nil || len(out) != 0 {
		t.Fatalf("nil response: got %q, %v; want empty, nil", out, err)
	}
}

func testBothDirections(t *testing.T, a, b transport.Transport) {
	a.Serve(func(context.Context, string, string, []byte) ([]byte, error) { return []byte("a"), nil })
	b.Serve(func(context.Context, string, string, []byte) ([]byte, error) { return []byte("b"), nil })
	for _, c := range []struct {
		from, to transport.Transport
		want     string
	}{{a, b, "b"}, {b, a, "a"}, {a, a, "a"}} {
		out, err := c.from.Call(ctxTimeout(t, 5*time.Second), c.to.LocalAddr(), "test.who", nil)
		if err != nil || string(out) != c.want {
			t.Errorf("%s → %s: got %q, %v; want %q", c.from.LocalAddr(), c.to.LocalAddr(), out, err, c.want)
		}
	}
}

func testConcurrent(t *testing.T, a, b transport.Transport) {
	// The first `held` requests wait in their handlers until all of them
	// have arrived: they can only complete if the transport carries many
	// calls at once (over one connection when the pool has one).
	const held, total = 20, 100
	var arrived atomic.Int32
	release := make(chan struct{})
	b.Serve(func(ctx context.Context, _, _ string, body []byte) ([]byte, error) {
		if bytes.HasPrefix(body, []byte("held")) {
			if arrived.Add(1) == held {
				close(release)
			}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		time.Sleep(time.Duration(body[len(body)-1]%3) * time.Millisecond) // reorder answers
		return bytes.Clone(body), nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for i := range total {
		wg.Go(func() {
			prefix := "free"
			if i < held {
				prefix = "held"
			}
			r := rand.New(rand.NewPCG(uint64(i), 7))
			body := append([]byte(fmt.Sprintf("%s-%03d-", prefix, i)), randBytes(r, 1+r.IntN(2000))...)
			out, err := a.Call(ctxTimeout(t, 10*time.Second), b.LocalAddr(), "test.echo", body)
			switch {
			case err != nil:
				errs <- fmt.Errorf("call %d: %w", i, err)
			case !bytes.Equal(out, body):
				errs <- fmt.Errorf("call %d got the answer of %q", i, out[:min(len(out), 9)])
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testHandlerErrors(t *testing.T, a, b transport.Transport) {
	b.Serve(func(_ context.Context, _, method string, _ []byte) ([]byte, error) {
		switch method {
		case "test.registered":
			return nil, fmt.Errorf("bucket 42 moved: %w", ErrRegistered)
		case "test.unregistered":
			return nil, fmt.Errorf("bucket 43: %w", ErrUnregistered)
		case "test.deadline":
			return nil, fmt.Errorf("inner call: %w", context.DeadlineExceeded)
		}
		return nil, errors.New("unexpected method")
	})
	call := func(method string) error {
		_, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), method, nil)
		if err == nil {
			t.Fatalf("%s: no error", method)
		}
		return err
	}

	err := call("test.registered")
	if !errors.Is(err, ErrRegistered) || !errors.Is(err, transport.ErrRemote) {
		t.Errorf("registered error %v: errors.Is(ErrRegistered)=%v, errors.Is(ErrRemote)=%v; want both", err, errors.Is(err, ErrRegistered), errors.Is(err, transport.ErrRemote))
	}
	var re *transport.RemoteError
	if !errors.As(err, &re) || re.Code != CodeRegistered || !strings.Contains(re.Message, "bucket 42 moved") {
		t.Errorf("registered error %v: want a *RemoteError with code %q and the handler's message", err, CodeRegistered)
	}
	if errors.Is(err, transport.ErrConnClosed) || errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("registered error %v matches a transport failure", err)
	}

	err = call("test.unregistered")
	if errors.Is(err, ErrUnregistered) || !errors.Is(err, transport.ErrRemote) || !strings.Contains(err.Error(), "bucket 43") {
		t.Errorf("unregistered error %v: want ErrRemote only, with the handler's message", err)
	}

	err = call("test.deadline")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, transport.ErrRemote) {
		t.Errorf("remote deadline error %v: want context.DeadlineExceeded and ErrRemote", err)
	}
}

func testNotServing(t *testing.T, a, b transport.Transport) {
	_, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.x", nil)
	if !errors.Is(err, transport.ErrNotServing) {
		t.Errorf("call before Serve: %v, want ErrNotServing", err)
	}
	b.Serve(echo)
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.x", nil); err != nil {
		t.Errorf("call after Serve: %v", err)
	}
	b.Serve(nil)
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.x", nil); !errors.Is(err, transport.ErrNotServing) {
		t.Errorf("call after Serve(nil): %v, want ErrNotServing", err)
	}
}

func testBadMethod(t *testing.T, a, b transport.Transport) {
	b.Serve(echo)
	for _, m := range []string{"", strings.Repeat("m", transport.MethodBytesMax+1)} {
		if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), m, nil); !errors.Is(err, transport.ErrBadMethod) {
			t.Errorf("method of %d bytes: %v, want ErrBadMethod", len(m), err)
		}
	}
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), strings.Repeat("m", transport.MethodBytesMax), nil); err != nil {
		t.Errorf("method of %d bytes: %v", transport.MethodBytesMax, err)
	}
}

// blocker serves requests by waiting for ctx to end; it reports each
// handler's start and the error of its context.
type blocker struct {
	started chan struct{}
	ended   chan error
}

func newBlocker(n int) *blocker {
	return &blocker{started: make(chan struct{}, n), ended: make(chan error, n)}
}

func (bl *blocker) handle(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
	bl.started <- struct{}{}
	<-ctx.Done()
	bl.ended <- ctx.Err()
	return nil, ctx.Err()
}

func (bl *blocker) waitStarted(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-bl.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d handlers started", i, n)
		}
	}
}

func (bl *blocker) waitEnded(t *testing.T, n int, within time.Duration) {
	t.Helper()
	for i := range n {
		select {
		case err := <-bl.ended:
			if err == nil {
				t.Errorf("handler context ended without an error")
			}
		case <-time.After(within):
			t.Fatalf("only %d of %d handlers saw their context end within %s", i, n, within)
		}
	}
}

func testDeadline(t *testing.T, a, b transport.Transport) {
	bl := newBlocker(1)
	b.Serve(bl.handle)
	const d = 200 * time.Millisecond
	start := time.Now()
	_, err := a.Call(ctxTimeout(t, d), b.LocalAddr(), "test.block", nil)
	took := time.Since(start)
	// Sent: either the caller's deadline (ErrNoReply) or the handler's
	// copy of it (ErrRemote) ends the call; both say it may have run.
	if !errors.Is(err, context.DeadlineExceeded) || !(errors.Is(err, transport.ErrNoReply) || errors.Is(err, transport.ErrRemote)) {
		t.Errorf("Call past its deadline after sending: %v, want context.DeadlineExceeded with ErrNoReply or ErrRemote", err)
	}
	if took > d+Slack {
		t.Errorf("Call with a %s deadline returned after %s", d, took)
	}
	bl.waitEnded(t, 1, Slack)
}

func testCancel(t *testing.T, a, b transport.Transport) {
	bl := newBlocker(1)
	b.Serve(bl.handle)
	ctx, cancel := context.WithCancel(ctxTimeout(t, 30*time.Second))
	done := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, b.LocalAddr(), "test.block", nil)
		done <- err
	}()
	bl.waitStarted(t, 1)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Call: %v, want context.Canceled", err)
		}
	case <-time.After(Slack):
		t.Fatal("cancelled Call did not return")
	}
	bl.waitEnded(t, 1, Slack) // long before the 30 s deadline: the cancel travelled
}

func testDeadlineTravels(t *testing.T, a, b transport.Transport) {
	left := make(chan time.Duration, 1)
	b.Serve(func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			left <- -1
		} else {
			left <- time.Until(dl)
		}
		return nil, nil
	})
	const d = 3 * time.Second
	if _, err := a.Call(ctxTimeout(t, d), b.LocalAddr(), "test.deadline", nil); err != nil {
		t.Fatal(err)
	}
	if l := <-left; l <= 0 || l > d {
		t.Errorf("handler's deadline is %s away; want within the caller's %s", l, d)
	}
}

func testUnreachable(t *testing.T, a, b transport.Transport) {
	addr := b.LocalAddr()
	closeWithin(t, b, 10*time.Second)
	start := time.Now()
	_, err := a.Call(ctxTimeout(t, 20*time.Second), addr, "test.x", nil)
	if !errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrNoReply) {
		t.Errorf("call to a closed peer: %v, want ErrUnreachable (not sent: no ErrNoReply)", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("call to a closed peer took %s", took)
	}
}

func testFrameTooLarge(t *testing.T, a, b transport.Transport) {
	var calls atomic.Int32
	b.Serve(func(_ context.Context, _, method string, body []byte) ([]byte, error) {
		calls.Add(1)
		if method == "test.big" {
			return make([]byte, b.FrameBytesMax()+1), nil
		}
		return []byte{byte(len(body))}, nil
	})
	limit := min(a.FrameBytesMax(), b.FrameBytesMax())
	start := time.Now()
	_, err := a.Call(ctxTimeout(t, 10*time.Second), b.LocalAddr(), "test.echo", make([]byte, limit+1))
	if !errors.Is(err, transport.ErrFrameTooLarge) || errors.Is(err, transport.ErrRemote) {
		t.Errorf("oversize request: %v, want a local ErrFrameTooLarge", err)
	}
	if took := time.Since(start); took > Slack {
		t.Errorf("oversize request failed after %s, want at once", took)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("oversize request ran the handler %d times", n)
	}
	// The largest body that fits goes through.
	if _, err := a.Call(ctxTimeout(t, 10*time.Second), b.LocalAddr(), "test.echo", make([]byte, limit-transport.FrameOverheadBytesMax)); err != nil {
		t.Errorf("request of FrameBytesMax-FrameOverheadBytesMax bytes: %v", err)
	}
	_, err = a.Call(ctxTimeout(t, 10*time.Second), b.LocalAddr(), "test.big", nil)
	if !errors.Is(err, transport.ErrFrameTooLarge) || !errors.Is(err, transport.ErrRemote) {
		t.Errorf("oversize response: %v, want ErrFrameTooLarge from the remote", err)
	}
	// The pair still works.
	if _, err := a.Call(ctxTimeout(t, 10*time.Second), b.LocalAddr(), "test.echo", []byte("ok")); err != nil {
		t.Errorf("call after oversize frames: %v", err)
	}
}

func testCloseServer(t *testing.T, a, b transport.Transport) {
	const n = 10
	bl := newBlocker(n)
	b.Serve(bl.handle)
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := a.Call(ctxTimeout(t, 30*time.Second), b.LocalAddr(), "test.block", nil)
			errs <- err
		}()
	}
	bl.waitStarted(t, n)
	closeWithin(t, b, 10*time.Second) // waits for the handlers, which see ctx end
	bl.waitEnded(t, n, time.Second)
	for range n {
		select {
		case err := <-errs:
			if !errors.Is(err, transport.ErrConnClosed) {
				t.Errorf("call in flight when the server closed: %v, want ErrConnClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("call in flight when the server closed did not return")
		}
	}
}

func testCloseCaller(t *testing.T, a, b transport.Transport) {
	const n = 10
	bl := newBlocker(n)
	b.Serve(bl.handle)
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := a.Call(ctxTimeout(t, 30*time.Second), b.LocalAddr(), "test.block", nil)
			errs <- err
		}()
	}
	bl.waitStarted(t, n)
	closeWithin(t, a, 10*time.Second)
	for range n {
		select {
		case err := <-errs:
			if !errors.Is(err, transport.ErrClosed) {
				t.Errorf("call in flight when the caller closed: %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("call in flight when the caller closed did not return")
		}
	}
	bl.waitEnded(t, n, 10*time.Second) // the server noticed the caller left
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.block", nil); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("call on a closed transport: %v, want ErrClosed", err)
	}
}

func testPanic(t *testing.T, a, b transport.Transport) {
	b.Serve(func(_ context.Context, _, method string, body []byte) ([]byte, error) {
		if method == "test.panic" {
			panic("test panic")
		}
		return body, nil
	})
	for range 3 {
		_, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.panic", nil)
		if !errors.Is(err, transport.ErrHandlerPanic) || !strings.Contains(err.Error(), "test panic") {
			t.Errorf("panicking handler: %v, want ErrHandlerPanic with the panic value", err)
		}
		out, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.echo", []byte("still here"))
		if err != nil || string(out) != "still here" {
			t.Errorf("call after a panic: %q, %v", out, err)
		}
	}
}

type typedReq struct {
	Key   string
	Vals  []int64
	Inner map[string][]byte
}

type typedResp struct {
	Caller string
	Sum    int64
	Echo   typedReq
}

func testTyped(t *testing.T, a, b transport.Transport) {
	r := transport.NewRouter()
	transport.Register(r, "test.sum", func(ctx context.Context, req *typedReq) (*typedResp, error) {
		if req.Key == "fail" {
			return nil, fmt.Errorf("key %q: %w", req.Key, ErrRegistered)
		}
		var s int64
		for _, v := range req.Vals {
			s += v
		}
		return &typedResp{Caller: transport.Caller(ctx), Sum: s, Echo: *req}, nil
	})
	b.Serve(r.Handle)
	req := &typedReq{Key: "k", Vals: []int64{1, -2, 1 << 40}, Inner: map[string][]byte{"x": []byte("y")}}
	resp, err := transport.Call[typedReq, typedResp](ctxTimeout(t, 5*time.Second), a, b.LocalAddr(), "test.sum", req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Sum != 1<<40-1 || resp.Caller != a.LocalAddr() || resp.Echo.Key != "k" || string(resp.Echo.Inner["x"]) != "y" {
		t.Errorf("typed call: got %+v", resp)
	}
	_, err = transport.Call[typedReq, typedResp](ctxTimeout(t, 5*time.Second), a, b.LocalAddr(), "test.sum", &typedReq{Key: "fail"})
	if !errors.Is(err, ErrRegistered) {
		t.Errorf("typed call error: %v, want ErrRegistered", err)
	}
	_, err = transport.Call[typedReq, typedResp](ctxTimeout(t, 5*time.Second), a, b.LocalAddr(), "test.missing", req)
	if !errors.Is(err, transport.ErrUnknownMethod) {
		t.Errorf("unknown method: %v, want ErrUnknownMethod", err)
	}
	_, err = a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.sum", []byte{0xdb, 0xff, 0xff, 0xff, 0xff})
	if !errors.Is(err, transport.ErrCodec) {
		t.Errorf("malformed typed request: %v, want ErrCodec", err)
	}
}

func testCloseIdempotent(t *testing.T, a, b transport.Transport) {
	b.Serve(echo)
	if _, err := a.Call(ctxTimeout(t, 5*time.Second), b.LocalAddr(), "test.x", nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		closeWithin(t, a, 10*time.Second)
		closeWithin(t, b, 10*time.Second)
	}
}
