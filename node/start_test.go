package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStackUnwindsInReverse(t *testing.T) {
	var s stack
	var order []string
	for _, name := range []string{"engine", "rpc", "gossip"} {
		s.push(name, func() error {
			order = append(order, name)
			if name == "rpc" {
				return errors.New("boom")
			}
			return nil
		})
	}
	err := s.unwind()
	if got := strings.Join(order, ","); got != "gossip,rpc,engine" {
		t.Fatalf("unwound %s, want gossip,rpc,engine", got)
	}
	if err == nil || err.Error() != "rpc: boom" {
		t.Fatalf("unwind error %v, want the one stop that failed, named", err)
	}
	if err := s.unwind(); err != nil || len(order) != 3 {
		t.Fatalf("a second unwind ran stops again: %v %v", order, err)
	}
}

// freeAddr returns a loopback address nothing listens on (a moment ago).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestStartFailureStopsWhatStarted: a start that fails at its last step
// (the join) stops every component it started, so a second start on the
// same data directory and ports succeeds: the engine's and Raft's locks
// and every listener were released.
func TestStartFailureStopsWhatStarted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.DataDir = "n1", t.TempDir()
	cfg.RESPAddr, cfg.RPCAddr, cfg.GossipAddr, cfg.HTTPAddr = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfg.ClusterRESPAddr = freeAddr(t)
	cfg.GossipProfile = "local"
	cfg.Sync = "none"
	cfg.Engine.Shards = 2
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	joining := cfg
	joining.Join, joining.JoinTimeout = []string{freeAddr(t)}, time.Second
	if n, err := Start(ctx, joining); err == nil {
		n.Close()
		t.Fatal("joined a cluster nobody runs")
	}
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}
