package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine/vfs"
)

// The layout of a node's DataDir that snapshots use.
const (
	// CheckpointsDir holds one engine checkpoint per snapshot, named by
	// its ID.
	CheckpointsDir = "snapshots"
	// ManifestsDir holds the JSON of each committed manifest with a part
	// on the node, <id>.json.
	ManifestsDir = "snapshot-manifests"
	// EpochFile records the last placement epoch the node applied, for
	// restore's check (the Raft state cannot be read offline cheaply).
	EpochFile = "PLACEMENT_EPOCH"
	// EngineDir is the engine's directory.
	EngineDir = "engine"
)

// CheckpointDir is where a node keeps its checkpoint of snapshot id.
func CheckpointDir(dataDir, id string) string { return filepath.Join(dataDir, CheckpointsDir, id) }

// ManifestPath is where a node keeps the JSON of a committed manifest.
func ManifestPath(dataDir, id string) string {
	return filepath.Join(dataDir, ManifestsDir, id+".json")
}

// FileSHA256 returns the size and hex SHA-256 of the file at path.
func FileSHA256(fs vfs.FS, path string) (int64, string, error) {
	f, err := fs.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// tmpSeq names WriteFileAtomic's temporary files: two writers of one path
// (a node's reconcile loop and its take) never share one.
var tmpSeq atomic.Uint64

// WriteFileAtomic replaces path with data: a temporary file, synced,
// renamed over path, and the directory synced, so after a crash path holds
// the old content or all of the new one. It creates path's directory (and
// makes it durable) if needed. It is safe for concurrent use, also on
// one path (the last rename wins).
func WriteFileAtomic(fs vfs.FS, path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := mkdirAllSynced(fs, dir); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, tmpSeq.Add(1))
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err != nil {
		_ = fs.Remove(tmp)
		return err
	}
	return fs.SyncDir(dir)
}

// mkdirAllSynced creates dir and its missing parents and makes each new
// entry durable (SyncDir of its parent).
func mkdirAllSynced(fs vfs.FS, dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing { // deepest first; each parent once
		if err := fs.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// copyVerified writes r to dst (creating its directory durably), checking
// the size and SHA-256 against f, and syncs it. dst's own directory entry
// is durable only after SyncDir of its directory: callers sync the tree
// before they publish it.
func copyVerified(fs vfs.FS, r io.Reader, dst string, f coordinator.SnapshotFile) error {
	if err := mkdirAllSynced(fs, filepath.Dir(dst)); err != nil {
		return err
	}
	out, err := fs.Create(dst)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, f.Bytes+1))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && (n != f.Bytes || hex.EncodeToString(h.Sum(nil)) != f.SHA256) {
		err = fmt.Errorf("file %s: %d bytes with sha256 %s, the manifest says %d bytes, %s", f.Name, n, hex.EncodeToString(h.Sum(nil)), f.Bytes, f.SHA256)
	}
	if err != nil {
		_ = fs.Remove(dst)
		return fmt.Errorf("file %s: %w", f.Name, err)
	}
	return nil
}

// syncDirs makes the entries of every directory holding one of files
// (names relative to root, slash-separated) durable, and root's own.
func syncDirs(fs vfs.FS, root string, files []coordinator.SnapshotFile) error {
	dirs := map[string]bool{root: true}
	for _, f := range files {
		for d := filepath.Dir(filepath.Join(root, filepath.FromSlash(f.Name))); len(d) > len(root); d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if err := fs.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// isDir reports whether name is a directory.
func isDir(fs vfs.FS, name string) bool {
	st, err := fs.Stat(name)
	return err == nil && st.IsDir()
}
