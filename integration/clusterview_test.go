package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/router"
)

// scanAll runs SCAN to the end on rc and counts how often each key came.
func scanAll(ctx context.Context, t *testing.T, rc redis.Cmdable, match string, count int64, seen map[string]int) {
	t.Helper()
	var cursor uint64
	for i := 0; i < 100000; i++ {
		keys, next, err := rc.Scan(ctx, cursor, match, count).Result()
		if err != nil {
			t.Fatalf("SCAN %d: %v", cursor, err)
		}
		for _, k := range keys {
			seen[k]++
		}
		if next == 0 {
			return
		}
		if next <= cursor {
			t.Fatalf("SCAN cursor went from %d to %d", cursor, next)
		}
		cursor = next
	}
	t.Fatal("SCAN did not finish")
}

func checkOnce(t *testing.T, what string, seen map[string]int, want map[string]bool) {
	t.Helper()
	var missing, dup, extra []string
	for k := range want {
		switch seen[k] {
		case 0:
			missing = append(missing, k)
		case 1:
		default:
			dup = append(dup, k)
		}
	}
	for k := range seen {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(dup)+len(extra) > 0 {
		t.Errorf("%s: %d keys missing (e.g. %.3q), %d more than once (%.3q), %d unexpected (%.3q)",
			what, len(missing), missing, len(dup), dup, len(extra), extra)
	}
}

// TestScanCoversTheCluster: a plain client's SCAN and DBSIZE through any
// one node cover every node's keys, each once (the old code covered only
// the connected node: redis-py's scan_iter saw 2 of 3 keys, go-redis's
// SCAN 2 of 5); a cluster client scanning every primary on the advertised
// ports (ForEachMaster) also sees each key once, and their DBSIZEs add up.
func TestScanCoversTheCluster(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	want := map[string]bool{}
	w := client(t, c.nodes[0])
	for i := range 600 {
		k := fmt.Sprintf("scan-%d", i)
		if i%5 == 0 {
			k = fmt.Sprintf("{tag}scan-%d", i) // many keys in one bucket
		}
		if err := w.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		want[k] = true
	}
	for _, n := range c.nodes {
		rc := client(t, n)
		for _, count := range []int64{1, 10, 1000} {
			seen := map[string]int{}
			scanAll(ctx, t, rc, "", count, seen)
			checkOnce(t, fmt.Sprintf("plain SCAN on %s COUNT %d", n.ID(), count), seen, want)
		}
		seen := map[string]int{}
		scanAll(ctx, t, rc, "{tag}*", 50, seen)
		wantTag := map[string]bool{}
		for k := range want {
			if strings.HasPrefix(k, "{tag}") {
				wantTag[k] = true
			}
		}
		checkOnce(t, "plain SCAN MATCH {tag}* on "+n.ID(), seen, wantTag)
		if got, err := rc.DBSize(ctx).Result(); err != nil || got != int64(len(want)) {
			t.Errorf("DBSIZE on %s: %d, %v; want %d", n.ID(), got, err, len(want))
		}
		// SCAN TYPE: every key is a string.
		if keys, _, err := rc.ScanType(ctx, 0, "", 100000, "string").Result(); err != nil || len(keys) != len(want) {
			t.Errorf("SCAN TYPE string on %s: %d keys, %v", n.ID(), len(keys), err)
		}
		if keys, _, err := rc.ScanType(ctx, 0, "", 100000, "hash").Result(); err != nil || len(keys) != 0 {
			t.Errorf("SCAN TYPE hash on %s: %d keys, %v", n.ID(), len(keys), err)
		}
	}
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.RESPAddr())
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaintNotificationsConfig: noMaint()})
	defer cc.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	var sizes int64
	var masters []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		part := map[string]int{}
		scanAll(ctx, t, m, "", 20, part)
		n, err := m.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, m.Options().Addr)
		for k, v := range part {
			seen[k] += v
		}
		sizes += n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) != 3 {
		t.Fatalf("ForEachMaster visited %v", masters)
	}
	for _, a := range masters {
		for _, n := range c.nodes {
			if a == n.RESPAddr() {
				t.Errorf("CLUSTER SLOTS advertises the plain RESP port %s, want the cluster port", a)
			}
		}
	}
	checkOnce(t, "ForEachMaster SCAN", seen, want)
	if sizes != int64(len(want)) {
		t.Errorf("per-master DBSIZEs add up to %d, want %d", sizes, len(want))
	}
}

// TestDrainedNodeSaysItLeft: a node drained out of the cluster no longer
// answers data commands as if it were a member (the old code acknowledged
// SET on it); it names the members to use, and /healthz says it left.
func TestDrainedNodeSaysItLeft(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	if err := client(t, c.nodes[0]).Set(ctx, "before-drain", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	victim := c.nodes[2]
	code, body, err := post(c.nodes[0].HTTPAddr(), "/v1/nodes/"+victim.ID()+"/drain", ``)
	if err != nil || code != http.StatusOK {
		t.Fatalf("drain: %d %s %v", code, body, err)
	}
	vc := client(t, victim)
	waitFor(t, 60*time.Second, "the drained node refuses commands", func() error {
		err := vc.Set(ctx, "zz", "1", 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN This node (n3) was drained and has left the cluster; use ") {
			return fmt.Errorf("SET on the drained node: %v", err)
		}
		return nil
	})
	err = vc.Get(ctx, "before-drain").Err()
	for _, n := range c.nodes[:2] {
		if !strings.Contains(err.Error(), n.RESPAddr()) {
			t.Errorf("%q does not name %s", err, n.RESPAddr())
		}
	}
	resp, err := http.Get("http://" + victim.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(string(b), "left: ") {
		t.Errorf("/healthz of the drained node: %d %q", resp.StatusCode, b)
	}
	if v, err := client(t, c.nodes[1]).Get(ctx, "before-drain").Result(); err != nil || v != "v" {
		t.Errorf("GET on a member after the drain: %q %v", v, err)
	}
}

// TestClusterViewAfterSIGKILL: with a node killed, CLUSTER INFO says
// cluster_state:fail, CLUSTER NODES flags it fail, CLUSTER SHARDS says
// health failed, and /v1/cluster says so too, within the gossip suspicion
// time (the old code kept answering ok/online/connected).
func TestClusterViewAfterSIGKILL(t *testing.T) {
	c := startProcCluster(t, 3)
	ctx := context.Background()
	n1 := redis.NewClient(&redis.Options{Addr: c.procs[0].resp, MaintNotificationsConfig: noMaint()})
	defer n1.Close()
	if info, err := n1.ClusterInfo(ctx).Result(); err != nil || !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("before: %q %v", info, err)
	}
	victim := c.procs[2]
	// A key of the victim's, written through n1 (which forwards it).
	own := owners(ctx, t, n1)
	key := ""
	for i := 0; key == "" && i < 100000; i++ {
		if k := fmt.Sprintf("vk-%d", i); own[router.BucketString(k)] == victim.id {
			key = k
		}
	}
	if err := n1.Set(ctx, key, "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Paused, the owner gets the forwarded write and never answers: the
	// reply says the outcome is unknown (the old code: "owner unreachable",
	// the same as for a request never sent).
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	err := n1.Set(ctx, key, "2", 0).Err()
	victim.cmd.Process.Signal(syscall.SIGCONT)
	if err == nil || !strings.HasPrefix(err.Error(), "ERR outcome unknown: node "+victim.id) {
		t.Errorf("SET forwarded to a paused owner: %v, want ERR outcome unknown: node %s ...", err, victim.id)
	}
	waitFor(t, 30*time.Second, "the owner serves again", func() error { return n1.Set(ctx, key, "3", 0).Err() })
	victim.kill(t)
	killed := time.Now()
	// Killed, the owner refuses connections: the write is certainly not
	// applied (a request already on the dying connection may still be
	// unknown, hence the retries).
	waitFor(t, 10*time.Second, "CLUSTERDOWN for the dead owner's key", func() error {
		err := n1.Set(ctx, key, "4", 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN Hash slot not served: owner "+victim.id) || !strings.HasSuffix(err.Error(), "(not applied)") {
			return fmt.Errorf("SET: %v", err)
		}
		return nil
	})
	var pfailAt, failAt time.Duration
	waitFor(t, 30*time.Second, "the failure in CLUSTER INFO/NODES/SHARDS", func() error {
		nodes, err := n1.ClusterNodes(ctx).Result()
		if err != nil {
			return err
		}
		line := ""
		for _, l := range strings.Split(nodes, "\n") {
			if strings.HasPrefix(l, victim.id+" ") {
				line = l
			}
		}
		if pfailAt == 0 && (strings.Contains(line, ",fail?") || strings.Contains(line, ",fail ")) {
			pfailAt = time.Since(killed)
		}
		if !strings.Contains(line, "master,fail ") || !strings.HasSuffix(strings.Fields(line)[7], "disconnected") {
			return fmt.Errorf("CLUSTER NODES line: %q", line)
		}
		info, err := n1.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:fail") || strings.Contains(info, "cluster_slots_fail:0\r") {
			return fmt.Errorf("CLUSTER INFO: %q", info)
		}
		shards, err := n1.ClusterShards(ctx).Result()
		if err != nil {
			return err
		}
		found := false
		for _, sh := range shards {
			for _, nd := range sh.Nodes {
				if nd.ID == victim.id {
					found = true
					if nd.Health != "failed" {
						return fmt.Errorf("CLUSTER SHARDS health of %s: %s", victim.id, nd.Health)
					}
				}
			}
		}
		if !found {
			return fmt.Errorf("CLUSTER SHARDS has no %s", victim.id)
		}
		failAt = time.Since(killed)
		return nil
	})
	t.Logf("after SIGKILL of %s: suspected (fail?) after %v, failed in CLUSTER INFO/NODES/SHARDS after %v", victim.id, pfailAt, failAt)
	// memberlist's LAN profile (the default): 1 s probes, suspicion 4 s
	// for 3 nodes (SuspicionMult 4 × max(1, log10 n) × 1 s).
	if failAt > 10*time.Second {
		t.Errorf("failure shown after %v, want within the suspicion time (~5 s) and a margin", failAt)
	}
	var cj struct {
		ClusterState string `json:"cluster_state"`
		BucketsFail  int    `json:"buckets_fail"`
		Nodes        []struct {
			ID, Health string
		} `json:"nodes"`
	}
	raw, err := getJSON(c.procs[0].http, "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cj); err != nil {
		t.Fatal(err)
	}
	if cj.ClusterState != "fail" || cj.BucketsFail == 0 {
		t.Errorf("/v1/cluster: cluster_state %q, buckets_fail %d", cj.ClusterState, cj.BucketsFail)
	}
	for _, nd := range cj.Nodes {
		if want := map[bool]string{true: "fail", false: "online"}[nd.ID == victim.id]; nd.Health != want {
			t.Errorf("/v1/cluster health of %s: %q, want %q", nd.ID, nd.Health, want)
		}
	}
	// INFO says it too (prometheus-redis-exporter reads cluster_state).
	if info, err := n1.Info(ctx, "cluster").Result(); err != nil || !strings.Contains(info, "cluster_state:fail") {
		t.Errorf("INFO cluster: %q %v", info, err)
	}
	// The victim back: ok again.
	victim.start(t, c.bin, []string{c.procs[0].gossip})
	waitFor(t, 30*time.Second, "cluster_state:ok again", func() error {
		info, err := n1.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%q %v", info, err)
		}
		return nil
	})
}

// storedKeys lists the keys with prefix that st holds, whatever their
// bucket's owner (SCAN answers by ownership; this is what is on disk).
func storedKeys(t *testing.T, st *engine.Store, prefix string) []string {
	t.Helper()
	it, err := st.NewIter(0, router.NumBuckets-1)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		if k := string(it.Key()); strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedKeysOffline opens a stopped node's engine (DIR/engine) and lists
// its keys with prefix.
func storedKeysOffline(t *testing.T, dataDir, prefix string) []string {
	t.Helper()
	st, err := engine.Open(filepath.Join(dataDir, "engine"), engine.DefaultConfig())
	if err != nil {
		t.Fatalf("open %s: %v", dataDir, err)
	}
	defer st.Close()
	return storedKeys(t, st, prefix)
}
