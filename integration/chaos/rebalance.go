package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rebalance nemeses: membership and weight changes (online bucket moves)
// under the workloads, and SIGKILL of the source or the target of a move in
// progress. Each leaves the cluster as it found it (the same nodes, active,
// weight 1, the same move limits), so the other nemeses and later rounds
// see 5 nodes:
//
//   - join: a 6th node joins; healing drains it again (it leaves Raft and
//     gossip; its container and data dir are removed).
//   - reweight: a non-leader node goes to weight 2; healing sets 1 again.
//   - drain: a non-leader node is drained until it has left; healing brings
//     it back as a fresh member (same ID and IP, new container and empty
//     data dir, joining again).
//   - kill-migration-target / kill-migration-source: the moves are throttled
//     (one at a time, migThrottleRate bytes/s per move) and a non-leader
//     node is reweighted to 2 (it is then the target of every move) or to
//     0.5 (the source of every move); once /v1/cluster has shown one move
//     in progress for killAfterMove the node is SIGKILLed. Healing restores the limits, restarts
//     the node on its volume, waits for the migration to finish, sets weight
//     1 again and waits for that migration too.
//
// Every wait for a migration is bounded by migrationTimeout; a migration
// that does not finish fails the run, naming what it waited for. The
// times to complete are in the fault's note.

const (
	// migrationTimeout bounds every wait for a migration to finish.
	migrationTimeout = 90 * time.Second
	// rebalanceHold is how long the changed placement stays before the
	// heal: the fault is the migration itself, which runs during Inject.
	rebalanceHold = 3 * time.Second
	// killMigrationHold is how long the killed source or target stays down.
	killMigrationHold = 5 * time.Second
	// rebalanceHealTimeout bounds a rebalance nemesis's heal (restart,
	// migrations back).
	rebalanceHealTimeout = 4 * time.Minute
	// Filler data (keys fill:<i>, no workload reads them) makes a move of
	// 256 buckets (1/64 of the 16384) carry ~4 MiB/64 = 64 KiB; at
	// migThrottleRate that is ~4 s of copying, long enough to be caught in
	// progress.
	fillKeys        = 4096
	fillValueBytes  = 1024
	migThrottleRate = 16 << 10
	// killAfterMove is how long one move must have been in progress when
	// its source or target is killed.
	killAfterMove = time.Second
)

// RebalanceNemeses returns the membership-change nemeses (part of Nemeses
// and of the default list unless -chaos.rebalance=false). Each loads the filler
// data before the workloads start (once per run), so every move carries
// data.
//
// In one of their first runs (seed 89082) the node killed as a migration
// target could not start again ("inconsistent persisted records: key
// acct1 held by both ..."): a slow Prepared record write landed after the
// same transaction's abort. Fixed in node/txn.go (record writes of one
// transaction are ordered); they have been in the default list since.
func RebalanceNemeses() []Nemesis {
	fill := func(ctx context.Context, c *Cluster) error { return c.fillData(ctx, c.Nodes[0]) }
	return []Nemesis{
		{Name: "join", Prepare: fill, Inject: joinNode, Hold: rebalanceHold, HealTimeout: rebalanceHealTimeout},
		{Name: "reweight", Prepare: fill, Inject: reweight, Hold: rebalanceHold, HealTimeout: rebalanceHealTimeout},
		{Name: "drain", Prepare: fill, Inject: drain, Hold: rebalanceHold, HealTimeout: rebalanceHealTimeout},
		{Name: "kill-migration-target", Prepare: fill, Inject: func(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
			return killMigration(ctx, c, rnd, true)
		}, Hold: killMigrationHold, HealTimeout: rebalanceHealTimeout},
		{Name: "kill-migration-source", Prepare: fill, Inject: func(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
			return killMigration(ctx, c, rnd, false)
		}, Hold: killMigrationHold, HealTimeout: rebalanceHealTimeout},
	}
}

// adminClient carries admin operations (the node forwards them to the
// leader, bounded there by 10 s).
var adminClient = &http.Client{Timeout: 15 * time.Second}

// errAdminRefused marks an answer that retrying will not change.
var errAdminRefused = errors.New("refused")

// post sends an admin operation through n.
func (c *Cluster) post(ctx context.Context, n *Node, path string, body any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.httpAddr()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s via %s: %w", path, n.ID, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("%w: POST %s via %s: %s %s", errAdminRefused, path, n.ID, resp.Status, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("POST %s via %s: %s %s", path, n.ID, resp.Status, strings.TrimSpace(string(msg)))
}

// adminOnce sends an admin operation through the first of via that takes
// it, retrying for up to 30 s (no leader, a node down); a refusal (400,
// 404, 409) is returned at once.
func (c *Cluster) adminOnce(ctx context.Context, via []*Node, path string, body any) error {
	var refused error
	i := 0
	err := waitUntil(ctx, 30*time.Second, func() error {
		n := via[i%len(via)]
		i++
		err := c.post(ctx, n, path, body)
		if errors.Is(err, errAdminRefused) {
			refused = err
			return nil
		}
		return err
	})
	return errors.Join(err, refused)
}

func (c *Cluster) setWeight(ctx context.Context, via []*Node, id string, w float64) error {
	return c.adminOnce(ctx, via, "/v1/nodes/"+id+"/weight", map[string]float64{"weight": w})
}

type moveLimits struct {
	Concurrency int   `json:"concurrency"`
	BytesPerSec int64 `json:"bytes_per_sec"`
}

func (c *Cluster) setLimits(ctx context.Context, via []*Node, l moveLimits) error {
	return c.adminOnce(ctx, via, "/v1/migration/limits", l)
}

// infoVia reads /v1/cluster from the first of via that answers.
func (c *Cluster) infoVia(ctx context.Context, via []*Node) (ClusterInfo, error) {
	var errs []error
	for _, n := range via {
		ci, err := c.Info(ctx, n)
		if err == nil {
			return ci, nil
		}
		errs = append(errs, err)
	}
	return ClusterInfo{}, errors.Join(errs...)
}

// member returns id's row in ci.
func (ci ClusterInfo) member(id string) (state string, weight float64, buckets int, ok bool) {
	for _, m := range ci.Nodes {
		if m.ID == id {
			return m.State, m.Weight, m.Buckets, true
		}
	}
	return "", 0, 0, false
}

func (ci ClusterInfo) migrationString() string {
	m := ci.Migration
	return fmt.Sprintf("migration active %v: %d pending, %d moving, %d of %d done, epoch %d", m.Active, m.Pending, m.Moving, m.Done, m.Total, ci.Epoch)
}

// waitMigration polls /v1/cluster (through via) until the migration has
// finished (not active, nothing pending or moving), the epoch is past
// afterEpoch and cond holds, for at most migrationTimeout. It returns how
// long that took and the last view.
func (c *Cluster) waitMigration(ctx context.Context, via []*Node, what string, afterEpoch uint64, cond func(ClusterInfo) error) (time.Duration, ClusterInfo, error) {
	start := time.Now()
	var ci ClusterInfo
	err := waitUntil(ctx, migrationTimeout, func() error {
		var err error
		if ci, err = c.infoVia(ctx, via); err != nil {
			return err
		}
		m := ci.Migration
		if m.Active || m.Pending > 0 || m.Moving > 0 {
			return errors.New(ci.migrationString())
		}
		if ci.Epoch <= afterEpoch {
			return fmt.Errorf("epoch still %d: no placement change yet", ci.Epoch)
		}
		if cond != nil {
			return cond(ci)
		}
		return nil
	})
	took := time.Since(start)
	if err != nil {
		return took, ci, fmt.Errorf("%s: migration not finished within %s: %w", what, migrationTimeout, err)
	}
	c.logf("%s: migration finished in %s (%s)", what, took.Round(10*time.Millisecond), ci.migrationString())
	return took, ci, nil
}

// nonLeader picks a random node that is not the Raft leader; it returns
// the leader too.
func nonLeader(ctx context.Context, c *Cluster, rnd *rand.Rand) (v, leader *Node, err error) {
	leader, err = c.Leader(ctx)
	if err != nil {
		return nil, nil, err
	}
	return pick(rnd, c.others(leader), 1)[0], leader, nil
}

// freshVolume gives n a new, empty data volume (the old one is removed
// once its container is gone).
func (c *Cluster) freshVolume(ctx context.Context, n *Node) error {
	old := n.Volume
	n.gen++
	n.Volume = fmt.Sprintf("%s-%s-data-%d", c.cfg.Run, n.ID, n.gen)
	if _, err := c.d.run(ctx, "volume", "create", "--label", LabelKey+"="+c.cfg.Run, n.Volume); err != nil {
		return err
	}
	if old != "" {
		c.wiped = append(c.wiped, n.ID)
		_, _ = c.d.run(ctx, "volume", "rm", "-f", old)
	}
	return nil
}

// remove saves n's log and removes its container.
func (c *Cluster) remove(ctx context.Context, n *Node) error {
	c.saveLog(ctx, n)
	_, err := c.d.run(ctx, "rm", "-f", n.Container)
	return err
}

// startJoining starts n (its container must not exist) on a fresh data
// volume, joining the other nodes, and waits until it answers /healthz.
func (c *Cluster) startJoining(ctx context.Context, n *Node, weight float64) error {
	if err := c.freshVolume(ctx, n); err != nil {
		return err
	}
	if err := c.runNode(ctx, n, c.others(n), "--weight", strconv.FormatFloat(weight, 'g', -1, 64)); err != nil {
		return err
	}
	return waitUntil(ctx, 45*time.Second, func() error {
		if st, _ := c.state(ctx, n); st != "running" {
			return fmt.Errorf("container %s\n%s", st, c.tail(ctx, n, 20))
		}
		return healthz(ctx, n)
	})
}

// moveCancelMsg is what the node running a move logs when it cancels it.
const moveCancelMsg = `msg="move failed, cancelling"`

// countLogs counts the lines containing substr that the running nodes
// logged since since (docker logs; 0 where a log cannot be read).
func (c *Cluster) countLogs(ctx context.Context, since time.Time, substr string) int {
	total := 0
	for _, n := range c.Nodes {
		lctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
		out, _ := execIn(lctx, "", c.d.bin, "logs", "--since", since.Format(time.RFC3339Nano), n.Container).CombinedOutput()
		cancel()
		total += bytes.Count(out, []byte(substr))
	}
	return total
}

// fillData writes the filler keys once per run (see fillKeys).
func (c *Cluster) fillData(ctx context.Context, via *Node) error {
	if c.filled {
		return nil
	}
	rdb := newClient(via.respAddr())
	defer rdb.Close()
	value := strings.Repeat("x", fillValueBytes)
	const batch = 64
	start := time.Now()
	for i := 0; i < fillKeys; i += batch {
		if err := waitUntil(ctx, 30*time.Second, func() error {
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := rdb.Pipelined(octx, func(p redis.Pipeliner) error {
				for j := i; j < min(i+batch, fillKeys); j++ {
					p.Set(octx, fmt.Sprintf("fill:%d", j), value, 0)
				}
				return nil
			})
			return err
		}); err != nil {
			return fmt.Errorf("filler data: %w", err)
		}
	}
	c.filled = true
	c.logf("filler data: %d keys of %d bytes written in %s", fillKeys, fillValueBytes, time.Since(start).Round(10*time.Millisecond))
	return nil
}

// joinNode starts a new node that joins with weight 1 and waits until it
// owns its share; healing drains it and removes it.
func joinNode(ctx context.Context, c *Cluster, _ *rand.Rand) (*Fault, error) {
	i := len(c.Nodes)
	base := strings.TrimSuffix(c.Subnet, "0/24")
	n := &Node{ID: fmt.Sprintf("n%d", i+1), Index: i, IP: fmt.Sprintf("%s%d", base, 11+i)}
	n.Container = c.cfg.Run + "-" + n.ID
	old := c.Nodes
	before, err := c.infoVia(ctx, old)
	if err != nil {
		return nil, err
	}
	var joinTook, drainTook time.Duration
	var joinBuckets, migrated int
	f := &Fault{Desc: "join " + n.ID + " (weight 1), drain it at heal"}
	f.Note = func() string {
		return fmt.Sprintf("join: %d buckets moved to %s in %s; drain back: %s", migrated, n.ID, durOrDash(joinTook), durOrDash(drainTook))
	}
	joinTook, drainTook = -1, -1
	c.Nodes = append(c.Nodes, n)
	f.Heal = func(ctx context.Context) error {
		defer func() {
			_ = c.remove(ctx, n)
			c.wiped = append(c.wiped, n.ID)
			_, _ = c.d.run(ctx, "volume", "rm", "-f", n.Volume)
			c.Nodes = old
		}()
		if st, _ := c.state(ctx, n); st != "running" {
			return fmt.Errorf("%s is %q at heal", n.ID, st)
		}
		ci, err := c.infoVia(ctx, old)
		if err != nil {
			return err
		}
		if err := c.adminOnce(ctx, old, "/v1/nodes/"+n.ID+"/drain", nil); err != nil {
			return err
		}
		drainTook, _, err = c.waitMigration(ctx, old, "drain of "+n.ID, ci.Epoch, func(ci ClusterInfo) error {
			if st, _, b, _ := ci.member(n.ID); st != "left" {
				return fmt.Errorf("%s is %s with %d buckets", n.ID, st, b)
			}
			return nil
		})
		return err
	}
	if err := c.startJoining(ctx, n, 1); err != nil {
		return f, fmt.Errorf("start %s: %w", n.ID, err)
	}
	joinTook, _, err = c.waitMigration(ctx, old, "join of "+n.ID, before.Epoch, func(ci ClusterInfo) error {
		st, _, b, ok := ci.member(n.ID)
		if !ok || st != "active" || b == 0 {
			return fmt.Errorf("%s: member %v, %s with %d buckets", n.ID, ok, st, b)
		}
		joinBuckets = b
		return nil
	})
	migrated = joinBuckets
	return f, err
}

// reweight sets a non-leader node's weight to 2 and waits for the moves;
// healing sets 1 again.
func reweight(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
	v, _, err := nonLeader(ctx, c, rnd)
	if err != nil {
		return nil, err
	}
	via := c.others(v)
	before, err := c.infoVia(ctx, via)
	if err != nil {
		return nil, err
	}
	_, _, b0, _ := before.member(v.ID)
	upTook, downTook := time.Duration(-1), time.Duration(-1)
	var b1 int
	f := &Fault{Desc: fmt.Sprintf("weight of %s 1 → 2, back to 1 at heal", v.ID)}
	f.Note = func() string {
		return fmt.Sprintf("%s %d → %d buckets in %s; back in %s", v.ID, b0, b1, durOrDash(upTook), durOrDash(downTook))
	}
	f.Heal = func(ctx context.Context) error {
		var err error
		downTook, err = changeWeight(ctx, c, via, v, 1)
		return err
	}
	if err := c.setWeight(ctx, via, v.ID, 2); err != nil {
		return f, err
	}
	upTook, _, err = c.waitMigration(ctx, via, "reweight of "+v.ID+" to 2", before.Epoch, func(ci ClusterInfo) error {
		_, w, b, _ := ci.member(v.ID)
		if w != 2 || b <= b0 {
			return fmt.Errorf("%s: weight %v, %d buckets (had %d)", v.ID, w, b, b0)
		}
		b1 = b
		return nil
	})
	return f, err
}

// changeWeight sets v's weight to w (if it is not w already) and waits for
// the migration.
func changeWeight(ctx context.Context, c *Cluster, via []*Node, v *Node, w float64) (time.Duration, error) {
	ci, err := c.infoVia(ctx, via)
	if err != nil {
		return -1, err
	}
	_, w0, b0, _ := ci.member(v.ID)
	if w0 == w {
		return 0, nil
	}
	if err := c.setWeight(ctx, via, v.ID, w); err != nil {
		return -1, err
	}
	took, _, err := c.waitMigration(ctx, via, fmt.Sprintf("reweight of %s to %v", v.ID, w), ci.Epoch, func(ci ClusterInfo) error {
		_, w1, b, _ := ci.member(v.ID)
		if w1 != w || (w < w0) != (b < b0) {
			return fmt.Errorf("%s: weight %v, %d buckets (had %d at weight %v)", v.ID, w1, b, b0, w0)
		}
		return nil
	})
	return took, err
}

// drain drains a non-leader node until it has left; healing removes it and
// brings it back as a fresh member (empty data dir, same ID and IP).
func drain(ctx context.Context, c *Cluster, rnd *rand.Rand) (*Fault, error) {
	v, _, err := nonLeader(ctx, c, rnd)
	if err != nil {
		return nil, err
	}
	via := c.others(v)
	before, err := c.infoVia(ctx, via)
	if err != nil {
		return nil, err
	}
	_, _, b0, _ := before.member(v.ID)
	drainTook, joinTook := time.Duration(-1), time.Duration(-1)
	f := &Fault{Desc: fmt.Sprintf("drain %s until left; rejoin it with an empty data dir at heal", v.ID)}
	var b1 int
	f.Note = func() string {
		return fmt.Sprintf("%s drained (%d buckets) in %s; rejoined, %d buckets in %s", v.ID, b0, durOrDash(drainTook), b1, durOrDash(joinTook))
	}
	f.Heal = func(ctx context.Context) error {
		ci, err := c.infoVia(ctx, via)
		if err != nil {
			return err
		}
		if err := c.remove(ctx, v); err != nil {
			return err
		}
		if err := c.startJoining(ctx, v, 1); err != nil {
			return fmt.Errorf("rejoin %s: %w", v.ID, err)
		}
		joinTook, _, err = c.waitMigration(ctx, via, "rejoin of "+v.ID, ci.Epoch, func(ci ClusterInfo) error {
			st, _, b, _ := ci.member(v.ID)
			if st != "active" || b == 0 {
				return fmt.Errorf("%s is %s with %d buckets", v.ID, st, b)
			}
			b1 = b
			return nil
		})
		return err
	}
	if err := c.adminOnce(ctx, via, "/v1/nodes/"+v.ID+"/drain", nil); err != nil {
		return f, err
	}
	drainTook, _, err = c.waitMigration(ctx, via, "drain of "+v.ID, before.Epoch, func(ci ClusterInfo) error {
		if st, _, b, _ := ci.member(v.ID); st != "left" {
			return fmt.Errorf("%s is %s with %d buckets", v.ID, st, b)
		}
		return nil
	})
	return f, err
}

// killMigration throttles the moves, reweights a non-leader node so that it
// is the target (weight 2) or the source (weight 0.5) of every move, and
// SIGKILLs it once a move is in progress. Healing restores the limits,
// restarts it, waits for the migration, and sets weight 1 again.
func killMigration(ctx context.Context, c *Cluster, rnd *rand.Rand, target bool) (*Fault, error) {
	v, leader, err := nonLeader(ctx, c, rnd)
	if err != nil {
		return nil, err
	}
	via := c.others(v)
	if err := c.fillData(ctx, leader); err != nil {
		return nil, err
	}
	before, err := c.infoVia(ctx, via)
	if err != nil {
		return nil, err
	}
	orig := moveLimits{Concurrency: before.Migration.Concurrency, BytesPerSec: before.Migration.BytesPerSec}
	role, w := "source", 0.5
	if target {
		role, w = "target", 2
	}
	_, _, b0, _ := before.member(v.ID)
	f := &Fault{Desc: fmt.Sprintf("weight of %s 1 → %v (%s of every move), moves throttled to 1 × %d KiB/s; SIGKILL %s during a move",
		v.ID, w, role, migThrottleRate>>10, v.ID)}
	killed := false
	var inMove time.Duration
	var atKill ClusterInfo
	finishTook, backTook := time.Duration(-1), time.Duration(-1)
	var b1, cancelled int
	injected := time.Now()
	f.Note = func() string {
		if !killed {
			return "not killed"
		}
		m := atKill.Migration
		return fmt.Sprintf("killed %s after the reweight, one move (%d buckets) in progress for ≥ %s (%d of %d done); %d moves cancelled (node logs); migration finished %s after the restart (%s %d → %d buckets), weight 1 again in %s",
			durOrDash(inMove), m.Moving, killAfterMove, m.Done, m.Total, cancelled, durOrDash(finishTook), v.ID, b0, b1, durOrDash(backTook))
	}
	f.Heal = func(ctx context.Context) error {
		var errs []error
		if err := c.setLimits(ctx, via, orig); err != nil {
			errs = append(errs, fmt.Errorf("restore move limits: %w", err))
		}
		if killed {
			if err := c.Restart(ctx, v); err != nil {
				return errors.Join(append(errs, fmt.Errorf("restart %s: %w", v.ID, err))...)
			}
		}
		var err error
		finishTook, _, err = c.waitMigration(ctx, c.Nodes, fmt.Sprintf("reweight of %s to %v after the kill", v.ID, w), before.Epoch, func(ci ClusterInfo) error {
			st, w1, b, _ := ci.member(v.ID)
			if st != "active" || w1 != w || (target && b <= b0) || (!target && b >= b0) {
				return fmt.Errorf("%s: %s, weight %v, %d buckets (had %d)", v.ID, st, w1, b, b0)
			}
			b1 = b
			return nil
		})
		cancelled = c.countLogs(ctx, injected, moveCancelMsg)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		backTook, err = changeWeight(ctx, c, c.Nodes, v, 1)
		return errors.Join(append(errs, err)...)
	}
	if err := c.setLimits(ctx, via, moveLimits{Concurrency: 1, BytesPerSec: migThrottleRate}); err != nil {
		return f, err
	}
	if err := c.setWeight(ctx, via, v.ID, w); err != nil {
		return f, err
	}
	// Kill once one move has been in progress for killAfterMove (with
	// concurrency 1, the same move: done unchanged), i.e. while the target
	// copies the snapshot, which the throttle stretches to seconds.
	start := time.Now()
	var seen time.Time
	err = waitUntil(ctx, 30*time.Second, func() error {
		ci, err := c.infoVia(ctx, via)
		if err != nil {
			return err
		}
		if ci.Migration.Moving == 0 || (!seen.IsZero() && ci.Migration.Done != atKill.Migration.Done) {
			seen = time.Time{}
			return fmt.Errorf("no move in progress for %s yet (%s)", killAfterMove, ci.migrationString())
		}
		if seen.IsZero() {
			seen, atKill = time.Now(), ci
		}
		if time.Since(seen) < killAfterMove {
			return fmt.Errorf("a move in progress for %s only (%s)", time.Since(seen).Round(time.Millisecond), ci.migrationString())
		}
		atKill = ci
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("waiting for a move in progress: %w", err)
	}
	inMove = time.Since(start)
	if err := c.Kill(ctx, v); err != nil {
		return f, err
	}
	killed = true
	return f, nil
}
