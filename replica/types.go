package replica

import (
	"fmt"
	"slices"
	"strings"
)

// NodeID identifies a node.
type NodeID string

// Bucket is a bucket number (a key range of the engine).
type Bucket uint16

// Epoch numbers a bucket's configurations; the metadata raises it by one
// with every change.
type Epoch uint64

// Seq is a write's position in a bucket's log: the primary's order. It
// survives failover, so WATCH versions, move deltas and catch-up positions
// mean the same thing on every replica.
type Seq uint64

// Membership is a bucket's configuration as the metadata has it (PacificA's
// "configuration"): the primary, the in-sync set (the primary included)
// every write must reach before it is acknowledged, and the owners the
// placement names — an owner outside the set catches up and is then
// proposed back in.
type Membership struct {
	Bucket  Bucket
	Epoch   Epoch
	Primary NodeID
	// Set is sorted and holds Primary.
	Set []NodeID
	// Owners is sorted and holds Set.
	Owners []NodeID
}

// InSet reports whether id is in the in-sync set.
func (m Membership) InSet(id NodeID) bool { return slices.Contains(m.Set, id) }

// IsOwner reports whether id is one of the bucket's owners.
func (m Membership) IsOwner(id NodeID) bool { return slices.Contains(m.Owners, id) }

func (m Membership) String() string {
	return fmt.Sprintf("b%d e%d primary=%s set=%s owners=%s", m.Bucket, m.Epoch, m.Primary, joinIDs(m.Set), joinIDs(m.Owners))
}

func (m Membership) clone() Membership {
	m.Set, m.Owners = slices.Clone(m.Set), slices.Clone(m.Owners)
	return m
}

// View is what the state machines read of the applied metadata (the
// coordinator's State will satisfy it). A View must not change once given:
// a new applied entry is a new View.
type View interface {
	// Index is the log index the view has applied.
	Index() uint64
	// Buckets lists the buckets that have a Membership, ascending.
	Buckets() []Bucket
	// Membership is the bucket's configuration in force.
	Membership(b Bucket) (Membership, bool)
	// BucketEpoch is Membership(b).Epoch, cheap (no allocation):
	// Applied reads every bucket's and builds the Membership only of
	// those that changed.
	BucketEpoch(b Bucket) (Epoch, bool)
}

// Change is one bucket's configuration change, applied by the metadata
// only if the bucket's epoch is still From (a compare-and-set: of two
// racing changes the first committed wins, the other is refused). To.Epoch
// is From+1.
type Change struct {
	From Epoch
	To   Membership
}

// EntryID names an entry: its position and the epoch of the primary that
// created it. Two entries with the same ID are the same write.
type EntryID struct {
	Seq   Seq
	Epoch Epoch
}

// Entry is one replicated write: an opaque payload (a single-key write, a
// 1PC batch, a 2PC record…) the driver applies in Seq order.
type Entry struct {
	Seq   Seq
	Epoch Epoch
	Data  []byte
}

// ID returns the entry's ID.
func (e Entry) ID() EntryID { return EntryID{e.Seq, e.Epoch} }

// MsgType is the kind of a Message.
type MsgType uint8

// Message kinds. Ship goes from a primary to the bucket's other owners
// (entries, or none: a heartbeat), Ack back; CatchUp goes from an owner
// outside the set to the primary.
const (
	MsgShip MsgType = iota + 1
	MsgAck
	MsgCatchUp
)

func (t MsgType) String() string { return [...]string{"?", "ship", "ack", "catch-up"}[t] }

// Reason says why a replica refused a Ship; it travels in the Ack.
type Reason uint8

// Refusal reasons.
const (
	ReasonNone Reason = iota
	// ReasonStaleEpoch: the message's epoch is older than the replica's;
	// Ack.Epoch is the replica's, so the sender learns it was deposed.
	ReasonStaleEpoch
	// ReasonFutureEpoch: the replica has not applied the epoch yet.
	ReasonFutureEpoch
	// ReasonNotPrimary: the sender is not the epoch's primary.
	ReasonNotPrimary
	// ReasonGap: the entries do not follow the replica's log; Hint is its
	// last entry.
	ReasonGap
	// ReasonMismatch: the entry before the batch differs from the
	// replica's; Hint is its commit point (known to match).
	ReasonMismatch
	// ReasonNotOwner: the replica does not hold the bucket.
	ReasonNotOwner
)

func (r Reason) String() string {
	return [...]string{"none", "stale-epoch", "future-epoch", "not-primary", "gap", "mismatch", "not-owner"}[r]
}

// Message is what replicas exchange. The driver encodes it and delivers it
// to To at most once per Send, in any order, possibly duplicated.
type Message struct {
	Type     MsgType
	Bucket   Bucket
	From, To NodeID
	// Epoch is the sender's configuration epoch.
	Epoch Epoch
	// Round numbers the primary's shipping rounds (lease renewal); an Ack
	// echoes the newest round the replica saw.
	Round uint64
	// Ship: Prev is the entry before Entries; Last is the primary's last
	// seq when sent; Commit its commit point.
	Prev    EntryID
	Entries []Entry
	Last    Seq
	Commit  Seq
	// Ack: Seq is the last entry durable and matching the primary's log.
	// Reject and Hint are set on a refusal. CatchUp: Seq, Prev (the
	// replica's last entry) and Commit describe the replica's log.
	Seq    Seq
	Reject Reason
	Hint   Seq
}

func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s b%d e%d", m.Type, m.Bucket, m.Epoch)
	switch m.Type {
	case MsgShip:
		fmt.Fprintf(&b, " r%d prev=%d.%d", m.Round, m.Prev.Seq, m.Prev.Epoch)
		if len(m.Entries) > 0 {
			fmt.Fprintf(&b, " entries=%d-%d", m.Entries[0].Seq, m.Entries[len(m.Entries)-1].Seq)
		}
		fmt.Fprintf(&b, " last=%d commit=%d", m.Last, m.Commit)
	case MsgAck:
		fmt.Fprintf(&b, " r%d seq=%d", m.Round, m.Seq)
		if m.Reject != ReasonNone {
			fmt.Fprintf(&b, " refused %s hint=%d", m.Reject, m.Hint)
		}
	case MsgCatchUp:
		fmt.Fprintf(&b, " last=%d.%d commit=%d", m.Prev.Seq, m.Prev.Epoch, m.Commit)
	}
	return b.String()
}

// Effect is an action the driver performs, in the order returned.
type Effect interface{ effect() }

type (
	// Persist: append Entries to the bucket's durable log (after any
	// earlier Truncate), with Commit as the durable commit hint; once it
	// and every earlier write of the bucket is durable, call
	// Replica.Persisted(bucket, Write).
	Persist struct {
		Bucket  Bucket
		Write   uint64
		Entries []Entry
		Commit  Seq
	}
	// Truncate: drop the bucket's log entries after After (they were
	// never committed: a new primary's log does not hold them). The
	// driver undoes their effect on the store; Persisted(Write) as above.
	Truncate struct {
		Bucket Bucket
		Write  uint64
		After  Seq
	}
	// Send: deliver Msg to Msg.To.
	Send struct{ Msg Message }
	// Reply: answer the client of write Ref. Err nil: committed at Seq
	// (durable on every replica of the set). ErrOutcomeUnknown: maybe.
	Reply struct {
		Bucket Bucket
		Ref    uint64
		Seq    Seq
		Epoch  Epoch
		Err    error
	}
	// ProposeChange: propose the changes to the metadata in one entry.
	ProposeChange struct {
		Changes []Change
		Reason  string
	}
	// NeedCopy: To's log cannot be caught up by delta; copy the bucket
	// to it (the move protocol's snapshot + tail) up to this node's
	// commit point Upto, then call Install on To.
	NeedCopy struct {
		Bucket Bucket
		To     NodeID
		Upto   EntryID
	}
)

func (Persist) effect()       {}
func (Truncate) effect()      {}
func (Send) effect()          {}
func (Reply) effect()         {}
func (ProposeChange) effect() {}
func (NeedCopy) effect()      {}

func (e Persist) String() string {
	if len(e.Entries) == 0 {
		return fmt.Sprintf("persist b%d w%d commit=%d", e.Bucket, e.Write, e.Commit)
	}
	return fmt.Sprintf("persist b%d w%d %d-%d commit=%d", e.Bucket, e.Write, e.Entries[0].Seq, e.Entries[len(e.Entries)-1].Seq, e.Commit)
}
func (e Truncate) String() string {
	return fmt.Sprintf("truncate b%d w%d after=%d", e.Bucket, e.Write, e.After)
}
func (e Send) String() string { return fmt.Sprintf("-> %s: %s", e.Msg.To, e.Msg) }
func (e Reply) String() string {
	if e.Err != nil {
		return fmt.Sprintf("reply b%d ref=%d: %v", e.Bucket, e.Ref, e.Err)
	}
	return fmt.Sprintf("reply b%d ref=%d ok seq=%d e%d", e.Bucket, e.Ref, e.Seq, e.Epoch)
}
func (e ProposeChange) String() string {
	parts := make([]string, len(e.Changes))
	for i, c := range e.Changes {
		parts[i] = fmt.Sprintf("[from e%d: %s]", c.From, c.To)
	}
	return fmt.Sprintf("propose %s (%s)", strings.Join(parts, " "), e.Reason)
}
func (e NeedCopy) String() string {
	return fmt.Sprintf("need-copy b%d -> %s upto=%d.%d", e.Bucket, e.To, e.Upto.Seq, e.Upto.Epoch)
}

func joinIDs(ids []NodeID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ",")
}
