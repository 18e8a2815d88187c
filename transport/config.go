package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a TCP transport (and, for the fields that apply, an
// Inmem one). Start from DefaultConfig.
type Config struct {
	// NodeID names this node to the peers it calls: their handlers see it
	// as from. Default: the advertised address. At most NodeIDBytesMax
	// bytes. It is claimed, not authenticated.
	NodeID string
	// BindAddr is where NewTCP listens ("host:port"; port 0 picks one).
	// Ignored by NewTCPOnListener and Inmem.
	BindAddr string
	// AdvertiseAddr is the address peers dial to reach this node. Default:
	// the listener's address, which must then not be an unspecified IP
	// (0.0.0.0 or ::).
	AdvertiseAddr string
	// FrameBytesMax bounds every frame sent or received, in
	// [FrameBytesMaxMin, FrameBytesMaxLimit]. Two peers use the smaller of
	// their limits, learned at the handshake.
	FrameBytesMax int
	// DialTimeout bounds connecting to a peer, handshake included.
	DialTimeout time.Duration
	// CallTimeout is the deadline of a call whose context has none.
	CallTimeout time.Duration
	// HandshakeTimeout bounds how long the server waits for a new
	// connection's first byte and handshake.
	HandshakeTimeout time.Duration
	// WriteTimeout: a connection whose writes make no progress for this
	// long is closed (its calls fail with ErrConnClosed).
	WriteTimeout time.Duration
	// ConnsPerPeer is the number of connections the pool keeps to each
	// peer; calls are spread over them round-robin and multiplexed on each.
	ConnsPerPeer int
	// InFlightPerConnMax bounds the calls waiting for an answer on one
	// connection; further callers wait (honouring their context) for one to
	// finish.
	InFlightPerConnMax int
	// HandlerConcurrencyMax bounds the handlers running at once on this
	// node, over all connections; a request above it is answered at once
	// with ErrBackpressure and does not run.
	HandlerConcurrencyMax int
	// ServerConnsMax bounds the inbound connections; more are closed when
	// accepted.
	ServerConnsMax int
	// PeersMax bounds the peers the pool keeps connections to. A call to a
	// new peer beyond it evicts an idle peer's connections, or fails with
	// ErrBackpressure when every peer has calls in flight.
	PeersMax int
	// Logger receives connection-level events (refused handshakes,
	// oversize or bad frames, handler panics). Default: slog.Default().
	Logger *slog.Logger
	// PeerAuth, when set, secures the connections this transport dials
	// (mutual TLS, the cluster secret) and, for NewTCP, the ones it
	// accepts. With NewTCPOnListener the PortMux accepting the
	// connections must carry the same PeerAuth (PortMuxConfig.PeerAuth).
	PeerAuth *PeerAuth
}

// DefaultConfig returns the settings dbx runs with: 64 MiB frames, 2 s to
// dial and 2 s per call unless the caller says otherwise, two connections
// per peer carrying up to 1024 calls each, and up to 4096 handlers at once.
func DefaultConfig() Config {
	return Config{
		BindAddr:              "127.0.0.1:7380",
		FrameBytesMax:         64 << 20,
		DialTimeout:           2 * time.Second,
		CallTimeout:           2 * time.Second,
		HandshakeTimeout:      5 * time.Second,
		WriteTimeout:          10 * time.Second,
		ConnsPerPeer:          2,
		InFlightPerConnMax:    1024,
		HandlerConcurrencyMax: 4096,
		ServerConnsMax:        1024,
		PeersMax:              1024,
	}
}

// Validate reports every field out of range at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if len(c.NodeID) > NodeIDBytesMax {
		bad("NodeID has %d bytes, at most %d allowed", len(c.NodeID), NodeIDBytesMax)
	}
	if c.FrameBytesMax < FrameBytesMaxMin || c.FrameBytesMax > FrameBytesMaxLimit {
		bad("FrameBytesMax (%d) must be in [%d, %d]", c.FrameBytesMax, FrameBytesMaxMin, FrameBytesMaxLimit)
	}
	durations := []struct {
		name string
		v    time.Duration
		max  time.Duration
	}{
		{"DialTimeout", c.DialTimeout, time.Minute},
		{"CallTimeout", c.CallTimeout, 24 * time.Hour},
		{"HandshakeTimeout", c.HandshakeTimeout, time.Minute},
		{"WriteTimeout", c.WriteTimeout, 10 * time.Minute},
	}
	for _, d := range durations {
		if d.v <= 0 || d.v > d.max {
			bad("%s (%s) must be in (0, %s]", d.name, d.v, d.max)
		}
	}
	ints := []struct {
		name string
		v    int
		max  int
	}{
		{"ConnsPerPeer", c.ConnsPerPeer, 64},
		{"InFlightPerConnMax", c.InFlightPerConnMax, 1 << 16},
		{"HandlerConcurrencyMax", c.HandlerConcurrencyMax, 1 << 20},
		{"ServerConnsMax", c.ServerConnsMax, 1 << 16},
		{"PeersMax", c.PeersMax, 1 << 16},
	}
	for _, f := range ints {
		if f.v < 1 || f.v > f.max {
			bad("%s (%d) must be in [1, %d]", f.name, f.v, f.max)
		}
	}
	if err := c.PeerAuth.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// PortMuxConfig configures a PortMux. Start from DefaultPortMuxConfig.
type PortMuxConfig struct {
	// FirstByteTimeout bounds the wait for a new connection's protocol
	// byte; a connection that sends nothing for this long is closed.
	FirstByteTimeout time.Duration
	// PendingMax bounds the connections waiting for their first byte; the
	// mux stops accepting while that many wait.
	PendingMax int
	// AcceptQueueMax bounds, per protocol, the routed connections not yet
	// taken by Accept. A connection that finds its queue full for
	// FirstByteTimeout is closed.
	AcceptQueueMax int
	// Logger receives refused connections. Default: slog.Default().
	Logger *slog.Logger
	// PeerAuth, when set, is run on every accepted connection, RPC and
	// Raft alike, before its protocol byte and within FirstByteTimeout:
	// a connection that fails it is closed without reaching either
	// listener.
	PeerAuth *PeerAuth
}

// DefaultPortMuxConfig returns 5 s for the first byte, 64 connections
// waiting for it and 128 routed connections queued per protocol.
func DefaultPortMuxConfig() PortMuxConfig {
	return PortMuxConfig{FirstByteTimeout: 5 * time.Second, PendingMax: 64, AcceptQueueMax: 128}
}

// Validate reports every field out of range at once.
func (c PortMuxConfig) Validate() error {
	var errs []error
	if c.FirstByteTimeout <= 0 || c.FirstByteTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("%w: FirstByteTimeout (%s) must be in (0, %s]", ErrBadConfig, c.FirstByteTimeout, time.Minute))
	}
	if c.PendingMax < 1 || c.PendingMax > 1<<12 {
		errs = append(errs, fmt.Errorf("%w: PendingMax (%d) must be in [1, %d]", ErrBadConfig, c.PendingMax, 1<<12))
	}
	if c.AcceptQueueMax < 1 || c.AcceptQueueMax > 1<<12 {
		errs = append(errs, fmt.Errorf("%w: AcceptQueueMax (%d) must be in [1, %d]", ErrBadConfig, c.AcceptQueueMax, 1<<12))
	}
	if err := c.PeerAuth.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
