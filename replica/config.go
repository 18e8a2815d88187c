package replica

import (
	"errors"
	"fmt"
)

// Tick is a logical time on one node, advanced by the driver (DefaultConfig
// assumes 10 ms). Ticks of different nodes are unrelated; only differences
// on one node mean anything, and safety assumes only that two nodes' tick
// rates differ by less than LeaseMarginTicks over a lease.
type Tick int64

// Limits of Config fields that Validate enforces.
const (
	// ReplicasToWriteLimit bounds MinReplicasToWrite (RF is at most 7).
	ReplicasToWriteLimit = 6
	// EntriesLimit bounds every entry-count field.
	EntriesLimit = 1 << 20
	// BytesLimit bounds every byte-count field (1 GiB).
	BytesLimit = 1 << 30
	// roundsMax bounds the lease rounds a primary remembers per bucket.
	roundsMax = 256
)

// Config holds the limits and timeouts of replication. Times are in
// ticks of the node running the state machine.
type Config struct {
	// MinReplicasToWrite: a set with fewer backups refuses writes with
	// ErrNoReplicas (--min-replicas-to-write).
	MinReplicasToWrite int
	// BatchEntriesMax and BatchBytesMax bound one Ship message (and one
	// write: a larger one is refused with ErrTooLarge).
	BatchEntriesMax int
	BatchBytesMax   int
	// InflightEntriesMax and InflightBytesMax bound the writes a primary
	// holds uncommitted; Propose refuses more with ErrBackpressure. They
	// also bound how far any in-sync replica can lag.
	InflightEntriesMax int
	InflightBytesMax   int64
	// RetainEntriesMax bounds the committed log tail kept in memory for
	// catch-up by delta; a replica further behind needs a full copy.
	RetainEntriesMax int
	// LagBytesMax: a replica behind the primary's log by more bytes than
	// this is proposed out of the set at once.
	LagBytesMax int64
	// LagTicksMax: a replica continuously behind the primary's log for
	// this long (acknowledging, but never catching up) is proposed out.
	LagTicksMax Tick
	// AckTimeoutTicks: a replica that sent no acknowledgement for this
	// long while the primary waited on it is proposed out of the set.
	AckTimeoutTicks Tick
	// HeartbeatTicks: the primary ships an empty round (lease renewal,
	// commit point) this often when idle.
	HeartbeatTicks Tick
	// LeaseTicks is the read lease a round acknowledged by the whole set
	// gives the primary, counted from when it sent the round. A replica
	// that acknowledged promises not to serve as primary of a later
	// epoch before LeaseTicks + LeaseMarginTicks after its acknowledgement.
	LeaseTicks Tick
	// LeaseMarginTicks covers clock-rate drift between two nodes over a
	// lease.
	LeaseMarginTicks Tick
	// DeadTicks: the metadata leader (Failover) declares a primary dead
	// after hearing nothing from it this long and only then promotes.
	// It must be at least LeaseTicks + LeaseMarginTicks.
	DeadTicks Tick
	// ProposeRetryTicks: a configuration change not seen applied is
	// proposed again this often.
	ProposeRetryTicks Tick
	// FailoverBatchMax bounds the buckets one Failover proposal changes.
	FailoverBatchMax int
	// QuiesceTicks: a primary bucket idle this long (no write, no Touch),
	// with its whole set caught up and nothing pending, stops its
	// heartbeats until the next Touch, Propose or catch-up request — so
	// the idle buckets of a node cost nothing. 0 never quiesces.
	QuiesceTicks Tick
}

// DefaultConfig returns dbx's defaults for a 10 ms tick: one replica
// needed to write, 256-entry / 1 MiB batches, 4096 entries / 64 MiB in
// flight, 16384 entries retained, lag bounds 32 MiB and 5 s, ack timeout
// 2 s, heartbeats every 200 ms, a 1 s lease with a 200 ms margin, a dead
// primary after 1.5 s, proposals retried every 500 ms, 1024 buckets per
// failover entry, buckets idle for 1 s quiesced.
func DefaultConfig() Config {
	return Config{
		MinReplicasToWrite: 1,
		BatchEntriesMax:    256,
		BatchBytesMax:      1 << 20,
		InflightEntriesMax: 4096,
		InflightBytesMax:   64 << 20,
		RetainEntriesMax:   16384,
		LagBytesMax:        32 << 20,
		LagTicksMax:        500,
		AckTimeoutTicks:    200,
		HeartbeatTicks:     20,
		LeaseTicks:         100,
		LeaseMarginTicks:   20,
		DeadTicks:          150,
		ProposeRetryTicks:  50,
		FailoverBatchMax:   1024,
		QuiesceTicks:       100,
	}
}

// Validate reports every field out of range at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if c.MinReplicasToWrite < 0 || c.MinReplicasToWrite > ReplicasToWriteLimit {
		bad("MinReplicasToWrite (%d) must be in [0, %d]", c.MinReplicasToWrite, ReplicasToWriteLimit)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"BatchEntriesMax", c.BatchEntriesMax}, {"InflightEntriesMax", c.InflightEntriesMax}, {"RetainEntriesMax", c.RetainEntriesMax}, {"FailoverBatchMax", c.FailoverBatchMax}} {
		if f.v < 1 || f.v > EntriesLimit {
			bad("%s (%d) must be in [1, %d]", f.name, f.v, EntriesLimit)
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"BatchBytesMax", int64(c.BatchBytesMax)}, {"InflightBytesMax", c.InflightBytesMax}, {"LagBytesMax", c.LagBytesMax}} {
		if f.v < 1 || f.v > BytesLimit {
			bad("%s (%d) must be in [1, %d]", f.name, f.v, BytesLimit)
		}
	}
	if c.BatchEntriesMax > c.InflightEntriesMax {
		bad("BatchEntriesMax (%d) must not exceed InflightEntriesMax (%d)", c.BatchEntriesMax, c.InflightEntriesMax)
	}
	if int64(c.BatchBytesMax) > c.InflightBytesMax {
		bad("BatchBytesMax (%d) must not exceed InflightBytesMax (%d)", c.BatchBytesMax, c.InflightBytesMax)
	}
	for _, f := range []struct {
		name string
		v    Tick
	}{{"LagTicksMax", c.LagTicksMax}, {"AckTimeoutTicks", c.AckTimeoutTicks}, {"HeartbeatTicks", c.HeartbeatTicks}, {"LeaseTicks", c.LeaseTicks}, {"DeadTicks", c.DeadTicks}, {"ProposeRetryTicks", c.ProposeRetryTicks}} {
		if f.v < 1 {
			bad("%s (%d) must be at least 1", f.name, f.v)
		}
	}
	if c.LeaseMarginTicks < 0 {
		bad("LeaseMarginTicks (%d) must not be negative", c.LeaseMarginTicks)
	}
	if c.HeartbeatTicks >= c.LeaseTicks {
		bad("HeartbeatTicks (%d) must be less than LeaseTicks (%d)", c.HeartbeatTicks, c.LeaseTicks)
	}
	if c.HeartbeatTicks >= c.AckTimeoutTicks {
		bad("HeartbeatTicks (%d) must be less than AckTimeoutTicks (%d)", c.HeartbeatTicks, c.AckTimeoutTicks)
	}
	if c.QuiesceTicks != 0 && c.QuiesceTicks < c.LeaseTicks {
		bad("QuiesceTicks (%d) must be 0 (never) or at least LeaseTicks (%d)", c.QuiesceTicks, c.LeaseTicks)
	}
	if c.DeadTicks < c.LeaseTicks+c.LeaseMarginTicks {
		bad("DeadTicks (%d) must be equal or greater than LeaseTicks + LeaseMarginTicks (%d)", c.DeadTicks, c.LeaseTicks+c.LeaseMarginTicks)
	}
	return errors.Join(errs...)
}
