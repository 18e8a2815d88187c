package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/transport"
	"github.com/dbx-kv/dbx/twophase"
)

// Global snapshots (docs/design.md, "Global snapshots").
//
// The leader takes one in these steps, all bounded in time:
//
//  1. pause: every member that may coordinate or take part in a
//     transaction (not left, not failed without buckets) holds new commit
//     decisions (MsgDecide COMMITTED from its 2PC coordinator) and new
//     Prepares; single-key writes and one-node transactions go on. The
//     pause is a lease: a node resumes by itself, sending what it held,
//     after snapPauseLeaseMax if the leader goes quiet.
//  2. drain: the leader waits until no transaction whose commit decision
//     was already sent still holds keys on any node — each such
//     transaction is then applied everywhere, and every transaction still
//     holding keys has no COMMITTED record anywhere (its decision is held),
//     so no cross-node transaction is half inside the snapshot.
//  3. checkpoint: every node that owns buckets checks it routes with the
//     snapshot's placement epoch and checkpoints its engine (hard links,
//     the transaction records bucket included) into DataDir/snapshots/<id>.
//  4. resume; then each node describes its part (files, sizes, SHA-256),
//     the leader commits the manifest (coordinator.AddSnapshot) — the only
//     thing that lists a snapshot — and applies the retention.
//
// Any failure releases the checkpoints made and names the node.
const (
	methodSnapPause    = "snap.pause"
	methodSnapDrain    = "snap.drain"
	methodSnapResume   = "snap.resume"
	methodSnapCkpt     = "snap.checkpoint"
	methodSnapDescribe = "snap.describe"
	methodSnapRelease  = "snap.release"

	// snapPauseLeaseMax is how long a node holds decisions for a snapshot
	// without hearing the resume.
	snapPauseLeaseMax = 15 * time.Second
	// snapDrainMax bounds the wait for decided transactions to apply.
	snapDrainMax = 5 * time.Second
	// snapStepTimeout bounds one RPC of a snapshot step.
	snapStepTimeout = 10 * time.Second
	// snapTakeTimeout bounds a whole take (describing hashes every file).
	snapTakeTimeout = 10 * time.Minute
	// snapDecidedKeep is how long a sent commit decision is remembered for
	// the drain: a transaction whose decision went out longer ago and that
	// still holds keys is taken as stuck, not in flight.
	snapDecidedKeep = time.Minute
	// snapDecidedMax bounds the decisions remembered per generation.
	snapDecidedMax = 1 << 20
)

// ErrSnapshot reports a global snapshot that failed; nothing was listed.
var ErrSnapshot = errors.New("node: snapshot failed")

func init() { transport.RegisterError("node.snapshot", ErrSnapshot) }

// ---- the gate (participant and coordinator side, one per node) ----

// snapGate holds commit decisions and Prepares during a snapshot's pause.
// Its methods are safe for concurrent use; it does no I/O.
type snapGate struct {
	mu      sync.Mutex
	token   string // the paused snapshot, "" when not paused
	until   time.Time
	resumed chan struct{} // closed when the pause ends
	held    []twophase.Message
	// decided remembers the transactions whose commit decision was sent
	// (two generations, rotated every snapDecidedKeep).
	decided, decidedOld map[twophase.TxID]bool
	rotated             time.Time
	expire              *time.Timer
	// onExpire ends a pause whose lease ran out (set before the first
	// pause: txns.resumeDecisions).
	onExpire func(token string)
}

// holdDecide keeps m (a MsgDecide COMMITTED) while paused and reports
// whether it did; otherwise it records the decision as sent.
func (g *snapGate) holdDecide(m twophase.Message) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pausedLocked() {
		g.held = append(g.held, m)
		return true
	}
	now := time.Now()
	if g.decided == nil || now.Sub(g.rotated) > snapDecidedKeep || len(g.decided) >= snapDecidedMax {
		g.decidedOld, g.decided, g.rotated = g.decided, map[twophase.TxID]bool{}, now
	}
	g.decided[m.Txn] = true
	return false
}

func (g *snapGate) pausedLocked() bool { return g.token != "" && time.Now().Before(g.until) }

// enterPrepare waits while paused, until ctx ends (false).
func (g *snapGate) enterPrepare(ctx context.Context) bool {
	for range 1000 {
		g.mu.Lock()
		if !g.pausedLocked() {
			g.mu.Unlock()
			return true
		}
		ch, wait := g.resumed, time.Until(g.until)
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

// pause starts (or extends) a pause for token. Prepares already past the
// gate need no wait: a transaction they prepare cannot commit during the
// pause, since its commit decision is held like every other.
func (g *snapGate) pause(token string, lease time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pausedLocked() && g.token != token {
		return fmt.Errorf("%w: paused for snapshot %s already", ErrSnapshot, g.token)
	}
	if g.token != token {
		if g.token != "" { // a lapsed pause: let its waiters go
			close(g.resumed)
		}
		g.resumed = make(chan struct{})
	}
	g.token, g.until = token, time.Now().Add(lease)
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
	return g.token == token && g.pausedLocked()
}

// resume ends the pause of token and returns the decisions it held and
// whether the pause was still in force (not run out) until now.
func (g *snapGate) resume(token string) (held []twophase.Message, wasActive bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	wasActive = g.token == token && g.pausedLocked()
	if g.token == "" {
		return nil, false
	}
	if g.token == token || !g.pausedLocked() {
		held, g.held = g.held, nil
		g.token = ""
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
	var out []twophase.TxID
	for _, id := range ids {
		if g.decided[id] || g.decidedOld[id] {
			out = append(out, id)
		}
	}
	return out
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

// ---- RPCs between the leader and every node ----

type (
	snapReq struct {
		ID    string
		Epoch uint64
		Txns  []twophase.TxID // snap.drain: which of these did you decide?
	}
	snapDrainResp struct {
		Held    []twophase.TxID
		Decided []twophase.TxID
	}
	snapResumeResp struct{ WasActive bool }
	snapPartResp   struct{ Part coordinator.SnapshotPart }
)

func (n *Node) snapshotDir(id string) string { return filepath.Join(n.cfg.DataDir, "snapshots", id) }

// SnapshotManifestPath is where a node keeps the JSON of a committed
// manifest (written when it applies the manifest; the leader's copy is
// written before the take returns).
func SnapshotManifestPath(dataDir, id string) string {
	return filepath.Join(dataDir, "snapshot-manifests", id+".json")
}

func (n *Node) registerSnapshots(r *transport.Router) {
	n.txns.gate.onExpire = func(token string) { n.txns.resumeDecisions(token) }
	transport.Register(r, methodSnapPause, func(_ context.Context, req *snapReq) (*emptyResp, error) {
		if !coordinator.ValidSnapshotID(req.ID) {
			return nil, fmt.Errorf("%w: snapshot ID %q", coordinator.ErrBadCommand, req.ID)
		}
		return &emptyResp{}, n.txns.gate.pause(req.ID, snapPauseLeaseMax)
	})
	transport.Register(r, methodSnapDrain, func(_ context.Context, req *snapReq) (*snapDrainResp, error) {
		return &snapDrainResp{Held: n.txns.heldTxns(), Decided: n.txns.gate.sentDecisions(req.Txns)}, nil
	})
	transport.Register(r, methodSnapResume, func(_ context.Context, req *snapReq) (*snapResumeResp, error) {
		return &snapResumeResp{WasActive: n.txns.resumeDecisions(req.ID)}, nil
	})
	transport.Register(r, methodSnapCkpt, func(ctx context.Context, req *snapReq) (*emptyResp, error) {
		return &emptyResp{}, n.checkpointSnapshot(ctx, req.ID, req.Epoch)
	})
	transport.Register(r, methodSnapDescribe, func(ctx context.Context, req *snapReq) (*snapPartResp, error) {
		p, err := n.describeSnapshot(ctx, req.ID)
		return &snapPartResp{Part: p}, err
	})
	transport.Register(r, methodSnapRelease, func(_ context.Context, req *snapReq) (*emptyResp, error) {
		return &emptyResp{}, n.releaseSnapshot(req.ID)
	})
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
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if _, err := n.store.Checkpoint(ctx, dir); err != nil {
		return fmt.Errorf("%w: node %s: %w", ErrSnapshot, n.cfg.ID, err)
	}
	return nil
}

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
		size, sum, err := fileSHA256(filepath.Join(dir, name))
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
	return os.RemoveAll(dir)
}

func fileSHA256(path string) (int64, string, error) {
	f, err := os.Open(path)
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

// ---- the leader's side ----

// engineCheckpoint is the engine's record of a checkpoint.
type engineCheckpoint = engine.CheckpointInfo

// takeSnapshot runs a global snapshot (on the leader) and returns its ID.
func (n *Node) takeSnapshot(ctx context.Context) (string, error) {
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
	t := s.Table()
	switch {
	case t == nil:
		return "", fmt.Errorf("%w: no placement yet", ErrSnapshot)
	case s.Target() != nil || len(s.Moves()) > 0:
		return "", fmt.Errorf("%w: a migration is in progress (buckets would be in two parts or none); retry when it is done", ErrSnapshot)
	}
	id := time.Now().UTC().Format("20060102T150405.000Z")
	if _, dup := s.Snapshot(id); dup {
		return "", fmt.Errorf("%w: snapshot %s exists", ErrSnapshot, id)
	}
	type target struct{ id, addr string }
	var targets []target
	for _, nid := range t.Nodes() {
		if t.Count(nid) == 0 {
			continue
		}
		m, ok := s.Member(nid)
		if !ok || m.RPCAddr == "" {
			return "", fmt.Errorf("%w: node %s owns buckets but has no address", ErrSnapshot, nid)
		}
		targets = append(targets, target{nid, m.RPCAddr})
	}
	// Every node that may coordinate a transaction pauses too, owner or
	// not; a failed one that owns nothing is skipped (it is down, or cut
	// off from the nodes its decisions would go to).
	gated := slices.Clone(targets)
	for _, m := range s.Members() {
		if t.Count(m.ID) > 0 || m.State == coordinator.StateLeft || m.State == coordinator.StateFailed {
			continue
		}
		if m.RPCAddr == "" {
			return "", fmt.Errorf("%w: node %s has no address", ErrSnapshot, m.ID)
		}
		gated = append(gated, target{m.ID, m.RPCAddr})
	}
	req := &snapReq{ID: id, Epoch: t.Epoch()}
	call := func(tg target, method string, timeout time.Duration, f func(context.Context) error) error {
		cctx, ccancel := context.WithTimeout(ctx, timeout)
		defer ccancel()
		if err := f(cctx); err != nil {
			return fmt.Errorf("%w: %s: node %s: %v", ErrSnapshot, method, tg.id, err)
		}
		return nil
	}
	// each runs f on every target at once and returns the first error.
	each := func(on []target, method string, timeout time.Duration, f func(context.Context, int, target) error) error {
		errs := make([]error, len(on))
		var wg sync.WaitGroup
		for i, tg := range on {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = call(tg, method, timeout, func(c context.Context) error { return f(c, i, tg) })
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	rpcTo := func(method string) func(context.Context, int, target) error {
		return func(c context.Context, _ int, tg target) error {
			if tg.id == n.cfg.ID {
				_, err := n.localSnapRPC(c, method, req)
				return err
			}
			_, err := transport.Call[snapReq, emptyResp](c, n.rpc, tg.addr, method, req)
			return err
		}
	}
	release := func() {
		for _, tg := range targets {
			rctx, rcancel := context.WithTimeout(n.life, snapStepTimeout)
			var err error
			if tg.id == n.cfg.ID {
				err = n.releaseSnapshot(id)
			} else {
				_, err = transport.Call[snapReq, emptyResp](rctx, n.rpc, tg.addr, methodSnapRelease, req)
			}
			rcancel()
			if err != nil {
				n.log.Warn("snapshot: releasing a checkpoint", "snapshot", id, "target", tg.id, "err", err)
			}
		}
	}
	resumed := false
	resume := func() error {
		if resumed {
			return nil
		}
		resumed = true
		var lapsed []string
		var mu sync.Mutex
		err := each(gated, methodSnapResume, snapStepTimeout, func(c context.Context, _ int, tg target) error {
			var r *snapResumeResp
			var err error
			if tg.id == n.cfg.ID {
				r = &snapResumeResp{WasActive: n.txns.resumeDecisions(id)}
			} else {
				r, err = transport.Call[snapReq, snapResumeResp](c, n.rpc, tg.addr, methodSnapResume, req)
			}
			if err == nil && !r.WasActive {
				mu.Lock()
				lapsed = append(lapsed, tg.id)
				mu.Unlock()
			}
			return err
		})
		if err == nil && len(lapsed) > 0 {
			err = fmt.Errorf("%w: the pause ran out on %s before the checkpoints were done", ErrSnapshot, strings.Join(lapsed, ", "))
		}
		return err
	}
	defer func() { _ = resume() }()

	if err := each(gated, methodSnapPause, snapStepTimeout, rpcTo(methodSnapPause)); err != nil {
		return "", err
	}
	paused := time.Now()
	addrs := make(map[string]string, len(gated))
	for _, tg := range gated {
		addrs[tg.id] = tg.addr
	}
	if err := n.drainDecisions(ctx, req, addrs); err != nil {
		return "", err
	}
	ckErr := each(targets, methodSnapCkpt, snapStepTimeout, rpcTo(methodSnapCkpt))
	if err := resume(); err != nil || ckErr != nil {
		release()
		return "", errors.Join(ckErr, err)
	}
	pauseDur := time.Since(paused)
	parts := make([]coordinator.SnapshotPart, len(targets))
	if err := each(targets, methodSnapDescribe, snapTakeTimeout, func(c context.Context, i int, tg target) error {
		if tg.id == n.cfg.ID {
			p, err := n.describeSnapshot(c, id)
			parts[i] = p
			return err
		}
		r, err := transport.Call[snapReq, snapPartResp](c, n.rpc, tg.addr, methodSnapDescribe, req)
		if err == nil {
			parts[i] = r.Part
		}
		return err
	}); err != nil {
		release()
		return "", err
	}
	// Ranges come from the table the snapshot was taken under (every node
	// checked it routed with that epoch while paused).
	for i := range parts {
		parts[i].Ranges = coordinator.Ranges(t.BucketsOf(parts[i].Node))
	}
	man := coordinator.SnapshotManifest{ID: id, Buckets: router.NumBuckets, Epoch: t.Epoch(), CreatedMs: start.UnixMilli(), Parts: parts}
	n.failpoint("snap-leader-before-commit")
	if _, err := n.coord.Apply(ctx, coordinator.AddSnapshot{Manifest: man}); err != nil {
		if !errors.Is(err, coordinator.ErrUnknownOutcome) {
			release()
		}
		return "", fmt.Errorf("%w: committing the manifest: %v", ErrSnapshot, err)
	}
	if err := writeManifestFile(n.cfg.DataDir, man); err != nil {
		n.log.Warn("snapshot: writing the manifest file", "snapshot", id, "err", err)
	}
	n.log.Info("snapshot taken", "snapshot", id, "nodes", len(parts), "bytes", man.Bytes(), "pause", pauseDur, "took", time.Since(start))
	n.applyRetention(ctx)
	return id, nil
}

// localSnapRPC runs a snapshot step on this node without the transport.
func (n *Node) localSnapRPC(ctx context.Context, method string, req *snapReq) (any, error) {
	switch method {
	case methodSnapPause:
		return nil, n.txns.gate.pause(req.ID, snapPauseLeaseMax)
	case methodSnapCkpt:
		return nil, n.checkpointSnapshot(ctx, req.ID, req.Epoch)
	case methodSnapDrain:
		return &snapDrainResp{Held: n.txns.heldTxns(), Decided: n.txns.gate.sentDecisions(req.Txns)}, nil
	}
	return nil, fmt.Errorf("%w: %s", coordinator.ErrBadCommand, method)
}

// drainDecisions waits until no transaction holding keys on any node had
// its commit decision sent (before the pause): those are applied
// everywhere then.
func (n *Node) drainDecisions(ctx context.Context, req *snapReq, nodes map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, snapDrainMax)
	defer cancel()
	ask := func(id, addr string, r *snapReq) (*snapDrainResp, error) {
		if id == n.cfg.ID {
			v, err := n.localSnapRPC(ctx, methodSnapDrain, r)
			if err != nil {
				return nil, err
			}
			return v.(*snapDrainResp), nil
		}
		return transport.Call[snapReq, snapDrainResp](ctx, n.rpc, addr, methodSnapDrain, r)
	}
	ids := slices.Sorted(maps.Keys(nodes))
	var last []twophase.TxID
	for range 1000 {
		var held []twophase.TxID
		for _, id := range ids {
			r, err := ask(id, nodes[id], req)
			if err != nil {
				return fmt.Errorf("%w: drain: node %s: %v", ErrSnapshot, id, err)
			}
			held = append(held, r.Held...)
		}
		if len(held) == 0 {
			return nil
		}
		var decided []twophase.TxID
		q := *req
		q.Txns = held
		for _, id := range ids {
			r, err := ask(id, nodes[id], &q)
			if err != nil {
				return fmt.Errorf("%w: drain: node %s: %v", ErrSnapshot, id, err)
			}
			decided = append(decided, r.Decided...)
		}
		if len(decided) == 0 {
			return nil
		}
		last = decided
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %d decided transactions (first %s) still not applied after %s", ErrSnapshot, len(last), last[0], snapDrainMax)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: decided transactions still not applied", ErrSnapshot)
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
		_ = os.Remove(SnapshotManifestPath(n.cfg.DataDir, id))
	}
	n.log.Info("snapshot retention applied", "dropped", drop, "keep", n.cfg.SnapshotRetention)
}

func (n *Node) releaseOn(ctx context.Context, nodeID, id string) {
	var err error
	if nodeID == n.cfg.ID {
		err = n.releaseSnapshot(id)
	} else if m, ok := n.peer(nodeID); ok && m.RPCAddr != "" {
		rctx, cancel := context.WithTimeout(ctx, snapStepTimeout)
		_, err = transport.Call[snapReq, emptyResp](rctx, n.rpc, m.RPCAddr, methodSnapRelease, &snapReq{ID: id})
		cancel()
	} else {
		err = fmt.Errorf("no address")
	}
	if err != nil {
		// The node releases it when it next sees the manifest gone.
		n.log.Warn("snapshot: release deferred", "snapshot", id, "target", nodeID, "err", err)
	}
}

func writeManifestFile(dataDir string, m coordinator.SnapshotManifest) error {
	path := SnapshotManifestPath(dataDir, m.ID)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
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
	if t := s.Table(); t != nil {
		writeEpochFile(n.cfg.DataDir, t.Epoch())
	}
	listed := map[string]bool{}
	for _, m := range s.Snapshots() {
		listed[m.ID] = true
		if _, ok := m.Part(n.cfg.ID); !ok {
			continue
		}
		if _, err := os.Stat(SnapshotManifestPath(n.cfg.DataDir, m.ID)); errors.Is(err, os.ErrNotExist) {
			if err := writeManifestFile(n.cfg.DataDir, m); err != nil {
				n.log.Warn("snapshot: writing the manifest file", "snapshot", m.ID, "err", err)
			}
		}
	}
	files, _ := os.ReadDir(filepath.Join(n.cfg.DataDir, "snapshot-manifests"))
	for _, f := range files {
		id, ok := strings.CutSuffix(f.Name(), ".json")
		if !ok || listed[id] {
			continue
		}
		// Committed once (its file exists), dropped since.
		_ = n.releaseSnapshot(id)
		_ = os.Remove(filepath.Join(n.cfg.DataDir, "snapshot-manifests", f.Name()))
	}
	// Checkpoints of takes that never committed (the take failed on
	// another node, or its leader died mid-way): no manifest lists them
	// once Config.SnapshotOrphanAge has passed (a take lasts seconds; a committed one
	// is listed here within the log's lag).
	dirs, _ := os.ReadDir(filepath.Join(n.cfg.DataDir, "snapshots"))
	for _, d := range dirs {
		if !d.IsDir() || listed[d.Name()] {
			continue
		}
		if info, err := d.Info(); err == nil && time.Since(info.ModTime()) > n.cfg.SnapshotOrphanAge {
			n.log.Warn("snapshot: releasing the checkpoint of a take that never committed", "snapshot", d.Name())
			_ = n.releaseSnapshot(d.Name())
		}
	}
}

// placementEpochFile records the last placement epoch this node applied,
// for restore's check (the Raft state cannot be read offline cheaply).
const placementEpochFile = "PLACEMENT_EPOCH"

func writeEpochFile(dataDir string, epoch uint64) {
	path := filepath.Join(dataDir, placementEpochFile)
	want := fmt.Sprint(epoch)
	if b, err := os.ReadFile(path); err == nil && string(b) == want {
		return
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, []byte(want), 0o644) == nil {
		_ = os.Rename(tmp, path)
	}
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
	f, err := os.Open(filepath.Join(n.snapshotDir(id), filepath.FromSlash(want.Name)))
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
