package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine/vfs"
)

// Progress is called with the bytes done and the total of a long
// operation (export, restore); it may be nil.
type Progress func(done, total int64)

// ExportManifestName is the manifest's file in an export directory; each
// node's part is in the directory named by the node's ID next to it.
const ExportManifestName = "manifest.json"

// ExportOptions configure Export.
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
	// FS holds Dir (nil: vfs.Default).
	FS vfs.FS
}

// Export copies every file of every node's part of a snapshot, and its
// manifest, into opts.Dir: each file fetched from the node that holds it
// (which checks it against the manifest as it sends it), checked again
// here and synced. The manifest is written last, once every part file and
// directory is durable: a directory without one is an unfinished export,
// which Restore refuses.
func Export(ctx context.Context, opts ExportOptions) (coordinator.SnapshotManifest, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
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
	if names, err := fs.List(opts.Dir); err == nil && len(names) > 0 {
		return m, fmt.Errorf("export: %s is not empty", opts.Dir)
	}
	if err := mkdirAllSynced(fs, opts.Dir); err != nil {
		return m, fmt.Errorf("export: %w", err)
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
			err = copyVerified(fs, resp.Body, dst, f)
			resp.Body.Close()
			if err != nil {
				return m, fmt.Errorf("export: node %s: %w", p.Node, err)
			}
			done += f.Bytes
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
		// The part's names are durable before the manifest can list them.
		if err := syncDirs(fs, filepath.Join(opts.Dir, p.Node), p.Files); err != nil {
			return m, fmt.Errorf("export: node %s: %w", p.Node, err)
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := WriteFileAtomic(fs, filepath.Join(opts.Dir, ExportManifestName), data); err != nil {
		return m, err
	}
	return m, nil
}
