package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Run validates cfg, checks that every address accepts a TCP connection,
// then runs the load, warmup and measured phases (see the package comment).
// Status lines go to progress every cfg.ProgressInterval; nil disables them.
// On cancellation of ctx it returns the partial Result and ErrInterrupted.
// Run waits for every goroutine it started before returning.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkReachable(ctx, cfg.Addrs, min(cfg.Timeout, dialTimeoutMax)); err != nil {
		return nil, err
	}
	clients := newClients(&cfg)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	r := &runner{cfg: &cfg, progress: progress, rec: newRecorder(cfg.Clients)}
	if cfg.Distribution == DistZipfian {
		r.zipf = NewZipf(uint64(cfg.Keys), ZipfTheta)
	}
	r.workers = make([]*worker, cfg.Clients)
	for i := range r.workers {
		r.workers[i] = r.newWorker(i, clients[i%len(clients)])
	}

	res := &Result{Config: resultConfig(&cfg)}
	if cfg.Load {
		r.runPhase(ctx, "load", &phase{load: true, limit: cfg.Keys})
		res.LoadOps, res.LoadErrors = r.rec.takePhaseCounts()
	}
	if cfg.Warmup > 0 && ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, cfg.Warmup)
		r.runPhase(wctx, "warmup", &phase{})
		cancel()
		r.rec.takePhaseCounts()
	}
	if ctx.Err() == nil {
		mctx, cancel := ctx, context.CancelFunc(func() {})
		if cfg.Duration > 0 {
			mctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		}
		start := time.Now()
		r.runPhase(mctx, "run", &phase{record: true, limit: cfg.Requests})
		res.Elapsed = time.Since(start)
		cancel()
	}
	r.rec.fill(res)
	if ctx.Err() != nil {
		res.Interrupted = true
		return res, ErrInterrupted
	}
	return res, nil
}

// checkReachable dials every address at once and lists each one that fails.
func checkReachable(ctx context.Context, addrs []string, timeout time.Duration) error {
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, "tcp", a)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", a, err)
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	var bad []string
	for _, err := range errs {
		if err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrUnreachable, strings.Join(bad, "; "))
	}
	return nil
}

// newClients returns one ClusterClient (Cluster) or one Client per address
// with a pool as large as the number of workers using it.
func newClients(cfg *Config) []redis.UniversalClient {
	if cfg.Cluster {
		return []redis.UniversalClient{redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 cfg.Addrs,
			Password:              cfg.Password,
			Protocol:              2,
			PoolSize:              cfg.Clients,
			MaxRetries:            -1,
			DialTimeout:           min(cfg.Timeout, dialTimeoutMax),
			ReadTimeout:           cfg.Timeout,
			WriteTimeout:          cfg.Timeout,
			ContextTimeoutEnabled: true,
			DisableIdentity:       true,
		})}
	}
	cs := make([]redis.UniversalClient, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		workers := cfg.Clients / len(cfg.Addrs)
		if i < cfg.Clients%len(cfg.Addrs) {
			workers++
		}
		cs[i] = redis.NewClient(&redis.Options{
			Addr:                  a,
			Password:              cfg.Password,
			Protocol:              2,
			PoolSize:              max(workers, 1),
			MaxRetries:            -1,
			DialTimeout:           min(cfg.Timeout, dialTimeoutMax),
			ReadTimeout:           cfg.Timeout,
			WriteTimeout:          cfg.Timeout,
			ContextTimeoutEnabled: true,
			DisableIdentity:       true,
		})
	}
	return cs
}

type runner struct {
	cfg      *Config
	progress io.Writer
	rec      *recorder
	zipf     *Zipf // nil for uniform
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

// report writes one status line per interval until done is closed.
func (r *runner) report(name string, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.ProgressInterval)
	defer t.Stop()
	start, last := time.Now(), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			ops, errs, p99 := r.rec.takeInterval()
			rate := float64(ops) / now.Sub(last).Seconds()
			last = now
			fmt.Fprintf(r.progress, "%s %5.0fs  %9.0f ops/s  errors %d  p99 %s\n",
				name, now.Sub(start).Seconds(), rate, errs, fmtMicros(p99))
		}
	}
}

type opKind uint8

const (
	opGet opKind = iota
	opSet
	opRMW // GET, then SET of the same key
	opMSet
)

type op struct {
	kind opKind
	keys []string
}

// worker is one closed-loop client; only its own goroutine uses it.
type worker struct {
	r     *runner
	c     redis.UniversalClient
	rng   *rand.Rand
	shard *shard
	value []byte
	batch []op
	cmds  []redis.Cmder
	errs  []error
}

func (r *runner) newWorker(i int, c redis.UniversalClient) *worker {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)))
	value := make([]byte, r.cfg.ValueBytes)
	for j := range value {
		value[j] = 'a' + byte(rng.IntN(26))
	}
	return &worker{
		r: r, c: c, rng: rng, shard: r.rec.shardFor(i), value: value,
		batch: make([]op, 0, r.cfg.Pipeline),
		cmds:  make([]redis.Cmder, 0, r.cfg.Pipeline),
		errs:  make([]error, 0, r.cfg.Pipeline),
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
		start := time.Now()
		w.exec(ctx)
		end := time.Now()
		if ctx.Err() != nil || pastDeadline(ctx, end) {
			return // a socket deadline taken from ctx may fire before ctx.Err is set
		}
		lat := end.Sub(start)
		w.shard.record(lat, w.errs, ph.record)
	}
}

func pastDeadline(ctx context.Context, now time.Time) bool {
	d, ok := ctx.Deadline()
	return ok && !now.Before(d)
}

func keyName(i uint64) string { return "key:" + strconv.FormatUint(i, 10) }

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
			w.batch = append(w.batch, op{kind: opSet, keys: []string{keyName(uint64(first) + uint64(i))}})
			continue
		}
		o := op{kind: w.pick()}
		k := 1
		if o.kind == opMSet {
			k = w.r.cfg.MSetKeys
		}
		o.keys = make([]string, k)
		for j := range o.keys {
			o.keys[j] = w.nextKey()
		}
		w.batch = append(w.batch, o)
	}
}

// pick chooses an operation by the workload's mix.
func (w *worker) pick() opKind {
	switch w.r.cfg.Workload {
	case WorkloadGet, WorkloadYCSBC:
		return opGet
	case WorkloadYCSBA:
		return w.mix(0.5, opSet)
	case WorkloadYCSBB:
		return w.mix(0.95, opSet)
	case WorkloadYCSBF:
		return w.mix(0.5, opRMW)
	case WorkloadMSet:
		return opMSet
	default:
		return opSet
	}
}

func (w *worker) mix(readFraction float64, other opKind) opKind {
	if w.rng.Float64() < readFraction {
		return opGet
	}
	return other
}

// exec sends the batch (pipelined when it holds more than one operation)
// and leaves one error or nil per operation in w.errs. The SETs of
// read-modify-writes go in a second round trip after their GETs.
func (w *worker) exec(ctx context.Context) {
	w.errs = w.errs[:0]
	w.cmds = w.send(ctx, w.cmds[:0], false)
	rmw := false
	for i, c := range w.cmds {
		w.errs = append(w.errs, cmdErr(c))
		rmw = rmw || w.batch[i].kind == opRMW
	}
	if !rmw {
		return
	}
	second := w.send(ctx, nil, true)
	j := 0
	for i, o := range w.batch {
		if o.kind == opRMW && w.errs[i] == nil {
			w.errs[i] = cmdErr(second[j])
			j++
		}
	}
}

// send issues one command per operation (writes: only the SET half of
// read-modify-writes whose GET succeeded) and waits for the replies.
func (w *worker) send(ctx context.Context, cmds []redis.Cmder, writes bool) []redis.Cmder {
	var c redis.Cmdable = w.c
	var pipe redis.Pipeliner
	if len(w.batch) > 1 {
		pipe = w.c.Pipeline()
		c = pipe
	}
	for i, o := range w.batch {
		if writes {
			if o.kind == opRMW && w.errs[i] == nil {
				cmds = append(cmds, c.Set(ctx, o.keys[0], w.value, 0))
			}
			continue
		}
		switch o.kind {
		case opGet, opRMW:
			cmds = append(cmds, c.Get(ctx, o.keys[0]))
		case opSet:
			cmds = append(cmds, c.Set(ctx, o.keys[0], w.value, 0))
		case opMSet:
			args := make([]any, 0, 2*len(o.keys))
			for _, k := range o.keys {
				args = append(args, k, w.value)
			}
			cmds = append(cmds, c.MSet(ctx, args...))
		}
	}
	if pipe != nil && len(cmds) > 0 {
		_, _ = pipe.Exec(ctx) // errors are per command
	}
	return cmds
}

// cmdErr is a command's error; a missing key (redis.Nil) is a success.
func cmdErr(c redis.Cmder) error {
	if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	return nil
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
