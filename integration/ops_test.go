package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/node"
)

// opsData writes what the tools are checked against: 30 keys k1..k30 with
// values of 1..30 bytes, and 10 keys e1..e10 of 1 byte with an expiry.
// It returns the value bytes, the MEMORY USAGE total and the key count.
func opsData(t *testing.T, n *node.Node) (valueBytes, memBytes, keys int) {
	t.Helper()
	ctx := context.Background()
	c := client(t, n)
	for i := 1; i <= 30; i++ {
		k := "k" + strconv.Itoa(i)
		if err := c.Set(ctx, k, strings.Repeat("v", i), 0).Err(); err != nil {
			t.Fatal(err)
		}
		valueBytes += i
		memBytes += len(k) + i + 48
	}
	for i := 1; i <= 10; i++ {
		k := "e" + strconv.Itoa(i)
		if err := c.Set(ctx, k, "x", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		valueBytes++
		memBytes += len(k) + 1 + 48
	}
	return valueBytes, memBytes, 40
}

// TestOpsToolsReadINFO runs what operators point at a Redis against one
// node and checks their figures: go-redis's InfoMap, redis-cli --stat,
// --bigkeys, --memkeys, --latency, and prometheus-redis-exporter when
// installed.
func TestOpsToolsReadINFO(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	valueBytes, memBytes, keys := opsData(t, n)
	ctx := context.Background()

	t.Run("go-redis InfoMap", func(t *testing.T) {
		info, err := client(t, n).InfoMap(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if used, _ := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64); used <= 0 {
			t.Errorf("used_memory = %q, want > 0", info["Memory"]["used_memory"])
		}
		if got, want := info["Keyspace"]["db0"], fmt.Sprintf("keys=%d,expires=10,avg_ttl=", keys); !strings.HasPrefix(got, want) {
			t.Errorf("db0 = %q, want %s...", got, want)
		}
		if ttl, _ := strconv.ParseInt(strings.SplitN(info["Keyspace"]["db0"], "avg_ttl=", 2)[1], 10, 64); ttl <= 3500_000 || ttl > 3600_000 {
			t.Errorf("avg_ttl = %d ms, want just under an hour", ttl)
		}
		if got := info["Replication"]["role"]; got != "master" {
			t.Errorf("role = %q, want master", got)
		}
		if got := info["Server"]["dbx_version"]; got == "" {
			t.Errorf("INFO server lacks dbx_version")
		}
		for _, sec := range []string{"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Cluster", "Keyspace", "Dbx"} {
			if len(info[sec]) == 0 {
				t.Errorf("InfoMap lacks section %s", sec)
			}
		}
		if got := info["Dbx"]["dbx_buckets_owned"]; got != "16384" {
			t.Errorf("dbx_buckets_owned = %q, want 16384", got)
		}
	})

	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed (Debian: apt-get install redis-tools)")
	}
	host, port := splitHostPort(t, n.RESPAddr())
	t.Run("redis-cli --bigkeys", func(t *testing.T) {
		out := runTool(t, 30*time.Second, cli, "-h", host, "-p", port, "--bigkeys")
		if want := fmt.Sprintf("%d strings with %d bytes", keys, valueBytes); !strings.Contains(out, want) {
			t.Errorf("--bigkeys lacks %q:\n%s", want, out)
		}
		if !strings.Contains(out, `Biggest string found '"k30"' has 30 bytes`) && !strings.Contains(out, `Biggest string found 'k30' has 30 bytes`) {
			t.Errorf("--bigkeys: biggest should be k30 (30 bytes):\n%s", out)
		}
	})
	t.Run("redis-cli --memkeys", func(t *testing.T) {
		out := runTool(t, 30*time.Second, cli, "-h", host, "-p", port, "--memkeys")
		if want := fmt.Sprintf("%d strings with %d bytes", keys, memBytes); !strings.Contains(out, want) {
			t.Errorf("--memkeys lacks %q:\n%s", want, out)
		}
	})
	t.Run("redis-cli --latency", func(t *testing.T) {
		// Not on a terminal, --latency samples for a second and prints
		// "min max avg samples" once.
		out := strings.TrimSpace(runTool(t, 30*time.Second, cli, "-h", host, "-p", port, "--latency"))
		f := strings.Fields(out)
		if len(f) != 4 {
			t.Fatalf("--latency output %q: want min max avg samples", out)
		}
		if samples, _ := strconv.Atoi(f[3]); samples < 1 {
			t.Errorf("--latency: %q samples", f[3])
		}
	})
	t.Run("redis-cli --stat", func(t *testing.T) {
		// --stat runs until stopped: read its first data line through a
		// line-buffered pipe (stdbuf), then kill it.
		args := []string{"-h", host, "-p", port, "--stat", "-i", "0.2"}
		name := cli
		if sb, err := exec.LookPath("stdbuf"); err == nil {
			name, args = sb, append([]string{"-oL", cli}, args...)
		}
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		sc := bufio.NewScanner(stdout)
		data := regexp.MustCompile(`^(\d+)\s+([0-9.]+[BKMGT])\s+(\d+)\s+`)
		var lines []string
		for i := 0; i < 10 && sc.Scan(); i++ {
			lines = append(lines, sc.Text())
			m := data.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			if m[1] != strconv.Itoa(keys) {
				t.Errorf("--stat keys = %s, want %d (%q)", m[1], keys, sc.Text())
			}
			if m[3] == "0" {
				t.Errorf("--stat clients = 0 (%q)", sc.Text())
			}
			return
		}
		t.Fatalf("--stat printed no data line with keys and memory:\n%s", strings.Join(lines, "\n"))
	})
	t.Run("prometheus-redis-exporter", func(t *testing.T) {
		exporter, err := exec.LookPath("prometheus-redis-exporter")
		if err != nil {
			t.Skip("prometheus-redis-exporter not installed (Debian: apt-get install prometheus-redis-exporter)")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listen := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, exporter, "--redis.addr", "redis://"+n.RESPAddr(), "--web.listen-address", listen)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		var body string
		waitFor(t, 20*time.Second, "exporter metrics", func() error {
			resp, err := http.Get("http://" + listen + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			body = string(b)
			if !strings.Contains(body, "\nredis_up 1\n") {
				return fmt.Errorf("redis_up is not 1")
			}
			return nil
		})
		value := func(series string) (float64, bool) {
			for _, line := range strings.Split(body, "\n") {
				if rest, ok := strings.CutPrefix(line, series+" "); ok {
					v, err := strconv.ParseFloat(rest, 64)
					return v, err == nil
				}
			}
			return 0, false
		}
		if v, ok := value("redis_memory_used_bytes"); !ok || v <= 0 {
			t.Errorf("redis_memory_used_bytes = %v (found %v), want > 0", v, ok)
		}
		if v, _ := value(`redis_db_keys{db="db0"}`); v != float64(keys) {
			t.Errorf(`redis_db_keys{db="db0"} = %v, want %d`, v, keys)
		}
		if v, _ := value(`redis_db_keys_expiring{db="db0"}`); v != 10 {
			t.Errorf(`redis_db_keys_expiring{db="db0"} = %v, want 10`, v)
		}
		if !regexp.MustCompile(`(?m)^redis_instance_info\{.*role="master".*\} 1$`).MatchString(body) {
			t.Errorf("redis_instance_info lacks role=\"master\"")
		}
		series := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "redis_") {
				series++
			}
		}
		t.Logf("prometheus-redis-exporter: %d redis_* series", series)
		if series < 100 {
			t.Errorf("only %d redis_* series from the exporter", series)
		}
	})
}
