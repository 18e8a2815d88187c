package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/replica"
	"github.com/dbx-kv/dbx/transport"
)

// methodLeaderOp runs a metadata operation on the Raft leader.
const methodLeaderOp = "node.leader_op"

// Leader operations.
const (
	opJoin     = "join"
	opWeight   = "weight"
	opDrain    = "drain"
	opMarkData = "mark_data"
	// opCancelMove cancels a bucket move (ID is its token).
	opCancelMove = "cancel_move"
	// opIndex returns the leader's applied log index (after a barrier).
	opIndex = "index"
	// opLimits sets the migration limits (Limits).
	opLimits = "limits"
	// opSnapshot takes a global snapshot (gsnapshot.go).
	opSnapshot = "snapshot"
	// opChangeReplicas commits replica configuration changes (Changes).
	opChangeReplicas = "change_replicas"
)

// leaderHopsMax bounds how often a leader operation is passed on from node
// to node (a non-leader passes it to the leader it knows).
const leaderHopsMax = 2

type leaderOp struct {
	Op     string
	ID     string
	Weight float64
	Member coordinator.Member
	Limits coordinator.MoveLimits
	// Changes: opChangeReplicas, at most coordinator.MaxReplicaChanges.
	Changes []replica.Change
	Hops    int
}

type leaderResult struct {
	Epoch uint64
	Index uint64
	// Snapshot is the ID of the snapshot opSnapshot took.
	Snapshot string
}

// leaderDo runs op on the Raft leader: here if this node leads, else over
// RPC at the leader this node knows, else at one of seeds (RPC addresses
// of other nodes, which pass it on). It retries while no leader is known or
// the leader moves, until ctx ends.
func (n *Node) leaderDo(ctx context.Context, op leaderOp, seeds []string) (leaderResult, error) {
	var lastErr error
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 500*time.Millisecond) {
		var res leaderResult
		var err error
		switch {
		case n.coord.IsLeader():
			res, err = n.applyLocal(ctx, op)
		default:
			targets := seeds
			if id, _ := n.coord.Leader(); id != "" {
				if m, ok := n.peer(id); ok && m.RPCAddr != "" {
					targets = []string{m.RPCAddr}
				}
			}
			err = fmt.Errorf("%w: no leader known and no seed", ErrNoLeader)
			for _, addr := range targets {
				if addr == n.rpcAddr {
					continue
				}
				var r *leaderResult
				r, err = transport.Call[leaderOp, leaderResult](ctx, n.rpc, addr, methodLeaderOp, &op)
				if err == nil {
					res = *r
					break
				}
			}
		}
		if err == nil {
			return res, nil
		}
		lastErr = err
		if !retryableLeaderErr(err) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%w: %s: %w (last error: %v)", ErrNoLeader, op.Op, ctx.Err(), lastErr)
		case <-n.done:
			return res, ErrClosed
		case <-time.After(backoff):
		}
	}
}

func retryableLeaderErr(err error) bool {
	return errors.Is(err, coordinator.ErrNotLeader) || errors.Is(err, ErrNoLeader) ||
		errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrConnClosed) ||
		errors.Is(err, transport.ErrBackpressure) || errors.Is(err, transport.ErrNotServing) ||
		errors.Is(err, coordinator.ErrUnknownOutcome)
}

// handleLeaderOp serves methodLeaderOp: on the leader it applies op, elsewhere
// it passes op on to the leader (at most leaderHopsMax times).
func (n *Node) handleLeaderOp(ctx context.Context, op *leaderOp) (*leaderResult, error) {
	if n.coord.IsLeader() || op.Hops >= leaderHopsMax {
		r, err := n.applyLocal(ctx, *op)
		return &r, err
	}
	fwd := *op
	fwd.Hops++
	id, _ := n.coord.Leader()
	m, ok := n.peer(id)
	if id == "" || !ok || m.RPCAddr == "" {
		return nil, fmt.Errorf("%w: node %s knows no leader", ErrNoLeader, n.cfg.ID)
	}
	return transport.Call[leaderOp, leaderResult](ctx, n.rpc, m.RPCAddr, methodLeaderOp, &fwd)
}

// applyLocal applies op on this node's coordinator (the leader).
func (n *Node) applyLocal(ctx context.Context, op leaderOp) (leaderResult, error) {
	var (
		res coordinator.Result
		err error
	)
	switch op.Op {
	case opJoin:
		err = n.coord.Join(ctx, op.Member)
		return leaderResult{Epoch: n.coord.Current().Epoch()}, err
	case opWeight:
		res, err = n.coord.Apply(ctx, coordinator.SetWeight{ID: op.ID, Weight: op.Weight})
	case opDrain:
		s, rerr := n.coord.LinearizableRead(ctx)
		if rerr != nil {
			return leaderResult{}, rerr
		}
		m, ok := s.Member(op.ID)
		if !ok {
			return leaderResult{}, fmt.Errorf("%w: %q", coordinator.ErrUnknownMember, op.ID)
		}
		if m.State == coordinator.StateLeft || m.State == coordinator.StateDraining {
			return leaderResult{Epoch: s.Epoch()}, nil
		}
		if len(s.ActiveNodes()) <= 1 {
			return leaderResult{}, fmt.Errorf("%w: %s is the last node placement can use; add one first", coordinator.ErrBadCommand, op.ID)
		}
		res, err = n.coord.Apply(ctx, coordinator.SetState{ID: op.ID, State: coordinator.StateDraining})
	case opCancelMove:
		res, err = n.coord.Apply(ctx, coordinator.CancelMove{Token: op.ID, Reason: "source fence timed out"})
	case opLimits:
		res, err = n.coord.Apply(ctx, coordinator.SetMoveLimits{Limits: op.Limits})
	case opIndex:
		s, rerr := n.coord.LinearizableRead(ctx)
		if rerr != nil {
			return leaderResult{}, rerr
		}
		return leaderResult{Epoch: s.Epoch(), Index: s.Index()}, nil
	case opSnapshot:
		id, err := n.takeSnapshot(ctx)
		return leaderResult{Epoch: n.coord.Current().Epoch(), Snapshot: id}, err
	case opChangeReplicas:
		res, err = n.coord.Apply(ctx, coordinator.ChangeReplicas{Changes: op.Changes})
	case opMarkData:
		res, err = n.coord.Apply(ctx, coordinator.MarkHasData{})
	default:
		return leaderResult{}, fmt.Errorf("%w: unknown leader operation %q", coordinator.ErrBadCommand, op.Op)
	}
	return leaderResult{Epoch: res.Epoch, Index: res.Index}, err
}
