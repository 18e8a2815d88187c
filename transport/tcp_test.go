package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func tcfg() Config {
	cfg := DefaultConfig()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.FrameBytesMax = 1 << 20
	cfg.DialTimeout = time.Second
	cfg.CallTimeout = 5 * time.Second
	cfg.HandshakeTimeout = time.Second
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

func startTCP(t testing.TB, cfg Config) *TCP {
	t.Helper()
	tr, err := NewTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func echoHandler(_ context.Context, _, _ string, body []byte) ([]byte, error) { return body, nil }

// countingListener records the connections it accepts.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *countingListener) accepted() []net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]net.Conn(nil), l.conns...)
}

// startMuxed serves a TCP transport behind a PortMux whose RPC listener
// counts connections.
func startMuxed(t testing.TB, cfg Config) (*TCP, *PortMux, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := DefaultPortMuxConfig()
	mc.FirstByteTimeout = 300 * time.Millisecond
	mc.Logger = cfg.Logger
	pm, err := NewPortMux(ln, mc)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: pm.RPC()}
	tr, err := NewTCPOnListener(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		_ = pm.Close()
	})
	return tr, pm, cl
}

func TestMultiplexedOnOneConnection(t *testing.T) {
	for _, conns := range []int{1, 3} {
		cfg := tcfg()
		cfg.ConnsPerPeer = conns
		srv, _, cl := startMuxed(t, cfg)
		var inHandler, maxIn atomic.Int32
		srv.Serve(func(_ context.Context, _, _ string, body []byte) ([]byte, error) {
			n := inHandler.Add(1)
			for {
				m := maxIn.Load()
				if n <= m || maxIn.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			inHandler.Add(-1)
			return body, nil
		})
		cli := startTCP(t, cfg)
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				body := []byte(strings.Repeat("x", i))
				out, err := cli.Call(testCtx(t, 10*time.Second), srv.LocalAddr(), "m", body)
				if err != nil || !bytes.Equal(out, body) {
					t.Errorf("call %d: %d bytes, %v", i, len(out), err)
				}
			})
		}
		wg.Wait()
		if n := len(cl.accepted()); n != conns {
			t.Errorf("ConnsPerPeer %d: the server accepted %d connections", conns, n)
		}
		if m := maxIn.Load(); m < 10 {
			t.Errorf("ConnsPerPeer %d: at most %d handlers ran at once; calls were not multiplexed", conns, m)
		}
	}
}

func TestBrokenConnectionFailsCallsAndRedials(t *testing.T) {
	cfg := tcfg()
	cfg.ConnsPerPeer = 1
	srv, _, cl := startMuxed(t, cfg)
	started := make(chan struct{}, 4)
	srv.Serve(func(ctx context.Context, _, method string, body []byte) ([]byte, error) {
		if method == "block" {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return body, nil
	})
	cli := startTCP(t, cfg)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := cli.Call(testCtx(t, 20*time.Second), srv.LocalAddr(), "block", nil)
			errs <- err
		}()
	}
	for range 3 {
		<-started
	}
	conns := cl.accepted()
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	_ = conns[0].Close() // the network breaks
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrConnClosed) {
				t.Errorf("call on a broken connection: %v, want ErrConnClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("call on a broken connection did not return")
		}
	}
	out, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "echo", []byte("again"))
	if err != nil || string(out) != "again" {
		t.Fatalf("call after the break: %q, %v", out, err)
	}
	if n := len(cl.accepted()); n != 2 {
		t.Errorf("%d connections after the break, want 2 (one redial)", n)
	}
}

func TestPortMuxRoutes(t *testing.T) {
	cfg := tcfg()
	srv, pm, _ := startMuxed(t, cfg)
	srv.Serve(echoHandler)

	// Raft side: an echo server on the Raft listener.
	stream := NewRaftStreamLayer(pm.Raft(), nil)
	if stream.Addr().String() != pm.Addr().String() {
		t.Errorf("stream layer address %s, want the port's %s", stream.Addr(), pm.Addr())
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := stream.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})

	// RPC and Raft connections to the same port.
	cli := startTCP(t, cfg)
	if out, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "m", []byte("rpc")); err != nil || string(out) != "rpc" {
		t.Fatalf("rpc through the mux: %q, %v", out, err)
	}
	rc, err := stream.DialAddr(pm.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Write([]byte("raft bytes")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("raft bytes"))
	_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(rc, got); err != nil || string(got) != "raft bytes" {
		t.Fatalf("raft echo through the mux: %q, %v (the protocol byte must not reach the Raft side)", got, err)
	}
	_ = rc.Close()

	// A garbage first byte, and silence, are closed.
	for name, first := range map[string][]byte{"garbage": {'X'}, "silent": nil} {
		c, err := net.Dial("tcp", pm.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if first != nil {
			_, _ = c.Write(first)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Errorf("%s connection: read %d bytes, %v; want it closed", name, n, err)
		}
		if took := time.Since(start); first == nil && took < 200*time.Millisecond {
			t.Errorf("silent connection closed after %s, before FirstByteTimeout", took)
		}
		_ = c.Close()
	}

	// Closing the Raft side leaves RPC working; Close closes everything.
	_ = stream.Close()
	if out, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "m", []byte("still")); err != nil || string(out) != "still" {
		t.Fatalf("rpc after closing the raft listener: %q, %v", out, err)
	}
	if err := pm.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pm.RPC().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	wg.Wait()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestNewTCPRefusesRaft(t *testing.T) {
	srv := startTCP(t, tcfg())
	c, err := DialRaft(srv.LocalAddr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("raft connection to a plain RPC port: %v, want it closed", err)
	}
}

// rawHandshake dials addr as an RPC client speaking version v and returns
// the connection and the server's answer.
func rawHandshake(t *testing.T, addr string, v uint64) (net.Conn, *bufio.Reader, hello) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	out := append([]byte{ProtoRPC}, encodeHello(&hello{version: v, nodeID: "raw", frameBytesMax: 1 << 20})...)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	b, err := readFrame(br, handshakeBytesMax)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeHello(b)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, h
}

func TestVersionMismatchServerSide(t *testing.T) {
	srv := startTCP(t, tcfg())
	c, _, h := rawHandshake(t, srv.LocalAddr(), 99)
	if h.version != ProtocolVersion || !strings.Contains(h.err, "version 99") || !strings.Contains(h.err, "speaks 1") {
		t.Errorf("answer to version 99: %+v; want version %d and an error naming both versions", h, ProtocolVersion)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("connection after a refused handshake: %v, want it closed", err)
	}
}

// fakeServer accepts one RPC connection, reads its handshake and lets f
// answer.
func fakeServer(t *testing.T, f func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		var b [1]byte
		if _, err := io.ReadFull(br, b[:]); err != nil || b[0] != ProtoRPC {
			t.Errorf("first byte %q, %v; want %q", b[0], err, ProtoRPC)
			return
		}
		hb, err := readFrame(br, handshakeBytesMax)
		if err != nil {
			t.Error(err)
			return
		}
		if h, err := decodeHello(hb); err != nil || h.version != ProtocolVersion {
			t.Errorf("client hello %+v, %v", h, err)
		}
		f(c, br)
	})
	return ln.Addr().String()
}

func TestVersionMismatchClientSide(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn, _ *bufio.Reader) {
		_, _ = c.Write(encodeHello(&hello{version: 2, nodeID: "future", frameBytesMax: 1 << 20, err: "speaks 2"}))
	})
	cli := startTCP(t, tcfg())
	_, err := cli.Call(testCtx(t, 5*time.Second), addr, "m", nil)
	if !errors.Is(err, ErrVersionMismatch) || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "speaks 1") {
		t.Errorf("call to a version-2 server: %v; want ErrVersionMismatch naming both versions", err)
	}
}

func TestOversizeFrameFromClientClosesConnection(t *testing.T) {
	cfg := tcfg()
	srv := startTCP(t, cfg)
	srv.Serve(echoHandler)
	c, _, h := rawHandshake(t, srv.LocalAddr(), ProtocolVersion)
	if h.err != "" {
		t.Fatal(h.err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 0xfffffff0) // ~4 GiB, limit is 1 MiB
	if _, err := c.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("after an oversize length: %v, want the connection closed", err)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Errorf("the server allocated %d bytes after an oversize length", d)
	}
	// The server keeps serving others.
	cli := startTCP(t, cfg)
	if out, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "m", []byte("ok")); err != nil || string(out) != "ok" {
		t.Errorf("call after the oversize frame: %q, %v", out, err)
	}
}

func TestOversizeFrameFromServerFailsCall(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write(encodeHello(&hello{version: ProtocolVersion, nodeID: "evil", frameBytesMax: 1 << 20}))
		if _, err := readFrame(br, 1<<20); err != nil { // the request
			return
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], 1<<30)
		_, _ = c.Write(hdr[:])
		_, _ = io.Copy(io.Discard, br) // until the client hangs up
	})
	cli := startTCP(t, tcfg())
	_, err := cli.Call(testCtx(t, 5*time.Second), addr, "m", nil)
	if !errors.Is(err, ErrConnClosed) || !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversize response frame: %v, want ErrConnClosed wrapping ErrFrameTooLarge", err)
	}
}

func TestLateAndUnknownAnswersDropped(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write(encodeHello(&hello{version: ProtocolVersion, nodeID: "odd", frameBytesMax: 1 << 20}))
		b, err := readFrame(br, 1<<20)
		if err != nil {
			return
		}
		req, err := decodeFrame(b)
		if err != nil {
			t.Error(err)
			return
		}
		for _, f := range []frame{
			{id: req.id + 1000, kind: kindResponse, body: []byte("not yours")},
			{id: req.id, kind: kindResponse, body: []byte("yours")},
		} {
			buf, _ := encodeFrame(&f, 1<<20)
			_, _ = c.Write(buf.Bytes())
		}
		_, _ = io.Copy(io.Discard, br)
	})
	cli := startTCP(t, tcfg())
	out, err := cli.Call(testCtx(t, 5*time.Second), addr, "m", nil)
	if err != nil || string(out) != "yours" {
		t.Errorf("got %q, %v; want the answer with the call's id", out, err)
	}
}

func TestUnreachableWithinDialTimeout(t *testing.T) {
	// A listener that never accepts: the kernel completes the TCP
	// handshake, the dbx handshake never comes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := tcfg()
	cfg.DialTimeout = 300 * time.Millisecond
	cli := startTCP(t, cfg)
	start := time.Now()
	_, err = cli.Call(testCtx(t, 10*time.Second), ln.Addr().String(), "m", nil)
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("silent peer: %v, want ErrUnreachable", err)
	}
	if took := time.Since(start); took > cfg.DialTimeout+2*time.Second {
		t.Errorf("silent peer: failed after %s, DialTimeout is %s", took, cfg.DialTimeout)
	}
	// A caller's shorter deadline wins over DialTimeout.
	cfg.DialTimeout = 5 * time.Second
	cli2 := startTCP(t, cfg)
	start = time.Now()
	_, err = cli2.Call(testCtx(t, 100*time.Millisecond), ln.Addr().String(), "m", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("silent peer with a 100ms deadline: %v after %s", err, time.Since(start))
	}
}

func TestInFlightPerConnBound(t *testing.T) {
	cfg := tcfg()
	cfg.ConnsPerPeer = 1
	cfg.InFlightPerConnMax = 2
	srv := startTCP(t, cfg)
	release := make(chan struct{})
	var running atomic.Int32
	srv.Serve(func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		running.Add(1)
		<-release
		return []byte("done"), nil
	})
	cli := startTCP(t, cfg)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := cli.Call(testCtx(t, 10*time.Second), srv.LocalAddr(), "m", nil); err != nil {
				t.Error(err)
			}
		})
	}
	for running.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	// A third call waits for room, here until its deadline.
	_, err := cli.Call(testCtx(t, 150*time.Millisecond), srv.LocalAddr(), "m", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("third call: %v, want context.DeadlineExceeded while two are in flight", err)
	}
	if n := running.Load(); n != 2 {
		t.Errorf("%d handlers ran, want 2", n)
	}
	close(release)
	wg.Wait()
	if _, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "m", nil); err != nil {
		t.Errorf("call after the others finished: %v", err)
	}
}

func TestHandlerConcurrencyBackpressure(t *testing.T) {
	cfg := tcfg()
	cfg.HandlerConcurrencyMax = 2
	srv := startTCP(t, cfg)
	release := make(chan struct{})
	var running atomic.Int32
	srv.Serve(func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		running.Add(1)
		<-release
		return nil, nil
	})
	cli := startTCP(t, cfg)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = cli.Call(testCtx(t, 10*time.Second), srv.LocalAddr(), "m", nil) })
	}
	for running.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	_, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "m", nil)
	if !errors.Is(err, ErrBackpressure) || !errors.Is(err, ErrRemote) {
		t.Errorf("call above HandlerConcurrencyMax: %v, want ErrBackpressure", err)
	}
	close(release)
	wg.Wait()
}

func TestDefaultCallTimeout(t *testing.T) {
	cfg := tcfg()
	cfg.CallTimeout = 200 * time.Millisecond
	srv := startTCP(t, cfg)
	seen := make(chan time.Duration, 1)
	srv.Serve(func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		dl, _ := ctx.Deadline()
		seen <- time.Until(dl)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	cli := startTCP(t, cfg)
	start := time.Now()
	_, err := cli.Call(context.Background(), srv.LocalAddr(), "m", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("call without deadline: %v after %s, want DeadlineExceeded after CallTimeout", err, time.Since(start))
	}
	if d := <-seen; d <= 0 || d > cfg.CallTimeout {
		t.Errorf("handler deadline %s away, want within CallTimeout %s", d, cfg.CallTimeout)
	}
}

func TestFrameLimitNegotiated(t *testing.T) {
	small, big := tcfg(), tcfg()
	small.FrameBytesMax = 128 << 10
	big.FrameBytesMax = 1 << 20
	srv := startTCP(t, small)
	srv.Serve(echoHandler)
	cli := startTCP(t, big)
	_, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "m", make([]byte, 200<<10))
	if !errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrRemote) {
		t.Errorf("request above the server's limit: %v, want a local ErrFrameTooLarge", err)
	}
	if _, err := cli.Call(testCtx(t, 5*time.Second), srv.LocalAddr(), "m", []byte("fine")); err != nil {
		t.Errorf("the connection should survive: %v", err)
	}
}

func TestPeersMaxEvictsIdle(t *testing.T) {
	cfg := tcfg()
	cfg.PeersMax = 1
	a, b := startTCP(t, cfg), startTCP(t, cfg)
	a.Serve(echoHandler)
	b.Serve(echoHandler)
	cli := startTCP(t, cfg)
	for range 3 {
		for _, s := range []*TCP{a, b} {
			if _, err := cli.Call(testCtx(t, 5*time.Second), s.LocalAddr(), "m", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	cli.mu.Lock()
	n := len(cli.mu.peers)
	cli.mu.Unlock()
	if n != 1 {
		t.Errorf("%d peers pooled, PeersMax is 1", n)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	err := Config{NodeID: strings.Repeat("n", NodeIDBytesMax+1), FrameBytesMax: 2 << 30}.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("zero config: %v, want ErrBadConfig", err)
	}
	for _, field := range []string{"NodeID", "FrameBytesMax (2147483648)", "DialTimeout", "CallTimeout", "HandshakeTimeout", "WriteTimeout", "ConnsPerPeer", "InFlightPerConnMax", "HandlerConcurrencyMax", "ServerConnsMax", "PeersMax"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Validate does not report %s: %v", field, err)
		}
	}
	if err := DefaultPortMuxConfig().Validate(); err != nil {
		t.Fatalf("DefaultPortMuxConfig: %v", err)
	}
	err = PortMuxConfig{}.Validate()
	for _, field := range []string{"FirstByteTimeout", "PendingMax", "AcceptQueueMax"} {
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("PortMuxConfig.Validate does not report %s: %v", field, err)
		}
	}
	cfg := tcfg()
	cfg.BindAddr = "0.0.0.0:0"
	if _, err := NewTCP(cfg); !errors.Is(err, ErrBadConfig) {
		t.Errorf("unspecified bind address without AdvertiseAddr: %v, want ErrBadConfig", err)
	}
	cfg.AdvertiseAddr = "127.0.0.1:1"
	tr, err := NewTCP(cfg)
	if err != nil {
		t.Fatalf("with AdvertiseAddr: %v", err)
	}
	if tr.LocalAddr() != "127.0.0.1:1" {
		t.Errorf("LocalAddr %s, want the advertised address", tr.LocalAddr())
	}
	_ = tr.Close()
}

// errA is package level: the registry is process-wide and tests may run
// more than once (-count).
var errA = errors.New("a")

func TestRegisterErrorPanics(t *testing.T) {
	RegisterError("test.a", errA)
	RegisterError("test.a", errA) // same pair: no-op
	for name, f := range map[string]func(){
		"empty code":     func() { RegisterError("", errA) },
		"long code":      func() { RegisterError(strings.Repeat("c", 65), errA) },
		"nil error":      func() { RegisterError("test.nil", nil) },
		"code reused":    func() { RegisterError("test.a", errors.New("other")) },
		"sentinel again": func() { RegisterError("test.a2", errA) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// A long message is truncated on a rune boundary.
	_, msg := errorToWire(errors.New(strings.Repeat("é", ErrorMessageBytesMax)))
	if len(msg) > ErrorMessageBytesMax || !strings.HasSuffix(msg, "…") || !strings.HasPrefix(msg, "é") {
		t.Errorf("truncated message of %d bytes", len(msg))
	}
}

func TestRouterPanics(t *testing.T) {
	r := NewRouter()
	r.HandleFunc("m", echoHandler)
	for name, f := range map[string]func(){
		"duplicate": func() { r.HandleFunc("m", echoHandler) },
		"empty":     func() { r.HandleFunc("", echoHandler) },
		"nil":       func() { r.HandleFunc("n", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
