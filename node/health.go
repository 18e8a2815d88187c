package node

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/memberlist"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/server"
)

// memberHealth is what the cluster view reports of every member, from this
// node's failure detection and the metadata: HealthFail for a member the
// leader declared failed or that gossip has dead (or never saw),
// HealthPFail for one gossip suspects, HealthOnline otherwise (and always
// for this node). It reads memberlist's member list: call it on request
// paths only, never from a memberlist callback.
func (n *Node) memberHealth(s *coordinator.State) map[string]string {
	out := map[string]string{}
	gossip := map[string]memberlist.NodeStateType{}
	if n.ml != nil {
		for _, m := range n.ml.Members() {
			gossip[m.Name] = m.State
		}
	}
	for _, m := range s.Members() {
		h := server.HealthOnline
		st, seen := gossip[m.ID]
		switch {
		case m.ID == n.cfg.ID:
		case m.State == coordinator.StateFailed, !seen, st == memberlist.StateDead, st == memberlist.StateLeft:
			h = server.HealthFail
		case st == memberlist.StateSuspect:
			h = server.HealthPFail
		}
		out[m.ID] = h
	}
	return out
}

// leftErr is the answer of a node that has been drained and left the
// cluster: every data command fails, naming the members to use instead.
func (n *Node) leftErr(s *coordinator.State) error {
	m, ok := s.Member(n.cfg.ID)
	if !ok || m.State != coordinator.StateLeft {
		return nil
	}
	var addrs []string
	for _, o := range s.Members() {
		if o.ID != n.cfg.ID && (o.State == coordinator.StateActive || o.State == coordinator.StateJoining) && o.RESPAddr != "" {
			addrs = append(addrs, o.RESPAddr)
		}
	}
	sort.Strings(addrs)
	use := "no active member is known"
	if len(addrs) > 0 {
		use = "use " + strings.Join(addrs, " ")
	}
	return server.RedisError(fmt.Sprintf("CLUSTERDOWN This node (%s) was drained and has left the cluster; %s", n.cfg.ID, use))
}
