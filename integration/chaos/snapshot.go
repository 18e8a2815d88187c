package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/node"
	"github.com/dbx-kv/dbx/router"
)

// SnapshotEvery is how often the snapshot workload asks for a global
// snapshot while the bank runs.
const SnapshotEvery = 15 * time.Second

// Snapshots is the snapshot workload: while the bank runs (and the faults
// happen) it asks a random node for a global snapshot every SnapshotEvery;
// a take refused during a fault (a node down, a migration) is counted, not
// an error. CheckSnapshots then restores every snapshot still listed into
// fresh engines and sums the bank accounts.
//
// Each snapshot is exported (copied to the host, under Dir) as soon as it
// is taken, while its parts are still on the nodes' disks: a later fault
// can wipe a node (the drain nemesis brings one back with an empty data
// dir) and retention drops old snapshots. One whose export fails then is
// exported at the end if it is still listed.
type Snapshots struct {
	Dir  string // exports go to Dir/<id>/export
	Logf func(format string, args ...any)

	mu       sync.Mutex
	taken    []string
	refused  int
	exported map[string]coordinator.SnapshotManifest
}

// Run takes snapshots until stop ends (bounded: 1000 attempts).
func (s *Snapshots) Run(stop context.Context, nodes []*Node, rnd *rand.Rand) {
	hc := &http.Client{Timeout: 30 * time.Second}
	for i := 0; i < 1000; i++ {
		select {
		case <-stop.Done():
			return
		case <-time.After(SnapshotEvery):
		}
		n := nodes[rnd.IntN(len(nodes))]
		resp, err := hc.Post("http://"+n.httpAddr()+"/v1/snapshots", "application/json", nil)
		if err != nil {
			s.count("")
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		var v struct {
			ID string `json:"id"`
		}
		if resp.StatusCode/100 != 2 || json.Unmarshal(body, &v) != nil || v.ID == "" {
			s.count("")
			continue
		}
		s.count(v.ID)
		ctx, cancel := context.WithTimeout(stop, 60*time.Second)
		m, err := node.ExportSnapshot(ctx, node.ExportOptions{Admin: n.httpAddr(), ID: v.ID, Dir: s.exportDir(v.ID)})
		cancel()
		if err == nil {
			s.mu.Lock()
			if s.exported == nil {
				s.exported = map[string]coordinator.SnapshotManifest{}
			}
			s.exported[v.ID] = m
			s.mu.Unlock()
		} else {
			_ = os.RemoveAll(filepath.Join(s.Dir, v.ID))
			s.Logf("snapshot %s: export when taken failed (tried again at the end): %v", v.ID, err)
		}
	}
}

func (s *Snapshots) exportDir(id string) string { return filepath.Join(s.Dir, id, "export") }

func (s *Snapshots) count(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == "" {
		s.refused++
	} else {
		s.taken = append(s.taken, id)
	}
}

// SnapshotResult is the snapshot checker's verdict. Unavailable counts
// listed snapshots that could not be exported or restored: parts live on
// the nodes' own disks, and the drain nemesis brings a node back with an
// empty data dir, so a part can be gone — that is not a consistency
// violation (export the snapshots you want to keep); a wrong total is.
type SnapshotResult struct {
	Taken, Refused, Checked int
	Early                   int // exported as soon as taken
	Unavailable             []string
	Bad                     []string
}

// OK reports no restored snapshot with a broken total, and at least one
// restored and checked.
func (r SnapshotResult) OK() bool { return len(r.Bad) == 0 && r.Checked > 0 }

func (r SnapshotResult) String() string {
	s := fmt.Sprintf("%d taken (%d refused during faults, %d exported when taken), %d restored and checked", r.Taken, r.Refused, r.Early, r.Checked)
	if len(r.Unavailable) > 0 {
		s += fmt.Sprintf(", %d not restorable (a part's node lost its disk), first: %s", len(r.Unavailable), r.Unavailable[0])
	}
	if len(r.Bad) > 0 {
		return s + fmt.Sprintf(", %d BROKEN, first: %s", len(r.Bad), r.Bad[0])
	}
	if r.Checked == 0 {
		return s + ": nothing to check"
	}
	return s + ", every bank total conserved"
}

// Check restores every snapshot taken — from its export made when it was
// taken, or else exported now through admin if it is still listed
// (retention keeps the last few) — each node's part into a fresh data dir,
// opens the engines and sums the accounts: each must total total.
//
// freshDisk are the nodes whose data volume the run removed: a snapshot
// that cannot be exported because a part on one of them is gone is
// "unavailable"; any other export or restore failure is a violation.
func (s *Snapshots) Check(ctx context.Context, admin string, accounts []string, total int64, freshDisk []string) SnapshotResult {
	s.mu.Lock()
	res := SnapshotResult{Taken: len(s.taken), Refused: s.refused, Early: len(s.exported)}
	taken := slices.Clone(s.taken)
	exported := maps.Clone(s.exported)
	s.mu.Unlock()
	listed := map[string]bool{}
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + admin + "/v1/snapshots"); err == nil {
		var list []struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, l := range list {
			listed[l.ID] = true
		}
	}
	for _, id := range taken {
		m, early := exported[id]
		var err error
		if !early {
			if !listed[id] {
				continue // dropped by retention, never exported
			}
			if m, err = node.ExportSnapshot(ctx, node.ExportOptions{Admin: admin, ID: id, Dir: s.exportDir(id)}); err != nil {
				err = fmt.Errorf("export: %w", err)
			}
		}
		var sum int64
		if err == nil {
			sum, err = restoreAndSum(m, s.exportDir(id), accounts, filepath.Join(s.Dir, id))
		}
		lostDisk := err != nil && slices.ContainsFunc(freshDisk, func(n string) bool { return strings.Contains(err.Error(), "node "+n+" ") })
		switch {
		case lostDisk:
			res.Unavailable = append(res.Unavailable, fmt.Sprintf("%s: %v", id, err))
		case err != nil:
			res.Bad = append(res.Bad, fmt.Sprintf("%s: %v", id, err))
		case sum != total:
			res.Checked++
			res.Bad = append(res.Bad, fmt.Sprintf("%s: bank total %d, want %d", id, sum, total))
		default:
			res.Checked++
		}
	}
	return res
}

// restoreAndSum restores every part of the snapshot exported to exp (its
// manifest m) under dir and sums the accounts; it removes dir.
func restoreAndSum(m coordinator.SnapshotManifest, exp string, accounts []string, dir string) (int64, error) {
	defer os.RemoveAll(dir)
	stores := map[string]*engine.Store{}
	defer func() {
		for _, st := range stores {
			st.Close()
		}
	}()
	for _, p := range m.Parts {
		d := filepath.Join(dir, "restore-"+p.Node)
		if _, err := node.RestoreSnapshot(node.RestoreOptions{DataDir: d, ID: p.Node, Snapshot: exp}); err != nil {
			return 0, fmt.Errorf("restore part %s: %w", p.Node, err)
		}
		cfg := engine.DefaultConfig()
		cfg.Sync = engine.SyncNone
		st, err := engine.Open(filepath.Join(d, "engine"), cfg)
		if err != nil {
			return 0, fmt.Errorf("open part %s: %w", p.Node, err)
		}
		stores[p.Node] = st
	}
	var sum int64
	for _, a := range accounts {
		b := router.BucketString(a)
		st := stores[m.Owner(b)]
		if st == nil {
			return 0, fmt.Errorf("no part owns bucket %d", b)
		}
		v, err := st.Get(b, []byte(a))
		if err != nil {
			return 0, fmt.Errorf("account %s: %w", a, err)
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("account %s = %q", a, v)
		}
		sum += n
	}
	return sum, nil
}
