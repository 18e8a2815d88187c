package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/node"
	"github.com/dbx-kv/dbx/router"
)

type snapshotJSON struct {
	ID       string                        `json:"id"`
	Bytes    int64                         `json:"bytes"`
	Files    int                           `json:"files"`
	Manifest *coordinator.SnapshotManifest `json:"manifest"`
	Parts    []struct {
		Node    string `json:"node"`
		Buckets int    `json:"buckets"`
		Files   int    `json:"files"`
		Bytes   int64  `json:"bytes"`
	} `json:"parts"`
}

// takeSnapshot posts a take to httpAddr and returns its ID, or the
// status and error body.
func takeSnapshot(httpAddr string) (string, int, string) {
	hc := http.Client{Timeout: time.Minute}
	resp, err := hc.Post("http://"+httpAddr+"/v1/snapshots", "application/json", nil)
	if err != nil {
		return "", 0, err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.ID, resp.StatusCode, body.Error
}

func listSnapshots(t *testing.T, httpAddr string) []snapshotJSON {
	t.Helper()
	var out []snapshotJSON
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+httpAddr+"/v1/snapshots")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// openPart opens a restored engine directory read-only in spirit (the test
// only reads).
func openPart(t *testing.T, dir string) *engine.Store {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.Shards = 2
	cfg.Sync = engine.SyncNone
	st, err := engine.Open(dir, cfg)
	if err != nil {
		t.Fatalf("open restored engine %s: %v", dir, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// readRestored reads key from the part of m that owns its bucket.
func readRestored(t *testing.T, m coordinator.SnapshotManifest, stores map[string]*engine.Store, key string) (string, bool) {
	t.Helper()
	b := router.BucketString(key)
	st := stores[m.Owner(b)]
	if st == nil {
		t.Fatalf("snapshot %s: no restored part owns bucket %d", m.ID, b)
	}
	v, err := st.Get(b, []byte(key))
	if err != nil {
		return "", false
	}
	return string(v), true
}

// TestGlobalSnapshotBank takes snapshots while MULTI/EXEC transfers run
// across three nodes, restores every part of each into fresh data dirs
// (one through the export, one from a node's own snapshots dir) and checks
// that each conserves the bank total and holds every single-key write
// acknowledged before its take began.
func TestGlobalSnapshotBank(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *node.Config) { cfg.SnapshotRetention = 10 })
	ctx := context.Background()
	var clients []*redis.Client
	for _, n := range c.nodes {
		clients = append(clients, client(t, n))
	}
	tab := c.nodes[0].Table()
	var accounts []string
	for i := 0; i < 9; i++ {
		accounts = append(accounts, keyOwnedBy(t, tab, fmt.Sprintf("n%d", i%3+1), fmt.Sprintf("acct%d", i)))
	}
	const initial = 100
	for _, a := range accounts {
		if err := clients[0].Set(ctx, a, initial, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := initial * len(accounts)

	var bank *bankResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bank = runBank(ctx, clients, accounts, total, 6, 9*time.Second)
	}()
	const snaps = 10
	ids := make([]string, snaps)
	acked := make([][]string, snaps) // single-key writes acknowledged before take i began
	var all []string
	var tookMs []int64
	for i := range snaps {
		time.Sleep(500 * time.Millisecond)
		for j := range 30 {
			k := fmt.Sprintf("marker-%d-%d", i, j)
			if err := clients[j%3].Set(ctx, k, k, 0).Err(); err != nil {
				t.Fatalf("set %s: %v", k, err)
			}
			all = append(all, k)
		}
		acked[i] = append([]string(nil), all...)
		start := time.Now()
		id, status, msg := takeSnapshot(c.nodes[(i+1)%3].HTTPAddr())
		if status != http.StatusOK {
			t.Fatalf("take %d: %d %s", i, status, msg)
		}
		tookMs = append(tookMs, time.Since(start).Milliseconds())
		ids[i] = id
	}
	wg.Wait()
	t.Logf("bank: transfers %d, conflicts %d, failed %d, reads %d; takes (ms) %v", bank.transfers, bank.conflicts, bank.failed, bank.reads, tookMs)
	if len(bank.badReads) > 0 {
		t.Fatalf("live reads broke the invariant: %s", bank.badReads[0])
	}
	if bank.transfers < 20 {
		t.Fatalf("too little work to prove anything: %d transfers", bank.transfers)
	}
	// n3 lists from its applied metadata: the last take committed on the
	// leader may reach it a moment later (seen under load in make test).
	var list []snapshotJSON
	waitFor(t, 10*time.Second, "n3 listing every snapshot", func() error {
		if list = listSnapshots(t, c.nodes[2].HTTPAddr()); len(list) != snaps {
			return fmt.Errorf("listed %d snapshots, want %d", len(list), snaps)
		}
		return nil
	})
	for i, s := range list {
		if s.ID != ids[i] || len(s.Parts) != 3 || s.Files == 0 || s.Bytes <= 0 {
			t.Fatalf("snapshot %d listed as %+v", i, s)
		}
	}

	for i, id := range ids {
		exportDir := filepath.Join(t.TempDir(), "export")
		var calls int
		m, err := node.ExportSnapshot(ctx, node.ExportOptions{Admin: c.nodes[i%3].HTTPAddr(), ID: id, Dir: exportDir,
			Progress: func(done, total int64) { calls++ }})
		if err != nil {
			t.Fatalf("export %s: %v", id, err)
		}
		if calls == 0 {
			t.Fatal("export reported no progress")
		}
		stores := map[string]*engine.Store{}
		for _, p := range m.Parts {
			dir := t.TempDir()
			if _, err := node.RestoreSnapshot(node.RestoreOptions{DataDir: dir, ID: p.Node, Snapshot: exportDir}); err != nil {
				t.Fatalf("restore %s part %s: %v", id, p.Node, err)
			}
			stores[p.Node] = openPart(t, filepath.Join(dir, "engine"))
		}
		checkRestored(t, m, stores, accounts, total, acked[i])
	}

	// A stopped node restores from its own snapshots dir; a corrupt file
	// is refused, naming it, and leaves the node untouched.
	n3, dir3 := c.nodes[2], c.dirs[2]
	c.nodes[2] = nil
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	last := ids[snaps-1]
	m, _ := c.nodes[0].Coordinator().Current().Snapshot(last)
	p, _ := m.Part("n3")
	victim := filepath.Join(dir3, "snapshots", last, filepath.FromSlash(p.Files[0].Name))
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(victim); err != nil { // a hard link: the engine's copy stays
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, append([]byte{orig[0] ^ 0xff}, orig[1:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(filepath.Join(dir3, "engine"))
	_, err = node.RestoreSnapshot(node.RestoreOptions{DataDir: dir3, ID: "n3", Snapshot: last})
	if err == nil || !strings.Contains(err.Error(), p.Files[0].Name) {
		t.Fatalf("restore with a corrupt file: %v, want a refusal naming %s", err, p.Files[0].Name)
	}
	after, _ := os.ReadDir(filepath.Join(dir3, "engine"))
	if len(before) != len(after) {
		t.Fatal("a refused restore changed the engine directory")
	}
	if err := os.WriteFile(victim, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := node.RestoreSnapshot(node.RestoreOptions{DataDir: dir3, ID: "n3", Snapshot: last}); err != nil {
		t.Fatalf("restore n3 from its snapshots dir: %v", err)
	}
	st := openPart(t, filepath.Join(dir3, "engine"))
	for _, k := range acked[snaps-1] {
		if m.Owner(router.BucketString(k)) != "n3" {
			continue
		}
		if v, err := st.Get(router.BucketString(k), []byte(k)); err != nil || string(v) != k {
			t.Fatalf("restored n3: %s = %q, %v", k, v, err)
		}
	}
}

func checkRestored(t *testing.T, m coordinator.SnapshotManifest, stores map[string]*engine.Store, accounts []string, total int, acked []string) {
	t.Helper()
	sum := 0
	var vals []string
	for _, a := range accounts {
		v, ok := readRestored(t, m, stores, a)
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			t.Fatalf("snapshot %s: account %s = %q (found %v)", m.ID, a, v, ok)
		}
		sum += n
		vals = append(vals, v)
	}
	if sum != total {
		t.Fatalf("snapshot %s: bank total %d, want %d (balances %v)", m.ID, sum, total, vals)
	}
	for _, k := range acked {
		if v, ok := readRestored(t, m, stores, k); !ok || v != k {
			t.Fatalf("snapshot %s: %s acknowledged before the take is %q (found %v)", m.ID, k, v, ok)
		}
	}
	t.Logf("snapshot %s: total %d conserved (%v), %d acknowledged keys present", m.ID, sum, vals, len(acked))
}

// TestGlobalSnapshotRetention takes 12 snapshots with retention 5: the
// oldest 7 leave the list and their checkpoint directories go on every
// node.
func TestGlobalSnapshotRetention(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *node.Config) { cfg.SnapshotRetention = 5 })
	cl := client(t, c.nodes[0])
	var ids []string
	for i := range 12 {
		if err := cl.Set(context.Background(), fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		id, status, msg := takeSnapshot(c.nodes[i%3].HTTPAddr())
		if status != http.StatusOK {
			t.Fatalf("take %d: %d %s", i, status, msg)
		}
		ids = append(ids, id)
	}
	keep := ids[7:]
	waitFor(t, 10*time.Second, "retention", func() error {
		for ni, n := range c.nodes {
			list := listSnapshots(t, n.HTTPAddr())
			if len(list) != 5 {
				return fmt.Errorf("%s lists %d snapshots", n.ID(), len(list))
			}
			for i, s := range list {
				if s.ID != keep[i] {
					return fmt.Errorf("%s lists %s at %d, want %s", n.ID(), s.ID, i, keep[i])
				}
			}
			ents, err := os.ReadDir(filepath.Join(c.dirs[ni], "snapshots"))
			if err != nil {
				return err
			}
			var dirs []string
			for _, e := range ents {
				dirs = append(dirs, e.Name())
			}
			if strings.Join(dirs, ",") != strings.Join(keep, ",") {
				return fmt.Errorf("%s has checkpoint dirs %v, want %v", n.ID(), dirs, keep)
			}
		}
		return nil
	})
}

// TestGlobalSnapshotNodeDown: with a node whose checkpoint fails, then
// with a node down, a take fails cleanly, naming it; nothing is listed and
// no checkpoint is left behind on the nodes that made theirs.
func TestGlobalSnapshotNodeDown(t *testing.T) {
	c := startCluster(t, 3)
	noSnapshots := func(what string) {
		t.Helper()
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			if l := listSnapshots(t, n.HTTPAddr()); len(l) != 0 {
				t.Fatalf("%s: %s lists %d snapshots", what, n.ID(), len(l))
			}
			ents, _ := os.ReadDir(filepath.Join(c.dirs[i], "snapshots"))
			if len(ents) != 0 {
				t.Fatalf("%s: %s kept %d checkpoint dirs", what, n.ID(), len(ents))
			}
		}
	}
	// n2's checkpoint cannot be made: a file where its snapshots dir goes.
	blocker := filepath.Join(c.dirs[1], "snapshots")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, status, msg := takeSnapshot(c.nodes[0].HTTPAddr())
	if status != http.StatusConflict || !strings.Contains(msg, "node n2") {
		t.Fatalf("take with n2's checkpoint failing: %d %q, want 409 naming it", status, msg)
	}
	t.Logf("take with n2's checkpoint failing: %s", msg)
	os.Remove(blocker)
	noSnapshots("failed checkpoint")

	down := -1
	for i, n := range c.nodes {
		if !n.IsLeader() {
			down = i
		}
	}
	id := c.nodes[down].ID()
	c.nodes[down].Close()
	c.nodes[down] = nil
	live := c.live()
	_, status, msg = takeSnapshot(live[0].HTTPAddr())
	if status != http.StatusConflict || !strings.Contains(msg, "node "+id) {
		t.Fatalf("take with %s down: %d %q, want 409 naming it", id, status, msg)
	}
	t.Logf("take with %s down: %s", id, msg)
	noSnapshots("node down")
}

// TestGlobalSnapshotMeasure loads DBX_SNAPSHOT_MEASURE_MB MiB into three
// nodes and measures a take, and the p99 of single-key SETs before and
// during takes. Skipped unless the variable is set (it is a measurement,
// not a check): DBX_SNAPSHOT_MEASURE_MB=256 go test ./integration -run
// TestGlobalSnapshotMeasure -v
func TestGlobalSnapshotMeasure(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("DBX_SNAPSHOT_MEASURE_MB"))
	if mb <= 0 {
		t.Skip("set DBX_SNAPSHOT_MEASURE_MB to measure")
	}
	c := startCluster(t, 3)
	ctx := context.Background()
	cl := client(t, c.nodes[0])
	val := strings.Repeat("v", 1024)
	load := time.Now()
	for i := 0; i < mb*1024; i += 256 {
		p := cl.Pipeline()
		for j := i; j < i+256; j++ {
			p.Set(ctx, fmt.Sprintf("load-%d", j), val, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("loaded %d MiB in %s", mb, time.Since(load).Round(time.Millisecond))
	p99 := func(d time.Duration, during func()) (time.Duration, int) {
		var lat []time.Duration
		done := make(chan struct{})
		go func() {
			defer close(done)
			if during != nil {
				during()
			}
		}()
		end := time.Now().Add(d)
		for i := 0; i < 1_000_000 && (time.Now().Before(end) || during != nil && !closed(done)); i++ {
			s := time.Now()
			if err := cl.Set(ctx, fmt.Sprintf("lat-%d", i%1000), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(s))
		}
		<-done
		slices.Sort(lat)
		return lat[len(lat)*99/100], len(lat)
	}
	before, nb := p99(3*time.Second, nil)
	var takes []time.Duration
	during, nd := p99(0, func() {
		for range 3 {
			s := time.Now()
			if _, status, msg := takeSnapshot(c.nodes[1].HTTPAddr()); status != http.StatusOK {
				t.Errorf("take: %d %s", status, msg)
				return
			}
			takes = append(takes, time.Since(s))
		}
	})
	list := listSnapshots(t, c.nodes[0].HTTPAddr())
	t.Logf("%d MiB on 3 nodes: takes %v; snapshot size %d MiB; SET p99 before %s (%d ops), during takes %s (%d ops)",
		mb, takes, list[len(list)-1].Bytes>>20, before, nb, during, nd)
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
