package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Run validates cfg, checks that every address accepts a TCP connection
// and, for the txn workload, that the servers serve MULTI (ErrNotSupported
// otherwise) and that CLUSTER SLOTS allows CrossNode or SameNode
// (ErrInvalidConfig otherwise); then it runs the load, warmup and measured
// phases (see the package comment). Status lines go to progress every
// cfg.ProgressInterval; nil disables them. On cancellation of ctx it
// returns the partial Result and ErrInterrupted (a nil Result if no phase
// had started). Run waits for every goroutine it started before returning.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Ctrl-C during the checks below is an interruption, not their failure.
	checked := func(err error) error {
		if err != nil && ended(ctx) {
			return ErrInterrupted
		}
		return err
	}
	if err := CheckReachable(ctx, cfg.Addrs, min(cfg.Timeout, dialTimeoutMax)); err != nil {
		return nil, checked(err)
	}
	var place *placement
	if cfg.CrossNode || cfg.SameNode {
		p, err := loadPlacement(ctx, &cfg)
		if err != nil {
			return nil, checked(err)
		}
		place = p
	}
	if cfg.Workload == WorkloadTxn {
		if err := probeMulti(ctx, &cfg); err != nil {
			return nil, checked(err)
		}
	}
	t := newRESPTarget(&cfg)
	defer t.close()
	return run(ctx, &cfg, t, place, progress)
}

// run is Run and RunTarget once their checks passed.
func run(ctx context.Context, cfg *Config, t Target, place *placement, progress io.Writer) (*Result, error) {
	r := &runner{cfg: cfg, progress: progress, rec: newRecorder(cfg.Clients), place: place, mix: cfg.mix()}
	if cfg.Distribution == DistZipfian {
		r.zipf = NewZipf(uint64(cfg.Keys), ZipfTheta)
	}
	r.workers = make([]*worker, cfg.Clients)
	for i := range r.workers {
		c, err := t.Conn(i)
		if err != nil {
			return nil, fmt.Errorf("%s connection of worker %d: %w", t.Name(), i, err)
		}
		r.workers[i] = r.newWorker(i, c)
	}

	res := &Result{Label: cfg.Label, Config: resultConfig(cfg, t.Name())}
	if cfg.Load {
		r.runPhase(ctx, "load", &phase{load: true, limit: cfg.Keys})
		res.LoadOps, res.LoadErrors = r.rec.takePhaseCounts()
	}
	if cfg.Warmup > 0 && !ended(ctx) {
		wctx, cancel := context.WithTimeout(ctx, cfg.Warmup)
		r.runPhase(wctx, "warmup", &phase{})
		cancel()
		r.rec.takePhaseCounts()
	}
	if !ended(ctx) {
		start := time.Now() // before the deadline is set: Elapsed covers Duration
		mctx, cancel := ctx, context.CancelFunc(func() {})
		if cfg.Duration > 0 {
			mctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		}
		r.runPhase(mctx, "run", &phase{record: true, limit: cfg.Requests})
		res.Elapsed = time.Since(start)
		cancel()
	}
	r.rec.fill(res)
	if ended(ctx) {
		res.Interrupted = true
		return res, ErrInterrupted
	}
	return res, nil
}

// ended reports whether ctx is done, or past its deadline: a socket
// deadline taken from ctx may fire before the timer that sets ctx.Err.
func ended(ctx context.Context) bool { return ctx.Err() != nil || pastDeadline(ctx, time.Now()) }

type runner struct {
	cfg      *Config
	progress io.Writer
	rec      *recorder
	zipf     *Zipf      // nil for uniform
	place    *placement // CrossNode, SameNode; else nil
	mix      string     // cfg.mix()
	workers  []*worker
}

// phase is one bounded pass of every worker: limit operations (0: until
// ctx ends), recorded in the histograms or not.
type phase struct {
	load    bool // SET key:0 … key:limit-1 in order
	record  bool
	limit   int64
	claimed atomic.Int64
}

// claim reserves up to n operations; it returns how many and the index of
// the first, or 0 when the phase's limit is used up.
func (p *phase) claim(n int) (int, int64) {
	if p.limit == 0 {
		return n, 0
	}
	end := p.claimed.Add(int64(n))
	first := end - int64(n)
	if first >= p.limit {
		return 0, 0
	}
	return int(min(end, p.limit) - first), first
}

// runPhase runs every worker until ph is used up or ctx ends, with a
// progress reporter alongside, and waits for all of them.
func (r *runner) runPhase(ctx context.Context, name string, ph *phase) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if r.progress != nil {
		wg.Go(func() { r.report(name, done) })
	}
	var workers sync.WaitGroup
	for _, w := range r.workers {
		workers.Go(func() { w.run(ctx, ph) })
	}
	workers.Wait()
	close(done)
	wg.Wait()
}

// report writes one status line per interval until done is closed: the
// phase, seconds since it began, the interval's rate, errors and p99, the
// phase's operations so far, and the latest error message if any.
func (r *runner) report(name string, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.ProgressInterval)
	defer t.Stop()
	start, last := time.Now(), time.Now()
	var total int64
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			iv := r.rec.takeInterval()
			total += iv.ops
			rate := float64(iv.ops) / now.Sub(last).Seconds()
			last = now
			p99 := "n/a"
			if iv.okOps > 0 {
				p99 = fmtMicros(iv.p99)
			}
			line := fmt.Sprintf("%-6s %4.0fs %10.0f ops/s  errors %d  p99 %s  total %d",
				name, now.Sub(start).Seconds(), rate, iv.errs, p99, total)
			if iv.lastErr != "" {
				line += "  last error: " + clip(iv.lastErr, 120)
			}
			fmt.Fprintln(r.progress, line)
		}
	}
}

// clip shortens s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// worker is one closed-loop client; only its own goroutine uses it.
type worker struct {
	r     *runner
	c     Conn
	rng   *rand.Rand
	shard *shard
	value []byte
	batch []Op
	errs  []error
}

func (r *runner) newWorker(i int, c Conn) *worker {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)))
	value := make([]byte, r.cfg.ValueBytes)
	for j := range value {
		value[j] = 'a' + byte(rng.IntN(26))
	}
	return &worker{
		r: r, c: c, rng: rng, shard: r.rec.shardFor(i), value: value,
		batch: make([]Op, 0, r.cfg.Pipeline),
		errs:  make([]error, r.cfg.Pipeline),
	}
}

// run sends batches until ph is used up or ctx ends. A batch interrupted by
// the end of ctx is not counted.
func (w *worker) run(ctx context.Context, ph *phase) {
	for ctx.Err() == nil {
		n, first := ph.claim(w.r.cfg.Pipeline)
		if n == 0 {
			return
		}
		w.fill(ph, n, first)
		errs := w.errs[:n]
		clear(errs)
		start := time.Now()
		w.c.Do(ctx, w.batch, errs)
		end := time.Now()
		if ctx.Err() != nil || pastDeadline(ctx, end) {
			return // a socket deadline taken from ctx may fire before ctx.Err is set
		}
		w.shard.record(end.Sub(start), errs, ph.record)
	}
}

func pastDeadline(ctx context.Context, now time.Time) bool {
	d, ok := ctx.Deadline()
	return ok && !now.Before(d)
}

func (w *worker) nextKey() string {
	if w.r.zipf != nil {
		return keyName(w.r.zipf.Next(w.rng))
	}
	return keyName(w.rng.Uint64N(uint64(w.r.cfg.Keys)))
}

// fill builds the next n operations of the phase.
func (w *worker) fill(ph *phase, n int, first int64) {
	w.batch = w.batch[:0]
	for i := range n {
		if ph.load {
			w.batch = append(w.batch, Op{Kind: OpSet, Keys: []string{keyName(uint64(first) + uint64(i))}, Value: w.value})
			continue
		}
		o := Op{Kind: w.pick(), Value: w.value}
		switch o.Kind {
		case OpMSet:
			o.Keys = make([]string, w.r.cfg.MSetKeys)
			for j := range o.Keys {
				o.Keys[j] = w.nextKey()
			}
		case OpTxn:
			o.Keys = make([]string, w.r.cfg.TxnKeys)
			w.txnKeys(o.Keys)
		default:
			o.Keys = []string{w.nextKey()}
		}
		w.batch = append(w.batch, o)
	}
}

// pick chooses an operation by the workload (and its mix).
func (w *worker) pick() OpKind {
	switch w.r.mix {
	case MixA:
		return w.either(0.5, OpSet)
	case MixB:
		return w.either(0.95, OpSet)
	case MixC:
		return OpGet
	case MixF:
		return w.either(0.5, OpRMW)
	}
	switch w.r.cfg.Workload {
	case WorkloadGet:
		return OpGet
	case WorkloadMSet:
		return OpMSet
	case WorkloadTxn:
		return OpTxn
	default:
		return OpSet
	}
}

// either returns OpGet with probability readFraction, else other.
func (w *worker) either(readFraction float64, other OpKind) OpKind {
	if w.rng.Float64() < readFraction {
		return OpGet
	}
	return other
}

// shardsPerCPU bounds the histogram shards: workers share them (each shard
// holds two histograms of about 200 KiB) so 10,000 clients stay cheap.
const shardsPerCPU = 4

func newRecorder(clients int) *recorder {
	n := min(clients, shardsPerCPU*runtime.GOMAXPROCS(0))
	r := &recorder{shards: make([]*shard, n)}
	for i := range r.shards {
		r.shards[i] = &shard{total: newHist(), interval: newHist(), msgs: map[string]int64{}}
	}
	return r
}
