package integration

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// TestRequirePassAndAdminToken: with RequirePass, a RESP client gets NOAUTH
// until it authenticates; then a key owned by the other node is forwarded
// as usual. With AdminToken, /v1/cluster needs the bearer token while
// /healthz stays open.
func TestRequirePassAndAdminToken(t *testing.T) {
	edit := func(c *node.Config) {
		c.RequirePass = "s3cret"
		c.AdminToken = "tok"
	}
	cfg1 := nodeConfig(t, "p1", t.TempDir(), nil)
	edit(&cfg1)
	n1 := startNode(t, cfg1)
	defer n1.Close()
	cfg2 := nodeConfig(t, "p2", t.TempDir(), []string{n1.GossipAddr()})
	edit(&cfg2)
	n2 := startNode(t, cfg2)
	defer n2.Close()
	waitConverged(t, []*node.Node{n1, n2}, 2)

	ctx := context.Background()
	anon := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n1.RESPAddr(), MaxRetries: -1})
	defer anon.Close()
	if err := anon.Set(ctx, "x", "y", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("SET without AUTH: %v, want NOAUTH", err)
	}
	if err := anon.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING without AUTH must work: %v", err)
	}
	authed := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n1.RESPAddr(), Password: "s3cret"})
	defer authed.Close()
	key := keyOwnedBy(t, n1.Table(), "p2", "pw")
	if err := authed.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatalf("SET of a key owned by p2 through p1 after AUTH: %v", err)
	}
	if v, err := authed.Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	wrong := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n1.RESPAddr(), Password: "nope", MaxRetries: -1})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v, want WRONGPASS", err)
	}

	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", "http://"+n1.HTTPAddr()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/v1/cluster", ""); c != http.StatusUnauthorized {
		t.Fatalf("/v1/cluster without token: %d, want 401", c)
	}
	if c := get("/v1/cluster", "tok"); c != http.StatusOK {
		t.Fatalf("/v1/cluster with token: %d", c)
	}
	if c := get("/healthz", ""); c != http.StatusOK {
		t.Fatalf("/healthz without token: %d, want 200", c)
	}
}
