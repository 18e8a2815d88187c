package rebalancer

import (
	"fmt"
	"slices"
	"strings"
)

// LocalConfig bounds one node's part in moves. Times are in ticks (the
// driver's Tick calls; node ticks every 250 ms).
type LocalConfig struct {
	// DirtyKeysMax bounds the keys a source records as changed during one
	// move; past it the move fails (ErrOverflow) and is retried.
	DirtyKeysMax int
	// FenceTimeout: a source fenced this long without the log's verdict
	// (switch or cancellation) proposes the cancellation, and again every
	// CancelRetry ticks while it stays fenced.
	FenceTimeout uint64
	CancelRetry  uint64
}

// DefaultLocalConfig: 1 Mi changed keys, cancel after 40 ticks (10 s at
// node's 250 ms tick), every 4 ticks after.
func DefaultLocalConfig() LocalConfig {
	return LocalConfig{DirtyKeysMax: 1 << 20, FenceTimeout: 40, CancelRetry: 4}
}

// Validate reports every out-of-range field at once.
func (c LocalConfig) Validate() error {
	var errs []string
	if c.DirtyKeysMax < 1 {
		errs = append(errs, fmt.Sprintf("DirtyKeysMax (%d) must be at least 1", c.DirtyKeysMax))
	}
	if c.FenceTimeout < 1 || c.CancelRetry < 1 {
		errs = append(errs, fmt.Sprintf("FenceTimeout (%d) and CancelRetry (%d) must be at least 1 tick", c.FenceTimeout, c.CancelRetry))
	}
	if len(errs) > 0 {
		return fmt.Errorf("rebalancer: %s", strings.Join(errs, "; "))
	}
	return nil
}

// out is an outgoing move: this node is its source.
type out struct {
	token      string
	gen        uint64
	buckets    []uint16 // ascending
	dirty      map[string]uint16
	overflow   bool
	fenced     bool
	fencedAt   uint64
	lastCancel uint64
	// orphan: found in the log after a restart, not begun here: its
	// cancellation is proposed from the start.
	orphan bool
	// snapped: the driver has taken the move's snapshot (Snapshotted).
	snapped bool
}

// pull is an incoming move being pulled here.
type pull struct {
	buckets []uint16
	// superseded: a newer pull of one of its buckets began; none of this
	// one's writes may apply any more.
	superseded bool
	inflight   int // writes between ApplyBegin and ApplyEnd
}

// Local is one node's side of the move protocol: as a source (the tap that
// records changed keys, the snapshot's lifetime, the fence, the verdict
// from the log), as a target (which pulls may write which buckets), the
// gate every deletion of local bucket data passes, and the catch-up that
// keeps a restarted node from serving by an old table.
//
// It is a pure state machine: no I/O, no clock, no goroutines. The driver
// serialises every call (one mutex), performs the returned effects in
// order, and feeds it every applied View (Applied) and a Tick.
type Local struct {
	self string
	cfg  LocalConfig
	now  uint64
	// view is the newest applied View seen (Applied, PullStart, Clean).
	view View
	gen  uint64

	out      map[string]*out
	byBucket map[uint16]*out
	fenced   map[uint16]bool

	incoming map[uint16]string   // bucket → the pull that may write it
	pulls    map[string]*pull    // pulls running here
	pulled   map[string][]uint16 // pulls that wrote here, until their move ends
	deleting map[uint16]bool

	// catching up: the node restarted (or joined) and may have replayed
	// old tables; it serves nothing until it has applied catchTo.
	catchingUp bool
	catchTo    uint64
	synced     bool
}

// NewLocal returns node self's move state. catchUp: the node restarted
// or joined, and must apply the log as far as the leader has committed
// before it serves (CatchUpTo) — it serves nothing until then, and deletes
// nothing until Synced.
func NewLocal(self string, cfg LocalConfig, catchUp bool) *Local {
	return &Local{self: self, cfg: cfg, out: map[string]*out{}, byBucket: map[uint16]*out{}, fenced: map[uint16]bool{},
		incoming: map[uint16]string{}, pulls: map[string]*pull{}, pulled: map[string][]uint16{}, deleting: map[uint16]bool{},
		catchingUp: catchUp, synced: !catchUp}
}

// observe keeps the newest view.
func (l *Local) observe(v View) {
	if v != nil && (l.view == nil || v.Index() > l.view.Index()) {
		l.view = v
	}
}

// ---- serving ----

// CatchingUp reports whether the node must not serve yet.
func (l *Local) CatchingUp() bool { return l.catchingUp }

// IsSynced reports whether the applied metadata is known to be as recent
// as the leader's was after the node (re)started.
func (l *Local) IsSynced() bool { return l.synced }

// Fenced reports whether bucket is fenced for its switch: nothing may
// read or write it here until the log's verdict is applied.
func (l *Local) Fenced(bucket uint16) bool { return l.fenced[bucket] }

// FencedCount is the number of fenced buckets (a lock-free fast path for
// the driver: 0 means no key is fenced).
func (l *Local) FencedCount() int { return len(l.fenced) }

// Tapping is the number of buckets whose writes Written records.
func (l *Local) Tapping() int { return len(l.byBucket) }

// CatchUpTo sets the log index the node must apply before it serves: the
// leader's commit index, asked after the start. Applied reports Synced
// once it is reached.
func (l *Local) CatchUpTo(index uint64) []Effect {
	if !l.catchingUp {
		return nil
	}
	l.catchTo = max(index, 1)
	if l.view != nil && l.view.Index() >= l.catchTo {
		return l.synced0(l.view)
	}
	return nil
}

// GiveUpCatchUp serves without having caught up (no leader answered):
// nothing is deleted until a later CatchUpTo is reached.
func (l *Local) GiveUpCatchUp() { l.catchingUp = false }

func (l *Local) synced0(v View) []Effect {
	l.catchingUp, l.synced = false, true
	effs := []Effect{Synced{Index: v.Index()}}
	// Moves from this node that it does not run (it restarted in the
	// middle of one): until the log says whether they switched, nothing
	// may write their buckets here. Fence them and have them cancelled.
	for _, mv := range v.Moves() {
		if mv.From != l.self || l.out[mv.Token] != nil {
			continue
		}
		o := l.addOut(mv.Token, mv.Buckets)
		o.fenced, o.fencedAt, o.lastCancel, o.orphan = true, l.now, l.now, true
		for _, b := range o.buckets {
			l.fenced[b] = true
		}
		effs = append(effs, ProposeCancel{Token: mv.Token, Reason: "its source restarted during the move"})
	}
	return effs
}

// ---- source ----

func (l *Local) addOut(token string, buckets []uint16) *out {
	l.gen++
	o := &out{token: token, gen: l.gen, buckets: slices.Sorted(slices.Values(buckets)), dirty: map[string]uint16{}}
	l.out[token] = o
	for _, b := range o.buckets {
		l.byBucket[b] = o
	}
	return o
}

// Begin starts the source side of a move once the node has applied its
// start (v has it): from now on Written records every key written to its
// buckets. The driver then makes every write applied so far durable,
// takes an engine snapshot and calls Snapshotted with the returned
// generation. A begin asked again (a retried pull) starts over: the old
// generation is released first.
func (l *Local) Begin(v View, token string, buckets []uint16) (uint64, []Effect, error) {
	l.observe(v)
	mv, ok := v.Move(token)
	if !ok {
		return 0, nil, fmt.Errorf("%w: move %s is not in the applied metadata", ErrUnknownMove, token)
	}
	if mv.From != l.self || !slices.Equal(mv.Buckets, buckets) {
		return 0, nil, fmt.Errorf("%w: move %s is %s→%s, not from this node", ErrBadMove, token, mv.From, mv.To)
	}
	var effs []Effect
	if old := l.out[token]; old != nil {
		if old.fenced {
			return 0, nil, fmt.Errorf("%w: move %s is fenced here: only the log's verdict ends it", ErrBadMove, token)
		}
		effs = l.endOut(old, false)
	}
	for _, b := range buckets {
		if o := l.byBucket[b]; o != nil {
			return 0, effs, fmt.Errorf("%w: bucket %d is in move %s", ErrBadMove, b, o.token)
		}
	}
	o := l.addOut(token, buckets)
	return o.gen, effs, nil
}

// Snapshotted records that the driver holds generation gen's snapshot. It
// returns false if that generation has ended meanwhile: the driver closes
// the snapshot itself.
func (l *Local) Snapshotted(token string, gen uint64) bool {
	o := l.out[token]
	if o == nil || o.gen != gen {
		return false
	}
	o.snapped = true
	return true
}

// Serving reports whether generation gen of token is live with its
// snapshot taken (a scan page may be served from it).
func (l *Local) Serving(token string) (gen uint64, err error) {
	o := l.out[token]
	if o == nil {
		return 0, fmt.Errorf("%w: no outgoing move %s here (restarted or cancelled)", ErrUnknownMove, token)
	}
	if !o.snapped {
		return 0, fmt.Errorf("%w: move %s has no snapshot here (not begun)", ErrUnknownMove, token)
	}
	return o.gen, nil
}

// Written records a key written to bucket (the tap). Call it for every
// write applied here while the write still holds its key's lock.
func (l *Local) Written(bucket uint16, key []byte) {
	o := l.byBucket[bucket]
	if o == nil || o.overflow {
		return
	}
	if len(o.dirty) >= l.cfg.DirtyKeysMax {
		o.overflow, o.dirty = true, nil
		return
	}
	o.dirty[string(key)] = bucket
}

// DeltaKey is a key changed during a move's copy: the driver reads its
// current value (or finds it deleted) and sends that.
type DeltaKey struct {
	Bucket uint16
	Key    string
}

// TakeDelta removes up to maxBytes worth of changed keys (all when
// maxBytes <= 0), in key order, and says how many are left.
func (l *Local) TakeDelta(token string, maxBytes int) ([]DeltaKey, int, error) {
	o := l.out[token]
	if o == nil {
		return nil, 0, fmt.Errorf("%w: no outgoing move %s here (restarted or cancelled)", ErrUnknownMove, token)
	}
	if o.overflow {
		return nil, 0, fmt.Errorf("%w: move %s: more than %d keys changed during the copy; retry it", ErrOverflow, token, l.cfg.DirtyKeysMax)
	}
	keys := make([]string, 0, len(o.dirty))
	for k := range o.dirty {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var take []DeltaKey
	size := 0
	for _, k := range keys {
		if maxBytes > 0 && size >= maxBytes {
			break
		}
		take = append(take, DeltaKey{Bucket: o.dirty[k], Key: k})
		size += len(k) + 64
		delete(o.dirty, k)
	}
	return take, len(o.dirty), nil
}

// Fence stops every read and write of the move's buckets here: the driver
// then waits for writes in flight (they hold key locks) and prepared
// transactions on the buckets, and sends the last delta (TakeDelta 0).
// The fence stays until the log's verdict is applied; if the wait fails,
// Unfence.
func (l *Local) Fence(token string) (buckets []uint16, err error) {
	o := l.out[token]
	if o == nil {
		return nil, fmt.Errorf("%w: no outgoing move %s here (restarted or cancelled)", ErrUnknownMove, token)
	}
	if !o.fenced {
		o.fenced, o.fencedAt, o.lastCancel = true, l.now, l.now
		for _, b := range o.buckets {
			l.fenced[b] = true
		}
	}
	return o.buckets, nil
}

// Unfence lifts a fence whose wait failed (no delta was handed over).
func (l *Local) Unfence(token string) []Effect {
	o := l.out[token]
	if o == nil || !o.fenced {
		return nil
	}
	o.fenced = false
	return l.unfence(o)
}

func (l *Local) unfence(o *out) []Effect {
	changed := false
	for _, b := range o.buckets {
		if l.fenced[b] {
			delete(l.fenced, b)
			changed = true
		}
	}
	if changed {
		return []Effect{Unfenced{}}
	}
	return nil
}

// Abort ends an outgoing move its target gave up on, unless it is fenced
// (then only the log's verdict ends it: the target may hold the last
// delta).
func (l *Local) Abort(token string) []Effect { return l.Drop(token, 0) }

// Drop is Abort of generation gen only (0: any), for a begin that failed
// after Begin.
func (l *Local) Drop(token string, gen uint64) []Effect {
	o := l.out[token]
	if o == nil || o.fenced || gen != 0 && o.gen != gen {
		return nil
	}
	return l.endOut(o, false)
}

// endOut forgets an outgoing move: tap, fence, snapshot. If its buckets
// were switched away, their data here is deleted — after the fence is
// lifted, so waiting requests go to the new owner.
func (l *Local) endOut(o *out, switched bool) []Effect {
	delete(l.out, o.token)
	for _, b := range o.buckets {
		if l.byBucket[b] == o {
			delete(l.byBucket, b)
		}
	}
	effs := l.unfence(o)
	effs = append(effs, Release{Token: o.token, Gen: o.gen})
	if switched {
		effs = append(effs, l.deletable(o.buckets, "handed over")...)
	}
	return effs
}

// ---- target ----

// PullStart registers a pull of token into this node, once the node has
// applied the move's start (v has it). wait: a deletion of stale data of
// these buckets, or an older pull's write, is in progress — call again
// after Deleted or ApplyEnd. A newer pull supersedes an older one of the
// same buckets: the older one's writes are refused from now on
// (ApplyBegin) and it is cancelled.
func (l *Local) PullStart(v View, token string, buckets []uint16) (wait bool, effs []Effect, err error) {
	l.observe(v)
	mv, ok := v.Move(token)
	if !ok {
		return false, nil, fmt.Errorf("%w: move %s is not in the applied metadata", ErrUnknownMove, token)
	}
	if mv.To != l.self || !slices.Equal(mv.Buckets, buckets) {
		return false, nil, fmt.Errorf("%w: move %s is %s→%s, not to this node", ErrBadMove, token, mv.From, mv.To)
	}
	if l.pulls[token] != nil {
		return false, nil, fmt.Errorf("%w: move %s is already being pulled here", ErrBadMove, token)
	}
	for _, b := range buckets {
		if l.deleting[b] {
			return true, nil, nil
		}
	}
	for _, b := range buckets {
		old, in := l.incoming[b]
		if !in {
			continue
		}
		p := l.pulls[old]
		if !p.superseded {
			p.superseded = true
			effs = append(effs, CancelPull{Token: old})
		}
		if p.inflight > 0 {
			return true, effs, nil
		}
	}
	for _, b := range buckets {
		l.incoming[b] = token
	}
	l.pulls[token] = &pull{buckets: slices.Clone(buckets)}
	l.pulled[token] = slices.Clone(buckets)
	return false, effs, nil
}

// ApplyBegin asks whether a pull may write now (it is registered and not
// superseded); if so the write counts as in flight until ApplyEnd.
func (l *Local) ApplyBegin(token string) error {
	p := l.pulls[token]
	if p == nil || p.superseded {
		return fmt.Errorf("%w: pull of move %s was superseded or ended", ErrUnknownMove, token)
	}
	p.inflight++
	return nil
}

// ApplyEnd ends a write ApplyBegin allowed.
func (l *Local) ApplyEnd(token string) {
	if p := l.pulls[token]; p != nil && p.inflight > 0 {
		p.inflight--
	}
}

// PullEnd unregisters a pull (done or failed). Its buckets stay protected
// from cleanup while its move is in the applied metadata (receiving), and
// its data is deleted if the move ends without giving them here.
func (l *Local) PullEnd(token string) []Effect {
	p := l.pulls[token]
	if p == nil {
		return nil
	}
	delete(l.pulls, token)
	for _, b := range p.buckets {
		if l.incoming[b] == token {
			delete(l.incoming, b)
		}
	}
	return l.dropEnded()
}

// dropEnded deletes what pulls copied here for moves that have ended
// without giving this node the buckets (cancelled), by the newest view.
func (l *Local) dropEnded() []Effect {
	v := l.view
	if v == nil || v.Table() == nil {
		return nil
	}
	var drop []uint16
	for _, tok := range sortedKeys(l.pulled) {
		if _, live := v.Move(tok); live || l.pulls[tok] != nil {
			continue
		}
		for _, b := range l.pulled[tok] {
			if !v.Table().HasOwner(b, l.self) {
				drop = append(drop, b)
			}
		}
		delete(l.pulled, tok)
	}
	if len(drop) == 0 {
		return nil
	}
	return l.deletable(drop, "a cancelled move had copied them")
}

// ---- verdicts, time, cleanup ----

// Applied feeds the node's newest applied metadata: it reports Synced when
// a catch-up is done, ends the outgoing moves the log has decided
// (switched: delete the handed-over data; cancelled: keep serving),
// cancels pulls of moves that ended, and deletes what cancelled moves had
// copied here. Views older than one seen before are ignored.
func (l *Local) Applied(v View) []Effect {
	if l.view != nil && v.Index() < l.view.Index() {
		return nil
	}
	l.observe(v)
	var effs []Effect
	if l.catchingUp && l.catchTo > 0 && v.Index() >= l.catchTo {
		effs = append(effs, l.synced0(v)...)
	}
	for _, tok := range sortedKeys(l.out) {
		o := l.out[tok]
		if _, live := v.Move(tok); live {
			continue
		}
		switched := v.Table() != nil && v.Table().OwnerOfBucket(o.buckets[0]) != l.self
		effs = append(effs, l.endOut(o, switched)...)
	}
	for _, tok := range sortedKeys(l.pulls) {
		if _, live := v.Move(tok); !live && !l.pulls[tok].superseded {
			l.pulls[tok].superseded = true
			effs = append(effs, CancelPull{Token: tok})
		}
	}
	return append(effs, l.dropEnded()...)
}

// Tick advances the logical clock: a source fenced longer than
// FenceTimeout proposes its move's cancellation.
func (l *Local) Tick() []Effect {
	l.now++
	var effs []Effect
	for _, tok := range sortedKeys(l.out) {
		o := l.out[tok]
		if !o.fenced || !o.orphan && l.now-o.fencedAt < l.cfg.FenceTimeout || l.now-o.lastCancel < l.cfg.CancelRetry {
			continue
		}
		o.lastCancel = l.now
		effs = append(effs, ProposeCancel{Token: tok, Reason: fmt.Sprintf("fenced %d ticks without a verdict", l.now-o.fencedAt)})
	}
	return effs
}

// Clean asks to delete the local data of candidate buckets (found by a
// scan for data of buckets v says this node neither owns nor receives).
func (l *Local) Clean(v View, candidates []uint16) []Effect {
	l.observe(v)
	return l.deletable(candidates, "not owned here")
}

// deletable is the gate every deletion passes, judged by the newest view:
// nothing is deleted before the node is synced (its table may be an old
// one replayed from the log), nor a bucket this node owns, receives (a
// move into it in the metadata), is pulling, is moving out, or is already
// deleting.
func (l *Local) deletable(buckets []uint16, why string) []Effect {
	if !l.synced || l.view == nil || l.view.Table() == nil {
		return nil
	}
	receiving := map[uint16]bool{}
	for _, mv := range l.view.Moves() {
		if mv.To == l.self {
			for _, b := range mv.Buckets {
				receiving[b] = true
			}
		}
	}
	t := l.view.Table()
	var del []uint16
	for _, b := range buckets {
		if _, in := l.incoming[b]; in || receiving[b] || t.HasOwner(b, l.self) || l.byBucket[b] != nil || l.deleting[b] {
			continue
		}
		l.deleting[b] = true
		del = append(del, b)
	}
	if len(del) == 0 {
		return nil
	}
	slices.Sort(del)
	return []Effect{DeleteBuckets{Buckets: slices.Compact(del), Why: why}}
}

// Deleted ends a DeleteBuckets (done or failed).
func (l *Local) Deleted(buckets []uint16) {
	for _, b := range buckets {
		delete(l.deleting, b)
	}
}

// Outgoing lists the outgoing moves as "token(fenced)" for status and tests.
func (l *Local) Outgoing() []string {
	var s []string
	for _, tok := range sortedKeys(l.out) {
		o := l.out[tok]
		st := "tapping"
		if o.fenced {
			st = "fenced"
		}
		s = append(s, tok+":"+st)
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
