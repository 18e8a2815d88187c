package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/internal/tlsreload/certtest"
	"github.com/dbx-kv/dbx/node"
	"github.com/dbx-kv/dbx/transport"
)

const clusterSecret = "integration-cluster-secret-0123456789"

func caPool(t *testing.T, ca *certtest.CA) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(ca.PEM) {
		t.Fatal("CA PEM")
	}
	return p
}

func tlsClient(addr string, tc *tls.Config) *redis.Client {
	return redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: addr, TLSConfig: tc, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
}

// TestTLSClientPorts: with --tls-cert and --tls-resp-addr, go-redis speaks
// TLS on the TLS port while the plain port keeps serving (a migration);
// the admin port speaks HTTPS. With --tls-client-ca and no TLS RESP
// address the RESP port is TLS only and needs a client certificate.
func TestTLSClientPorts(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "client CA")
	f := ca.Write(t, dir, "n1", ca.Issue(t, "n1"))
	ctx := context.Background()

	cfg := nodeConfig(t, "t1", t.TempDir(), nil)
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSRESPAddr = f.Cert, f.Key, "127.0.0.1:0"
	n := startNode(t, cfg)
	defer n.Close()
	waitConverged(t, []*node.Node{n}, 1)
	tc := &tls.Config{RootCAs: caPool(t, ca), ServerName: "localhost"}
	sec := tlsClient(n.TLSRESPAddr(), tc)
	defer sec.Close()
	if err := sec.Set(ctx, "k", "over tls", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	plain := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n.RESPAddr(), MaxRetries: -1})
	defer plain.Close()
	if v, err := plain.Get(ctx, "k").Result(); err != nil || v != "over tls" {
		t.Fatalf("GET on the plain port: %q, %v", v, err)
	}
	// redis-cli --tls, when installed (Debian's redis-tools is built with TLS).
	if cli, err := exec.LookPath("redis-cli"); err == nil {
		host, port, _ := net.SplitHostPort(n.TLSRESPAddr())
		out, err := exec.Command(cli, "--tls", "--cacert", f.CA, "-h", host, "-p", port, "GET", "k").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "over tls" {
			t.Errorf("redis-cli --tls GET k: %q, %v", out, err)
		}
	} else {
		t.Log("redis-cli not installed: its TLS check skipped")
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := hc.Get("https://" + n.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatalf("admin over https: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz over https: %s", resp.Status)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + n.HTTPAddr() + "/healthz"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain http on the TLS admin port answered 200")
		}
	}
	_ = n.Close()

	// TLS only, client certificates required.
	cfg2 := nodeConfig(t, "t2", t.TempDir(), nil)
	cfg2.TLSCertFile, cfg2.TLSKeyFile, cfg2.TLSClientCAFile = f.Cert, f.Key, f.CA
	n2 := startNode(t, cfg2)
	defer n2.Close()
	waitConverged(t, []*node.Node{n2}, 1)
	noCert := tlsClient(n2.RESPAddr(), tc)
	defer noCert.Close()
	if err := noCert.Ping(ctx).Err(); err == nil {
		t.Error("PING without a client certificate succeeded")
	}
	plain2 := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n2.RESPAddr(), MaxRetries: -1, ReadTimeout: 2 * time.Second})
	defer plain2.Close()
	if err := plain2.Ping(ctx).Err(); err == nil {
		t.Error("plain PING on a TLS-only port succeeded")
	}
	cc := ca.Issue(t, "client")
	cert, err := tls.X509KeyPair(cc.CertPEM, cc.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	withCert := tlsClient(n2.RESPAddr(), &tls.Config{RootCAs: caPool(t, ca), ServerName: "localhost", Certificates: []tls.Certificate{cert}})
	defer withCert.Close()
	if err := withCert.Set(ctx, "k2", "v", 0).Err(); err != nil {
		t.Fatalf("SET with a client certificate: %v", err)
	}
}

// TestTLSRotationUnderLoad rotates the RESP certificate (ReloadTLS, what
// SIGHUP does) while a client makes a new TLS connection for every
// SET/GET: no request fails, and new connections see the new certificate.
func TestTLSRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "client CA")
	f := ca.Write(t, dir, "n1", ca.Issue(t, "gen-0"))
	cfg := nodeConfig(t, "r1", t.TempDir(), nil)
	cfg.TLSCertFile, cfg.TLSKeyFile = f.Cert, f.Key
	n := startNode(t, cfg)
	defer n.Close()
	waitConverged(t, []*node.Node{n}, 1)
	tc := &tls.Config{RootCAs: caPool(t, ca), ServerName: "localhost"}

	var ops atomic.Int64
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := tlsClient(n.RESPAddr(), tc)
			err := c.Set(ctx, "rot", i, 0).Err()
			if err == nil {
				err = c.Get(ctx, "rot").Err()
			}
			_ = c.Close()
			if err != nil {
				errc <- err
				return
			}
			ops.Add(1)
		}
	}()
	const rotations = 8
	for i := 1; i <= rotations; i++ {
		name := "gen-" + string(rune('0'+i))
		ca.Write(t, dir, "n1", ca.Issue(t, name))
		if err := n.ReloadTLS(); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		conn, err := tls.Dial("tcp", n.RESPAddr(), tc)
		if err != nil {
			t.Fatalf("dial after rotation %d: %v", i, err)
		}
		got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
		_ = conn.Close()
		if got != name {
			t.Fatalf("after rotation %d the server presents %q, want %q", i, got, name)
		}
		deadline := time.Now().Add(20 * time.Second)
		for start := ops.Load(); ops.Load() < start+3; {
			select {
			case err := <-errc:
				t.Fatalf("request failed during rotation %d: %v", i, err)
			case <-time.After(time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no progress after rotation %d", i)
			}
		}
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatalf("request failed: %v", err)
	}
	t.Logf("%d SET+GET pairs, each on a new TLS connection, over %d rotations", ops.Load(), rotations)
}

// peerFiles writes a node certificate from ca for id.
func peerFiles(t *testing.T, ca *certtest.CA, id string) certtest.Files {
	return ca.Write(t, t.TempDir(), id, ca.Issue(t, id))
}

// TestPeerSecurity: nodes with mutual TLS and the cluster secret form a
// cluster; a node whose certificate another CA issued cannot join, nor
// can one without the secret; a process speaking the wire protocol
// without them is refused for every RPC method the node registers and
// for Raft.
func TestPeerSecurity(t *testing.T) {
	ca := certtest.NewCA(t, "peer CA")
	secure := func(c *node.Config, f certtest.Files, secret string) {
		c.PeerCertFile, c.PeerKeyFile, c.PeerCAFile = f.Cert, f.Key, f.CA
		c.ClusterSecret = secret
	}
	cfg1 := nodeConfig(t, "s1", t.TempDir(), nil)
	secure(&cfg1, peerFiles(t, ca, "s1"), clusterSecret)
	n1 := startNode(t, cfg1)
	defer n1.Close()
	cfg2 := nodeConfig(t, "s2", t.TempDir(), []string{n1.GossipAddr()})
	secure(&cfg2, peerFiles(t, ca, "s2"), clusterSecret)
	n2 := startNode(t, cfg2)
	defer n2.Close()
	waitConverged(t, []*node.Node{n1, n2}, 2)
	// Forwarding works between them.
	ctx := context.Background()
	c := client(t, n1)
	for i := range 20 {
		if err := c.Set(ctx, "key"+string(rune('a'+i)), "v", 0).Err(); err != nil {
			t.Fatalf("SET through the secured cluster: %v", err)
		}
	}

	other := certtest.NewCA(t, "intruder CA")
	for name, edit := range map[string]func(*node.Config){
		"wrong CA":  func(c *node.Config) { secure(c, peerFiles(t, other, "x1"), clusterSecret) },
		"no secret": func(c *node.Config) { secure(c, peerFiles(t, ca, "x2"), "") },
	} {
		cfg := nodeConfig(t, "x-"+name[:2], t.TempDir(), []string{n1.GossipAddr()})
		edit(&cfg)
		cfg.JoinTimeout = 3 * time.Second
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		n3, err := node.Start(sctx, cfg)
		cancel()
		if err == nil {
			_ = n3.Close()
			t.Fatalf("%s: a node joined the secured cluster", name)
		}
		t.Logf("%s: join refused: %v", name, err)
	}
	waitConverged(t, []*node.Node{n1, n2}, 2)

	methods := n1.RPCMethods()
	if len(methods) < 10 {
		t.Fatalf("only %d RPC methods registered: %v", len(methods), methods)
	}
	attacker := attackerTransport(t, nil)
	for _, m := range methods {
		_, err := attacker.Call(ctx, n1.RPCAddr(), m, []byte{0x80})
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Errorf("forged %s: %v, want ErrUnreachable (refused before the handshake)", m, err)
		}
	}
	// With the secret but no certificate: still refused.
	withSecret := attackerTransport(t, &transport.PeerAuth{Secret: []byte(clusterSecret)})
	if _, err := withSecret.Call(ctx, n1.RPCAddr(), methods[0], []byte{0x80}); !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("forged call with the secret but no certificate: %v", err)
	}
	forgeRaft(t, n1.RPCAddr())
}

// TestClusterSecretOnly: without TLS, the cluster secret alone keeps a
// process that does not know it off every RPC method and Raft.
func TestClusterSecretOnly(t *testing.T) {
	cfg1 := nodeConfig(t, "c1", t.TempDir(), nil)
	cfg1.ClusterSecret = clusterSecret
	n1 := startNode(t, cfg1)
	defer n1.Close()
	cfg2 := nodeConfig(t, "c2", t.TempDir(), []string{n1.GossipAddr()})
	cfg2.ClusterSecret = clusterSecret
	n2 := startNode(t, cfg2)
	defer n2.Close()
	waitConverged(t, []*node.Node{n1, n2}, 2)
	ctx := context.Background()
	for _, a := range []*transport.PeerAuth{nil, {Secret: []byte("a-guessed-secret-of-enough-length")}} {
		tr := attackerTransport(t, a)
		for _, m := range n1.RPCMethods() {
			if _, err := tr.Call(ctx, n2.RPCAddr(), m, []byte{0x80}); !errors.Is(err, transport.ErrUnreachable) {
				t.Errorf("forged %s: %v, want ErrUnreachable", m, err)
			}
		}
	}
	forgeRaft(t, n2.RPCAddr())
}

func attackerTransport(t *testing.T, auth *transport.PeerAuth) *transport.TCP {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.BindAddr, cfg.NodeID = "127.0.0.1:0", "s2" // claims to be a member
	cfg.PeerAuth = auth
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := transport.NewTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// forgeRaft sends Raft RPCs with hashicorp/raft's own transport, as an
// attacker who knows the protocol would, without the port's credentials:
// every one fails.
func forgeRaft(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(attackerStream{transport.NewRaftStreamLayer(ln, nil)}, 1, 2*time.Second, io.Discard)
	defer trans.Close()
	var vr raft.RequestVoteResponse
	err = trans.RequestVote("s1", raft.ServerAddress(addr), &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("evil"), Addr: []byte(ln.Addr().String())}, Term: 1 << 40}, &vr)
	if err == nil {
		t.Errorf("a forged RequestVote was answered: %+v", vr)
	}
	var ar raft.AppendEntriesResponse
	err = trans.AppendEntries("s1", raft.ServerAddress(addr), &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("evil")}, Term: 1 << 40}, &ar)
	if err == nil {
		t.Errorf("a forged AppendEntries was answered: %+v", ar)
	}
}

type attackerStream struct{ *transport.RaftStreamLayer }

func (s attackerStream) Dial(a raft.ServerAddress, d time.Duration) (net.Conn, error) {
	return s.DialAddr(string(a), d)
}

// TestNoSecretLeaks: with every secret set, none appears in the node's
// logs, INFO, CONFIG GET, CLIENT LIST or the admin API's /v1/cluster.
func TestNoSecretLeaks(t *testing.T) {
	var logs syncBuffer
	cfg := nodeConfig(t, "l1", t.TempDir(), nil)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	secrets := []string{"resp-password-123", "admin-token-456", clusterSecret, "MDEyMzQ1Njc4OWFiY2RlZg=="}
	cfg.RequirePass, cfg.AdminToken, cfg.ClusterSecret, cfg.GossipKey = secrets[0], secrets[1], secrets[2], secrets[3]
	n := startNode(t, cfg)
	defer n.Close()
	waitConverged(t, []*node.Node{n}, 1)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n.RESPAddr(), Password: secrets[0], MaxRetries: -1})
	defer c.Close()
	var out []string
	for _, args := range [][]any{{"INFO", "everything"}, {"CONFIG", "GET", "*"}, {"CLIENT", "LIST"}, {"AUTH", "wrong-guess"}} {
		v, err := c.Do(ctx, args...).Result()
		out = append(out, fmt.Sprint(v, err))
	}
	req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/v1/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+secrets[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/cluster: %s %s", resp.Status, body)
	}
	out = append(out, string(body))
	_ = n.Close()
	out = append(out, logs.String())
	for _, o := range out {
		for _, s := range secrets {
			if strings.Contains(o, s) {
				t.Errorf("secret %q shown in: %.300s", s, o)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
