package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func testConfig(clk *clock) Config {
	cfg := DefaultConfig()
	if clk != nil {
		cfg.Now = clk.Now
	}
	return cfg
}

func TestCommandReplies(t *testing.T) {
	clk := newClock()
	_, addr := startServer(t, testConfig(clk), newMemBackend(clk.Now))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd("+PONG", "PING"),
		cmd(`"hi"`, "ping", "hi"),
		cmd(`"x y"`, "ECHO", "x y"),
		cmd("(nil)", "GET", "k"),
		cmd("+OK", "SET", "k", "v"),
		cmd(`"v"`, "get", "k"),
		cmd("(nil)", "SET", "k", "v2", "NX"),
		cmd("+OK", "SET", "k", "v2", "XX"),
		cmd("(nil)", "SET", "nokey", "v", "XX"),
		cmd(`"v2"`, "SET", "k", "v3", "GET"),
		cmd("(nil)", "SET", "new", "n", "GET"),
		cmd("-ERR syntax error", "SET", "k", "v", "NX", "XX"),
		cmd("-ERR syntax error", "SET", "k", "v", "EX", "10", "PX", "100"),
		cmd("-ERR syntax error", "SET", "k", "v", "EX"),
		cmd("-ERR value is not an integer or out of range", "SET", "k", "v", "EX", "ten"),
		cmd("-ERR invalid expire time in 'set' command", "SET", "k", "v", "EX", "0"),
		cmd("-ERR invalid expire time in 'set' command", "SET", "k", "v", "EX", "9223372036854775807"),
		cmd(":-1", "TTL", "k"),
		cmd(":-2", "TTL", "missing"),
		cmd("+OK", "SET", "e", "v", "EX", "100"),
		cmd(":100", "TTL", "e"),
		cmd(":100000", "PTTL", "e"),
		cmd(":1700000100", "EXPIRETIME", "e"),
		cmd("+OK", "SET", "e", "v2", "KEEPTTL"),
		cmd(":100", "TTL", "e"),
		cmd("+OK", "SET", "e", "v3"),
		cmd(":-1", "TTL", "e"),
		cmd(":1", "EXPIRE", "e", "50"),
		cmd(":50", "TTL", "e"),
		cmd(":1", "PERSIST", "e"),
		cmd(":0", "PERSIST", "e"),
		cmd(":-1", "TTL", "e"),
		cmd(":0", "EXPIRE", "missing", "50"),
		cmd(":1", "PEXPIRE", "e", "1500"),
		cmd(":2", "TTL", "e"),
		cmd(":1500", "PTTL", "e"),
		cmd(":1", "PEXPIREAT", "e", "1700000200000"),
		cmd(":200", "TTL", "e"),
		cmd(":1", "EXPIRE", "e", "-1"), // non-positive deletes
		cmd(":0", "EXISTS", "e"),
		cmd("+OK", "SET", "px", "v", "PX", "1500"),
		cmd("+OK", "SET", "exat", "v", "EXAT", "1700000010"),
		cmd(":10", "TTL", "exat"),
		cmd("+OK", "SET", "pxat", "v", "PXAT", "1700000010000"),
		cmd(":10000", "PTTL", "pxat"),
		cmd(":1", "INCR", "n"),
		cmd(":11", "INCRBY", "n", "10"),
		cmd(":10", "DECR", "n"),
		cmd(":5", "DECRBY", "n", "5"),
		cmd(`"5"`, "GET", "n"),
		cmd("-ERR value is not an integer or out of range", "INCR", "k"),
		cmd("-ERR value is not an integer or out of range", "INCRBY", "n", "1.5"),
		cmd("+OK", "SET", "big", "9223372036854775807"),
		cmd("-ERR increment or decrement would overflow", "INCR", "big"),
		cmd("-ERR decrement would overflow", "DECRBY", "n", "-9223372036854775808"),
		cmd("+OK", "MSET", "a", "1", "b", "2", "c", "3"),
		cmd(`["1", "2", (nil), "3"]`, "MGET", "a", "b", "zz", "c"),
		cmd("-ERR wrong number of arguments for 'mset' command", "MSET", "a", "1", "b"),
		cmd(":2", "EXISTS", "a", "a"),
		cmd(":2", "DEL", "a", "b", "zz", "a"),
		cmd(":0", "EXISTS", "a", "b"),
		cmd("+string", "TYPE", "c"),
		cmd("+none", "TYPE", "zz"),
		cmd("+OK", "SELECT", "0"),
		cmd("-ERR SELECT is not allowed in cluster mode", "SELECT", "1"),
		cmd("+OK", "CLIENT", "SETNAME", "me"),
		cmd(`"me"`, "CLIENT", "GETNAME"),
		cmd("+OK", "CLIENT", "SETINFO", "LIB-NAME", "x"),
		cmd("-ERR unknown subcommand 'nope'. Try CLIENT HELP.", "CLIENT", "nope"),
		cmd(":12182", "CLUSTER", "KEYSLOT", "foo"),
		cmd(":11058", "CLUSTER", "KEYSLOT", "somekey"),
		cmd(":2515", "CLUSTER", "KEYSLOT", "foo{hash_tag}"),
		cmd(`"mem"`, "CLUSTER", "MYID"),
		cmd(`[[:0, :16383, ["127.0.0.1", :6379, "mem"]]]`, "CLUSTER", "SLOTS"),
		cmd(`[["slots", [:0, :16383], "nodes", [["id", "mem", "port", :6379, "ip", "127.0.0.1", "endpoint", "127.0.0.1", "role", "master", "replication-offset", :0, "health", "online"]]]]`, "CLUSTER", "SHARDS"),
		cmd(`"mem 127.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-16383\n"`, "CLUSTER", "NODES"),
		cmd(`"cluster_enabled:1\r\ncluster_state:ok*`, "CLUSTER", "INFO"),
		cmd("-ERR unknown subcommand 'bogus'. Try CLUSTER HELP.", "CLUSTER", "bogus"),
		cmd("-ERR wrong number of arguments for 'cluster|keyslot' command", "CLUSTER", "KEYSLOT"),
		cmd(":8", "DBSIZE"),
		cmd("-ERR unknown command 'FOO', with args beginning with: 'a' 'b' ", "FOO", "a", "b"),
		cmd("-ERR unknown command 'FLUSHALL', with args beginning with: ", "FLUSHALL"),
		cmd("-ERR wrong number of arguments for 'get' command", "GET"),
		cmd("-ERR wrong number of arguments for 'get' command", "GET", "a", "b"),
		cmd("-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?", "AUTH", "x"),
		cmd("-NOPROTO unsupported protocol version", "HELLO", "3"),
		cmd(`["server", "redis", "version", "7.2.0-dbx", "proto", :2, "id", :1, "mode", "cluster", "role", "master", "modules", []]`, "HELLO", "2"),
		cmd(":53", "COMMAND", "COUNT"),
		cmd(":1", "SETNX", "snx", "1"),
		cmd(":0", "SETNX", "snx", "2"),
		cmd("+OK", "SETEX", "sex", "30", "v"),
		cmd(":30", "TTL", "sex"),
		cmd("+OK", "PSETEX", "sex", "2000", "v"),
		cmd(":2000", "PTTL", "sex"),
		cmd("-ERR invalid expire time in 'setex' command", "SETEX", "sex", "0", "v"),
		cmd(":2", "DEL", "snx", "sex"),
		cmd(`[["get", :2, [+readonly, +fast], :1, :1, :1, [], [], [], []], (nil)]`, "COMMAND", "INFO", "get", "nosuch"),
		cmd(`["get", ["summary", "Returns the string value of a key.", "since", "1.0.0", "group", "string", "complexity", "O(1)"]]`, "COMMAND", "DOCS", "GET", "nosuch"),
		cmd("+OK", "READONLY"),
	})
	info := r.do("INFO")
	for _, want := range []string{"# Server", "redis_version:7.2.0-dbx", "# Keyspace", "db0:keys=8", "cluster_enabled:1"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q: %s", want, info)
		}
	}
	if got := r.do("INFO", "keyspace"); strings.Contains(got, "# Server") || !strings.Contains(got, "# Keyspace") {
		t.Errorf("INFO keyspace: %s", got)
	}
	all := r.do("COMMAND")
	if !strings.Contains(all, `["set", :-3, [+write, +denyoom], :1, :1, :1, [], [], [], []]`) {
		t.Errorf("COMMAND lacks set: %.300s", all)
	}
	// Expiry is seen at once when the clock passes it.
	runSteps(t, r, []step{cmd(`"v"`, "GET", "px")})
	clk.Advance(1500 * time.Millisecond)
	runSteps(t, r, []step{
		cmd("(nil)", "GET", "px"),
		cmd(":-2", "TTL", "px"),
		cmd(":0", "EXISTS", "px"),
		cmd("+OK", "QUIT"),
	})
	r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.rd.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after QUIT: %v, want EOF", err)
	}
}

func TestScan(t *testing.T) {
	_, addr := startServer(t, testConfig(nil), newMemBackend(nil))
	r := dialRaw(t, addr)
	for i := 0; i < 50; i++ {
		r.do("SET", "key:"+string(rune('A'+i%26))+string(rune('a'+i/26)), "v")
	}
	r.do("SET", "other", "v")
	seen := map[string]bool{}
	cursor := "0"
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("SCAN does not terminate")
		}
		got := r.do("SCAN", cursor, "MATCH", "key:*", "COUNT", "7")
		// ["cursor", [keys...]]
		inner := strings.TrimSuffix(strings.TrimPrefix(got, "["), "]")
		c, rest, _ := strings.Cut(inner, ", ")
		cursor = strings.Trim(c, `"`)
		rest = strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
		for _, k := range strings.Split(rest, ", ") {
			if k != "" {
				seen[strings.Trim(k, `"`)] = true
			}
		}
		if cursor == "0" {
			break
		}
	}
	if len(seen) != 50 || seen["other"] {
		t.Errorf("SCAN saw %d keys (other: %v), want 50", len(seen), seen["other"])
	}
	runSteps(t, r, []step{
		cmd("-ERR invalid cursor", "SCAN", "x"),
		cmd("-ERR syntax error", "SCAN", "0", "COUNT", "0"),
		cmd("-ERR syntax error", "SCAN", "0", "MATCH"),
		cmd(`["0", []]`, "SCAN", "0", "TYPE", "hash", "COUNT", "1000"),
	})
}

func TestErrorsKeepConnectionUsable(t *testing.T) {
	cfg := testConfig(nil)
	cfg.ValueBytesMax = 1000
	cfg.KeyBytesMax = 100
	cfg.RequestBytesMax = 4096
	cfg.ArgsMax = 10
	_, addr := startServer(t, cfg, newMemBackend(nil))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd("-ERR unknown command 'nope', with args beginning with: ", "nope"),
		cmd("+PONG", "PING"),
		cmd("-ERR wrong number of arguments for 'set' command", "SET", "k"),
		cmd("+PONG", "PING"),
		cmd("+OK", "SET", "k", strings.Repeat("v", 1000)),
		cmd("-ERR key too large", "SET", strings.Repeat("k", 101), "v"),
		cmd("-ERR key too large", "MSET", "a", "1", strings.Repeat("k", 101), "v"),
		cmd("-ERR too many arguments (11 > 10)", "DEL", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"),
		cmd("+PONG", "PING"),
	})
	// Pipelined errors and successes come back in order.
	var pipe []byte
	pipe = append(pipe, encode("SET", "p", "1")...)
	pipe = append(pipe, encode("BOGUS")...)
	pipe = append(pipe, encode("INCR", "p")...)
	r.send(pipe)
	for _, want := range []string{"+OK", "-ERR unknown command 'BOGUS'*", ":2"} {
		if got := r.read(); !replyMatches(got, want) {
			t.Errorf("pipeline: got %s, want %s", got, want)
		}
	}
	// Inline (telnet) commands work too.
	r.send([]byte("PING\r\n"))
	if got := r.read(); got != "+PONG" {
		t.Errorf("inline PING: %s", got)
	}
	// An argument over the larger of KeyBytesMax and ValueBytesMax is
	// refused as its length is read, before its bytes are buffered; a
	// request over RequestBytesMax likewise. Both end the connection (RESP
	// cannot skip the rest of a request)...
	for _, tc := range []struct{ req, want string }{
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n", "-ERR Protocol error: invalid bulk length (1001 bytes, the limit is 1000)"},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n" + strings.Repeat("x", 8192), "-ERR Protocol error: invalid bulk length (100000 bytes, the limit is 1000)"},
		{"*9\r\n$4\r\nMSET\r\n" + strings.Repeat("$100\r\n"+strings.Repeat("k", 100)+"\r\n$1000\r\n"+strings.Repeat("v", 1000)+"\r\n", 4),
			"-ERR Protocol error: request too large (over 4096 bytes, the client query buffer limit)"},
	} {
		big := dialRaw(t, addr)
		big.send([]byte(tc.req))
		if got := big.read(); got != tc.want {
			t.Errorf("oversize request: %s, want %s", got, tc.want)
		}
	}
	// ...and the server keeps serving the others.
	runSteps(t, r, []step{cmd("+PONG", "PING")})
}

func TestMalformedRESP(t *testing.T) {
	_, addr := startServer(t, testConfig(nil), newMemBackend(nil))
	good := dialRaw(t, addr)
	for _, garbage := range []string{
		"*1\r\n$x\r\nPING\r\n",
		"*2\r\n:1\r\n",
		"*x\r\n",
		"*1\n",
		"\"unbalanced\r\n",
		"*1\r\n$4\r\nPINGxx\r\n",
	} {
		bad := dialRaw(t, addr)
		bad.send([]byte(garbage))
		got := bad.read()
		if !strings.HasPrefix(got, "-ERR Protocol error") {
			t.Errorf("%q: got %s, want a protocol error", garbage, got)
		}
		bad.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := bad.rd.ReadByte(); err == nil {
			t.Errorf("%q: connection still open after a protocol error", garbage)
		}
		if got := good.do("PING"); got != "+PONG" {
			t.Fatalf("other connection after %q: %s", garbage, got)
		}
	}
}

func TestAuth(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequirePass = "s3cret"
	_, addr := startServer(t, cfg, newMemBackend(nil))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd("-NOAUTH Authentication required.", "GET", "k"),
		cmd("-NOAUTH Authentication required.", "CLUSTER", "SLOTS"),
		cmd("+PONG", "PING"),
		cmd("-NOAUTH HELLO must be called*", "HELLO", "2"),
		cmd("-WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "nope"),
		cmd("-WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "bob", "s3cret"),
		cmd("-NOAUTH Authentication required.", "SET", "k", "v"),
		cmd("+OK", "AUTH", "s3cret"),
		cmd("+OK", "SET", "k", "v"),
		cmd(`"v"`, "GET", "k"),
	})
	r2 := dialRaw(t, addr)
	runSteps(t, r2, []step{
		cmd("-WRONGPASS*", "HELLO", "2", "AUTH", "default", "bad"),
		cmd(`["server"*`, "HELLO", "2", "AUTH", "default", "s3cret"),
		cmd(`"v"`, "GET", "k"),
	})
	r3 := dialRaw(t, addr)
	runSteps(t, r3, []step{
		cmd("+OK", "AUTH", "default", "s3cret"),
		cmd(`"v"`, "GET", "k"),
		cmd("+OK", "QUIT"),
	})
}

// blockingBackend blocks every Get until ctx ends, like an unreachable owner.
type blockingBackend struct{ *memBackend }

func (b blockingBackend) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	<-ctx.Done()
	return nil, 0, ctx.Err()
}

func TestUnreachableOwnerTimesOut(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequestTimeout = 200 * time.Millisecond
	_, addr := startServer(t, cfg, blockingBackend{newMemBackend(nil)})
	r := dialRaw(t, addr)
	start := time.Now()
	got := r.do("GET", "k")
	if el := time.Since(start); el > 2*time.Second || el < 150*time.Millisecond {
		t.Errorf("GET took %s, want about 200ms", el)
	}
	if got != "-ERR outcome unknown: request timed out after 200ms (the command may or may not have been applied)" {
		t.Errorf("GET: %s", got)
	}
	runSteps(t, r, []step{cmd("+OK", "SET", "k", "v"), cmd("+PONG", "PING")})
}

// errBackend returns a fixed error from Set.
type errBackend struct {
	*memBackend
	err error
}

func (b errBackend) Set(context.Context, []byte, []byte, SetOptions) (SetResult, error) {
	return SetResult{}, b.err
}

func TestBackendErrorReplies(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&MovedError{Bucket: 3999, Addr: "10.0.0.2:6379"}, "-MOVED 3999 10.0.0.2:6379"},
		{&MovedError{Bucket: 3999, Addr: "10.0.0.2:6379", Ask: true}, "-ASK 3999 10.0.0.2:6379"},
		{ErrTryAgain, "-TRYAGAIN Multiple keys request during rehashing of slot"},
		{ErrClusterDown, "-CLUSTERDOWN The cluster is down"},
		{ErrCrossSlot, "-CROSSSLOT Keys in request don't hash to the same slot"},
		{RedisError("WRONGTYPE Operation against a key holding the wrong kind of value"), "-WRONGTYPE Operation against a key holding the wrong kind of value"},
		{errors.Join(errors.New("x"), ErrUnreachable), "-ERR owner unreachable: x owner unreachable"},
		{errorsWrap("owner unreachable: node n2: connection refused"), "-ERR owner unreachable: node n2: connection refused"},
		{errors.New("disk\r\nexploded"), "-ERR disk  exploded"},
		// Whether a forwarded request can have been applied is in the reply.
		{fmt.Errorf("%w: node n2 at h:1 did not answer: transport: connection closed: EOF", ErrNoReply),
			"-ERR outcome unknown: node n2 at h:1 did not answer: transport: connection closed: EOF (the command may or may not have been applied: read the key to find out)"},
		{fmt.Errorf("%w: owner n2 at h:1 unreachable: connection refused", ErrOwnerDown),
			"-CLUSTERDOWN Hash slot not served: owner n2 at h:1 unreachable: connection refused (not applied)"},
		{fmt.Errorf("%w: node: bucket is switching owner", ErrTryAgain), "-TRYAGAIN Multiple keys request during rehashing of slot"},
	} {
		_, addr := startServer(t, testConfig(nil), errBackend{newMemBackend(nil), tc.err})
		r := dialRaw(t, addr)
		if got := r.do("SET", "k", "v"); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.err, got, tc.want)
		}
	}
}

func errorsWrap(msg string) error {
	detail, _ := strings.CutPrefix(msg, ErrUnreachable.Error()+": ")
	return &wrapped{msg: msg, err: ErrUnreachable, detail: detail}
}

type wrapped struct {
	msg, detail string
	err         error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

func TestConnsMax(t *testing.T) {
	cfg := testConfig(nil)
	cfg.ConnsMax = 2
	s, addr := startServer(t, cfg, newMemBackend(nil))
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.do("PING")
	b.do("PING")
	c := dialRaw(t, addr)
	if got := c.read(); got != "-ERR max number of clients reached" {
		t.Errorf("third connection: %s", got)
	}
	a.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.conns.Load() > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	d := dialRaw(t, addr)
	if got := d.do("PING"); got != "+PONG" {
		t.Errorf("after a close: %s", got)
	}
}

func TestCloseEndsBlockedRequests(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequestTimeout = time.Minute
	entered := make(chan string, 1)
	s, err := New(cfg, blockBackend{Backend: newMemBackend(nil), entered: entered})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	r := dialRaw(t, ln.Addr().String())
	r.send(encode("GET", "slow"))
	<-entered // the GET waits in the backend
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %s", el)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{KeyBytesMax: 10, ValueBytesMax: 10, RequestBytesMax: 100}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"ArgsMax (0)", "RequestBytesMax (100) must be at least KeyBytesMax+ValueBytesMax+1024 (1044)", "ConnsMax", "RequestTimeout", "WriteTimeout", "Now", "Version"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate lacks %q: %v", want, err)
		}
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]bool{
		"0": true, "-1": true, "123": true, "9223372036854775807": true, "-9223372036854775808": true,
		"9223372036854775808": false, "+1": false, "01": false, " 1": false, "": false, "-": false, "-0": false, "1a": false,
	} {
		if _, ok := parseInt([]byte(in)); ok != want {
			t.Errorf("parseInt(%q) ok = %v, want %v", in, ok, want)
		}
	}
}
