package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/internal/tlsreload"
	"github.com/dbx-kv/dbx/internal/tlsreload/certtest"
)

// TestAuthFailuresBounded: every failed AUTH on a connection waits longer
// than the one before, the AuthFailuresMax-th closes the connection, a
// good AUTH resets the count, and other connections are not affected.
func TestAuthFailuresBounded(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequirePass = "s3cret"
	cfg.AuthFailuresMax = 4
	cfg.AuthFailureDelay = 20 * time.Millisecond
	_, addr := startServer(t, cfg, newMemBackend(nil))

	r := dialRaw(t, addr)
	for i := 1; i <= 2; i++ {
		start := time.Now()
		if got := r.do("AUTH", "guess"); !strings.HasPrefix(got, "-WRONGPASS") {
			t.Fatalf("attempt %d: %s", i, got)
		}
		if took, want := time.Since(start), time.Duration(i)*cfg.AuthFailureDelay; took < want {
			t.Errorf("failed attempt %d answered after %s, want at least %s", i, took, want)
		}
	}
	if got := r.do("AUTH", "s3cret"); got != "+OK" {
		t.Fatalf("good AUTH after failures: %s", got)
	}
	// The count starts again after a success: 4 more failures to close.
	for i := 1; i <= 3; i++ {
		if got := r.do("HELLO", "2", "AUTH", "default", "guess"); !strings.HasPrefix(got, "-WRONGPASS") {
			t.Fatalf("HELLO attempt %d: %s", i, got)
		}
	}
	if got := r.do("AUTH", "guess"); !strings.Contains(got, "closing the connection") {
		t.Fatalf("attempt %d: %s, want the connection closed", cfg.AuthFailuresMax, got)
	}
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.rd.ReadByte(); err == nil {
		t.Fatal("the connection stayed open after AuthFailuresMax failures")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection stayed open after AuthFailuresMax failures (read timed out)")
	}
	if got := dialRaw(t, addr).do("AUTH", "s3cret"); got != "+OK" {
		t.Fatalf("another connection: %s", got)
	}
}

func TestAuthConfigBounds(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"failures 0":      func(c *Config) { c.AuthFailuresMax = 0 },
		"failures 1001":   func(c *Config) { c.AuthFailuresMax = 1001 },
		"delay negative":  func(c *Config) { c.AuthFailureDelay = -1 },
		"delay 3s":        func(c *Config) { c.AuthFailureDelay = 3 * time.Second },
		"tls handshake 0": func(c *Config) { c.TLSHandshakeTimeout = 0 },
	} {
		cfg := DefaultConfig()
		edit(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
}

// TestTLSHandshakeTimeout: a client that connects to a TLS listener and
// never sends a ClientHello is disconnected after TLSHandshakeTimeout;
// a TLS client is served.
func TestTLSHandshakeTimeout(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	f := ca.Write(t, dir, "srv", ca.Issue(t, "srv"))
	rel, err := tlsreload.New(tlsreload.Files{Cert: f.Cert, Key: f.Key})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(nil)
	cfg.TLSHandshakeTimeout = 200 * time.Millisecond
	s, err := New(cfg, newMemBackend(nil))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(tls.NewListener(ln, rel.ServerConfig())) }()
	t.Cleanup(func() { _ = s.Close() })

	// start before the dial: the server's clock runs from its accept,
	// which can come before Dial returns.
	start := time.Now()
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a silent TLS connection returned data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a silent TLS connection was not closed")
	}
	if took := time.Since(start); took < cfg.TLSHandshakeTimeout {
		t.Errorf("closed after %s, before TLSHandshakeTimeout", took)
	}
	pool := ca.PEM
	tc := &tls.Config{ServerName: "localhost", RootCAs: poolOf(t, pool)}
	c, err := tls.Dial("tcp", ln.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(encode("PING")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("PING over TLS: %q, %v", buf[:n], err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %#x, want 1.3", v)
	}
}

func poolOf(t *testing.T, pemBytes []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		t.Fatal("bad CA PEM")
	}
	return p
}

// TestEveryCommandNeedsAuth: with a password set, every command of the
// table but AUTH, HELLO, PING and QUIT answers NOAUTH before AUTH, with
// valid arity, and nothing it would have written is there afterwards.
func TestEveryCommandNeedsAuth(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequirePass = "s3cret"
	_, addr := startServer(t, cfg, newMemBackend(nil))
	r := dialRaw(t, addr)
	open := map[string]bool{"auth": true, "hello": true, "ping": true, "quit": true}
	n := 0
	for name, c := range commandTable(nil) {
		if open[name] {
			if !c.noAuth {
				t.Errorf("%s needs AUTH", name)
			}
			continue
		}
		if c.noAuth {
			t.Errorf("%s runs before AUTH", name)
			continue
		}
		args := []string{name}
		for len(args) < max(c.arity, -c.arity) {
			args = append(args, "k")
		}
		if got := r.do(args...); got != "-NOAUTH Authentication required." {
			t.Errorf("%v before AUTH: %s", args, got)
		}
		n++
	}
	if n < 40 {
		t.Fatalf("only %d commands checked", n)
	}
	if got := r.do("AUTH", "s3cret"); got != "+OK" {
		t.Fatal(got)
	}
	if got := r.do("EXISTS", "k"); got != ":0" {
		t.Errorf("EXISTS k after the refused commands: %s, want :0", got)
	}
}

func TestIsSecretFlag(t *testing.T) {
	for name, want := range map[string]bool{
		"requirepass": true, "admin-token": true, "gossip-key": true, "cluster-secret": true, "token": true,
		"cluster-secret-file": false, "tls-key": false, "peer-key": false, "cert-key": false, "tls-cert": false, "id": false,
	} {
		if got := IsSecretFlag(name); got != want {
			t.Errorf("IsSecretFlag(%q) = %v, want %v", name, got, want)
		}
	}
}
