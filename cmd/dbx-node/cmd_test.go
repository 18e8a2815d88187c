package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/node"
)

func TestServeFlagsFromEnvAndValidation(t *testing.T) {
	t.Setenv("DBX_WEIGHT", "0")
	t.Setenv("DBX_SYNC", "sometimes")
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"serve", "--data-dir", t.TempDir()})
	err := root.Execute()
	if err == nil {
		t.Fatal("serve with bad flags succeeded")
	}
	for _, want := range []string{"id is required", "weight 0", `sync: unknown sync mode "sometimes"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "data-dir is required") {
		t.Errorf("--data-dir on the command line was ignored: %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{"id": "DBX_ID", "data-dir": "DBX_DATA_DIR", "gossip-key": "DBX_GOSSIP_KEY"} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestStatusReweightDrain(t *testing.T) {
	n, _ := startAdminNode(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := run("status", "--http", n.HTTPAddr(), "--token", "secret")
		if err == nil && strings.Contains(out, "16384 buckets placed") && strings.Contains(out, "s1 *") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: %q, %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := run("status", "--http", n.HTTPAddr()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("status without token: %v, want 401", err)
	}
	if out, err := run("reweight", "s1", "3", "--http", n.HTTPAddr(), "--token", "secret"); err != nil || !strings.Contains(out, "weight 3") {
		t.Fatalf("reweight: %q, %v", out, err)
	}
	if _, err := run("drain", "nobody", "--http", n.HTTPAddr(), "--token", "secret"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("drain of unknown node: %v, want 404", err)
	}
}

// startAdminNode starts a one-node cluster "s1" with admin token "secret"
// on loopback ports until the test ends; it returns the node and its data
// dir.
func startAdminNode(t *testing.T) (*node.Node, string) {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir = "s1", t.TempDir()
	cfg.RESPAddr, cfg.RPCAddr, cfg.GossipAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminToken, cfg.Sync, cfg.GossipProfile = "secret", "none", "local"
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, cfg.DataDir
}

// run executes the CLI with args and returns its standard output.
func run(args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}
