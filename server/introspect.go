package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbx-kv/dbx/kv"
)

// introspectionCommands are the commands operators and their tools use to
// look at a node: CLIENT, CONFIG, SLOWLOG, LATENCY, MEMORY, MONITOR, TIME,
// ROLE, WAIT, STRLEN (what redis-cli --bigkeys sizes strings with).
func introspectionCommands() []*command {
	return []*command{
		{name: "client", arity: -2, flags: []string{"fast"}, fn: cmdClient},
		{name: "config", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, fn: cmdConfig},
		{name: "slowlog", arity: -2, flags: []string{"admin", "loading", "stale"}, fn: cmdSlowlog},
		{name: "latency", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, fn: cmdLatency},
		{name: "memory", arity: -2, flags: []string{"readonly"}, first: 2, last: 2, step: 1, backend: true, fn: cmdMemory},
		{name: "monitor", arity: 1, flags: []string{"admin", "noscript", "loading", "stale"}, fn: cmdMonitor},
		{name: "time", arity: 1, flags: []string{"loading", "stale", "fast"}, fn: cmdTime},
		{name: "role", arity: 1, flags: []string{"noscript", "loading", "stale", "fast"}, fn: cmdRole},
		{name: "wait", arity: 3, flags: []string{"noscript"}, fn: cmdWait},
		{name: "strlen", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, backend: true, fn: cmdStrlen},
	}
}

func newRunID() string {
	var b [20]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *session) setName(name string) {
	c.name = name
	if c.info != nil {
		c.info.name.Store(&name)
	}
}

func wrongArgs(c *session, cmd string, sub []byte) {
	c.WriteError("ERR wrong number of arguments for '" + cmd + "|" + strings.ToLower(string(sub)) + "' command")
}

func unknownSub(c *session, cmd string, sub []byte) {
	c.WriteError("ERR unknown subcommand '" + clip(sub) + "'. Try " + cmd + " HELP.")
}

func writeHelp(c *session, lines []string) {
	c.WriteArray(len(lines))
	for _, l := range lines {
		c.WriteString(l)
	}
}

// ---- CLIENT ----

func cmdClient(s *Server, _ context.Context, c *session, args [][]byte) {
	sub := args[1]
	n := len(args)
	switch {
	case eqFold(sub, "ID") && n == 2:
		c.WriteInt64(c.id)
	case eqFold(sub, "GETNAME") && n == 2:
		if c.name == "" {
			c.WriteNull()
		} else {
			c.WriteBulkString(c.name)
		}
	case eqFold(sub, "SETNAME") && n == 3:
		if !validClientName(args[2]) {
			c.WriteError("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.setName(string(args[2]))
		c.WriteString("OK")
	case eqFold(sub, "SETINFO") && n == 4:
		v := string(args[3])
		switch {
		case !validClientName(args[3]) && v != "":
			c.WriteError("ERR " + strings.ToLower(string(args[2])) + " cannot contain spaces, newlines or special characters.")
			return
		case len(v) > slowlogArgBytesMax:
			c.WriteError("ERR " + strings.ToLower(string(args[2])) + " is longer than " + strconv.Itoa(slowlogArgBytesMax) + " bytes")
			return
		case eqFold(args[2], "LIB-NAME"):
			if c.info != nil {
				c.info.libName.Store(&v)
			}
		case eqFold(args[2], "LIB-VER"):
			if c.info != nil {
				c.info.libVer.Store(&v)
			}
		default:
			c.WriteError("ERR Unrecognized option '" + clip(args[2]) + "'")
			return
		}
		c.WriteString("OK")
	case eqFold(sub, "INFO") && n == 2:
		if c.info == nil {
			c.WriteBulkString("")
			return
		}
		c.WriteBulkString(c.info.line(time.Now()) + "\n")
	case eqFold(sub, "LIST"):
		clientList(s, c, args[2:])
	case eqFold(sub, "KILL") && n >= 3:
		clientKill(s, c, args[2:])
	case (eqFold(sub, "NO-EVICT") || eqFold(sub, "NO-TOUCH")) && n == 3:
		on := eqFold(args[2], "ON")
		if !on && !eqFold(args[2], "OFF") {
			c.WriteError(errSyntax)
			return
		}
		// dbx never evicts clients nor keys (no maxmemory): NO-EVICT is
		// accepted and shown in CLIENT LIST, as is NO-TOUCH (no LRU).
		if c.info != nil {
			if eqFold(sub, "NO-EVICT") {
				c.info.noEvict.Store(on)
			} else {
				c.info.noTouch.Store(on)
			}
		}
		c.WriteString("OK")
	case eqFold(sub, "PAUSE") && (n == 3 || n == 4):
		ms, ok := parseInt(args[2])
		if !ok || ms < 0 {
			c.WriteError("ERR timeout is not an integer or out of range")
			return
		}
		if time.Duration(ms)*time.Millisecond > PauseMax || ms > int64(PauseMax/time.Millisecond) {
			c.WriteError("ERR timeout is over " + strconv.FormatInt(int64(PauseMax/time.Millisecond), 10) + " ms (dbx's bound on CLIENT PAUSE)")
			return
		}
		all := true
		if n == 4 {
			switch {
			case eqFold(args[3], "WRITE"):
				all = false
			case eqFold(args[3], "ALL"):
			default:
				c.WriteError(errSyntax)
				return
			}
		}
		s.setPause(&pause{until: time.Now().Add(time.Duration(ms) * time.Millisecond), all: all, done: make(chan struct{})})
		c.WriteString("OK")
	case eqFold(sub, "UNPAUSE") && n == 2:
		s.setPause(nil)
		c.WriteString("OK")
	case eqFold(sub, "HELP") && n == 2:
		writeHelp(c, []string{
			"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GETNAME", "    Return the name of the current connection.",
			"ID", "    Return the ID of the current connection.",
			"INFO", "    Return information about the current client connection.",
			"KILL <ip:port>", "    Kill connection made from <ip:port>.",
			"KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options: ID, ADDR, LADDR, USER, TYPE, MAXAGE, SKIPME.",
			"LIST [TYPE normal|master|replica|pubsub] [ID <id> ...]", "    Return information about client connections.",
			"NO-EVICT (ON|OFF)", "    Accepted; dbx never evicts clients.",
			"NO-TOUCH (ON|OFF)", "    Accepted; dbx keeps no LRU.",
			"PAUSE <timeout> [WRITE|ALL]", "    Suspend clients for <timeout> ms (at most one hour); CLIENT stays available.",
			"SETINFO <LIB-NAME|LIB-VER> <value>", "    Set client library name or version.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"UNPAUSE", "    Stop the current client pause, resuming traffic.",
		})
	case eqFold(sub, "ID"), eqFold(sub, "GETNAME"), eqFold(sub, "SETNAME"), eqFold(sub, "SETINFO"), eqFold(sub, "INFO"),
		eqFold(sub, "KILL"), eqFold(sub, "NO-EVICT"), eqFold(sub, "NO-TOUCH"), eqFold(sub, "PAUSE"), eqFold(sub, "UNPAUSE"), eqFold(sub, "HELP"):
		wrongArgs(c, "client", sub)
	default:
		unknownSub(c, "CLIENT", sub)
	}
}

func clientList(s *Server, c *session, opts [][]byte) {
	var f clientFilter
	for i := 0; i < len(opts); i++ {
		switch {
		case eqFold(opts[i], "TYPE") && i+1 < len(opts):
			i++
			t := strings.ToLower(string(opts[i]))
			switch t {
			case "normal", "master", "replica", "slave", "pubsub":
			default:
				c.WriteError("ERR Unknown client type '" + clip(opts[i]) + "'")
				return
			}
			f.typ = t
		case eqFold(opts[i], "ID") && i+1 < len(opts):
			for i++; i < len(opts); i++ {
				id, ok := parseInt(opts[i])
				if !ok || id <= 0 {
					c.WriteError("ERR Invalid client ID")
					return
				}
				f.ids = append(f.ids, id)
			}
		default:
			c.WriteError(errSyntax)
			return
		}
	}
	now := time.Now()
	var b strings.Builder
	for _, cc := range s.clients() {
		if f.match(cc.info, 0, now) {
			b.WriteString(cc.info.line(now))
			b.WriteByte('\n')
		}
	}
	c.WriteBulkString(b.String())
}

func clientKill(s *Server, c *session, opts [][]byte) {
	now := time.Now()
	if len(opts) == 1 { // old form: CLIENT KILL addr
		for _, cc := range s.clients() {
			if cc.info.addr == string(opts[0]) {
				s.killOrQuit(c, cc)
				c.WriteString("OK")
				return
			}
		}
		c.WriteError("ERR No such client")
		return
	}
	f := clientFilter{skipMe: true}
	if len(opts)%2 != 0 {
		c.WriteError(errSyntax)
		return
	}
	for i := 0; i+1 < len(opts); i += 2 {
		k, v := opts[i], opts[i+1]
		switch {
		case eqFold(k, "ID"):
			id, ok := parseInt(v)
			if !ok || id <= 0 {
				c.WriteError("ERR client-id should be greater than 0")
				return
			}
			f.ids = append(f.ids, id)
		case eqFold(k, "ADDR"):
			f.addr = string(v)
		case eqFold(k, "LADDR"):
			f.laddr = string(v)
		case eqFold(k, "USER"):
			f.user = string(v)
		case eqFold(k, "TYPE"):
			f.typ = strings.ToLower(string(v))
			switch f.typ {
			case "normal", "master", "replica", "slave", "pubsub":
			default:
				c.WriteError("ERR Unknown client type '" + clip(v) + "'")
				return
			}
		case eqFold(k, "MAXAGE"):
			a, ok := parseInt(v)
			if !ok || a < 0 {
				c.WriteError(errNotInt)
				return
			}
			f.maxAge = a
		case eqFold(k, "SKIPME"):
			switch {
			case eqFold(v, "YES"):
				f.skipMe = true
			case eqFold(v, "NO"):
				f.skipMe = false
			default:
				c.WriteError(errSyntax)
				return
			}
		default:
			c.WriteError(errSyntax)
			return
		}
	}
	n := 0
	for _, cc := range s.clients() {
		if f.match(cc.info, c.id, now) {
			s.killOrQuit(c, cc)
			n++
		}
	}
	c.WriteInt64(int64(n))
}

// killOrQuit kills cc, or, when it is the caller's own connection, ends it
// after this reply.
func (s *Server) killOrQuit(c *session, cc *conn) {
	if cc.sess == c {
		c.quit = true
		return
	}
	s.kill(cc)
}

// ---- CONFIG ----

// setting is one CONFIG GET/SET parameter.
type setting struct {
	name string
	get  func(s *Server) string
	// set validates and applies v; nil: immutable.
	set func(s *Server, v string) error
}

func intSetting(lo, hi int64, apply func(s *Server, n int64)) func(*Server, string) error {
	return func(s *Server, v string) error {
		n, ok := parseInt([]byte(v))
		if !ok {
			return errors.New("argument couldn't be parsed into an integer")
		}
		if n < lo || n > hi {
			return errors.New("argument must be between " + strconv.FormatInt(lo, 10) + " and " + strconv.FormatInt(hi, 10) + " inclusive")
		}
		apply(s, n)
		return nil
	}
}

func fixed(v string) func(*Server) string { return func(*Server) string { return v } }

// settings are the CONFIG parameters of the server itself; Config.Settings
// adds the node's (read-only) ones.
var settings = []setting{
	{name: "slowlog-log-slower-than", get: func(s *Server) string { return strconv.FormatInt(s.slowThreshold.Load(), 10) },
		set: intSetting(-1, 1<<40, func(s *Server, n int64) { s.slowThreshold.Store(n) })},
	{name: "slowlog-max-len", get: func(s *Server) string { return strconv.Itoa(s.slow.getMaxLen()) },
		set: intSetting(0, SlowlogLenMax, func(s *Server, n int64) { s.slow.setMaxLen(int(n)) })},
	{name: "latency-monitor-threshold", get: func(s *Server) string { return strconv.FormatInt(s.latencyThreshMs.Load(), 10) },
		set: intSetting(0, LatencyThresholdMsMax, func(s *Server, n int64) { s.latencyThreshMs.Store(n) })},
	{name: "maxclients", get: func(s *Server) string { return strconv.FormatInt(s.connsMax.Load(), 10) },
		set: intSetting(1, ConnsMaxLimit, func(s *Server, n int64) { s.connsMax.Store(n) })},
	{name: "timeout", get: func(s *Server) string { return strconv.FormatInt(s.idleTimeout.Load()/int64(time.Second), 10) },
		set: intSetting(0, IdleTimeoutSecondsMax, func(s *Server, n int64) { s.idleTimeout.Store(n * int64(time.Second)) })},
	// What dbx does, in Redis's terms: no RDB saves (the WAL makes every
	// acknowledged write durable; global snapshots are taken on demand),
	// an append-only log always on, no eviction, one database, cluster mode.
	{name: "save", get: fixed("")},
	{name: "appendonly", get: fixed("yes")},
	{name: "databases", get: fixed("1")},
	{name: "cluster-enabled", get: fixed("yes")},
	{name: "maxmemory", get: fixed("0")},
	{name: "maxmemory-policy", get: fixed("noeviction")},
	{name: "client-query-buffer-limit", get: func(s *Server) string { return strconv.Itoa(s.limits.RequestBytesMax) }},
	{name: "proto-max-bulk-len", get: func(s *Server) string { return strconv.Itoa(s.limits.BulkBytesMax) }},
	{name: "hz", get: fixed("10")},
}

func (s *Server) setting(name string) (setting, bool) {
	if st, ok := s.settingOwn(name); ok {
		return st, true
	}
	for _, kv := range s.cfg.Settings {
		if kv[0] == name {
			v := kv[1]
			return setting{name: name, get: fixed(v)}, true
		}
	}
	return setting{}, false
}

// allSettings are the server's settings, then the node's not shadowed by
// one of them.
func (s *Server) allSettings() []setting {
	out := append([]setting(nil), settings...)
	for _, kv := range s.cfg.Settings {
		if _, ok := s.settingOwn(kv[0]); !ok {
			out = append(out, setting{name: kv[0], get: fixed(kv[1])})
		}
	}
	return out
}

func (s *Server) settingOwn(name string) (setting, bool) {
	for _, st := range settings {
		if st.name == name {
			return st, true
		}
	}
	return setting{}, false
}

func cmdConfig(s *Server, _ context.Context, c *session, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "GET") && len(args) >= 3:
		var out []string
		seen := map[string]bool{}
		for _, pat := range args[2:] {
			p := []byte(strings.ToLower(string(pat)))
			for _, st := range s.allSettings() {
				if !seen[st.name] && kv.Match(p, []byte(st.name)) {
					seen[st.name] = true
					out = append(out, st.name, st.get(s))
				}
			}
		}
		c.WriteArray(len(out))
		for _, v := range out {
			c.WriteBulkString(v)
		}
	case eqFold(sub, "SET") && len(args) >= 4 && len(args)%2 == 0:
		type change struct {
			st setting
			v  string
		}
		var changes []change
		for i := 2; i+1 < len(args); i += 2 {
			name := strings.ToLower(string(args[i]))
			st, ok := s.setting(name)
			switch {
			case !ok:
				c.WriteError("ERR Unknown option or number of arguments for CONFIG SET - '" + clip(args[i]) + "'")
				return
			case st.set == nil:
				c.WriteError("ERR CONFIG SET failed (possibly related to argument '" + name + "') - can't set immutable config (dbx: set it with its flag or DBX_ variable and restart)")
				return
			}
			changes = append(changes, change{st, string(args[i+1])})
		}
		// Every value is validated before any is applied (Redis's
		// all-or-nothing).
		for _, ch := range changes {
			if err := validateOnly(ch.st, ch.v); err != nil {
				c.WriteError("ERR CONFIG SET failed (possibly related to argument '" + ch.st.name + "') - " + err.Error())
				return
			}
		}
		for _, ch := range changes {
			ch.st.set(s, ch.v)
		}
		c.WriteString("OK")
	case eqFold(sub, "RESETSTAT") && len(args) == 2:
		s.resetStats()
		c.WriteString("OK")
	case eqFold(sub, "REWRITE") && len(args) == 2:
		c.WriteError("ERR CONFIG REWRITE is not supported by dbx: settings come from flags, DBX_* environment variables and --config; CONFIG SET lasts until the node restarts")
	case eqFold(sub, "HELP") && len(args) == 2:
		writeHelp(c, []string{
			"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
			"SET <directive> <value>", "    Set the configuration <directive> to <value> (slowlog-*, latency-monitor-threshold, maxclients, timeout).",
			"RESETSTAT", "    Reset statistics reported by the INFO command.",
			"REWRITE", "    Not supported: dbx's settings come from flags, the environment and --config.",
		})
	case eqFold(sub, "GET"), eqFold(sub, "SET"), eqFold(sub, "RESETSTAT"), eqFold(sub, "REWRITE"), eqFold(sub, "HELP"):
		wrongArgs(c, "config", sub)
	default:
		unknownSub(c, "CONFIG", sub)
	}
}

// validateOnly runs st's setter against a throwaway server, so a bad
// value among several leaves every setting unchanged.
func validateOnly(st setting, v string) error {
	var scratch Server
	return st.set(&scratch, v)
}

// resetStats is CONFIG RESETSTAT: commandstats, errorstats, latencystats.
func (s *Server) resetStats() {
	for _, cmd := range s.cmds {
		cmd.st.reset()
	}
	for i := range s.errStats.n {
		s.errStats.n[i].Store(0)
	}
}

// ---- SLOWLOG, LATENCY ----

func cmdSlowlog(s *Server, _ context.Context, c *session, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "GET") && len(args) <= 3:
		n := 10
		if len(args) == 3 {
			v, ok := parseInt(args[2])
			if !ok || v < -1 {
				c.WriteError("ERR count should be greater than or equal to -1")
				return
			}
			n = int(min(v, SlowlogLenMax))
		}
		es := s.slow.newest(n)
		c.WriteArray(len(es))
		for _, e := range es {
			c.WriteArray(6)
			c.WriteInt64(e.id)
			c.WriteInt64(e.at)
			c.WriteInt64(e.usec)
			c.WriteArray(len(e.args))
			for _, a := range e.args {
				c.WriteBulkString(a)
			}
			c.WriteBulkString(e.addr)
			c.WriteBulkString(e.client)
		}
	case eqFold(sub, "LEN") && len(args) == 2:
		c.WriteInt64(int64(s.slow.len()))
	case eqFold(sub, "RESET") && len(args) == 2:
		s.slow.reset()
		c.WriteString("OK")
	case eqFold(sub, "HELP") && len(args) == 2:
		writeHelp(c, []string{
			"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET [<count>]", "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
			"LEN", "    Return the length of the slowlog.",
			"RESET", "    Reset the slowlog.",
		})
	case eqFold(sub, "GET"), eqFold(sub, "LEN"), eqFold(sub, "RESET"), eqFold(sub, "HELP"):
		wrongArgs(c, "slowlog", sub)
	default:
		unknownSub(c, "SLOWLOG", sub)
	}
}

func cmdLatency(s *Server, _ context.Context, c *session, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "LATEST") && len(args) == 2:
		evs := s.latency.snapshot()
		names := sortedKeys(evs)
		c.WriteArray(len(names))
		for _, name := range names {
			e := evs[name]
			last := e.hist[len(e.hist)-1]
			c.WriteArray(4)
			c.WriteBulkString(name)
			c.WriteInt64(last.at)
			c.WriteInt64(last.ms)
			c.WriteInt64(e.max)
		}
	case eqFold(sub, "HISTORY") && len(args) == 3:
		e := s.latency.snapshot()[string(args[2])]
		c.WriteArray(len(e.hist))
		for _, h := range e.hist {
			c.WriteArray(2)
			c.WriteInt64(h.at)
			c.WriteInt64(h.ms)
		}
	case eqFold(sub, "RESET"):
		names := make([]string, 0, len(args)-2)
		for _, a := range args[2:] {
			names = append(names, string(a))
		}
		c.WriteInt64(int64(s.latency.reset(names)))
	case eqFold(sub, "DOCTOR") && len(args) == 2:
		evs := s.latency.snapshot()
		var b strings.Builder
		if s.latencyThreshMs.Load() == 0 {
			b.WriteString("The latency monitor is disabled: CONFIG SET latency-monitor-threshold <milliseconds> enables it.\n")
		} else if len(evs) == 0 {
			b.WriteString("No latency spike over latency-monitor-threshold (" + strconv.FormatInt(s.latencyThreshMs.Load(), 10) + " ms) was observed.\n")
		}
		for _, name := range sortedKeys(evs) {
			e := evs[name]
			b.WriteString(name + ": " + strconv.Itoa(len(e.hist)) + " latency spikes, latest " + strconv.FormatInt(e.latest().ms, 10) + " ms, worst " + strconv.FormatInt(e.max, 10) + " ms. See SLOWLOG GET for the commands.\n")
		}
		c.WriteBulkString(b.String())
	case eqFold(sub, "HELP") && len(args) == 2:
		writeHelp(c, []string{
			"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"DOCTOR", "    Return a human readable latency analysis report.",
			"HISTORY <event>", "    Return time-latency samples for the <event> class.",
			"LATEST", "    Return the latest latency samples for all events.",
			"RESET [<event> ...]", "    Reset latency data of one or more <event> classes (default: reset all data for all event classes).",
		})
	case eqFold(sub, "LATEST"), eqFold(sub, "HISTORY"), eqFold(sub, "DOCTOR"), eqFold(sub, "HELP"):
		wrongArgs(c, "latency", sub)
	default:
		unknownSub(c, "LATENCY", sub)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ---- MEMORY, STRLEN ----

// entryOverheadBytes approximates what one key costs beyond its key and
// value bytes: the engine entry's bucket prefix, sequence number, expiry
// and lengths, and its share of index and filter.
const entryOverheadBytes = 48

func cmdMemory(s *Server, ctx context.Context, c *session, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "USAGE") && (len(args) == 3 || len(args) == 5):
		if len(args) == 5 {
			if !eqFold(args[3], "SAMPLES") {
				c.WriteError(errSyntax)
				return
			}
			if n, ok := parseInt(args[4]); !ok || n < 0 {
				c.WriteError(errNotInt)
				return
			}
		}
		v, _, err := c.be(s).Get(ctx, args[2])
		switch {
		case errors.Is(err, ErrNotFound):
			c.WriteNull()
		case err != nil:
			s.replyErr(c, err)
		default:
			c.WriteInt64(int64(len(args[2]) + len(v) + entryOverheadBytes))
		}
	case eqFold(sub, "HELP") && len(args) == 2:
		writeHelp(c, []string{
			"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"USAGE <key> [SAMPLES <count>]", "    Return memory in bytes used by <key> and its value (key + value + " + strconv.Itoa(entryOverheadBytes) + " bytes of entry overhead).",
		})
	case eqFold(sub, "USAGE"), eqFold(sub, "HELP"):
		wrongArgs(c, "memory", sub)
	default:
		unknownSub(c, "MEMORY", sub)
	}
}

func cmdStrlen(s *Server, ctx context.Context, c *session, args [][]byte) {
	v, _, err := c.be(s).Get(ctx, args[1])
	switch {
	case errors.Is(err, ErrNotFound):
		c.WriteInt64(0)
	case err != nil:
		s.replyErr(c, err)
	default:
		c.WriteInt64(int64(len(v)))
	}
}

// ---- MONITOR, TIME, ROLE, WAIT ----

func cmdMonitor(s *Server, _ context.Context, c *session, _ [][]byte) {
	if c.conn == nil || c.txb != nil {
		c.WriteError("ERR MONITOR is not allowed here")
		return
	}
	m, ok := s.addMonitor(c.conn)
	if !ok {
		c.WriteError("ERR max number of MONITOR clients reached (" + strconv.Itoa(MonitorsMax) + ")")
		return
	}
	c.info.monitor.Store(true)
	c.monitor = m
	c.WriteString("OK")
}

func cmdTime(s *Server, _ context.Context, c *session, _ [][]byte) {
	now := s.cfg.Now()
	c.WriteArray(2)
	c.WriteBulkString(strconv.FormatInt(now.Unix(), 10))
	c.WriteBulkString(strconv.FormatInt(int64(now.Nanosecond()/1000), 10))
}

// ReplicationInfo is an optional Backend extension: what ROLE, WAIT and
// INFO replication say. Without it a node is a primary with no replicas
// (replication factor 1).
type ReplicationInfo interface {
	// Role is ROLE's reply: "master" with its offset and replicas.
	Role() (role string, offset int64, replicas []ReplicaInfo)
	// Wait blocks until numReplicas replicas acknowledged this
	// connection's writes or ctx ends, and returns how many did.
	Wait(ctx context.Context, numReplicas int) (int, error)
}

// ReplicaInfo is one replica in ROLE and INFO replication.
type ReplicaInfo struct {
	Addr   string
	Offset int64
}

func (s *Server) role() (string, int64, []ReplicaInfo) {
	if ri, ok := s.b.(ReplicationInfo); ok {
		return ri.Role()
	}
	return "master", 0, nil
}

func cmdRole(s *Server, _ context.Context, c *session, _ [][]byte) {
	role, off, reps := s.role()
	c.WriteArray(3)
	c.WriteBulkString(role)
	c.WriteInt64(off)
	c.WriteArray(len(reps))
	for _, r := range reps {
		host, port := hostPort(r.Addr, false, nil)
		c.WriteArray(3)
		c.WriteBulkString(host)
		c.WriteBulkString(strconv.Itoa(port))
		c.WriteBulkString(strconv.FormatInt(r.Offset, 10))
	}
}

// WaitTimeoutMax bounds WAIT's timeout (0, "forever" in Redis, waits this long).
const WaitTimeoutMax = time.Minute

func cmdWait(s *Server, _ context.Context, c *session, args [][]byte) {
	n, ok := parseInt(args[1])
	ms, ok2 := parseInt(args[2])
	switch {
	case !ok || n < 0 || n > 1<<20:
		c.WriteError(errNotInt)
		return
	case !ok2 || ms < 0:
		c.WriteError("ERR timeout is negative")
		return
	}
	ri, has := s.b.(ReplicationInfo)
	if !has || n == 0 {
		c.WriteInt64(0) // no replicas: nothing to wait for
		return
	}
	d := WaitTimeoutMax
	if ms > 0 && time.Duration(ms)*time.Millisecond < d {
		d = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(s.ctx, d)
	defer cancel()
	got, err := ri.Wait(ctx, int(n))
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.replyErr(c, err)
		return
	}
	c.WriteInt64(int64(got))
}
