package bench

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMixes(t *testing.T) {
	const n = 4000
	for _, tc := range []struct {
		workload, mix string
		gets, sets    float64 // expected commands per operation
	}{
		{WorkloadMixed, "", 0.5, 0.5}, // default A
		{WorkloadMixed, "A", 0.5, 0.5},
		{WorkloadMixed, "b", 0.95, 0.05},
		{WorkloadMixed, "C", 1, 0},
		{WorkloadMixed, "F", 1, 0.5}, // every op GETs, half then SET
		{WorkloadYCSBB, "", 0.95, 0.05},
		{WorkloadYCSBF, "", 1, 0.5},
	} {
		t.Run(tc.workload+"-"+tc.mix, func(t *testing.T) {
			f := &fakeServer{}
			cfg := testConfig(f.start(t))
			cfg.Workload, cfg.Mix, cfg.Requests, cfg.Clients = tc.workload, tc.mix, n, 4
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != n || res.Errors != 0 {
				t.Fatalf("ops %d errors %d %v", res.Ops, res.Errors, res.ErrorMessages)
			}
			// Binomial counts: allow 5 standard deviations.
			for _, c := range []struct {
				cmd  string
				want float64
			}{{"get", tc.gets}, {"set", tc.sets}} {
				got := float64(f.count(c.cmd))
				p := min(c.want, 1) - math.Floor(c.want) // the random part
				tol := 5*math.Sqrt(n*p*(1-p)) + 0.5
				if math.Abs(got-c.want*n) > tol {
					t.Errorf("%s: %.0f of %d operations, want %.0f ± %.0f", c.cmd, got, n, c.want*n, tol)
				}
			}
			if want := cfg.mix(); res.Config.Mix != want || res.Config.Workload != tc.workload {
				t.Errorf("result config workload %q mix %q, want %q %q", res.Config.Workload, res.Config.Mix, tc.workload, want)
			}
		})
	}
}

func TestProgressLines(t *testing.T) {
	f := &fakeServer{setErr: "ERR boom"}
	cfg := testConfig(f.start(t))
	cfg.Requests, cfg.Duration, cfg.Clients = 0, 250*time.Millisecond, 2
	cfg.ProgressInterval = 50 * time.Millisecond
	var progress syncBuffer
	res, err := Run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Errors != res.Ops {
		t.Fatalf("ops %d errors %d, want every op failed", res.Ops, res.Errors)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) < 2 || len(lines) > 6 {
		t.Fatalf("%d progress lines for 250ms at 50ms, want about 5:\n%s", len(lines), progress.String())
	}
	for _, l := range lines {
		for _, want := range []string{"run ", "ops/s", "errors ", "p99 n/a", "total ", "last error: ERR boom"} {
			if !strings.Contains(l, want) {
				t.Errorf("progress line %q lacks %q", l, want)
			}
		}
	}
}

func TestRunServerErrorsAndDeath(t *testing.T) {
	f := &fakeServer{setErr: "ERR boom"}
	cfg := testConfig(f.start(t))
	cfg.Requests = 300
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 300 || res.Errors != 300 || len(res.ErrorMessages) != 1 || res.ErrorMessages[0].Message != "ERR boom" {
		t.Fatalf("ops %d errors %d %v, want 300 failures saying ERR boom", res.Ops, res.Errors, res.ErrorMessages)
	}

	// The server goes away in the middle of a timed run: the run ends on
	// time with the failures counted and explained.
	g := &fakeServer{}
	cfg = testConfig(g.start(t))
	cfg.Requests, cfg.Duration, cfg.Clients, cfg.Timeout = 0, 600*time.Millisecond, 2, 300*time.Millisecond
	stopped := time.AfterFunc(200*time.Millisecond, g.stop)
	defer stopped.Stop()
	start := time.Now()
	res, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("run took %s for a 600ms duration", took)
	}
	if res.Errors == 0 || res.Latency.Count == 0 || len(res.ErrorMessages) == 0 {
		t.Fatalf("ops %d errors %d ok %d messages %v: want successes, then failures", res.Ops, res.Errors, res.Latency.Count, res.ErrorMessages)
	}
	msg := res.ErrorMessages[0].Message
	if !strings.Contains(msg, "refused") && !strings.Contains(msg, "EOF") && !strings.Contains(msg, "reset") {
		t.Errorf("error message %q does not say the connection failed", msg)
	}
}

func TestRunHangingServer(t *testing.T) {
	addr := hangServer(t)
	cfg := testConfig(addr)
	cfg.Requests, cfg.Clients, cfg.Timeout = 4, 2, 150*time.Millisecond
	start := time.Now()
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("4 ops with a 150ms timeout took %s", took)
	}
	if res.Ops != 4 || res.Errors != 4 || len(res.ErrorMessages) == 0 || !strings.Contains(res.ErrorMessages[0].Message, "timeout") {
		t.Fatalf("ops %d errors %d %v, want 4 timeouts", res.Ops, res.Errors, res.ErrorMessages)
	}

	// Ctrl-C while every request hangs: Run returns within about one
	// timeout, with partial (empty) results and nothing counted as failed.
	cfg.Requests, cfg.Duration, cfg.Timeout = 0, time.Minute, 500*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel) // as Ctrl-C does: no deadline
	start = time.Now()
	res, err = Run(ctx, cfg, nil)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("interrupted run took %s to return", took)
	}
	if !errors.Is(err, ErrInterrupted) || res == nil || !res.Interrupted || res.Errors != 0 {
		t.Fatalf("Run = %+v, %v; want an interrupted result without errors", res, err)
	}
}

func TestInterruptedBeforeFirstPhase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := testConfig("127.0.0.1:1")
	res, err := Run(ctx, cfg, nil)
	if !errors.Is(err, ErrInterrupted) || res != nil {
		t.Fatalf("Run = %v, %v; want ErrInterrupted (not ErrUnreachable)", res, err)
	}
}

// countingTarget executes operations in memory, counting them per kind.
type countingTarget struct {
	mu    sync.Mutex
	kinds map[OpKind]int
	fail  error // returned by Conn
}

func (t *countingTarget) Name() string { return "counting" }

func (t *countingTarget) Conn(int) (Conn, error) { return t, t.fail }

func (t *countingTarget) Do(_ context.Context, batch []Op, errs []error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, o := range batch {
		t.kinds[o.Kind]++
		if len(o.Keys) == 0 || (o.Kind != OpGet && len(o.Value) != 64) {
			errs[i] = errors.New("malformed op")
		}
	}
}

func TestRunTarget(t *testing.T) {
	tg := &countingTarget{kinds: map[OpKind]int{}}
	cfg := DefaultConfig()
	cfg.Addrs, cfg.Workload, cfg.Requests, cfg.Clients, cfg.Load, cfg.Keys = []string{"etcd:2379"}, WorkloadTxn, 500, 3, true, 100
	res, err := RunTarget(context.Background(), cfg, tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 500 || res.Errors != 0 || res.LoadOps != 100 || res.Config.Target != "counting" {
		t.Fatalf("ops %d errors %d load %d target %q", res.Ops, res.Errors, res.LoadOps, res.Config.Target)
	}
	if tg.kinds[OpTxn] != 500 || tg.kinds[OpSet] != 100 {
		t.Errorf("target saw %v, want 500 txn and 100 load SETs", tg.kinds)
	}

	cfg.CrossNode = true
	if _, err := RunTarget(context.Background(), cfg, tg, nil); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "CLUSTER SLOTS") {
		t.Errorf("cross-node on a non-RESP target: %v", err)
	}
	cfg.CrossNode = false
	tg.fail = errors.New("no such endpoint")
	if _, err := RunTarget(context.Background(), cfg, tg, nil); err == nil || !strings.Contains(err.Error(), "worker 0: no such endpoint") {
		t.Errorf("failing Conn: %v", err)
	}
}

func TestReadResultAndCompare(t *testing.T) {
	base := &Result{
		Config:  RunConfig{Target: "resp", Workload: WorkloadGet, Clients: 50, Pipeline: 1, ValueBytes: 100, Keys: 1000, Distribution: DistUniform},
		Ops:     10_000,
		Elapsed: 2500 * time.Millisecond, ThroughputOpsPerSec: 4000,
		Latency: LatencyUs{Count: 10_000, P50: 200, P99: 1000, P999: 3000},
	}
	var buf bytes.Buffer
	if err := base.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Elapsed != base.Elapsed || back.Ops != base.Ops || back.Latency != base.Latency || back.Config.Workload != WorkloadGet {
		t.Errorf("read back %+v, want %+v", back, base)
	}
	for _, bad := range []string{"", "{}", "not json", `{"config": {"workload": 7}}`} {
		if _, err := ReadResult(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "not a dbx-bench --json result") {
			t.Errorf("ReadResult(%q) = %v", bad, err)
		}
	}

	faster := *back
	faster.Label, faster.ThroughputOpsPerSec, faster.Config.Clients = "dbx", 8000, 32
	faster.Latency.P99 = 500
	broken := *back
	broken.Interrupted, broken.Errors, broken.Latency = true, 5, LatencyUs{}
	broken.ErrorMessages = []ErrorMessage{{"ERR boom", 5}}
	var out bytes.Buffer
	if err := WriteComparison(&out, []string{"redis-get", "ignored", "third"}, []*Result{back, &faster, &broken}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 4 {
		t.Fatalf("comparison:\n%s", out.String())
	}
	for i, wants := range [][]string{
		{"run", "ops/s", "vs first", "p99", "notes"},
		{"redis-get", "4,000", "1.00x", "1.00ms", "1.00x"},
		{"dbx", "8,000", "2.00x", "500µs", "0.50x", "differs from first: clients"},
		{"third", "4,000", "n/a", "interrupted (partial)", "error: ERR boom"},
	} {
		for _, want := range wants {
			if !strings.Contains(lines[i], want) {
				t.Errorf("line %d %q lacks %q", i, lines[i], want)
			}
		}
	}
	if strings.Contains(out.String(), "ignored") {
		t.Errorf("a labelled run is named by its file:\n%s", out.String())
	}
	if err := WriteComparison(&out, nil, nil); err == nil {
		t.Error("empty comparison accepted")
	}
}
