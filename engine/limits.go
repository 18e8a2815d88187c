package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/segment"
	"github.com/dbx-kv/dbx/engine/wal"
)

// What the engine can store. This file is the one place that decides it:
// every write path (Batch and Put, cross-shard batches, ingestion) checks
// its input with checkEntry and checkBatch, and WAL replay and flushes
// check entries in their internal form with checkStored. The limits below
// are derived from what the segment writer and the WAL accept, counting
// the engine's own encoding, so an entry that passes checkEntry can always
// be logged, flushed and reopened.
//
// The internal form of an entry is:
//
//	user key:     bucket (2 bytes, big endian) | key
//	stored value: flags (1 byte) [| expiry (8 bytes) when flagExpiry] | value
//
// and a WAL record (batch.go) holds a record type byte, for a cross-shard
// part its xid and participant list, the first sequence number and the op
// count (varints), then per op: kind (1 byte), user key length (varint),
// user key, stored value length (varint), stored value.
const (
	// KeyBytesLimit is the largest key (without the bucket) the engine can
	// store: the segment writer's limit on internal user keys
	// (segment.KeyBytesMax, 64 KiB) less the 2-byte bucket prefix. It is
	// the ceiling and the default of Config.KeyBytesMax, and the ceiling a
	// front end (the RESP layer) should apply to keys.
	KeyBytesLimit = segment.KeyBytesMax - userKeyPrefixLen

	// ValueBytesLimit is the largest value the engine can store: 63 MiB.
	// The binding limit is the WAL's (a batch is one record of at most
	// wal.MaxRecordBytes, 64 MiB): one entry with a key of KeyBytesLimit,
	// an expiry and a value of ValueBytesLimit, in a cross-shard part with
	// every participant, fits in a record (checked at compile time below).
	// The segment writer's value limit (1 GiB) is far above it. It is the
	// ceiling of Config.ValueBytesMax and the ceiling a front end should
	// apply to values.
	ValueBytesLimit = 63 << 20

	// userKeyPrefixLen is the bucket prefix of an internal user key.
	userKeyPrefixLen = 2
	// storedValueHeaderMax is the largest header of a stored value: the
	// flags byte and an expiry.
	storedValueHeaderMax = 1 + 8
	// walRecordOverheadMax is the most a WAL record adds around its ops:
	// the type byte, xid, participant count, seq and op count (varints)
	// and up to shardsMax participants (each a varint below shardsMax).
	walRecordOverheadMax = 1 + 3*binary.MaxVarintLen64 + 2 + shardsMax*2
	// walOpOverheadMax is the most one op adds to its key and value in a
	// WAL record: kind byte, the two length varints (an internal key and a
	// stored value below 64 MiB take at most 3 and 4 bytes), bucket prefix
	// and stored-value header.
	walOpOverheadMax = 1 + 3 + 4 + userKeyPrefixLen + storedValueHeaderMax
	// batchBytesLimit is the ceiling of Config.BatchBytesMax: a batch is
	// logged as one WAL record per shard.
	batchBytesLimit = wal.MaxRecordBytes
	// batchOpBytes is what Batch.size counts for each op besides its key
	// and value (BatchBytesMax accounting).
	batchOpBytes = 16
)

// Compile-time checks that the exported limits fit what they are derived
// from (a negative constant does not convert to uint).
const (
	_ = uint(wal.MaxRecordBytes - walRecordOverheadMax - walOpOverheadMax - KeyBytesLimit - ValueBytesLimit)
	_ = uint(segment.ValueBytesMax - storedValueHeaderMax - ValueBytesLimit)
	_ = uint(batchBytesLimit - KeyBytesLimit - ValueBytesLimit - batchOpBytes)
	_ = uint(1<<21 - userKeyPrefixLen - KeyBytesLimit)       // a user key length takes at most 3 varint bytes
	_ = uint(1<<28 - storedValueHeaderMax - ValueBytesLimit) // a stored value length at most 4
)

// checkEntry decides whether one op of a write (a set when kind is
// base.KindSet, else a delete) may be accepted: a non-empty key of at most
// Config.KeyBytesMax bytes and a value of at most Config.ValueBytesMax.
// Config.Validate keeps those at most KeyBytesLimit and ValueBytesLimit, so
// an accepted entry can be stored.
func checkEntry(c *Config, kind base.Kind, key []byte, valueLen int) error {
	if err := checkKey(c, key); err != nil {
		return err
	}
	if kind == base.KindSet && valueLen > c.ValueBytesMax {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrValueTooLarge, valueLen, c.ValueBytesMax)
	}
	return nil
}

// checkKey is checkEntry's key half, also used by reads (a key no write
// could store is refused rather than looked up).
func checkKey(c *Config, key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > c.KeyBytesMax {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrKeyTooLarge, len(key), c.KeyBytesMax)
	}
	return nil
}

// checkBatch decides whether b may be written: within BatchOpsMax and
// BatchBytesMax, every op passing checkEntry, and small enough that its WAL
// record, in the worst case a cross-shard part holding every op, fits in
// one WAL record.
func checkBatch(c *Config, b *Batch) error {
	if len(b.ops) > c.BatchOpsMax {
		return fmt.Errorf("%w: %d operations (max %d)", ErrBatchTooLarge, len(b.ops), c.BatchOpsMax)
	}
	if b.size > c.BatchBytesMax {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrBatchTooLarge, b.size, c.BatchBytesMax)
	}
	for i := range b.ops {
		op := &b.ops[i]
		if err := checkEntry(c, op.kind, b.opKey(op), op.value[1]-op.value[0]); err != nil {
			return err
		}
	}
	if n := walRecordOverheadMax + b.walBytes; n > wal.MaxRecordBytes {
		return fmt.Errorf("%w: %d operations take up to %d bytes in the wal (max %d per record)",
			ErrBatchTooLarge, len(b.ops), n, wal.MaxRecordBytes)
	}
	return nil
}

// opWALBytes is the exact size of one op in a WAL record (appendOps).
func opWALBytes(kind base.Kind, keyLen, valueLen int, expiring bool) int {
	ukey := userKeyPrefixLen + keyLen
	n := 1 + uvarintLen(uint64(ukey)) + ukey
	if kind != base.KindSet {
		return n + 1 // a zero value length
	}
	sv := 1 + valueLen
	if expiring {
		sv += 8
	}
	return n + uvarintLen(uint64(sv)) + sv
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// checkStored decides whether an entry in its internal form can be written
// to a segment file: the segment writer's limits on the user key
// (bucket prefix included) and the stored value (header included). Entries
// accepted by checkEntry always pass; WAL replay and flushes use it for
// entries that did not (WALs written by older versions, which accepted
// keys up to 64 KiB without counting the prefix), and skip, with a report,
// what fails instead of failing forever.
func checkStored(ukey, storedValue []byte) error {
	if len(ukey) > segment.KeyBytesMax {
		return fmt.Errorf("%w: internal key of %d bytes (key of %d bytes and the bucket), the segment format stores at most %d (KeyBytesLimit %d)",
			ErrKeyTooLarge, len(ukey), len(ukey)-userKeyPrefixLen, segment.KeyBytesMax, KeyBytesLimit)
	}
	if len(storedValue) > segment.ValueBytesMax {
		return fmt.Errorf("%w: stored value of %d bytes, the segment format stores at most %d",
			ErrValueTooLarge, len(storedValue), segment.ValueBytesMax)
	}
	return nil
}
