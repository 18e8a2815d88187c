package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Workload names.
const (
	WorkloadRegister = "register"
	WorkloadBank     = "bank"
	WorkloadSet      = "set"
)

// RunConfig configures one chaos run.
type RunConfig struct {
	// Name is the run's unique name: the prefix of its Docker objects and
	// the name of its results directory.
	Name string
	// Seed drives every random choice of the harness (fault order and
	// targets, workload choices). The timing of the cluster is not
	// reproducible; the schedule is.
	Seed uint64
	// Image is the dbx-node image to run (BuildImage).
	Image string
	// Nodes and Voters: cluster size and Raft voters.
	Nodes, Voters int
	// Duration of the fault phase: rounds of every nemesis (each round in
	// a seeded order) start while it lasts; at least one whole round runs.
	Duration time.Duration
	// Hold is how long a fault stays (unless its Nemesis says otherwise);
	// Quiet is the healthy time between a recovery and the next fault.
	Hold, Quiet time.Duration
	// RecoveryTimeout bounds the wait for recovery after a heal; a cluster
	// that does not recover fails the run and ends the fault phase.
	RecoveryTimeout time.Duration
	// CheckTimeout bounds porcupine.
	CheckTimeout time.Duration
	// Nemeses to run (DefaultNemeses, or any of Nemeses); Workloads to
	// run (all three when empty).
	Nemeses   []Nemesis
	Workloads []string
	// Pace is the think time of workload clients between operations.
	Pace time.Duration
	// NoMulti keeps WATCH/MULTI/EXEC out of the run even when the server
	// accepts it: register without compare-and-set, no bank.
	NoMulti bool
	// LogDir receives the nodes' container logs.
	LogDir string
	// Logf reports progress.
	Logf func(format string, args ...any)
}

// DefaultRunConfig returns the CI-sized configuration: 5 nodes, all Raft
// voters, one round of every nemesis held 8 s (pause: PauseHold).
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Nodes:           5,
		Voters:          5,
		Hold:            8 * time.Second,
		Quiet:           2 * time.Second,
		RecoveryTimeout: 60 * time.Second,
		CheckTimeout:    2 * time.Minute,
		Nemeses:         DefaultNemeses(false),
		Workloads:       []string{WorkloadRegister, WorkloadBank, WorkloadSet},
		Pace:            50 * time.Millisecond,
	}
}

// Validate reports every problem of cfg at once.
func (cfg *RunConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.Name == "" || cfg.Image == "" {
		bad("name (%q) and image (%q) are required", cfg.Name, cfg.Image)
	}
	if cfg.Nodes < 3 || cfg.Nodes > 9 {
		bad("nodes (%d) must be in [3, 9]", cfg.Nodes)
	}
	if cfg.Voters < 1 || cfg.Voters > 5 || cfg.Voters > cfg.Nodes {
		bad("voters (%d) must be in [1, min(5, nodes %d)]", cfg.Voters, cfg.Nodes)
	}
	if cfg.Hold <= 0 || cfg.RecoveryTimeout <= 0 || cfg.CheckTimeout <= 0 || cfg.Pace <= 0 || cfg.Quiet < 0 || cfg.Duration < 0 {
		bad("hold (%s), recovery timeout (%s), check timeout (%s) and pace (%s) must be positive, quiet (%s) and duration (%s) not negative",
			cfg.Hold, cfg.RecoveryTimeout, cfg.CheckTimeout, cfg.Pace, cfg.Quiet, cfg.Duration)
	}
	for _, w := range cfg.Workloads {
		if w != WorkloadRegister && w != WorkloadBank && w != WorkloadSet {
			bad("unknown workload %q (known: register, bank, set)", w)
		}
	}
	return errors.Join(errs...)
}

func (cfg *RunConfig) has(workload string) bool {
	return len(cfg.Workloads) == 0 || slices.Contains(cfg.Workloads, workload)
}

// Workload sizes.
const (
	registerKeysPerNode    = 2
	registerClientsPerNode = 2
	registerGenerationsMax = 5000
	bankAccountsPerNode    = 2
	bankInitial            = 100
	maxOpsPerClient        = 1_000_000
	finalReadTimeout       = 30 * time.Second
	// brokenReadTimeout replaces finalReadTimeout once a fault has failed
	// (e.g. the cluster did not recover): reads of a dead node's keys
	// would each wait the full bound and outlast the test's timeout,
	// which skips its cleanup.
	brokenReadTimeout = 2 * time.Second
	settleAfterFaults = 3 * time.Second
)

// Run starts a cluster, runs the workloads under the faults, checks the
// histories and returns the report. An error means the harness could not
// do its job (the report says how far it got); violations are in
// Report.Failures.
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	rep := &Report{Name: cfg.Name, Seed: cfg.Seed, Nodes: cfg.Nodes, Voters: cfg.Voters, Started: time.Now()}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	defer func() { rep.Took = time.Since(rep.Started) }()

	logf("starting %d nodes (%d voters) from image %s", cfg.Nodes, cfg.Voters, cfg.Image)
	c, err := StartCluster(ctx, ClusterConfig{Run: cfg.Name, Image: cfg.Image, Nodes: cfg.Nodes, Voters: cfg.Voters, LogDir: cfg.LogDir, Logf: logf})
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if cerr := c.Close(cctx); cerr != nil {
			logf("cleanup: %v", cerr)
		}
	}()
	if err != nil {
		return rep, fmt.Errorf("start cluster: %w", err)
	}
	ci, _ := c.Converged(ctx)
	logf("cluster up on %s: leader %s, epoch %d", c.Subnet, ci.Leader, ci.Epoch)

	// One client per node for probes and final reads.
	var probes []Target
	for _, n := range c.Nodes {
		rdb := newClient(n.respAddr())
		defer rdb.Close()
		probes = append(probes, Target{Node: n.ID, RDB: rdb})
	}
	pl, err := readPlacement(ctx, c, probes[0].RDB)
	if err != nil {
		return rep, err
	}
	probeKeys, err := pl.keysOn(c.Nodes, "probe", 1)
	if err != nil {
		return rep, err
	}
	if cfg.NoMulti {
		rep.MultiWhy = "disabled for this run"
	} else {
		rep.Multi, rep.MultiWhy = ProbeMulti(ctx, probes[0].RDB, "multi-probe")
	}
	logf("MULTI/EXEC: %v %s", rep.Multi, rep.MultiWhy)

	// Nemeses that cannot run here are skipped with their reason.
	var nemeses []Nemesis
	for _, nm := range cfg.Nemeses {
		if nm.Missing != nil {
			if err := nm.Missing(ctx, c); err != nil {
				rep.Skipped = append(rep.Skipped, nm.Name+": "+err.Error())
				logf("nemesis %s skipped: %v", nm.Name, err)
				continue
			}
		}
		nemeses = append(nemeses, nm)
	}

	for _, nm := range nemeses {
		if nm.Prepare != nil {
			if err := nm.Prepare(ctx, c); err != nil {
				return rep, fmt.Errorf("nemesis %s: prepare: %w", nm.Name, err)
			}
		}
	}

	// Workloads. On every return they are stopped and waited for before the
	// cluster is removed (defers run last-in, first-out).
	clk := clock{start: rep.Started}
	prog := &progress{}
	stop, stopWorkloads := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopWorkloads()
		wg.Wait()
	}()
	clientSeq := 0
	startClient := func(n *Node, run func(stop context.Context, client int, t Target, rnd *rand.Rand)) {
		id := clientSeq
		clientSeq++
		rdb := newClient(n.respAddr())
		rnd := rand.New(rand.NewPCG(cfg.Seed, uint64(id)+1))
		wg.Go(func() {
			defer rdb.Close()
			run(stop, id, Target{Node: n.ID, RDB: rdb}, rnd)
		})
	}
	var (
		reg   *Register
		bank  *Bank
		set   *Set
		snaps *Snapshots
	)
	if cfg.has(WorkloadRegister) {
		// Enough generations of keys for the longest run this can be.
		gens := min(registerGenerationsMax, 1+int((cfg.Duration+time.Hour)/RegisterPeriod))
		var keys [][]string
		for g := range gens {
			k, err := pl.keysOn(c.Nodes, fmt.Sprintf("reg%d.", g), registerKeysPerNode)
			if err != nil {
				return rep, err
			}
			keys = append(keys, k)
		}
		reg = &Register{Keys: keys, Period: RegisterPeriod, CAS: rep.Multi, Pace: cfg.Pace, MaxOps: maxOpsPerClient, clock: clk, prog: prog}
		for range registerClientsPerNode {
			for _, n := range c.Nodes {
				startClient(n, reg.Run)
			}
		}
	}
	if cfg.has(WorkloadBank) && rep.Multi {
		accounts, err := pl.keysOn(c.Nodes, "acct", bankAccountsPerNode)
		if err != nil {
			return rep, err
		}
		bank = &Bank{Accounts: accounts, Initial: bankInitial, Pace: cfg.Pace, ReadPace: 5 * cfg.Pace, MaxOps: maxOpsPerClient, clock: clk, prog: prog}
		if err := bank.Init(ctx, probes[0].RDB); err != nil {
			return rep, err
		}
		for _, n := range c.Nodes {
			startClient(n, bank.RunTransfers)
		}
		for _, n := range c.Nodes {
			startClient(n, bank.RunReads)
		}
	}
	if bank != nil {
		// Global snapshots during the bank, restored and summed at the end.
		snapDir, err := os.MkdirTemp("", "dbx-chaos-snap-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(snapDir)
		snaps = &Snapshots{Dir: snapDir, Logf: logf}
		rnd := rand.New(rand.NewPCG(cfg.Seed, 999))
		nodes := slices.Clone(c.Nodes)
		wg.Go(func() { snaps.Run(stop, nodes, rnd) })
	}
	if cfg.has(WorkloadSet) {
		set = &Set{Prefix: "set", Pace: cfg.Pace, MaxOps: maxOpsPerClient, clock: clk, prog: prog}
		for _, n := range c.Nodes {
			startClient(n, set.Run)
		}
	}
	logf("%d workload clients running", clientSeq)

	// Faults.
	sleepCtx(ctx, cfg.Quiet+time.Second)
	faultStart := time.Now()
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0))
	broken := false
	if len(nemeses) == 0 {
		logf("no nemesis to run: workloads only, for %s", max(cfg.Duration, cfg.Hold))
		sleepCtx(ctx, max(cfg.Duration, cfg.Hold))
	}
	for round := 0; round < 10_000 && !broken && len(nemeses) > 0; round++ {
		for _, i := range rnd.Perm(len(nemeses)) {
			if (round > 0 && time.Since(faultStart) >= cfg.Duration) || ctx.Err() != nil {
				broken = broken || ctx.Err() != nil
				break
			}
			fr := runFault(ctx, c, nemeses[i], cfg, rnd, clk, prog, probes, probeKeys, len(rep.Faults)+1, logf)
			rep.Faults = append(rep.Faults, fr)
			if fr.Failure != "" {
				rep.Failures = append(rep.Failures, fr.Failure)
				broken = true
				break
			}
			sleepCtx(ctx, cfg.Quiet)
		}
		if time.Since(faultStart) >= cfg.Duration {
			break
		}
	}
	rep.FaultPhase = time.Since(faultStart)
	sleepCtx(ctx, settleAfterFaults)
	stopWorkloads()
	wg.Wait()
	logf("workloads stopped after %s of faults; final reads", rep.FaultPhase.Round(time.Second))
	readTimeout := finalReadTimeout
	if broken {
		readTimeout = brokenReadTimeout
		logf("a fault failed: final reads bounded by %s each", readTimeout)
	}

	// Final reads and checks.
	if reg != nil {
		rep.RegisterOps, rep.RegisterKeys = reg.History(), reg.KeysUsed()
		logf("checking %d register operations with porcupine (timeout %s)", len(rep.RegisterOps), cfg.CheckTimeout)
		res := CheckRegister(rep.RegisterOps, cfg.CheckTimeout)
		rep.RegisterResult = &res
		if !res.OK() {
			rep.Failures = append(rep.Failures, "register: "+res.String())
		}
	}
	if bank != nil {
		bank.FinalRead(ctx, probes, readTimeout)
		rep.BankReads, rep.BankTransfers, rep.BankCounts, rep.BankTotal = bank.Reads(), bank.Transfers(), bank.Counts(), bank.Total()
		res := CheckBank(bank.Total(), len(bank.Accounts), rep.BankReads)
		rep.BankResult = &res
		if !res.OK() {
			rep.Failures = append(rep.Failures, "bank: "+res.String())
		}
	}
	if snaps != nil {
		res := snaps.Check(ctx, c.Nodes[0].httpAddr(), bank.Accounts, bank.Total(), c.wiped)
		rep.SnapshotResult = &res
		logf("snapshot: %s", res)
		if !res.OK() {
			rep.Failures = append(rep.Failures, "snapshot: "+res.String())
		}
	}
	if set != nil {
		final := set.Final(ctx, probes, readTimeout)
		rep.SetAttempts, rep.SetFinal = set.Attempts(), &final
		res := CheckSet(rep.SetAttempts, final)
		rep.SetResult = &res
		if !res.OK() {
			rep.Failures = append(rep.Failures, "set: "+res.String())
		}
	}
	return rep, nil
}

// runFault injects one fault, holds it, heals it and measures recovery.
func runFault(ctx context.Context, c *Cluster, nm Nemesis, cfg RunConfig, rnd *rand.Rand, clk clock, prog *progress,
	probes []Target, probeKeys []string, seq int, logf func(string, ...any)) FaultReport {
	fr := FaultReport{N: seq, Nemesis: nm.Name, At: time.Duration(clk.now()), FirstOK: -1, Served: -1, Converged: -1}
	hold := cfg.Hold
	if nm.Hold > 0 {
		hold = nm.Hold
	}
	f, err := nm.Inject(ctx, c, rnd)
	if f != nil {
		fr.Desc = f.Desc
	}
	if err != nil {
		fr.Err = "inject: " + err.Error()
		logf("fault #%d %s: inject failed: %v", seq, nm.Name, err)
	} else {
		logf("fault #%d %s: %s; holding %s", seq, nm.Name, fr.Desc, hold)
		sleepCtx(ctx, hold)
	}
	if f != nil && f.Heal != nil {
		healTimeout := 2 * time.Minute
		if nm.HealTimeout > 0 {
			healTimeout = nm.HealTimeout
		}
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healTimeout)
		if herr := f.Heal(hctx); herr != nil {
			fr.Err = joinNonEmpty(fr.Err, "heal: "+herr.Error())
		}
		cancel()
	}
	healed := clk.now()
	fr.Held = time.Duration(healed) - fr.At
	prog.watch(healed)
	if f != nil && f.Note != nil {
		fr.Note = f.Note()
	}

	// Recovery: every node serves a key of every owner; every node reports
	// the same leader and epoch with all members active.
	var wg sync.WaitGroup
	var servedErr, convErr error
	wg.Go(func() {
		servedErr = waitUntil(ctx, cfg.RecoveryTimeout, func() error { return servedEverywhere(probes, probeKeys) })
		if servedErr == nil {
			fr.Served = time.Duration(clk.now() - healed)
		}
	})
	wg.Go(func() {
		var ci ClusterInfo
		ci, _, convErr = c.WaitConverged(ctx, cfg.RecoveryTimeout)
		if convErr == nil {
			fr.Converged = time.Duration(clk.now() - healed)
			fr.Leader, fr.Epoch = ci.Leader, ci.Epoch
		}
	})
	wg.Wait()
	_ = waitUntil(ctx, 10*time.Second, func() error {
		if _, ok := prog.firstOK(); !ok {
			return errors.New("no successful operation yet")
		}
		return nil
	})
	if first, ok := prog.firstOK(); ok {
		fr.FirstOK = time.Duration(first - healed)
	}
	switch {
	case servedErr != nil || convErr != nil:
		fr.Failure = fmt.Sprintf("fault #%d %s (%s): not recovered within %s after heal: %v",
			seq, nm.Name, fr.Desc, cfg.RecoveryTimeout, errors.Join(servedErr, convErr))
	case fr.Err != "":
		fr.Failure = fmt.Sprintf("fault #%d %s: %s", seq, nm.Name, fr.Err)
	}
	logf("fault #%d %s healed: first op %s, served %s, converged %s (leader %s, epoch %d) %s",
		seq, nm.Name, durOrDash(fr.FirstOK), durOrDash(fr.Served), durOrDash(fr.Converged), fr.Leader, fr.Epoch, fr.Note)
	return fr
}

// servedEverywhere checks once that every node answers a GET of every
// probe key (one key owned by each node).
func servedEverywhere(probes []Target, keys []string) error {
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, t := range probes {
		wg.Go(func() {
			for _, k := range keys {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				err := t.RDB.Get(ctx, k).Err()
				cancel()
				if err != nil && !errors.Is(err, redis.Nil) {
					errs[i] = fmt.Errorf("GET %s via %s: %w", k, t.Node, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func durOrDash(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return d.Round(10 * time.Millisecond).String()
}
