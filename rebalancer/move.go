package rebalancer

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dbx-kv/dbx/router"
)

// Move is a bucket move in progress, as the metadata log has it: the
// buckets' primary goes from From to To once its switch commits.
type Move struct {
	Token   string   `json:"token"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Buckets []uint16 `json:"buckets"`
}

// View is what the state machines read of the applied cluster metadata
// (the coordinator's State satisfies it). A View must not change once
// given: a new applied entry is a new View.
type View interface {
	// Index is the log index the view has applied.
	Index() uint64
	// Table is the placement in force; nil before the first one.
	Table() *router.Table
	// Target is the placement being migrated to; nil when none.
	Target() *router.Table
	// Moves are the moves in progress, sorted by token.
	Moves() []Move
	// Move is the move in progress with this token.
	Move(token string) (Move, bool)
	// Pending are the buckets whose owner differs between Table and
	// Target and that no move carries, ascending (Plan's diff).
	Pending() []uint16
}

// Errors of the move protocol. They wrap with %w; classify with errors.Is.
var (
	// ErrUnknownMove: the move is not (or no longer) known where asked:
	// it ended, or the node restarted since it began.
	ErrUnknownMove = errors.New("rebalancer: no such move")
	// ErrBadMove: a request does not match the move in the metadata (other
	// buckets, another source or target), or a bucket is in another move.
	ErrBadMove = errors.New("rebalancer: bad move")
	// ErrOverflow: more keys changed during a move's copy than the source
	// records (LocalConfig.DirtyKeysMax); the move must start over.
	ErrOverflow = errors.New("rebalancer: too many keys changed during the move")
)

// Effect is an action a state machine asks its driver to perform, in the
// order returned.
type Effect interface{ effect() }

type (
	// Release: close what the driver holds for an outgoing move (its
	// engine snapshot and scan iterator), generation Gen of Token.
	Release struct {
		Token string
		Gen   uint64
	}
	// Unfenced: some fence went down; wake requests waiting on a fence.
	Unfenced struct{}
	// DeleteBuckets: delete the local data of Buckets, then call
	// Local.Deleted(Buckets). They are marked deleting until then: no pull
	// registers them and no other cleanup deletes them.
	DeleteBuckets struct {
		Buckets []uint16
		Why     string
	}
	// ProposeCancel: propose the move's cancellation to the metadata log
	// (ErrUnknownMove back means the switch or a cancellation won).
	ProposeCancel struct{ Token, Reason string }
	// ProposeStart: propose the move's start; call Leader.Started with the
	// entry's index, or Leader.StartFailed.
	ProposeStart struct{ Move Move }
	// ProposeFinish: propose the move's switch; call Leader.Ended after.
	ProposeFinish struct {
		Token string
		Bytes int64
	}
	// RunPull: ask the move's target to pull it (Index: the start's log
	// index); call Leader.PullDone with the outcome.
	RunPull struct {
		Move        Move
		Index       uint64
		BytesPerSec int64
	}
	// CancelPull: stop this node's pull of Token (its move has ended).
	CancelPull struct{ Token string }
	// Synced: the node has applied the metadata log as far as the leader
	// had committed when it asked (Local.CatchUpTo): it may serve.
	Synced struct{ Index uint64 }
)

func (Release) effect()       {}
func (Unfenced) effect()      {}
func (DeleteBuckets) effect() {}
func (ProposeCancel) effect() {}
func (ProposeStart) effect()  {}
func (ProposeFinish) effect() {}
func (RunPull) effect()       {}
func (CancelPull) effect()    {}
func (Synced) effect()        {}

func (e Release) String() string { return fmt.Sprintf("release %s#%d", e.Token, e.Gen) }
func (Unfenced) String() string  { return "unfenced" }
func (e DeleteBuckets) String() string {
	return fmt.Sprintf("delete-buckets %s (%s)", fmtBuckets(e.Buckets), e.Why)
}
func (e ProposeCancel) String() string {
	return fmt.Sprintf("propose-cancel %s: %s", e.Token, e.Reason)
}
func (e ProposeStart) String() string {
	return fmt.Sprintf("propose-start %s %s->%s %s", e.Move.Token, e.Move.From, e.Move.To, fmtBuckets(e.Move.Buckets))
}
func (e ProposeFinish) String() string { return fmt.Sprintf("propose-finish %s", e.Token) }
func (e RunPull) String() string {
	return fmt.Sprintf("run-pull %s %s->%s @%d", e.Move.Token, e.Move.From, e.Move.To, e.Index)
}
func (e CancelPull) String() string { return fmt.Sprintf("cancel-pull %s", e.Token) }
func (e Synced) String() string     { return fmt.Sprintf("synced @%d", e.Index) }

// fmtBuckets prints buckets as ranges: 1-3,7.
func fmtBuckets(bs []uint16) string {
	bs = slices.Clone(bs)
	slices.Sort(bs)
	s := ""
	for i := 0; i < len(bs); {
		j := i
		for j+1 < len(bs) && bs[j+1] == bs[j]+1 {
			j++
		}
		if s != "" {
			s += ","
		}
		s += BucketRange{bs[i], bs[j]}.String()
		i = j + 1
	}
	if s == "" {
		return "-"
	}
	return s
}
