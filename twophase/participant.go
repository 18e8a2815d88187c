package twophase

import (
	"fmt"
	"maps"
	"slices"
)

// ptxn is a participant's in-memory state of one transaction.
type ptxn struct {
	rec PrepareRecord
	// voted is set once the yes vote may have left (after Persisted, or
	// for any Prepared record restored from disk).
	voted bool
	// since is when the state was entered; next is when to query the
	// record holder again (Prepared and voted) or give up (not voted).
	since, next Tick
	// reason is the no vote to repeat for a duplicate Prepare.
	reason Reason
	// held are the keys still locked after the decision (Committed or
	// Aborted) until the caller reports it durable with Applied.
	held []string
}

// hrec is a transaction record held by this node.
type hrec struct {
	status  Status
	expires Tick
	// done is when the record became final (or was restored final).
	done Tick
}

// Participant is the state machine of one node taking part in
// transactions: its prepared transactions, its lock table and the
// transaction records it holds (as first participant). It is pure and not
// safe for concurrent use: the node drives it from one goroutine and
// performs the returned effects in order.
type Participant struct {
	id      NodeID
	cfg     Config
	locks   Locks
	txns    map[TxID]*ptxn
	records map[TxID]*hrec
	// prepared are the txns in StatePrepared: Tick visits only these.
	prepared map[TxID]bool
	// unapplied are the decided txns whose keys stay locked until Applied.
	unapplied map[TxID]bool
	// finished, aborted and committed queue finished transactions and
	// final records in the order their clocks started (ticks never go
	// back), so Tick expires them without scanning everything.
	finished, aborted, committed []stamp
}

// stamp is a queued expiry: id's clock started at at.
type stamp struct {
	at Tick
	id TxID
}

// NewParticipant returns the participant of node id with no state. Use
// Restore before serving after a restart.
func NewParticipant(id NodeID, cfg Config) (*Participant, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Participant{id: id, cfg: cfg, txns: make(map[TxID]*ptxn), records: make(map[TxID]*hrec),
		prepared: make(map[TxID]bool), unapplied: make(map[TxID]bool)}, nil
}

// Restore loads the persisted prepare records and transaction records of
// this node (Stored.Restore decodes them from the caller's storage).
// Prepared transactions take their locks again and are in doubt: they
// count as voted, and the returned effects query their record holders at
// once. A Committed or Aborted record is a durable, applied decision: it
// takes no lock. The node must not serve keys until Restore has returned
// (the locks then keep in-doubt keys out of reach until resolved and
// applied).
func (p *Participant) Restore(now Tick, prepares []PrepareRecord, records []TxnRecord) ([]Effect, error) {
	for _, r := range records {
		if _, dup := p.records[r.Txn]; dup {
			return nil, fmt.Errorf("%w: transaction record %s twice", ErrBadRecords, r.Txn)
		}
		p.records[r.Txn] = &hrec{status: r.Status, expires: now + p.cfg.RecordTTLTicks, done: now}
		p.queueRecord(r.Txn, r.Status, now)
	}
	for _, r := range prepares {
		if _, dup := p.txns[r.Txn]; dup {
			return nil, fmt.Errorf("%w: prepare record %s twice", ErrBadRecords, r.Txn)
		}
		t := &ptxn{rec: r, since: now, next: now}
		if r.State == StatePrepared {
			t.voted = true
			if k, h, ok := p.locks.Acquire(r.Txn, r.Locks); !ok {
				return nil, fmt.Errorf("%w: key %q held by both %s and %s", ErrBadRecords, k, h, r.Txn)
			}
			p.prepared[r.Txn] = true
		} else {
			p.finished = append(p.finished, stamp{now, r.Txn})
		}
		p.txns[r.Txn] = t
	}
	return p.Tick(now), nil
}

// Locks returns the lock table, for the node to check before serving a key.
// A key stays locked from its Prepare until the decision is applied
// (Applied), not only until the decision is known.
func (p *Participant) Locks() *Locks { return &p.locks }

// Holding returns the transactions holding locks here, sorted: prepared
// ones and decided ones not yet Applied.
func (p *Participant) Holding() []TxID {
	out := make([]TxID, 0, len(p.prepared)+len(p.unapplied))
	for id := range p.prepared {
		out = append(out, id)
	}
	for id := range p.unapplied {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Applied tells the participant that the decision of txn is durable: for a
// commit, its intents are applied and its Committed record written; for an
// abort, its Aborted record written. Only then are its keys released.
// Calling it for a transaction that holds no locks does nothing.
func (p *Participant) Applied(txn TxID) {
	t := p.txns[txn]
	if t == nil || !p.unapplied[txn] {
		return
	}
	p.locks.Release(txn, t.held)
	t.held = nil
	delete(p.unapplied, txn)
}

// State returns the participant's state of txn.
func (p *Participant) State(txn TxID) State {
	if t := p.txns[txn]; t != nil {
		return t.rec.State
	}
	return StateNone
}

// Record returns the status of a transaction record held here.
func (p *Participant) Record(txn TxID) Status {
	if r := p.records[txn]; r != nil {
		return r.status
	}
	return StatusUnknown
}

// InDoubt returns the transactions prepared here and not yet resolved,
// sorted.
func (p *Participant) InDoubt() []TxID {
	var out []TxID
	for _, id := range slices.Sorted(maps.Keys(p.txns)) {
		if p.txns[id].rec.State == StatePrepared {
			out = append(out, id)
		}
	}
	return out
}

// Step handles one message addressed to this node. versions is consulted
// only for MsgPrepare: it must hold the current version of every key in
// m.Prepare.Watch (a missing key has version 0), read in the same critical
// section as the call.
func (p *Participant) Step(now Tick, m Message, versions map[string]uint64) []Effect {
	switch m.Type {
	case MsgPrepare:
		if m.Prepare == nil {
			return nil
		}
		return p.prepare(now, m, versions)
	case MsgCommit:
		return p.finish(now, m.Txn, true)
	case MsgAbort:
		return p.finish(now, m.Txn, false)
	case MsgDecide:
		// The answer leaves as soon as the record is durable; this
		// node's own part is finished after it (its locks keep its keys
		// until applied).
		var out []Effect
		st, changed := p.cas(now, m.Txn, m.Status, &out)
		out = append(out, p.send(m.From, Message{Type: MsgDecision, Txn: m.Txn, Status: st}))
		if changed {
			out = append(out, p.learnOwn(now, m.Txn, st)...)
		}
		return out
	case MsgResolve:
		var out []Effect
		st, changed := p.resolveRecord(now, m.Txn, &out)
		out = append(out, p.send(m.From, Message{Type: MsgResolveReply, Txn: m.Txn, Status: st}))
		if changed {
			out = append(out, p.learnOwn(now, m.Txn, st)...)
		}
		return out
	case MsgResolveReply:
		return p.learn(now, m.Txn, m.Status)
	}
	return nil
}

func (p *Participant) send(to NodeID, m Message) Send {
	m.From, m.To = p.id, to
	return Send{To: to, Msg: m}
}

func (p *Participant) prepare(now Tick, m Message, versions map[string]uint64) []Effect {
	if t := p.txns[m.Txn]; t != nil {
		// Duplicate or late Prepare: repeat the vote already cast (none
		// yet if the prepare record is not durable).
		switch {
		case t.rec.State == StateAborted:
			return []Effect{p.send(m.From, Message{Type: MsgVote, Txn: m.Txn, Reason: t.reason})}
		case t.rec.State == StateCommitted || t.voted:
			return []Effect{p.send(m.From, Message{Type: MsgVote, Txn: m.Txn, Yes: true})}
		}
		return nil
	}
	pr := m.Prepare
	rec := PrepareRecord{Txn: m.Txn, State: StatePrepared, Coordinator: m.From, Holder: pr.Holder}
	if pr.Holder == p.id {
		if r := p.records[m.Txn]; r != nil && r.status != StatusPending {
			return p.refuse(now, rec, ReasonRecordAborted)
		}
	}
	keys := lockKeys(pr)
	for _, k := range keys {
		if versions[k] == VersionBusy {
			return p.refuse(now, rec, ReasonLockConflict)
		}
	}
	if _, _, ok := p.locks.Acquire(m.Txn, keys); !ok {
		return p.refuse(now, rec, ReasonLockConflict)
	}
	for _, k := range slices.Sorted(maps.Keys(pr.Watch)) {
		if versions[k] != pr.Watch[k] {
			p.locks.Release(m.Txn, keys)
			return p.refuse(now, rec, ReasonWatchConflict)
		}
	}
	rec.Intents = slices.Clone(pr.Intents)
	rec.Locks = keys
	p.txns[m.Txn] = &ptxn{rec: rec, since: now, next: now + p.cfg.DeadlineTicks}
	p.prepared[m.Txn] = true
	var out []Effect
	if pr.Holder == p.id && p.records[m.Txn] == nil {
		p.records[m.Txn] = &hrec{status: StatusPending, expires: now + p.cfg.RecordTTLTicks}
		out = append(out, PersistRecord{TxnRecord{Txn: m.Txn, Status: StatusPending}})
	}
	return append(out, PersistPrepare{rec})
}

// refuse aborts a transaction before its vote and votes no.
func (p *Participant) refuse(now Tick, rec PrepareRecord, why Reason) []Effect {
	rec.State, rec.Intents, rec.Locks = StateAborted, nil, nil
	p.txns[rec.Txn] = &ptxn{rec: rec, since: now, reason: why}
	p.finished = append(p.finished, stamp{now, rec.Txn})
	var out []Effect
	if rec.Holder == p.id {
		p.cas(now, rec.Txn, StatusAborted, &out)
	}
	out = append(out, PersistPrepare{rec})
	return append(out, p.send(rec.Coordinator, Message{Type: MsgVote, Txn: rec.Txn, Reason: why}))
}

// Persisted tells the participant that the Prepared record of txn is
// durable; it returns the yes vote. From then on the participant cannot
// abort on its own: only the record decides.
func (p *Participant) Persisted(now Tick, txn TxID) []Effect {
	t := p.txns[txn]
	if t == nil || t.rec.State != StatePrepared || t.voted {
		return nil
	}
	t.voted = true
	t.next = now + p.cfg.ResolveTicks
	return []Effect{p.send(t.rec.Coordinator, Message{Type: MsgVote, Txn: txn, Yes: true})}
}

// AbortUnvoted aborts a prepared transaction whose yes vote has not been
// released by Persisted (its prepare record could not be written, say),
// and votes no. Its keys stay locked until Applied (its Prepared record
// may still be on its way to disk). It returns ErrAlreadyVoted once the
// vote may have left.
func (p *Participant) AbortUnvoted(now Tick, txn TxID) ([]Effect, error) {
	t := p.txns[txn]
	if t == nil || t.rec.State != StatePrepared {
		return nil, nil
	}
	if t.voted {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyVoted, txn)
	}
	delete(p.txns, txn)
	delete(p.prepared, txn)
	out := p.refuse(now, t.rec, ReasonParticipantAborted)
	p.hold(txn, t.rec.Locks)
	return out, nil
}

// hold keeps the keys of a decided txn locked until Applied.
func (p *Participant) hold(txn TxID, keys []string) {
	if len(keys) == 0 {
		return
	}
	p.txns[txn].held = keys
	p.unapplied[txn] = true
}

// finish applies a decision to this participant's state of txn.
func (p *Participant) finish(now Tick, txn TxID, commit bool) []Effect {
	t := p.txns[txn]
	if t == nil {
		if commit {
			// Never prepared here (or forgotten long ago): nothing to do.
			return nil
		}
		// Abort before Prepare: remember it so a late Prepare is refused.
		rec := PrepareRecord{Txn: txn, State: StateAborted}
		p.txns[txn] = &ptxn{rec: rec, since: now, reason: ReasonRecordAborted}
		p.finished = append(p.finished, stamp{now, txn})
		return []Effect{PersistPrepare{rec}}
	}
	if t.rec.State != StatePrepared {
		return nil // duplicate
	}
	delete(p.prepared, txn)
	p.finished = append(p.finished, stamp{now, txn})
	p.hold(txn, t.rec.Locks)
	t.rec.Locks = nil
	t.since = now
	if commit {
		t.rec.State = StateCommitted
	} else {
		t.rec.State, t.rec.Intents, t.reason = StateAborted, nil, ReasonRecordAborted
	}
	out := []Effect{PersistPrepare{t.rec}}
	if commit {
		// The caller applies the intents before it writes the record;
		// the marker kept in memory does not need them.
		t.rec.Intents = nil
	}
	return out
}

// learn handles a record status learned while in doubt.
func (p *Participant) learn(now Tick, txn TxID, st Status) []Effect {
	switch st {
	case StatusCommitted:
		return p.finish(now, txn, true)
	case StatusAborted:
		return p.finish(now, txn, false)
	}
	return nil
}

// cas is the decision: PENDING (or no record) → want. No record means the
// holder never prepared or a resolver already presumed abort, so only
// ABORTED can be set. It returns the final status and whether this call
// set it (then out has its PersistRecord, and the caller finishes this
// node's own part with learnOwn).
func (p *Participant) cas(now Tick, txn TxID, want Status, out *[]Effect) (Status, bool) {
	r := p.records[txn]
	switch {
	case r == nil:
		r = &hrec{status: StatusAborted, done: now}
		p.records[txn] = r
	case r.status == StatusPending:
		r.status, r.done = want, now
	default:
		return r.status, false
	}
	p.queueRecord(txn, r.status, now)
	*out = append(*out, PersistRecord{TxnRecord{Txn: txn, Status: r.status}})
	return r.status, true
}

// learnOwn finishes this node's own voted part of txn with the status its
// record just got here.
func (p *Participant) learnOwn(now Tick, txn TxID, st Status) []Effect {
	if t := p.txns[txn]; t != nil && t.rec.State == StatePrepared && t.voted {
		return p.learn(now, txn, st)
	}
	return nil
}

// resolveRecord answers an in-doubt query: an unknown record or a PENDING
// one past its TTL becomes ABORTED (presumed abort). changed is as for cas.
func (p *Participant) resolveRecord(now Tick, txn TxID, out *[]Effect) (st Status, changed bool) {
	r := p.records[txn]
	if r == nil || (r.status == StatusPending && now >= r.expires) {
		return p.cas(now, txn, StatusAborted, out)
	}
	return r.status, false
}

// Resolve queries the record holder about txn now, if it is in doubt here
// (the node may call it when a client waits on a locked key).
func (p *Participant) Resolve(now Tick, txn TxID) []Effect {
	t := p.txns[txn]
	if t == nil || t.rec.State != StatePrepared || !t.voted {
		return nil
	}
	t.next = now + p.cfg.ResolveTicks
	if t.rec.Holder == p.id {
		// The record is here: learn it directly. (cas learns a status it
		// sets itself; a record already final, as after a restart, is
		// learned here. finish ignores a duplicate.)
		var out []Effect
		st, _ := p.resolveRecord(now, txn, &out)
		return append(out, p.learn(now, txn, st)...)
	}
	return []Effect{p.send(t.rec.Holder, Message{Type: MsgResolve, Txn: txn})}
}

// Tick advances time: in-doubt transactions query their record holder
// every ResolveTicks, prepared ones whose vote never left are aborted after
// DeadlineTicks, finished (and applied) ones are forgotten after
// FinishedTTLTicks, and
// final transaction records held here are dropped after RecordKeepTicks
// (COMMITTED) or FinishedTTLTicks (ABORTED). Its cost is proportional to
// the prepared transactions and to what expires, not to what is kept.
func (p *Participant) Tick(now Tick) []Effect {
	var out []Effect
	for _, id := range slices.Sorted(maps.Keys(p.prepared)) {
		t := p.txns[id]
		switch {
		case t.voted && now >= t.next:
			out = append(out, p.Resolve(now, id)...)
		case !t.voted && now >= t.next:
			effs, _ := p.AbortUnvoted(now, id)
			out = append(out, effs...)
		}
	}
	for len(p.finished) > 0 && now >= p.finished[0].at+p.cfg.FinishedTTLTicks {
		s := p.finished[0]
		p.finished = p.finished[1:]
		t := p.txns[s.id]
		if t == nil || t.rec.State == StatePrepared || t.since != s.at {
			continue
		}
		if p.unapplied[s.id] {
			// Not applied yet (its write failed, say): keep it, and its
			// locks, for another FinishedTTLTicks.
			t.since = now
			p.finished = append(p.finished, stamp{now, s.id})
			continue
		}
		delete(p.txns, s.id)
		out = append(out, Forget{Txn: s.id})
	}
	out = p.expireRecords(now, &p.aborted, p.cfg.FinishedTTLTicks, out)
	return p.expireRecords(now, &p.committed, p.cfg.RecordKeepTicks, out)
}

// queueRecord starts the keep clock of a final record.
func (p *Participant) queueRecord(txn TxID, st Status, now Tick) {
	switch st {
	case StatusAborted:
		p.aborted = append(p.aborted, stamp{now, txn})
	case StatusCommitted:
		p.committed = append(p.committed, stamp{now, txn})
	}
}

func (p *Participant) expireRecords(now Tick, q *[]stamp, keep Tick, out []Effect) []Effect {
	for len(*q) > 0 && now >= (*q)[0].at+keep {
		s := (*q)[0]
		*q = (*q)[1:]
		if r := p.records[s.id]; r != nil && r.status != StatusPending && r.done == s.at {
			delete(p.records, s.id)
			out = append(out, ForgetRecord{Txn: s.id})
		}
	}
	return out
}
