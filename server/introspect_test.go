package server

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// infoFields parses an INFO reply (as rendered by rawClient: a Go-quoted
// bulk string) into section → field → value.
func infoFields(t *testing.T, reply string) map[string]map[string]string {
	t.Helper()
	text, err := strconv.Unquote(reply)
	if err != nil {
		t.Fatalf("INFO reply %.200s: %v", reply, err)
	}
	out := map[string]map[string]string{}
	var sec map[string]string
	for _, line := range strings.Split(text, "\r\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "# "):
			sec = map[string]string{}
			out[strings.ToLower(line[2:])] = sec
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || sec == nil {
				t.Fatalf("INFO line %q: not key:value in a section", line)
			}
			sec[k] = v
		}
	}
	return out
}

// expiringBackend is memBackend with INFO keyspace's counts.
type expiringBackend struct {
	*memBackend
	ks KeyspaceInfo
}

func (b expiringBackend) Keyspace(context.Context, bool) (KeyspaceInfo, error) { return b.ks, nil }

func TestInfoSections(t *testing.T) {
	clk := newClock()
	be := expiringBackend{newMemBackend(clk.Now), KeyspaceInfo{Keys: 3, Expires: 2, AvgTTLMs: 1500}}
	_, addr := startServer(t, testConfig(clk), be)
	r := dialRaw(t, addr)
	r.do("SET", "a", "1")
	r.do("GET", "a")
	r.do("GET", "a")
	r.do("GET")         // rejected: arity
	r.do("NOSUCH", "x") // unknown: an ERR
	info := infoFields(t, r.do("INFO"))
	for _, sec := range []string{"server", "clients", "memory", "persistence", "stats", "replication", "cpu", "errorstats", "cluster", "keyspace"} {
		if info[sec] == nil {
			t.Errorf("INFO lacks section %s", sec)
		}
	}
	for _, sec := range []string{"commandstats", "latencystats"} {
		if info[sec] != nil {
			t.Errorf("INFO (default) has %s; Redis shows it only with all/everything or by name", sec)
		}
	}
	if n, _ := strconv.ParseInt(info["memory"]["used_memory"], 10, 64); n <= 0 {
		t.Errorf("used_memory = %q, want > 0", info["memory"]["used_memory"])
	}
	if n, _ := strconv.ParseInt(info["memory"]["used_memory_rss"], 10, 64); n <= 0 {
		t.Errorf("used_memory_rss = %q, want > 0", info["memory"]["used_memory_rss"])
	}
	checks := map[string][2]string{
		"role":                   {"replication", "master"},
		"db0":                    {"keyspace", "keys=3,expires=2,avg_ttl=1500"},
		"aof_enabled":            {"persistence", "1"},
		"connected_clients":      {"clients", "1"},
		"errorstat_ERR":          {"errorstats", "count=2"},
		"cluster_enabled":        {"cluster", "1"},
		"redis_mode":             {"server", "cluster"},
		"total_error_replies":    {"stats", "2"},
		"maxmemory_policy":       {"memory", "noeviction"},
		"connected_slaves":       {"replication", "0"},
		"master_repl_offset":     {"replication", "0"},
		"rdb_bgsave_in_progress": {"persistence", "0"},
	}
	for field, want := range checks {
		if got := info[want[0]][field]; got != want[1] {
			t.Errorf("INFO %s %s = %q, want %q", want[0], field, got, want[1])
		}
	}
	if v := info["stats"]["total_net_input_bytes"]; v == "" || v == "0" {
		t.Errorf("total_net_input_bytes = %q, want > 0", v)
	}
	if _, err := strconv.ParseFloat(info["cpu"]["used_cpu_user"], 64); err != nil {
		t.Errorf("used_cpu_user = %q: %v", info["cpu"]["used_cpu_user"], err)
	}
	all := infoFields(t, r.do("INFO", "everything"))
	if got := all["commandstats"]["cmdstat_get"]; !regexp.MustCompile(`^calls=2,usec=\d+,usec_per_call=[0-9.]+,rejected_calls=1,failed_calls=0$`).MatchString(got) {
		t.Errorf("cmdstat_get = %q", got)
	}
	if got := all["latencystats"]["latency_percentiles_usec_get"]; !regexp.MustCompile(`^p50=[0-9.]+,p99=[0-9.]+,p99\.9=[0-9.]+$`).MatchString(got) {
		t.Errorf("latency_percentiles_usec_get = %q", got)
	}
	one := infoFields(t, r.do("INFO", "commandstats", "CPU"))
	if len(one) != 2 || one["commandstats"] == nil || one["cpu"] == nil {
		t.Errorf("INFO commandstats CPU: sections %v", one)
	}
	r.do("CONFIG", "RESETSTAT")
	if got := infoFields(t, r.do("INFO", "commandstats"))["commandstats"]["cmdstat_get"]; got != "" {
		t.Errorf("after CONFIG RESETSTAT cmdstat_get = %q", got)
	}
}

func TestConfigGetSet(t *testing.T) {
	cfg := testConfig(nil)
	cfg.Settings = [][2]string{{"appendfsync", "always"}, {"port", "6379"}}
	s, addr := startServer(t, cfg, newMemBackend(cfg.Now))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd(`["save", ""]`, "CONFIG", "GET", "save"),
		cmd(`["appendonly", "yes"]`, "CONFIG", "GET", "appendonly"),
		cmd(`["appendfsync", "always"]`, "CONFIG", "GET", "appendfsync"),
		cmd(`["slowlog-log-slower-than", "10000", "slowlog-max-len", "128"]`, "CONFIG", "GET", "slowlog*"),
		cmd(`["maxclients", "10000", "save", ""]`, "CONFIG", "GET", "MAXCLIENTS", "save", "sav?"),
		cmd(`[]`, "CONFIG", "GET", "requirepass"),
		cmd("+OK", "CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "5"),
		cmd(`["slowlog-max-len", "5"]`, "CONFIG", "GET", "slowlog-max-len"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument must be between 0 and 10000 inclusive", "CONFIG", "SET", "maxclients", "7", "slowlog-max-len", "10001"),
		cmd(`["maxclients", "10000"]`, "CONFIG", "GET", "maxclients"), // all or nothing
		cmd("-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer", "CONFIG", "SET", "maxclients", "x"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config*", "CONFIG", "SET", "port", "1"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'save') - can't set immutable config*", "CONFIG", "SET", "save", "900 1"),
		cmd("-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'", "CONFIG", "SET", "nosuch", "1"),
		cmd("-ERR wrong number of arguments for 'config|set' command", "CONFIG", "SET", "maxclients"),
		cmd("-ERR CONFIG REWRITE is not supported by dbx*", "CONFIG", "REWRITE"),
		cmd("-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.", "CONFIG", "NOPE"),
		cmd("+OK", "CONFIG", "SET", "maxclients", "1"),
		cmd("+PONG", "PING"), // the server keeps serving after every refusal
	})
	if got := s.connsMax.Load(); got != 1 {
		t.Fatalf("maxclients applied as %d, want 1", got)
	}
	// maxclients 1: a second connection is refused.
	r2 := dialRaw(t, addr)
	if got := r2.read(); got != "-ERR max number of clients reached" {
		t.Fatalf("second client with maxclients 1: %s", got)
	}
}

func TestSlowlog(t *testing.T) {
	cfg := testConfig(nil)
	cfg.SlowlogLogSlowerThanUsec = 0 // every command
	cfg.SlowlogMaxLen = 3
	_, addr := startServer(t, cfg, newMemBackend(cfg.Now))
	r := dialRaw(t, addr)
	r.do("CLIENT", "SETNAME", "slowpoke")
	r.do("SET", "k", strings.Repeat("v", 200))
	if got := r.do("SLOWLOG", "GET", "1"); !strings.Contains(got, `["SET", "k", "`+strings.Repeat("v", 128)+`... (72 more bytes)"]`) {
		t.Errorf("SLOWLOG GET 1 lacks the clipped SET: %s", got)
	}
	r.do("GET", "k")
	args := []string{"MSET"}
	for i := range 20 {
		args = append(args, "k"+strconv.Itoa(i), "v")
	}
	r.do(args...)
	got := r.do("SLOWLOG", "GET", "2")
	want := regexp.MustCompile(`^\[\[:4, :\d+, :\d+, \["MSET", "k0", "v", .*"\.\.\. \(10 more arguments\)"\], "127\.0\.0\.1:\d+", "slowpoke"\], \[:3, :\d+, :\d+, \["GET", "k"\], "127\.0\.0\.1:\d+", "slowpoke"\]\]$`)
	if !want.MatchString(got) {
		t.Errorf("SLOWLOG GET 2 = %s", got)
	}
	if got := r.do("SLOWLOG", "LEN"); got != ":3" {
		t.Errorf("SLOWLOG LEN = %s, want :3 (slowlog-max-len)", got)
	}
	runSteps(t, r, []step{
		cmd("+OK", "SLOWLOG", "RESET"),
		cmd(":1", "SLOWLOG", "LEN"), // RESET itself is logged after the reset
		cmd("-ERR count should be greater than or equal to -1", "SLOWLOG", "GET", "-2"),
		cmd("+OK", "CONFIG", "SET", "slowlog-log-slower-than", "-1"),
		cmd("+OK", "SLOWLOG", "RESET"),
		cmd("+PONG", "PING"),
		cmd(":0", "SLOWLOG", "LEN"),
	})
}

// slowBackend makes GET of "slow" take d.
type slowBackend struct {
	*memBackend
	d time.Duration
}

func (b slowBackend) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	if string(key) == "slow" {
		select {
		case <-time.After(b.d):
		case <-ctx.Done():
		}
	}
	return b.memBackend.Get(ctx, key)
}

func TestLatencyMonitor(t *testing.T) {
	cfg := testConfig(nil)
	_, addr := startServer(t, cfg, slowBackend{newMemBackend(cfg.Now), 25 * time.Millisecond})
	r := dialRaw(t, addr)
	r.do("GET", "slow")
	if got := r.do("LATENCY", "LATEST"); got != "[]" {
		t.Fatalf("LATENCY LATEST with the monitor off = %s", got)
	}
	r.do("CONFIG", "SET", "latency-monitor-threshold", "20")
	r.do("GET", "fast")
	r.do("GET", "slow")
	got := r.do("LATENCY", "LATEST")
	if !regexp.MustCompile(`^\[\["fast-command", :\d+, :(2[5-9]|[3-9]\d|\d{3,}), :\d+\]\]$`).MatchString(got) {
		t.Errorf("LATENCY LATEST = %s, want one fast-command event of >= 25 ms", got)
	}
	if got := r.do("LATENCY", "HISTORY", "fast-command"); !regexp.MustCompile(`^\[\[:\d+, :\d+\]\]$`).MatchString(got) {
		t.Errorf("LATENCY HISTORY fast-command = %s", got)
	}
	runSteps(t, r, []step{
		cmd("[]", "LATENCY", "HISTORY", "command"),
		cmd(`"fast-command: 1 latency spikes*`, "LATENCY", "DOCTOR"),
		cmd(":1", "LATENCY", "RESET"),
		cmd("[]", "LATENCY", "LATEST"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'latency-monitor-threshold') - argument must be between 0 and 2147483648 inclusive", "CONFIG", "SET", "latency-monitor-threshold", "-1"),
	})
}

func TestClientCommands(t *testing.T) {
	cfg := testConfig(nil)
	_, addr := startServer(t, cfg, newMemBackend(cfg.Now))
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	runSteps(t, a, []step{
		cmd("+OK", "CLIENT", "SETNAME", "alice"),
		cmd(`"alice"`, "CLIENT", "GETNAME"),
		cmd(":1", "CLIENT", "ID"),
		cmd("+OK", "CLIENT", "SETINFO", "LIB-NAME", "go-redis"),
		cmd("+OK", "CLIENT", "NO-EVICT", "on"),
		cmd("-ERR syntax error", "CLIENT", "NO-EVICT", "maybe"),
		cmd("-ERR timeout is over 3600000 ms (dbx's bound on CLIENT PAUSE)", "CLIENT", "PAUSE", "3600001"),
		cmd("-ERR timeout is not an integer or out of range", "CLIENT", "PAUSE", "-1"),
		cmd("-ERR unknown subcommand 'FOO'. Try CLIENT HELP.", "CLIENT", "FOO"),
	})
	b.do("CLIENT", "SETNAME", "bob")
	b.do("GET", "x")
	info := a.do("CLIENT", "INFO")
	if !regexp.MustCompile(`^"id=1 addr=127\.0\.0\.1:\d+ laddr=127\.0\.0\.1:\d+ .*name=alice .*flags=Ne .*cmd=client .*lib-name=go-redis `).MatchString(info) {
		t.Errorf("CLIENT INFO = %s", info)
	}
	list := a.do("CLIENT", "LIST")
	lines := strings.Split(strings.TrimSuffix(mustUnquote(t, list), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "name=alice") || !strings.Contains(lines[1], "name=bob") || !strings.Contains(lines[1], "cmd=get") {
		t.Fatalf("CLIENT LIST = %q", lines)
	}
	if got := a.do("CLIENT", "LIST", "ID", "2"); !strings.Contains(got, "name=bob") || strings.Contains(got, "alice") {
		t.Errorf("CLIENT LIST ID 2 = %s", got)
	}
	// PAUSE WRITE holds b's SET (not its GET) until UNPAUSE.
	a.do("CLIENT", "PAUSE", "60000", "WRITE")
	if got := b.do("GET", "x"); got != "(nil)" {
		t.Fatalf("GET during PAUSE WRITE = %s", got)
	}
	b.send(encode("SET", "x", "1"))
	b.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := b.rd.ReadByte(); err == nil {
		t.Fatal("SET answered during CLIENT PAUSE WRITE")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("reading during pause: %v", err)
	}
	a.do("CLIENT", "UNPAUSE")
	if got := b.read(); got != "+OK" {
		t.Fatalf("SET after UNPAUSE = %s", got)
	}
	// KILL by ID ends b's connection and counts it; the old form by address.
	runSteps(t, a, []step{
		cmd(":1", "CLIENT", "KILL", "ID", "2"),
		cmd(":0", "CLIENT", "KILL", "ID", "2"),
		cmd(":0", "CLIENT", "KILL", "ID", "1"), // SKIPME yes by default
		cmd("-ERR No such client", "CLIENT", "KILL", "10.0.0.1:1"),
		cmd("-ERR client-id should be greater than 0", "CLIENT", "KILL", "ID", "0"),
	})
	b.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.rd.ReadByte(); err == nil {
		t.Fatal("killed connection still delivers data")
	}
	c := dialRaw(t, addr)
	c.do("PING")
	caddr := c.c.LocalAddr().String()
	if got := a.do("CLIENT", "KILL", caddr); got != "+OK" {
		t.Fatalf("CLIENT KILL %s = %s", caddr, got)
	}
	if got := a.do("PING"); got != "+PONG" {
		t.Fatalf("the killer's connection: %s", got)
	}
}

func mustUnquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return u
}

func TestMonitor(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequirePass = "pw"
	s, addr := startServer(t, cfg, newMemBackend(cfg.Now))
	m := dialRaw(t, addr)
	m.do("AUTH", "pw")
	if got := m.do("MONITOR"); got != "+OK" {
		t.Fatalf("MONITOR = %s", got)
	}
	a := dialRaw(t, addr)
	a.do("AUTH", "pw")
	a.do("SET", "k", "a\"b\n\x01")
	line := m.read()
	if !regexp.MustCompile(`^\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "SET" "k" "a\\"b\\n\\x01"$`).MatchString(line) {
		t.Fatalf("MONITOR line = %q (AUTH must not appear)", line)
	}
	// Up to MonitorsMax monitors; one more is refused and the node serves on.
	for i := 1; i < MonitorsMax; i++ {
		x := dialRaw(t, addr)
		x.do("AUTH", "pw")
		if got := x.do("MONITOR"); got != "+OK" {
			t.Fatalf("monitor %d: %s", i+1, got)
		}
	}
	x := dialRaw(t, addr)
	x.do("AUTH", "pw")
	if got := x.do("MONITOR"); got != "-ERR max number of MONITOR clients reached (16)" {
		t.Fatalf("monitor %d: %s", MonitorsMax+1, got)
	}
	// Anything sent by a monitor ends it.
	m.send(encode("QUIT"))
	m.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := m.rd.ReadByte(); err != nil {
			break
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.monitoring.Load() != MonitorsMax-1 {
		if time.Now().After(deadline) {
			t.Fatalf("monitors after one quit: %d, want %d", s.monitoring.Load(), MonitorsMax-1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := a.do("GET", "k"); got != `"a\"b\n\x01"` {
		t.Fatalf("GET k = %s", got)
	}
}

func TestTimeRoleWaitStrlenMemory(t *testing.T) {
	clk := newClock()
	_, addr := startServer(t, testConfig(clk), newMemBackend(clk.Now))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd(`["1700000000", "0"]`, "TIME"),
		cmd(`["master", :0, []]`, "ROLE"),
		cmd(":0", "WAIT", "1", "100"),
		cmd("-ERR timeout is negative", "WAIT", "0", "-1"),
		cmd("+OK", "SET", "k", "hello"),
		cmd(":5", "STRLEN", "k"),
		cmd(":0", "STRLEN", "nokey"),
		cmd(":54", "MEMORY", "USAGE", "k"), // 1 + 5 + 48
		cmd(":54", "MEMORY", "USAGE", "k", "SAMPLES", "0"),
		cmd("(nil)", "MEMORY", "USAGE", "nokey"),
		cmd("-ERR syntax error", "MEMORY", "USAGE", "k", "X", "1"),
		cmd("-ERR unknown subcommand 'DOCTOR'. Try MEMORY HELP.", "MEMORY", "DOCTOR"),
	})
}

// TestCommandDocsComplete: every command has COMMAND DOCS and COMMAND
// INFO, and COMMAND LIST and COUNT agree with the table.
func TestCommandDocsComplete(t *testing.T) {
	s, addr := startServer(t, testConfig(nil), newMemBackend(nil))
	for name := range s.cmds {
		d, ok := commandDocs[name]
		if !ok || d.summary == "" || d.since == "" || d.group == "" {
			t.Errorf("command %s has no COMMAND DOCS entry", name)
		}
	}
	for name := range commandDocs {
		if s.cmds[name] == nil {
			t.Errorf("COMMAND DOCS documents %s, which is not a command", name)
		}
	}
	r := dialRaw(t, addr)
	if got, want := r.do("COMMAND", "COUNT"), ":"+strconv.Itoa(len(s.cmds)); got != want {
		t.Errorf("COMMAND COUNT = %s, want %s", got, want)
	}
	list := r.do("COMMAND", "LIST")
	if n := strings.Count(list, `"`) / 2; n != len(s.cmds) {
		t.Errorf("COMMAND LIST has %d names, want %d", n, len(s.cmds))
	}
	docs := r.do("COMMAND", "DOCS")
	if n := strings.Count(docs, `"summary"`); n != len(s.cmds) {
		t.Errorf("COMMAND DOCS has %d entries, want %d", n, len(s.cmds))
	}
}
