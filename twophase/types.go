package twophase

import (
	"fmt"
	"slices"
	"strings"
)

// TxID identifies a transaction cluster-wide. The coordinator's node makes
// it unique (node ID plus a counter persisted across restarts, say); the
// package never reuses or invents one.
type TxID string

// NodeID identifies a node: a coordinator, a participant or both.
type NodeID string

// Intent is one write a participant applies on commit.
type Intent struct {
	Key    string
	Value  []byte
	Delete bool
	// ExpireAtMs is the value's expiry (Unix ms); 0 means none.
	ExpireAtMs int64
}

// State is a participant's view of one transaction.
type State uint8

// Participant states. A transaction goes None → Prepared → Committed or
// Aborted, or None → Aborted (refused before voting, or an Abort that
// arrived before its Prepare).
const (
	StateNone State = iota
	StatePrepared
	StateCommitted
	StateAborted
)

func (s State) String() string {
	return [...]string{"none", "prepared", "committed", "aborted"}[s]
}

// Status is the state of a transaction record.
type Status uint8

// Record statuses. PENDING changes once, by compare-and-set, to COMMITTED
// or ABORTED.
const (
	StatusUnknown Status = iota
	StatusPending
	StatusCommitted
	StatusAborted
)

func (s Status) String() string {
	return [...]string{"unknown", "pending", "committed", "aborted"}[s]
}

// Reason says why a participant voted no; it travels in messages and maps to
// one of the package's errors.
type Reason uint8

// Vote reasons.
const (
	ReasonNone Reason = iota
	ReasonLockConflict
	ReasonWatchConflict
	ReasonRecordAborted
	ReasonParticipantAborted
)

func (r Reason) String() string {
	return [...]string{"none", "lock-conflict", "watch-conflict", "record-aborted", "participant-aborted"}[r]
}

// Err returns the error the reason stands for.
func (r Reason) Err() error {
	switch r {
	case ReasonLockConflict:
		return ErrLockConflict
	case ReasonWatchConflict:
		return ErrWatchConflict
	case ReasonRecordAborted:
		return ErrRecordAborted
	default:
		return ErrParticipantAborted
	}
}

// MsgType is the kind of a Message.
type MsgType uint8

// Message kinds. Prepare, Commit and Abort go from the coordinator to
// participants, Vote back; Decide goes from the coordinator to the record
// holder, Decision back; Resolve goes from an in-doubt participant to the
// record holder, ResolveReply back.
const (
	MsgPrepare MsgType = iota + 1
	MsgVote
	MsgDecide
	MsgDecision
	MsgCommit
	MsgAbort
	MsgResolve
	MsgResolveReply
)

func (t MsgType) String() string {
	return [...]string{"?", "prepare", "vote", "decide", "decision", "commit", "abort", "resolve", "resolve-reply"}[t]
}

// Prepare is the body of a MsgPrepare: what one participant must lock,
// check and be ready to write.
type Prepare struct {
	// Holder is the participant holding the transaction record (the
	// first participant).
	Holder NodeID
	// Intents are the writes applied on commit.
	Intents []Intent
	// Reads are further keys locked but not written.
	Reads []string
	// Watch maps a key to the version the client saw (WATCH); a different
	// version at prepare votes no.
	Watch map[string]uint64
}

// Message is what nodes exchange. The caller encodes it and delivers it at
// most once per Send, in any order, possibly duplicated by retries.
type Message struct {
	Type     MsgType
	Txn      TxID
	From, To NodeID
	// Prepare is set for MsgPrepare.
	Prepare *Prepare
	// Yes and Reason are set for MsgVote.
	Yes    bool
	Reason Reason
	// Status is the wanted status (MsgDecide) or the record's status
	// (MsgDecision, MsgResolveReply).
	Status Status
}

func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", m.Type, m.Txn)
	switch m.Type {
	case MsgPrepare:
		if m.Prepare != nil {
			fmt.Fprintf(&b, " holder=%s keys=%s", m.Prepare.Holder, shortKeys(lockKeys(m.Prepare)))
		}
	case MsgVote:
		if m.Yes {
			b.WriteString(" yes")
		} else {
			fmt.Fprintf(&b, " no %s", m.Reason)
		}
	case MsgDecide, MsgDecision, MsgResolveReply:
		fmt.Fprintf(&b, " %s", m.Status)
	}
	return b.String()
}

// PrepareRecord is a participant's durable record of one transaction.
// Prepared records hold the intents and the locked keys; Committed and
// Aborted ones are markers that absorb late messages until Forget.
type PrepareRecord struct {
	Txn         TxID
	State       State
	Coordinator NodeID
	Holder      NodeID
	// Intents are the writes (kept while Prepared and in the Committed
	// record the caller applies).
	Intents []Intent
	// Locks are the keys held while Prepared, sorted.
	Locks []string
}

// TxnRecord is the durable transaction record kept by the record holder.
type TxnRecord struct {
	Txn    TxID
	Status Status
}

// Effect is an action the caller performs, in order, after a call returns.
type Effect interface{ effect() }

// Send asks the caller to deliver Msg to node To (Msg.To == To).
type Send struct {
	To  NodeID
	Msg Message
}

// PersistPrepare asks the caller to write Rec durably, replacing any record
// of the same Txn. A Prepared record must be durable before the caller
// calls Participant.Persisted. When Rec.State is StateCommitted the caller
// first applies Rec.Intents to the store (durably, in any number of
// batches), then writes the record (EncodePrepare drops the intents: it is
// a marker), then calls Participant.Applied; for StateAborted it calls
// Applied once the record is durable. Until Applied the transaction's keys
// stay locked. See the package documentation for why the intents and the
// marker need not be one atomic batch.
type PersistPrepare struct{ Rec PrepareRecord }

// PersistRecord asks the caller to write the transaction record durably,
// replacing any record of the same Txn, before performing later effects.
type PersistRecord struct{ Rec TxnRecord }

// Forget asks the caller to delete the participant's record of Txn.
type Forget struct{ Txn TxID }

// ForgetRecord asks the caller to delete the transaction record of Txn it
// keeps as record holder (it has been final for RecordKeepTicks, or
// FinishedTTLTicks if ABORTED).
type ForgetRecord struct{ Txn TxID }

// Outcome is what a client is told.
type Outcome uint8

// Outcomes.
const (
	OutcomeCommitted Outcome = iota + 1
	OutcomeAborted
	OutcomeUnknown
)

func (o Outcome) String() string {
	return [...]string{"?", "committed", "aborted", "unknown"}[o]
}

// ReplyClient asks the caller to answer the client of Txn. Err is nil for
// OutcomeCommitted, wraps ErrTxnAborted and the reason for OutcomeAborted,
// and is ErrOutcomeUnknown for OutcomeUnknown.
type ReplyClient struct {
	Txn     TxID
	Outcome Outcome
	Err     error
}

// TxnOf returns the transaction an effect belongs to: every effect belongs
// to exactly one, so a driver can keep one ordered queue per transaction.
func TxnOf(e Effect) TxID {
	switch e := e.(type) {
	case Send:
		return e.Msg.Txn
	case PersistPrepare:
		return e.Rec.Txn
	case PersistRecord:
		return e.Rec.Txn
	case Forget:
		return e.Txn
	case ForgetRecord:
		return e.Txn
	case ReplyClient:
		return e.Txn
	}
	panic(fmt.Sprintf("twophase: unknown effect %T", e))
}

func (Send) effect()           {}
func (PersistPrepare) effect() {}
func (PersistRecord) effect()  {}
func (Forget) effect()         {}
func (ForgetRecord) effect()   {}
func (ReplyClient) effect()    {}

// VersionBusy, given as a key's version to Participant.Step for a
// MsgPrepare, says the caller cannot serve the key to this transaction now
// (not owned here, fenced for a move, unreadable, or locked by another
// transaction when the caller read the versions): the Prepare votes no
// with ErrLockConflict, as for a held lock.
const VersionBusy = ^uint64(0)

// Keys returns the sorted, distinct keys p locks: written, read and watched
// keys.
func (p *Prepare) Keys() []string { return lockKeys(p) }

// lockKeys returns the sorted, distinct keys a Prepare locks: written, read
// and watched keys.
func lockKeys(p *Prepare) []string {
	keys := make([]string, 0, len(p.Intents)+len(p.Reads)+len(p.Watch))
	for _, in := range p.Intents {
		keys = append(keys, in.Key)
	}
	keys = append(keys, p.Reads...)
	for k := range p.Watch {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// shortKeys joins keys with commas, eliding all but the first few.
func shortKeys(keys []string) string {
	const shown = 4
	if len(keys) <= shown {
		return strings.Join(keys, ",")
	}
	return fmt.Sprintf("%s,…(%d more)", strings.Join(keys[:shown], ","), len(keys)-shown)
}
