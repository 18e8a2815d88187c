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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/snapshot"
	"github.com/dbx-kv/dbx/snapshot/archive"
	"github.com/dbx-kv/dbx/transport"
	"github.com/dbx-kv/dbx/twophase"
)

// Global snapshots (docs/design.md, "Global snapshots").
//
// The take's steps are snapshot.Take, a pure state machine the leader
// drives here (takeSnapshot): it performs each effect — an RPC to a set
// of nodes at once, a wait, the Raft commit, a release — in order and
// reports the outcome. This file holds the I/O around it: the clock, lock
// and timer of the snapshot.Gate every node pauses decisions with, the
// steps' handlers on every node, the manifest files, retention and the
// admin API.
const (
	// snapPauseLeaseMax is how long a node holds decisions for a snapshot
	// without hearing the resume.
	snapPauseLeaseMax = 15 * time.Second
	// snapTakeTimeout bounds a whole take (describing hashes every file).
	snapTakeTimeout = 10 * time.Minute
)

// ErrSnapshot reports a global snapshot that failed; nothing was listed.
// It is snapshot.ErrFailed.
var ErrSnapshot = snapshot.ErrFailed

// ---- the gate (participant and coordinator side, one per node) ----

// snapGate is the node's snapshot.Gate with its clock and waits: the
// lock, the wait of Prepares for the resume, and the lease's timer. Its
// methods are safe for concurrent use; it does no I/O.
type snapGate struct {
	mu      sync.Mutex
	g       snapshot.Gate
	resumed chan struct{} // closed when the pause ends
	expire  *time.Timer
	// onExpire ends a pause whose lease ran out (set before the first
	// pause: txns.resumeDecisions).
	onExpire func(token string)
}

// holdDecide keeps m (a MsgDecide COMMITTED) while paused and reports
// whether it did; otherwise it records the decision as sent.
func (g *snapGate) holdDecide(m twophase.Message) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g.HoldDecide(time.Now(), m)
}

// enterPrepare waits while paused, until ctx ends (false).
func (g *snapGate) enterPrepare(ctx context.Context) bool {
	for range 1000 {
		g.mu.Lock()
		if !g.g.Paused(time.Now()) {
			g.mu.Unlock()
			return true
		}
		ch, wait := g.resumed, time.Until(g.g.Until())
		g.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
	}
	return false
}

// pause starts (or extends) a pause for token (snapshot.Gate.Pause).
func (g *snapGate) pause(token string, lease time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	began, lapsed, err := g.g.Pause(time.Now(), token, lease)
	if err != nil {
		return err
	}
	if began {
		if lapsed { // let the lapsed pause's waiters go
			close(g.resumed)
		}
		g.resumed = make(chan struct{})
	}
	if g.expire != nil {
		g.expire.Stop()
	}
	// A leader that went quiet: the held decisions leave at the lease's end.
	if g.onExpire != nil {
		g.expire = time.AfterFunc(lease, func() { g.onExpire(token) })
	}
	return nil
}

// active reports whether the pause of token is in force.
func (g *snapGate) active(token string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g.Active(time.Now(), token)
}

// resume ends the pause of token and returns the decisions it held and
// whether the pause was still in force (not run out) until now.
func (g *snapGate) resume(token string) (held []twophase.Message, wasActive bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	held, wasActive, ended := g.g.Resume(time.Now(), token)
	if ended {
		close(g.resumed)
		if g.expire != nil {
			g.expire.Stop()
		}
	}
	return held, wasActive
}

// sentDecisions returns those of ids whose commit decision this node sent.
func (g *snapGate) sentDecisions(ids []twophase.TxID) []twophase.TxID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g.SentDecisions(ids)
}

// heldTxns returns the transactions holding keys on this node.
func (t *txns) heldTxns() []twophase.TxID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.part.Holding()
}

// resumeDecisions ends the pause and sends the decisions it held.
func (t *txns) resumeDecisions(token string) bool {
	held, ok := t.gate.resume(token)
	for _, m := range held {
		t.send(m)
	}
	return ok
}

// ---- the steps, on every node ----

// fs is the file system of the engine, and of every snapshot file.
func (n *Node) fs() vfs.FS { return n.cfg.Engine.FS }

func (n *Node) snapshotDir(id string) string { return archive.CheckpointDir(n.cfg.DataDir, id) }

// SnapshotManifestPath is where a node keeps the JSON of a committed
// manifest (written when it applies the manifest; the leader's copy is
// written before the take returns).
func SnapshotManifestPath(dataDir, id string) string { return archive.ManifestPath(dataDir, id) }

func (n *Node) registerSnapshots(r *transport.Router) {
	n.txns.gate.onExpire = func(token string) { n.txns.resumeDecisions(token) }
	empty := func(method string) func(context.Context, *snapshot.Req) (*emptyResp, error) {
		return func(ctx context.Context, req *snapshot.Req) (*emptyResp, error) {
			return &emptyResp{}, n.snapStepLocal(ctx, method, req).Err
		}
	}
	transport.Register(r, snapshot.MethodPause, empty(snapshot.MethodPause))
	transport.Register(r, snapshot.MethodCheckpt, empty(snapshot.MethodCheckpt))
	transport.Register(r, snapshot.MethodRelease, empty(snapshot.MethodRelease))
	transport.Register(r, snapshot.MethodDrain, func(ctx context.Context, req *snapshot.Req) (*snapshot.DrainResp, error) {
		rep := n.snapStepLocal(ctx, snapshot.MethodDrain, req)
		return &rep.Drain, rep.Err
	})
	transport.Register(r, snapshot.MethodResume, func(ctx context.Context, req *snapshot.Req) (*snapshot.ResumeResp, error) {
		rep := n.snapStepLocal(ctx, snapshot.MethodResume, req)
		return &rep.Was, rep.Err
	})
	transport.Register(r, snapshot.MethodDescribe, func(ctx context.Context, req *snapshot.Req) (*snapshot.PartResp, error) {
		rep := n.snapStepLocal(ctx, snapshot.MethodDescribe, req)
		return &snapshot.PartResp{Part: rep.Part}, rep.Err
	})
}

// snapStepLocal runs one step of a take on this node, for the leader's
// RPC or, on the leader, directly.
func (n *Node) snapStepLocal(ctx context.Context, method string, req *snapshot.Req) snapshot.Reply {
	r := snapshot.Reply{Node: n.cfg.ID}
	switch method {
	case snapshot.MethodPause:
		if !coordinator.ValidSnapshotID(req.ID) {
			r.Err = fmt.Errorf("%w: snapshot ID %q", coordinator.ErrBadCommand, req.ID)
			break
		}
		r.Err = n.txns.gate.pause(req.ID, snapPauseLeaseMax)
	case snapshot.MethodDrain:
		r.Drain = snapshot.DrainResp{Held: n.txns.heldTxns(), Decided: n.txns.gate.sentDecisions(req.Txns)}
	case snapshot.MethodCheckpt:
		r.Err = n.checkpointSnapshot(ctx, req.ID, req.Epoch)
	case snapshot.MethodResume:
		r.Was = snapshot.ResumeResp{WasActive: n.txns.resumeDecisions(req.ID)}
	case snapshot.MethodDescribe:
		r.Part, r.Err = n.describeSnapshot(ctx, req.ID)
	case snapshot.MethodRelease:
		r.Err = n.releaseSnapshot(req.ID)
	default:
		r.Err = fmt.Errorf("%w: %s", coordinator.ErrBadCommand, method)
	}
	return r
}

// snapStep runs one step of a take on tg, over the transport unless tg is
// this node.
func (n *Node) snapStep(ctx context.Context, tg snapshot.Target, method string, req *snapshot.Req) snapshot.Reply {
	if tg.ID == n.cfg.ID {
		return n.snapStepLocal(ctx, method, req)
	}
	r := snapshot.Reply{Node: tg.ID}
	switch method {
	case snapshot.MethodDrain:
		var resp *snapshot.DrainResp
		if resp, r.Err = transport.Call[snapshot.Req, snapshot.DrainResp](ctx, n.rpc, tg.Addr, method, req); r.Err == nil {
			r.Drain = *resp
		}
	case snapshot.MethodResume:
		var resp *snapshot.ResumeResp
		if resp, r.Err = transport.Call[snapshot.Req, snapshot.ResumeResp](ctx, n.rpc, tg.Addr, method, req); r.Err == nil {
			r.Was = *resp
		}
	case snapshot.MethodDescribe:
		var resp *snapshot.PartResp
		if resp, r.Err = transport.Call[snapshot.Req, snapshot.PartResp](ctx, n.rpc, tg.Addr, method, req); r.Err == nil {
			r.Part = resp.Part
		}
	default:
		_, r.Err = transport.Call[snapshot.Req, emptyResp](ctx, n.rpc, tg.Addr, method, req)
	}
	return r
}

// checkpointSnapshot checkpoints the engine for snapshot id, which must be
// paused here, under placement epoch.
func (n *Node) checkpointSnapshot(ctx context.Context, id string, epoch uint64) error {
	if !coordinator.ValidSnapshotID(id) {
		return fmt.Errorf("%w: snapshot ID %q", coordinator.ErrBadCommand, id)
	}
	if !n.txns.gate.active(id) {
		return fmt.Errorf("%w: node %s is not paused for snapshot %s (the pause ran out?)", ErrSnapshot, n.cfg.ID, id)
	}
	if t := n.Table(); t == nil || t.Epoch() != epoch {
		return fmt.Errorf("%w: node %s routes with another placement than epoch %d", ErrSnapshot, n.cfg.ID, epoch)
	}
	dir := n.snapshotDir(id)
	if err := n.fs().MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if _, err := n.store.Checkpoint(ctx, dir); err != nil {
		return fmt.Errorf("%w: node %s: %w", ErrSnapshot, n.cfg.ID, err)
	}
	return nil
}

// engineCheckpoint is the engine's record of a checkpoint.
type engineCheckpoint = engine.CheckpointInfo

// describeSnapshot lists the files of this node's checkpoint for id with
// their sizes and checksums, and the buckets it owns under the current
// table.
func (n *Node) describeSnapshot(ctx context.Context, id string) (coordinator.SnapshotPart, error) {
	p := coordinator.SnapshotPart{Node: n.cfg.ID}
	dir := n.snapshotDir(id)
	cps, err := n.store.Checkpoints()
	if err != nil {
		return p, err
	}
	i := slices.IndexFunc(cps, func(c engineCheckpoint) bool { return c.Dir == dir })
	if i < 0 {
		return p, fmt.Errorf("%w: node %s has no checkpoint for snapshot %s", ErrSnapshot, n.cfg.ID, id)
	}
	p.Seqs = cps[i].Seqs
	for _, name := range cps[i].Files {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		name = filepath.ToSlash(name)
		size, sum, err := archive.FileSHA256(n.fs(), filepath.Join(dir, name))
		if err != nil {
			return p, fmt.Errorf("%w: node %s: %w", ErrSnapshot, n.cfg.ID, err)
		}
		p.Files = append(p.Files, coordinator.SnapshotFile{Name: name, Bytes: size, SHA256: sum})
	}
	if t := n.Table(); t != nil {
		p.Ranges = coordinator.Ranges(t.BucketsOf(n.cfg.ID))
	}
	return p, nil
}

// releaseSnapshot releases this node's checkpoint for id (nothing if it
// has none).
func (n *Node) releaseSnapshot(id string) error {
	if !coordinator.ValidSnapshotID(id) {
		return fmt.Errorf("%w: snapshot ID %q", coordinator.ErrBadCommand, id)
	}
	dir := n.snapshotDir(id)
	cps, err := n.store.Checkpoints()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(cps, func(c engineCheckpoint) bool { return c.Dir == dir }) {
		if err := n.store.ReleaseCheckpoint(dir); err != nil {
			return err
		}
	}
	// Not recorded (the engine was restored since): plain files.
	return n.fs().RemoveAll(dir)
}

// ---- the leader: drive a take ----

// takeSnapshot runs a global snapshot take (on the leader) and returns
// its ID: snapshot.NewPlan checks the metadata allows one, snapshot.Take
// decides every step, and this performs them in order.
func (n *Node) takeSnapshotOnce(ctx context.Context) (string, error) {
	if !n.snapMu.TryLock() {
		return "", fmt.Errorf("%w: another snapshot is being taken", ErrSnapshot)
	}
	defer n.snapMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, snapTakeTimeout)
	defer cancel()
	start := time.Now()
	s, err := n.coord.LinearizableRead(ctx)
	if err != nil {
		return "", err
	}
	plan, err := snapshot.NewPlan(s, time.Now().UTC().Format("20060102T150405.000Z"), start.UnixMilli())
	if err != nil {
		return "", err
	}
	take := snapshot.NewTake(plan, snapshot.DefaultConfig())
	var ev snapshot.Event
	e := take.Start()
	for ; e.Kind != snapshot.Done; e = take.Step(ev) {
		ev = snapshot.Event{}
		switch e.Kind {
		case snapshot.Call:
			ev.Replies = n.snapCall(ctx, e)
		case snapshot.Wait:
			select {
			case <-time.After(e.For):
			case <-ctx.Done():
			}
		case snapshot.Release:
			n.snapRelease(e)
		case snapshot.Commit:
			n.failpoint("snap-leader-before-commit")
			_, ev.Err = n.coord.Apply(ctx, coordinator.AddSnapshot{Manifest: e.Manifest})
		}
		ev.Now = time.Since(start)
	}
	if e.Err != nil {
		return "", e.Err
	}
	man := e.Manifest
	if err := n.writeManifestFile(man); err != nil {
		n.log.Warn("snapshot: writing the manifest file", "snapshot", man.ID, "err", err)
	}
	n.log.Info("snapshot taken", "snapshot", man.ID, "nodes", len(man.Parts), "bytes", man.Bytes(), "pause", e.Pause, "took", time.Since(start))
	n.applyRetention(ctx)
	return man.ID, nil
}

// snapCall performs a Call effect: the step on every node of e.To at
// once, each bounded by e.Timeout; one reply per node, in e.To's order.
func (n *Node) snapCall(ctx context.Context, e snapshot.Effect) []snapshot.Reply {
	out := make([]snapshot.Reply, len(e.To))
	var wg sync.WaitGroup
	for i, tg := range e.To {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, e.Timeout)
			defer cancel()
			out[i] = n.snapStep(cctx, tg, e.Method, &e.Req)
		})
	}
	wg.Wait()
	return out
}

// snapRelease performs a Release effect: one node after the other, each
// bounded by e.Timeout from the node's lifetime (the take's context may
// be what ran out), logging what fails (snapshotReconcile releases it
// later).
func (n *Node) snapRelease(e snapshot.Effect) {
	for _, tg := range e.To {
		ctx, cancel := context.WithTimeout(n.life, e.Timeout)
		r := n.snapStep(ctx, tg, snapshot.MethodRelease, &e.Req)
		cancel()
		if r.Err != nil {
			n.log.Warn("snapshot: releasing a checkpoint", "snapshot", e.Req.ID, "target", tg.ID, "err", r.Err)
		}
	}
}

// applyRetention drops the manifests beyond the retention and releases
// their checkpoints on every node.
func (n *Node) applyRetention(ctx context.Context) {
	s := n.coord.Current()
	drop := s.SnapshotsBeyond(n.cfg.SnapshotRetention)
	if len(drop) == 0 {
		return
	}
	if _, err := n.coord.Apply(ctx, coordinator.DropSnapshots{IDs: drop}); err != nil {
		n.log.Warn("snapshot retention: dropping manifests", "ids", drop, "err", err)
		return
	}
	for _, id := range drop {
		m, _ := s.Snapshot(id)
		for _, p := range m.Parts {
			n.releaseOn(ctx, p.Node, id)
		}
		_ = n.fs().Remove(SnapshotManifestPath(n.cfg.DataDir, id))
	}
	n.log.Info("snapshot retention applied", "dropped", drop, "keep", n.cfg.SnapshotRetention)
}

func (n *Node) releaseOn(ctx context.Context, nodeID, id string) {
	var err error
	if nodeID == n.cfg.ID {
		err = n.releaseSnapshot(id)
	} else if m, ok := n.peer(nodeID); ok && m.RPCAddr != "" {
		rctx, cancel := context.WithTimeout(ctx, snapshot.DefaultConfig().StepTimeout)
		err = n.snapStep(rctx, snapshot.Target{ID: nodeID, Addr: m.RPCAddr}, snapshot.MethodRelease, &snapshot.Req{ID: id}).Err
		cancel()
	} else {
		err = fmt.Errorf("no address")
	}
	if err != nil {
		// The node releases it when it next sees the manifest gone.
		n.log.Warn("snapshot: release deferred", "snapshot", id, "target", nodeID, "err", err)
	}
}

func (n *Node) writeManifestFile(m coordinator.SnapshotManifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return archive.WriteFileAtomic(n.fs(), SnapshotManifestPath(n.cfg.DataDir, m.ID), data)
}

// ---- every node: follow the committed manifests ----

// snapshotReconcile keeps this node's manifest files and checkpoints in
// line with the committed manifests: it writes the file of each manifest
// with a part here, and releases checkpoints of manifests that were
// dropped (a node that missed the leader's release). It also records the
// placement epoch for offline restores.
func (n *Node) snapshotReconcile(s *coordinator.State) {
	if n.catchingUp.Load() || !n.synced.Load() {
		return
	}
	fs := n.fs()
	if t := s.Table(); t != nil {
		n.writeEpochFile(t.Epoch())
	}
	listed := map[string]bool{}
	for _, m := range s.Snapshots() {
		listed[m.ID] = true
		if _, ok := m.Part(n.cfg.ID); !ok {
			continue
		}
		if _, err := fs.Stat(SnapshotManifestPath(n.cfg.DataDir, m.ID)); errors.Is(err, os.ErrNotExist) {
			if err := n.writeManifestFile(m); err != nil {
				n.log.Warn("snapshot: writing the manifest file", "snapshot", m.ID, "err", err)
			}
		}
	}
	manDir := filepath.Join(n.cfg.DataDir, archive.ManifestsDir)
	files, _ := fs.List(manDir)
	for _, f := range files {
		id, ok := strings.CutSuffix(f, ".json")
		if !ok || listed[id] {
			continue
		}
		// Committed once (its file exists), dropped since.
		_ = n.releaseSnapshot(id)
		_ = fs.Remove(filepath.Join(manDir, f))
	}
	// Checkpoints of takes that never committed (the take failed on
	// another node, or its leader died mid-way): no manifest lists them
	// once Config.SnapshotOrphanAge has passed (a take lasts seconds; a committed one
	// is listed here within the log's lag).
	ckDir := filepath.Join(n.cfg.DataDir, archive.CheckpointsDir)
	dirs, _ := fs.List(ckDir)
	for _, d := range dirs {
		if listed[d] {
			continue
		}
		if info, err := fs.Stat(filepath.Join(ckDir, d)); err == nil && info.IsDir() && time.Since(info.ModTime()) > n.cfg.SnapshotOrphanAge {
			n.log.Warn("snapshot: releasing the checkpoint of a take that never committed", "snapshot", d)
			_ = n.releaseSnapshot(d)
		}
	}
}

// writeEpochFile records the last placement epoch this node applied
// (archive.EpochFile), when it changed.
func (n *Node) writeEpochFile(epoch uint64) {
	path := filepath.Join(n.cfg.DataDir, archive.EpochFile)
	want := fmt.Sprint(epoch)
	if f, err := n.fs().Open(path); err == nil {
		b, err := io.ReadAll(io.LimitReader(f, 64))
		f.Close()
		if err == nil && string(b) == want {
			return
		}
	}
	_ = archive.WriteFileAtomic(n.fs(), path, []byte(want))
}

// ---- admin API ----

// snapshotSummary is one row of GET /v1/snapshots.
type snapshotSummary struct {
	ID       string                        `json:"id"`
	Created  time.Time                     `json:"created"`
	Epoch    uint64                        `json:"epoch"`
	Bytes    int64                         `json:"bytes"`
	Files    int                           `json:"files"`
	Parts    []partSummary                 `json:"parts"`
	Manifest *coordinator.SnapshotManifest `json:"manifest,omitempty"`
}

type partSummary struct {
	Node    string `json:"node"`
	Buckets int    `json:"buckets"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
}

func summarize(m coordinator.SnapshotManifest) snapshotSummary {
	s := snapshotSummary{ID: m.ID, Created: time.UnixMilli(m.CreatedMs).UTC(), Epoch: m.Epoch, Bytes: m.Bytes()}
	for _, p := range m.Parts {
		b := 0
		for _, r := range p.Ranges {
			b += int(r.To) - int(r.From) + 1
		}
		s.Files += len(p.Files)
		s.Parts = append(s.Parts, partSummary{Node: p.Node, Buckets: b, Files: len(p.Files), Bytes: p.Bytes()})
	}
	return s
}

// registerSnapshotAdmin adds the global snapshot endpoints:
//
//	POST /v1/snapshots                      take one (on the leader); {"id": ID, ...}
//	GET  /v1/snapshots                      the committed ones, oldest first
//	GET  /v1/snapshots/{id}                 one, with its manifest
//	GET  /v1/snapshots/{id}/files/{name...} a file of this node's part
//
// Failures answer {"error": "..."} naming the node: 409 for a snapshot
// refused or failed, 404 for an unknown ID.
func (n *Node) registerSnapshotAdmin() {
	n.admin.Handle("POST /v1/snapshots", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), snapTakeTimeout)
		defer cancel()
		start := time.Now()
		res, err := n.leaderDo(ctx, leaderOp{Op: opSnapshot}, nil)
		if err != nil {
			n.log.Warn("snapshot failed", "err", err)
			status := adminStatus(err)
			if errors.Is(err, ErrSnapshot) {
				status = http.StatusConflict
			}
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		out := map[string]any{"id": res.Snapshot, "epoch": res.Epoch, "took_ms": time.Since(start).Milliseconds()}
		// The leader committed it; this node may apply it a moment later.
		for range 100 {
			if m, ok := n.coord.Current().Snapshot(res.Snapshot); ok {
				out["snapshot"] = summarize(m)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		writeJSON(w, http.StatusOK, out)
	}))
	n.admin.Handle("GET /v1/snapshots", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := []snapshotSummary{}
		for _, m := range n.coord.Current().Snapshots() {
			out = append(out, summarize(m))
		}
		writeJSON(w, http.StatusOK, out)
	}))
	n.admin.Handle("GET /v1/snapshots/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := n.coord.Current().Snapshot(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no snapshot " + r.PathValue("id")})
			return
		}
		s := summarize(m)
		s.Manifest = &m
		writeJSON(w, http.StatusOK, s)
	}))
	n.admin.Handle("GET /v1/snapshots/{id}/files/{name...}", http.HandlerFunc(n.serveSnapshotFile))
}

// snapshotManifestWait bounds how long a file request waits for this node
// to apply the snapshot's manifest.
const snapshotManifestWait = 5 * time.Second

// serveSnapshotFile streams a file of this node's part, checking it
// against the manifest as it goes: on a mismatch the response is cut off,
// so the client never takes a corrupt file for a good one.
func (n *Node) serveSnapshotFile(w http.ResponseWriter, r *http.Request) {
	id, name := r.PathValue("id"), r.PathValue("name")
	// The exporter read the manifest from another node, maybe the leader
	// right after the take: this node may not have applied it yet. Wait a
	// little (bounded) rather than deny a part it has.
	ctx, cancel := context.WithTimeout(r.Context(), snapshotManifestWait)
	defer cancel()
	m, ok := n.coord.Current().Snapshot(id)
	for !ok {
		s, ch := n.coord.Watch()
		if m, ok = s.Snapshot(id); ok {
			break
		}
		select {
		case <-ch:
			continue
		case <-ctx.Done():
		}
		break
	}
	p, okp := m.Part(n.cfg.ID)
	if !ok || !okp {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("node %s has no part of snapshot %s", n.cfg.ID, id)})
		return
	}
	i := slices.IndexFunc(p.Files, func(f coordinator.SnapshotFile) bool { return f.Name == name })
	if i < 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("snapshot %s part %s has no file %q", id, n.cfg.ID, name)})
		return
	}
	want := p.Files[i]
	f, err := n.fs().Open(filepath.Join(n.snapshotDir(id), filepath.FromSlash(want.Name)))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": fmt.Sprintf("node %s: %v", n.cfg.ID, err)})
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(want.Bytes))
	h := sha256.New()
	copied, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(f, want.Bytes+1))
	if err != nil || copied != want.Bytes || hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
		n.log.Error("snapshot file does not match its manifest", "snapshot", id, "file", want.Name, "bytes", copied, "err", err)
		panic(http.ErrAbortHandler)
	}
}
