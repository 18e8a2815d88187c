package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/twophase"
)

// The methods of a take's steps, one RPC each, served by every node.
const (
	MethodPause    = "snap.pause"
	MethodDrain    = "snap.drain"
	MethodCheckpt  = "snap.checkpoint"
	MethodResume   = "snap.resume"
	MethodDescribe = "snap.describe"
	MethodRelease  = "snap.release"
)

// Wire types of the steps (msgpack by field name: keep the names).
type (
	// Req is the request of every step.
	Req struct {
		ID    string
		Epoch uint64
		Txns  []twophase.TxID // snap.drain: which of these did you decide?
	}
	// DrainResp answers snap.drain: the transactions holding keys on the
	// node, and those of Req.Txns whose commit decision it sent.
	DrainResp struct {
		Held    []twophase.TxID
		Decided []twophase.TxID
	}
	// ResumeResp answers snap.resume: whether the pause was still in
	// force until then (its lease had not run out).
	ResumeResp struct{ WasActive bool }
	// PartResp answers snap.describe.
	PartResp struct{ Part coordinator.SnapshotPart }
)

// Config bounds a take. DefaultConfig has the values dbx runs with.
type Config struct {
	// StepTimeout bounds one RPC of pause, checkpoint and resume.
	StepTimeout time.Duration
	// DescribeTimeout bounds one node's describe (it hashes every file).
	DescribeTimeout time.Duration
	// DrainMax bounds the whole drain, its RPCs included.
	DrainMax time.Duration
	// DrainPoll is the wait between two drain rounds.
	DrainPoll time.Duration
	// DrainRoundsMax bounds the drain's rounds.
	DrainRoundsMax int
}

// DefaultConfig returns the bounds dbx runs with.
func DefaultConfig() Config {
	return Config{
		StepTimeout:     10 * time.Second,
		DescribeTimeout: 10 * time.Minute,
		DrainMax:        5 * time.Second,
		DrainPoll:       5 * time.Millisecond,
		DrainRoundsMax:  1000,
	}
}

// Validate reports every bound that is not positive.
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"StepTimeout", c.StepTimeout}, {"DescribeTimeout", c.DescribeTimeout}, {"DrainMax", c.DrainMax}, {"DrainPoll", c.DrainPoll}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("snapshot: %s (%s) must be positive", d.name, d.v))
		}
	}
	if c.DrainRoundsMax < 1 {
		errs = append(errs, fmt.Errorf("snapshot: DrainRoundsMax (%d) must be at least 1", c.DrainRoundsMax))
	}
	return errors.Join(errs...)
}

// Target is a node a take talks to.
type Target struct{ ID, Addr string }

// Plan is what one take covers, fixed before it starts (NewPlan).
type Plan struct {
	ID        string
	Epoch     uint64
	CreatedMs int64
	// Owners own buckets under the table of Epoch: they checkpoint and
	// describe their part.
	Owners []Target
	// Gated hold their commit decisions during the pause: the owners and
	// every other member that may coordinate a transaction.
	Gated []Target
	// Ranges are each owner's buckets under the table of Epoch.
	Ranges map[string][]coordinator.BucketRange
}

// NewPlan checks that the metadata s allows a take now and returns its
// plan, for snapshot id created at createdMs (Unix milliseconds).
func NewPlan(s *coordinator.State, id string, createdMs int64) (Plan, error) {
	t := s.Table()
	switch {
	case t == nil:
		return Plan{}, fmt.Errorf("%w: no placement yet", ErrFailed)
	case s.Target() != nil || len(s.Moves()) > 0:
		return Plan{}, fmt.Errorf("%w: a migration is in progress (buckets would be in two parts or none); retry when it is done", ErrFailed)
	}
	if _, dup := s.Snapshot(id); dup {
		return Plan{}, fmt.Errorf("%w: snapshot %s exists", ErrFailed, id)
	}
	p := Plan{ID: id, Epoch: t.Epoch(), CreatedMs: createdMs, Ranges: map[string][]coordinator.BucketRange{}}
	for _, nid := range t.Nodes() {
		if t.Count(nid) == 0 {
			continue
		}
		m, ok := s.Member(nid)
		if !ok || m.RPCAddr == "" {
			return Plan{}, fmt.Errorf("%w: node %s owns buckets but has no address", ErrFailed, nid)
		}
		p.Owners = append(p.Owners, Target{nid, m.RPCAddr})
		p.Ranges[nid] = coordinator.Ranges(t.BucketsOf(nid))
	}
	// Every node that may coordinate a transaction pauses too, owner or
	// not; a failed one that owns nothing is skipped (it is down, or cut
	// off from the nodes its decisions would go to).
	p.Gated = slices.Clone(p.Owners)
	for _, m := range s.Members() {
		if t.Count(m.ID) > 0 || m.State == coordinator.StateLeft || m.State == coordinator.StateFailed {
			continue
		}
		if m.RPCAddr == "" {
			return Plan{}, fmt.Errorf("%w: node %s has no address", ErrFailed, m.ID)
		}
		p.Gated = append(p.Gated, Target{m.ID, m.RPCAddr})
	}
	return p, nil
}

// Kind is what an Effect asks the driver to do.
type Kind int

const (
	// Call: send Method with Req to every node of To at once, each call
	// bounded by Timeout, and report one Reply per node, in To's order.
	Call Kind = iota
	// Wait: wait For (bounded by the take's context), then report.
	Wait
	// Commit: commit Manifest to Raft (coordinator.AddSnapshot) and
	// report the error.
	Commit
	// Release: release the checkpoint of Req.ID on every node of To, one
	// after the other, each bounded by Timeout, logging failures; then
	// report (nothing).
	Release
	// Done: the take is over. Err is nil once Manifest is committed.
	Done
)

// Effect is one thing the driver performs before it calls Take.Step.
type Effect struct {
	Kind     Kind
	Method   string
	To       []Target
	Req      Req
	Timeout  time.Duration
	For      time.Duration
	Manifest coordinator.SnapshotManifest
	// Pause is, on Done, how long decisions were held.
	Pause time.Duration
	Err   error
}

// Reply is one node's answer to a Call.
type Reply struct {
	Node  string
	Err   error
	Drain DrainResp  // MethodDrain
	Was   ResumeResp // MethodResume
	Part  coordinator.SnapshotPart
}

// Event reports the outcome of the last Effect.
type Event struct {
	// Now is the driver's monotonic time since the take began.
	Now time.Duration
	// Replies answer a Call, one per node of its To, in that order.
	Replies []Reply
	// Err is a Commit's error.
	Err error
}

type phase int

const (
	pausing phase = iota
	drainHeld
	drainDecided
	drainWait
	checkpointing
	resuming
	describing
	committing
	releasing
	done
)

// Take is one global snapshot take on the Raft leader, as a state machine:
// Start returns the first effect, and each Step the next one, given what
// the last one did, until an effect of Kind Done. It does no I/O and
// reads no clock; it is not safe for concurrent use.
//
// The sequence, every step bounded:
//
//  1. pause: Gated nodes hold new commit decisions and Prepares (a lease
//     on each node).
//  2. drain: rounds of asking every gated node which transactions hold
//     keys (Held) and then which of those it sent a commit decision for
//     (Decided), until none is both; such a transaction is applied
//     everywhere then, and one still holding keys has its decision held,
//     so none is half inside the snapshot. Bounded by DrainMax.
//  3. checkpoint: every owner checkpoints under Epoch.
//  4. resume: every gated node sends what it held. A pause that ran out
//     before (the lease) fails the take.
//  5. describe: every owner lists its part's files.
//  6. commit the manifest (the only thing that lists a snapshot).
//
// A failure after the pause began resumes every gated node; one after
// checkpoints were made releases them (not when the commit's outcome is
// unknown: the manifest may be listed). Every error wraps ErrFailed and
// names the node.
type Take struct {
	plan       Plan
	cfg        Config
	phase      phase
	err        error // the failure being unwound
	drainStart time.Duration
	rounds     int
	held       []twophase.TxID
	ckptErr    error
	paused     time.Duration // when the pause began
	pause      time.Duration
	man        coordinator.SnapshotManifest
}

// NewTake returns the take of plan p, bounded by cfg.
func NewTake(p Plan, cfg Config) *Take { return &Take{plan: p, cfg: cfg} }

// Start returns the first effect: the pause.
func (t *Take) Start() Effect {
	t.phase = pausing
	return t.call(MethodPause, t.plan.Gated, t.cfg.StepTimeout, nil)
}

// Step takes the outcome of the last effect and returns the next one.
func (t *Take) Step(ev Event) Effect {
	switch t.phase {
	case pausing:
		if err := t.callErrs(MethodPause, ev); err != nil {
			return t.fail(err)
		}
		t.paused, t.drainStart = ev.Now, ev.Now
		return t.askHeld(ev.Now)
	case drainHeld:
		if err := t.drainErr(ev); err != nil {
			return t.fail(err)
		}
		t.held = nil
		for _, r := range ev.Replies {
			t.held = append(t.held, r.Drain.Held...)
		}
		if len(t.held) == 0 {
			return t.checkpoint()
		}
		t.phase = drainDecided
		return t.call(MethodDrain, t.drainTargets(), t.drainLeft(ev.Now), t.held)
	case drainDecided:
		if err := t.drainErr(ev); err != nil {
			return t.fail(err)
		}
		var decided []twophase.TxID
		for _, r := range ev.Replies {
			decided = append(decided, r.Drain.Decided...)
		}
		if len(decided) == 0 {
			return t.checkpoint()
		}
		left := t.drainLeft(ev.Now)
		if left <= 0 {
			return t.fail(t.drainTimeout(decided))
		}
		t.held = decided // the last ones still not applied, for the error
		t.phase = drainWait
		return Effect{Kind: Wait, For: min(t.cfg.DrainPoll, left)}
	case drainWait:
		if t.drainLeft(ev.Now) <= 0 {
			return t.fail(t.drainTimeout(t.held))
		}
		if t.rounds++; t.rounds >= t.cfg.DrainRoundsMax {
			return t.fail(fmt.Errorf("%w: decided transactions still not applied", ErrFailed))
		}
		return t.askHeld(ev.Now)
	case checkpointing:
		t.ckptErr = t.callErrs(MethodCheckpt, ev)
		return t.resume()
	case resuming:
		err := t.callErrs(MethodResume, ev)
		if t.err != nil { // unwinding an earlier failure: done with it
			return t.done()
		}
		var lapsed []string
		for _, r := range ev.Replies {
			if r.Err == nil && !r.Was.WasActive {
				lapsed = append(lapsed, r.Node)
			}
		}
		if err == nil && len(lapsed) > 0 {
			err = fmt.Errorf("%w: the pause ran out on %s before the checkpoints were done", ErrFailed, strings.Join(lapsed, ", "))
		}
		t.pause = ev.Now - t.paused
		if err != nil || t.ckptErr != nil {
			return t.release(errors.Join(t.ckptErr, err))
		}
		t.phase = describing
		return t.call(MethodDescribe, t.plan.Owners, t.cfg.DescribeTimeout, nil)
	case describing:
		if err := t.callErrs(MethodDescribe, ev); err != nil {
			return t.release(err)
		}
		parts := make([]coordinator.SnapshotPart, len(ev.Replies))
		for i, r := range ev.Replies {
			parts[i] = r.Part
			// From the table the take was planned with (every owner
			// checked it routed with that epoch while paused).
			parts[i].Ranges = t.plan.Ranges[r.Part.Node]
		}
		t.man = coordinator.SnapshotManifest{ID: t.plan.ID, Buckets: router.NumBuckets, Epoch: t.plan.Epoch, CreatedMs: t.plan.CreatedMs, Parts: parts}
		t.phase = committing
		return Effect{Kind: Commit, Manifest: t.man}
	case committing:
		if ev.Err != nil {
			err := fmt.Errorf("%w: committing the manifest: %v", ErrFailed, ev.Err)
			if errors.Is(ev.Err, coordinator.ErrUnknownOutcome) {
				t.err = err
				return t.done() // it may be listed: keep the checkpoints
			}
			return t.release(err)
		}
		return t.done()
	case releasing:
		return t.done()
	}
	return t.done()
}

func (t *Take) req(txns []twophase.TxID) Req {
	return Req{ID: t.plan.ID, Epoch: t.plan.Epoch, Txns: txns}
}

func (t *Take) call(method string, to []Target, timeout time.Duration, txns []twophase.TxID) Effect {
	return Effect{Kind: Call, Method: method, To: to, Req: t.req(txns), Timeout: timeout}
}

// callErrs joins the failed replies' errors, each naming its node.
func (t *Take) callErrs(method string, ev Event) error {
	var errs []error
	for _, r := range ev.Replies {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: node %s: %v", ErrFailed, method, r.Node, r.Err))
		}
	}
	return errors.Join(errs...)
}

// drainErr is the first failed drain reply's error, in ID order.
func (t *Take) drainErr(ev Event) error {
	for _, r := range ev.Replies {
		if r.Err != nil {
			return fmt.Errorf("%w: drain: node %s: %v", ErrFailed, r.Node, r.Err)
		}
	}
	return nil
}

func (t *Take) drainTargets() []Target {
	return slices.SortedFunc(slices.Values(t.plan.Gated), func(a, b Target) int { return strings.Compare(a.ID, b.ID) })
}

func (t *Take) drainLeft(now time.Duration) time.Duration {
	return t.cfg.DrainMax - (now - t.drainStart)
}

func (t *Take) askHeld(now time.Duration) Effect {
	t.phase = drainHeld
	return t.call(MethodDrain, t.drainTargets(), t.drainLeft(now), nil)
}

func (t *Take) drainTimeout(decided []twophase.TxID) error {
	return fmt.Errorf("%w: %d decided transactions (first %s) still not applied after %s", ErrFailed, len(decided), decided[0], t.cfg.DrainMax)
}

func (t *Take) checkpoint() Effect {
	t.phase = checkpointing
	return t.call(MethodCheckpt, t.plan.Owners, t.cfg.StepTimeout, nil)
}

func (t *Take) resume() Effect {
	t.phase = resuming
	return t.call(MethodResume, t.plan.Gated, t.cfg.StepTimeout, nil)
}

// fail unwinds a failure before any checkpoint exists: resume, then done.
func (t *Take) fail(err error) Effect {
	t.err = err
	return t.resume()
}

// release unwinds a failure once the pause is over: release every
// owner's checkpoint, then done.
func (t *Take) release(err error) Effect {
	t.err = err
	t.phase = releasing
	return Effect{Kind: Release, To: t.plan.Owners, Req: t.req(nil), Timeout: t.cfg.StepTimeout}
}

func (t *Take) done() Effect {
	t.phase = done
	if t.err != nil {
		return Effect{Kind: Done, Err: t.err}
	}
	return Effect{Kind: Done, Manifest: t.man, Pause: t.pause}
}
