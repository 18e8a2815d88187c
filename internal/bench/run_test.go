package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/kv/kvtest"
	"github.com/dbx-kv/dbx/server"
)

// memBackend is the keyspace's in-memory twin as a one-node server.Backend
// (MULTI included: it is a server.TxBackend).
type memBackend struct{ *kvtest.Mem }

func (memBackend) ClusterView() server.ClusterView {
	return server.SingleNodeView("mem", "127.0.0.1:6379")
}

// startServer serves an in-memory backend on a loopback port until the
// test ends.
func startServer(t *testing.T, pass string) (string, memBackend) {
	t.Helper()
	b := memBackend{kvtest.NewMem(time.Now)}
	cfg := server.DefaultConfig()
	cfg.RequirePass = pass
	s, err := server.New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), b
}

func testConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Addrs = []string{addr}
	cfg.Clients = 8
	cfg.Requests = 2000
	cfg.Keys = 500
	cfg.Timeout = 2 * time.Second
	return cfg
}

func TestRunWorkloads(t *testing.T) {
	addr, b := startServer(t, "")
	for _, tc := range []struct {
		workload, dist string
		pipeline       int
		load           bool
	}{
		{WorkloadSet, DistUniform, 1, false},
		{WorkloadGet, DistZipfian, 1, false},
		{WorkloadYCSBA, DistZipfian, 4, true},
		{WorkloadYCSBB, DistUniform, 16, false},
		{WorkloadYCSBC, DistUniform, 1, false},
		{WorkloadYCSBF, DistZipfian, 3, false},
		{WorkloadMSet, DistUniform, 2, false},
		{WorkloadMixed, DistUniform, 1, false},
	} {
		t.Run(tc.workload, func(t *testing.T) {
			cfg := testConfig(addr)
			cfg.Workload, cfg.Distribution, cfg.Pipeline, cfg.Load = tc.workload, tc.dist, tc.pipeline, tc.load
			cfg.Requests = 1999 // not a multiple of the pipeline depth
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != cfg.Requests || res.Errors != 0 || res.Latency.Count != cfg.Requests {
				t.Fatalf("ops %d errors %d histogram %d, want %d/0/%d (errors: %v)",
					res.Ops, res.Errors, res.Latency.Count, cfg.Requests, cfg.Requests, res.ErrorMessages)
			}
			if tc.load && (res.LoadOps != cfg.Keys || res.LoadErrors != 0) {
				t.Errorf("load: %d ops %d errors, want %d/0", res.LoadOps, res.LoadErrors, cfg.Keys)
			}
			if res.Latency.P50 < 1 || res.Latency.P50 > res.Latency.P999 || res.Latency.P999 > res.Latency.Max {
				t.Errorf("latency not ordered: %+v", res.Latency)
			}
			if res.ThroughputOpsPerSec <= 0 {
				t.Errorf("throughput %v", res.ThroughputOpsPerSec)
			}
		})
	}
	if n, err := b.DBSize(context.Background()); err != nil || n == 0 || n > 500 {
		t.Errorf("DBSIZE = %d, %v; want keys within key:0…key:499", n, err)
	}
}

func TestRunDurationWarmupProgress(t *testing.T) {
	addr, _ := startServer(t, "")
	cfg := testConfig(addr)
	cfg.Requests, cfg.Duration, cfg.Warmup = 0, 300*time.Millisecond, 100*time.Millisecond
	cfg.ProgressInterval = 50 * time.Millisecond
	var progress syncBuffer
	start := time.Now()
	res, err := Run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("run took %s for 100ms warmup + 300ms", took)
	}
	// A client's socket deadline (taken from the run's) may end its last
	// operation a moment before the run's timer fires.
	if res.Ops == 0 || res.Latency.Count != res.Ops || res.Elapsed < 290*time.Millisecond {
		t.Errorf("ops %d histogram %d elapsed %s", res.Ops, res.Latency.Count, res.Elapsed)
	}
	out := progress.String()
	if !strings.Contains(out, "warmup") || !strings.Contains(out, "run ") || !strings.Contains(out, "ops/s") {
		t.Errorf("progress lines missing:\n%s", out)
	}
}

func TestRunCountsServerErrors(t *testing.T) {
	addr, _ := startServer(t, "secret")
	cfg := testConfig(addr)
	cfg.Password, cfg.Requests, cfg.Clients = "wrong", 200, 4
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 200 || res.Errors != 200 || res.Latency.Count != 0 {
		t.Fatalf("ops %d errors %d histogram %d, want 200/200/0", res.Ops, res.Errors, res.Latency.Count)
	}
	if len(res.ErrorMessages) == 0 || !strings.Contains(res.ErrorMessages[0].Message, "WRONGPASS") {
		t.Fatalf("error messages %v, want WRONGPASS", res.ErrorMessages)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "WRONGPASS") {
		t.Errorf("text output (%v):\n%s", err, text.String())
	}

	cfg.Password = "secret"
	if res, err := Run(context.Background(), cfg, nil); err != nil || res.Errors != 0 {
		t.Errorf("right password: %v, %+v", err, res)
	}
}

func TestRunUnreachable(t *testing.T) {
	addr, _ := startServer(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	cfg := testConfig(addr)
	cfg.Addrs = append(cfg.Addrs, dead)
	_, err = Run(context.Background(), cfg, nil)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), dead) || strings.Contains(err.Error(), addr) {
		t.Fatalf("Run = %v, want ErrUnreachable naming only %s", err, dead)
	}
}

func TestRunInterrupted(t *testing.T) {
	addr, _ := startServer(t, "")
	cfg := testConfig(addr)
	cfg.Requests, cfg.Duration = 0, time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, cfg, nil)
	if !errors.Is(err, ErrInterrupted) || res == nil || !res.Interrupted || res.Ops == 0 {
		t.Fatalf("Run = %+v, %v; want partial results and ErrInterrupted", res, err)
	}
	if res.Errors != 0 || res.Latency.Count != res.Ops {
		t.Errorf("in-flight batches counted as errors: %+v", res)
	}
}

func TestJSONShape(t *testing.T) {
	addr, _ := startServer(t, "")
	cfg := testConfig(addr)
	cfg.Requests = 100
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, buf.String())
	}
	for _, k := range []string{"config", "ops", "errors", "error_messages", "elapsed_seconds",
		"throughput_ops_per_sec", "latency_us", "load_ops", "load_errors", "interrupted"} {
		if _, ok := got[k]; !ok {
			t.Errorf("missing key %q in:\n%s", k, buf.String())
		}
	}
	lat, _ := got["latency_us"].(map[string]any)
	for _, k := range []string{"count", "min", "mean", "p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latency_us.%s missing or not a number", k)
		}
	}
	if got["ops"].(float64) != 100 || lat["count"].(float64) != 100 {
		t.Errorf("ops/count: %v/%v", got["ops"], lat["count"])
	}
	if msgs, ok := got["error_messages"].([]any); !ok || len(msgs) != 0 {
		t.Errorf("error_messages = %v, want []", got["error_messages"])
	}
	c, _ := got["config"].(map[string]any)
	if c["workload"] != "set" || c["clients"].(float64) != 8 {
		t.Errorf("config = %v", c)
	}
}
