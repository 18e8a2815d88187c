package snapshot

import (
	"fmt"
	"time"

	"github.com/dbx-kv/dbx/twophase"
)

const (
	// decidedKeep is how long a sent commit decision is remembered for
	// the drain: a transaction whose decision went out longer ago and that
	// still holds keys is taken as stuck, not in flight.
	decidedKeep = time.Minute
	// decidedMax bounds the decisions remembered per generation.
	decidedMax = 1 << 20
)

// Gate is one node's side of a take's pause: while paused it holds the
// commit decisions (MsgDecide COMMITTED) the node's 2PC coordinator sends,
// and otherwise it remembers which decisions went out (two generations,
// rotated every decidedKeep), for the drain. A pause is a lease: it ends
// by itself at its deadline, and Resume then still hands back what it
// held.
//
// Gate reads no clock (every method takes now) and starts nothing; the
// zero value is ready. It is not safe for concurrent use: node/ guards it
// with a mutex, and owns the wait of Prepares and the lease's timer.
type Gate struct {
	token string // the paused snapshot, "" when not paused
	until time.Time
	held  []twophase.Message
	// decided remembers the transactions whose commit decision was sent.
	decided, decidedOld map[twophase.TxID]bool
	rotated             time.Time
}

// Paused reports whether a pause is in force at now.
func (g *Gate) Paused(now time.Time) bool { return g.token != "" && now.Before(g.until) }

// Until is the current pause's deadline.
func (g *Gate) Until() time.Time { return g.until }

// HoldDecide keeps m (a MsgDecide COMMITTED) while paused and reports
// whether it did; otherwise it records the decision as sent.
func (g *Gate) HoldDecide(now time.Time, m twophase.Message) bool {
	if g.Paused(now) {
		g.held = append(g.held, m)
		return true
	}
	if g.decided == nil || now.Sub(g.rotated) > decidedKeep || len(g.decided) >= decidedMax {
		g.decidedOld, g.decided, g.rotated = g.decided, map[twophase.TxID]bool{}, now
	}
	g.decided[m.Txn] = true
	return false
}

// Pause starts, or extends, the pause of token until now + lease. It
// refuses while another snapshot's pause is in force. began reports a new
// pause (another token than before); lapsed, that it replaced a pause
// that ran out without a resume (whose waiters must be let go).
//
// Prepares already past the gate need no wait: a transaction they prepare
// cannot commit during the pause, since its commit decision is held like
// every other.
func (g *Gate) Pause(now time.Time, token string, lease time.Duration) (began, lapsed bool, err error) {
	if g.Paused(now) && g.token != token {
		return false, false, fmt.Errorf("%w: paused for snapshot %s already", ErrFailed, g.token)
	}
	began, lapsed = g.token != token, g.token != "" && g.token != token
	g.token, g.until = token, now.Add(lease)
	return began, lapsed, nil
}

// Active reports whether the pause of token is in force at now.
func (g *Gate) Active(now time.Time, token string) bool { return g.token == token && g.Paused(now) }

// Resume ends the pause of token, or one of another token that ran out,
// and returns the decisions it held (to send now), whether the pause of
// token was in force until now, and whether a pause ended.
func (g *Gate) Resume(now time.Time, token string) (held []twophase.Message, wasActive, ended bool) {
	wasActive = g.Active(now, token)
	if g.token == "" || (g.token != token && g.Paused(now)) {
		return nil, wasActive, false
	}
	held, g.held = g.held, nil
	g.token = ""
	return held, wasActive, true
}

// SentDecisions returns those of ids whose commit decision was sent (and
// is still remembered).
func (g *Gate) SentDecisions(ids []twophase.TxID) []twophase.TxID {
	var out []twophase.TxID
	for _, id := range ids {
		if g.decided[id] || g.decidedOld[id] {
			out = append(out, id)
		}
	}
	return out
}
