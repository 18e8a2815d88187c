package rebalancer

import "fmt"

// PullConfig bounds a target's catch-up.
type PullConfig struct {
	// TailRoundsMax bounds the catch-up rounds before the fence;
	// FenceLag is a change count small enough to fence at.
	TailRoundsMax int
	FenceLag      int
}

// DefaultPullConfig: at most 64 rounds, fence below 512 changes.
func DefaultPullConfig() PullConfig { return PullConfig{TailRoundsMax: 64, FenceLag: 512} }

// Step is what a target's pull does next.
type Step uint8

// The steps of a pull, in order. Copy, Tail and Fence each apply what the
// source answers; Durable waits until everything applied is durable; the
// leader may switch only after Done.
const (
	StepBegin   Step = iota + 1 // ask the source to begin (tap, snapshot)
	StepCopy                    // copy the snapshot, page by page
	StepTail                    // fetch and apply one round of changes since
	StepFence                   // fence the source and apply its last changes
	StepDurable                 // make everything applied durable
	StepDone                    // answer the leader: the move may switch
	StepFailed                  // answer the leader: the move must be cancelled
)

func (s Step) String() string {
	return [...]string{"?", "begin", "copy", "tail", "fence", "durable", "done", "failed"}[s]
}

// Pull is the target side of one move as a sequence: Begin, Copy, Tail
// rounds, Fence, Durable, Done. The driver performs Next, reports its
// outcome with Did, and asks Next again. On a failure it reports Failed:
// AbortSource says whether the driver should tell the source to drop the
// move (not after the fence was asked: the source may be fenced, and only
// the log's verdict may lift that).
type Pull struct {
	cfg    PullConfig
	step   Step
	rounds int
	// AbortSource: set when the pull failed before asking for the fence.
	AbortSource bool
	Err         error
}

// NewPull returns a pull about to begin.
func NewPull(cfg PullConfig) *Pull { return &Pull{cfg: cfg, step: StepBegin} }

// Next is the step to perform.
func (p *Pull) Next() Step { return p.step }

// Did reports the outcome of the current step. For StepTail, changes is
// the count the source sent plus the count it says are left.
func (p *Pull) Did(err error, changes int) Step {
	if p.step == StepDone || p.step == StepFailed {
		return p.step
	}
	if err != nil {
		p.AbortSource = p.step < StepFence
		p.Err = fmt.Errorf("%s: %w", p.step, err)
		p.step = StepFailed
		return p.step
	}
	switch p.step {
	case StepBegin:
		p.step = StepCopy
	case StepCopy:
		p.step = StepTail
	case StepTail:
		p.rounds++
		if changes < p.cfg.FenceLag || p.rounds >= p.cfg.TailRoundsMax {
			p.step = StepFence
		}
	case StepFence:
		p.step = StepDurable
	case StepDurable:
		p.step = StepDone
	}
	return p.step
}
