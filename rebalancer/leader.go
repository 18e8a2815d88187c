package rebalancer

import (
	"fmt"
	"slices"
	"strings"
)

// ChunkBucketsMax is the most buckets one move carries: big enough to
// amortize the two log entries and the fence of a move.
const ChunkBucketsMax = 256

// Leader is the metadata leader's side of moves: it cuts the pending
// buckets into moves (one source, one target, at most ChunkBucketsMax
// buckets), starts them up to the concurrency limit, has each one pulled,
// and commits its switch or its cancellation. It cancels moves no running
// leader carries (a previous leader's). Pure: the driver proposes, calls
// the target, and reports back.
type Leader struct {
	// running are the moves this leader carries, from ProposeStart until
	// Ended (or StartFailed).
	running map[string]bool
}

// NewLeader returns a leader carrying no move.
func NewLeader() *Leader { return &Leader{running: map[string]bool{}} }

// Running is the number of moves this leader carries.
func (l *Leader) Running() int { return len(l.running) }

// Plan returns, in order: the cancellation of every move in v this leader
// does not carry, then the start of new moves for v's pending buckets up
// to concurrency moves running (pending buckets whose source or target is
// not alive wait). token makes each new move's token.
func (l *Leader) Plan(v View, alive func(id string) bool, concurrency int, token func() string) []Effect {
	var effs []Effect
	for _, mv := range v.Moves() {
		if !l.running[mv.Token] {
			effs = append(effs, ProposeCancel{Token: mv.Token, Reason: "no leader runs it"})
		}
	}
	if v.Target() == nil || v.Table() == nil {
		return effs
	}
	pending := v.Pending()
	for len(pending) > 0 && len(l.running) < concurrency {
		from, to := v.Table().OwnerOfBucket(pending[0]), v.Target().OwnerOfBucket(pending[0])
		var chunk, rest []uint16
		for _, b := range pending {
			if len(chunk) < ChunkBucketsMax && v.Table().OwnerOfBucket(b) == from && v.Target().OwnerOfBucket(b) == to {
				chunk = append(chunk, b)
			} else {
				rest = append(rest, b)
			}
		}
		pending = rest
		if !alive(from) || !alive(to) {
			continue
		}
		tok := token()
		l.running[tok] = true
		effs = append(effs, ProposeStart{Move: Move{Token: tok, From: from, To: to, Buckets: chunk}})
	}
	return effs
}

// Started: the move's start committed at index; have its target pull it.
func (l *Leader) Started(mv Move, index uint64, bytesPerSec int64) []Effect {
	if !l.running[mv.Token] {
		return nil
	}
	return []Effect{RunPull{Move: mv, Index: index, BytesPerSec: bytesPerSec}}
}

// StartFailed: the start was not committed (or not known to be); the move
// is not carried. (If it did commit, the next leader pass finds it an
// orphan and cancels it.)
func (l *Leader) StartFailed(token string) { delete(l.running, token) }

// PullDone: the target's pull ended; commit the switch if it succeeded,
// the cancellation if not. Call Ended once the proposal returns.
func (l *Leader) PullDone(token string, bytes int64, err error) []Effect {
	if !l.running[token] {
		return nil
	}
	if err != nil {
		return []Effect{ProposeCancel{Token: token, Reason: err.Error()}}
	}
	return []Effect{ProposeFinish{Token: token, Bytes: bytes}}
}

// Ended: the move's switch or cancellation was proposed (committed or
// not: a move still in the log and no longer carried is cancelled by the
// next Plan).
func (l *Leader) Ended(token string) { delete(l.running, token) }

// Waiting says which nodes pending buckets cannot move without (their
// source or target not alive), as "waiting for n3 (failed): 1488 buckets
// move from or to it; …" — empty when none. state names a node's state.
func Waiting(v View, alive func(id string) bool, state func(id string) string) string {
	if v.Target() == nil || v.Table() == nil {
		return ""
	}
	blocked := map[string]int{}
	for _, b := range v.Pending() {
		for _, id := range []string{v.Table().OwnerOfBucket(b), v.Target().OwnerOfBucket(b)} {
			if !alive(id) {
				blocked[id]++
				break
			}
		}
	}
	ids := make([]string, 0, len(blocked))
	for id := range blocked {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("waiting for %s (%s): %d buckets move from or to it", id, state(id), blocked[id]))
	}
	return strings.Join(parts, "; ")
}
