package coordinator

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Leader loop bounds.
const (
	// reconcileAttemptsMax bounds the retries of a failed reconciliation
	// before the loop waits for the next change or the periodic check.
	reconcileAttemptsMax = 8
	// reconcileBackoffMin and reconcileBackoffMax bound the retry delay
	// (doubling from min).
	reconcileBackoffMin = 50 * time.Millisecond
	reconcileBackoffMax = 2 * time.Second
	// reconcileInterval is the periodic check while leader, a safety net
	// for changes that were given up on.
	reconcileInterval = 10 * time.Second
)

// reconcileHook, if set (tests only, before Open), runs at the start of
// every reconcile pass on the leader.
var reconcileHook func()

// leaderLoop runs for the Coordinator's lifetime. While this node leads it
// reconciles the metadata after every applied change (and periodically):
// it registers itself as a member, activates joining members and commits a
// new placement when the active members or weights changed, and promotes
// non-voters while there are fewer than VotersMax voters.
func (c *Coordinator) leaderLoop() {
	leaderCh := c.raft.LeaderCh()
	leading := c.IsLeader()
	attempt := 0
	retry := time.NewTimer(reconcileInterval)
	defer retry.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case leading = <-leaderCh:
			attempt = 0
			if leading {
				c.log.Info("coordinator: leading", "node", c.cfg.NodeID, "term", c.raft.CurrentTerm())
			}
		case <-c.kick:
			attempt = 0
		case <-retry.C:
		}
		if !leading {
			retry.Reset(reconcileInterval)
			continue
		}
		err := c.reconcile(c.ctx)
		if err == nil || c.ctx.Err() != nil {
			attempt = 0
			retry.Reset(reconcileInterval)
			continue
		}
		attempt++
		if attempt > reconcileAttemptsMax {
			c.log.Error("coordinator: reconcile failed, waiting for the next change", "attempts", attempt-1, "err", err)
			attempt = 0
			retry.Reset(reconcileInterval)
			continue
		}
		d := min(reconcileBackoffMin<<(attempt-1), reconcileBackoffMax)
		c.log.Debug("coordinator: reconcile failed, retrying", "attempt", attempt, "in", d, "err", err)
		retry.Reset(d)
	}
}

// reconcile brings the metadata in line with the cluster, one command at a
// time; any error is retried by the loop.
func (c *Coordinator) reconcile(ctx context.Context) error {
	if !c.IsLeader() {
		return nil
	}
	if reconcileHook != nil {
		reconcileHook()
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	// Everything committed by earlier leaders must be applied before the
	// state is judged.
	if err := c.barrier(ctx); err != nil {
		return err
	}
	s := c.Current()

	// Register the leader itself: at bootstrap (no members yet), or when it
	// restarted with new addresses. A leader that is not a member otherwise
	// was removed and is about to step down: do not add it back.
	self := c.cfg.Self
	m, ok := s.Member(self.ID)
	if !ok && len(s.Members()) == 0 || ok && (m.RaftAddr != self.RaftAddr || m.RPCAddr != self.RPCAddr ||
		m.RESPAddr != self.RESPAddr || m.ClusterRESPAddr != self.ClusterRESPAddr || m.HTTPAddr != self.HTTPAddr) {
		if _, err := c.Apply(ctx, AddMember{Member: self}); err != nil {
			return err
		}
		s = c.Current()
	}

	// The bootstrapping node records the replication factor before the
	// first placement (nothing to do for the default).
	if c.cfg.Bootstrap && s.Table() == nil && s.ReplicationFactor() != c.cfg.ReplicationFactor {
		if _, err := c.Apply(ctx, SetReplicationFactor{Factor: c.cfg.ReplicationFactor}); err != nil {
			return err
		}
	}

	for _, m := range s.Members() {
		if m.State != StateJoining {
			continue
		}
		if _, err := c.Apply(ctx, SetState{ID: m.ID, State: StateActive}); err != nil {
			return err
		}
	}
	s = c.Current()
	// A draining member left with nothing leaves: state left, out of the
	// Raft configuration (its node then leaves gossip on its own).
	for _, m := range s.Members() {
		if m.State == StateDraining && !s.owns(m.ID) && s.Table() != nil {
			if _, err := c.Apply(ctx, SetState{ID: m.ID, State: StateLeft}); err != nil {
				return err
			}
			if err := c.removeServer(ctx, m.ID); err != nil && !errors.Is(err, errUnknownServer) {
				return err
			}
			c.log.Info("coordinator: drained member left", "node", m.ID)
		}
	}
	s = c.Current()

	pc := c.cfg.Placement
	pc.RF = s.PlacementRF()
	cmd, ok, err := Plan(s, pc)
	switch {
	case err != nil:
		// Deterministic for this state: report it once, wait for a change.
		if msg := err.Error(); msg != c.lastPlanErr {
			c.lastPlanErr = msg
			c.log.Warn("coordinator: placement not changed", "epoch", s.Epoch(), "err", err)
		}
	case ok:
		c.lastPlanErr = ""
		res, err := c.Apply(ctx, cmd)
		if err != nil {
			return err
		}
		c.log.Info("coordinator: placement committed", "epoch", res.Epoch, "nodes", nodesString(cmd.Inputs), "index", res.Index)
	}
	return c.promoteVoters(ctx)
}

// promoteVoters turns non-voters into voters while there are fewer than
// VotersMax voters (after a voter was removed), oldest member first.
func (c *Coordinator) promoteVoters(ctx context.Context) error {
	cf := c.raft.GetConfiguration()
	if err := c.await(ctx, cf); err != nil {
		return err
	}
	voters := 0
	var candidates []Member
	s := c.Current()
	for _, srv := range cf.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
			continue
		}
		if m, ok := s.Member(string(srv.ID)); ok && (m.State == StateActive || m.State == StateJoining) && m.RaftAddr == string(srv.Address) {
			candidates = append(candidates, m)
		}
	}
	slices.SortFunc(candidates, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.JoinedIndex, b.JoinedIndex), cmp.Compare(a.ID, b.ID))
	})
	idx := cf.Index()
	for _, m := range candidates {
		if voters >= c.cfg.VotersMax {
			break
		}
		d, err := c.timeout(ctx)
		if err != nil {
			return err
		}
		f := c.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), idx, d)
		if err := c.await(ctx, f); err != nil {
			return err // retried with a fresh configuration
		}
		idx = f.Index()
		voters++
		c.log.Info("coordinator: promoted to voter", "node", m.ID)
	}
	return nil
}
