package transport

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// writeBatchBytes is the size of a connection's write buffer: frames
// queued together are written with one system call up to this size.
const writeBatchBytes = 64 << 10

// wire is the half of a connection both sides share: a write queue drained
// by one writer goroutine (so callers never do I/O), and the shutdown of
// the connection with its first cause.
type wire struct {
	nc           net.Conn
	br           *bufio.Reader
	sendq        chan *bytes.Buffer
	done         chan struct{} // closed by shutdown
	writeTimeout time.Duration

	closeOnce sync.Once
	stop      func() bool // unregisters the shutdown on the owner's context
	mu        sync.Mutex
	err       error // why the wire shut down; set before done closes
}

// newWire wraps nc; the wire shuts down with ErrClosed when owner ends.
func newWire(owner context.Context, nc net.Conn, br *bufio.Reader, queue int, writeTimeout time.Duration) *wire {
	w := &wire{
		nc:           nc,
		br:           br,
		sendq:        make(chan *bytes.Buffer, queue),
		done:         make(chan struct{}),
		writeTimeout: writeTimeout,
	}
	w.mu.Lock()
	w.stop = context.AfterFunc(owner, func() {
		w.shutdown(fmt.Errorf("%w: local transport closing", ErrClosed))
	})
	w.mu.Unlock()
	return w
}

// shutdown closes the connection; the first cause is kept. Safe to call
// many times and from any goroutine.
func (w *wire) shutdown(cause error) {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.err = cause
		stop := w.stop
		w.mu.Unlock()
		close(w.done)
		_ = w.nc.Close()
		if stop != nil {
			stop()
		}
	})
}

// cause is the reason the wire shut down (nil while it is up).
func (w *wire) cause() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *wire) closed() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// send queues an encoded frame, waiting for room while ctx allows. The
// writer returns buf to the pool.
func (w *wire) send(ctx context.Context, buf *bytes.Buffer) error {
	select {
	case w.sendq <- buf:
		return nil
	case <-w.done:
		putBuf(buf)
		return w.cause()
	case <-ctx.Done():
		putBuf(buf)
		return ctx.Err()
	}
}

// trySend queues buf if there is room at once, and drops it otherwise.
func (w *wire) trySend(buf *bytes.Buffer) {
	select {
	case w.sendq <- buf:
	default:
		putBuf(buf)
	}
}

// writeLoop writes queued frames, batching those that wait together, until
// the wire shuts down. A write that makes no progress for writeTimeout
// shuts the wire down.
func (w *wire) writeLoop() {
	bw := bufio.NewWriterSize(w.nc, writeBatchBytes)
	for {
		var buf *bytes.Buffer
		select {
		case <-w.done:
			return
		case buf = <-w.sendq:
		}
		if err := w.nc.SetWriteDeadline(time.Now().Add(w.writeTimeout)); err != nil {
			w.shutdown(fmt.Errorf("%w: %v", ErrConnClosed, err))
			return
		}
		_, err := bw.Write(buf.Bytes())
		putBuf(buf)
	batch:
		for err == nil && bw.Buffered() < writeBatchBytes {
			select {
			case buf = <-w.sendq:
				_, err = bw.Write(buf.Bytes())
				putBuf(buf)
			default:
				break batch
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			w.shutdown(fmt.Errorf("%w: write: %v", ErrConnClosed, err))
			return
		}
	}
}
