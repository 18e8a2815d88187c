package bench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Addrs = []string{"127.0.0.1:6379", "[::1]:6380"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}

	bad := Config{
		Addrs: []string{"nohost", "h:0"}, Workload: "nope", Clients: 0, Requests: 0,
		Duration: 0, Warmup: -time.Second, Keys: 0, Distribution: "normal", ValueBytes: -1,
		Pipeline: 0, MSetKeys: 0, Timeout: 0, Mix: "Z", TxnKeys: 65, CrossNode: true, SameNode: true,
		Label: "two\nlines",
	}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		`address "nohost"`, `address "h:0"`, `workload "nope"`, "clients (0)",
		"one of requests and duration", "warmup (-1s)", "keys (0)", `distribution "normal"`,
		"value bytes (-1)", "pipeline (0)", "mset keys (0)", "timeout (0s)", "progress interval",
		`mix "Z" is unknown`, "txn keys (65)", `apply to workload txn only (workload "nope")`,
		"exclude each other", "label must be one line",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 18 {
		t.Errorf("got %d problems, want 18:\n%v", n, err)
	}

	noAddr := DefaultConfig()
	if err := noAddr.Validate(); err == nil || !strings.Contains(err.Error(), "at least one address") {
		t.Errorf("no addrs: %v", err)
	}

	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string // "" means valid
	}{
		{"txn", func(c *Config) { c.Workload = WorkloadTxn }, ""},
		{"txn 8 keys cross-node", func(c *Config) { c.Workload, c.TxnKeys, c.CrossNode = WorkloadTxn, 8, true }, ""},
		{"txn same-node", func(c *Config) { c.Workload, c.SameNode = WorkloadTxn, true }, ""},
		{"cross-node one key", func(c *Config) { c.Workload, c.TxnKeys, c.CrossNode = WorkloadTxn, 1, true }, "cross-node needs txn keys >= 2"},
		{"txn keys over key space", func(c *Config) { c.Workload, c.TxnKeys, c.Keys = WorkloadTxn, 8, 4 }, "txn keys (8) must not exceed keys (4)"},
		{"txn cluster pipelined", func(c *Config) { c.Workload, c.Cluster, c.Pipeline = WorkloadTxn, true, 4 }, "needs pipeline 1"},
		{"txn pipelined", func(c *Config) { c.Workload, c.Pipeline = WorkloadTxn, 4 }, ""},
		{"same-node on set", func(c *Config) { c.SameNode = true }, `apply to workload txn only (workload "set")`},
		{"mixed default mix", func(c *Config) { c.Workload = WorkloadMixed }, ""},
		{"mixed lower-case mix", func(c *Config) { c.Workload, c.Mix = WorkloadMixed, "f" }, ""},
		{"mix on alias", func(c *Config) { c.Workload, c.Mix = WorkloadYCSBB, "A" }, `applies to workload mixed only (workload "ycsb-b")`},
		{"label", func(c *Config) { c.Label = "dbx 3 nodes, fsync" }, ""},
		{"long label", func(c *Config) { c.Label = strings.Repeat("x", 129) }, "label must be one line of at most 128 bytes"},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig with %q", tc.name, err, tc.want)
		}
	}

	big := ok
	big.Workload, big.Pipeline, big.MSetKeys, big.ValueBytes = WorkloadMSet, 1000, 1000, 1<<20
	if err := big.Validate(); err == nil || !strings.Contains(err.Error(), "must be at most") {
		t.Errorf("oversize batch: %v", err)
	}
	bigTxn := ok
	bigTxn.Workload, bigTxn.Pipeline, bigTxn.TxnKeys, bigTxn.ValueBytes = WorkloadTxn, 1000, 64, 1<<20
	if err := bigTxn.Validate(); err == nil || !strings.Contains(err.Error(), "× keys per op (64)") {
		t.Errorf("oversize txn batch: %v", err)
	}

	durationOnly := ok
	durationOnly.Requests, durationOnly.Duration = 0, time.Second
	if err := durationOnly.Validate(); err != nil {
		t.Errorf("duration only: %v", err)
	}
}

func TestEffectiveMix(t *testing.T) {
	for _, tc := range []struct{ workload, mix, want string }{
		{WorkloadMixed, "", MixA}, {WorkloadMixed, "b", MixB}, {WorkloadMixed, "C", MixC},
		{WorkloadYCSBA, "", MixA}, {WorkloadYCSBB, "", MixB}, {WorkloadYCSBC, "", MixC}, {WorkloadYCSBF, "", MixF},
		{WorkloadSet, "", ""}, {WorkloadTxn, "", ""},
	} {
		c := Config{Workload: tc.workload, Mix: tc.mix}
		if got := c.mix(); got != tc.want {
			t.Errorf("%s --mix %q: mix %q, want %q", tc.workload, tc.mix, got, tc.want)
		}
	}
}
