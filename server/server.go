package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbx-kv/dbx/server/resp"
)

// Server is the RESP server of a node. Create it with New, run it with
// Serve, stop it with Close. Its methods are safe for concurrent use.
type Server struct {
	cfg  Config
	b    Backend
	cmds map[string]*command
	// unknownM counts commands not in cmds (nil without Metrics).
	unknownM *cmdMetrics
	limits   resp.Limits
	budget   *resp.Budget // node-wide client input bytes

	ctx    context.Context // canceled by Close: ends in-flight backend calls
	cancel context.CancelFunc

	mu      sync.Mutex
	lns     []net.Listener
	closed  bool
	serving sync.WaitGroup     // one per Serve accept loop
	open    map[*conn]struct{} // live connections, for Close
	conns   atomic.Int64       // open connections
	wg      sync.WaitGroup     // one per connection goroutine
	ids     atomic.Int64       // client IDs
	stats   serverStats
	// closedIn/closedOut: network bytes of connections already closed.
	closedIn, closedOut atomic.Int64

	// Introspection, all off the hot path unless in use: settings CONFIG
	// SET may change (atomics), the slow log and the latency monitor (a
	// lock only for a command over their threshold), CLIENT PAUSE (one
	// atomic load per command), MONITOR (one atomic load per command
	// while nobody monitors).
	connsMax        atomic.Int64
	idleTimeout     atomic.Int64 // ns
	slowThreshold   atomic.Int64 // µs; < 0: off
	latencyThreshMs atomic.Int64 // 0: off
	slow            slowlog
	latency         latencyMonitor
	errStats        errorStats
	paused          atomic.Pointer[pause]
	monitoring      atomic.Int32 // len(monitors)
	monMu           sync.Mutex
	monitors        []*monitor
	runID           string
	opsMu           sync.Mutex // instantaneous_ops_per_sec's last sample
	opsAt           time.Time
	opsCount        int64
	opsRate         float64
	memPeak         atomic.Uint64

	started time.Time
}

type serverStats struct {
	commandsTotal, connsAccepted, connsRefused atomic.Int64
	protocolErrors, tooLarge, inputMemory      atomic.Int64
	panics, cut, tlsFailed                     atomic.Int64
}

// New returns a Server for backend b. It validates cfg.
func New(cfg Config, b Backend) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: nil Backend", ErrInvalidConfig)
	}
	s := &Server{cfg: cfg, b: b, started: cfg.Now(), open: map[*conn]struct{}{}, runID: newRunID()}
	s.connsMax.Store(int64(cfg.ConnsMax))
	s.idleTimeout.Store(int64(cfg.IdleTimeout))
	s.slowThreshold.Store(cfg.SlowlogLogSlowerThanUsec)
	s.slow.maxLen = cfg.SlowlogMaxLen
	s.latencyThreshMs.Store(cfg.LatencyMonitorThresholdMs)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cmds = commandTable(cfg.Metrics)
	s.unknownM = cfg.Metrics.forCommand("unknown")
	s.limits = cfg.readerLimits()
	s.budget = resp.NewBudget(cfg.ClientInputBytesMax)
	if m := cfg.Metrics; m != nil {
		m.budget.Store(s.budget)
		m.srv.Store(s)
	}
	return s, nil
}

// Serve accepts RESP connections on ln until Close, and then returns nil
// (ErrClosed if Close came first). ln is closed on return. Serve may run on
// several listeners at once.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeNodeScope is Serve for the port that CLUSTER SLOTS/SHARDS/NODES
// advertise (the one cluster-aware clients use): there SCAN and DBSIZE
// cover this node's own buckets, as on a Redis Cluster node, when the
// Backend is a NodeScanner; on Serve's ports they cover the whole cluster.
// A cluster client that scans every primary thus sees each key once, and
// so does a plain client scanning one node.
func (s *Server) ServeNodeScope(ln net.Listener) error { return s.serve(ln, true) }

func (s *Server) serve(ln net.Listener, nodeScope bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.lns = append(s.lns, ln)
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.logf("server: accept: %v", err)
			select { // e.g. EMFILE: do not spin
			case <-s.ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		s.accept(nc, nodeScope)
	}
}

// Addr is the first listening address, or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].Addr()
}

// Close stops accepting, cancels in-flight backend calls and ends every
// connection: each finishes the command it runs and writes its replies for
// up to CloseTimeout, then its socket is closed under it. Close returns once
// every connection goroutine has ended, or with an error after a second
// CloseTimeout if some did not (a backend ignoring its context). Safe to
// call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	lns := s.lns
	s.mu.Unlock()
	s.cancel()
	var err error
	for _, ln := range lns {
		if e := ln.Close(); e != nil && !errors.Is(e, net.ErrClosed) {
			err = errors.Join(err, e)
		}
	}
	s.serving.Wait() // no accept after this, so wg.Wait cannot race an Add
	// Wake every connection blocked in a read; one running a command ends
	// after it (its context is canceled).
	s.mu.Lock()
	for c := range s.open {
		c.nc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	timer := time.NewTimer(s.cfg.CloseTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return err
	case <-timer.C:
	}
	s.mu.Lock()
	n := len(s.open)
	for c := range s.open {
		c.nc.Close() // unblocks a write to a client that does not read
	}
	s.mu.Unlock()
	s.stats.cut.Add(int64(n))
	s.logf("server: closed %d connections that did not finish within %s", n, s.cfg.CloseTimeout)
	timer.Reset(s.cfg.CloseTimeout)
	select {
	case <-done:
		return err
	case <-timer.C:
		return errors.Join(err, fmt.Errorf("server: %d connections still running %s after Close cut them", n, s.cfg.CloseTimeout))
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// accept registers a new connection and starts its goroutine.
func (s *Server) accept(nc net.Conn, nodeScope bool) {
	if s.conns.Add(1) > s.connsMax.Load() {
		s.conns.Add(-1)
		s.stats.connsRefused.Add(1)
		if m := s.cfg.Metrics; m != nil {
			m.connsRefuse.Inc()
		}
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write([]byte("-ERR max number of clients reached\r\n"))
		nc.Close()
		return
	}
	s.stats.connsAccepted.Add(1)
	if m := s.cfg.Metrics; m != nil {
		m.conns.Inc()
		m.connsTotal.Inc()
	}
	c := &conn{s: s, nc: nc}
	c.sess = &session{id: s.ids.Add(1), authed: s.cfg.RequirePass == "", local: nc.LocalAddr(), remote: nc.RemoteAddr(), nodeScope: nodeScope}
	c.info = &clientInfo{id: c.sess.id, addr: remoteString(nc.RemoteAddr()), laddr: remoteString(nc.LocalAddr()), created: time.Now()}
	c.info.multi.Store(-1)
	c.sess.info, c.sess.conn = c.info, c
	c.rd = resp.NewReader(countingReader{nc, &c.info.inBytes}, s.limits, s.budget, !c.sess.authed)
	c.wr = resp.NewWriter(deadlineWriter{nc, s.cfg.WriteTimeout, &c.info.outBytes})
	c.sess.w = c.wr
	s.mu.Lock()
	s.open[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go c.serve()
}

// conn is one client connection; only its goroutine uses rd, wr and sess.
// info is what other goroutines may read.
type conn struct {
	s    *Server
	nc   net.Conn
	rd   *resp.Reader
	wr   *resp.Writer
	sess *session
	info *clientInfo
}

// replyFlushBytes: replies are written out once this many are buffered,
// even in the middle of a pipeline, so a pipeline of big replies does not
// pile up in memory.
const replyFlushBytes = 64 << 10

// serve runs the connection: read requests, run them in order, write the
// replies of a pipeline together. A panic anywhere in it closes this
// connection only; it is logged and counted.
func (c *conn) serve() {
	s := c.s
	defer func() {
		if p := recover(); p != nil {
			s.stats.panics.Add(1)
			if m := s.cfg.Metrics; m != nil {
				m.panics.Inc()
			}
			s.logf("server: panic serving %s (connection closed): %v\n%s", c.nc.RemoteAddr(), p, debug.Stack())
		}
		c.nc.Close()
		c.rd.Release()
		s.mu.Lock()
		delete(s.open, c)
		s.closedIn.Add(c.info.inBytes.Load())
		s.closedOut.Add(c.info.outBytes.Load())
		s.mu.Unlock()
		s.conns.Add(-1)
		if m := s.cfg.Metrics; m != nil {
			m.conns.Dec()
		}
		s.wg.Done()
	}()
	if tc, ok := c.nc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
	for {
		if s.ctx.Err() != nil {
			c.wr.Flush()
			return
		}
		args, err := c.rd.Next()
		if err == resp.ErrIncomplete {
			if c.wr.Flush() != nil {
				return
			}
			if idle := time.Duration(s.idleTimeout.Load()); idle > 0 {
				c.nc.SetReadDeadline(time.Now().Add(idle))
			}
			if err = c.rd.Fill(); err == nil {
				continue
			}
		}
		if err != nil {
			c.fail(err)
			return
		}
		s.exec(c.sess, args)
		if m := c.sess.monitor; m != nil {
			c.wr.Flush()
			c.runMonitor(m)
			return
		}
		if c.sess.quit {
			c.wr.Flush()
			return
		}
		c.rd.SetAuthenticated(c.sess.authed)
		if c.wr.Buffered() > replyFlushBytes && c.wr.Flush() != nil {
			return
		}
	}
}

// handshake runs the TLS handshake of a connection accepted on a TLS
// listener, bounded by TLSHandshakeTimeout and by Close, so a client that
// never finishes it does not hold its connection slot.
func (c *conn) handshake(tc *tls.Conn) bool {
	s := c.s
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.TLSHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.stats.tlsFailed.Add(1)
		s.cfg.Metrics.inputRejected("tls")
		s.logf("server: TLS handshake with %s failed: %v", c.nc.RemoteAddr(), err)
		return false
	}
	return true
}

// fail ends the connection after a read error, telling the client why when
// the cause is its input.
func (c *conn) fail(err error) {
	s := c.s
	var pe *resp.ProtocolError
	var ne net.Error
	msg := ""
	switch {
	case errors.As(err, &pe):
		s.stats.protocolErrors.Add(1)
		s.cfg.Metrics.inputRejected("protocol")
		msg = "ERR " + pe.Error()
	case errors.Is(err, resp.ErrRequestTooLarge):
		s.stats.tooLarge.Add(1)
		s.cfg.Metrics.inputRejected("query_buffer")
		msg = "ERR Protocol error: request too large (over " + fmt.Sprint(s.limits.RequestBytesMax) + " bytes, the client query buffer limit)"
	case errors.Is(err, resp.ErrInputMemory):
		s.stats.inputMemory.Add(1)
		s.cfg.Metrics.inputRejected("node_memory")
		msg = "ERR client input memory limit reached (" + fmt.Sprint(s.budget.Max()) + " bytes for all clients), try again later"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), s.ctx.Err() != nil:
	case errors.As(err, &ne) && ne.Timeout():
	default:
		s.logf("server: connection %s: %v", c.nc.RemoteAddr(), err)
	}
	c.wr.Flush() // replies of the requests before the bad one
	if msg != "" {
		c.wr.WriteError(msg)
		c.wr.Flush()
		if s.cfg.Logf != nil && !errors.As(err, &pe) {
			s.logf("server: closing connection %s: %s", c.nc.RemoteAddr(), msg)
		}
	}
}

// deadlineWriter puts a deadline on every write to a client and counts
// the bytes written.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
	n       *atomic.Int64
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.nc.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// replyWriter is what replies are written to (resp.Writer, and the
// recorder that buffers a transaction's replies).
type replyWriter interface {
	WriteString(string)
	WriteBulk([]byte)
	WriteBulkString(string)
	WriteInt64(int64)
	WriteError(string)
	WriteArray(int)
	WriteNull()
	WriteRaw([]byte)
}

// session is one connection's state; only its connection's goroutine uses it.
type session struct {
	id     int64
	authed bool
	// authFailures counts failed AUTH attempts (reset by a good one).
	authFailures int
	name         string
	quit         bool
	local        net.Addr
	remote       net.Addr
	// nodeScope: the connection came in on ServeNodeScope's port.
	nodeScope bool
	w         replyWriter
	failed    bool         // the current command replied with an error
	nameBuf   [32]byte     // lower-cased command name
	multi     *txState     // open MULTI, nil outside one
	watch     []WatchedKey // WATCHed keys and their versions
	txb       Backend      // during EXEC: the transaction's overlay
	errIdx    int          // errorTypes index of the last error reply
	info      *clientInfo  // what CLIENT LIST shows of this session
	conn      *conn        // nil for sessions not on a connection (tests)
	monitor   *monitor     // set by MONITOR: the connection streams from now on
}

// be is the backend data commands use: the transaction's overlay during
// EXEC, the server's backend otherwise.
func (c *session) be(s *Server) Backend {
	if c.txb != nil {
		return c.txb
	}
	return s.b
}

func (c *session) WriteString(v string)     { c.w.WriteString(v) }
func (c *session) WriteBulk(v []byte)       { c.w.WriteBulk(v) }
func (c *session) WriteBulkString(v string) { c.w.WriteBulkString(v) }
func (c *session) WriteInt64(v int64)       { c.w.WriteInt64(v) }
func (c *session) WriteArray(n int)         { c.w.WriteArray(n) }
func (c *session) WriteNull()               { c.w.WriteNull() }
func (c *session) WriteRaw(v []byte)        { c.w.WriteRaw(v) }
func (c *session) WriteError(v string) {
	c.failed = true
	c.errIdx = errorIndex(v)
	c.w.WriteError(v)
}
