package transport

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// InmemNetwork connects Inmem transports inside one process, for tests of
// whole clusters: links can be cut (Disconnect, Partition) and mended
// (Reconnect, Heal), and each direction of a link can be given a delay.
// Every message is encoded and decoded with the TCP frame codec, so sizes,
// limits and buffer ownership behave as on the network.
//
// Concurrency: all methods are safe for concurrent use, also concurrently
// with calls in flight.
type InmemNetwork struct {
	mu     sync.Mutex
	nodes  map[string]*Inmem
	links  map[[2]string]*inmemLink    // by sorted address pair
	delays map[[2]string]time.Duration // by (from, to)
}

// inmemLink is the state of the link between two addresses. Its context
// ends when the link is cut, which fails the calls in flight over it.
type inmemLink struct {
	down   bool
	ctx    context.Context
	cancel context.CancelFunc
}

// NewInmemNetwork returns a network without transports.
func NewInmemNetwork() *InmemNetwork {
	return &InmemNetwork{
		nodes:  make(map[string]*Inmem),
		links:  make(map[[2]string]*inmemLink),
		delays: make(map[[2]string]time.Duration),
	}
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Disconnect cuts the link between a and b in both directions: calls in
// flight over it fail with ErrConnClosed and their handlers are cancelled;
// new calls fail with ErrUnreachable until Reconnect or Heal.
func (n *InmemNetwork) Disconnect(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cutLocked(a, b)
}

func (n *InmemNetwork) cutLocked(a, b string) {
	k := pair(a, b)
	if l := n.links[k]; l != nil && !l.down {
		l.cancel()
	}
	n.links[k] = &inmemLink{down: true}
}

// Reconnect mends the link between a and b.
func (n *InmemNetwork) Reconnect(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := pair(a, b)
	if l := n.links[k]; l != nil && l.down {
		delete(n.links, k)
	}
}

// Partition cuts every link between addresses of different groups. Links
// within a group, and of addresses in no group, are left as they are.
func (n *InmemNetwork) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					n.cutLocked(a, b)
				}
			}
		}
	}
}

// Heal mends every cut link.
func (n *InmemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, l := range n.links {
		if l.down {
			delete(n.links, k)
		}
	}
}

// SetDelay delays every message from one address to another by d (0
// removes the delay). Requests and responses are delayed separately, so a
// round trip between a and b takes the sum of both directions' delays.
func (n *InmemNetwork) SetDelay(from, to string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d <= 0 {
		delete(n.delays, [2]string{from, to})
		return
	}
	n.delays[[2]string{from, to}] = d
}

// route finds the transport at to and the link from → to.
func (n *InmemNetwork) route(from, to string) (dst *Inmem, link context.Context, out, back time.Duration, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	dst = n.nodes[to]
	if dst == nil {
		return nil, nil, 0, 0, fmt.Errorf("%w: no transport at %s", ErrUnreachable, to)
	}
	k := pair(from, to)
	l := n.links[k]
	if l != nil && l.down {
		return nil, nil, 0, 0, fmt.Errorf("%w: link %s – %s is cut", ErrUnreachable, from, to)
	}
	if l == nil {
		l = &inmemLink{}
		l.ctx, l.cancel = context.WithCancel(context.Background())
		n.links[k] = l
	}
	return dst, l.ctx, n.delays[[2]string{from, to}], n.delays[[2]string{to, from}], nil
}

// Inmem is the in-memory twin of TCP: the same Transport contract, over an
// InmemNetwork instead of sockets.
type Inmem struct {
	net      *InmemNetwork
	addr     string
	nodeID   string
	cfg      Config
	log      *slog.Logger
	handler  handlerSlot
	handlers chan struct{} // semaphore: running handlers

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// NewInmem attaches a transport at addr to n. Of cfg, NodeID (default
// addr), FrameBytesMax, CallTimeout, HandlerConcurrencyMax and Logger
// apply; the socket settings are ignored.
func NewInmem(n *InmemNetwork, addr string, cfg Config) (*Inmem, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: empty address", ErrBadConfig)
	}
	nodeID := cfg.NodeID
	if nodeID == "" {
		nodeID = addr
	}
	if len(nodeID) > NodeIDBytesMax {
		return nil, fmt.Errorf("%w: address used as NodeID has %d bytes, at most %d allowed", ErrBadConfig, len(nodeID), NodeIDBytesMax)
	}
	m := &Inmem{
		net:      n,
		addr:     addr,
		nodeID:   nodeID,
		cfg:      cfg,
		log:      cfg.logger(),
		handlers: make(chan struct{}, cfg.HandlerConcurrencyMax),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[addr] != nil {
		return nil, fmt.Errorf("%w: address %s already in use", ErrBadConfig, addr)
	}
	n.nodes[addr] = m
	return m, nil
}

// LocalAddr returns the address the transport was attached at.
func (m *Inmem) LocalAddr() string { return m.addr }

// FrameBytesMax returns Config.FrameBytesMax.
func (m *Inmem) FrameBytesMax() int { return m.cfg.FrameBytesMax }

// Serve installs h; see Transport.
func (m *Inmem) Serve(h Handler) { m.handler.set(h) }

// Close detaches the transport from its network; see Transport.
func (m *Inmem) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.net.mu.Lock()
	if m.net.nodes[m.addr] == m {
		delete(m.net.nodes, m.addr)
	}
	m.net.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

func (m *Inmem) goFunc(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Go(f)
	return true
}

// Call implements Transport.
func (m *Inmem) Call(ctx context.Context, addr, method string, body []byte) ([]byte, error) {
	if err := checkMethod(method); err != nil {
		return nil, err
	}
	if len(body)+len(method) > m.cfg.FrameBytesMax {
		return nil, fmt.Errorf("%w: request of %d bytes to %s exceeds the limit of %d bytes", ErrFrameTooLarge, len(body), addr, m.cfg.FrameBytesMax)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.ctx.Err() != nil {
		return nil, ErrClosed
	}
	ctx, cancel := callTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	dst, link, out, back, err := m.net.route(m.addr, addr)
	if err != nil {
		return nil, err
	}
	limit := min(m.cfg.FrameBytesMax, dst.cfg.FrameBytesMax)
	buf, err := encodeFrame(&frame{id: 1, kind: kindRequest, method: method, timeout: timeLeft(ctx), body: body}, limit)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, addr, err)
	}
	req := bytes.Clone(buf.Bytes()[frameHeaderBytes:])
	putBuf(buf)

	// The handler's context ends when this call returns, whatever the
	// reason: the in-memory cancel frame.
	callCtx, stop := context.WithCancel(ctx)
	defer stop()
	if err := m.wait(callCtx, link, dst, out); err != nil {
		return nil, err
	}
	res := make(chan result, 1)
	if err := dst.deliver(callCtx, link, m.nodeID, req, limit, res); err != nil {
		return nil, err
	}
	// From here the request was delivered: a failure leaves its outcome
	// unknown (ErrNoReply), as on TCP.
	select {
	case r := <-res:
		if err := m.wait(ctx, link, dst, back); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoReply, err)
		}
		return r.body, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNoReply, ctx.Err())
	case <-link.Done():
		return nil, fmt.Errorf("%w: %w: link %s – %s cut", ErrNoReply, ErrConnClosed, m.addr, addr)
	case <-m.ctx.Done():
		return nil, fmt.Errorf("%w: %w: local transport closing", ErrNoReply, ErrClosed)
	case <-dst.ctx.Done():
		return nil, fmt.Errorf("%w: %w: peer %s closed", ErrNoReply, ErrConnClosed, addr)
	}
}

// wait sleeps for a link delay, failing as the call would meanwhile.
func (m *Inmem) wait(ctx, link context.Context, dst *Inmem, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-link.Done():
		return fmt.Errorf("%w: link %s – %s cut", ErrConnClosed, m.addr, dst.addr)
	case <-m.ctx.Done():
		return fmt.Errorf("%w: local transport closing", ErrClosed)
	case <-dst.ctx.Done():
		return fmt.Errorf("%w: peer %s closed", ErrConnClosed, dst.addr)
	}
}

// deliver starts the handler for an encoded request; the reply goes to
// res. The handler's context ends with callCtx or link, on Close, or at the
// request's deadline.
func (m *Inmem) deliver(callCtx, link context.Context, from string, req []byte, limit int, res chan<- result) error {
	f, err := decodeFrame(req)
	if err != nil {
		return err // unreachable: req was just encoded
	}
	select {
	case m.handlers <- struct{}{}:
	default:
		err := fmt.Errorf("%w: %d handlers running (HandlerConcurrencyMax) on %s", ErrBackpressure, m.cfg.HandlerConcurrencyMax, m.nodeID)
		res <- decodeReply(errorFrame(f.id, err, limit))
		return nil
	}
	ctx, cancel := handlerContext(m.ctx, f.timeout, m.cfg.CallTimeout)
	stopCall := context.AfterFunc(callCtx, cancel)
	stopLink := context.AfterFunc(link, cancel)
	run := func() {
		defer func() {
			stopCall()
			stopLink()
			cancel()
			<-m.handlers
		}()
		r := decodeReply(serveRequest(ctx, m.handler.get(), from, &f, limit, m.log))
		if m.ctx.Err() == nil && link.Err() == nil {
			// Otherwise the caller gets ErrConnClosed, as over TCP.
			res <- r
		}
	}
	if !m.goFunc(run) {
		stopCall()
		stopLink()
		cancel()
		<-m.handlers
		return fmt.Errorf("%w: peer %s closed", ErrConnClosed, m.addr)
	}
	return nil
}

// decodeReply turns an encoded reply into the caller's result, copying it
// out of the pooled buffer.
func decodeReply(buf *bytes.Buffer) result {
	b := bytes.Clone(buf.Bytes()[frameHeaderBytes:])
	putBuf(buf)
	f, err := decodeFrame(b)
	switch {
	case err != nil:
		return result{err: err} // unreachable: b was just encoded
	case f.kind == kindError:
		return result{err: replyError(&f)}
	default:
		return result{body: f.body}
	}
}
