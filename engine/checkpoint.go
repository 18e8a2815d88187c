package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

// CheckpointInfo describes a checkpoint: a directory that is itself an
// openable store, made of hard links to the source's segment files plus one
// new segment per shard holding the memtable data of the snapshot.
type CheckpointInfo struct {
	Dir     string    `json:"dir"`
	Created time.Time `json:"created"`
	Seqs    []uint64  `json:"seqs"`  // per shard: the snapshot's sequence number
	Files   []string  `json:"files"` // every file, relative to Dir
	Bytes   int64     `json:"bytes"`
}

const checkpointsName = "CHECKPOINTS"

// Checkpoint writes a durable point-in-time copy of the store into dir (which
// must not exist or be empty) and records it in the store's checkpoint list,
// where it stays until ReleaseCheckpoint. Writes continue meanwhile.
func (s *Store) Checkpoint(ctx context.Context, dir string) (*CheckpointInfo, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if names, err := s.fs.List(dir); err == nil && len(names) > 0 {
		return nil, fmt.Errorf("engine: checkpoint: %s is not empty", dir)
	}
	sn := s.snapshot()
	defer sn.Close()
	info := &CheckpointInfo{Dir: dir, Created: s.cfg.Now().UTC(), Seqs: append([]uint64(nil), sn.seqs...)}
	err := s.writeCheckpoint(ctx, sn, info)
	if err != nil {
		s.fs.RemoveAll(dir)
		return nil, fmt.Errorf("engine: checkpoint %s: %w", dir, err)
	}
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	list, err := s.readCheckpoints()
	if err == nil {
		list = append(list, *info)
		err = writeFileAtomic(s.fs, s.dir, checkpointsName, mustJSON(list))
	}
	if err != nil {
		s.fs.RemoveAll(dir)
		return nil, fmt.Errorf("engine: checkpoint %s: record: %w", dir, err)
	}
	return info, nil
}

func (s *Store) writeCheckpoint(ctx context.Context, sn *Snapshot, info *CheckpointInfo) error {
	meta := storeMeta{Format: storeFormat, Shards: len(s.shards), Created: info.Created}
	for i, sh := range s.shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		rs := sn.rs[i]
		cdir := shardDir(info.Dir, i)
		if err := s.fs.MkdirAll(cdir, 0o755); err != nil {
			return err
		}
		rel := func(num uint64) string { return filepath.Join(filepath.Base(cdir), filepath.Base(segName(cdir, num))) }
		link := func(fs []*fileMeta) ([]*fileMeta, error) {
			out := make([]*fileMeta, len(fs))
			for j, f := range fs {
				if err := s.fs.Link(segName(sh.dir, f.Num), segName(cdir, f.Num)); err != nil {
					return nil, err
				}
				info.Files = append(info.Files, rel(f.Num))
				info.Bytes += f.Size
				out[j] = &fileMeta{Num: f.Num, Size: f.Size, Smallest: f.Smallest, Largest: f.Largest, MinSeq: f.MinSeq,
					MaxSeq: f.MaxSeq, Entries: f.Entries, Dead: f.Dead, DeadSeq: f.DeadSeq, Expiring: f.Expiring, Ingested: f.Ingested}
			}
			return out, nil
		}
		l0, err := link(rs.v.l0)
		if err != nil {
			return err
		}
		l1, err := link(rs.v.l1)
		if err != nil {
			return err
		}
		// Memtable data visible to the snapshot goes into one new segment.
		var kids []internalIter
		kids = append(kids, &seqFilter{it: &memIter{m: rs.mem}, snap: sn.seqs[i]})
		for _, m := range rs.imm {
			kids = append(kids, &seqFilter{it: &memIter{m: m}, snap: sn.seqs[i]})
		}
		tmp := &shard{s: s, id: i, dir: cdir}
		out, err := s.writeSegments(tmp, &mergeIter{kids: kids}, nil, dropNothing, 0)
		if err != nil {
			return err
		}
		for _, f := range out {
			info.Files = append(info.Files, rel(f.Num))
			info.Bytes += f.Size
		}
		man := &manifest{Format: manifestFormat, Shard: i, FlushedSeq: sn.seqs[i], LastSeq: sn.seqs[i],
			MaxXID: s.xidSeen(), NextFileNum: s.fileNum.Load() + 1,
			L0: append(out, l0...), L1: l1, RangeDels: rs.v.dels}
		if err := s.writeManifest(cdir, man); err != nil {
			return err
		}
		info.Files = append(info.Files, filepath.Join(filepath.Base(cdir), manifestName))
	}
	if err := writeFileAtomic(s.fs, info.Dir, storeMarker, mustJSON(meta)); err != nil {
		return err
	}
	info.Files = append(info.Files, storeMarker)
	return s.fs.SyncDir(filepath.Dir(info.Dir))
}

// seqFilter hides entries newer than snap.
type seqFilter struct {
	it   internalIter
	snap uint64
}

func (f *seqFilter) skip() {
	for f.it.Valid() && f.it.Key().Seq > f.snap {
		f.it.Next()
	}
}
func (f *seqFilter) First()                { f.it.First(); f.skip() }
func (f *seqFilter) SeekGE(k []byte)       { f.it.SeekGE(k); f.skip() }
func (f *seqFilter) Next()                 { f.it.Next(); f.skip() }
func (f *seqFilter) Valid() bool           { return f.it.Valid() }
func (f *seqFilter) Key() base.InternalKey { return f.it.Key() }
func (f *seqFilter) Value() []byte         { return f.it.Value() }
func (f *seqFilter) Error() error          { return f.it.Error() }
func (f *seqFilter) Close() error          { return f.it.Close() }

// Checkpoints lists the checkpoints recorded and not yet released.
func (s *Store) Checkpoints() ([]CheckpointInfo, error) {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	return s.readCheckpoints()
}

func (s *Store) readCheckpoints() ([]CheckpointInfo, error) {
	data, err := readFile(s.fs, filepath.Join(s.dir, checkpointsName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []CheckpointInfo
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, checkpointsName, err)
	}
	return list, nil
}

// ReleaseCheckpoint removes a recorded checkpoint: each of its files (hard
// links: the data stays while the live store or another checkpoint still
// links it) and then its directory, and drops it from the list.
func (s *Store) ReleaseCheckpoint(dir string) error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	list, err := s.readCheckpoints()
	if err != nil {
		return err
	}
	idx := -1
	for i, c := range list {
		if c.Dir == dir {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("engine: no checkpoint recorded at %s", dir)
	}
	for _, f := range list[idx].Files {
		if err := s.fs.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("engine: release checkpoint %s: %w", dir, err)
		}
	}
	if err := s.fs.RemoveAll(dir); err != nil {
		return err
	}
	list = append(list[:idx], list[idx+1:]...)
	return writeFileAtomic(s.fs, s.dir, checkpointsName, mustJSON(list))
}
