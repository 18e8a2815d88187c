// Package transport is dbx's node-to-node RPC: it moves request and
// response bytes between nodes, and nothing else.
//
// It owns the connections between nodes (dialing, pooling, multiplexing,
// framing, the version handshake, deadlines, cancellation, size limits),
// the sharing of the RPC port with Raft, and an in-memory twin for tests.
// It must not know what messages mean: methods are opaque names, bodies
// opaque bytes, and errors travel as a code and a text. Routing keys to
// nodes is router's job, retrying is the caller's, and the Raft protocol
// itself stays in hashicorp/raft (this package only carries its bytes).
//
// # Use
//
//	t, err := transport.NewTCP(cfg)           // or NewTCPOnListener(cfg, portMux.RPC())
//	r := transport.NewRouter()
//	transport.Register(r, "kv.get", func(ctx context.Context, req *GetReq) (*GetResp, error) { … })
//	t.Serve(r.Handle)
//	resp, err := transport.Call[GetReq, GetResp](ctx, t, peerAddr, "kv.get", &GetReq{Key: k})
//	switch {
//	case errors.Is(err, server.ErrNotOwner):     // the handler's sentinel, registered with RegisterError
//	case errors.Is(err, transport.ErrUnreachable): // not sent: retry elsewhere
//	case errors.Is(err, transport.ErrNoReply):     // sent, no answer: outcome unknown
//	case errors.Is(err, transport.ErrConnClosed):  // outcome unknown
//	}
//
// The byte-level Transport.Call and Handler are the stable boundary; Router,
// Register and Call are conveniences over them. Tests use
// NewInmem(network, addr, cfg) in place of NewTCP; transporttest.RunConformance
// holds both to one contract.
//
// Caller duties: give every call a context deadline (otherwise
// Config.CallTimeout applies); treat ErrConnClosed and context errors as
// "outcome unknown" (make retried methods idempotent) — a failure after the
// request was handed to the connection also matches ErrNoReply, so one
// without it (and without ErrRemote) was never sent; keep bodies below
// FrameBytesMax()-FrameOverheadBytesMax and chunk bulk data (bucket
// snapshots) into several calls; register every sentinel error that must be
// classified across nodes with RegisterError on every node, in init.
// Handler duties: honour ctx (Close waits for handlers), do not keep or
// modify the response slice after returning.
//
// # Port sharing
//
// One TCP port carries RPC and Raft. The dialer writes one protocol byte
// first: ProtoRPC ('D') or ProtoRaft ('R'). PortMux reads it (within
// PortMuxConfig.FirstByteTimeout; anything else is closed) and hands the
// connection, without that byte, to PortMux.RPC() or PortMux.Raft():
//
//	ln, _ := net.Listen("tcp", ":7380")
//	pm, _ := transport.NewPortMux(ln, transport.DefaultPortMuxConfig())
//	rpc, _ := transport.NewTCPOnListener(cfg, pm.RPC())
//	stream := transport.NewRaftStreamLayer(pm.Raft(), advertiseTCPAddr) // see its doc for the 3-line raft adapter
//
// NewTCP(cfg) does the same on its own listener with the Raft side closed.
//
// # Peer authentication
//
// A PeerAuth (Config.PeerAuth and PortMuxConfig.PeerAuth, the same on
// both, and NewRaftStreamLayerAuth for Raft's dials) secures every
// connection on the port before its protocol byte, in both directions:
// mutual TLS (ServerTLS/ClientTLS) and/or a cluster secret proven with an
// HMAC-SHA256 challenge-response (the handshake is in PeerAuth's
// documentation). The port mux runs the server side on every accepted
// connection, so RPC and Raft are covered alike; a connection that fails
// is closed before the RPC handshake frame or Raft ever sees it, and the
// dialer gets ErrUnreachable (with ErrPeerAuth when the refusal is
// known to be about credentials).
//
// # Wire protocol (version 1)
//
// After ProtoRPC the dialer sends a handshake frame {magic "dbx", protocol
// version, node ID, frame limit}; the server answers with its own, or with
// an error text and closes (ErrVersionMismatch names both versions). Both
// sides then use the smaller frame limit. Every frame is a 4-byte
// big-endian length and a msgpack array [id, kind, method, timeout, body,
// code, message]; kinds are request, response, error and cancel. Requests
// carry ids chosen by the dialer, unique per connection, so many calls share
// a connection and answers come back in any order; an answer for an id
// nobody waits for (the caller gave up) is dropped. The timeout is the
// caller's remaining time in nanoseconds, not an absolute deadline, so
// clocks need not agree. When a caller's context ends, Call returns at once
// and a cancel frame tells the server to cancel that handler's context.
//
// # Limits
//
// Everything is bounded: frame size (Config.FrameBytesMax ≤ 1 GiB, checked
// before sending, and on receipt before allocating: a declared length above
// the limit closes the connection; large frames grow as their bytes
// arrive), calls in flight per connection (callers wait), connections per
// peer, peers pooled, inbound connections, running handlers (more are
// refused with ErrBackpressure), the port mux's pending and queued
// connections, method names, node IDs, error texts, and the nesting and
// declared lengths of msgpack bodies decoded by Register and Call.
//
// # Concurrency
//
// All exported methods are safe for concurrent use (see each type's
// comment). A TCP transport starts one goroutine per listener, two per
// connection (reader and writer; callers never do I/O) and one per running
// handler, all through a helper that Close waits for.
//
// # Caveats
//
//   - Without a PeerAuth there is no authentication and no encryption:
//     anyone who can connect can call every method. With the cluster
//     secret alone, only each connection's start is authenticated (an
//     on-path attacker can read or hijack the traffic); use TLS against
//     one. Either way the node ID a peer presents is claimed, not proven:
//     every holder of the secret or of a peer-CA certificate may claim any
//     ID.
//   - A broken connection fails every call in flight on it with
//     ErrConnClosed: the outcome of those calls is unknown. Nothing is
//     retried here.
//   - Cancellation is best effort: a cancel frame is dropped when the
//     connection's queue is full, and a handler that ignores ctx runs on
//     (and delays Close). The deadline sent with the request still ends the
//     handler's context.
//   - A busy server answers ErrBackpressure rather than queueing; callers
//     decide whether to retry.
//   - Calls on one connection are independent: there is no ordering
//     between concurrent calls, and a huge request or response delays the
//     frames queued behind it on that connection (head-of-line blocking).
//     The queued bytes per connection are bounded only by
//     InFlightPerConnMax × FrameBytesMax.
//   - Failed dials are not remembered: every call to a dead peer dials
//     again (at most one dial per pooled connection at a time, each bounded
//     by DialTimeout).
//   - The sentinel registry of RegisterError is process-wide; codes must be
//     the same on every node. An error without a registered code reaches the
//     caller as a *RemoteError that matches only ErrRemote.
//   - RaftStreamLayer cannot satisfy raft.StreamLayer by itself (this
//     package does not import hashicorp/raft); see its documentation for the
//     adapter.
//   - The in-memory twin models links, not sockets: it has no connection
//     pool, no per-connection in-flight bound and no handshake, and a cut
//     link fails at once instead of after DialTimeout.
package transport
