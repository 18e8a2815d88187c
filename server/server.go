package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

// Server is the RESP server of a node. Create it with New, run it with
// Serve, stop it with Close. Its methods are safe for concurrent use.
type Server struct {
	cfg  Config
	b    Backend
	cmds map[string]*command
	// unknownM counts commands not in cmds (nil without Metrics).
	unknownM *cmdMetrics

	ctx    context.Context // canceled by Close: ends in-flight backend calls
	cancel context.CancelFunc

	mu     sync.Mutex
	ln     net.Listener
	closed bool
	served chan struct{} // closed when Serve's accept loop returned

	handlers sync.WaitGroup // one per accepted connection until its closed callback
	conns    atomic.Int64   // open connections
	clientID atomic.Int64

	started        time.Time
	commandsTotal  atomic.Int64
	connsAccepted  atomic.Int64
	connsRefused   atomic.Int64
	protocolErrors atomic.Int64
}

// New returns a Server for backend b. It validates cfg.
func New(cfg Config, b Backend) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: nil Backend", ErrInvalidConfig)
	}
	s := &Server{cfg: cfg, b: b, started: cfg.Now(), served: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cmds = commandTable(cfg.Metrics)
	s.unknownM = cfg.Metrics.forCommand("unknown")
	return s, nil
}

// Serve accepts RESP connections on ln until Close, and then returns nil
// (ErrClosed if Close came first). ln is closed on return. Call it once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("server: Serve called twice")
	}
	s.ln = &limitListener{Listener: ln, s: s}
	s.mu.Unlock()
	defer close(s.served)

	rs := redcon.NewServerNetwork(ln.Addr().Network(), ln.Addr().String(), s.handle, s.accept, s.closedConn)
	rs.SetIdleClose(s.cfg.IdleTimeout)
	rs.AcceptError = func(err error) {
		s.logf("server: accept: %v", err)
		time.Sleep(10 * time.Millisecond) // e.g. EMFILE: do not spin
	}
	// redcon's serve returns when the listener is closed, after closing
	// every connection it accepted.
	return rs.Serve(s.ln)
}

// Addr is the listening address, or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting, cancels in-flight backend calls, closes every
// connection and waits for their goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	s.cancel()
	if ln == nil {
		return nil
	}
	err := ln.Close()
	<-s.served // no accept after this, so handlers.Wait cannot race an Add
	s.handlers.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// accept runs on redcon's accept loop for every new connection.
func (s *Server) accept(c redcon.Conn) bool {
	if s.conns.Add(1) > int64(s.cfg.ConnsMax) {
		s.conns.Add(-1)
		s.connsRefused.Add(1)
		if m := s.cfg.Metrics; m != nil {
			m.connsRefuse.Inc()
		}
		c.WriteError("ERR max number of clients reached")
		return false // redcon flushes and closes
	}
	s.connsAccepted.Add(1)
	if m := s.cfg.Metrics; m != nil {
		m.conns.Inc()
		m.connsTotal.Inc()
	}
	sess := &session{id: s.clientID.Add(1), authed: s.cfg.RequirePass == ""}
	if nc := c.NetConn(); nc != nil {
		sess.local = nc.LocalAddr()
		if lc, ok := nc.(*limitConn); ok {
			sess.lc = lc
		}
	}
	c.SetContext(sess)
	s.handlers.Add(1)
	return true
}

// closedConn runs (under redcon's lock) when a connection's goroutine ends.
func (s *Server) closedConn(c redcon.Conn, err error) {
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			s.protocolErrors.Add(1)
			s.logf("server: connection %s: %v", c.RemoteAddr(), err)
		}
	}
	s.conns.Add(-1)
	if m := s.cfg.Metrics; m != nil {
		m.conns.Dec()
	}
	s.handlers.Done()
}

// handle runs one command on the connection's goroutine; redcon flushes the
// replies of a pipeline after its last command.
func (s *Server) handle(c redcon.Conn, cmd redcon.Command) {
	sess, _ := c.Context().(*session)
	if sess == nil || sess.quit {
		return // rest of a pipeline after QUIT
	}
	if sess.lc != nil {
		sess.lc.pending = 0 // a whole request arrived: restart the request-size count
	}
	sess.w = c
	s.exec(sess, cmd.Args)
	sess.w = nil
	if sess.quit {
		c.Close()
	}
}

// replyWriter is the part of redcon.Conn (and *redcon.Writer) replies use.
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
	id      int64
	authed  bool
	name    string
	quit    bool
	local   net.Addr
	lc      *limitConn
	w       replyWriter
	failed  bool         // the current command replied with an error
	nameBuf [32]byte     // lower-cased command name
	multi   *txState     // open MULTI, nil outside one
	watch   []WatchedKey // WATCHed keys and their versions
	txb     Backend      // during EXEC: the transaction's overlay
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
	c.w.WriteError(v)
}

// limitListener wraps accepted connections in limitConn.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &limitConn{Conn: c, max: l.s.cfg.RequestBytesMax, writeTimeout: l.s.cfg.WriteTimeout}, nil
}

// errRequestTooLarge ends a connection whose pending request is over
// Config.RequestBytesMax.
var errRequestTooLarge = errors.New("server: request too large")

// limitConn bounds what redcon buffers for one request (redcon itself grows
// its buffer without limit) and puts a deadline on every write. Read and
// Write run on the connection's goroutine only, as does the reset in handle.
type limitConn struct {
	net.Conn
	max          int
	pending      int // bytes read since the last complete command
	writeTimeout time.Duration
}

func (c *limitConn) Read(p []byte) (int, error) {
	if c.pending > c.max {
		c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		c.Conn.Write([]byte("-ERR Protocol error: request too large\r\n"))
		return 0, errRequestTooLarge
	}
	n, err := c.Conn.Read(p)
	c.pending += n
	return n, err
}

func (c *limitConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	return c.Conn.Write(p)
}
