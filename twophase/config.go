package twophase

import (
	"errors"
	"fmt"
)

// Tick is a logical time on one node. The caller advances it (node/ ticks
// every 100 ms); the package never reads a clock. Ticks of different nodes
// are unrelated: only differences on one node mean anything.
type Tick int64

// KeysPerTxnMaxLimit is the largest value Config.KeysPerTxnMax accepts.
const KeysPerTxnMaxLimit = 1 << 20

// Config holds the limits and timeouts of the protocol, in ticks.
type Config struct {
	// KeysPerTxnMax bounds the distinct keys (written, read or watched) of
	// one transaction.
	KeysPerTxnMax int
	// DeadlineTicks is how long a coordinator waits for votes and then for
	// the decision. Before the commit is requested, running out aborts the
	// transaction; after, the outcome is reported unknown.
	DeadlineTicks Tick
	// ResolveTicks is how long a participant waits after voting (and
	// between queries) before asking the record holder for the outcome.
	ResolveTicks Tick
	// RecordTTLTicks is how long a PENDING transaction record is protected:
	// a Resolve after that turns it ABORTED (presumed abort). It should be
	// at least DeadlineTicks so a live coordinator normally decides first;
	// safety does not depend on it (the decision is a compare-and-set).
	RecordTTLTicks Tick
	// FinishedTTLTicks is how long a participant remembers a finished
	// transaction (to absorb duplicate and late messages) before it emits
	// Forget. It must exceed the longest time a message can be delayed.
	FinishedTTLTicks Tick
	// RecordKeepTicks is how long the holder keeps a COMMITTED transaction
	// record after the decision before ForgetRecord (ABORTED records go
	// after FinishedTTLTicks: a missing record means ABORTED anyway). A
	// participant that cannot reach the holder for longer than this while
	// in doubt would resolve a committed transaction as aborted, so it must
	// be far longer than any partition the cluster is expected to survive.
	RecordKeepTicks Tick
}

// DefaultConfig returns the limits dbx runs with, for a 100 ms tick: 1024
// keys per transaction, a 5 s deadline, in-doubt queries every 2 s, PENDING
// records protected for 6 s, finished transactions remembered for 10 min,
// committed records kept for 1 h.
func DefaultConfig() Config {
	return Config{
		KeysPerTxnMax:    1024,
		DeadlineTicks:    50,
		ResolveTicks:     20,
		RecordTTLTicks:   60,
		FinishedTTLTicks: 6000,
		RecordKeepTicks:  36000,
	}
}

// Validate reports every field out of range at once.
func (c Config) Validate() error {
	var errs []error
	if c.KeysPerTxnMax < 1 || c.KeysPerTxnMax > KeysPerTxnMaxLimit {
		errs = append(errs, fmt.Errorf("%w: KeysPerTxnMax (%d) must be in [1, %d]", ErrBadConfig, c.KeysPerTxnMax, KeysPerTxnMaxLimit))
	}
	if c.DeadlineTicks < 1 {
		errs = append(errs, fmt.Errorf("%w: DeadlineTicks (%d) must be at least 1", ErrBadConfig, c.DeadlineTicks))
	}
	if c.ResolveTicks < 1 {
		errs = append(errs, fmt.Errorf("%w: ResolveTicks (%d) must be at least 1", ErrBadConfig, c.ResolveTicks))
	}
	if c.RecordTTLTicks < c.DeadlineTicks {
		errs = append(errs, fmt.Errorf("%w: RecordTTLTicks (%d) must be equal or greater than DeadlineTicks (%d)", ErrBadConfig, c.RecordTTLTicks, c.DeadlineTicks))
	}
	if c.FinishedTTLTicks < c.RecordTTLTicks {
		errs = append(errs, fmt.Errorf("%w: FinishedTTLTicks (%d) must be equal or greater than RecordTTLTicks (%d)", ErrBadConfig, c.FinishedTTLTicks, c.RecordTTLTicks))
	}
	if c.RecordKeepTicks < c.FinishedTTLTicks {
		errs = append(errs, fmt.Errorf("%w: RecordKeepTicks (%d) must be equal or greater than FinishedTTLTicks (%d)", ErrBadConfig, c.RecordKeepTicks, c.FinishedTTLTicks))
	}
	return errors.Join(errs...)
}
