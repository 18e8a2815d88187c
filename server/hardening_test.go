package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostileRequests: the requests that crashed (index out of range in
// redcon's reader) or pinned (a loop of 2^63 iterations) a node, with and
// without a password: each gets a protocol error and loses its connection;
// the server keeps serving.
func TestHostileRequests(t *testing.T) {
	for _, pass := range []string{"", "pw"} {
		cfg := testConfig(nil)
		cfg.RequirePass = pass
		s, addr := startServer(t, cfg, newMemBackend(nil))
		good := dialRaw(t, addr)
		if pass != "" {
			runSteps(t, good, []step{cmd("+OK", "AUTH", pass)})
		}
		for _, tc := range []struct{ req, want string }{
			{"*1\r\n$9223372036854775800\r\n", "-ERR Protocol error: invalid bulk length*"},
			{"*9223372036854775807\r\n", "-ERR Protocol error: invalid multibulk length"},
			{"*1\r\n$18446744073709551615\r\n", "-ERR Protocol error: invalid bulk length"},
			{"*2\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length"},
			{"*-9223372036854775808\r\n*1\r\n$4\r\nPING\r\n", "+PONG"}, // a negative count is an empty request, as in Redis
		} {
			bad := dialRaw(t, addr)
			bad.send([]byte(tc.req))
			if got := bad.read(); !replyMatches(got, tc.want) {
				t.Errorf("pass=%q %q: got %s, want %s", pass, tc.req, got, tc.want)
			}
			if strings.HasPrefix(tc.want, "-") {
				bad.c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := bad.rd.ReadByte(); err == nil {
					t.Errorf("%q: connection still open after a protocol error", tc.req)
				}
			}
			runSteps(t, good, []step{cmd("+PONG", "PING")})
		}
		if pass != "" {
			// Unauthenticated clients may send only small requests (Redis 7).
			for _, tc := range []struct{ req, want string }{
				{"*11\r\n" + strings.Repeat("$1\r\na\r\n", 11), "-ERR Protocol error: unauthenticated multibulk length"},
				{"*2\r\n$4\r\nAUTH\r\n$16385\r\n", "-ERR Protocol error: unauthenticated bulk length"},
			} {
				bad := dialRaw(t, addr)
				bad.send([]byte(tc.req))
				if got := bad.read(); got != tc.want {
					t.Errorf("unauthenticated %q: got %s, want %s", tc.req[:12], got, tc.want)
				}
			}
		}
		if n := s.stats.protocolErrors.Load(); n < 4 {
			t.Errorf("protocol errors counted: %d", n)
		}
	}
}

// TestHostileCountDoesNotSpin: a connection that declares the largest
// allowed count and sends nothing costs a blocked read, not a core; once
// it goes, its goroutine and buffer go too.
func TestHostileCountDoesNotSpin(t *testing.T) {
	s, addr := startServer(t, testConfig(nil), newMemBackend(nil))
	var bad []*rawClient
	for i := 0; i < 4; i++ {
		c := dialRaw(t, addr)
		c.send([]byte("*1048576\r\n$1\r\na\r\n"))
		bad = append(bad, c)
	}
	good := dialRaw(t, addr)
	runSteps(t, good, []step{cmd("+PONG", "PING")}) // served while the four wait
	var ru0, ru1 syscallRusage
	getRusage(&ru0)
	start := time.Now()
	for i := 0; i < 200; i++ {
		runSteps(t, good, []step{cmd("+PONG", "PING")})
	}
	elapsed := time.Since(start)
	getRusage(&ru1)
	// 200 PINGs take a few ms of CPU; four spinning connections would burn
	// about four cores for as long as the loop runs.
	if cpu := ru1.cpu() - ru0.cpu(); cpu > elapsed+500*time.Millisecond {
		t.Errorf("%v of CPU in %v while four connections wait for data", cpu, elapsed)
	}
	for _, c := range bad {
		c.c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.conns.Load() > 1 || s.budget.Used() > int64(16<<10) {
		if time.Now().After(deadline) {
			t.Fatalf("after the clients left: %d connections, %d input bytes", s.conns.Load(), s.budget.Used())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientInputMemoryBound: eight connections streaming 600 MB values
// (unauthenticated, then authenticated against a small node-wide budget)
// never make the node hold more than its bounds; each is told why it was
// disconnected, and the node keeps serving.
func TestClientInputMemoryBound(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequirePass = "pw"
	cfg.RequestBytesMax = 20 << 20
	cfg.ClientInputBytesMax = 40 << 20
	s, addr := startServer(t, cfg, newMemBackend(nil))
	stream := func(auth bool, declared int, send int) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return ""
		}
		defer c.Close()
		rd := bufio.NewReader(c)
		if auth {
			c.Write(encode("AUTH", "pw"))
			if r, _ := readReply(rd); r != "+OK" {
				return "AUTH: " + r
			}
		}
		fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", declared)
		chunk := make([]byte, 1<<20)
		for sent := 0; sent < send; {
			n := min(len(chunk), send-sent)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(chunk[:n]); err != nil {
				break // the server closed the connection
			}
			sent += n
		}
		if send == declared {
			c.Write([]byte("\r\n"))
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r, err := readReply(rd)
		if err != nil {
			return "read: " + err.Error()
		}
		return r
	}
	run := func(auth bool, declared, send int) []string {
		var wg sync.WaitGroup
		out := make([]string, 8)
		for i := range out {
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = stream(auth, declared, send) }()
		}
		wg.Wait()
		return out
	}
	stopSampling := sampleHeap()
	for _, r := range run(false, 600_000_000, 600_000_000) {
		if !strings.HasPrefix(r, "-ERR Protocol error: invalid bulk length") {
			t.Errorf("unauthenticated 600 MB bulk: %s", r)
		}
	}
	// Authenticated: 600 MB is over the argument limit, refused at its length.
	for _, r := range run(true, 600_000_000, 64<<20) {
		if !strings.HasPrefix(r, "-ERR Protocol error: invalid bulk length") {
			t.Errorf("authenticated 600 MB bulk: %s", r)
		}
	}
	// 15 MB values are allowed one by one, but eight at once need more than
	// the 40 MiB budget: some connections are refused, none beyond it.
	var refused, ok int
	for _, r := range run(true, 15_000_000, 15_000_000) {
		switch {
		case r == "+OK":
			ok++
		case strings.HasPrefix(r, "-ERR client input memory limit reached"):
			refused++
		default:
			t.Errorf("8 × 15 MB: %s", r)
		}
	}
	if refused == 0 || ok == 0 {
		t.Errorf("8 × 15 MB under a 40 MiB budget: %d stored, %d refused; want some of each", ok, refused)
	}
	if p := s.budget.Peak(); p > cfg.ClientInputBytesMax {
		t.Errorf("budget peak %d over its max %d", p, cfg.ClientInputBytesMax)
	}
	if s.budget.Rejected() == 0 || s.stats.inputMemory.Load() == 0 {
		t.Errorf("rejections not counted: budget %d, stats %d", s.budget.Rejected(), s.stats.inputMemory.Load())
	}
	// The in-memory backend keeps the stored 15 MB values; beyond them the heap
	// (which counts garbage until it is collected: a buffer outgrown by
	// doubling stays until then, hence twice the budget) must stay within
	// the budget, plus the clients' own 1 MB chunks and slack. Eight
	// unbounded 16 MiB buffers would pass it by 80 MiB. (RSS is not used:
	// -race inflates it.)
	peak, base := stopSampling()
	if grow := peak - base; grow > uint64(ok)*15_000_000+2*uint64(cfg.ClientInputBytesMax)+32<<20 {
		t.Errorf("live heap grew %d MiB (budget %d MiB, %d values stored)", grow>>20, cfg.ClientInputBytesMax>>20, ok)
	}
	t.Logf("live heap peak +%d MiB, budget peak %d MiB of %d, %d stored, %d refused", (peak-base)>>20, s.budget.Peak()>>20, cfg.ClientInputBytesMax>>20, ok, refused)
	good := dialRaw(t, addr)
	runSteps(t, good, []step{cmd("+OK", "AUTH", "pw"), cmd("+PONG", "PING")})
	info := good.do("INFO", "clients")
	if !strings.Contains(info, "dbx_client_input_bytes_max:"+strconv.FormatInt(cfg.ClientInputBytesMax, 10)) {
		t.Errorf("INFO clients: %s", info)
	}
}

// panicBackend panics on GET of the key "boom".
type panicBackend struct{ Backend }

func (b panicBackend) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	if string(key) == "boom" {
		panic("test: boom")
	}
	return b.Backend.Get(ctx, key)
}

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	cfg := testConfig(nil)
	var logged atomic.Int64
	cfg.Logf = func(format string, args ...any) {
		if strings.Contains(format, "panic") {
			logged.Add(1)
		}
	}
	s, addr := startServer(t, cfg, panicBackend{newMemBackend(nil)})
	good := dialRaw(t, addr)
	bad := dialRaw(t, addr)
	bad.send(encode("GET", "boom"))
	bad.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.rd.ReadByte(); err == nil {
		t.Fatal("the panicking connection got a reply")
	}
	runSteps(t, good, []step{cmd("+OK", "SET", "a", "1"), cmd(`"1"`, "GET", "a")})
	if s.stats.panics.Load() != 1 || logged.Load() != 1 {
		t.Fatalf("panics counted %d, logged %d", s.stats.panics.Load(), logged.Load())
	}
}

// blockBackend's GET of "slow" waits for ctx; of "stuck" ignores it until
// release is closed. Each tells entered (if set) once it blocks.
type blockBackend struct {
	Backend
	release chan struct{}
	entered chan string
}

func (b blockBackend) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	switch string(key) {
	case "slow":
		b.enter("slow")
		<-ctx.Done()
		return nil, 0, ctx.Err()
	case "stuck":
		b.enter("stuck")
		<-b.release
	}
	return b.Backend.Get(ctx, key)
}

func (b blockBackend) enter(what string) {
	if b.entered != nil {
		b.entered <- what
	}
}

// TestCloseIsBounded: Close returns within its bound whatever the clients
// do — half-sent requests, a huge declared count, a client that never
// reads its replies, a command waiting on the backend.
func TestCloseIsBounded(t *testing.T) {
	cfg := testConfig(nil)
	cfg.CloseTimeout = 500 * time.Millisecond
	cfg.RequestTimeout = time.Minute
	mb := newMemBackend(nil)
	entered := make(chan string, 1)
	s, err := New(cfg, blockBackend{Backend: mb, release: make(chan struct{}), entered: entered})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	addr := ln.Addr().String()
	big := dialRaw(t, addr)
	runSteps(t, big, []step{cmd("+OK", "SET", "v", strings.Repeat("x", 1<<20))})
	half := dialRaw(t, addr)
	half.send([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc"))
	count := dialRaw(t, addr)
	count.send([]byte("*1048576\r\n"))
	slow := dialRaw(t, addr)
	slow.send(encode("GET", "slow"))
	// A client that pipelines GETs of 1 MB and never reads: the server's
	// writes block once the socket buffers are full.
	var pipe []byte
	for i := 0; i < 64; i++ {
		pipe = append(pipe, encode("GET", "v")...)
	}
	big.send(pipe)
	<-entered // the slow GET is in the backend
	deadline := time.Now().Add(5 * time.Second)
	for s.conns.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	err = s.Close()
	took := time.Since(start)
	if err != nil {
		t.Errorf("Close: %v", err)
	}
	if took > 2*cfg.CloseTimeout+500*time.Millisecond {
		t.Errorf("Close took %v (bound %v)", took, 2*cfg.CloseTimeout)
	}
	if s.conns.Load() != 0 {
		t.Errorf("%d connections left after Close", s.conns.Load())
	}
}

// TestCloseGivesUpOnStuckBackend: a backend call that ignores its context
// cannot hold Close beyond its bound; Close says so.
func TestCloseGivesUpOnStuckBackend(t *testing.T) {
	cfg := testConfig(nil)
	cfg.CloseTimeout = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	entered := make(chan string, 1)
	s, err := New(cfg, blockBackend{Backend: newMemBackend(nil), release: release, entered: entered})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	stuck := dialRaw(t, ln.Addr().String())
	stuck.send(encode("GET", "stuck"))
	<-entered // the GET is in the backend
	start := time.Now()
	err = s.Close()
	if took := time.Since(start); took > 2*cfg.CloseTimeout+300*time.Millisecond {
		t.Errorf("Close took %v", took)
	}
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Close: %v, want an error naming the stuck connection", err)
	}
}

// sampleHeap samples the live heap (bytes in heap objects, garbage
// included until collected, so the figure is an upper bound) every 2 ms
// until the returned function is called; that returns the peak and the
// value at the start.
func sampleHeap() func() (peak, base uint64) {
	read := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	peak.Store(base)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if v := read(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return func() (uint64, uint64) {
		close(stop)
		<-done
		return peak.Load(), base
	}
}
