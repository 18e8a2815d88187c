package engine

import (
	"context"
	"time"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

// The maintenance pass keeps per-file live/total statistics current and
// rewrites level-1 files whose garbage (expired values, entries under range
// tombstones) exceeds Config.FragmentationRewrite — a file-at-a-time
// compaction that reclaims space without merging the whole level, as marble
// does for its fragmented files.

func (s *Store) maintenanceLoop() {
	defer s.bgWG.Done()
	t := time.NewTicker(s.cfg.MaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if _, err := s.Maintain(context.Background()); err != nil {
				s.logf("engine: maintenance: %v", err)
			}
		case <-s.bgQuit:
			return
		}
	}
}

// MaintenanceResult reports what a maintenance pass did.
type MaintenanceResult struct {
	Scanned   int // files whose statistics were recounted
	Rewritten int // files rewritten because they were fragmented
}

// Maintain recounts the garbage of level-1 files whose count may be stale
// (files with expiring entries, files under newer range tombstones) and
// rewrites those above the fragmentation threshold.
func (s *Store) Maintain(ctx context.Context) (MaintenanceResult, error) {
	var res MaintenanceResult
	for _, sh := range s.shards {
		sh.mu.Lock()
		v := sh.cur
		v.ref()
		sh.mu.Unlock()
		var maxDel uint64
		for _, d := range v.dels {
			maxDel = max(maxDel, d.Seq)
		}
		for _, f := range v.l1 {
			if err := ctx.Err(); err != nil {
				v.unref()
				return res, err
			}
			sh.mu.Lock()
			stale := f.Expiring > 0 || f.DeadSeq < maxDel
			sh.mu.Unlock()
			if !stale {
				continue
			}
			dead, err := s.countDead(f, v.dels)
			if err != nil {
				v.unref()
				return res, err
			}
			res.Scanned++
			sh.mu.Lock()
			f.Dead = dead
			sh.mu.Unlock()
			if f.Entries > 0 && float64(dead)/float64(f.Entries) >= s.cfg.FragmentationRewrite {
				if err := sh.rewriteFile(f, v.dels); err != nil {
					v.unref()
					return res, err
				}
				res.Rewritten++
			}
		}
		v.unref()
	}
	return res, nil
}

// countDead scans f counting entries that are garbage now.
func (s *Store) countDead(f *fileMeta, dels []rangeDel) (uint64, error) {
	it, err := s.newSegIter(f.Num, true)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	now := s.cfg.Now().UnixMilli()
	var dead uint64
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if k.Kind == base.KindDelete || coveredBy(dels, k.UserKey, k.Seq, base.SeqMax) {
			dead++
			continue
		}
		if _, exp, ok := decodeStoredValue(it.Value()); ok && exp != 0 && exp <= now {
			dead++
		}
	}
	return dead, it.Error()
}

// rewriteFile rewrites one level-1 file without its garbage. Level 1 is the
// bottom level and holds one version per key, so dropping an expired or
// range-deleted entry there cannot uncover an older version.
func (sh *shard) rewriteFile(f *fileMeta, dels []rangeDel) error {
	sh.s.compSem <- struct{}{}
	defer func() { <-sh.s.compSem }()
	sh.mu.Lock()
	still := false
	for _, g := range sh.cur.l1 {
		if g == f {
			still = true
		}
	}
	sh.mu.Unlock()
	if !still {
		return nil // compacted meanwhile
	}
	it := &lazySegIter{s: sh.s, num: f.Num, scan: true}
	out, err := sh.s.writeSegments(sh, it, dels, dropBottom, sh.s.cfg.TargetFileBytes)
	it.Close()
	if err != nil {
		return err
	}
	return sh.installCompaction(nil, []*fileMeta{f}, out, nil, true)
}

// newTicker returns a channel ticking every d until quit closes.
func newTicker(d time.Duration, quit <-chan struct{}) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				select {
				case ch <- now:
				default:
				}
			case <-quit:
				return
			}
		}
	}()
	return ch
}
