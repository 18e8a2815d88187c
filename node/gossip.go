package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dbx-kv/dbx/coordinator"
)

// gossipMeta is what a node announces in memberlist (≤ 512 bytes).
type gossipMeta struct {
	ID     string  `json:"id"`
	RPC    string  `json:"rpc"`
	RESP   string  `json:"resp"`
	HTTP   string  `json:"http"`
	Weight float64 `json:"weight"`
	State  string  `json:"state"`
}

// gossip runs memberlist for failure detection and join discovery. Its
// event callbacks run under memberlist's lock: they only record the event
// and poke the node's reconcile loop, never call back into memberlist.
type gossip struct {
	n  *Node
	ml *memberlist.Memberlist

	mu    sync.Mutex
	state string               // our announced state
	gone  map[string]time.Time // members seen leaving or dying, by name
	// rpc is every live member's announced RPC address, by name, kept from
	// the events: memberlist's Members() hands out its own node structs,
	// whose Meta it rewrites under its lock (reading it races).
	rpc   map[string]string
	poke  chan struct{} // capacity 1: "membership changed"
	start time.Time
}

func startGossip(n *Node) (*gossip, error) {
	g := &gossip{n: n, state: "starting", gone: map[string]time.Time{}, rpc: map[string]string{}, poke: make(chan struct{}, 1), start: time.Now()}
	var mc *memberlist.Config
	if n.cfg.GossipProfile == "local" {
		mc = memberlist.DefaultLocalConfig()
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	host, portStr, _ := net.SplitHostPort(n.cfg.GossipAddr)
	port, _ := strconv.Atoi(portStr)
	mc.Name = n.cfg.ID
	mc.BindAddr = host
	if host == "" {
		mc.BindAddr = "0.0.0.0"
	}
	mc.BindPort = port
	if n.cfg.AdvertiseHost != "" {
		mc.AdvertiseAddr = n.cfg.AdvertiseHost
	}
	mc.Delegate = g
	mc.Events = g
	mc.DeadNodeReclaimTime = 10 * time.Second
	mc.Logger = log.New(&slogWriter{log: n.log.With("component", "memberlist"), closed: &n.libLogsOff}, "", 0)
	if n.cfg.GossipKey != "" {
		k, err := base64.StdEncoding.DecodeString(n.cfg.GossipKey)
		if err != nil {
			return nil, fmt.Errorf("node: gossip key: %w", err)
		}
		mc.SecretKey = k
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("node: start gossip on %s: %w", n.cfg.GossipAddr, err)
	}
	g.ml = ml
	return g, nil
}

func (g *gossip) setState(s string) {
	g.mu.Lock()
	g.state = s
	g.mu.Unlock()
	if err := g.ml.UpdateNode(time.Second); err != nil {
		g.n.log.Debug("gossip metadata update not fully propagated", "err", err)
	}
}

func (g *gossip) close() error {
	g.setState("leaving")
	if err := g.ml.Leave(time.Second); err != nil {
		g.n.log.Warn("gossip leave", "err", err)
	}
	return g.ml.Shutdown()
}

func (g *gossip) kick() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// peerRPCAddrs returns the RPC addresses other live members announce.
func (g *gossip) peerRPCAddrs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.rpc))
	for name, addr := range g.rpc {
		if name != g.n.cfg.ID {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out
}

// noteMetaLocked records m's announced RPC address (called from the events,
// under memberlist's lock, where m may be read); g.mu is held.
func (g *gossip) noteMetaLocked(m *memberlist.Node) {
	var meta gossipMeta
	if json.Unmarshal(m.Meta, &meta) == nil && meta.RPC != "" {
		g.rpc[m.Name] = meta.RPC
	}
}

// NodeMeta implements memberlist.Delegate.
func (g *gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	st := g.state
	g.mu.Unlock()
	n := g.n
	b, _ := json.Marshal(gossipMeta{ID: n.cfg.ID, RPC: n.rpcAddr, RESP: n.respAddr, HTTP: n.httpAddr, Weight: n.cfg.Weight, State: st})
	if len(b) > limit {
		b, _ = json.Marshal(gossipMeta{ID: n.cfg.ID, RPC: n.rpcAddr})
	}
	return b
}

// NotifyMsg implements memberlist.Delegate (no user messages).
func (g *gossip) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate (no user broadcasts).
func (g *gossip) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate (no push/pull state).
func (g *gossip) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (g *gossip) MergeRemoteState([]byte, bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (g *gossip) NotifyJoin(m *memberlist.Node) {
	g.mu.Lock()
	delete(g.gone, m.Name)
	g.noteMetaLocked(m)
	g.mu.Unlock()
	g.kick()
}

// NotifyLeave implements memberlist.EventDelegate; it fires for a graceful
// leave and for a death alike.
func (g *gossip) NotifyLeave(m *memberlist.Node) {
	g.mu.Lock()
	g.gone[m.Name] = time.Now()
	delete(g.rpc, m.Name)
	g.mu.Unlock()
	g.kick()
}

// NotifyUpdate implements memberlist.EventDelegate.
func (g *gossip) NotifyUpdate(m *memberlist.Node) {
	g.mu.Lock()
	g.noteMetaLocked(m)
	g.mu.Unlock()
	g.kick()
}

// absentGrace is how long a member the coordinator knows may be missing from
// this node's gossip view (never seen) before the leader declares it failed.
const absentGrace = 15 * time.Second

// goneGrace is how long a member must have been gone from gossip before
// the leader declares it failed. Gossip flaps briefly when a node comes
// back under the name of one that left (the old leave and the new alive
// race through the members: "conflicting address", a refuted death); a
// failed mark then would replan the placement twice for nothing.
const goneGrace = 2 * time.Second

// reconcileLoop, on the leader, turns gossip's view into member states:
// members gossip reports gone become failed, failed members it reports
// alive become active again. It runs on membership events and every second.
// On every node it also re-announces this node's addresses to the leader
// when the metadata holds stale ones (a restart on new ports).
func (n *Node) reconcileLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-n.gossip.poke:
		case <-t.C:
		}
		n.reconcile()
	}
}

func (n *Node) reconcile() {
	ctx, cancel := context.WithTimeout(n.life, 3*time.Second)
	defer cancel()
	s := n.coord.Current()
	if m, ok := s.Member(n.cfg.ID); ok && n.admin != nil && (m.RPCAddr != n.rpcAddr || m.RESPAddr != n.respAddr || m.ClusterRESPAddr != n.clusterRespAddr || m.HTTPAddr != n.httpAddr) {
		if _, err := n.leaderDo(ctx, leaderOp{Op: opJoin, Member: n.self()}, n.gossip.peerRPCAddrs()); err != nil {
			n.log.Warn("re-announcing addresses failed", "err", err)
		}
	}
	if m, ok := s.Member(n.cfg.ID); ok && m.State == coordinator.StateLeft && !n.leftGossip.Load() && n.synced.Load() {
		// Drained and out of the Raft configuration: leave gossip too.
		// (Not while catching up: a node back under a drained member's ID
		// replays the old "left" before its own join.)
		n.leftGossip.Store(true)
		n.admin.SetLeft("this node (" + n.cfg.ID + ") was drained and has left the cluster")
		n.gossip.setState("left")
		if err := n.ml.Leave(time.Second); err != nil {
			n.log.Warn("leaving gossip", "err", err)
		}
		n.log.Info("this node was drained and has left the cluster; it owns no data and can be stopped")
	}
	if !n.coord.IsLeader() {
		return
	}
	alive := map[string]bool{}
	for _, m := range n.ml.Members() {
		alive[m.Name] = true
	}
	n.gossip.mu.Lock()
	gone := make(map[string]bool, len(n.gossip.gone))
	for k, at := range n.gossip.gone {
		gone[k] = time.Since(at) >= goneGrace
	}
	started := n.gossip.start
	n.gossip.mu.Unlock()
	for _, m := range s.Members() {
		if m.ID == n.cfg.ID {
			continue
		}
		var want coordinator.MemberState
		switch {
		case alive[m.ID] && m.State == coordinator.StateFailed:
			want = coordinator.StateActive
		case !alive[m.ID] && (m.State == coordinator.StateActive || m.State == coordinator.StateJoining) &&
			(gone[m.ID] || time.Since(started) > absentGrace):
			want = coordinator.StateFailed
		default:
			continue
		}
		if _, err := n.coord.Apply(ctx, coordinator.SetState{ID: m.ID, State: want}); err != nil {
			n.log.Warn("member state change failed", "member", m.ID, "state", want, "err", err)
			continue
		}
		n.log.Info("member state changed from gossip", "member", m.ID, "from", m.State, "to", want)
	}
}
