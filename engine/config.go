package engine

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/engine/wal"
)

// SyncMode says when the WAL is fsynced.
type SyncMode int

const (
	// SyncAlways fsyncs every commit group before acknowledging it (default).
	SyncAlways SyncMode = iota
	// SyncInterval writes every group to the OS and fsyncs every SyncInterval.
	SyncInterval
	// SyncNone writes every group to the OS and fsyncs only on rotation and Close.
	SyncNone
)

func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// ParseSyncMode parses "always", "interval" or "none".
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("unknown sync mode %q (want always, interval or none)", s)
}

// Config configures a Store. Start from DefaultConfig.
type Config struct {
	// FS does all file I/O. Default vfs.Default.
	FS vfs.FS
	// Shards is the number of shard workers; buckets map to shard bucket%Shards.
	// Fixed when the store is created; 0 at reopen means "as created".
	Shards int
	// MailboxSize bounds each shard's queue of pending writes; callers wait
	// (honouring ctx) when it is full.
	MailboxSize int
	// GroupBytesMax bounds the bytes one commit group gathers before it syncs.
	GroupBytesMax int
	// Sync is the WAL durability mode; SyncInterval is the period for SyncInterval.
	Sync         SyncMode
	SyncInterval time.Duration
	// MemtableBytes is the size at which the active memtable is frozen and flushed.
	MemtableBytes int64
	// ImmutableMax is how many frozen memtables may wait for flush before writes stall.
	ImmutableMax int
	// L0CompactionTrigger is the number of level-0 files that starts a compaction;
	// reads consult at most this many L0 files plus one L1 file (read amplification bound).
	L0CompactionTrigger int
	// L0StopWrites stalls writes while a shard has this many L0 files.
	L0StopWrites int
	// TargetFileBytes is the size at which compaction output is split.
	TargetFileBytes int64
	// CompactionConcurrency bounds compactions running at once across shards.
	CompactionConcurrency int
	// FragmentationRewrite is the dead/total ratio above which the maintenance
	// pass rewrites a level-1 file on its own.
	FragmentationRewrite float64
	// MaintenanceInterval is the period of the background maintenance pass (0 disables it).
	MaintenanceInterval time.Duration
	// TableCacheSize is the number of open segment readers kept (LRU).
	TableCacheSize int
	// BlockCacheBytes is the capacity of the shared block cache.
	BlockCacheBytes int64
	// KeyBytesMax and ValueBytesMax bound a key (without its bucket) and a
	// value; at most KeyBytesLimit and ValueBytesLimit, what the engine can
	// store. Defaults: KeyBytesLimit (64 KiB less 2 bytes) and 16 MiB.
	KeyBytesMax   int
	ValueBytesMax int
	// BatchBytesMax bounds a batch's keys and values plus 16 bytes per
	// operation (default and ceiling 64 MiB, one WAL record; a batch whose
	// WAL encoding would not fit in one record is refused too), BatchOpsMax
	// its operations.
	BatchBytesMax int
	BatchOpsMax   int
	// Now is the clock used for expiry (default time.Now).
	Now func() time.Time
	// Logf, if set, receives background errors (flush/compaction retries)
	// and, at Open, every recovery event (see Store.Recovery).
	Logf func(format string, args ...any)
	// ForceRecover lets Open proceed when a WAL that a shard's manifest
	// lists as live is missing (otherwise an ErrMissingWAL error naming
	// it): the writes it held are lost, and the loss is reported by
	// Store.Recovery and the log. It overrides nothing else: damage in the
	// middle of a WAL, a WAL with a bad header and a missing segment still
	// refuse Open. Leave it off except to bring a damaged node back.
	ForceRecover bool
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		FS:                    vfs.Default,
		Shards:                runtime.GOMAXPROCS(0),
		MailboxSize:           1024,
		GroupBytesMax:         4 << 20,
		Sync:                  SyncAlways,
		SyncInterval:          100 * time.Millisecond,
		MemtableBytes:         64 << 20,
		ImmutableMax:          2,
		L0CompactionTrigger:   4,
		L0StopWrites:          12,
		TargetFileBytes:       64 << 20,
		CompactionConcurrency: 1,
		FragmentationRewrite:  0.5,
		MaintenanceInterval:   5 * time.Minute,
		TableCacheSize:        512,
		BlockCacheBytes:       64 << 20,
		KeyBytesMax:           KeyBytesLimit,
		ValueBytesMax:         16 << 20,
		BatchBytesMax:         64 << 20,
		BatchOpsMax:           100_000,
		Now:                   time.Now,
	}
}

const shardsMax = 256

// Validate reports every problem at once, each wrapped in ErrInvalidConfig.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.FS == nil {
		bad("FS is nil")
	}
	if c.Shards < 0 || c.Shards > shardsMax {
		bad("Shards (%d) must be in [1, %d] (0 = as created)", c.Shards, shardsMax)
	}
	if c.MailboxSize < 1 || c.MailboxSize > 1<<20 {
		bad("MailboxSize (%d) must be in [1, %d]", c.MailboxSize, 1<<20)
	}
	if c.Sync < SyncAlways || c.Sync > SyncNone {
		bad("Sync (%d) is not a known mode", int(c.Sync))
	}
	if c.Sync == SyncInterval && c.SyncInterval <= 0 {
		bad("SyncInterval (%s) must be > 0 with Sync=interval", c.SyncInterval)
	}
	if c.MemtableBytes < 64<<10 {
		bad("MemtableBytes (%d) must be at least %d", c.MemtableBytes, 64<<10)
	}
	if c.ImmutableMax < 1 || c.ImmutableMax > 16 {
		bad("ImmutableMax (%d) must be in [1, 16]", c.ImmutableMax)
	}
	if c.L0CompactionTrigger < 2 {
		bad("L0CompactionTrigger (%d) must be at least 2", c.L0CompactionTrigger)
	}
	if c.L0StopWrites <= c.L0CompactionTrigger {
		bad("L0StopWrites (%d) must be greater than L0CompactionTrigger (%d)", c.L0StopWrites, c.L0CompactionTrigger)
	}
	if c.TargetFileBytes < 64<<10 {
		bad("TargetFileBytes (%d) must be at least %d", c.TargetFileBytes, 64<<10)
	}
	if c.CompactionConcurrency < 1 {
		bad("CompactionConcurrency (%d) must be at least 1", c.CompactionConcurrency)
	}
	if !(c.FragmentationRewrite > 0 && c.FragmentationRewrite <= 1) {
		bad("FragmentationRewrite (%g) must be in (0, 1]", c.FragmentationRewrite)
	}
	if c.MaintenanceInterval < 0 {
		bad("MaintenanceInterval (%s) must not be negative", c.MaintenanceInterval)
	}
	if c.TableCacheSize < 1 {
		bad("TableCacheSize (%d) must be at least 1", c.TableCacheSize)
	}
	if c.BlockCacheBytes < 0 {
		bad("BlockCacheBytes (%d) must not be negative", c.BlockCacheBytes)
	}
	if c.KeyBytesMax < 1 || c.KeyBytesMax > KeyBytesLimit {
		bad("KeyBytesMax (%d) must be in [1, %d] (KeyBytesLimit: a segment stores keys of at most %d bytes including the %d-byte bucket prefix)",
			c.KeyBytesMax, KeyBytesLimit, KeyBytesLimit+userKeyPrefixLen, userKeyPrefixLen)
	}
	if c.ValueBytesMax < 0 || c.ValueBytesMax > ValueBytesLimit {
		bad("ValueBytesMax (%d) must be in [0, %d] (ValueBytesLimit: an entry must fit in one %d-byte wal record)",
			c.ValueBytesMax, ValueBytesLimit, wal.MaxRecordBytes)
	}
	if one := c.KeyBytesMax + c.ValueBytesMax + batchOpBytes; c.BatchBytesMax < one {
		bad("BatchBytesMax (%d) must hold one maximal entry (KeyBytesMax+ValueBytesMax+%d = %d)", c.BatchBytesMax, batchOpBytes, one)
	}
	if c.BatchBytesMax > batchBytesLimit {
		bad("BatchBytesMax (%d) must be at most %d (a batch is logged as one wal record)", c.BatchBytesMax, batchBytesLimit)
	}
	if c.GroupBytesMax < 1 {
		bad("GroupBytesMax (%d) must be at least 1", c.GroupBytesMax)
	}
	if c.BatchOpsMax < 1 {
		bad("BatchOpsMax (%d) must be at least 1", c.BatchOpsMax)
	}
	if c.Now == nil {
		bad("Now is nil")
	}
	return errors.Join(errs...)
}
