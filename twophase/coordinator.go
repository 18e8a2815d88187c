package twophase

import (
	"fmt"
	"maps"
	"slices"
)

// Part is one participant's share of a transaction.
type Part struct {
	Node    NodeID
	Intents []Intent
	Reads   []string
	Watch   map[string]uint64
}

// Txn is a transaction as the coordinator starts it. Parts[0] holds the
// transaction record.
type Txn struct {
	ID    TxID
	Parts []Part
}

type phase uint8

const (
	phaseVoting phase = iota
	phaseDeciding
)

type ctxn struct {
	txn      Txn
	phase    phase
	votes    map[NodeID]bool
	deadline Tick
}

// Coordinator is the state machine of one node coordinating transactions.
// It keeps nothing durable: the transaction record (with the first
// participant) is the only decision, so a coordinator that restarts simply
// forgets its transactions and their participants resolve them. It is pure
// and not safe for concurrent use.
type Coordinator struct {
	id   NodeID
	cfg  Config
	txns map[TxID]*ctxn
}

// NewCoordinator returns the coordinator of node id.
func NewCoordinator(id NodeID, cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{id: id, cfg: cfg, txns: make(map[TxID]*ctxn)}, nil
}

// InFlight returns the number of transactions being coordinated.
func (c *Coordinator) InFlight() int { return len(c.txns) }

// Validate checks a transaction against the limits without starting it.
func (c *Coordinator) Validate(t Txn) error {
	if t.ID == "" {
		return fmt.Errorf("%w: empty transaction id", ErrBadTxn)
	}
	if len(t.Parts) == 0 {
		return fmt.Errorf("%w: %s has no participants", ErrBadTxn, t.ID)
	}
	seen := make(map[NodeID]bool, len(t.Parts))
	keys := make(map[string]bool)
	for _, p := range t.Parts {
		if p.Node == "" || seen[p.Node] {
			return fmt.Errorf("%w: %s lists participant %q twice or empty", ErrBadTxn, t.ID, p.Node)
		}
		seen[p.Node] = true
		for _, k := range lockKeys(&Prepare{Intents: p.Intents, Reads: p.Reads, Watch: p.Watch}) {
			keys[k] = true
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: %s has no keys", ErrBadTxn, t.ID)
	}
	if len(keys) > c.cfg.KeysPerTxnMax {
		return fmt.Errorf("%w: %s has %d keys, the maximum is %d (KeysPerTxnMax)", ErrTooManyKeys, t.ID, len(keys), c.cfg.KeysPerTxnMax)
	}
	return nil
}

// Begin starts t: it sends Prepare to every participant. The deadline is
// now + DeadlineTicks.
func (c *Coordinator) Begin(now Tick, t Txn) ([]Effect, error) {
	if err := c.Validate(t); err != nil {
		return nil, err
	}
	if c.txns[t.ID] != nil {
		return nil, fmt.Errorf("%w: %s", ErrDuplicateTxn, t.ID)
	}
	c.txns[t.ID] = &ctxn{txn: t, votes: make(map[NodeID]bool), deadline: now + c.cfg.DeadlineTicks}
	holder := t.Parts[0].Node
	out := make([]Effect, 0, len(t.Parts))
	for _, p := range t.Parts {
		pr := &Prepare{Holder: holder, Intents: p.Intents, Reads: p.Reads, Watch: p.Watch}
		out = append(out, c.send(p.Node, Message{Type: MsgPrepare, Txn: t.ID, Prepare: pr}))
	}
	return out, nil
}

func (c *Coordinator) send(to NodeID, m Message) Send {
	m.From, m.To = c.id, to
	return Send{To: to, Msg: m}
}

// Step handles a Vote or a Decision; other messages and messages for
// transactions it no longer runs are ignored.
func (c *Coordinator) Step(now Tick, m Message) []Effect {
	t := c.txns[m.Txn]
	if t == nil {
		return nil
	}
	switch {
	case m.Type == MsgVote && t.phase == phaseVoting:
		if !slices.ContainsFunc(t.txn.Parts, func(p Part) bool { return p.Node == m.From }) {
			return nil
		}
		if !m.Yes {
			return c.abort(t, m.Reason.Err())
		}
		t.votes[m.From] = true
		if len(t.votes) < len(t.txn.Parts) {
			return nil
		}
		t.phase = phaseDeciding
		return []Effect{c.send(t.txn.Parts[0].Node, Message{Type: MsgDecide, Txn: m.Txn, Status: StatusCommitted})}
	case m.Type == MsgDecision && t.phase == phaseDeciding:
		delete(c.txns, m.Txn)
		switch m.Status {
		case StatusCommitted:
			out := c.broadcast(t, MsgCommit)
			return append(out, ReplyClient{Txn: m.Txn, Outcome: OutcomeCommitted})
		case StatusAborted:
			out := c.broadcast(t, MsgAbort)
			return append(out, abortReply(m.Txn, ErrRecordAborted))
		}
		c.txns[m.Txn] = t // PENDING cannot be a decision; keep waiting
	}
	return nil
}

// abort decides ABORTED before any commit was requested: the outcome is
// certain, since only this coordinator ever asks for COMMITTED.
func (c *Coordinator) abort(t *ctxn, reason error) []Effect {
	delete(c.txns, t.txn.ID)
	out := []Effect{c.send(t.txn.Parts[0].Node, Message{Type: MsgDecide, Txn: t.txn.ID, Status: StatusAborted})}
	out = append(out, c.broadcast(t, MsgAbort)...)
	return append(out, abortReply(t.txn.ID, reason))
}

func (c *Coordinator) broadcast(t *ctxn, typ MsgType) []Effect {
	out := make([]Effect, 0, len(t.txn.Parts))
	for _, p := range t.txn.Parts {
		out = append(out, c.send(p.Node, Message{Type: typ, Txn: t.txn.ID}))
	}
	return out
}

func abortReply(id TxID, reason error) ReplyClient {
	return ReplyClient{Txn: id, Outcome: OutcomeAborted, Err: fmt.Errorf("%w: %s: %w", ErrTxnAborted, id, reason)}
}

// Tick advances time. A transaction past its deadline while collecting
// votes is aborted (certain: no commit was requested); one waiting for the
// decision is reported as OutcomeUnknown and forgotten — its participants
// resolve it through the record.
func (c *Coordinator) Tick(now Tick) []Effect {
	var out []Effect
	for _, id := range slices.Sorted(maps.Keys(c.txns)) {
		t := c.txns[id]
		if now < t.deadline {
			continue
		}
		if t.phase == phaseVoting {
			out = append(out, c.abort(t, ErrDeadline)...)
			continue
		}
		delete(c.txns, id)
		out = append(out, ReplyClient{Txn: id, Outcome: OutcomeUnknown, Err: fmt.Errorf("%w: %s", ErrOutcomeUnknown, id)})
	}
	return out
}
