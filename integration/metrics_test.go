package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/node"
)

// scrape is one /metrics page: every series' value by its full name with
// labels as printed, and the sum over label sets by family name.
type scrape struct {
	series map[string]float64
	family map[string]float64
}

func scrapeMetrics(t *testing.T, n *node.Node) scrape {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	s := scrape{series: map[string]float64{}, family: map[string]float64{}}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		name := line[:i]
		s.series[name] = v
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		s.family[name] += v
	}
	return s
}

// TestMetricsFamiliesMove drives writes (some forwarded), a reweight that
// moves buckets, a global snapshot and a Raft leader change through a
// 3-node cluster, and checks that every subsystem's families moved.
func TestMetricsFamiliesMove(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *node.Config) { cfg.Sync = "always" })
	ctx := context.Background()
	leader := func(nodes []*node.Node) *node.Node {
		for _, n := range nodes {
			if n.Coordinator().IsLeader() {
				return n
			}
		}
		return nil
	}
	var lead *node.Node
	waitFor(t, 10*time.Second, "a leader", func() error {
		if lead = leader(c.nodes); lead == nil {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	entry := c.nodes[0]
	before := scrapeMetrics(t, entry)
	beforeLead := scrapeMetrics(t, lead)

	cl := client(t, entry)
	for i := range 300 {
		if err := cl.Set(ctx, fmt.Sprintf("m-%d", i), strings.Repeat("x", 100), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	epoch := entry.Table().Epoch()
	if code, body, err := post(lead.HTTPAddr(), "/v1/nodes/n2/weight", `{"weight": 2}`); err != nil || code != 200 {
		t.Fatalf("reweight: %d %s %v", code, body, err)
	}
	waitFor(t, 60*time.Second, "the reweight's moves", func() error {
		info := lead.ClusterInfo()
		if info.Epoch <= epoch || info.Migration.Active || info.Migration.Done == 0 {
			return fmt.Errorf("epoch %d, migration %+v", info.Epoch, info.Migration)
		}
		return nil
	})
	waitConverged(t, c.nodes, 3)
	waitFor(t, 10*time.Second, "every node routing with the new table", func() error {
		for _, n := range c.nodes {
			if n.Table().Epoch() != lead.Table().Epoch() {
				return fmt.Errorf("%s at epoch %d", n.ID(), n.Table().Epoch())
			}
		}
		return nil
	})
	if id, code, msg := takeSnapshot(lead.HTTPAddr()); id == "" {
		t.Fatalf("snapshot: %d %s", code, msg)
	}

	after := scrapeMetrics(t, entry)
	afterLead := scrapeMetrics(t, lead)
	grew := func(who string, b, a scrape, name string, labelled bool) {
		t.Helper()
		get := func(s scrape) float64 {
			if labelled {
				return s.series[name]
			}
			return s.family[name]
		}
		if _, ok := a.series[name]; !ok && labelled {
			t.Errorf("%s: no series %s", who, name)
			return
		}
		if get(a) <= get(b) {
			t.Errorf("%s: %s did not grow: %v → %v", who, name, get(b), get(a))
		}
	}
	for _, f := range []string{
		"dbx_engine_wal_bytes_total", "dbx_engine_wal_fsyncs_total", "dbx_engine_wal_fsync_duration_seconds_count",
		"dbx_engine_commit_groups_total", "dbx_engine_commit_group_writes_total",
		"dbx_forward_calls_total", "dbx_forward_duration_seconds_count",
		"dbx_resp_input_bytes_total", "dbx_resp_output_bytes_total", "dbx_resp_commands_total",
		"dbx_placement_epoch",
	} {
		grew(entry.ID(), before, after, f, false)
	}
	grew(entry.ID(), before, after, `dbx_forward_calls_total{method="kv.set",result="ok"}`, true)
	grew(lead.ID(), beforeLead, afterLead, `dbx_snapshot_takes_total{result="ok"}`, true)
	grew(lead.ID(), beforeLead, afterLead, "dbx_snapshot_take_duration_seconds_count", false)
	grew(lead.ID(), beforeLead, afterLead, "dbx_raft_commit_index", false)
	grew(lead.ID(), beforeLead, afterLead, `dbx_placement_moves{state="done"}`, true)
	grew(lead.ID(), beforeLead, afterLead, "dbx_placement_move_bytes", false)
	for name, want := range map[string]float64{
		"dbx_placement_buckets":                 16384,
		`dbx_gossip_members{state="alive"}`:     3,
		`dbx_placement_members{state="active"}`: 3,
		"dbx_raft_has_leader":                   1,
		"dbx_raft_voters":                       3,
		`dbx_placement_moves{state="pending"}`:  0,
		"dbx_engine_read_only_shards":           0,
	} {
		got, ok := after.series[name]
		if !strings.Contains(name, "{") {
			got, ok = after.family[name], true
		}
		if !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"dbx_engine_disk_free_bytes", "dbx_engine_disk_total_bytes", "dbx_raft_term", `dbx_engine_level_files{level="0"}`} {
		if _, ok := after.series[name]; !ok {
			t.Errorf("no series %s", name)
		}
	}

	// A leader change: close the leader; a survivor sees a new one.
	var survivors []*node.Node
	for _, n := range c.nodes {
		if n != lead {
			survivors = append(survivors, n)
		}
	}
	s0 := survivors[0]
	changes := scrapeMetrics(t, s0).family["dbx_raft_leader_changes_total"]
	for i, n := range c.nodes {
		if n == lead {
			n.Close()
			c.nodes[i] = nil
		}
	}
	waitFor(t, 30*time.Second, "a new leader seen in the metrics", func() error {
		m := scrapeMetrics(t, s0)
		if got := m.family["dbx_raft_leader_changes_total"]; got <= changes || m.family["dbx_raft_has_leader"] != 1 {
			return fmt.Errorf("leader changes %v (before %v), has_leader %v", got, changes, m.family["dbx_raft_has_leader"])
		}
		return nil
	})
}
