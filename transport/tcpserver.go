package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// serverConn is one inbound connection: its reader starts a handler
// goroutine per request; handlers queue their replies on the wire.
type serverConn struct {
	t      *TCP
	w      *wire
	remote string
	from   string // the peer's node ID
	limit  int    // frame limit agreed at the handshake

	// ctx ends when the connection does; handlers' contexts derive from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running map[uint64]context.CancelFunc
}

// acceptLoop accepts connections until the listener closes.
func (t *TCP) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if t.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: wait and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("transport: accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		select {
		case t.conns <- struct{}{}:
		default:
			t.log.Warn("transport: too many inbound connections, refusing one", "remote", nc.RemoteAddr().String(), "server_conns_max", t.cfg.ServerConnsMax)
			_ = nc.Close()
			continue
		}
		if !t.goFunc(func() { t.serveConn(nc) }) {
			<-t.conns
			_ = nc.Close()
			return
		}
	}
}

// serveConn runs the handshake and then the connection's reader.
func (t *TCP) serveConn(nc net.Conn) {
	defer func() { <-t.conns }()
	sc, err := t.accept(nc)
	if err != nil {
		_ = nc.Close()
		if !t.isClosed() {
			t.log.Warn("transport: refused connection", "remote", nc.RemoteAddr().String(), "err", err)
		}
		return
	}
	// This goroutine counts in t.wg, so starting more needs no lock; the
	// wire shuts down when t closes.
	t.wg.Go(sc.w.writeLoop)
	err = sc.readLoop()
	sc.cancel()
	sc.w.shutdown(fmt.Errorf("%w: %w", ErrConnClosed, err))
}

// accept reads the peer's handshake (the protocol byte was consumed by the
// PortMux) and answers it.
func (t *TCP) accept(nc net.Conn) (*serverConn, error) {
	stop := context.AfterFunc(t.ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		return nil, err
	}
	br := newReader(nc)
	b, err := readFrame(br, handshakeBytesMax)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	h, err := decodeHello(b)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	reply := hello{version: ProtocolVersion, nodeID: t.nodeID, frameBytesMax: uint64(t.cfg.FrameBytesMax)}
	var refuse error
	switch {
	case h.version != ProtocolVersion:
		refuse = fmt.Errorf("%w: peer %q speaks protocol version %d, this node speaks %d", ErrVersionMismatch, h.nodeID, h.version, ProtocolVersion)
	case h.nodeID == "":
		refuse = fmt.Errorf("%w: handshake without a node id", ErrBadFrame)
	case h.frameBytesMax < FrameBytesMaxMin:
		refuse = fmt.Errorf("%w: peer announced a frame limit of %d bytes, below the minimum %d", ErrBadFrame, h.frameBytesMax, FrameBytesMaxMin)
	}
	if refuse != nil {
		reply.err = refuse.Error()
	}
	if _, err := nc.Write(encodeHello(&reply)); err != nil {
		return nil, errors.Join(refuse, fmt.Errorf("handshake reply: %w", err))
	}
	if refuse != nil {
		return nil, refuse
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	sc := &serverConn{
		t:       t,
		w:       newWire(t.ctx, nc, br, 256, t.cfg.WriteTimeout),
		remote:  nc.RemoteAddr().String(),
		from:    h.nodeID,
		limit:   min(t.cfg.FrameBytesMax, int(min(h.frameBytesMax, FrameBytesMaxLimit))),
		running: make(map[uint64]context.CancelFunc),
	}
	sc.ctx, sc.cancel = context.WithCancel(t.ctx)
	return sc, nil
}

// readLoop starts a handler per request and cancels handlers on request,
// until the connection fails or breaks the protocol.
func (sc *serverConn) readLoop() error {
	t := sc.t
	for {
		b, err := readFrame(sc.w.br, t.cfg.FrameBytesMax)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrBadFrame) {
				t.log.Warn("transport: closing connection", "peer", sc.from, "remote", sc.remote, "err", err)
			}
			return err
		}
		f, err := decodeFrame(b)
		if err != nil {
			t.log.Warn("transport: closing connection", "peer", sc.from, "remote", sc.remote, "err", err)
			return err
		}
		switch f.kind {
		case kindRequest:
			if err := sc.start(&f); err != nil {
				t.log.Warn("transport: closing connection", "peer", sc.from, "remote", sc.remote, "err", err)
				return err
			}
		case kindCancel:
			sc.mu.Lock()
			cancel := sc.running[f.id]
			sc.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		default:
			err := fmt.Errorf("%w: a %s frame from a client", ErrBadFrame, f.kind)
			t.log.Warn("transport: closing connection", "peer", sc.from, "remote", sc.remote, "err", err)
			return err
		}
	}
}

// start runs the handler for request f on its own goroutine, or answers
// ErrBackpressure at once when HandlerConcurrencyMax handlers run.
func (sc *serverConn) start(f *frame) error {
	t := sc.t
	select {
	case t.handlers <- struct{}{}:
	default:
		err := fmt.Errorf("%w: %d handlers running (HandlerConcurrencyMax) on %s", ErrBackpressure, t.cfg.HandlerConcurrencyMax, t.nodeID)
		return sc.reply(errorFrame(f.id, err, sc.limit))
	}
	ctx, cancel := handlerContext(sc.ctx, f.timeout, t.cfg.CallTimeout)
	sc.mu.Lock()
	if _, dup := sc.running[f.id]; dup {
		sc.mu.Unlock()
		cancel()
		<-t.handlers
		return fmt.Errorf("%w: request id %d reused while in flight", ErrBadFrame, f.id)
	}
	sc.running[f.id] = cancel
	sc.mu.Unlock()
	run := func() {
		defer func() { <-t.handlers }()
		buf := serveRequest(ctx, t.handler.get(), sc.from, f, sc.limit, t.log)
		cancel()
		sc.mu.Lock()
		delete(sc.running, f.id)
		sc.mu.Unlock()
		if sc.ctx.Err() != nil {
			// The connection or the transport is closing: the caller gets
			// ErrConnClosed (outcome unknown), not the error of a handler
			// whose context the shutdown cancelled.
			putBuf(buf)
			return
		}
		_ = sc.reply(buf) // fails only when the connection is gone
	}
	t.wg.Go(run) // the reader counts in t.wg: no lock needed
	return nil
}

// reply queues an encoded reply, waiting while the queue is full; it fails
// once the connection is down.
func (sc *serverConn) reply(buf *bytes.Buffer) error {
	return sc.w.send(context.Background(), buf)
}
