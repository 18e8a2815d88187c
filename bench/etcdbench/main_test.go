package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func runArgs(ctx context.Context, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startEtcd runs a one-member etcd from $PATH in a temporary directory
// until the test ends, or skips the test when etcd is not installed.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (Debian: apt-get install etcd-server)")
	}
	client, peer := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "--name", "t", "--data-dir", t.TempDir(),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "t=http://"+peer, "--logger", "zap", "--log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := c.Status(ctx, client)
		cancel()
		if err == nil {
			return client
		}
		if i == 40 {
			t.Fatalf("etcd on %s not ready in 20 s: %v", client, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestBadFlags(t *testing.T) {
	code, _, stderr := runArgs(context.Background(), "--workload", "nope", "--clients", "0", "--conns", "-1")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"at least one address", `workload "nope"`, "clients (0)", "conns (-1)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	code, _, stderr = runArgs(context.Background(), "--endpoints", "127.0.0.1:2379", "--workload", "txn", "--cross-node")
	if code != 1 || !strings.Contains(stderr, "flag provided but not defined: -cross-node") {
		t.Errorf("--cross-node: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestUnreachable(t *testing.T) {
	dead := freeAddr(t)
	code, out, stderr := runArgs(context.Background(), "--endpoints", dead)
	if code != 1 || out != "" || !strings.Contains(stderr, "unreachable: "+dead) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestAgainstEtcd(t *testing.T) {
	ep := startEtcd(t)
	for _, tc := range []struct {
		args   []string
		wantWl string
	}{
		{[]string{"--workload", "set", "--load", "--keys", "200"}, "set"},
		{[]string{"--workload", "get", "--serializable"}, "get"},
		{[]string{"--workload", "mixed", "--mix", "F"}, "mixed"},
		{[]string{"--workload", "txn", "--txn-keys", "4"}, "txn"},
	} {
		args := append([]string{"--endpoints", ep, "--requests", "300", "--clients", "4", "--conns", "2",
			"--value-bytes", "100", "--json", "--label", "etcd " + tc.wantWl}, tc.args...)
		code, out, stderr := runArgs(context.Background(), args...)
		var res struct {
			Label  string
			Ops    int64
			Errors int64
			Config struct{ Target, Workload string }
		}
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", tc.args, code, out, stderr)
		}
		if res.Ops != 300 || res.Errors != 0 || res.Config.Target != "etcd" || res.Config.Workload != tc.wantWl || res.Label != "etcd "+tc.wantWl {
			t.Errorf("%v: %+v", tc.args, res)
		}
	}

	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(context.Background(), "key:", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count < 200 {
		t.Errorf("etcd holds %v keys (%v), want at least the 200 loaded", resp, err)
	}

	// Ctrl-C: partial results and exit 130.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	code, out, stderr := runArgs(ctx, "--endpoints", ep, "--duration", "1m", "--clients", "2")
	if code != exitInterrupted || !strings.Contains(out, "INTERRUPTED") || !strings.Contains(stderr, "results are partial") {
		t.Errorf("interrupted: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
}
