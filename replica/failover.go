package replica

import (
	"fmt"
	"slices"
	"strings"
)

// Failover is the metadata leader's side: it promotes an in-set replica
// of every bucket whose primary it has not heard from for DeadTicks (on
// the leader's own ticks, counted from when this leader started if it
// never heard from the node), and takes every other such node out of the
// in-sync sets, in one ProposeChange per batch of up to FailoverBatchMax
// buckets. Pure: the driver reports liveness (Heard),
// ticks it with the applied View, and proposes what it returns.
//
// Safety does not rest on this timing: a promoted replica itself waits
// out the lease it granted its predecessor (Replica.Propose, CanRead).
// DeadTicks ≥ LeaseTicks + LeaseMarginTicks makes that wait over by the
// time a promotion is applied.
type Failover struct {
	cfg   Config
	start Tick
	heard map[NodeID]Tick
	asked map[Bucket]askedAt
	// mutation switch for the tests: promote out-of-set owners.
	promoteOutOfSet bool
}

type askedAt struct {
	epoch Epoch
	at    Tick
}

// NewFailover returns the failover logic of a leader that took office at
// now.
func NewFailover(cfg Config, now Tick) (*Failover, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Failover{cfg: cfg, start: now, heard: map[NodeID]Tick{}, asked: map[Bucket]askedAt{}}, nil
}

// Heard records a sign of life from id (a probe answered, a gossip
// heartbeat) at the leader's tick now.
func (f *Failover) Heard(now Tick, id NodeID) { f.heard[id] = max(f.heard[id], now) }

// Dead reports whether id has been silent for DeadTicks at now.
func (f *Failover) Dead(now Tick, id NodeID) bool {
	return now-max(f.start, f.heard[id]) >= f.cfg.DeadTicks
}

// Tick returns at most one ProposeChange: the promotions due at now,
// buckets ascending. A bucket is proposed again only after
// ProposeRetryTicks if its epoch has not moved.
func (f *Failover) Tick(now Tick, v View) []Effect {
	var changes []Change
	var why []string
	dead := func(id NodeID) bool { return f.Dead(now, id) }
	for _, b := range v.Buckets() {
		m, ok := v.Membership(b)
		if !ok || m.Primary == "" {
			continue
		}
		primaryDead := dead(m.Primary)
		if !primaryDead && !slices.ContainsFunc(m.Set, dead) {
			continue
		}
		if a, ok := f.asked[b]; ok && a.epoch == m.Epoch && now-a.at < f.cfg.ProposeRetryTicks {
			continue
		}
		to := m.clone()
		to.Epoch++
		if primaryDead {
			pool := m.Set
			if f.promoteOutOfSet {
				pool = m.Owners
			}
			var next NodeID
			for _, id := range pool {
				if id != m.Primary && !dead(id) {
					next = id
					break
				}
			}
			if next == "" {
				continue // no live in-set replica: the bucket waits for its primary
			}
			to.Primary = next
			if !to.InSet(next) {
				to.Set = append(to.Set, next)
				slices.Sort(to.Set)
			}
			why = append(why, fmt.Sprintf("b%d %s->%s", b, m.Primary, next))
		} else {
			why = append(why, fmt.Sprintf("b%d -%s", b, joinIDs(slices.DeleteFunc(slices.Clone(m.Set), func(id NodeID) bool { return !dead(id) }))))
		}
		// Dead members leave the set with the change: a primary waiting
		// on one would hold every write (and its lease) until its own
		// answer clock ran out, and a quiesced one would not even notice.
		to.Set = slices.DeleteFunc(to.Set, func(id NodeID) bool { return id != to.Primary && dead(id) })
		changes = append(changes, Change{From: m.Epoch, To: to})
		f.asked[b] = askedAt{epoch: m.Epoch, at: now}
		if len(changes) == f.cfg.FailoverBatchMax {
			break
		}
	}
	if len(changes) == 0 {
		return nil
	}
	return []Effect{ProposeChange{Changes: changes, Reason: "nodes dead: " + strings.Join(why, ",")}}
}
