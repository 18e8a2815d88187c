package node

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Weight = 101
	cfg.GossipKey = "c2hvcnQ=" // 5 bytes
	cfg.Sync = "sometimes"
	cfg.RESPAddr = "nope"
	cfg.Join = []string{"a:b"}
	err := cfg.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Validate = %v, want ErrBadConfig", err)
	}
	for _, want := range []string{"id is required", "data-dir is required", "resp-addr", "join address", "weight 101", "gossip-key is 5 bytes", "sync"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
	cfg = DefaultConfig()
	cfg.ID, cfg.DataDir = "n1", t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}
