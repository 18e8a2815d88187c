package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// readBufBytes is the size of a connection's read buffer.
const readBufBytes = 64 << 10

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReaderSize(nc, readBufBytes) }

// result is the outcome of one call, handed from the reader to the caller.
type result struct {
	body []byte
	err  error
}

// clientConn is one pooled connection to a peer: callers queue request
// frames, the reader goroutine hands each answer to the caller waiting
// for its id.
type clientConn struct {
	t     *TCP
	w     *wire
	addr  string
	limit int // frame limit agreed at the handshake

	nextID atomic.Uint64
	slots  chan struct{} // semaphore: calls in flight (InFlightPerConnMax)

	mu      sync.Mutex
	broken  error // set once the reader stopped; no new calls then
	pending map[uint64]chan result
}

func newClientConn(t *TCP, nc net.Conn, br *bufio.Reader, addr string, limit int) *clientConn {
	// The queue holds at most one request per call in flight plus cancels.
	w := newWire(t.ctx, nc, br, t.cfg.InFlightPerConnMax+64, t.cfg.WriteTimeout)
	return &clientConn{
		t:       t,
		w:       w,
		addr:    addr,
		limit:   limit,
		slots:   make(chan struct{}, t.cfg.InFlightPerConnMax),
		pending: make(map[uint64]chan result),
	}
}

func (c *clientConn) inFlight() int { return len(c.slots) }

// call sends one request and waits for its answer or for ctx to end.
func (c *clientConn) call(ctx context.Context, method string, body []byte) ([]byte, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.w.done:
		return nil, c.brokenErr()
	}
	defer func() { <-c.slots }()

	id := c.nextID.Add(1)
	buf, err := encodeFrame(&frame{id: id, kind: kindRequest, method: method, timeout: timeLeft(ctx), body: body}, c.limit)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, c.addr, err)
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.broken != nil {
		c.mu.Unlock()
		putBuf(buf)
		return nil, c.broken
	}
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.w.send(ctx, buf); err != nil {
		c.forget(id)
		if ctx.Err() != nil {
			return nil, ctx.Err() // not sent
		}
		return nil, c.brokenErr()
	}
	select {
	case r := <-ch:
		if r.err != nil && errors.Is(r.err, ErrConnClosed) {
			return nil, fmt.Errorf("%w: %w", ErrNoReply, r.err)
		}
		return r.body, r.err
	case <-ctx.Done():
		if c.forget(id) {
			// Tell the server to cancel the handler. If the queue is full
			// the cancel is dropped: the request's deadline still ends it.
			if cb, err := encodeFrame(&frame{id: id, kind: kindCancel}, c.limit); err == nil {
				c.w.trySend(cb)
			}
		}
		return nil, fmt.Errorf("%w: %w", ErrNoReply, ctx.Err())
	}
}

// forget removes the pending call id, reporting whether it was pending.
// An answer arriving later is dropped by the reader.
func (c *clientConn) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

// brokenErr is the error of calls on a connection that shut down.
func (c *clientConn) brokenErr() error {
	cause := c.w.cause()
	if cause == nil {
		cause = ErrConnClosed
	}
	return fmt.Errorf("connection to %s: %w", c.addr, cause)
}

// readLoop delivers answers until the connection fails, then fails every
// call still pending on it.
func (c *clientConn) readLoop() {
	err := c.readFrames()
	c.w.shutdown(fmt.Errorf("%w: %w", ErrConnClosed, err))
	c.mu.Lock()
	c.broken = c.brokenErr()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- result{err: c.broken}
	}
}

func (c *clientConn) readFrames() error {
	for {
		b, err := readFrame(c.w.br, c.t.cfg.FrameBytesMax)
		if err != nil {
			switch {
			case c.w.closed() || c.t.isClosed():
			case errors.Is(err, io.EOF):
				c.t.log.Info("transport: peer closed the connection", "peer", c.addr)
			default:
				c.t.log.Warn("transport: connection to peer failed", "peer", c.addr, "err", err)
			}
			return err
		}
		f, err := decodeFrame(b)
		if err != nil {
			c.t.log.Warn("transport: bad frame from peer", "peer", c.addr, "err", err)
			return err
		}
		var r result
		switch f.kind {
		case kindResponse:
			r.body = f.body
		case kindError:
			r.err = replyError(&f)
		default:
			err := fmt.Errorf("%w: a %s frame from the server", ErrBadFrame, f.kind)
			c.t.log.Warn("transport: protocol violation by peer", "peer", c.addr, "err", err)
			return err
		}
		c.mu.Lock()
		ch, ok := c.pending[f.id]
		delete(c.pending, f.id)
		c.mu.Unlock()
		if ok {
			ch <- r // buffered: never blocks
		}
	}
}
