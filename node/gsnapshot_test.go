package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/snapshot/archive"
	"github.com/dbx-kv/dbx/twophase"
)

func TestSnapGate(t *testing.T) {
	var g snapGate
	expired := make(chan string, 1)
	g.onExpire = func(token string) { expired <- token }
	commit := func(id string) twophase.Message {
		return twophase.Message{Type: twophase.MsgDecide, Txn: twophase.TxID(id), Status: twophase.StatusCommitted}
	}
	if g.holdDecide(commit("t1")) {
		t.Fatal("held a decision while not paused")
	}
	if err := g.pause("s1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := g.pause("s2", time.Minute); err == nil {
		t.Fatal("a second snapshot paused over the first")
	}
	if !g.holdDecide(commit("t2")) {
		t.Fatal("decision not held while paused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if g.enterPrepare(ctx) {
		t.Fatal("a Prepare went through the pause")
	}
	cancel()
	if got := g.sentDecisions([]twophase.TxID{"t1", "t2", "t3"}); len(got) != 1 || got[0] != "t1" {
		t.Fatalf("sent decisions %v, want [t1]", got)
	}
	held, active := g.resume("s1")
	if !active || len(held) != 1 || held[0].Txn != "t2" {
		t.Fatalf("resume: %v %v", held, active)
	}
	if !g.enterPrepare(context.Background()) {
		t.Fatal("Prepare blocked after resume")
	}
	// A lease that runs out ends the pause by itself.
	if err := g.pause("s3", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case tok := <-expired:
		if tok != "s3" {
			t.Fatalf("expired %s", tok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lease did not expire")
	}
	if g.active("s3") {
		t.Fatal("pause active past its lease")
	}
	if _, active := g.resume("s3"); active {
		t.Fatal("resume after the lease reported the pause active")
	}
}

func TestRestoreRefusals(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "shard-000"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "DBX_STORE"), []byte("store"), 0o644)
	os.WriteFile(filepath.Join(src, "a", "shard-000", "MANIFEST"), []byte("man"), 0o644)
	var files []coordinator.SnapshotFile
	for _, name := range []string{"DBX_STORE", "shard-000/MANIFEST"} {
		size, sum, err := archive.FileSHA256(vfs.Default, filepath.Join(src, "a", name))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, coordinator.SnapshotFile{Name: name, Bytes: size, SHA256: sum})
	}
	m := coordinator.SnapshotManifest{ID: "s1", Buckets: router.NumBuckets, Epoch: 7, Parts: []coordinator.SnapshotPart{
		{Node: "a", Ranges: []coordinator.BucketRange{{From: 0, To: router.NumBuckets - 1}}, Files: files}}}
	data, _ := json.MarshalIndent(m, "", " ")
	os.WriteFile(filepath.Join(src, ExportManifestName), data, 0o644)

	dd := t.TempDir()
	os.MkdirAll(filepath.Join(dd, "engine"), 0o755)
	os.WriteFile(filepath.Join(dd, "engine", "OLD"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dd, archive.EpochFile), []byte("9"), 0o644)
	opts := RestoreOptions{DataDir: dd, ID: "a", Snapshot: src}
	if _, err := RestoreSnapshot(opts); !errors.Is(err, ErrRestoreRefused) || !strings.Contains(err.Error(), "epoch 9") {
		t.Fatalf("restore across epochs: %v, want a refusal", err)
	}
	opts.Force = true
	os.WriteFile(filepath.Join(src, "a", "shard-000", "MANIFEST"), []byte("mAn"), 0o644)
	if _, err := RestoreSnapshot(opts); !errors.Is(err, ErrRestoreRefused) || !strings.Contains(err.Error(), "shard-000/MANIFEST") {
		t.Fatalf("restore of a corrupt file: %v, want a refusal naming it", err)
	}
	os.Remove(filepath.Join(src, "a", "shard-000", "MANIFEST"))
	if _, err := RestoreSnapshot(opts); !errors.Is(err, ErrRestoreRefused) || !strings.Contains(err.Error(), "shard-000/MANIFEST") {
		t.Fatalf("restore with a missing file: %v, want a refusal naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dd, "engine", "OLD")); err != nil {
		t.Fatal("a refused restore touched the engine directory")
	}
	os.WriteFile(filepath.Join(src, "a", "shard-000", "MANIFEST"), []byte("man"), 0o644)
	if _, err := RestoreSnapshot(opts); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dd, "engine", "shard-000", "MANIFEST")); err != nil || string(b) != "man" {
		t.Fatalf("restored file: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dd, "engine", "OLD")); err == nil {
		t.Fatal("the old engine directory survived the restore")
	}
}
