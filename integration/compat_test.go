package integration

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/node"
)

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian: apt-get install redis-tools)", name)
	}
	return p
}

// runTool runs name with args, bounded by d, and returns its stdout.
func runTool(t *testing.T, d time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// benchRate matches a line of redis-benchmark -q: "SET: 12345.68 requests
// per second, p50=0.303 msec".
var benchRate = regexp.MustCompile(`(?m)^\s*([A-Z]+): ([0-9.]+) requests per second`)

// TestRedisBenchmark runs the stock redis-benchmark against one node: it
// must finish SET and GET with non-zero throughput, and the node must still
// answer afterwards.
func TestRedisBenchmark(t *testing.T) {
	bench := lookTool(t, "redis-benchmark")
	c := startCluster(t, 1)
	n := c.nodes[0]
	host, port := splitHostPort(t, n.RESPAddr())
	out := runTool(t, 60*time.Second, bench, "-h", host, "-p", port, "-t", "set,get", "-n", "2000", "-c", "10", "-d", "100", "-q")
	// -q rewrites its progress line with \r; keep the final text.
	out = strings.ReplaceAll(out, "\r", "\n")
	rates := map[string]float64{}
	for _, m := range benchRate.FindAllStringSubmatch(out, -1) {
		r, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("rate %q: %v", m[2], err)
		}
		rates[m[1]] = r
	}
	for _, cmd := range []string{"SET", "GET"} {
		if rates[cmd] <= 0 {
			t.Errorf("%s: no throughput in redis-benchmark output:\n%s", cmd, out)
		}
	}
	t.Logf("redis-benchmark -t set,get -n 2000 -c 10 -d 100 (in-process node, test build): SET %.0f/s, GET %.0f/s", rates["SET"], rates["GET"])
	if err := client(t, n).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING after redis-benchmark: %v", err)
	}
	// redis-benchmark writes "key:__rand_int__" keys; one must be readable.
	if v, err := client(t, n).Get(context.Background(), "key:__rand_int__").Result(); err != nil || len(v) != 100 {
		t.Fatalf("GET key:__rand_int__ = %d bytes, %v; want the 100-byte value", len(v), err)
	}
}

// TestRedisCLICluster writes and reads keys with redis-cli -c (cluster
// mode: it follows CLUSTER SLOTS/MOVED) through every node of a 3-node
// cluster, and reads each back through another node.
func TestRedisCLICluster(t *testing.T) {
	cli := lookTool(t, "redis-cli")
	c := startCluster(t, 3)
	tab := c.nodes[0].Table()
	for i, from := range c.nodes {
		for _, owner := range c.nodes {
			key := keyOwnedBy(t, tab, owner.ID(), "cli-"+from.ID())
			val := fmt.Sprintf("via-%s-owner-%s", from.ID(), owner.ID())
			if got := cliDo(t, cli, from, "SET", key, val); got != "OK" {
				t.Fatalf("redis-cli -c on %s SET %s = %q", from.ID(), key, got)
			}
			reader := c.nodes[(i+1)%len(c.nodes)]
			if got := cliDo(t, cli, reader, "GET", key); got != val {
				t.Fatalf("redis-cli -c on %s GET %s = %q, want %q", reader.ID(), key, got, val)
			}
		}
	}
	if got := cliDo(t, cli, c.nodes[2], "CLUSTER", "KEYSLOT", "foo"); got != "12182" {
		t.Errorf("CLUSTER KEYSLOT foo = %q, want 12182", got)
	}
}

func cliDo(t *testing.T, cli string, n *node.Node, args ...string) string {
	t.Helper()
	host, port := splitHostPort(t, n.RESPAddr())
	return strings.TrimSpace(runTool(t, 10*time.Second, cli, append([]string{"-c", "-h", host, "-p", port}, args...)...))
}

func splitHostPort(t *testing.T, a string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		t.Fatalf("address %q without port", a)
	}
	return a[:i], a[i+1:]
}
