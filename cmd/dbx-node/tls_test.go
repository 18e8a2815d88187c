package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/internal/tlsreload/certtest"
)

// TestServeTLSFlagsValidated: the TLS and secret flags are checked with
// the others, every problem at once.
func TestServeTLSFlagsValidated(t *testing.T) {
	short := writeFile(t, "too-short\n", 0o600)
	_, err := run("serve", "--id", "v1", "--data-dir", t.TempDir(), "--tls-cert", "c.pem",
		"--peer-cert", "p.pem", "--cluster-secret-file", short, "--tls-resp-addr", "127.0.0.1:0")
	if err == nil {
		t.Fatal("serve with half the TLS flags succeeded")
	}
	for _, want := range []string{"tls-cert and tls-key go together", "peer-cert, peer-key and peer-ca go together", "cluster-secret has 9 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "too-short") {
		t.Errorf("the error shows the secret: %v", err)
	}
}

// TestServeTLSReloadOnSIGHUP runs dbx-node serve with TLS on its client
// ports and the cluster secret from a file: RESP speaks TLS, `dbx-node
// status --cacert` reads the HTTPS admin port, and after the certificate
// files are replaced SIGHUP makes new connections see the new
// certificate, without a restart.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "cli CA")
	f := ca.Write(t, dir, "node", ca.Issue(t, "gen-0"))
	secret := writeFile(t, "a-cluster-secret-of-32-bytes-xyz\n", 0o600)
	cmd := exec.Command(os.Args[0], "serve", "--id", "h1", "--data-dir", t.TempDir(),
		"--resp-addr", "127.0.0.1:0", "--rpc-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--sync", "none", "--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-reload-interval", "1h",
		"--cluster-secret-file", secret, "--log-format", "json")
	cmd.Env = append(os.Environ(), "DBX_NODE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type rec struct {
		Msg  string `json:"msg"`
		HTTP string `json:"http"`
		RESP string `json:"resp"`
	}
	recs := make(chan rec, 256)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var r rec
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				select {
				case recs <- r:
				default:
				}
			}
			if strings.Contains(sc.Text(), "a-cluster-secret") {
				recs <- rec{Msg: "SECRET LEAKED: " + sc.Text()}
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	await := func(msg string) rec {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case r := <-recs:
				if strings.HasPrefix(r.Msg, "SECRET LEAKED") {
					t.Fatal(r.Msg)
				}
				if r.Msg == msg {
					return r
				}
			case err := <-exited:
				t.Fatalf("serve exited while waiting for %q: %v", msg, err)
			case <-timeout:
				t.Fatalf("no %q log within 30 s", msg)
			}
		}
	}
	serving := await("node serving")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", serving.RESP, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("TLS dial of the RESP port: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "gen-0" {
		t.Fatalf("serves %q, want gen-0", got)
	}
	out, err := run("status", "--http", serving.HTTP, "--cacert", f.CA)
	if err != nil || !strings.Contains(out, "h1") {
		t.Errorf("status --cacert over https: %q, %v", out, err)
	}
	if _, err := run("status", "--http", serving.HTTP); err == nil {
		t.Error("plain-http status against the TLS admin port succeeded")
	}
	ca.Write(t, dir, "node", ca.Issue(t, "gen-1"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	await("SIGHUP: tls files reloaded")
	if got := served(); got != "gen-1" {
		t.Fatalf("after SIGHUP serves %q, want gen-1", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await("shut down")
}
