package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"
)

// fileMeta describes one segment file. Its reference count is held by every
// version that lists it (the current version, and older versions pinned by
// snapshots, iterators and compactions through read states). When the count
// reaches zero the file is deleted.
type fileMeta struct {
	Num      uint64 `json:"num"`
	Size     int64  `json:"size"`
	Smallest []byte `json:"smallest"` // user keys
	Largest  []byte `json:"largest"`
	MinSeq   uint64 `json:"min_seq"`
	MaxSeq   uint64 `json:"max_seq"`
	Entries  uint64 `json:"entries"`
	// Dead is the number of entries known to be garbage (tombstones,
	// expired values, entries under a range tombstone), as last counted by
	// the maintenance pass; live = Entries - Dead.
	Dead    uint64 `json:"dead"`
	DeadSeq uint64 `json:"dead_seq"` // range-tombstone seq the Dead count reflects
	// Expiring counts entries written with an expiry; files with any are rescanned by maintenance.
	Expiring uint64 `json:"expiring"`
	// Ingested marks a file an Ingestion wrote: every entry has the one
	// sequence number MinSeq = MaxSeq, which no other entry has, and no
	// file in front of it holds a key of its buckets (see Ingestion). Its
	// sequence number may fall inside the range of a level-0 neighbour.
	Ingested bool `json:"ingested,omitempty"`

	refs  atomic.Int32
	shard *shard
}

func (f *fileMeta) overlaps(lo, hi []byte) bool {
	return bytes.Compare(f.Largest, lo) >= 0 && (hi == nil || bytes.Compare(f.Smallest, hi) <= 0)
}

// rangeDel deletes every entry of buckets [Lo, Hi] with a smaller sequence number.
type rangeDel struct {
	Lo  uint16 `json:"lo"`
	Hi  uint16 `json:"hi"`
	Seq uint64 `json:"seq"`
}

func (r rangeDel) covers(bucket uint16, seq, snap uint64) bool {
	return bucket >= r.Lo && bucket <= r.Hi && seq < r.Seq && r.Seq <= snap
}

// version is an immutable view of a shard's files: level 0 (overlapping,
// newest first) and level 1 (sorted, disjoint), plus range tombstones.
type version struct {
	l0   []*fileMeta
	l1   []*fileMeta
	dels []rangeDel
	refs atomic.Int32
}

func (v *version) ref() { v.refs.Add(1) }

// unref drops a reference; the last one releases the version's files.
func (v *version) unref() {
	if v.refs.Add(-1) != 0 {
		return
	}
	for _, f := range v.l0 {
		f.unref()
	}
	for _, f := range v.l1 {
		f.unref()
	}
}

func (f *fileMeta) unref() {
	if f.refs.Add(-1) == 0 {
		f.shard.obsoleteFile(f)
	}
}

func newVersion(l0, l1 []*fileMeta, dels []rangeDel) *version {
	if invariants {
		checkLevels(l0, l1)
	}
	v := &version{l0: l0, l1: l1, dels: dels}
	for _, f := range l0 {
		f.refs.Add(1)
	}
	for _, f := range l1 {
		f.refs.Add(1)
	}
	v.refs.Store(1)
	return v
}

// l1Find returns the level-1 file that may hold userKey, or nil.
func (v *version) l1Find(userKey []byte) *fileMeta {
	i := sort.Search(len(v.l1), func(i int) bool { return bytes.Compare(v.l1[i].Largest, userKey) >= 0 })
	if i < len(v.l1) && bytes.Compare(v.l1[i].Smallest, userKey) <= 0 {
		return v.l1[i]
	}
	return nil
}

// manifest is the durable state of one shard, rewritten whole (write temp,
// fsync, rename, fsync dir) after every flush and compaction.
type manifest struct {
	Format     int    `json:"format"`
	Shard      int    `json:"shard"`
	FlushedSeq uint64 `json:"flushed_seq"` // every entry with seq <= this is in a segment
	LogNum     uint64 `json:"log_num"`     // WALs numbered below this are obsolete
	// Logs lists the shard's live WALs (numbered >= LogNum), oldest first.
	// A WAL is added (by a manifest write) before the first write to it is
	// acknowledged, so a listed WAL missing at Open is lost data. Manifests
	// written by older versions lack it (nil).
	Logs        []uint64    `json:"logs,omitempty"`
	LastSeq     uint64      `json:"last_seq"`      // largest seq ever assigned (at the time of writing)
	MaxXID      uint64      `json:"max_xid"`       // largest cross-shard batch id seen
	NextFileNum uint64      `json:"next_file_num"` // file numbers below this were used
	L0          []*fileMeta `json:"l0"`
	L1          []*fileMeta `json:"l1"`
	RangeDels   []rangeDel  `json:"range_dels"`
}

const (
	manifestName   = "MANIFEST"
	manifestFormat = 1
)

// encodeManifest renders m with a trailing CRC line so a damaged manifest is detected.
func encodeManifest(m *manifest) ([]byte, error) {
	body, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(body, "\ncrc32c %08x\n", crc32.Checksum(body, crcTable)), nil
}

func decodeManifest(name string, data []byte) (*manifest, error) {
	i := bytes.LastIndex(data, []byte("\ncrc32c "))
	if i < 0 {
		return nil, fmt.Errorf("%w: %s: no checksum line", ErrCorrupt, name)
	}
	body := data[:i]
	var want uint32
	if _, err := fmt.Sscanf(string(data[i+1:]), "crc32c %08x\n", &want); err != nil {
		return nil, fmt.Errorf("%w: %s: bad checksum line", ErrCorrupt, name)
	}
	if got := crc32.Checksum(body, crcTable); got != want {
		return nil, fmt.Errorf("%w: %s: checksum %08x, want %08x", ErrCorrupt, name, got, want)
	}
	m := new(manifest)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("%w: %s: format %d, this build reads %d", ErrCorrupt, name, m.Format, manifestFormat)
	}
	return m, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func segName(dir string, num uint64) string { return filepath.Join(dir, fmt.Sprintf("%06d.seg", num)) }
func walName(dir string, num uint64) string { return filepath.Join(dir, fmt.Sprintf("%06d.wal", num)) }

// parseFileName returns the number and extension of a "NNNNNN.ext" name.
func parseFileName(name string) (uint64, string, bool) {
	ext := filepath.Ext(name)
	var n uint64
	if _, err := fmt.Sscanf(name[:len(name)-len(ext)], "%d", &n); err != nil || len(ext) < 2 {
		return 0, "", false
	}
	if fmt.Sprintf("%06d", n) != name[:len(name)-len(ext)] {
		return 0, "", false
	}
	return n, ext[1:], true
}

// l0Insert returns l0 with fs (newer than one another in order) inserted
// where their newest sequence number falls: level 0 is ordered by MaxSeq,
// newest first. A flush lands in front (its entries are the newest) unless
// an ingested file holds a newer sequence number than all of them.
func l0Insert(l0 []*fileMeta, fs ...*fileMeta) []*fileMeta {
	if len(fs) == 0 {
		return slices.Clone(l0)
	}
	at := slices.IndexFunc(l0, func(f *fileMeta) bool { return f.MaxSeq < fs[len(fs)-1].MaxSeq })
	if at < 0 {
		at = len(l0)
	}
	return slices.Concat(l0[:at], fs, l0[at:])
}

// checkLevels panics if level 0 is not newest-first or level 1 is not
// sorted and disjoint (on under -tags invariants and -race).
func checkLevels(l0, l1 []*fileMeta) {
	var prev *fileMeta // the last file not ingested
	for i, f := range l0 {
		if i > 0 && l0[i-1].MaxSeq <= f.MaxSeq {
			panic(fmt.Sprintf("engine: level 0 out of order: file %d seqs [%d,%d] before file %d seqs [%d,%d]",
				l0[i-1].Num, l0[i-1].MinSeq, l0[i-1].MaxSeq, f.Num, f.MinSeq, f.MaxSeq))
		}
		if f.Ingested {
			continue
		}
		if prev != nil && prev.MinSeq <= f.MaxSeq {
			panic(fmt.Sprintf("engine: level 0 seq ranges overlap: file %d seqs [%d,%d] before file %d seqs [%d,%d]",
				prev.Num, prev.MinSeq, prev.MaxSeq, f.Num, f.MinSeq, f.MaxSeq))
		}
		prev = f
	}
	for i := 1; i < len(l1); i++ {
		if bytes.Compare(l1[i-1].Largest, l1[i].Smallest) >= 0 {
			panic(fmt.Sprintf("engine: level 1 files %d and %d overlap", l1[i-1].Num, l1[i].Num))
		}
	}
}
