package server

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/server/resp"
)

// FuzzCommand feeds random argument vectors through the dispatcher (with
// the in-memory twin and with a password set) and checks that it never panics and
// always writes exactly one well-formed RESP reply.
//
// The input is split into arguments at 0x00 bytes; the first byte picks the
// command from a list (so the fuzzer reaches every handler) unless it is
// 0xff, in which case the first argument is the name as given.
func FuzzCommand(f *testing.F) {
	for _, seed := range []string{
		"\x00k\x00v", "\x00k\x00v\x00EX\x0010\x00NX", "\x01k", "\x02a\x00b", "\x05k\x00-5",
		"\x0aSLOTS", "\x0aNODES", "\x0aKEYSLOT\x00{a}b", "\x0b0\x00MATCH\x00a*\x00COUNT\x003",
		"\x0c3\x00AUTH\x00default\x00x", "\xffFOO\x00bar", "\x00k\x00v\x00PXAT\x00-9223372036854775808",
		"\x08k\x009223372036854775807", "\x0dINFO", "\x0eSETNAME\x00a b",
	} {
		f.Add([]byte(seed))
	}
	names := []string{
		"set", "get", "mset", "mget", "del", "incrby", "decrby", "exists", "expire", "pexpire",
		"cluster", "scan", "hello", "command", "client", "info", "ttl", "pttl", "persist", "auth",
		"select", "ping", "echo", "dbsize", "expireat", "pexpireat", "type", "setex", "psetex",
		"setnx", "incr", "decr", "unlink", "expiretime", "pexpiretime", "readonly", "quit",
		"config", "slowlog", "latency", "memory", "monitor", "time", "role", "wait", "strlen",
	}
	clk := newClock()
	cfg := testConfig(clk)
	cfg.KeyBytesMax, cfg.ValueBytesMax, cfg.ArgsMax = 64, 256, 64
	cfg.RequestBytesMax = 64 + 256 + 1024
	s, err := New(cfg, newMemBackend(clk.Now))
	if err != nil {
		f.Fatal(err)
	}
	cfgPw := cfg
	cfgPw.RequirePass = "pw"
	sPw, err := New(cfgPw, newMemBackend(clk.Now))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		args := bytes.Split(data[1:], []byte{0})
		if data[0] != 0xff {
			args = append([][]byte{[]byte(names[int(data[0])%len(names)])}, args...)
		}
		if len(args[0]) == 0 {
			return
		}
		for _, srv := range []*Server{s, sPw} {
			var buf bytes.Buffer
			w := resp.NewWriter(&buf)
			sess := &session{id: 1, authed: srv.cfg.RequirePass == "", w: w}
			srv.exec(sess, args)
			srv.setPause(nil) // a fuzzed CLIENT PAUSE must not hold the next input
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			rd := bufio.NewReader(&buf)
			if _, err := readReply(rd); err != nil {
				t.Fatalf("%q: bad reply %q: %v", args, buf.String(), err)
			}
			if rest, _ := rd.Peek(1); len(rest) != 0 {
				t.Fatalf("%q: more than one reply: %q", args, strings.TrimSpace(buf.String()))
			}
		}
		clk.Advance(time.Millisecond)
	})
}
