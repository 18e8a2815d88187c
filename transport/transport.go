package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
)

// Handler serves one request: method and body as the caller sent them,
// from the caller's node ID (Config.NodeID, which defaults to its
// advertised address; it is claimed by the peer, not authenticated).
//
// Concurrency: a transport calls its handler concurrently, once per
// request, each call on its own goroutine, up to
// Config.HandlerConcurrencyMax at a time. ctx ends when the caller's
// deadline passes, the caller gives up (its context ends), the connection
// breaks or the transport closes; a handler must honour it, because Close
// waits for running handlers. The handler owns body; the transport owns the
// returned slice once the handler returns (do not modify it afterwards). A
// returned error travels back to the caller as a *RemoteError carrying the
// error's registered code (see RegisterError) and its message. A panic is
// recovered and answered with ErrHandlerPanic.
type Handler func(ctx context.Context, from, method string, body []byte) ([]byte, error)

// Transport carries requests between dbx nodes. TCP is the real
// implementation and Inmem its in-memory twin; both pass the conformance
// suite in package transporttest.
//
// Concurrency: every method is safe for concurrent use. Calls to the same
// peer are multiplexed over a small pool of connections; nothing orders two
// concurrent calls.
type Transport interface {
	// Call sends body to the node at addr, has method run there, and returns
	// the response body. Without a deadline on ctx, Config.CallTimeout
	// applies; the remaining time travels with the request and bounds the
	// remote handler's context. When ctx ends first, Call returns ctx.Err()
	// at once and the remote handler's context is cancelled. The error
	// classes are described with the errors of this package: ErrUnreachable
	// (not sent), ErrConnClosed (outcome unknown), *RemoteError (ran and
	// failed). The caller owns the returned slice.
	Call(ctx context.Context, addr, method string, body []byte) ([]byte, error)
	// Serve installs h as the handler for requests from now on, replacing
	// any previous one; nil stops serving (callers get ErrNotServing).
	// Requests that arrive before the first Serve get ErrNotServing.
	Serve(h Handler)
	// LocalAddr is the address peers dial to reach this transport.
	LocalAddr() string
	// FrameBytesMax is the largest frame this transport sends or accepts.
	// A request or response body must be somewhat smaller (a frame also
	// carries the method name and a small header; FrameOverheadBytesMax
	// bounds that). Callers that stream large data chunk it below this.
	FrameBytesMax() int
	// Close stops accepting requests, fails calls in flight (ErrClosed),
	// cancels running handlers' contexts and waits for every goroutine the
	// transport started, including handlers. It is idempotent.
	Close() error
}

// RemoteError is an error returned by a remote handler. Code is the code
// registered for the handler's error (see RegisterError), or "" when it
// had none; Message is the handler's error text (truncated to
// ErrorMessageBytesMax).
//
// errors.Is(err, ErrRemote) holds for every RemoteError, and
// errors.Is(err, sentinel) holds when sentinel is registered under Code in
// this process.
type RemoteError struct {
	Code    string
	Message string
}

// Error returns the message prefixed with the code.
func (e *RemoteError) Error() string {
	if e.Code == "" {
		return "transport: remote: " + e.Message
	}
	return "transport: remote [" + e.Code + "]: " + e.Message
}

// Unwrap returns ErrRemote and the sentinel registered under e.Code, if any.
func (e *RemoteError) Unwrap() []error {
	if s := lookupCode(e.Code); s != nil {
		return []error{ErrRemote, s}
	}
	return []error{ErrRemote}
}

// Codes of the errors this package registers itself. The connection-level
// errors (ErrClosed, ErrConnClosed, ErrUnreachable) are deliberately not
// registered: a handler that fails because its own outgoing call failed
// must not make the caller believe its own connection failed.
const (
	CodeBackpressure     = "transport.backpressure"
	CodeHandlerPanic     = "transport.panic"
	CodeUnknownMethod    = "transport.unknown_method"
	CodeNotServing       = "transport.not_serving"
	CodeFrameTooLarge    = "transport.frame_too_large"
	CodeCodec            = "transport.codec"
	CodeCanceled         = "context.canceled"
	CodeDeadlineExceeded = "context.deadline_exceeded"
)

// errorCodeBytesMax bounds the length of an error code.
const errorCodeBytesMax = 64

var registry struct {
	mu     sync.RWMutex
	byCode map[string]error
	order  []codedError // registration order: the first match wins when encoding
}

type codedError struct {
	code string
	err  error
}

func init() {
	RegisterError(CodeBackpressure, ErrBackpressure)
	RegisterError(CodeHandlerPanic, ErrHandlerPanic)
	RegisterError(CodeUnknownMethod, ErrUnknownMethod)
	RegisterError(CodeNotServing, ErrNotServing)
	RegisterError(CodeFrameTooLarge, ErrFrameTooLarge)
	RegisterError(CodeCodec, ErrCodec)
	RegisterError(CodeCanceled, context.Canceled)
	RegisterError(CodeDeadlineExceeded, context.DeadlineExceeded)
}

// RegisterError makes sentinel travel between nodes under code: a handler
// error for which errors.Is(err, sentinel) holds is sent with code, and on
// the caller's side the *RemoteError with that code matches sentinel with
// errors.Is. Every node must register the same codes; register in an init
// function of the package that owns the sentinel (for example
// RegisterError("server.not_owner", ErrNotOwner)). When a handler error
// matches several sentinels, the one registered first wins.
//
// It panics on an empty code, a code longer than 64 bytes, a nil sentinel,
// or a code or sentinel already registered with a different partner
// (registering the same pair again is a no-op). It is safe for concurrent
// use.
func RegisterError(code string, sentinel error) {
	if code == "" || len(code) > errorCodeBytesMax {
		panic(fmt.Sprintf("transport: RegisterError: code %q must have 1 to %d bytes", code, errorCodeBytesMax))
	}
	if sentinel == nil {
		panic("transport: RegisterError: nil error for code " + code)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.byCode == nil {
		registry.byCode = make(map[string]error)
	}
	if old, ok := registry.byCode[code]; ok {
		if old == sentinel {
			return
		}
		panic(fmt.Sprintf("transport: RegisterError: code %q already registered for %q", code, old))
	}
	for _, ce := range registry.order {
		if ce.err == sentinel {
			panic(fmt.Sprintf("transport: RegisterError: %q already registered under code %q", sentinel, ce.code))
		}
	}
	registry.byCode[code] = sentinel
	registry.order = append(registry.order, codedError{code, sentinel})
}

func lookupCode(code string) error {
	if code == "" {
		return nil
	}
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return registry.byCode[code]
}

// errorToWire returns the code and message a handler error travels with.
func errorToWire(err error) (code, msg string) {
	msg = err.Error()
	if len(msg) > ErrorMessageBytesMax {
		cut := ErrorMessageBytesMax - len("…")
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	registry.mu.RLock()
	for _, ce := range registry.order {
		if errors.Is(err, ce.err) {
			code = ce.code
			break
		}
	}
	registry.mu.RUnlock()
	if code == "" {
		// A handler forwarding another node's error keeps its code.
		var re *RemoteError
		if errors.As(err, &re) && len(re.Code) <= errorCodeBytesMax {
			code = re.Code
		}
	}
	return code, msg
}
