package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/wal"
)

// walRecord is a decoded WAL record kept during recovery.
type walRecord struct {
	typ          byte
	entries      []walEntry
	xid          uint64
	participants []int
	del          rangeDel
	maxSeq       uint64
	logNum       uint64 // the WAL holding the record
	off          int64  // the record's offset in it
}

type shardRecovery struct {
	man      *manifest
	missing  []uint64 // live WALs the manifest lists that are not present
	wals     []uint64 // every WAL present, ascending
	live     []walRecord
	commits  map[uint64]bool // xids committed by records in this shard's WALs
	segFiles map[uint64]bool
}

// recover loads every shard's manifest, replays its live WALs (applying
// cross-shard parts only when their commit record exists), flushes what was
// replayed to level 0, starts fresh WALs and removes the old ones and any
// file no manifest references.
func (s *Store) recover() error {
	meta, err := readStoreMeta(s.fs, s.dir)
	if err != nil {
		return err
	}
	n := meta.Shards
	recs := make([]*shardRecovery, n)
	var maxFile, maxXID uint64
	for i := 0; i < n; i++ {
		r, err := s.loadShard(i)
		if err != nil {
			return err
		}
		recs[i] = r
		maxFile = max(maxFile, r.man.NextFileNum)
		maxXID = max(maxXID, r.man.MaxXID)
		for _, w := range r.wals {
			maxFile = max(maxFile, w)
		}
		for f := range r.segFiles {
			maxFile = max(maxFile, f)
		}
	}
	s.fileNum.Store(maxFile)
	if err := s.checkMissingWALs(recs); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := s.replayShard(i, recs[i]); err != nil {
			return err
		}
		for _, rec := range recs[i].live {
			maxXID = max(maxXID, rec.xid)
		}
		for x := range recs[i].commits {
			maxXID = max(maxXID, x)
		}
	}
	s.xid.Store(maxXID)

	s.shards = make([]*shard, n)
	for i := 0; i < n; i++ {
		sh, err := s.openShard(i, recs)
		if err != nil {
			return err
		}
		s.shards[i] = sh
	}
	// Only now, with every shard's replayed data in segments, may the old
	// WALs go: a cross-shard part replayed above depended on a commit record
	// that may live in another shard's old WAL.
	for i, r := range recs {
		for _, num := range r.wals {
			s.removeFile(walName(shardDir(s.dir, i), num))
		}
	}
	return nil
}

func (s *Store) loadShard(i int) (*shardRecovery, error) {
	dir := shardDir(s.dir, i)
	names, err := s.fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: shard directory %s: %v", ErrCorrupt, dir, err)
	}
	r := &shardRecovery{commits: map[uint64]bool{}, segFiles: map[uint64]bool{}}
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") {
			s.removeFile(filepath.Join(dir, name))
			continue
		}
		num, ext, ok := parseFileName(name)
		if !ok {
			continue
		}
		switch ext {
		case "wal":
			r.wals = append(r.wals, num)
		case "seg":
			r.segFiles[num] = true
		}
	}
	sort.Slice(r.wals, func(a, b int) bool { return r.wals[a] < r.wals[b] })
	data, err := readFile(s.fs, filepath.Join(dir, manifestName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.man = &manifest{Format: manifestFormat, Shard: i}
	case err != nil:
		return nil, fmt.Errorf("engine: read %s manifest: %w", dir, err)
	default:
		if r.man, err = decodeManifest(filepath.Join(dir, manifestName), data); err != nil {
			return nil, err
		}
		// Every live WAL the manifest lists must be present. A manifest of
		// an older version lists none, but its LogNum (when set) names a WAL
		// that existed when it was written and is removed only after a
		// newer manifest moves LogNum past it.
		listed := r.man.Logs
		if listed == nil && r.man.LogNum != 0 {
			listed = []uint64{r.man.LogNum}
		}
		for _, num := range listed {
			if _, found := slices.BinarySearch(r.wals, num); num >= r.man.LogNum && !found {
				r.missing = append(r.missing, num)
			}
		}
	}
	for _, f := range append(append([]*fileMeta(nil), r.man.L0...), r.man.L1...) {
		if !r.segFiles[f.Num] {
			return nil, fmt.Errorf("%w: %s lists segment %s, which is missing", ErrCorrupt,
				filepath.Join(dir, manifestName), segName(dir, f.Num))
		}
	}
	return r, nil
}

// checkMissingWALs refuses to open when a shard's manifest lists a live WAL
// that is missing, unless Config.ForceRecover is set: then each missing WAL
// is reported and recovery goes on without it.
func (s *Store) checkMissingWALs(recs []*shardRecovery) error {
	var names []string
	for i, r := range recs {
		for _, num := range r.missing {
			name := walName(shardDir(s.dir, i), num)
			if s.cfg.ForceRecover {
				s.noteRecovery(RecoveryEvent{Kind: RecoveryMissingWAL, Shard: i, File: name, LogNum: num,
					Reason: "live wal listed in the manifest is missing (opened with ForceRecover): the writes acknowledged in it are lost"})
				continue
			}
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: listed as live in the shard manifest; the writes acknowledged in it are lost. "+
		"Restore the file, or set Config.ForceRecover to open without it (the loss is then reported by Store.Recovery)",
		ErrMissingWAL, strings.Join(names, ", "))
}

// noteRecovery adds e to the recovery report and logs it.
func (s *Store) noteRecovery(e RecoveryEvent) {
	s.recovery.add(e)
	s.logf("engine: recovery: %s", e)
}

// replayShard reads every WAL of shard i: commit records from all of them,
// the other records from the live ones (numbered >= the manifest's LogNum).
// A torn tail is cut off and reported.
func (s *Store) replayShard(i int, r *shardRecovery) error {
	dir := shardDir(s.dir, i)
	for _, num := range r.wals {
		name := walName(dir, num)
		f, err := s.fs.OpenReadWrite(name)
		if err != nil {
			return fmt.Errorf("engine: open %s: %w", name, err)
		}
		live := num >= r.man.LogNum
		_, tail, err := wal.RecoverAt(f, num, func(off int64, p []byte) error {
			rec, err := decodeRecord(p)
			if err != nil {
				return err
			}
			rec.logNum, rec.off = num, off
			if rec.typ == recXCommit {
				r.commits[rec.xid] = true
				return nil
			}
			if live {
				r.live = append(r.live, rec)
			}
			return nil
		})
		f.Close()
		if err != nil {
			if errors.Is(err, wal.ErrCorrupt) && !errors.Is(err, ErrCorrupt) {
				err = fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
			}
			return fmt.Errorf("engine: replay %s: %w", name, err)
		}
		if tail.Reason != wal.NotTorn {
			reason := tail.String()
			if !live {
				reason += "; an obsolete wal, read only for its cross-shard commit records"
			}
			s.noteRecovery(RecoveryEvent{Kind: RecoveryTornTail, Shard: i, File: name, LogNum: num,
				Offset: tail.Offset, DroppedBytes: tail.Bytes, DroppedRecords: tail.Records,
				DroppedRecordsExact: tail.Exact(), Reason: reason})
		}
	}
	return nil
}

func decodeRecord(p []byte) (walRecord, error) {
	if len(p) == 0 {
		return walRecord{}, fmt.Errorf("%w: empty wal record", ErrCorrupt)
	}
	rec := walRecord{typ: p[0]}
	p = p[1:]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad varint in wal record", ErrCorrupt)
		}
		p = p[n:]
		return v, nil
	}
	var err error
	switch rec.typ {
	case recBatch:
		rec.entries, _, err = decodeOps(p)
	case recXPart:
		if rec.xid, err = uv(); err != nil {
			return rec, err
		}
		var np uint64
		if np, err = uv(); err != nil || np == 0 || np > shardsMax {
			return rec, fmt.Errorf("%w: bad participant count in wal record", ErrCorrupt)
		}
		for j := uint64(0); j < np; j++ {
			v, err := uv()
			if err != nil || v >= shardsMax {
				return rec, fmt.Errorf("%w: bad participant in wal record", ErrCorrupt)
			}
			rec.participants = append(rec.participants, int(v))
		}
		rec.entries, _, err = decodeOps(p)
	case recXCommit:
		rec.xid, err = uv()
	case recRangeDel:
		var seq uint64
		if seq, err = uv(); err != nil {
			return rec, err
		}
		if len(p) != 4 {
			return rec, fmt.Errorf("%w: bad range delete record", ErrCorrupt)
		}
		rec.del = rangeDel{Lo: binary.BigEndian.Uint16(p), Hi: binary.BigEndian.Uint16(p[2:]), Seq: seq}
		rec.maxSeq = seq
	default:
		return rec, fmt.Errorf("%w: unknown wal record type %d", ErrCorrupt, rec.typ)
	}
	for _, e := range rec.entries {
		rec.maxSeq = max(rec.maxSeq, e.key.Seq)
	}
	return rec, err
}

// openShard builds shard i from its manifest and replayed records, flushes
// the replayed data, and starts a new WAL.
func (s *Store) openShard(i int, recs []*shardRecovery) (*shard, error) {
	r := recs[i]
	dir := shardDir(s.dir, i)
	sh := &shard{
		s: s, id: i, dir: dir,
		mailbox:   make(chan *writeReq, s.cfg.MailboxSize),
		flushCh:   make(chan struct{}, 1),
		compactCh: make(chan struct{}, 1),
	}
	sh.immSpace = sync.NewCond(&sh.mu)
	switch s.cfg.Sync {
	case SyncInterval:
		sh.syncTick = newTicker(s.cfg.SyncInterval, s.quit)
	}
	referenced := map[uint64]bool{}
	mk := func(fs []*fileMeta) []*fileMeta {
		for _, f := range fs {
			f.shard = sh
			referenced[f.Num] = true
		}
		return fs
	}
	sh.cur = newVersion(mk(r.man.L0), mk(r.man.L1), r.man.RangeDels)
	sh.flushedSeq = r.man.FlushedSeq
	lastSeq := r.man.LastSeq
	// Remove segments no manifest references (an interrupted flush or compaction).
	for num := range r.segFiles {
		if !referenced[num] {
			s.removeFile(segName(dir, num))
		}
	}
	// Replay.
	mem := newMemtable(0)
	dels := append([]rangeDel(nil), sh.cur.dels...)
	for _, rec := range r.live {
		lastSeq = max(lastSeq, rec.maxSeq)
		switch rec.typ {
		case recBatch:
		case recXPart:
			if !recs[rec.participants[0]].commits[rec.xid] {
				continue // never committed
			}
		case recRangeDel:
			if !slices.Contains(dels, rec.del) {
				dels = append(dels, rec.del)
			}
			continue
		}
		for _, e := range rec.entries {
			if e.key.Seq <= r.man.FlushedSeq {
				continue
			}
			if err := checkStored(e.key.UserKey, e.value); err != nil {
				// Written by an older version that accepted it: it can
				// never be flushed, so it must not stop the shard opening.
				s.noteRecovery(RecoveryEvent{Kind: RecoverySkippedEntry, Shard: i, File: walName(dir, rec.logNum),
					LogNum: rec.logNum, Offset: rec.off, Bucket: bucketOf(e.key.UserKey),
					KeyBytes: len(e.key.UserKey) - userKeyPrefixLen, ValueBytes: len(e.value), Seq: e.key.Seq, Reason: err.Error()})
				continue
			}
			mem.add(e.key, e.value)
		}
	}
	sh.nextSeq = lastSeq
	sh.visibleSeq.Store(lastSeq)
	sh.appliedSeq.Store(lastSeq)
	if len(dels) != len(sh.cur.dels) {
		old := sh.cur
		sh.cur = newVersion(old.l0, old.l1, dels)
		old.unref()
	}
	// New WAL first, so the manifest can name it as the oldest live log.
	num := s.nextFileNum()
	w, f, err := s.createWAL(dir, num)
	if err != nil {
		return nil, err
	}
	sh.wal, sh.walFile = w, f
	sh.walRef = &walFile{num: num, shard: sh}
	sh.walRef.refs.Store(1)
	sh.mem = newMemtable(num)
	sh.mem.wal = sh.walRef
	sh.logs = []uint64{num}
	sh.rs = &readState{mem: sh.mem, v: sh.cur}
	sh.cur.ref()
	sh.rs.refs.Store(1)
	if !mem.empty() {
		out, err := s.writeSegments(sh, &memIter{m: mem}, nil, dropNothing, 0)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("engine: flush replayed wal of shard %d: %w", i, err)
		}
		old := sh.cur
		sh.cur = newVersion(l0Insert(old.l0, out...), old.l1, old.dels)
		old.unref()
		sh.installReadStateLocked(sh.mem)
	}
	sh.flushedSeq = max(sh.flushedSeq, lastSeq)
	sh.mu.Lock()
	man := sh.manifestLocked(sh.cur, sh.flushedSeq, num)
	sh.mu.Unlock()
	if err := s.writeManifest(dir, man); err != nil {
		w.Close()
		return nil, err
	}
	return sh, nil
}

var _ = base.KindSet
