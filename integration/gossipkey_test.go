package integration

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/node"
)

// TestGossipKey: nodes sharing --gossip-key form a cluster; a node with
// another key cannot join it (its encrypted gossip is refused), and the
// cluster's membership stays as it was.
func TestGossipKey(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	other := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))

	cfg1 := nodeConfig(t, "k1", t.TempDir(), nil)
	cfg1.GossipKey = key
	n1 := startNode(t, cfg1)
	defer n1.Close()
	cfg2 := nodeConfig(t, "k2", t.TempDir(), []string{n1.GossipAddr()})
	cfg2.GossipKey = key
	n2 := startNode(t, cfg2)
	defer n2.Close()
	waitConverged(t, []*node.Node{n1, n2}, 2)

	cfg3 := nodeConfig(t, "k3", t.TempDir(), []string{n1.GossipAddr()})
	cfg3.GossipKey = other
	cfg3.JoinTimeout = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n3, err := node.Start(ctx, cfg3)
	if err == nil {
		n3.Close()
		t.Fatal("a node with a different gossip key joined the cluster")
	}
	t.Logf("join with the wrong key refused: %v", err)
	info := n1.ClusterInfo()
	if len(info.Nodes) != 2 {
		t.Fatalf("membership changed after a refused join: %d nodes: %+v", len(info.Nodes), info.Nodes)
	}
	for _, m := range info.Nodes {
		if m.ID == "k3" {
			t.Fatalf("k3 appears in the cluster: %+v", m)
		}
	}
}
