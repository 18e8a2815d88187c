package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/dbx-kv/dbx/kv/kvtest"
	"github.com/dbx-kv/dbx/server"
)

// run executes dbx-bench with args and returns stdout, stderr and the
// error Execute returned.
func run(ctx context.Context, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// memBackend is the keyspace's in-memory twin as a one-node server.Backend.
type memBackend struct{ *kvtest.Mem }

func (memBackend) ClusterView() server.ClusterView {
	return server.SingleNodeView("mem", "127.0.0.1:6379")
}

// startMem serves an in-memory backend with password pass until the test
// ends.
func startMem(t *testing.T, pass string) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.RequirePass = pass
	s, err := server.New(cfg, memBackend{kvtest.NewMem(time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln.Addr().String()
}

func exitCode(err error) int {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestFlagsValidatedTogether(t *testing.T) {
	_, _, err := run(context.Background(), "--workload", "nope", "--clients", "0", "--pipeline", "0",
		"--distribution", "normal", "--mix", "Z", "--txn-keys", "0", "--cross-node", "--same-node")
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, want := range []string{"at least one address", `workload "nope"`, "clients (0)", "pipeline (0)",
		`distribution "normal"`, `mix "Z"`, "txn keys (0)", "exclude each other"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestTxnNeedsMulti(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := redcon.NewServer(ln.Addr().String(), func(c redcon.Conn, cmd redcon.Command) {
		c.WriteError("ERR unknown command '" + string(cmd.Args[0]) + "', with args beginning with: ")
	}, nil, nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	_, _, err = run(context.Background(), "--addrs", ln.Addr().String(), "--workload", "txn")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "does not serve MULTI/EXEC") {
		t.Fatalf("txn against a server without MULTI: exit %d, %v", exitCode(err), err)
	}
}

func TestExitStatuses(t *testing.T) {
	addr := startMem(t, "secret")

	out, _, err := run(context.Background(), "--addrs", addr, "--password", "wrong", "--requests", "50", "--clients", "2")
	if exitCode(err) != exitOpErrors || !strings.Contains(out, "WRONGPASS") || !strings.Contains(out, "errors 50") {
		t.Errorf("failing operations: exit %d (%v), output:\n%s", exitCode(err), err, out)
	}

	out, _, err = run(context.Background(), "--addrs", addr, "--password", "secret", "--requests", "50",
		"--clients", "2", "--json", "--label", "mem", "--workload", "mixed", "--mix", "B")
	var res struct {
		Label  string
		Ops    int64
		Config struct{ Workload, Mix string }
	}
	if exitCode(err) != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Label != "mem" || res.Ops != 50 ||
		res.Config.Workload != "mixed" || res.Config.Mix != "B" {
		t.Errorf("successful run: exit %d (%v), %+v from:\n%s", exitCode(err), err, res, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out, stderr, err := run(ctx, "--addrs", addr, "--password", "secret", "--duration", "1m", "--clients", "2")
	if exitCode(err) != exitInterrupted || !strings.Contains(out, "INTERRUPTED: partial results") ||
		!strings.Contains(stderr, "interrupted, results are partial") {
		t.Errorf("interrupted: exit %d (%v), stdout:\n%s\nstderr:\n%s", exitCode(err), err, out, stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	out, _, err = run(context.Background(), "--addrs", addr+","+dead)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "unreachable: "+dead) || out != "" {
		t.Errorf("unreachable: exit %d (%v), output %q", exitCode(err), err, out)
	}
}

func TestCompare(t *testing.T) {
	addr := startMem(t, "")
	dir := t.TempDir()
	var files []string
	for _, a := range []struct{ name, label, pipeline string }{{"one.json", "", "1"}, {"two.json", "deep", "8"}} {
		out, _, err := run(context.Background(), "--addrs", addr, "--workload", "get", "--requests", "400",
			"--clients", "4", "--pipeline", a.pipeline, "--label", a.label, "--json")
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, a.name)
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, _, err := run(context.Background(), append([]string{"--compare"}, files...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[1], "one ") || !strings.Contains(lines[1], "1.00x") ||
		!strings.HasPrefix(lines[2], "deep ") || !strings.Contains(lines[2], "differs from first: pipeline") {
		t.Errorf("comparison:\n%s", out)
	}

	garbage := filepath.Join(dir, "garbage.json")
	os.WriteFile(garbage, []byte("{}"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--compare"}, "needs at least one result file"},
		{[]string{files[0]}, "result files go with --compare"},
		{[]string{"--compare", files[0], filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"--compare", garbage}, "garbage.json: not a dbx-bench --json result"},
	} {
		if _, _, err := run(context.Background(), tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
