package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/kv/kvtest"
)

// The keyspace's conformance suite (kv/kvtest.Run) checks kv.Engine and
// its in-memory twin alike; here both serve the RESP server as one-node
// backends.

// memBackend is the in-memory twin as a one-node Backend, with the view
// SingleNodeView("mem", "127.0.0.1:6379") until SetClusterView.
type memBackend struct {
	*kvtest.Mem
	view atomic.Pointer[ClusterView]
}

func newMemBackend(now func() time.Time) *memBackend {
	m := &memBackend{Mem: kvtest.NewMem(now)}
	m.SetClusterView(SingleNodeView("mem", "127.0.0.1:6379"))
	return m
}

func (m *memBackend) SetClusterView(v ClusterView) { m.view.Store(&v) }
func (m *memBackend) ClusterView() ClusterView     { return *m.view.Load() }

// engineBackend is kv.Engine as a one-node Backend.
type engineBackend struct{ *kv.Engine }

func newEngineBackend(st *engine.Store, now func() time.Time) engineBackend {
	return engineBackend{kv.New(st, now)}
}

func (engineBackend) ClusterView() ClusterView { return SingleNodeView("local", "") }

// backends returns the Backend implementations under test, each with the
// clock it uses, so one RESP test runs on all of them.
func backends(t *testing.T) map[string]func(t *testing.T) (Backend, *clock) {
	return map[string]func(t *testing.T) (Backend, *clock){
		"mem": func(t *testing.T) (Backend, *clock) {
			clk := newClock()
			return newMemBackend(clk.Now), clk
		},
		"engine": func(t *testing.T) (Backend, *clock) {
			clk := newClock()
			st := openEngine(t, clk)
			return newEngineBackend(st, clk.Now), clk
		},
	}
}

func openEngine(t *testing.T, clk *clock) *engine.Store {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.Now = clk.Now
	cfg.Sync = engine.SyncNone
	cfg.Shards = 2
	cfg.MaintenanceInterval = 0
	st, err := engine.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestEngineServer runs the RESP server over a real engine and checks
// that expiry is visible at once through the injected clock, and survives
// compaction as a purge.
func TestEngineServer(t *testing.T) {
	clk := newClock()
	st := openEngine(t, clk)
	_, addr := startServer(t, testConfig(clk), newEngineBackend(st, clk.Now))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd("+OK", "SET", "k", "v", "PX", "100"),
		cmd("+OK", "SET", "p", "v"),
		cmd(":100", "PTTL", "k"),
		cmd(":2", "DBSIZE"),
	})
	clk.Advance(100 * time.Millisecond)
	runSteps(t, r, []step{
		cmd("(nil)", "GET", "k"),
		cmd(":1", "DBSIZE"),
		cmd("(nil)", "SET", "k", "v2", "XX"),
	})
	if err := st.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	runSteps(t, r, []step{
		cmd("(nil)", "GET", "k"),
		cmd(`"v"`, "GET", "p"),
		cmd(`["0", ["p"]]`, "SCAN", "0"),
	})
}
