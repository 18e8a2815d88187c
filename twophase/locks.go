package twophase

import "iter"

// Locks is the lock table of one participant: key → the transaction holding
// it. Locks are exclusive and acquired without waiting: a conflict is
// reported at once and the transaction votes no, so there are no deadlocks;
// the client may retry a bounded number of times. The zero value is empty
// and ready to use. It is not safe for concurrent use.
type Locks struct {
	held map[string]TxID
}

// Acquire takes every key for txn, or none: it returns the first key (in
// the given order) held by another transaction and that transaction.
// Re-acquiring a key txn already holds succeeds.
func (l *Locks) Acquire(txn TxID, keys []string) (conflict string, holder TxID, ok bool) {
	for _, k := range keys {
		if h, found := l.held[k]; found && h != txn {
			return k, h, false
		}
	}
	if l.held == nil {
		l.held = make(map[string]TxID)
	}
	for _, k := range keys {
		l.held[k] = txn
	}
	return "", "", true
}

// Release frees the keys held by txn; keys held by others are untouched.
func (l *Locks) Release(txn TxID, keys []string) {
	for _, k := range keys {
		if l.held[k] == txn {
			delete(l.held, k)
		}
	}
}

// Holder returns the transaction holding key, if any. The node must not
// serve reads or writes of a held key outside that transaction.
func (l *Locks) Holder(key string) (TxID, bool) {
	h, ok := l.held[key]
	return h, ok
}

// Len returns the number of held keys.
func (l *Locks) Len() int { return len(l.held) }

// All returns every held key with the transaction holding it, in no
// particular order. The table must not change during the iteration.
func (l *Locks) All() iter.Seq2[string, TxID] {
	return func(yield func(string, TxID) bool) {
		for k, h := range l.held {
			if !yield(k, h) {
				return
			}
		}
	}
}
