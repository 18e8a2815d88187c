package transport

import "errors"

// Errors returned by this package. They are wrapped with details (address,
// method, sizes); classify them with errors.Is. Several problems found at
// once are joined with errors.Join, and errors.Is matches any of them.
//
// For a caller the important split is whether a request may have run:
//
//   - ErrUnreachable, ErrFrameTooLarge (on the request), ErrBadMethod,
//     ErrClosed before sending, ErrVersionMismatch and ErrBackpressure mean
//     the handler did not run: retrying is safe.
//   - ErrConnClosed and the caller's own context errors mean the outcome is
//     unknown: the handler may have run, may be running, or may never run.
//     When the request had been sent (handed to the connection) the error
//     also matches ErrNoReply; a context error or ErrConnClosed without
//     ErrNoReply means it was never sent.
//   - ErrRemote (and every error of a *RemoteError) means the handler ran
//     and returned an error.
var (
	// ErrBadConfig reports a Config or PortMuxConfig field out of range.
	ErrBadConfig = errors.New("transport: bad config")
	// ErrClosed reports a call on, or interrupted by closing, the local
	// transport (or listener).
	ErrClosed = errors.New("transport: closed")
	// ErrConnClosed reports that the connection carrying a call broke, or
	// that the peer closed, before the answer arrived. The outcome of the
	// call is unknown. The next call redials.
	ErrConnClosed = errors.New("transport: connection closed")
	// ErrNoReply is joined to the error of a call whose request was sent
	// but whose answer never came (the connection broke, the caller's
	// context ended): the handler may have run. errors.Is also matches the
	// cause (ErrConnClosed, context.DeadlineExceeded, ...).
	ErrNoReply = errors.New("transport: sent, no reply")
	// ErrUnreachable reports that no connection to the peer could be
	// established within Config.DialTimeout (refused, timed out, handshake
	// failed, unknown address or cut link in the in-memory twin). The
	// request was not sent.
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrFrameTooLarge reports a frame above the frame size limit: a
	// request (failed before sending), a response (sent back by the server
	// instead of the response), or a length declared by a peer (the
	// connection is closed without allocating it).
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrBadFrame reports bytes on a connection that are not a valid frame
	// or break the protocol; the connection is closed.
	ErrBadFrame = errors.New("transport: bad frame")
	// ErrVersionMismatch reports a peer that speaks another protocol
	// version; the message names both versions.
	ErrVersionMismatch = errors.New("transport: protocol version mismatch")
	// ErrBadMethod reports an empty method name or one longer than
	// MethodBytesMax.
	ErrBadMethod = errors.New("transport: bad method name")
	// ErrBackpressure reports a server already running
	// Config.HandlerConcurrencyMax handlers; the request was not run.
	ErrBackpressure = errors.New("transport: backpressure")
	// ErrRemote is matched by every error a handler returned (every
	// *RemoteError): the request ran on the peer and failed there.
	ErrRemote = errors.New("transport: remote error")
	// ErrHandlerPanic reports a handler that panicked; the server recovered
	// and keeps serving.
	ErrHandlerPanic = errors.New("transport: handler panicked")
	// ErrUnknownMethod reports a method no handler is registered for
	// (returned by Router).
	ErrUnknownMethod = errors.New("transport: unknown method")
	// ErrNotServing reports a peer that has no handler installed yet (Serve
	// was not called, or was called with nil).
	ErrNotServing = errors.New("transport: peer not serving")
	// ErrCodec reports a typed request or response (Register, Call) that
	// could not be encoded or decoded.
	ErrCodec = errors.New("transport: codec error")
)
