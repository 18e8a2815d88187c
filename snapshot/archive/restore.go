package archive

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine/vfs"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// DataDir and ID are the stopped node's (as given to serve).
	DataDir, ID string
	// Snapshot is a snapshot ID (the node's own checkpoint and manifest
	// file under DataDir) or an export directory (Export).
	Snapshot string
	// Force restores even if the node last applied another placement
	// epoch than the snapshot's.
	Force    bool
	Progress Progress
	// FS holds DataDir and the export (nil: vfs.Default).
	FS vfs.FS
}

// Restore replaces a stopped node's engine directory with its part of a
// snapshot. Every file is checked (size, SHA-256) before anything is
// touched; a missing or corrupt one refuses the restore, naming it. The
// node's Raft state is kept: the cluster's metadata stays current, so the
// restore is refused when the node last applied another placement epoch
// than the snapshot's (its buckets may have moved since), unless Force.
// Restore every node of the snapshot the same way, with the cluster
// stopped, to roll the whole cluster back.
//
// The copy is made in DataDir/engine.restore, synced with every directory
// entry, and then swapped in by two renames made durable by one sync of
// DataDir: a crash leaves the old engine or the whole new one (and maybe
// a leftover engine.restore or engine.pre-restore-*, removed by the next
// restore or by hand).
func Restore(opts RestoreOptions) (coordinator.SnapshotManifest, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	var m coordinator.SnapshotManifest
	if opts.DataDir == "" || opts.ID == "" || opts.Snapshot == "" {
		return m, fmt.Errorf("%w: data dir, node ID and snapshot are required", ErrRestoreRefused)
	}
	var manPath, src string
	if isDir(fs, opts.Snapshot) {
		manPath = filepath.Join(opts.Snapshot, ExportManifestName)
		src = filepath.Join(opts.Snapshot, opts.ID)
	} else if coordinator.ValidSnapshotID(opts.Snapshot) {
		manPath = ManifestPath(opts.DataDir, opts.Snapshot)
		src = CheckpointDir(opts.DataDir, opts.Snapshot)
	} else {
		return m, fmt.Errorf("%w: %q is neither a directory nor a snapshot ID", ErrRestoreRefused, opts.Snapshot)
	}
	data, err := readFile(fs, manPath)
	if err != nil {
		return m, fmt.Errorf("%w: manifest: %w", ErrRestoreRefused, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%w: manifest %s: %w", ErrRestoreRefused, manPath, err)
	}
	p, ok := m.Part(opts.ID)
	if !ok {
		return m, fmt.Errorf("%w: snapshot %s has no part for node %s", ErrRestoreRefused, m.ID, opts.ID)
	}
	if b, err := readFile(fs, filepath.Join(opts.DataDir, EpochFile)); err == nil && !opts.Force {
		if e, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); e != m.Epoch {
			return m, fmt.Errorf("%w: node %s last applied placement epoch %d, snapshot %s was taken at epoch %d: buckets may have moved since (restore every node, or use --force)", ErrRestoreRefused, opts.ID, e, m.ID, m.Epoch)
		}
	}
	engDir := filepath.Join(opts.DataDir, EngineDir)
	// A running node holds the engine's lock.
	if _, err := fs.Stat(engDir); err == nil {
		lock, err := fs.Lock(filepath.Join(engDir, "LOCK"))
		if err != nil {
			return m, fmt.Errorf("%w: %s is in use (stop the node first): %w", ErrRestoreRefused, engDir, err)
		}
		defer lock.Close()
	}
	// Check every file before touching anything.
	total, done := 2*p.Bytes(), int64(0)
	for _, f := range p.Files {
		if !coordinator.ValidSnapshotFileName(f.Name) {
			return m, fmt.Errorf("%w: bad file name %q", ErrRestoreRefused, f.Name)
		}
		size, sum, err := FileSHA256(fs, filepath.Join(src, filepath.FromSlash(f.Name)))
		if err != nil {
			return m, fmt.Errorf("%w: file %s: %w", ErrRestoreRefused, f.Name, err)
		}
		if size != f.Bytes || sum != f.SHA256 {
			return m, fmt.Errorf("%w: file %s is corrupt: %d bytes with sha256 %s, the manifest says %d bytes, %s", ErrRestoreRefused, f.Name, size, sum, f.Bytes, f.SHA256)
		}
		done += f.Bytes
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	tmp := engDir + ".restore"
	if err := fs.RemoveAll(tmp); err != nil {
		return m, err
	}
	for _, f := range p.Files {
		in, err := fs.Open(filepath.Join(src, filepath.FromSlash(f.Name)))
		if err != nil {
			return m, err
		}
		err = copyVerified(fs, in, filepath.Join(tmp, filepath.FromSlash(f.Name)), f)
		in.Close()
		if err != nil {
			_ = fs.RemoveAll(tmp)
			return m, fmt.Errorf("%w: %w", ErrRestoreRefused, err)
		}
		done += f.Bytes
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	// Every name of the copy is durable before the swap publishes it.
	if err := mkdirAllSynced(fs, tmp); err != nil {
		return m, err
	}
	if err := syncDirs(fs, tmp, p.Files); err != nil {
		_ = fs.RemoveAll(tmp)
		return m, err
	}
	old := fmt.Sprintf("%s.pre-restore-%d", engDir, time.Now().UnixNano())
	if _, err := fs.Stat(engDir); err == nil {
		if err := fs.Rename(engDir, old); err != nil {
			_ = fs.RemoveAll(tmp)
			return m, err
		}
	}
	if err := fs.Rename(tmp, engDir); err != nil {
		_ = fs.Rename(old, engDir)
		return m, err
	}
	if err := fs.SyncDir(opts.DataDir); err != nil {
		return m, err
	}
	return m, fs.RemoveAll(old)
}

func readFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
