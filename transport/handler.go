package transport

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// handlerSlot holds the installed handler; nil means not serving.
type handlerSlot struct{ p atomic.Pointer[Handler] }

func (s *handlerSlot) set(h Handler) {
	if h == nil {
		s.p.Store(nil)
		return
	}
	s.p.Store(&h)
}

func (s *handlerSlot) get() Handler {
	if p := s.p.Load(); p != nil {
		return *p
	}
	return nil
}

// callHandler runs h, turning a panic into ErrHandlerPanic.
func callHandler(ctx context.Context, h Handler, from string, f *frame, log *slog.Logger) (resp []byte, err error) {
	if h == nil {
		return nil, fmt.Errorf("%w: no handler installed", ErrNotServing)
	}
	defer func() {
		if r := recover(); r != nil {
			log.Error("transport: handler panicked", "method", f.method, "from", from, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("%w: method %q: %v", ErrHandlerPanic, f.method, r)
		}
	}()
	return h(ctx, from, f.method, f.body)
}

// serveRequest runs the handler for request f and returns the encoded
// reply: a response, or an error frame (handler error, panic, or a
// response above limit).
func serveRequest(ctx context.Context, h Handler, from string, f *frame, limit int, log *slog.Logger) *bytes.Buffer {
	resp, err := callHandler(ctx, h, from, f, log)
	if err == nil {
		buf, encErr := encodeFrame(&frame{id: f.id, kind: kindResponse, body: resp}, limit)
		if encErr == nil {
			return buf
		}
		err = fmt.Errorf("response to %q: %w", f.method, encErr)
	}
	return errorFrame(f.id, err, limit)
}

// errorFrame encodes the error reply to request id.
func errorFrame(id uint64, err error, limit int) *bytes.Buffer {
	code, msg := errorToWire(err)
	buf, encErr := encodeFrame(&frame{id: id, kind: kindError, code: code, msg: msg}, limit)
	if encErr != nil {
		// Unreachable: limit ≥ FrameBytesMaxMin exceeds any error frame.
		panic(fmt.Sprintf("transport: error frame does not fit: %v", encErr))
	}
	return buf
}

// replyError turns an error frame into the caller's error.
func replyError(f *frame) error {
	return &RemoteError{Code: f.code, Message: f.msg}
}

// callTimeout returns ctx with the default deadline added when it has none.
func callTimeout(ctx context.Context, def time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, def)
}

// timeLeft is the time until ctx's deadline in nanoseconds, at least 1:
// the timeout a request carries.
func timeLeft(ctx context.Context) int64 {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(int64(time.Until(dl)), 1)
}

// handlerContext is the context of a handler: it ends when base ends,
// after timeout nanoseconds (def when 0), or when cancelled.
func handlerContext(base context.Context, timeout int64, def time.Duration) (context.Context, context.CancelFunc) {
	d := time.Duration(timeout)
	if d <= 0 {
		d = def
	}
	return context.WithTimeout(base, d)
}
