package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine/vfs"
)

// Progress is called with the bytes done and the total of a long
// operation (export, restore); it may be nil.
type Progress func(done, total int64)

// ExportManifestName is the manifest's file in an export directory; each
// node's part is in the directory named by the node's ID next to it.
const ExportManifestName = "manifest.json"

// ExportOptions configure ExportSnapshot.
type ExportOptions struct {
	// Admin is the admin API address (H:P or URL) of any node; Token its
	// bearer token.
	Admin, Token string
	// ID is the snapshot; Dir the directory to fill (created; must be
	// empty if it exists).
	ID, Dir  string
	Progress Progress
	// Client is the HTTP client (nil: one with no overall timeout).
	Client *http.Client
}

// ExportSnapshot copies every file of every node's part of a snapshot, and
// its manifest, into opts.Dir: each file fetched from the node that holds
// it (which checks it against the manifest as it sends it) and checked
// again here. The manifest is written last: a directory without one is an
// unfinished export.
func ExportSnapshot(ctx context.Context, opts ExportOptions) (coordinator.SnapshotManifest, error) {
	hc := opts.Client
	if hc == nil {
		hc = &http.Client{}
	}
	base := func(addr string) string {
		if strings.Contains(addr, "://") {
			return strings.TrimSuffix(addr, "/")
		}
		return "http://" + addr
	}
	get := func(url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		if opts.Token != "" {
			req.Header.Set("Authorization", "Bearer "+opts.Token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
		}
		return resp, nil
	}
	getJSON := func(url string, v any) error {
		resp, err := get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
	}
	var m coordinator.SnapshotManifest
	var show struct {
		Manifest *coordinator.SnapshotManifest `json:"manifest"`
	}
	if err := getJSON(base(opts.Admin)+"/v1/snapshots/"+opts.ID, &show); err != nil {
		return m, err
	}
	if show.Manifest == nil {
		return m, fmt.Errorf("snapshot %s: no manifest in the answer", opts.ID)
	}
	m = *show.Manifest
	var ci struct {
		Nodes []struct {
			ID       string `json:"id"`
			HTTPAddr string `json:"http_addr"`
		} `json:"nodes"`
	}
	if err := getJSON(base(opts.Admin)+"/v1/cluster", &ci); err != nil {
		return m, err
	}
	httpOf := map[string]string{}
	for _, nd := range ci.Nodes {
		httpOf[nd.ID] = nd.HTTPAddr
	}
	if names, err := os.ReadDir(opts.Dir); err == nil && len(names) > 0 {
		return m, fmt.Errorf("export: %s is not empty", opts.Dir)
	}
	total, done := m.Bytes(), int64(0)
	for _, p := range m.Parts {
		addr := httpOf[p.Node]
		if addr == "" {
			return m, fmt.Errorf("export: node %s (part of snapshot %s) has no admin address", p.Node, m.ID)
		}
		for _, f := range p.Files {
			if !coordinator.ValidSnapshotFileName(f.Name) {
				return m, fmt.Errorf("export: node %s: bad file name %q", p.Node, f.Name)
			}
			dst := filepath.Join(opts.Dir, p.Node, filepath.FromSlash(f.Name))
			resp, err := get(base(addr) + "/v1/snapshots/" + m.ID + "/files/" + f.Name)
			if err != nil {
				return m, fmt.Errorf("export: node %s file %s: %w", p.Node, f.Name, err)
			}
			err = copyVerified(resp.Body, dst, f)
			resp.Body.Close()
			if err != nil {
				return m, fmt.Errorf("export: node %s: %w", p.Node, err)
			}
			done += f.Bytes
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := writeFileSync(filepath.Join(opts.Dir, ExportManifestName), data); err != nil {
		return m, err
	}
	return m, nil
}

// copyVerified writes r to dst (creating its directory), checking the
// size and SHA-256 against f, and syncs it.
func copyVerified(r io.Reader, dst string, f coordinator.SnapshotFile) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
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
		os.Remove(dst)
		return fmt.Errorf("file %s: %w", f.Name, err)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
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
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// RestoreOptions configure RestoreSnapshot.
type RestoreOptions struct {
	// DataDir and ID are the stopped node's (as given to serve).
	DataDir, ID string
	// Snapshot is a snapshot ID (the node's own checkpoint and manifest
	// file under DataDir) or an export directory (ExportSnapshot).
	Snapshot string
	// Force restores even if the node last applied another placement
	// epoch than the snapshot's.
	Force    bool
	Progress Progress
}

// ErrRestoreRefused reports a restore that was not done; the node's data
// is untouched.
var ErrRestoreRefused = errors.New("node: restore refused")

// RestoreSnapshot replaces a stopped node's engine directory with its part
// of a snapshot. Every file is checked (size, SHA-256) before anything is
// touched; a missing or corrupt one refuses the restore, naming it. The
// node's Raft state is kept: the cluster's metadata stays current, so the
// restore is refused when the node last applied another placement epoch
// than the snapshot's (its buckets may have moved since), unless Force.
// Restore every node of the snapshot the same way, with the cluster
// stopped, to roll the whole cluster back.
func RestoreSnapshot(opts RestoreOptions) (coordinator.SnapshotManifest, error) {
	var m coordinator.SnapshotManifest
	if opts.DataDir == "" || opts.ID == "" || opts.Snapshot == "" {
		return m, fmt.Errorf("%w: data dir, node ID and snapshot are required", ErrRestoreRefused)
	}
	var manPath, src string
	if st, err := os.Stat(opts.Snapshot); err == nil && st.IsDir() {
		manPath = filepath.Join(opts.Snapshot, ExportManifestName)
		src = filepath.Join(opts.Snapshot, opts.ID)
	} else if coordinator.ValidSnapshotID(opts.Snapshot) {
		manPath = SnapshotManifestPath(opts.DataDir, opts.Snapshot)
		src = filepath.Join(opts.DataDir, "snapshots", opts.Snapshot)
	} else {
		return m, fmt.Errorf("%w: %q is neither a directory nor a snapshot ID", ErrRestoreRefused, opts.Snapshot)
	}
	data, err := os.ReadFile(manPath)
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
	if b, err := os.ReadFile(filepath.Join(opts.DataDir, placementEpochFile)); err == nil && !opts.Force {
		if e, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); e != m.Epoch {
			return m, fmt.Errorf("%w: node %s last applied placement epoch %d, snapshot %s was taken at epoch %d: buckets may have moved since (restore every node, or use --force)", ErrRestoreRefused, opts.ID, e, m.ID, m.Epoch)
		}
	}
	engDir := filepath.Join(opts.DataDir, "engine")
	// A running node holds the engine's lock.
	if _, err := os.Stat(engDir); err == nil {
		lock, err := vfs.Default.Lock(filepath.Join(engDir, "LOCK"))
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
		size, sum, err := fileSHA256(filepath.Join(src, filepath.FromSlash(f.Name)))
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
	if err := os.RemoveAll(tmp); err != nil {
		return m, err
	}
	for _, f := range p.Files {
		in, err := os.Open(filepath.Join(src, filepath.FromSlash(f.Name)))
		if err != nil {
			return m, err
		}
		err = copyVerified(in, filepath.Join(tmp, filepath.FromSlash(f.Name)), f)
		in.Close()
		if err != nil {
			os.RemoveAll(tmp)
			return m, fmt.Errorf("%w: %w", ErrRestoreRefused, err)
		}
		done += f.Bytes
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	old := fmt.Sprintf("%s.pre-restore-%d", engDir, time.Now().UnixNano())
	if _, err := os.Stat(engDir); err == nil {
		if err := os.Rename(engDir, old); err != nil {
			os.RemoveAll(tmp)
			return m, err
		}
	}
	if err := os.Rename(tmp, engDir); err != nil {
		_ = os.Rename(old, engDir)
		return m, err
	}
	if d, err := os.Open(opts.DataDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return m, os.RemoveAll(old)
}
