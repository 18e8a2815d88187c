package server

import (
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// clientInfo is what other connections may read of one (CLIENT LIST,
// CLIENT KILL, INFO): atomics only, written by the connection's own
// goroutine, read by anyone.
type clientInfo struct {
	id       int64
	addr     string
	laddr    string
	created  time.Time
	name     atomic.Pointer[string]
	libName  atomic.Pointer[string]
	libVer   atomic.Pointer[string]
	lastCmd  atomic.Pointer[command]
	active   atomic.Int64 // Unix ns of the last command's start
	multi    atomic.Int32 // commands queued in MULTI, -1 outside one
	noEvict  atomic.Bool
	noTouch  atomic.Bool
	monitor  atomic.Bool
	killed   atomic.Bool
	inBytes  atomic.Int64
	outBytes atomic.Int64
}

func loadString(p *atomic.Pointer[string]) string {
	if v := p.Load(); v != nil {
		return *v
	}
	return ""
}

// countingReader counts the bytes read from a connection (per connection:
// no shared cache line on the hot path).
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// line renders one CLIENT LIST / CLIENT INFO line (Redis 7's fields; the
// buffer sizes dbx does not track are 0).
func (ci *clientInfo) line(now time.Time) string {
	flags := "N"
	switch {
	case ci.monitor.Load():
		flags = "O"
	case ci.multi.Load() >= 0:
		flags = "x"
	}
	if ci.noEvict.Load() {
		flags += "e"
	}
	if ci.noTouch.Load() {
		flags += "T"
	}
	cmdName := "NULL"
	if c := ci.lastCmd.Load(); c != nil {
		cmdName = c.name
	}
	idle := int64(0)
	if a := ci.active.Load(); a > 0 {
		idle = max(now.UnixNano()-a, 0) / int64(time.Second)
	}
	var b strings.Builder
	b.WriteString("id=" + strconv.FormatInt(ci.id, 10))
	b.WriteString(" addr=" + ci.addr + " laddr=" + ci.laddr + " fd=-1 name=" + loadString(&ci.name))
	b.WriteString(" age=" + strconv.FormatInt(int64(now.Sub(ci.created)/time.Second), 10))
	b.WriteString(" idle=" + strconv.FormatInt(idle, 10) + " flags=" + flags)
	b.WriteString(" db=0 sub=0 psub=0 ssub=0 multi=" + strconv.Itoa(int(ci.multi.Load())))
	b.WriteString(" qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r")
	b.WriteString(" cmd=" + cmdName + " user=default redir=-1 resp=2")
	b.WriteString(" lib-name=" + loadString(&ci.libName) + " lib-ver=" + loadString(&ci.libVer))
	b.WriteString(" dbx-net-in=" + strconv.FormatInt(ci.inBytes.Load(), 10) + " dbx-net-out=" + strconv.FormatInt(ci.outBytes.Load(), 10))
	return b.String()
}

// clients returns the open connections, by ID.
func (s *Server) clients() []*conn {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.open))
	for c := range s.open {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	slices.SortFunc(cs, func(a, b *conn) int { return int(a.info.id - b.info.id) })
	return cs
}

// kill ends connection c: marked, its socket closed (its goroutine ends
// on the read error). Killing the caller's own connection is done by the
// caller after its reply (session.quit).
func (s *Server) kill(c *conn) {
	c.info.killed.Store(true)
	c.nc.Close()
}

// clientFilter is CLIENT KILL's (and CLIENT LIST ID's) selection.
type clientFilter struct {
	ids         []int64
	addr, laddr string
	user        string
	typ         string
	maxAge      int64 // seconds, 0: any
	skipMe      bool
}

func (f *clientFilter) match(ci *clientInfo, self int64, now time.Time) bool {
	switch {
	case len(f.ids) > 0 && !slices.Contains(f.ids, ci.id),
		f.addr != "" && f.addr != ci.addr,
		f.laddr != "" && f.laddr != ci.laddr,
		f.user != "" && f.user != "default",
		f.typ != "" && f.typ != "normal",
		f.maxAge > 0 && int64(now.Sub(ci.created)/time.Second) < f.maxAge,
		f.skipMe && ci.id == self:
		return false
	}
	return true
}

// ---- CLIENT PAUSE ----

// PauseMax bounds CLIENT PAUSE's timeout.
const PauseMax = time.Hour

// pause is an active CLIENT PAUSE: until the deadline, or until done is
// closed (UNPAUSE or a newer PAUSE).
type pause struct {
	until time.Time
	all   bool // ALL; otherwise WRITE
	done  chan struct{}
}

// holds reports whether p holds cmd: every command but CLIENT (so that an
// operator can UNPAUSE) in ALL mode, writes (and EXEC) in WRITE mode.
func (p *pause) holds(cmd *command) bool {
	if cmd.name == "client" {
		return false
	}
	return p.all || cmd.write || cmd.name == "exec"
}

// waitPause blocks while p holds cmd: until its deadline, UNPAUSE or Close.
func (s *Server) waitPause(p *pause, cmd *command) {
	if !p.holds(cmd) {
		return
	}
	d := time.Until(p.until)
	if d <= 0 {
		s.paused.CompareAndSwap(p, nil)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		s.paused.CompareAndSwap(p, nil)
	case <-s.ctx.Done():
	}
}

// setPause replaces the current pause (nil: unpause), waking its waiters.
func (s *Server) setPause(p *pause) {
	if old := s.paused.Swap(p); old != nil {
		close(old.done)
	}
}

// ---- MONITOR ----

// Bounds of MONITOR: how many connections may monitor at once, and how
// many lines may wait for one. A monitor that falls further behind is
// disconnected (Redis does so past its output buffer limit).
const (
	MonitorsMax       = 16
	monitorQueueLines = 4096
	monitorArgsMax    = 64
	monitorArgBytes   = 1024
)

// monitor is one MONITOR connection's queue.
type monitor struct {
	c     *conn
	lines chan []byte
}

// feedMonitors formats one command for MONITOR and queues it on every
// monitor; only called while some connection monitors.
func (s *Server) feedMonitors(c *session, cmd *command, args [][]byte) {
	if cmd.name == "auth" || cmd.name == "hello" {
		return // secrets; Redis does not show them either
	}
	now := s.cfg.Now()
	b := make([]byte, 0, 64)
	b = append(b, '+')
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, '.')
	us := now.Nanosecond() / 1000
	b = append(b, strconv.Itoa(1000000 + us)[1:]...)
	b = append(b, " [0 "...)
	b = append(b, c.info.addr...)
	b = append(b, ']')
	for i, a := range args {
		if i == monitorArgsMax {
			b = append(b, " \"... ("...)
			b = strconv.AppendInt(b, int64(len(args)-i), 10)
			b = append(b, " more arguments)\""...)
			break
		}
		b = append(b, ' ')
		b = appendRepr(b, a)
	}
	b = append(b, '\r', '\n')
	s.monMu.Lock()
	for _, m := range s.monitors {
		select {
		case m.lines <- b:
		default:
			s.logf("server: MONITOR client %s fell %d lines behind: disconnected", m.c.info.addr, monitorQueueLines)
			s.kill(m.c)
		}
	}
	s.monMu.Unlock()
}

// appendRepr appends a quoted, escaped argument as Redis's sdscatrepr,
// clipped to monitorArgBytes.
func appendRepr(b, a []byte) []byte {
	more := 0
	if len(a) > monitorArgBytes {
		a, more = a[:monitorArgBytes], len(a)-monitorArgBytes
	}
	b = append(b, '"')
	for _, ch := range a {
		switch {
		case ch == '\\' || ch == '"':
			b = append(b, '\\', ch)
		case ch == '\n':
			b = append(b, '\\', 'n')
		case ch == '\r':
			b = append(b, '\\', 'r')
		case ch == '\t':
			b = append(b, '\\', 't')
		case ch < ' ' || ch > '~':
			b = append(b, '\\', 'x', "0123456789abcdef"[ch>>4], "0123456789abcdef"[ch&15])
		default:
			b = append(b, ch)
		}
	}
	if more > 0 {
		b = append(b, "... ("...)
		b = strconv.AppendInt(b, int64(more), 10)
		b = append(b, " more bytes)"...)
	}
	return append(b, '"')
}

// addMonitor registers c as a monitor, or reports false when MonitorsMax
// connections already monitor.
func (s *Server) addMonitor(c *conn) (*monitor, bool) {
	s.monMu.Lock()
	defer s.monMu.Unlock()
	if len(s.monitors) >= MonitorsMax {
		return nil, false
	}
	m := &monitor{c: c, lines: make(chan []byte, monitorQueueLines)}
	s.monitors = append(s.monitors, m)
	s.monitoring.Store(int32(len(s.monitors)))
	return m, true
}

func (s *Server) removeMonitor(m *monitor) {
	s.monMu.Lock()
	defer s.monMu.Unlock()
	s.monitors = slices.DeleteFunc(s.monitors, func(x *monitor) bool { return x == m })
	s.monitoring.Store(int32(len(s.monitors)))
}

// runMonitor streams MONITOR lines to the connection until the client
// sends anything (QUIT, RESET: a monitor only listens) or disconnects, or
// the server closes.
func (c *conn) runMonitor(m *monitor) {
	s := c.s
	defer s.removeMonitor(m)
	gone := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(gone)
		var buf [512]byte
		c.nc.SetReadDeadline(time.Time{})
		c.nc.Read(buf[:]) // any input, EOF or error ends MONITOR
	}()
	defer func() { c.nc.Close(); <-gone }()
	for {
		select {
		case line := <-m.lines:
			c.wr.WriteRaw(line)
			if len(m.lines) == 0 || c.wr.Buffered() > replyFlushBytes {
				if c.wr.Flush() != nil {
					return
				}
			}
		case <-gone:
			return
		case <-s.ctx.Done():
			c.wr.Flush()
			return
		}
	}
}

// remoteString is a net.Addr's text, "" for nil.
func remoteString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
