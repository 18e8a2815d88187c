package engine

import (
	"fmt"
	"slices"
)

// RecoveryEventKind says what a RecoveryEvent reports.
type RecoveryEventKind int

const (
	// RecoveryTornTail: a WAL ended in a torn tail (a partial record, a
	// damaged last record, zeros), which replay dropped and Open cut off.
	RecoveryTornTail RecoveryEventKind = iota + 1
	// RecoveryMissingWAL: a WAL the shard's manifest lists as live was
	// missing; Open proceeded only because Config.ForceRecover was set.
	RecoveryMissingWAL
	// RecoverySkippedEntry: a replayed entry the segment format cannot
	// store (written by an older version that did not count the bucket
	// prefix in its key limit) was dropped.
	RecoverySkippedEntry
)

func (k RecoveryEventKind) String() string {
	switch k {
	case RecoveryTornTail:
		return "torn wal tail"
	case RecoveryMissingWAL:
		return "missing wal"
	case RecoverySkippedEntry:
		return "skipped unstorable entry"
	}
	return fmt.Sprintf("RecoveryEventKind(%d)", int(k))
}

// RecoveryEvent is one thing Open's WAL replay could not recover.
type RecoveryEvent struct {
	Kind  RecoveryEventKind `json:"kind"`
	Shard int               `json:"shard"`
	// File is the WAL's path and LogNum its number.
	File   string `json:"file"`
	LogNum uint64 `json:"log_num"`
	// Offset is, for a torn tail, where replay stopped: the end of the
	// last good record, where the file was cut (0 when its header was
	// torn); for a skipped entry, the offset of the WAL record holding it.
	Offset int64 `json:"offset"`
	// DroppedBytes is, for a torn tail, the bytes cut off after Offset.
	DroppedBytes int64 `json:"dropped_bytes,omitempty"`
	// DroppedRecords is, for a torn tail, the number of records known to
	// be lost: those whose record header survived in the dropped bytes (a
	// record with a bad checksum, or one the file ends inside). It is a
	// lower bound: unless DroppedRecordsExact, more may have been lost.
	DroppedRecords int `json:"dropped_records"`
	// DroppedRecordsExact reports that the dropped bytes were exactly
	// DroppedRecords whole records failing their checksum, so nothing in
	// the file suggests more were lost. When false, bytes that are no
	// record (zeros, a damaged header) or a file ending inside a record
	// (cut, or a torn write) may have held, or been followed by, more.
	// Records lost wholly past the end of a file cut at a record boundary
	// leave no trace either way (see "Durability and recovery").
	DroppedRecordsExact bool `json:"dropped_records_exact,omitempty"`
	// Reason says what was found, with the numbers.
	Reason string `json:"reason"`
	// Bucket, KeyBytes (without the bucket), ValueBytes and Seq describe a
	// skipped entry (ValueBytes is the stored value, expiry header
	// included; 0 for a delete).
	Bucket     uint16 `json:"bucket,omitempty"`
	KeyBytes   int    `json:"key_bytes,omitempty"`
	ValueBytes int    `json:"value_bytes,omitempty"`
	Seq        uint64 `json:"seq,omitempty"`
}

// String renders the event as Open logs it.
func (e RecoveryEvent) String() string {
	switch e.Kind {
	case RecoveryTornTail:
		exact := "at least "
		if e.DroppedRecordsExact {
			exact = ""
		}
		return fmt.Sprintf("shard %d: %s: torn tail dropped at offset %d: %d bytes, %s%d records (%s)",
			e.Shard, e.File, e.Offset, e.DroppedBytes, exact, e.DroppedRecords, e.Reason)
	case RecoveryMissingWAL:
		return fmt.Sprintf("shard %d: %s: %s", e.Shard, e.File, e.Reason)
	case RecoverySkippedEntry:
		return fmt.Sprintf("shard %d: %s: record at offset %d: skipped an entry of bucket %d (seq %d, key %d bytes, stored value %d bytes): %s",
			e.Shard, e.File, e.Offset, e.Bucket, e.Seq, e.KeyBytes, e.ValueBytes, e.Reason)
	}
	return fmt.Sprintf("shard %d: %s: %s: %s", e.Shard, e.File, e.Kind, e.Reason)
}

// RecoveryReport is what the last Open's WAL replay could not recover:
// every event, and totals for monitoring. An empty report (no events)
// means every WAL replayed to a clean end. It is kept in memory only: the
// damaged WAL tails are cut and the replayed WALs removed by Open, so after
// another restart only the log (Config.Logf) still tells.
type RecoveryReport struct {
	Events []RecoveryEvent `json:"events,omitempty"`
	// TailDroppedBytes is the sum of DroppedBytes over the torn tails.
	TailDroppedBytes int64 `json:"tail_dropped_bytes"`
	// TailDroppedRecords is the sum of DroppedRecords over the torn tails:
	// records known to be lost, a lower bound.
	TailDroppedRecords int64 `json:"tail_dropped_records"`
	// SkippedEntries counts the replayed entries dropped as unstorable.
	SkippedEntries int64 `json:"skipped_entries"`
	// MissingWALs counts the live WALs found missing (ForceRecover).
	MissingWALs int64 `json:"missing_wals"`
}

func (r *RecoveryReport) add(e RecoveryEvent) {
	r.Events = append(r.Events, e)
	switch e.Kind {
	case RecoveryTornTail:
		r.TailDroppedBytes += e.DroppedBytes
		r.TailDroppedRecords += int64(e.DroppedRecords)
	case RecoveryMissingWAL:
		r.MissingWALs++
	case RecoverySkippedEntry:
		r.SkippedEntries++
	}
}

// Recovery returns the report of what Open's WAL replay could not recover
// (torn tails dropped, missing WALs accepted with ForceRecover, unstorable
// entries skipped). Open also logs every event through Config.Logf.
func (s *Store) Recovery() RecoveryReport {
	r := s.recovery
	r.Events = slices.Clone(r.Events)
	return r
}
