package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/router"
)

// command is one entry of the command table.
type command struct {
	name    string // lower case
	arity   int    // Redis convention: n exact, -n at least n (name included)
	flags   []string
	first   int // key positions as COMMAND reports them: first, last (-1: end), step
	last    int
	step    int
	noAuth  bool // runs before AUTH
	backend bool // calls the backend: gets a RequestTimeout context
	fn      func(s *Server, ctx context.Context, c *session, args [][]byte)
	m       *cmdMetrics
	// Derived from flags: write (CLIENT PAUSE WRITE holds it), fast (the
	// latency monitor's "fast-command" event), skipSlowlog.
	write, fast, skipSlowlog bool
	st                       cmdStats
}

func commandTable(m *Metrics) map[string]*command {
	list := []*command{
		{name: "ping", arity: -1, flags: []string{"fast", "stale"}, noAuth: true, fn: cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast"}, fn: cmdEcho},
		{name: "quit", arity: -1, flags: []string{"fast", "no_auth"}, noAuth: true, fn: cmdQuit},
		{name: "auth", arity: -2, flags: []string{"fast", "no_auth"}, noAuth: true, fn: cmdAuth},
		{name: "hello", arity: -1, flags: []string{"fast", "no_auth"}, noAuth: true, fn: cmdHello},
		{name: "select", arity: 2, flags: []string{"fast"}, fn: cmdSelect},
		{name: "readonly", arity: 1, flags: []string{"fast"}, fn: cmdOK},
		{name: "readwrite", arity: 1, flags: []string{"fast"}, fn: cmdOK},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, fn: cmdCommand},
		{name: "cluster", arity: -2, flags: []string{"stale"}, fn: cmdCluster},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, backend: true, fn: cmdInfo},
		{name: "dbsize", arity: 1, flags: []string{"readonly", "fast"}, backend: true, fn: cmdDBSize},
		{name: "scan", arity: -2, flags: []string{"readonly"}, backend: true, fn: cmdScan},
		{name: "get", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdGet},
		{name: "set", arity: -3, flags: []string{"write", "denyoom"}, first: 1, last: 1, step: 1, backend: true, fn: cmdSet},
		{name: "setnx", arity: 3, flags: []string{"write", "denyoom", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdSetNX},
		{name: "setex", arity: 4, flags: []string{"write", "denyoom"}, first: 1, last: 1, step: 1, backend: true, fn: cmdSetEX},
		{name: "psetex", arity: 4, flags: []string{"write", "denyoom"}, first: 1, last: 1, step: 1, backend: true, fn: cmdSetEX},
		{name: "del", arity: -2, flags: []string{"write"}, first: 1, last: -1, step: 1, backend: true, fn: cmdDel},
		{name: "unlink", arity: -2, flags: []string{"write", "fast"}, first: 1, last: -1, step: 1, backend: true, fn: cmdDel},
		{name: "exists", arity: -2, flags: []string{"readonly", "fast"}, first: 1, last: -1, step: 1, backend: true, fn: cmdExists},
		{name: "type", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdType},
		{name: "mget", arity: -2, flags: []string{"readonly", "fast"}, first: 1, last: -1, step: 1, backend: true, fn: cmdMGet},
		{name: "mset", arity: -3, flags: []string{"write", "denyoom"}, first: 1, last: -1, step: 2, backend: true, fn: cmdMSet},
		{name: "incr", arity: 2, flags: []string{"write", "denyoom", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdIncr},
		{name: "decr", arity: 2, flags: []string{"write", "denyoom", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdIncr},
		{name: "incrby", arity: 3, flags: []string{"write", "denyoom", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdIncr},
		{name: "decrby", arity: 3, flags: []string{"write", "denyoom", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdIncr},
		{name: "expire", arity: 3, flags: []string{"write", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdExpire},
		{name: "pexpire", arity: 3, flags: []string{"write", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdExpire},
		{name: "expireat", arity: 3, flags: []string{"write", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdExpire},
		{name: "pexpireat", arity: 3, flags: []string{"write", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdExpire},
		{name: "ttl", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdTTL},
		{name: "pttl", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdTTL},
		{name: "expiretime", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdTTL},
		{name: "pexpiretime", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdTTL},
		{name: "persist", arity: 2, flags: []string{"write", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdPersist},
		{name: "msetnx", arity: -3, flags: []string{"write", "denyoom"}, first: 1, last: -1, step: 2, backend: true, fn: cmdMSetNX},
		{name: "multi", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, fn: cmdMulti},
		{name: "exec", arity: 1, flags: []string{"noscript", "loading", "stale", "skip_slowlog"}, backend: true, fn: cmdExec},
		{name: "discard", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, fn: cmdDiscard},
		{name: "watch", arity: -2, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, first: 1, last: -1, step: 1, backend: true, fn: cmdWatch},
		{name: "unwatch", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, fn: cmdUnwatch},
	}
	list = append(list, introspectionCommands()...)
	t := make(map[string]*command, len(list))
	for _, c := range list {
		c.m = m.forCommand(c.name)
		c.write = slices.Contains(c.flags, "write")
		c.fast = slices.Contains(c.flags, "fast")
		c.skipSlowlog = slices.Contains(c.flags, "skip_slowlog")
		t[c.name] = c
	}
	return t
}

// exec runs one command: lookup, arity, auth and size checks, the handler,
// metrics and the introspection figures (commandstats, errorstats,
// latencystats, the slow log, the latency monitor: atomics, and a lock
// only for a command over a threshold). It writes exactly one reply.
func (s *Server) exec(c *session, args [][]byte) {
	s.stats.commandsTotal.Add(1)
	c.failed = false
	if len(args) == 0 {
		return // redcon never delivers one; nothing to answer
	}
	start := time.Now()
	cmd := s.lookup(c, args[0])
	ci := c.info
	if ci != nil {
		ci.active.Store(start.UnixNano())
		if cmd != nil {
			ci.lastCmd.Store(cmd)
		}
	}
	if c.multi != nil && (cmd == nil || !txControl[cmd.name]) {
		defer func() {
			if c.failed { // an unknown command or bad arity while queuing: EXEC aborts
				c.multi.dirty = true
			}
		}()
	}
	ran := false
	switch {
	case len(args) > s.cfg.ArgsMax:
		c.WriteError("ERR too many arguments (" + strconv.Itoa(len(args)) + " > " + strconv.Itoa(s.cfg.ArgsMax) + ")")
	case cmd == nil:
		c.WriteError(unknownCommand(args))
	case (cmd.arity > 0 && len(args) != cmd.arity) || (cmd.arity < 0 && len(args) < -cmd.arity):
		c.WriteError("ERR wrong number of arguments for '" + cmd.name + "' command")
	case !c.authed && !cmd.noAuth:
		c.WriteError("NOAUTH Authentication required.")
	default:
		if msg := s.checkSizes(cmd, args); msg != "" {
			c.WriteError(msg)
			break
		}
		if s.monitoring.Load() > 0 && ci != nil {
			s.feedMonitors(c, cmd, args)
		}
		if c.multi != nil && !txControl[cmd.name] {
			s.queue(c, cmd, args)
			break
		}
		if p := s.paused.Load(); p != nil {
			s.waitPause(p, cmd)
			start = time.Now() // a pause is not the command's latency
		}
		ran = true
		ctx := s.ctx
		if cmd.backend {
			timeout := s.cfg.RequestTimeout
			if cmd.name == "exec" {
				timeout = s.cfg.TxnTimeout
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(s.ctx, timeout)
			defer cancel()
		}
		cmd.fn(s, ctx, c, args)
	}
	if ci != nil {
		if c.multi != nil {
			ci.multi.Store(int32(len(c.multi.queued)))
		} else if ci.multi.Load() >= 0 {
			ci.multi.Store(-1)
		}
	}
	dur := time.Since(start)
	us := int64(dur / time.Microsecond)
	if c.failed {
		s.errStats.n[c.errIdx].Add(1)
	}
	if cmd != nil {
		st := &cmd.st
		if ran {
			st.calls.Add(1)
			st.usec.Add(us)
			st.lat.observe(us)
			if c.failed {
				st.failed.Add(1)
			}
			if t := s.slowThreshold.Load(); t >= 0 && us >= t && !cmd.skipSlowlog {
				s.slow.add(slowEntry{at: start.Unix(), usec: us, args: slowArgs(cmd, args), addr: remoteString(c.remote), client: c.name})
			}
			if t := s.latencyThreshMs.Load(); t > 0 && dur >= time.Duration(t)*time.Millisecond {
				event := "command"
				if cmd.fast {
					event = "fast-command"
				}
				s.latency.add(event, start, int64(dur/time.Millisecond))
			}
		} else if c.failed {
			st.rejected.Add(1)
		}
	}
	if m := s.cfg.Metrics; m != nil {
		cm := s.unknownM
		if cmd != nil {
			cm = cmd.m
		}
		cm.latency.Observe(dur.Seconds())
		if c.failed {
			cm.fail.Inc()
		} else {
			cm.ok.Inc()
		}
	}
}

// lookup finds a command by case-insensitive name without allocating.
func (s *Server) lookup(c *session, name []byte) *command {
	if len(name) > len(c.nameBuf) {
		return nil
	}
	b := c.nameBuf[:len(name)]
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		b[i] = ch
	}
	return s.cmds[string(b)]
}

// checkSizes enforces KeyBytesMax on key positions and ValueBytesMax on
// every argument.
func (s *Server) checkSizes(cmd *command, args [][]byte) string {
	for _, a := range args[1:] {
		if len(a) > s.cfg.ValueBytesMax {
			return "ERR value too large"
		}
	}
	if cmd.first > 0 {
		last := cmd.last
		if last < 0 {
			last = len(args) + last
		}
		for i := cmd.first; i <= last && i < len(args); i += cmd.step {
			if len(args[i]) > s.cfg.KeyBytesMax {
				return "ERR key too large"
			}
		}
	}
	return ""
}

// unknownCommand is Redis's reply to an unknown command.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(clip(args[0]))
	b.WriteString("', with args beginning with: ")
	for i, a := range args[1:] {
		if i == 16 {
			break
		}
		b.WriteByte('\'')
		b.WriteString(clip(a))
		b.WriteString("' ")
	}
	return b.String()
}

// clip shortens an argument quoted in an error reply to 128 bytes, as Redis.
func clip(a []byte) string {
	if len(a) > 128 {
		a = a[:128]
	}
	return string(a)
}

func (s *Server) replyErr(c *session, err error) {
	msg := errorReply(err, s.cfg.RequestTimeout)
	c.WriteError(msg)
	if m := s.cfg.Metrics; m != nil {
		m.errors.WithLabelValues(errorType(msg)).Inc()
	}
}

// parseInt parses a canonical decimal int64 argument (kv.ParseInt).
func parseInt(b []byte) (int64, bool) { return kv.ParseInt(b) }

func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		ch := b[i]
		if 'a' <= ch && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		if ch != s[i] { // s is upper case
			return false
		}
	}
	return true
}

const errNotInt = "ERR value is not an integer or out of range"
const errSyntax = "ERR syntax error"

func nowMs(s *Server) int64 { return s.cfg.Now().UnixMilli() }

// ---- connection commands ----

func cmdPing(s *Server, _ context.Context, c *session, args [][]byte) {
	switch len(args) {
	case 1:
		c.WriteString("PONG")
	case 2:
		c.WriteBulk(args[1])
	default:
		c.WriteError("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdEcho(_ *Server, _ context.Context, c *session, args [][]byte) { c.WriteBulk(args[1]) }

func cmdOK(_ *Server, _ context.Context, c *session, _ [][]byte) { c.WriteString("OK") }

func cmdQuit(_ *Server, _ context.Context, c *session, _ [][]byte) {
	c.WriteString("OK")
	c.quit = true
}

func cmdSelect(_ *Server, _ context.Context, c *session, args [][]byte) {
	db, ok := parseInt(args[1])
	switch {
	case !ok || db < math.MinInt32 || db > math.MaxInt32:
		c.WriteError(errNotInt)
	case db != 0:
		c.WriteError("ERR SELECT is not allowed in cluster mode")
	default:
		c.WriteString("OK")
	}
}

// authenticate checks user/pass against RequirePass in constant time:
// it compares SHA-256 digests, so not even the password's length shows in
// the time taken.
func (s *Server) authenticate(c *session, user, pass []byte) bool {
	okUser := user == nil || string(user) == "default"
	got, want := sha256.Sum256(pass), sha256.Sum256([]byte(s.cfg.RequirePass))
	okPass := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	if okUser && okPass {
		c.authed = true
		c.authFailures = 0
		return true
	}
	return false
}

// wrongPass answers a failed AUTH or HELLO AUTH. Each failure on a
// connection waits AuthFailureDelay times the failures so far (at most
// authFailureWaitMax) before the reply, which slows guessing down; after
// AuthFailuresMax failures the connection is closed.
func (s *Server) wrongPass(ctx context.Context, c *session) {
	c.authFailures++
	wait := min(time.Duration(c.authFailures)*s.cfg.AuthFailureDelay, authFailureWaitMax)
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-s.ctx.Done():
		}
		t.Stop()
	}
	if c.authFailures >= s.cfg.AuthFailuresMax {
		c.WriteError(fmt.Sprintf("WRONGPASS invalid username-password pair or user is disabled. (%d failed attempts: closing the connection)", c.authFailures))
		c.quit = true
		return
	}
	c.WriteError("WRONGPASS invalid username-password pair or user is disabled.")
}

// authFailureWaitMax caps the wait after a failed AUTH.
const authFailureWaitMax = 2 * time.Second

func cmdAuth(s *Server, ctx context.Context, c *session, args [][]byte) {
	if len(args) > 3 {
		c.WriteError(errSyntax)
		return
	}
	if s.cfg.RequirePass == "" {
		c.WriteError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	var user []byte
	pass := args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	}
	if !s.authenticate(c, user, pass) {
		s.wrongPass(ctx, c)
		return
	}
	c.WriteString("OK")
}

// cmdHello speaks RESP2 only: "HELLO 3" gets NOPROTO, which clients such as
// go-redis v9 take as "fall back to RESP2 (and AUTH)".
func cmdHello(s *Server, ctx context.Context, c *session, args [][]byte) {
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			c.WriteError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			c.WriteError("NOPROTO unsupported protocol version")
			return
		}
	}
	var name []byte
	setName := false
	for i := 2; i < len(args); i++ {
		switch {
		case eqFold(args[i], "AUTH") && i+2 < len(args):
			if s.cfg.RequirePass == "" {
				// Redis accepts AUTH default <anything> when nopass.
				if string(args[i+1]) != "default" {
					c.WriteError("WRONGPASS invalid username-password pair or user is disabled.")
					return
				}
			} else if !s.authenticate(c, args[i+1], args[i+2]) {
				s.wrongPass(ctx, c)
				return
			}
			i += 2
		case eqFold(args[i], "SETNAME") && i+1 < len(args):
			name, setName = args[i+1], true
			i++
		default:
			c.WriteError("ERR Syntax error in HELLO option '" + clip(args[i]) + "'")
			return
		}
	}
	if !c.authed {
		c.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if setName {
		if !validClientName(name) {
			c.WriteError("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.setName(string(name))
	}
	c.WriteArray(14)
	c.WriteBulkString("server")
	c.WriteBulkString("redis")
	c.WriteBulkString("version")
	c.WriteBulkString(s.cfg.Version)
	c.WriteBulkString("proto")
	c.WriteInt64(2)
	c.WriteBulkString("id")
	c.WriteInt64(c.id)
	c.WriteBulkString("mode")
	c.WriteBulkString("cluster")
	c.WriteBulkString("role")
	c.WriteBulkString("master")
	c.WriteBulkString("modules")
	c.WriteArray(0)
}

func validClientName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

// ---- COMMAND ----

func cmdCommand(s *Server, _ context.Context, c *session, args [][]byte) {
	if len(args) == 1 {
		names := s.commandNames()
		c.WriteArray(len(names))
		for _, n := range names {
			writeCommandInfo(c, s.cmds[n])
		}
		return
	}
	sub := args[1]
	switch {
	case eqFold(sub, "COUNT") && len(args) == 2:
		c.WriteInt64(int64(len(s.cmds)))
	case eqFold(sub, "INFO"):
		names := args[2:]
		if len(names) == 0 {
			all := s.commandNames()
			c.WriteArray(len(all))
			for _, n := range all {
				writeCommandInfo(c, s.cmds[n])
			}
			return
		}
		c.WriteArray(len(names))
		for _, n := range names {
			if cmd := s.cmds[strings.ToLower(string(n))]; cmd != nil {
				writeCommandInfo(c, cmd)
			} else {
				c.WriteNull()
			}
		}
	case eqFold(sub, "DOCS"):
		var names []string
		if len(args) == 2 {
			names = s.commandNames()
		} else {
			for _, a := range args[2:] {
				if n := strings.ToLower(string(a)); s.cmds[n] != nil {
					names = append(names, n)
				}
			}
		}
		c.WriteArray(2 * len(names))
		for _, n := range names {
			writeCommandDocs(c, n)
		}
	case eqFold(sub, "LIST") && len(args) == 2:
		names := s.commandNames()
		c.WriteArray(len(names))
		for _, n := range names {
			c.WriteBulkString(n)
		}
	default:
		c.WriteError("ERR unknown subcommand or wrong number of arguments for '" + clip(sub) + "'. Try COMMAND HELP.")
	}
}

func (s *Server) commandNames() []string {
	names := make([]string, 0, len(s.cmds))
	for n := range s.cmds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// writeCommandInfo writes Redis 7's 10-element COMMAND entry.
func writeCommandInfo(c *session, cmd *command) {
	c.WriteArray(10)
	c.WriteBulkString(cmd.name)
	c.WriteInt64(int64(cmd.arity))
	c.WriteArray(len(cmd.flags))
	for _, f := range cmd.flags {
		c.WriteString(f)
	}
	c.WriteInt64(int64(cmd.first))
	c.WriteInt64(int64(cmd.last))
	c.WriteInt64(int64(cmd.step))
	c.WriteArray(0) // ACL categories
	c.WriteArray(0) // tips
	c.WriteArray(0) // key specs
	c.WriteArray(0) // subcommands
}

// ---- data commands ----

func cmdGet(s *Server, ctx context.Context, c *session, args [][]byte) {
	v, _, err := c.be(s).Get(ctx, args[1])
	switch {
	case errors.Is(err, ErrNotFound):
		c.WriteNull()
	case err != nil:
		s.replyErr(c, err)
	default:
		c.WriteBulk(v)
	}
}

func cmdSet(s *Server, ctx context.Context, c *session, args [][]byte) {
	var opt SetOptions
	expiry := false
	for i := 3; i < len(args); i++ {
		a := args[i]
		switch {
		case eqFold(a, "NX") && !opt.XX:
			opt.NX = true
		case eqFold(a, "XX") && !opt.NX:
			opt.XX = true
		case eqFold(a, "GET"):
			opt.Get = true
		case eqFold(a, "KEEPTTL") && !expiry:
			opt.KeepTTL, expiry = true, true
		case (eqFold(a, "EX") || eqFold(a, "PX") || eqFold(a, "EXAT") || eqFold(a, "PXAT")) && !expiry && i+1 < len(args):
			i++
			n, ok := parseInt(args[i])
			if !ok {
				c.WriteError(errNotInt)
				return
			}
			at, ok := expireAt(s, a, n)
			if !ok || n <= 0 {
				c.WriteError("ERR invalid expire time in 'set' command")
				return
			}
			opt.ExpireAtMs, expiry = at, true
		default:
			c.WriteError(errSyntax)
			return
		}
	}
	r, err := c.be(s).Set(ctx, args[1], args[2], opt)
	switch {
	case err != nil:
		s.replyErr(c, err)
	case opt.Get && r.OldFound:
		c.WriteBulk(r.Old)
	case opt.Get, !r.Applied:
		c.WriteNull()
	default:
		c.WriteString("OK")
	}
}

func cmdSetNX(s *Server, ctx context.Context, c *session, args [][]byte) {
	r, err := c.be(s).Set(ctx, args[1], args[2], SetOptions{NX: true})
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(b2i(r.Applied))
}

// cmdSetEX is SETEX key seconds value and PSETEX key ms value.
func cmdSetEX(s *Server, ctx context.Context, c *session, args [][]byte) {
	n, ok := parseInt(args[2])
	if !ok {
		c.WriteError(errNotInt)
		return
	}
	unit := "EX"
	if eqFold(args[0], "PSETEX") {
		unit = "PX"
	}
	at, ok := expireAt(s, []byte(unit), n)
	if !ok || n <= 0 {
		c.WriteError("ERR invalid expire time in '" + strings.ToLower(string(args[0])) + "' command")
		return
	}
	if _, err := c.be(s).Set(ctx, args[1], args[3], SetOptions{ExpireAtMs: at}); err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteString("OK")
}

// expireAt turns an EX/PX/EXAT/PXAT (or EXPIRE-family) amount into Unix ms;
// false on overflow.
func expireAt(s *Server, unit []byte, n int64) (int64, bool) {
	var ms int64
	switch {
	case eqFold(unit, "EX"), eqFold(unit, "EXAT"), eqFold(unit, "EXPIRE"), eqFold(unit, "EXPIREAT"):
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return 0, false
		}
		ms = n * 1000
	default:
		ms = n
	}
	if eqFold(unit, "EX") || eqFold(unit, "PX") || eqFold(unit, "EXPIRE") || eqFold(unit, "PEXPIRE") {
		now := nowMs(s)
		if (ms > 0 && now > math.MaxInt64-ms) || (ms < 0 && now < math.MinInt64-ms) {
			return 0, false
		}
		ms += now
	}
	return ms, true
}

func cmdDel(s *Server, ctx context.Context, c *session, args [][]byte) {
	n, err := c.be(s).Del(ctx, args[1:]...)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(int64(n))
}

func cmdExists(s *Server, ctx context.Context, c *session, args [][]byte) {
	n, err := c.be(s).Exists(ctx, args[1:]...)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(int64(n))
}

func cmdType(s *Server, ctx context.Context, c *session, args [][]byte) {
	_, err := c.be(s).ExpireTime(ctx, args[1])
	switch {
	case errors.Is(err, ErrNotFound):
		c.WriteString("none")
	case err != nil:
		s.replyErr(c, err)
	default:
		c.WriteString("string")
	}
}

func cmdMGet(s *Server, ctx context.Context, c *session, args [][]byte) {
	vs, err := c.be(s).MGet(ctx, args[1:]...)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	if len(vs) != len(args)-1 {
		s.replyErr(c, errors.New("backend returned a wrong number of values"))
		return
	}
	c.WriteArray(len(vs))
	for _, v := range vs {
		if v == nil {
			c.WriteNull()
		} else {
			c.WriteBulk(v)
		}
	}
}

func cmdMSet(s *Server, ctx context.Context, c *session, args [][]byte) {
	if len(args)%2 != 1 {
		c.WriteError("ERR wrong number of arguments for 'mset' command")
		return
	}
	pairs := make([]KV, 0, len(args)/2)
	for i := 1; i+1 < len(args); i += 2 {
		pairs = append(pairs, KV{Key: args[i], Value: args[i+1]})
	}
	if err := c.be(s).MSet(ctx, pairs...); err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteString("OK")
}

func cmdIncr(s *Server, ctx context.Context, c *session, args [][]byte) {
	delta := int64(1)
	name := args[0]
	if len(args) == 3 {
		d, ok := parseInt(args[2])
		if !ok {
			c.WriteError(errNotInt)
			return
		}
		delta = d
	}
	if eqFold(name, "DECR") || eqFold(name, "DECRBY") {
		if delta == math.MinInt64 {
			c.WriteError("ERR decrement would overflow")
			return
		}
		delta = -delta
	}
	v, err := c.be(s).IncrBy(ctx, args[1], delta)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(v)
}

func cmdExpire(s *Server, ctx context.Context, c *session, args [][]byte) {
	n, ok := parseInt(args[2])
	if !ok {
		c.WriteError(errNotInt)
		return
	}
	at, ok := expireAt(s, args[0], n)
	if !ok {
		c.WriteError("ERR invalid expire time in '" + strings.ToLower(string(args[0])) + "' command")
		return
	}
	if at <= 0 {
		at = math.MinInt64 + 1 // in the past, never "no expiry"
	}
	set, err := c.be(s).Expire(ctx, args[1], at)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(b2i(set))
}

func cmdTTL(s *Server, ctx context.Context, c *session, args [][]byte) {
	at, err := c.be(s).ExpireTime(ctx, args[1])
	switch {
	case errors.Is(err, ErrNotFound):
		c.WriteInt64(-2)
		return
	case err != nil:
		s.replyErr(c, err)
		return
	case at == 0:
		c.WriteInt64(-1)
		return
	}
	name := args[0]
	switch {
	case eqFold(name, "EXPIRETIME"):
		c.WriteInt64((at + 500) / 1000)
	case eqFold(name, "PEXPIRETIME"):
		c.WriteInt64(at)
	default:
		ms := max(at-nowMs(s), 0)
		if eqFold(name, "TTL") {
			c.WriteInt64((ms + 500) / 1000)
		} else {
			c.WriteInt64(ms)
		}
	}
}

func cmdPersist(s *Server, ctx context.Context, c *session, args [][]byte) {
	ok, err := c.be(s).Persist(ctx, args[1])
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(b2i(ok))
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func cmdDBSize(s *Server, ctx context.Context, c *session, _ [][]byte) {
	var n int64
	var err error
	if ns, ok := s.b.(NodeScanner); ok && c.nodeScope && c.txb == nil {
		n, err = ns.DBSizeNode(ctx)
	} else {
		n, err = c.be(s).DBSize(ctx)
	}
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(n)
}

// ScanCountMax caps SCAN's COUNT hint so one call's work stays bounded.
const ScanCountMax = 100000

// ScanPatternBytesMax bounds a MATCH pattern (Match is O(pattern·key)).
const ScanPatternBytesMax = 4096

func cmdScan(s *Server, ctx context.Context, c *session, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.WriteError("ERR invalid cursor")
		return
	}
	var pattern []byte
	count := 10
	typeNone := false
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.WriteError(errSyntax)
			return
		}
		a, v := args[i], args[i+1]
		switch {
		case eqFold(a, "MATCH"):
			if len(v) > ScanPatternBytesMax {
				c.WriteError("ERR pattern too long")
				return
			}
			pattern = v
			if len(v) == 1 && v[0] == '*' {
				pattern = nil
			}
		case eqFold(a, "COUNT"):
			n, ok := parseInt(v)
			if !ok {
				c.WriteError(errNotInt)
				return
			}
			if n < 1 {
				c.WriteError(errSyntax)
				return
			}
			count = int(min(n, ScanCountMax))
		case eqFold(a, "TYPE"):
			typeNone = !eqFold(v, "STRING")
		default:
			c.WriteError(errSyntax)
			return
		}
	}
	var next uint64
	var keys [][]byte
	if ns, ok := s.b.(NodeScanner); ok && c.nodeScope {
		next, keys, err = ns.ScanNode(ctx, cursor, pattern, count)
	} else {
		next, keys, err = s.b.Scan(ctx, cursor, pattern, count)
	}
	if err != nil {
		s.replyErr(c, err)
		return
	}
	if typeNone {
		keys = nil
	}
	c.WriteArray(2)
	c.WriteBulkString(strconv.FormatUint(next, 10))
	c.WriteArray(len(keys))
	for _, k := range keys {
		c.WriteBulk(k)
	}
}

// ---- CLUSTER ----

func cmdCluster(s *Server, _ context.Context, c *session, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "SLOTS") && len(args) == 2:
		clusterSlots(s, c)
	case eqFold(sub, "SHARDS") && len(args) == 2:
		clusterShards(s, c)
	case eqFold(sub, "NODES") && len(args) == 2:
		clusterNodes(s, c)
	case eqFold(sub, "MYID") && len(args) == 2:
		c.WriteBulkString(s.b.ClusterView().Self)
	case eqFold(sub, "KEYSLOT") && len(args) == 3:
		c.WriteInt64(int64(router.Bucket(args[2])))
	case eqFold(sub, "INFO") && len(args) == 2:
		clusterInfo(s, c)
	case eqFold(sub, "HELP") && len(args) == 2:
		lines := []string{
			"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"INFO", "    Return information about the cluster.",
			"KEYSLOT <key>", "    Return the hash slot for <key>.",
			"MYID", "    Return the node id.",
			"NODES", "    Return cluster configuration seen by node.",
			"SHARDS", "    Return information about slot range mappings and the nodes associated with them.",
			"SLOTS", "    Return information about slots range mappings.",
		}
		c.WriteArray(len(lines))
		for _, l := range lines {
			c.WriteString(l)
		}
	case eqFold(sub, "SLOTS"), eqFold(sub, "SHARDS"), eqFold(sub, "NODES"), eqFold(sub, "MYID"), eqFold(sub, "KEYSLOT"), eqFold(sub, "INFO"):
		c.WriteError("ERR wrong number of arguments for 'cluster|" + strings.ToLower(string(sub)) + "' command")
	default:
		c.WriteError("ERR unknown subcommand '" + clip(sub) + "'. Try CLUSTER HELP.")
	}
}

func clusterSlots(s *Server, c *session) {
	v := s.b.ClusterView()
	n := 0
	for _, nd := range v.Nodes {
		n += len(nd.Ranges)
	}
	c.WriteArray(n)
	for _, nd := range v.Nodes {
		host, port := hostPort(nd.Addr, nd.ID == v.Self, c.local)
		for _, r := range nd.Ranges {
			c.WriteArray(3)
			c.WriteInt64(int64(r.Start))
			c.WriteInt64(int64(r.End))
			c.WriteArray(3)
			c.WriteBulkString(host)
			c.WriteInt64(int64(port))
			c.WriteBulkString(nd.ID)
		}
	}
}

func clusterShards(s *Server, c *session) {
	v := s.b.ClusterView()
	c.WriteArray(len(v.Nodes))
	for _, nd := range v.Nodes {
		host, port := hostPort(nd.Addr, nd.ID == v.Self, c.local)
		c.WriteArray(4)
		c.WriteBulkString("slots")
		c.WriteArray(2 * len(nd.Ranges))
		for _, r := range nd.Ranges {
			c.WriteInt64(int64(r.Start))
			c.WriteInt64(int64(r.End))
		}
		c.WriteBulkString("nodes")
		c.WriteArray(1)
		c.WriteArray(14)
		c.WriteBulkString("id")
		c.WriteBulkString(nd.ID)
		c.WriteBulkString("port")
		c.WriteInt64(int64(port))
		c.WriteBulkString("ip")
		c.WriteBulkString(host)
		c.WriteBulkString("endpoint")
		c.WriteBulkString(host)
		c.WriteBulkString("role")
		c.WriteBulkString("master")
		c.WriteBulkString("replication-offset")
		c.WriteInt64(0)
		c.WriteBulkString("health")
		if nd.Health == HealthFail {
			c.WriteBulkString("failed")
		} else {
			c.WriteBulkString("online")
		}
	}
}

func clusterNodes(s *Server, c *session) {
	v := s.b.ClusterView()
	var b strings.Builder
	epoch := strconv.FormatUint(v.Epoch, 10)
	for _, nd := range v.Nodes {
		host, port := hostPort(nd.Addr, nd.ID == v.Self, c.local)
		bus := port + 10000
		if bus > 65535 {
			bus = 0
		}
		flags, link := "master", "connected"
		if nd.ID == v.Self {
			flags = "myself,master"
		}
		switch nd.Health {
		case HealthFail:
			flags, link = flags+",fail", "disconnected"
		case HealthPFail:
			flags += ",fail?"
		}
		b.WriteString(nd.ID + " " + host + ":" + strconv.Itoa(port) + "@" + strconv.Itoa(bus) + " " + flags + " - 0 0 " + epoch + " " + link)
		for _, r := range nd.Ranges {
			b.WriteByte(' ')
			b.WriteString(strconv.Itoa(int(r.Start)))
			if r.End != r.Start {
				b.WriteByte('-')
				b.WriteString(strconv.Itoa(int(r.End)))
			}
		}
		b.WriteByte('\n')
	}
	c.WriteBulkString(b.String())
}

func clusterInfo(s *Server, c *session) {
	v := s.b.ClusterView()
	state, assigned, ok, pfail, fail := v.ClusterState()
	size := 0
	for _, nd := range v.Nodes {
		if len(nd.Ranges) > 0 {
			size++
		}
	}
	epoch := strconv.FormatUint(v.Epoch, 10)
	c.WriteBulkString("cluster_enabled:1\r\n" +
		"cluster_state:" + state + "\r\n" +
		"cluster_slots_assigned:" + strconv.Itoa(assigned) + "\r\n" +
		"cluster_slots_ok:" + strconv.Itoa(ok) + "\r\n" +
		"cluster_slots_pfail:" + strconv.Itoa(pfail) + "\r\n" +
		"cluster_slots_fail:" + strconv.Itoa(fail) + "\r\n" +
		"cluster_known_nodes:" + strconv.Itoa(len(v.Nodes)) + "\r\n" +
		"cluster_size:" + strconv.Itoa(size) + "\r\n" +
		"cluster_current_epoch:" + epoch + "\r\n" +
		"cluster_my_epoch:" + epoch + "\r\n")
}
