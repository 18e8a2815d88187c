package replica

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := testConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	c := DefaultConfig()
	c.MinReplicasToWrite = 9
	c.BatchEntriesMax = 0
	c.InflightBytesMax = 0
	c.LeaseTicks = 5
	c.DeadTicks = 3
	err := c.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("want ErrBadConfig, got %v", err)
	}
	for _, want := range []string{"MinReplicasToWrite (9)", "BatchEntriesMax (0)", "InflightBytesMax (0)",
		"HeartbeatTicks (20) must be less than LeaseTicks (5)", "DeadTicks (3) must be equal or greater than LeaseTicks + LeaseMarginTicks (25)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := New("n1", c, 0); !errors.Is(err, ErrBadConfig) {
		t.Errorf("New accepted a bad config: %v", err)
	}
	if _, err := NewFailover(c, 0); !errors.Is(err, ErrBadConfig) {
		t.Errorf("NewFailover accepted a bad config: %v", err)
	}
}

func TestRestoreRefusesHoles(t *testing.T) {
	r, err := New("n1", testConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Restore(0, EntryID{Seq: 2, Epoch: 1}, []Entry{{Seq: 3, Epoch: 1}, {Seq: 5, Epoch: 1}}, 2)
	if !errors.Is(err, ErrBadRestore) {
		t.Fatalf("want ErrBadRestore, got %v", err)
	}
	if err := r.Restore(0, EntryID{Seq: 2, Epoch: 1}, nil, 1); !errors.Is(err, ErrBadRestore) {
		t.Fatalf("commit below base: want ErrBadRestore, got %v", err)
	}
}

// Outputs do not depend on map order: two identical runs give identical
// traces.
func TestDeterministic(t *testing.T) {
	var traces [2]string
	for i := range traces {
		s, err := randomRun(7, 300, "")
		if err != nil {
			t.Fatal(err)
		}
		traces[i] = strings.Join(s.state(), "\n") + fmt.Sprintf("\n%d acks %d reads", s.countAcks(), s.reads)
	}
	if traces[0] != traces[1] {
		t.Fatalf("two runs of seed 7 differ:\n%s\n---\n%s", traces[0], traces[1])
	}
}
