package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Store sizes.
const (
	logCacheEntries = 512 // raft.NewLogCache capacity
	snapshotsKept   = 2   // file snapshots retained
)

// Coordinator runs the metadata state machine on hashicorp/raft: one per
// node. All methods are safe for concurrent use.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	fsm   *FSM
	trans raft.Transport
	bolt  *raftboltdb.BoltStore // nil in memory

	kick chan struct{} // wakes the leader loop; capacity 1

	barrierTerm atomic.Uint64 // term whose Barrier completed on this leader

	lastPlanErr string // leader loop only: last planning error logged

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open starts this node's Raft instance over trans and returns its
// Coordinator. With cfg.Bootstrap and no prior Raft state it bootstraps a
// single-voter cluster of this node; otherwise it recovers from its stores
// (or waits, empty, for a leader to add it: see Join). trans belongs to the
// Coordinator from now on: Close shuts it down if it implements
// raft.WithClose (NetworkTransport does).
func Open(cfg Config, trans raft.Transport) (*Coordinator, error) {
	if trans == nil {
		return nil, fmt.Errorf("%w: nil transport", ErrBadConfig)
	}
	cfg = cfg.withDefaults()
	if cfg.Self.RaftAddr == "" {
		cfg.Self.RaftAddr = string(trans.LocalAddr())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Self.validate(); err != nil {
		return nil, fmt.Errorf("%w: Self: %w", ErrBadConfig, err)
	}

	c := &Coordinator{cfg: cfg, log: cfg.Logger, trans: trans, kick: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.fsm = NewFSM(cfg.Holder, c.wake, cfg.Logger)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.SnapshotThreshold
	rc.Logger = newHCLogger(cfg.Logger)
	rc.NoLegacyTelemetry = true

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("coordinator: open: %w", err)
		}
		b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
		if err != nil {
			return nil, fmt.Errorf("coordinator: open raft.db: %w", err)
		}
		c.bolt = b
		fs, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsKept, rc.Logger)
		if err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("coordinator: open snapshots: %w", err)
		}
		logs, stable, snaps = b, b, fs
	}
	cache, err := raft.NewLogCache(logCacheEntries, logs)
	if err != nil {
		c.closeStores()
		return nil, fmt.Errorf("coordinator: open: %w", err)
	}

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(cache, stable, snaps)
		if err != nil {
			c.closeStores()
			return nil, fmt.Errorf("coordinator: open: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr(),
			}}}
			err := raft.BootstrapCluster(rc, cache, stable, snaps, trans, conf)
			if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				c.closeStores()
				return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
			}
		}
	}

	r, err := raft.NewRaft(rc, c.fsm, cache, stable, snaps, trans)
	if err != nil {
		c.closeStores()
		return nil, fmt.Errorf("coordinator: start raft: %w", err)
	}
	c.raft = r
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.leaderLoop()
	}()
	return c, nil
}

func (c *Coordinator) closeStores() {
	if c.bolt != nil {
		if err := c.bolt.Close(); err != nil {
			c.log.Warn("coordinator: close raft.db", "err", err)
		}
	}
}

// Close shuts Raft down (a leader steps down without handing over: the
// others elect a new one after their heartbeat timeout), stops the leader
// loop, waits for it, and closes the stores. It is idempotent.
func (c *Coordinator) Close() error {
	var err error
	c.once.Do(func() {
		c.cancel()
		err = c.raft.Shutdown().Error()
		c.wg.Wait()
		c.closeStores()
	})
	return err
}

// Current returns the latest state applied on this node. It never blocks;
// on a follower it may lag the leader (use LinearizableRead on the leader
// for a read that reflects every committed command).
func (c *Coordinator) Current() *State { return c.fsm.Current() }

// Watch returns the latest applied state and a channel closed when a newer
// one is applied: s, ch := c.Watch(); use s; <-ch; repeat.
func (c *Coordinator) Watch() (*State, <-chan struct{}) { return c.fsm.Watch() }

// IsLeader reports whether this node believes it is the Raft leader.
func (c *Coordinator) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the current leader's ID and Raft address, empty when no
// leader is known.
func (c *Coordinator) Leader() (id, raftAddr string) {
	addr, sid := c.raft.LeaderWithID()
	return string(sid), string(addr)
}

// Raft returns the underlying Raft instance, for stats and tests. Do not
// Apply through it: use Apply.
func (c *Coordinator) Raft() *raft.Raft { return c.raft }

func (c *Coordinator) notLeader() error {
	id, addr := c.Leader()
	e := &NotLeaderError{LeaderID: id, RaftAddr: addr}
	if m, ok := c.Current().Member(id); ok {
		e.RPCAddr = m.RPCAddr
	}
	return e
}

// mapErr classifies a Raft error.
func (c *Coordinator) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return c.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("coordinator: %w", err)
}

// timeout returns how long a Raft call may wait to be enqueued under ctx.
func (c *Coordinator) timeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d := c.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
		if d <= 0 {
			return 0, context.DeadlineExceeded
		}
	}
	return d, nil
}

// Apply commits cmd through Raft and returns its result once it is applied
// on this node. Only the leader accepts commands: elsewhere it fails with a
// *NotLeaderError (errors.Is(err, ErrNotLeader)) naming the leader, and the
// caller forwards. A command the state machine rejects returns its Result
// and the rejection (ErrHasData, ErrStaleEpoch, ...). ctx bounds the wait
// to enqueue the command and to wait for its outcome: the commit, or
// ErrUnknownOutcome when leadership is lost or ctx ends first (the command
// may still commit), or ErrClosed on shutdown.
func (c *Coordinator) Apply(ctx context.Context, cmd Command) (Result, error) {
	data, err := Encode(cmd)
	if err != nil {
		return Result{}, err
	}
	if !c.IsLeader() {
		return Result{}, c.notLeader()
	}
	d, err := c.timeout(ctx)
	if err != nil {
		return Result{}, err
	}
	f := c.raft.Apply(data, d)
	if err := c.await(ctx, f); err != nil {
		return Result{}, err
	}
	res, ok := f.Response().(Result)
	if !ok {
		return Result{}, fmt.Errorf("coordinator: unexpected FSM response %T", f.Response())
	}
	return res, res.Err
}

// LinearizableRead returns a state that reflects every command committed
// before the call: it confirms this node is still the leader (a quorum
// round trip) and, once per term, waits for the log to be applied
// (Barrier). Only the leader can serve it.
func (c *Coordinator) LinearizableRead(ctx context.Context) (*State, error) {
	if !c.IsLeader() {
		return nil, c.notLeader()
	}
	if err := c.barrier(ctx); err != nil {
		return nil, err
	}
	if err := c.await(ctx, c.raft.VerifyLeader()); err != nil {
		return nil, err
	}
	return c.Current(), nil
}

// barrier waits, once per term, until every entry committed before this
// leader's term is applied to the FSM.
func (c *Coordinator) barrier(ctx context.Context) error {
	term := c.raft.CurrentTerm()
	if c.barrierTerm.Load() == term {
		return nil
	}
	d, err := c.timeout(ctx)
	if err != nil {
		return err
	}
	if err := c.await(ctx, c.raft.Barrier(d)); err != nil {
		return err
	}
	c.barrierTerm.Store(term)
	return nil
}

// Join adds m to the cluster: it applies AddMember and adds the node to the
// Raft configuration, as a voter while the configuration has fewer than
// VotersMax voters, else as a non-voter. Only the leader can serve it.
// Joining again (a restart, a new address) is harmless: the member's
// addresses are updated and its Raft suffrage kept. m.RaftAddr is
// required; m.Weight defaults to 1.
func (c *Coordinator) Join(ctx context.Context, m Member) error {
	if m.Weight == 0 {
		m.Weight = 1
	}
	// The leader registers itself on its first reconcile pass, which starts
	// with a barrier: a join can be applied before it. Register the leader
	// first while the member list is still empty, or that pass would take
	// the joiner's presence for this leader's removal and never add it.
	if s := c.Current(); len(s.Members()) == 0 && m.ID != c.cfg.Self.ID {
		if _, err := c.Apply(ctx, AddMember{Member: c.cfg.Self}); err != nil {
			return err
		}
	}
	if _, err := c.Apply(ctx, AddMember{Member: m}); err != nil {
		return err
	}
	return c.addServer(ctx, m.ID, m.RaftAddr)
}

// addServer puts id in the Raft configuration (voter if there is room).
func (c *Coordinator) addServer(ctx context.Context, id, addr string) error {
	cf := c.raft.GetConfiguration()
	if err := c.await(ctx, cf); err != nil {
		return err
	}
	conf := cf.Configuration()
	voters, isVoter := 0, false
	for _, s := range conf.Servers {
		if string(s.ID) == id {
			if string(s.Address) == addr {
				return nil
			}
			isVoter = s.Suffrage == raft.Voter
			continue
		}
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	d, err := c.timeout(ctx)
	if err != nil {
		return err
	}
	var f raft.IndexFuture
	if isVoter || voters < c.cfg.VotersMax {
		f = c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), cf.Index(), d)
	} else {
		f = c.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), cf.Index(), d)
	}
	return c.await(ctx, f)
}

// Remove takes node id out of the cluster: it applies RemoveMember and
// removes the node from the Raft configuration. If the cluster holds data
// and the node owns buckets, the member cannot be deleted (its buckets
// would have no address): it is set StateLeft instead, and Remove still
// succeeds. Only the leader can serve it; removing the leader itself makes
// it step down once the change commits.
func (c *Coordinator) Remove(ctx context.Context, id string) error {
	_, err := c.Apply(ctx, RemoveMember{ID: id})
	switch {
	case errors.Is(err, ErrHasData):
		if _, err := c.Apply(ctx, SetState{ID: id, State: StateLeft}); err != nil {
			return err
		}
	case errors.Is(err, ErrUnknownMember):
		// Maybe only a Raft server (it failed before AddMember): go on.
	case err != nil:
		return err
	}
	rerr := c.removeServer(ctx, id)
	if errors.Is(rerr, errUnknownServer) {
		if errors.Is(err, ErrUnknownMember) {
			return err
		}
		return nil
	}
	return rerr
}

// errUnknownServer: removeServer found no such Raft server.
var errUnknownServer = errors.New("coordinator: not a raft server")

// removeServer takes id out of the Raft configuration if it is in it.
func (c *Coordinator) removeServer(ctx context.Context, id string) error {
	cf := c.raft.GetConfiguration()
	if err := c.await(ctx, cf); err != nil {
		return err
	}
	found := false
	for _, s := range cf.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return errUnknownServer
	}
	d, terr := c.timeout(ctx)
	if terr != nil {
		return terr
	}
	if err := c.await(ctx, c.raft.RemoveServer(raft.ServerID(id), cf.Index(), d)); err != nil {
		return err
	}
	c.wake() // a voter seat may be free: the leader loop promotes a non-voter
	return nil
}

// wake nudges the leader loop; it never blocks.
func (c *Coordinator) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
