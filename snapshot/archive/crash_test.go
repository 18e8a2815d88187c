package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/router"
)

// crashPoints wraps mem so that, before every operation, it records what
// a power loss at that point would leave (mem.CrashClone): one run of the
// code under test gives every crash point at once.
type crashPoints struct {
	mem    *vfs.MemFS
	mu     sync.Mutex
	clones []*vfs.MemFS
	ops    []string
}

func (c *crashPoints) fs() vfs.FS {
	return vfs.WithErrors(c.mem, vfs.InjectorFunc(func(op vfs.Op, name string) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.clones = append(c.clones, c.mem.CrashClone(vfs.CrashOptions{}))
		c.ops = append(c.ops, op.String()+" "+name)
		return nil
	}))
}

// after records the state once the code under test returned.
func (c *crashPoints) after() {
	c.clones = append(c.clones, c.mem.CrashClone(vfs.CrashOptions{}))
	c.ops = append(c.ops, "(returned)")
}

func writeFile(t *testing.T, fs vfs.FS, name, data string) {
	t.Helper()
	if err := fs.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func snapFile(name, data string) coordinator.SnapshotFile {
	sum := sha256.Sum256([]byte(data))
	return coordinator.SnapshotFile{Name: name, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

// partFiles are one node's checkpoint: name → content.
var partFiles = map[string]string{
	"DBX_STORE":                      "store",
	"shard-000/MANIFEST":             "manifest-0",
	"shard-000/000001.seg":           strings.Repeat("seg", 100),
	"shard-001/MANIFEST":             "manifest-1",
	"shard-001/txn/000002.seg":       "records",
	"shard-001/txn/deeper/000003.wa": "wal",
}

func testManifest() coordinator.SnapshotManifest {
	p := coordinator.SnapshotPart{Node: "a", Ranges: []coordinator.BucketRange{{From: 0, To: router.NumBuckets - 1}}}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range partFiles {
			if !yield(k) {
				return
			}
		}
	}) {
		p.Files = append(p.Files, snapFile(name, partFiles[name]))
	}
	return coordinator.SnapshotManifest{ID: "s1", Buckets: router.NumBuckets, Epoch: 7, Parts: []coordinator.SnapshotPart{p}}
}

// checkTree reports how dir in fs differs from want (name → content).
func checkTree(fs vfs.FS, dir string, want map[string]string) error {
	for name, data := range want {
		b, err := readFile(fs, filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return err
		}
		if string(b) != data {
			return fmt.Errorf("%s: %q, want %q", name, b, data)
		}
	}
	return nil
}

// TestExportCrash crashes an export at every file-system operation and
// checks the export directory left behind: with a manifest, every file it
// lists is there and intact and Restore takes it; without one, Restore
// refuses it. Once Export returned, the whole export survives.
func TestExportCrash(t *testing.T) {
	m := testManifest()
	mux := http.NewServeMux()
	var srvURL string
	mux.HandleFunc("GET /v1/snapshots/s1", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"manifest": m})
	})
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"nodes": []map[string]string{{"id": "a", "http_addr": srvURL}}})
	})
	mux.HandleFunc("GET /v1/snapshots/s1/files/{name...}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(partFiles[r.PathValue("name")]))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	srvURL = srv.URL

	cp := &crashPoints{mem: vfs.NewMem()}
	if _, err := Export(context.Background(), ExportOptions{Admin: srv.URL, ID: "s1", Dir: "/exp/s1", FS: cp.fs()}); err != nil {
		t.Fatal(err)
	}
	cp.after()
	withManifest := 0
	for i, fs := range cp.clones {
		_, err := fs.Stat("/exp/s1/" + ExportManifestName)
		if err != nil {
			if i == len(cp.clones)-1 {
				t.Fatalf("the manifest did not survive a crash after Export returned")
			}
			_, rerr := Restore(RestoreOptions{DataDir: "/d", ID: "a", Snapshot: "/exp/s1", FS: fs})
			if !errors.Is(rerr, ErrRestoreRefused) {
				t.Fatalf("crash before %s: restore of an export without its manifest: %v, want a refusal", cp.ops[i], rerr)
			}
			continue
		}
		withManifest++
		if err := checkTree(fs, "/exp/s1/a", partFiles); err != nil {
			t.Fatalf("crash before %s: the manifest survived but its part did not: %v\n%s", cp.ops[i], err, fs.Tree())
		}
		if _, err := Restore(RestoreOptions{DataDir: "/d", ID: "a", Snapshot: "/exp/s1", FS: fs}); err != nil {
			t.Fatalf("crash before %s: restore of an export with its manifest: %v", cp.ops[i], err)
		}
	}
	if withManifest == 0 || withManifest == len(cp.clones) {
		t.Fatalf("%d of %d crash points have the manifest: the test checks nothing", withManifest, len(cp.clones))
	}
}

// TestRestoreCrash crashes a restore at every file-system operation and
// checks the engine directory left behind: the old engine or all of the
// snapshot's part, never a mix or nothing; and a restore run again on what
// the crash left finishes.
func TestRestoreCrash(t *testing.T) {
	m := testManifest()
	mem := vfs.NewMem()
	for name, data := range partFiles {
		writeFile(t, mem, filepath.Join("/exp/s1/a", filepath.FromSlash(name)), data)
	}
	data, _ := json.Marshal(m)
	writeFile(t, mem, "/exp/s1/"+ExportManifestName, string(data))
	oldEngine := map[string]string{"OLD": "old", "shard-000/MANIFEST": "old-manifest"}
	for name, data := range oldEngine {
		writeFile(t, mem, filepath.Join("/d/engine", filepath.FromSlash(name)), data)
	}
	writeFile(t, mem, "/d/"+EpochFile, "7")
	if err := mkdirAllSyncedAll(mem); err != nil { // the set-up is durable
		t.Fatal(err)
	}

	cp := &crashPoints{mem: mem}
	if _, err := Restore(RestoreOptions{DataDir: "/d", ID: "a", Snapshot: "/exp/s1", FS: cp.fs()}); err != nil {
		t.Fatal(err)
	}
	cp.after()
	restored := 0
	for i, fs := range cp.clones {
		oldErr := checkTree(fs, "/d/engine", oldEngine)
		newErr := checkTree(fs, "/d/engine", partFiles)
		switch {
		case newErr == nil:
			restored++
		case oldErr != nil:
			t.Fatalf("crash before %s: the engine is neither the old one (%v) nor the snapshot (%v)\n%s", cp.ops[i], oldErr, newErr, fs.Tree())
		case i == len(cp.clones)-1:
			t.Fatalf("the restore did not survive a crash after Restore returned: %v", newErr)
		}
		if _, err := Restore(RestoreOptions{DataDir: "/d", ID: "a", Snapshot: "/exp/s1", FS: fs}); err != nil {
			t.Fatalf("crash before %s: restoring again: %v", cp.ops[i], err)
		}
		if err := checkTree(fs, "/d/engine", partFiles); err != nil {
			t.Fatalf("crash before %s: restoring again: %v", cp.ops[i], err)
		}
	}
	if restored == 0 || restored == len(cp.clones) {
		t.Fatalf("%d of %d crash points have the restored engine: the test checks nothing", restored, len(cp.clones))
	}
}

// mkdirAllSyncedAll makes the set-up tree of a fresh MemFS durable.
func mkdirAllSyncedAll(fs *vfs.MemFS) error {
	var walk func(dir string) error
	walk = func(dir string) error {
		if err := fs.SyncDir(dir); err != nil {
			return err
		}
		names, err := fs.List(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			p := filepath.Join(dir, n)
			if st, err := fs.Stat(p); err == nil && st.IsDir() {
				if err := walk(p); err != nil {
					return err
				}
			} else if f, err := fs.OpenReadWrite(p); err == nil {
				err = f.Sync()
				f.Close()
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk("/")
}
