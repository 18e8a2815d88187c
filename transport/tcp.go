package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TCP is the Transport dbx nodes use: msgpack frames over TCP, with
// requests multiplexed by id over a pool of Config.ConnsPerPeer
// connections per peer. See the package documentation for the protocol.
//
// Lock order: TCP.mu before a slot's mu; no I/O under either.
type TCP struct {
	cfg       Config
	log       *slog.Logger
	ln        net.Listener
	mux       *PortMux // non-nil when NewTCP made the listener
	localAddr string
	nodeID    string
	handler   handlerSlot
	handlers  chan struct{} // semaphore: running handlers
	conns     chan struct{} // semaphore: inbound connections

	// ctx is cancelled by Close: handlers' contexts and dials derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.RWMutex
		closed bool
		peers  map[string]*peer
	}
}

// NewTCP listens on cfg.BindAddr and serves RPC connections there. The
// port speaks the first-byte protocol of PortMux: Raft connections
// (ProtoRaft) are refused; use NewPortMux and NewTCPOnListener to share
// the port with Raft.
func NewTCP(cfg Config) (*TCP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BindAddr == "" {
		return nil, fmt.Errorf("%w: BindAddr is empty", ErrBadConfig)
	}
	l, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", cfg.BindAddr, err)
	}
	mcfg := DefaultPortMuxConfig()
	mcfg.FirstByteTimeout = cfg.HandshakeTimeout
	mcfg.Logger = cfg.Logger
	mcfg.PeerAuth = cfg.PeerAuth
	m, err := NewPortMux(l, mcfg)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	_ = m.Raft().Close()
	t, err := newTCP(cfg, m.RPC())
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	t.mux = m
	t.start()
	return t, nil
}

// NewTCPOnListener serves RPC connections accepted from l, which must hand
// over connections whose protocol byte (ProtoRPC) was already read, as
// PortMux.RPC does. The transport owns l: Close closes it.
// cfg.BindAddr is ignored.
func NewTCPOnListener(cfg Config, l net.Listener) (*TCP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := newTCP(cfg, l)
	if err != nil {
		return nil, err
	}
	t.start()
	return t, nil
}

func newTCP(cfg Config, l net.Listener) (*TCP, error) {
	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = l.Addr().String()
		if tcp, ok := l.Addr().(*net.TCPAddr); ok && (tcp.IP == nil || tcp.IP.IsUnspecified()) {
			return nil, fmt.Errorf("%w: listening on %s, an unspecified address: set AdvertiseAddr", ErrBadConfig, addr)
		}
	}
	nodeID := cfg.NodeID
	if nodeID == "" {
		nodeID = addr
		if len(nodeID) > NodeIDBytesMax {
			return nil, fmt.Errorf("%w: advertised address used as NodeID has %d bytes, at most %d allowed", ErrBadConfig, len(nodeID), NodeIDBytesMax)
		}
	}
	t := &TCP{
		cfg:       cfg,
		log:       cfg.logger(),
		ln:        l,
		localAddr: addr,
		nodeID:    nodeID,
		handlers:  make(chan struct{}, cfg.HandlerConcurrencyMax),
		conns:     make(chan struct{}, cfg.ServerConnsMax),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = make(map[string]*peer)
	return t, nil
}

func (t *TCP) start() {
	t.goFunc(t.acceptLoop)
}

// goFunc runs f on a goroutine Close waits for; it reports false, without
// running f, once the transport is closed.
func (t *TCP) goFunc(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return false
	}
	t.wg.Go(f)
	return true
}

// LocalAddr returns the advertised address.
func (t *TCP) LocalAddr() string { return t.localAddr }

// FrameBytesMax returns Config.FrameBytesMax.
func (t *TCP) FrameBytesMax() int { return t.cfg.FrameBytesMax }

// Serve installs h; see Transport.
func (t *TCP) Serve(h Handler) { t.handler.set(h) }

// Close implements Transport.
func (t *TCP) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	t.mu.Unlock()

	// Every connection shuts down when t.ctx ends (see newWire), which
	// fails the calls in flight and cancels the handlers.
	t.cancel()
	err := t.ln.Close()
	if t.mux != nil {
		err = t.mux.Close()
	}
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (t *TCP) isClosed() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.closed
}

// Call implements Transport.
func (t *TCP) Call(ctx context.Context, addr, method string, body []byte) ([]byte, error) {
	if err := checkMethod(method); err != nil {
		return nil, err
	}
	if len(body)+len(method) > t.cfg.FrameBytesMax {
		return nil, fmt.Errorf("%w: request of %d bytes to %s exceeds the limit of %d bytes", ErrFrameTooLarge, len(body), addr, t.cfg.FrameBytesMax)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := callTimeout(ctx, t.cfg.CallTimeout)
	defer cancel()
	c, err := t.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.call(ctx, method, body)
}

// peer is the pool of connections to one address.
type peer struct {
	addr  string
	next  atomic.Uint32
	slots []slot
}

// slot holds one pooled connection, or the dial that will provide it.
type slot struct {
	mu   sync.Mutex
	c    *clientConn
	dial *dialAttempt
}

type dialAttempt struct {
	done chan struct{}
	c    *clientConn
	err  error
}

func (p *peer) wires() []*wire {
	var ws []*wire
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		if s.c != nil {
			ws = append(ws, s.c.w)
		}
		s.mu.Unlock()
	}
	return ws
}

// idle reports whether no call is in flight on p's connections.
func (p *peer) idle() bool {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		busy := s.dial != nil || (s.c != nil && s.c.inFlight() > 0)
		s.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// peerFor returns the pool of addr, making room under PeersMax.
func (t *TCP) peerFor(addr string) (*peer, error) {
	t.mu.RLock()
	p, closed := t.mu.peers[addr], t.mu.closed
	t.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if p != nil {
		return p, nil
	}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if p = t.mu.peers[addr]; p != nil {
		t.mu.Unlock()
		return p, nil
	}
	var evicted []*wire
	if len(t.mu.peers) >= t.cfg.PeersMax {
		for a, q := range t.mu.peers {
			if q.idle() {
				evicted = q.wires()
				delete(t.mu.peers, a)
				break
			}
		}
		if len(t.mu.peers) >= t.cfg.PeersMax {
			t.mu.Unlock()
			return nil, fmt.Errorf("%w: %d peers with calls in flight (PeersMax), cannot call %s", ErrBackpressure, t.cfg.PeersMax, addr)
		}
	}
	p = &peer{addr: addr, slots: make([]slot, t.cfg.ConnsPerPeer)}
	t.mu.peers[addr] = p
	t.mu.Unlock()
	for _, w := range evicted {
		w.shutdown(fmt.Errorf("%w: idle connection evicted (PeersMax)", ErrConnClosed))
	}
	return p, nil
}

// conn returns a live pooled connection to addr, dialing when its slot
// has none. One dial per slot runs at a time; callers wait for it while
// ctx allows.
func (t *TCP) conn(ctx context.Context, addr string) (*clientConn, error) {
	p, err := t.peerFor(addr)
	if err != nil {
		return nil, err
	}
	s := &p.slots[int(p.next.Add(1))%len(p.slots)]
	s.mu.Lock()
	if c := s.c; c != nil && !c.w.closed() {
		s.mu.Unlock()
		return c, nil
	}
	a, start := s.dial, false
	if a == nil {
		a, start = &dialAttempt{done: make(chan struct{})}, true
		s.dial = a
	}
	s.mu.Unlock()
	// goFunc takes t.mu, which is never taken under a slot's mu.
	if start && !t.goFunc(func() { t.runDial(addr, s, a) }) {
		t.finishDial(s, a, nil, ErrClosed)
	}
	select {
	case <-a.done:
		return a.c, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *TCP) runDial(addr string, s *slot, a *dialAttempt) {
	c, err := t.dial(addr)
	t.finishDial(s, a, c, err)
}

func (t *TCP) finishDial(s *slot, a *dialAttempt, c *clientConn, err error) {
	s.mu.Lock()
	if err == nil {
		s.c = c
	}
	s.dial = nil
	a.c, a.err = c, err
	s.mu.Unlock()
	close(a.done)
}

// dial connects to addr and runs the handshake, all within DialTimeout.
func (t *TCP) dial(addr string) (*clientConn, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	nc, err := d.DialContext(t.ctx, "tcp", addr)
	if err != nil {
		if t.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnreachable, addr, err)
	}
	sc, err := t.cfg.PeerAuth.client(t.ctx, nc, addr, time.Now().Add(t.cfg.DialTimeout))
	if err != nil {
		_ = nc.Close()
		if t.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	nc = sc
	c, err := t.handshake(nc, addr)
	if err != nil {
		_ = nc.Close()
		if t.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, err
	}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		_ = nc.Close()
		return nil, ErrClosed
	}
	t.wg.Go(c.w.writeLoop)
	t.wg.Go(c.readLoop)
	t.mu.Unlock()
	return c, nil
}

func (t *TCP) handshake(nc net.Conn, addr string) (*clientConn, error) {
	stop := context.AfterFunc(t.ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := nc.SetDeadline(time.Now().Add(t.cfg.DialTimeout)); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, err)
	}
	out := append([]byte{ProtoRPC}, encodeHello(&hello{
		version:       ProtocolVersion,
		nodeID:        t.nodeID,
		frameBytesMax: uint64(t.cfg.FrameBytesMax),
	})...)
	if _, err := nc.Write(out); err != nil {
		return nil, fmt.Errorf("%w: handshake with %s: %w", ErrUnreachable, addr, err)
	}
	br := newReader(nc)
	b, err := readFrame(br, handshakeBytesMax)
	if err != nil {
		// With TLS 1.3 the server checks the client's certificate after
		// the dialer's side of the TLS handshake ended: its refusal
		// arrives here, as an alert.
		// crypto/tls reports a peer's alert as a *net.OpError "remote error".
		if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Op == "remote error" {
			err = fmt.Errorf("%w: tls: %w", ErrPeerAuth, err)
		}
		return nil, fmt.Errorf("%w: handshake with %s: %w", ErrUnreachable, addr, err)
	}
	h, err := decodeHello(b)
	if err != nil {
		return nil, fmt.Errorf("%w: handshake with %s: %w", ErrUnreachable, addr, err)
	}
	if h.version != ProtocolVersion {
		return nil, fmt.Errorf("%w: %s speaks protocol version %d, this node speaks %d", ErrVersionMismatch, addr, h.version, ProtocolVersion)
	}
	if h.err != "" {
		return nil, fmt.Errorf("%w: %s refused the connection: %s", ErrUnreachable, addr, h.err)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, err)
	}
	limit := min(t.cfg.FrameBytesMax, int(min(h.frameBytesMax, FrameBytesMaxLimit)))
	if limit < FrameBytesMaxMin {
		return nil, fmt.Errorf("%w: %s announced a frame limit of %d bytes, below the minimum %d", ErrBadFrame, addr, h.frameBytesMax, FrameBytesMaxMin)
	}
	return newClientConn(t, nc, br, addr, limit), nil
}
