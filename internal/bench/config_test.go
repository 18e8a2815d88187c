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
		Pipeline: 0, MSetKeys: 0, Timeout: 0,
	}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		`address "nohost"`, `address "h:0"`, `workload "nope"`, "clients (0)",
		"one of requests and duration", "warmup (-1s)", "keys (0)", `distribution "normal"`,
		"value bytes (-1)", "pipeline (0)", "mset keys (0)", "timeout (0s)", "progress interval",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 13 {
		t.Errorf("got %d problems, want 13:\n%v", n, err)
	}

	noAddr := DefaultConfig()
	if err := noAddr.Validate(); err == nil || !strings.Contains(err.Error(), "at least one address") {
		t.Errorf("no addrs: %v", err)
	}

	txn := ok
	txn.Workload = WorkloadTxn
	if err := txn.Validate(); !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "MULTI/EXEC") {
		t.Errorf("txn: %v, want ErrNotSupported naming MULTI/EXEC", err)
	}

	big := ok
	big.Workload, big.Pipeline, big.MSetKeys, big.ValueBytes = WorkloadMSet, 1000, 1000, 1<<20
	if err := big.Validate(); err == nil || !strings.Contains(err.Error(), "must be at most") {
		t.Errorf("oversize batch: %v", err)
	}

	durationOnly := ok
	durationOnly.Requests, durationOnly.Duration = 0, time.Second
	if err := durationOnly.Validate(); err != nil {
		t.Errorf("duration only: %v", err)
	}
}
