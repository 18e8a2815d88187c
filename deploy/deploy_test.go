package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/node"
)

// exportedFamilies runs a 2-node cluster, drives what makes every family
// appear (writes through one node, some forwarded; a global snapshot) and
// returns the metric names /metrics exposes (with a histogram's _bucket,
// _sum and _count).
func exportedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var nodes []*node.Node
	for i := range 2 {
		cfg := node.DefaultConfig()
		cfg.ID, cfg.DataDir = fmt.Sprintf("n%d", i+1), t.TempDir()
		cfg.RESPAddr, cfg.RPCAddr, cfg.GossipAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.GossipProfile, cfg.Sync, cfg.JoinTimeout = "local", "always", 15*time.Second
		cfg.Engine.Shards, cfg.Engine.MemtableBytes, cfg.Engine.BlockCacheBytes = 2, 4<<20, 4<<20
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if i > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		n, err := node.Start(ctx, cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.ID, err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tab := nodes[1].Table(); tab != nil && len(tab.Nodes()) == 2 && nodes[0].Table().Epoch() == tab.Epoch() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 2-node placement did not converge in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := redis.NewClient(&redis.Options{Addr: nodes[0].RESPAddr(), MaxRetries: 5})
	defer c.Close()
	for i := range 50 {
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	leader := nodes[0]
	if !leader.Coordinator().IsLeader() {
		leader = nodes[1]
	}
	resp, err := http.Post("http://"+leader.HTTPAddr()+"/v1/snapshots", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot: HTTP %d", resp.StatusCode)
	}
	got := map[string]bool{}
	typeLine := regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`)
	for _, n := range nodes {
		resp, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range typeLine.FindAllStringSubmatch(string(b), -1) {
			got[m[1]] = true
			if m[2] == "histogram" || m[2] == "summary" {
				got[m[1]+"_bucket"], got[m[1]+"_sum"], got[m[1]+"_count"] = true, true, true
			}
		}
	}
	return got
}

// builtin are series Prometheus makes itself.
var builtin = map[string]bool{"up": true}

var (
	strLit     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers   = regexp.MustCompile(`\{[^}]*\}`)
	grouping   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ranges     = regexp.MustCompile(`\[[^\]]*\]`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	keywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true, "on": true, "ignoring": true, "inf": true, "nan": true}
)

// metricNames are the metrics a PromQL expression reads.
func metricNames(expr string) []string {
	e := strLit.ReplaceAllString(expr, `""`)
	e = matchers.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	e = ranges.ReplaceAllString(e, " ")
	var out []string
	for _, id := range identifier.FindAllString(e, -1) {
		if strings.HasSuffix(id, "(") || keywords[strings.ToLower(strings.TrimSpace(id))] {
			continue // a function or an operator
		}
		out = append(out, strings.TrimSpace(id))
	}
	return out
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (instance, le) (rate(dbx_a_bucket{job=~"x|y"}[5m]))) > 0.1 and on(instance) up{job="dbx"} == 0`)
	if want := []string{"dbx_a_bucket", "up"}; !slices.Equal(got, want) {
		t.Fatalf("metricNames = %q, want %q", got, want)
	}
}

// queries are every PromQL expression of the dashboard and the rules,
// with where each comes from.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile("grafana/dbx.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/dbx.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out[tg.Expr] = "dashboard panel " + p.Title
		}
	}
	rules, err := os.ReadFile("prometheus/dbx-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)\n\s*expr: (.+)$`).FindAllStringSubmatch(string(rules), -1)
	if n := strings.Count(string(rules), "- alert:"); n != len(alerts) || n == 0 {
		t.Fatalf("prometheus/dbx-alerts.yml: %d alerts, %d with a one-line expr right after: keep each expr on the line after its alert", n, len(alerts))
	}
	for _, a := range alerts {
		out[a[2]] = "alert " + a[1]
	}
	return out
}

// TestQueriesNameExportedMetrics fails when a dashboard panel or an alert
// rule reads a metric that dbx does not export (renamed or removed).
func TestQueriesNameExportedMetrics(t *testing.T) {
	qs := queries(t)
	have := exportedFamilies(t)
	for expr, where := range qs {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, m := range names {
			if !have[m] && !builtin[m] {
				t.Errorf("%s reads %s, which no dbx node exports (query %q)", where, m, expr)
			}
		}
	}
	for _, want := range []string{"DbxNodeDown", "DbxBucketsUnderReplicated", "DbxMigrationStalled", "DbxWALFsyncSlow", "DbxDiskAlmostFull", "DbxRaftNoLeader"} {
		found := false
		for _, where := range qs {
			found = found || where == "alert "+want
		}
		if !found {
			t.Errorf("alert %s is missing", want)
		}
	}
}
