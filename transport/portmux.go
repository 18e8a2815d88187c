package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// PortMux shares one listening port between dbx RPC and Raft: it reads the
// first byte of every accepted connection and hands the connection, with
// that byte consumed, to the listener of its protocol (RPC for ProtoRPC,
// Raft for ProtoRaft). Connections that send another byte, or nothing
// within FirstByteTimeout, are closed.
//
// Concurrency: one goroutine accepts; up to PendingMax goroutines wait for
// first bytes. Accept on either listener may be called concurrently.
// Closing one listener closes only that protocol (its later connections are
// closed when routed); Close closes the port, both listeners, and waits for
// the mux's goroutines.
type PortMux struct {
	ln      net.Listener
	cfg     PortMuxConfig
	log     *slog.Logger
	rpc     *muxListener
	raft    *muxListener
	pending chan struct{} // semaphore: connections waiting for their first byte
	ctx     context.Context
	cancel  context.CancelFunc
	done    <-chan struct{} // ctx.Done(): closed by Close
	once    sync.Once
	wg      sync.WaitGroup

	mu  sync.Mutex
	err error // why accepting stopped

	refusals refusalLog // rate-limits the log of unauthenticated connections
}

// refusalLog lets one refused-connection warning a second through and
// counts the others, so a flood of forged connections cannot flood the
// log.
type refusalLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many were suppressed since
// the last one logged.
func (r *refusalLog) allow(now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}

// NewPortMux starts routing the connections l accepts. The mux owns l.
func NewPortMux(l net.Listener, cfg PortMuxConfig) (*PortMux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &PortMux{
		ln:      l,
		cfg:     cfg,
		log:     cfg.Logger,
		pending: make(chan struct{}, cfg.PendingMax),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.done = m.ctx.Done()
	if m.log == nil {
		m.log = slog.Default()
	}
	m.rpc = newMuxListener(m, ProtoRPC)
	m.raft = newMuxListener(m, ProtoRaft)
	m.wg.Go(m.acceptLoop)
	return m, nil
}

// RPC returns the listener of ProtoRPC connections, for NewTCPOnListener.
func (m *PortMux) RPC() net.Listener { return m.rpc }

// Raft returns the listener of ProtoRaft connections, for a Raft stream
// layer (see RaftStreamLayer).
func (m *PortMux) Raft() net.Listener { return m.raft }

// Addr returns the address of the shared port.
func (m *PortMux) Addr() net.Addr { return m.ln.Addr() }

// Close closes the port and both listeners, and waits for the mux's
// goroutines. Connections already handed out stay open.
func (m *PortMux) Close() error {
	var err error
	m.once.Do(func() {
		m.cancel()
		err = m.ln.Close()
		m.wg.Wait()
		m.rpc.drain()
		m.raft.drain()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (m *PortMux) acceptLoop() {
	var backoff time.Duration
	for {
		select {
		case m.pending <- struct{}{}:
		case <-m.done:
			return
		}
		nc, err := m.ln.Accept()
		if err != nil {
			<-m.pending
			select {
			case <-m.done:
				return
			default:
			}
			if !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors or similar: wait and retry.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				m.log.Warn("transport: port mux accept failed", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-m.done:
					return
				}
			}
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			m.log.Error("transport: port mux stops accepting", "err", err)
			close(m.rpc.failed)
			close(m.raft.failed)
			return
		}
		backoff = 0
		m.wg.Go(func() {
			defer func() { <-m.pending }()
			m.route(nc)
		})
	}
}

// route reads nc's protocol byte and queues nc on its listener.
func (m *PortMux) route(nc net.Conn) {
	var b [1]byte
	deadline := time.Now().Add(m.cfg.FirstByteTimeout)
	if m.cfg.PeerAuth.Enabled() {
		sc, err := m.cfg.PeerAuth.server(m.ctx, nc, deadline)
		if err != nil {
			if ok, suppressed := m.refusals.allow(time.Now()); ok && m.ctx.Err() == nil {
				m.log.Warn("transport: port mux refused a connection that did not authenticate", "remote", nc.RemoteAddr().String(), "err", err, "refused_unlogged", suppressed)
			}
			_ = nc.Close()
			return
		}
		nc = sc
	}
	err := nc.SetReadDeadline(deadline)
	if err == nil {
		// Close interrupts the wait.
		stop := context.AfterFunc(m.ctx, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })
		_, err = nc.Read(b[:])
		stop()
	}
	if err == nil {
		err = nc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		m.log.Debug("transport: port mux dropped a connection before its protocol byte", "remote", nc.RemoteAddr().String(), "err", err)
		_ = nc.Close()
		return
	}
	var l *muxListener
	switch b[0] {
	case ProtoRPC:
		l = m.rpc
	case ProtoRaft:
		l = m.raft
	default:
		m.log.Warn("transport: port mux refused a connection with an unknown protocol byte", "remote", nc.RemoteAddr().String(), "byte", fmt.Sprintf("%#02x", b[0]))
		_ = nc.Close()
		return
	}
	l.queue(nc, m.cfg.FirstByteTimeout)
}

// muxListener is the listener of one protocol of a PortMux.
type muxListener struct {
	m      *PortMux
	proto  byte
	q      chan net.Conn
	closed chan struct{} // closed by Close
	failed chan struct{} // closed when the port stops accepting
	once   sync.Once
}

func newMuxListener(m *PortMux, proto byte) *muxListener {
	return &muxListener{
		m:      m,
		proto:  proto,
		q:      make(chan net.Conn, m.cfg.AcceptQueueMax),
		closed: make(chan struct{}),
		failed: make(chan struct{}),
	}
}

// queue hands nc to Accept, waiting up to wait for room.
func (l *muxListener) queue(nc net.Conn, wait time.Duration) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case l.q <- nc:
		select {
		case <-l.closed: // closed meanwhile: do not strand nc
			l.drain()
		case <-l.m.done:
			l.drain()
		default:
		}
		return
	case <-l.closed:
	case <-l.m.done:
	case <-timer.C:
		l.m.log.Warn("transport: port mux accept queue full, dropping a connection", "proto", string(l.proto), "accept_queue_max", l.m.cfg.AcceptQueueMax)
	}
	_ = nc.Close()
}

// drain closes the connections waiting in the queue.
func (l *muxListener) drain() {
	for {
		select {
		case nc := <-l.q:
			_ = nc.Close()
		default:
			return
		}
	}
}

// Accept waits for the next connection of this protocol.
func (l *muxListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.q:
		return nc, nil
	default:
	}
	select {
	case nc := <-l.q:
		return nc, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.m.done:
		return nil, net.ErrClosed
	case <-l.failed:
		l.m.mu.Lock()
		err := l.m.err
		l.m.mu.Unlock()
		return nil, fmt.Errorf("transport: port mux stopped accepting: %w", err)
	}
}

// Close stops this protocol's listener; the port and the other protocol
// keep working.
func (l *muxListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.drain()
	})
	return nil
}

// Addr returns the shared port's address.
func (l *muxListener) Addr() net.Addr { return l.m.ln.Addr() }

// DialRaft connects to the port at addr as a Raft stream: it writes
// ProtoRaft first, so the peer's PortMux routes the connection to its Raft
// listener. timeout bounds the connect and that write.
func DialRaft(addr string, timeout time.Duration) (net.Conn, error) {
	return DialRaftAuth(addr, timeout, nil)
}

// DialRaftAuth is DialRaft with the dialer's side of auth (mutual TLS,
// the cluster secret) run before the protocol byte; timeout bounds it
// too. A nil auth is DialRaft.
func DialRaftAuth(addr string, timeout time.Duration, auth *PeerAuth) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("%w: dial raft %s: %w", ErrUnreachable, addr, err)
	}
	sc, err := auth.client(context.Background(), nc, addr, deadline)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: dial raft %s: %w", ErrUnreachable, addr, err)
	}
	nc = sc
	if err := nc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: dial raft %s: %w", ErrUnreachable, addr, err)
	}
	if _, err := nc.Write([]byte{ProtoRaft}); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: dial raft %s: %w", ErrUnreachable, addr, err)
	}
	if err := nc.SetWriteDeadline(time.Time{}); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: dial raft %s: %w", ErrUnreachable, addr, err)
	}
	return nc, nil
}

// RaftStreamLayer carries Raft over the shared port: Accept, Close and
// Addr serve the PortMux's Raft listener, and DialAddr dials with
// DialRaft. It is everything hashicorp/raft's StreamLayer needs except the
// Dial signature, whose parameter type raft.ServerAddress this package does
// not import; the coordinator adapts it in three lines:
//
//	type raftStream struct{ *transport.RaftStreamLayer }
//
//	func (s raftStream) Dial(a raft.ServerAddress, d time.Duration) (net.Conn, error) {
//		return s.DialAddr(string(a), d)
//	}
//
//	trans := raft.NewNetworkTransport(raftStream{transport.NewRaftStreamLayer(pm.Raft(), adv)}, 3, 10*time.Second, os.Stderr)
type RaftStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	auth      *PeerAuth
}

// NewRaftStreamLayer serves Raft on ln (usually PortMux.Raft) and
// advertises advertise, the address other nodes dial (it must not be an
// unspecified IP; Raft refuses those). A nil advertise means ln.Addr().
func NewRaftStreamLayer(ln net.Listener, advertise net.Addr) *RaftStreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &RaftStreamLayer{ln: ln, advertise: advertise}
}

// NewRaftStreamLayerAuth is NewRaftStreamLayer whose dials run auth (see
// DialRaftAuth). The PortMux behind ln must carry the same PeerAuth: it
// authenticates the connections Accept returns.
func NewRaftStreamLayerAuth(ln net.Listener, advertise net.Addr, auth *PeerAuth) *RaftStreamLayer {
	s := NewRaftStreamLayer(ln, advertise)
	s.auth = auth
	return s
}

// Accept waits for the next Raft connection.
func (s *RaftStreamLayer) Accept() (net.Conn, error) { return s.ln.Accept() }

// Close closes the Raft listener (not the shared port).
func (s *RaftStreamLayer) Close() error { return s.ln.Close() }

// Addr returns the advertised address.
func (s *RaftStreamLayer) Addr() net.Addr { return s.advertise }

// DialAddr opens a Raft connection to address (see DialRaftAuth).
func (s *RaftStreamLayer) DialAddr(address string, timeout time.Duration) (net.Conn, error) {
	return DialRaftAuth(address, timeout, s.auth)
}
