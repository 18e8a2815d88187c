package twophase

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The harness is an in-memory cluster: one coordinator "c", participants
// p1..p3, a message queue the test delivers from, and per-node "disks"
// that survive crashes. It performs effects the way node/ does: each
// transaction's in order, persisting before sending, applying committed
// intents before their marker and then calling Applied. A participant's
// driver can be held (hold): its writes, and every later effect of the
// same transaction, then wait in a per-transaction queue until released,
// as behind a slow disk; a crash loses them.

const coordID NodeID = "c"

type disk struct {
	prepares map[TxID]PrepareRecord
	records  map[TxID]TxnRecord
	data     map[string]string
	versions map[string]uint64
}

type pnode struct {
	id   NodeID
	p    *Participant // nil while down
	disk *disk
	// hold defers writes (and what follows them in their transaction)
	// into queues, in the order queued (qorder).
	hold   bool
	queues map[TxID][]Effect
	qorder []TxID
}

type cluster struct {
	cfg     Config
	clock   map[NodeID]Tick // node-local logical time
	coord   *Coordinator    // nil while down
	nodes   map[NodeID]*pnode
	order   []NodeID
	queue   []Message
	last    *Message
	out     []string
	quiet   bool
	replies map[TxID]ReplyClient
	// history is every final state each node persisted for a txn.
	history map[TxID]map[NodeID]State
	// parts is the participants of every begun txn.
	parts      map[TxID][]NodeID
	violations []string
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.DeadlineTicks = 10
	cfg.ResolveTicks = 5
	cfg.RecordTTLTicks = 20
	cfg.FinishedTTLTicks = 1000
	return cfg
}

func newCluster(cfg Config, n int) *cluster {
	c := &cluster{cfg: cfg, clock: map[NodeID]Tick{}, nodes: map[NodeID]*pnode{}, replies: map[TxID]ReplyClient{},
		history: map[TxID]map[NodeID]State{}, parts: map[TxID][]NodeID{}}
	c.coord, _ = NewCoordinator(coordID, cfg)
	for i := 1; i <= n; i++ {
		id := NodeID(fmt.Sprintf("p%d", i))
		p, _ := NewParticipant(id, cfg)
		c.nodes[id] = &pnode{id: id, p: p, queues: map[TxID][]Effect{}, disk: &disk{prepares: map[TxID]PrepareRecord{},
			records: map[TxID]TxnRecord{}, data: map[string]string{}, versions: map[string]uint64{}}}
		c.order = append(c.order, id)
	}
	return c
}

func (c *cluster) logf(format string, args ...any) {
	if !c.quiet {
		c.out = append(c.out, fmt.Sprintf(format, args...))
	}
}

func (c *cluster) violate(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// apply performs the effects emitted by node from, or queues those of a
// held participant.
func (c *cluster) apply(from NodeID, effs []Effect) {
	n := c.nodes[from]
	for _, e := range effs {
		if n == nil {
			c.perform(from, e)
			continue
		}
		id := TxnOf(e)
		q, queued := n.queues[id]
		if !queued && !(n.hold && writes(e)) {
			c.perform(from, e)
			continue
		}
		if !queued {
			n.qorder = append(n.qorder, id)
		}
		n.queues[id] = append(q, e)
		c.logf("%s: queued %s", from, effString(e))
	}
}

// release performs the queued effects of txn on n (every queue if txn is
// empty, and n is no longer held), with what they cause, in order.
func (c *cluster) release(n *pnode, txn TxID) {
	if txn == "" {
		n.hold = false
	}
	for _, id := range slices.Clone(n.qorder) {
		if txn != "" && id != txn {
			continue
		}
		for len(n.queues[id]) > 0 {
			e := n.queues[id][0]
			n.queues[id] = n.queues[id][1:]
			c.perform(n.id, e)
		}
		delete(n.queues, id)
		n.qorder = slices.DeleteFunc(n.qorder, func(x TxID) bool { return x == id })
	}
}

// releaseOne performs the first queued effect of txn on n (and what it
// causes): a driver that stops, or crashes, in the middle of a queue.
func (c *cluster) releaseOne(n *pnode, txn TxID) {
	q := n.queues[txn]
	if len(q) == 0 {
		return
	}
	n.queues[txn] = q[1:]
	c.perform(n.id, q[0])
	if len(n.queues[txn]) == 0 {
		delete(n.queues, txn)
		n.qorder = slices.DeleteFunc(n.qorder, func(x TxID) bool { return x == txn })
	}
}

func writes(e Effect) bool {
	_, ok := StorageOp(e)
	return ok
}

func effString(e Effect) string {
	switch e := e.(type) {
	case Send:
		return fmt.Sprintf("-> %s: %s", e.To, e.Msg)
	case PersistPrepare:
		return fmt.Sprintf("persist prepare %s %s", e.Rec.Txn, e.Rec.State)
	case PersistRecord:
		return fmt.Sprintf("persist record %s %s", e.Rec.Txn, e.Rec.Status)
	case Forget:
		return fmt.Sprintf("forget %s", e.Txn)
	case ForgetRecord:
		return fmt.Sprintf("forget record %s", e.Txn)
	}
	return fmt.Sprintf("%T", e)
}

// perform carries out one effect of node from.
func (c *cluster) perform(from NodeID, e Effect) {
	switch e := e.(type) {
	case Send:
		c.queue = append(c.queue, e.Msg)
		c.logf("%s -> %s: %s", from, e.To, e.Msg)
	case PersistPrepare:
		n := c.nodes[from]
		r := e.Rec
		c.logf("%s: persist prepare %s %s%s", from, r.Txn, r.State, fmtKeys(" locks=", r.Locks))
		if r.State == StateCommitted {
			// The intents first, then the marker, then Applied: the
			// keys must still be locked by r.Txn all along.
			for _, in := range r.Intents {
				if h, ok := n.p.Locks().Holder(in.Key); !ok || h != r.Txn {
					c.violate("%s: %s applied its intent on %s, locked by %q", from, r.Txn, in.Key, h)
				}
				n.disk.data[in.Key] = string(in.Value)
				n.disk.versions[in.Key]++
			}
		}
		if err := c.roundTrip(n.disk, e); err != nil {
			c.violate("%s: %v", from, err)
		}
		if r.State == StatePrepared {
			// What Restore would refuse after a crash now.
			for _, o := range n.disk.prepares {
				if o.Txn != r.Txn && o.State == StatePrepared && slices.ContainsFunc(o.Locks, func(k string) bool { return slices.Contains(r.Locks, k) }) {
					c.violate("%s: Prepared records of %s and %s both lock %v on disk", from, o.Txn, r.Txn, r.Locks)
				}
			}
		}
		if r.State == StateCommitted || r.State == StateAborted {
			h := c.history[r.Txn]
			if h == nil {
				h = map[NodeID]State{}
				c.history[r.Txn] = h
			}
			if old, ok := h[from]; ok && old != r.State {
				c.violate("%s: %s went %s then %s", from, r.Txn, old, r.State)
			}
			h[from] = r.State
		}
		switch {
		case n.p == nil:
		case r.State == StatePrepared:
			c.apply(from, n.p.Persisted(c.clock[from], r.Txn))
		default:
			n.p.Applied(r.Txn)
		}
	case PersistRecord:
		if err := c.roundTrip(c.nodes[from].disk, e); err != nil {
			c.violate("%s: %v", from, err)
		}
		c.logf("%s: persist record %s %s", from, e.Rec.Txn, e.Rec.Status)
	case Forget:
		delete(c.nodes[from].disk.prepares, e.Txn)
		c.logf("%s: forget %s", from, e.Txn)
	case ForgetRecord:
		delete(c.nodes[from].disk.records, e.Txn)
		c.logf("%s: forget record %s", from, e.Txn)
	case ReplyClient:
		c.replies[e.Txn] = e
		if e.Err != nil {
			c.logf("%s: reply %s %s: %v", from, e.Txn, e.Outcome, e.Err)
		} else {
			c.logf("%s: reply %s %s", from, e.Txn, e.Outcome)
		}
	}
}

// roundTrip writes a persist effect to d through the storage adapter's
// encoding, as node/ stores it.
func (c *cluster) roundTrip(d *disk, e Effect) error {
	op, _ := StorageOp(e)
	var st Stored
	if err := st.Add(op.Key, op.Value); err != nil {
		return err
	}
	for _, r := range st.Prepares {
		d.prepares[r.Txn] = r
	}
	for _, r := range st.Records {
		d.records[r.Txn] = r
	}
	return nil
}

// plainWrite is a write outside any transaction: refused while the key is
// locked, and never allowed to overtake a committed transaction's intents
// on the key that the driver has not applied yet.
func (c *cluster) plainWrite(n *pnode, key, value string) error {
	if h, locked := n.p.Locks().Holder(key); locked {
		return fmt.Errorf("key %s locked by %s", key, h)
	}
	for _, id := range n.qorder {
		for _, e := range n.queues[id] {
			if pp, ok := e.(PersistPrepare); ok && pp.Rec.State == StateCommitted &&
				slices.ContainsFunc(pp.Rec.Intents, func(in Intent) bool { return in.Key == key }) {
				c.violate("%s: plain write of %s passed while %s's intents on it are not applied", n.id, key, id)
			}
		}
	}
	n.disk.data[key] = value
	n.disk.versions[key]++
	return nil
}

func fmtKeys(prefix string, keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return prefix + shortKeys(keys)
}

func (c *cluster) deliver(m Message) {
	c.last = &m
	if m.To == coordID {
		if c.coord == nil {
			c.logf("%s: down, dropped %s", m.To, m)
			return
		}
		c.apply(coordID, c.coord.Step(c.clock[coordID], m))
		return
	}
	n := c.nodes[m.To]
	if n == nil || n.p == nil {
		c.logf("%s: down, dropped %s", m.To, m)
		return
	}
	c.apply(m.To, n.p.Step(c.clock[m.To], m, n.disk.versions))
}

func (c *cluster) begin(t Txn) error {
	if c.coord == nil {
		return fmt.Errorf("coordinator down")
	}
	effs, err := c.coord.Begin(c.clock[coordID], t)
	if err != nil {
		return err
	}
	for _, p := range t.Parts {
		c.parts[t.ID] = append(c.parts[t.ID], p.Node)
	}
	c.apply(coordID, effs)
	return nil
}

func (c *cluster) crash(id NodeID) {
	if id == coordID {
		c.coord = nil
		return
	}
	n := c.nodes[id]
	n.p, n.hold, n.queues, n.qorder = nil, false, map[TxID][]Effect{}, nil
}

func (c *cluster) recover(id NodeID) error {
	if id == coordID {
		if c.coord == nil {
			c.coord, _ = NewCoordinator(coordID, c.cfg)
		}
		return nil
	}
	n := c.nodes[id]
	if n.p != nil {
		return nil
	}
	n.p, _ = NewParticipant(id, c.cfg)
	// Read back through the storage adapter, in key order as a store
	// iterates.
	var st Stored
	for _, txn := range slices.Sorted(maps.Keys(n.disk.records)) {
		op, _ := StorageOp(PersistRecord{n.disk.records[txn]})
		if err := st.Add(op.Key, op.Value); err != nil {
			return err
		}
	}
	for _, txn := range slices.Sorted(maps.Keys(n.disk.prepares)) {
		op, _ := StorageOp(PersistPrepare{n.disk.prepares[txn]})
		if err := st.Add(op.Key, op.Value); err != nil {
			return err
		}
	}
	effs, err := st.Restore(n.p, c.clock[id])
	if err != nil {
		return err
	}
	c.apply(id, effs)
	return nil
}

// tick advances the clocks of the given nodes (all if none) n times.
func (c *cluster) tick(n int, only ...NodeID) {
	ticks := func(id NodeID) bool { return len(only) == 0 || slices.Contains(only, id) }
	for range n {
		if ticks(coordID) {
			c.clock[coordID]++
			if c.coord != nil {
				c.apply(coordID, c.coord.Tick(c.clock[coordID]))
			}
		}
		for _, id := range c.order {
			if !ticks(id) {
				continue
			}
			c.clock[id]++
			if p := c.nodes[id].p; p != nil {
				c.apply(id, p.Tick(c.clock[id]))
			}
		}
	}
}

// state describes every node, one line each.
func (c *cluster) state() []string {
	var out []string
	if c.coord == nil {
		out = append(out, "c: down")
	} else {
		out = append(out, fmt.Sprintf("c: up in-flight=%d", c.coord.InFlight()))
	}
	for _, id := range c.order {
		n := c.nodes[id]
		var parts []string
		if n.p == nil {
			parts = append(parts, "down")
		} else {
			parts = append(parts, "up")
			var locks []string
			for k, h := range n.p.locks.held {
				locks = append(locks, k+":"+string(h))
			}
			slices.Sort(locks)
			parts = append(parts, "locks="+strings.Join(locks, ","))
			var txns []string
			for _, t := range slices.Sorted(maps.Keys(n.p.txns)) {
				txns = append(txns, string(t)+":"+n.p.txns[t].rec.State.String())
			}
			parts = append(parts, "txns="+strings.Join(txns, ","))
			var recs []string
			for _, t := range slices.Sorted(maps.Keys(n.p.records)) {
				recs = append(recs, string(t)+":"+n.p.records[t].status.String())
			}
			parts = append(parts, "records="+strings.Join(recs, ","))
			if len(n.qorder) > 0 {
				var queued []string
				for _, id := range n.qorder {
					queued = append(queued, fmt.Sprintf("%s:%d", id, len(n.queues[id])))
				}
				parts = append(parts, "queued="+strings.Join(queued, ","))
			}
		}
		var data []string
		for _, k := range slices.Sorted(maps.Keys(n.disk.data)) {
			data = append(data, fmt.Sprintf("%s=%s@%d", k, n.disk.data[k], n.disk.versions[k]))
		}
		parts = append(parts, "data="+strings.Join(data, ","))
		out = append(out, string(id)+": "+strings.Join(parts, " "))
	}
	return out
}

// checkAtomic reports a txn committed on one node and aborted on another,
// and client replies that disagree with the participants.
func (c *cluster) checkAtomic() {
	for _, id := range slices.Sorted(maps.Keys(c.history)) {
		h := c.history[id]
		var committed, aborted []string
		for _, n := range slices.Sorted(maps.Keys(h)) {
			if h[n] == StateCommitted {
				committed = append(committed, string(n))
			} else {
				aborted = append(aborted, string(n))
			}
		}
		if len(committed) > 0 && len(aborted) > 0 {
			c.violate("%s committed on %v and aborted on %v", id, committed, aborted)
		}
		if r, ok := c.replies[id]; ok {
			if r.Outcome == OutcomeCommitted && len(aborted) > 0 {
				c.violate("%s reported committed but aborted on %v", id, aborted)
			}
			if r.Outcome == OutcomeAborted && len(committed) > 0 {
				c.violate("%s reported aborted but committed on %v", id, committed)
			}
		}
	}
}
