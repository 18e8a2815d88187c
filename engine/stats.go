package engine

import "time"

// FileStats is one segment's statistics.
type FileStats struct {
	Shard    int     `json:"shard"`
	Num      uint64  `json:"num"`
	Level    int     `json:"level"`
	Bytes    int64   `json:"bytes"`
	Entries  uint64  `json:"entries"`
	Live     uint64  `json:"live"` // Entries minus known garbage (as last counted by maintenance)
	LiveFrac float64 `json:"live_frac"`
}

// ShardStats describes one shard.
type ShardStats struct {
	Shard          int    `json:"shard"`
	VisibleSeq     uint64 `json:"visible_seq"`
	MemtableBytes  int64  `json:"memtable_bytes"`
	Immutable      int    `json:"immutable"`
	L0Files        int    `json:"l0_files"`
	L1Files        int    `json:"l1_files"`
	SegmentBytes   int64  `json:"segment_bytes"`
	RangeDeletes   int    `json:"range_deletes"`
	Groups         int64  `json:"groups"`
	GroupWrites    int64  `json:"group_writes"`
	Syncs          int64  `json:"syncs"`
	Flushes        int64  `json:"flushes"`
	Compactions    int64  `json:"compactions"`
	Rewrites       int64  `json:"rewrites"`
	WriteStalls    int64  `json:"write_stalls"`
	BytesFlushed   int64  `json:"bytes_flushed"`
	BytesCompacted int64  `json:"bytes_compacted"`
	// SkippedEntries counts entries a flush or compaction of this shard
	// dropped since Open because no segment can store them (only data
	// written by an older version can be such; each is logged).
	SkippedEntries int64 `json:"skipped_entries"`
	// WALBytes counts the record payload bytes appended to this shard's
	// WALs since Open; SyncHist the WAL fsyncs by duration (bucket i:
	// under 2^i µs, see SyncHistBuckets) and SyncNanos their total time.
	WALBytes   int64                  `json:"wal_bytes"`
	SyncHist   [SyncHistBuckets]int64 `json:"sync_hist"`
	SyncNanos  int64                  `json:"sync_nanos"`
	ReadOnly   string                 `json:"read_only,omitempty"` // the error that made the shard read-only
	FlushError string                 `json:"flush_error,omitempty"`
}

// Stats is a snapshot of the store's statistics.
type Stats struct {
	Shards       []ShardStats `json:"shards"`
	Files        []FileStats  `json:"files"`
	SegmentBytes int64        `json:"segment_bytes"`
	Keys         uint64       `json:"entries"` // entries in segments (all versions) + memtables
	TableCache   int          `json:"table_cache_capacity"`
	TakenAt      time.Time    `json:"taken_at"`

	// Totals of the last Open's recovery (Store.Recovery), for monitoring.
	// WALTailDroppedBytes and WALTailDroppedRecords are what torn WAL tails
	// cut off (the records being those known lost, a lower bound);
	// RecoverySkippedEntries counts the replayed entries dropped because
	// no segment can store them, plus those a flush dropped since (the
	// shards' SkippedEntries); RecoveryMissingWALs the live WALs found
	// missing and accepted with ForceRecover. All stay 0 after a clean
	// recovery.
	WALTailDroppedBytes    int64 `json:"wal_tail_dropped_bytes"`
	WALTailDroppedRecords  int64 `json:"wal_tail_dropped_records"`
	RecoverySkippedEntries int64 `json:"recovery_skipped_entries"`
	RecoveryMissingWALs    int64 `json:"recovery_missing_wals"`
}

// Stats reports per-shard and per-file statistics.
func (s *Store) Stats() Stats {
	st := Stats{TableCache: s.cfg.TableCacheSize, TakenAt: s.cfg.Now(),
		WALTailDroppedBytes: s.recovery.TailDroppedBytes, WALTailDroppedRecords: s.recovery.TailDroppedRecords,
		RecoverySkippedEntries: s.recovery.SkippedEntries, RecoveryMissingWALs: s.recovery.MissingWALs}
	for _, sh := range s.shards {
		rs := sh.loadReadState()
		ss := ShardStats{
			Shard: sh.id, VisibleSeq: sh.visibleSeq.Load(), MemtableBytes: rs.mem.bytes.Load(),
			Immutable: len(rs.imm), L0Files: len(rs.v.l0), L1Files: len(rs.v.l1), RangeDeletes: len(rs.v.dels),
			Groups: sh.stats.groups.Load(), GroupWrites: sh.stats.groupWrites.Load(), Syncs: sh.stats.syncs.Load(),
			Flushes: sh.stats.flushes.Load(), Compactions: sh.stats.compactions.Load(), Rewrites: sh.stats.rewrites.Load(),
			WriteStalls: sh.stats.stalls.Load(), BytesFlushed: sh.stats.bytesFlushed.Load(), BytesCompacted: sh.stats.bytesCompacted.Load(),
			SkippedEntries: sh.stats.skipped.Load(), WALBytes: sh.stats.walBytes.Load(), SyncNanos: sh.stats.syncNanos.Load(),
		}
		for i := range ss.SyncHist {
			ss.SyncHist[i] = sh.stats.syncHist[i].Load()
		}
		st.RecoverySkippedEntries += ss.SkippedEntries
		st.Keys += uint64(rs.mem.count.Load())
		for _, m := range rs.imm {
			st.Keys += uint64(m.count.Load())
		}
		sh.mu.Lock()
		if sh.flushErr != nil {
			ss.FlushError = sh.flushErr.Error()
		}
		add := func(level int, f *fileMeta) {
			live := f.Entries - min(f.Dead, f.Entries)
			fs := FileStats{Shard: sh.id, Num: f.Num, Level: level, Bytes: f.Size, Entries: f.Entries, Live: live}
			if f.Entries > 0 {
				fs.LiveFrac = float64(live) / float64(f.Entries)
			}
			st.Files = append(st.Files, fs)
			ss.SegmentBytes += f.Size
			st.Keys += f.Entries
		}
		for _, f := range rs.v.l0 {
			add(0, f)
		}
		for _, f := range rs.v.l1 {
			add(1, f)
		}
		sh.mu.Unlock()
		rs.unref()
		st.SegmentBytes += ss.SegmentBytes
		st.Shards = append(st.Shards, ss)
	}
	return st
}
