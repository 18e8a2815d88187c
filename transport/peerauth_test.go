package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/internal/tlsreload"
	"github.com/dbx-kv/dbx/internal/tlsreload/certtest"
)

var testSecret = []byte("0123456789abcdef-the-cluster-secret")

// peerTLS returns the PeerAuth TLS half of a node whose certificate name
// issues, reading its files from dir.
func peerTLS(t *testing.T, ca *certtest.CA, dir, name string) (*PeerAuth, *tlsreload.Reloader) {
	t.Helper()
	f := ca.Write(t, dir, name, ca.Issue(t, name))
	r, err := tlsreload.New(tlsreload.Files{Cert: f.Cert, Key: f.Key, CA: f.CA})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := r.PeerClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return &PeerAuth{ServerTLS: r.ServerConfig(), ClientTLS: cc}, r
}

// securedServer serves a counting echo handler for the methods given on a
// PortMux with auth; it returns the port's address, the number of handler
// runs and the mux (for its Raft side).
func securedServer(t *testing.T, auth *PeerAuth) (string, *atomic.Int64, *PortMux) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := DefaultPortMuxConfig()
	mc.FirstByteTimeout = 2 * time.Second
	mc.Logger = tcfg().Logger
	mc.PeerAuth = auth
	pm, err := NewPortMux(ln, mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pm.Close() })
	cfg := tcfg()
	cfg.PeerAuth = auth
	srv, err := NewTCPOnListener(cfg, pm.RPC())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	var runs atomic.Int64
	srv.Serve(func(_ context.Context, _, _ string, body []byte) ([]byte, error) {
		runs.Add(1)
		return body, nil
	})
	return srv.LocalAddr(), &runs, pm
}

func clientWith(t *testing.T, auth *PeerAuth) *TCP {
	t.Helper()
	cfg := tcfg()
	cfg.PeerAuth = auth
	return startTCP(t, cfg)
}

func TestPeerAuthValidate(t *testing.T) {
	for name, a := range map[string]*PeerAuth{
		"short secret": {Secret: []byte("short")},
		"long secret":  {Secret: make([]byte, SecretBytesMax+1)},
		"half tls":     {ServerTLS: &tls.Config{}},
	} {
		cfg := tcfg()
		cfg.PeerAuth = a
		if err := cfg.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: Validate = %v, want ErrBadConfig", name, err)
		}
	}
}

// TestClusterSecret: nodes sharing the secret call each other; a dialer
// with another secret or none is refused before any handler runs, and
// so is a server without it (the dialer does not trust it).
func TestClusterSecret(t *testing.T) {
	good := &PeerAuth{Secret: testSecret}
	addr, runs, _ := securedServer(t, good)
	ctx := testCtx(t, 10*time.Second)
	if out, err := clientWith(t, good).Call(ctx, addr, "kv.get", []byte("hi")); err != nil || string(out) != "hi" {
		t.Fatalf("call with the secret: %q, %v", out, err)
	}
	for name, a := range map[string]*PeerAuth{
		"no secret":    nil,
		"other secret": {Secret: []byte("another-secret-of-enough-bytes")},
	} {
		_, err := clientWith(t, a).Call(ctx, addr, "kv.get", []byte("x"))
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: call = %v, want ErrUnreachable", name, err)
		}
		if a != nil && !errors.Is(err, ErrPeerAuth) {
			t.Errorf("%s: call = %v, want ErrPeerAuth", name, err)
		}
		if a == nil && (err == nil || !strings.Contains(err.Error(), errSecretRequired)) {
			t.Errorf("%s: call = %v, want the refusal to name the missing secret", name, err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d handler runs, want 1 (only the authenticated call)", n)
	}
	// A node with the secret does not talk to a server without it.
	plain := startTCP(t, tcfg())
	plain.Serve(echoHandler)
	if _, err := clientWith(t, good).Call(ctx, plain.LocalAddr(), "m", nil); !errors.Is(err, ErrPeerAuth) {
		t.Errorf("call to a server without the secret = %v, want ErrPeerAuth", err)
	}
}

// attackerMethods are the methods a forged request is tried with; the
// node package runs the same attack over every method it registers.
var attackerMethods = []string{"kv.get", "kv.set", "kv.del", "leader.op", "txn.prepare", "mig.snapshot"}

// forgeRPC speaks the RPC wire protocol as an attacker would: the
// protocol byte, a handshake claiming to be n1, then a request frame per
// method, optionally preceded by pre (an attempt at the secret
// handshake). It reports whether any answer came back.
func forgeRPC(t *testing.T, addr string, pre []byte) (answered bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	out := append([]byte(nil), pre...)
	out = append(out, ProtoRPC)
	out = append(out, encodeHello(&hello{version: ProtocolVersion, nodeID: "n1", frameBytesMax: 1 << 20})...)
	for i, m := range attackerMethods {
		buf, err := encodeFrame(&frame{id: uint64(i + 1), kind: kindRequest, method: m, timeout: int64(time.Second), body: []byte{0x80}}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes()...)
	}
	_, _ = c.Write(out) // the server may close before reading it all
	br := bufio.NewReader(c)
	for {
		b, err := readFrame(br, 1<<20)
		if err != nil {
			if isTimeout(err) {
				t.Errorf("the server kept a forged connection open")
			}
			return answered
		}
		if h, err := decodeHello(b); err == nil && h.err == "" {
			answered = true
		} else if _, err := decodeFrame(b); err == nil {
			answered = true
		}
	}
}

// TestForgedRPCRefused: an attacker that speaks the wire protocol but
// lacks the secret (skipping the secret handshake, or faking it with a
// made-up proof) or the peer certificate gets no handshake answer and no
// handler runs, for any method.
func TestForgedRPCRefused(t *testing.T) {
	fakeProof := append([]byte(secretMagic), secretVersion)
	fakeProof = append(fakeProof, make([]byte, nonceBytes+macBytes)...)
	ca := certtest.NewCA(t, "dbx test CA")
	tlsAuth, _ := peerTLS(t, ca, t.TempDir(), "n1")
	for name, tc := range map[string]struct {
		auth *PeerAuth
		pre  []byte
	}{
		"secret, none sent":  {&PeerAuth{Secret: testSecret}, nil},
		"secret, fake proof": {&PeerAuth{Secret: testSecret}, fakeProof},
		"tls, plaintext":     {tlsAuth, nil},
	} {
		t.Run(name, func(t *testing.T) {
			addr, runs, _ := securedServer(t, tc.auth)
			if forgeRPC(t, addr, tc.pre) {
				t.Errorf("a forged connection got an answer")
			}
			if n := runs.Load(); n != 0 {
				t.Errorf("%d handlers ran for forged requests", n)
			}
		})
	}
}

// TestForgedRaftRefused: a Raft connection without the secret or the
// certificate never reaches the Raft listener; an authenticated one does,
// and is the first one it accepts.
func TestForgedRaftRefused(t *testing.T) {
	ca := certtest.NewCA(t, "dbx test CA")
	tlsAuth, _ := peerTLS(t, ca, t.TempDir(), "n1")
	other := certtest.NewCA(t, "another CA")
	wrongCA, _ := peerTLS(t, other, t.TempDir(), "intruder")
	for name, tc := range map[string]struct {
		auth, attacker *PeerAuth
	}{
		"secret":   {&PeerAuth{Secret: testSecret}, &PeerAuth{Secret: []byte("guessed-secret-1234567")}},
		"tls":      {tlsAuth, nil},
		"wrong ca": {tlsAuth, wrongCA},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, pm := securedServer(t, tc.auth)
			addr := pm.Addr().String()
			accepted := make(chan []byte, 4)
			go func() {
				for {
					c, err := pm.Raft().Accept()
					if err != nil {
						return
					}
					b := make([]byte, 5)
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, _ := io.ReadFull(c, b)
					accepted <- b[:n]
					_ = c.Close()
				}
			}()
			// The attacker: refused at dial (it runs its side of the
			// handshake) or, when it has none, closed by the server.
			c, err := DialRaftAuth(addr, 2*time.Second, tc.attacker)
			if err == nil {
				_, _ = c.Write([]byte("evil!"))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
					t.Errorf("forged raft connection: read %v, want it closed", err)
				}
				_ = c.Close()
			} else if tc.attacker != nil && !errors.Is(err, ErrPeerAuth) {
				t.Errorf("forged raft dial = %v, want ErrPeerAuth", err)
			}
			good, err := DialRaftAuth(addr, 2*time.Second, tc.auth)
			if err != nil {
				t.Fatalf("authenticated raft dial: %v", err)
			}
			defer good.Close()
			if _, err := good.Write([]byte("good!")); err != nil {
				t.Fatal(err)
			}
			select {
			case b := <-accepted:
				if string(b) != "good!" {
					t.Errorf("the raft listener first accepted a connection sending %q, want the authenticated one", b)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the authenticated raft connection was not accepted")
			}
		})
	}
}

// TestPeerTLS: nodes with certificates from the cluster CA call each
// other; one whose certificate another CA issued, or none, cannot call,
// and a node does not call a server whose certificate another CA issued.
func TestPeerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "dbx test CA")
	n1, _ := peerTLS(t, ca, dir, "n1")
	n2, _ := peerTLS(t, ca, dir, "n2")
	addr, runs, _ := securedServer(t, n1)
	ctx := testCtx(t, 10*time.Second)
	if out, err := clientWith(t, n2).Call(ctx, addr, "kv.get", []byte("hi")); err != nil || string(out) != "hi" {
		t.Fatalf("call with a CA-issued certificate: %q, %v", out, err)
	}
	other := certtest.NewCA(t, "another CA")
	intruder, _ := peerTLS(t, other, filepath.Join(t.TempDir()), "intruder")
	noCert := &PeerAuth{ServerTLS: n2.ServerTLS, ClientTLS: &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}}
	for name, a := range map[string]*PeerAuth{"wrong CA": intruder, "no certificate": noCert} {
		if _, err := clientWith(t, a).Call(ctx, addr, "kv.get", nil); !errors.Is(err, ErrPeerAuth) {
			t.Errorf("%s: call = %v, want ErrPeerAuth", name, err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d handler runs, want 1", n)
	}
	// The dialer checks the server too.
	evil, _, _ := securedServer(t, intruder)
	if _, err := clientWith(t, n2).Call(ctx, evil, "kv.get", nil); !errors.Is(err, ErrPeerAuth) {
		t.Errorf("call to a server with another CA's certificate = %v, want ErrPeerAuth", err)
	}
	// TLS and the secret together.
	both := &PeerAuth{ServerTLS: n1.ServerTLS, ClientTLS: n1.ClientTLS, Secret: testSecret}
	addr2, _, _ := securedServer(t, both)
	if _, err := clientWith(t, n2).Call(ctx, addr2, "kv.get", nil); !errors.Is(err, ErrUnreachable) {
		t.Errorf("certificate without the secret = %v, want ErrUnreachable", err)
	}
	if _, err := clientWith(t, both).Call(ctx, addr2, "kv.get", nil); err != nil {
		t.Errorf("certificate and secret: %v", err)
	}
}

// TestPeerTLSRotation rotates the server's certificate many times while
// new connections are made (every call on a fresh transport): no call
// fails, and the rotated certificate is the one served.
func TestPeerTLSRotation(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "dbx test CA")
	srvAuth, rel := peerTLS(t, ca, dir, "n1")
	cliAuth, _ := peerTLS(t, ca, dir, "n2")
	addr, _, _ := securedServer(t, srvAuth)
	const rotations = 10
	stop := make(chan struct{})
	errc := make(chan error, 1)
	var calls atomic.Int64
	go func() {
		defer close(errc)
		for {
			select {
			case <-stop:
				return
			default:
			}
			cfg := tcfg()
			cfg.PeerAuth = cliAuth
			cli, err := NewTCP(cfg)
			if err != nil {
				errc <- err
				return
			}
			_, err = cli.Call(context.Background(), addr, "kv.get", []byte("x"))
			_ = cli.Close()
			if err != nil {
				errc <- err
				return
			}
			calls.Add(1)
		}
	}()
	for i := range rotations {
		p := ca.Issue(t, "n1-rotated")
		ca.Write(t, dir, "n1", p)
		changed, err := rel.Reload()
		if err != nil || !changed {
			t.Fatalf("rotation %d: Reload = %v, %v", i, changed, err)
		}
		// Wait (bounded) for some calls over the new certificate.
		for start := calls.Load(); calls.Load() < start+3; {
			select {
			case err := <-errc:
				t.Fatalf("call failed during rotation %d: %v", i, err)
			case <-time.After(time.Millisecond):
			}
		}
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatalf("call failed: %v", err)
	}
	if got := rel.Certificate().Leaf.Subject.CommonName; got != "n1-rotated" {
		t.Errorf("certificate in force: %q", got)
	}
	t.Logf("%d calls over %d rotations", calls.Load(), rotations)
}
