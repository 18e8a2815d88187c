package coordinator

import (
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/dbx-kv/dbx/router"
)

// Global snapshot limits.
const (
	// MaxSnapshots bounds the manifests kept in the state (and so the
	// retention).
	MaxSnapshots = 100
	// MaxSnapshotIDLen is the longest snapshot ID, in bytes.
	MaxSnapshotIDLen = 64
	// MaxSnapshotFiles bounds the files of one node's part.
	MaxSnapshotFiles = 100000
)

// SnapshotManifest describes a committed global snapshot: one part per
// node that owned buckets, together covering every bucket exactly once, all
// taken while new cross-node commit decisions were held (so no transaction
// is half inside it). It is listed only once committed: a snapshot that
// failed part-way never appears.
type SnapshotManifest struct {
	ID string `json:"id"`
	// Buckets is the size of the bucket space (router.NumBuckets).
	Buckets int `json:"buckets"`
	// Epoch is the placement epoch the parts' bucket ranges come from.
	Epoch uint64 `json:"epoch"`
	// CreatedMs is when the leader assembled it (Unix milliseconds).
	CreatedMs int64          `json:"created_ms"`
	Parts     []SnapshotPart `json:"parts"`
}

// SnapshotPart is one node's input to a global snapshot: an engine
// checkpoint (hard-linked files, transaction records included) in the
// node's DataDir/snapshots/<id>.
type SnapshotPart struct {
	Node string `json:"node"`
	// Ranges are the buckets the node owned, as inclusive runs.
	Ranges []BucketRange `json:"ranges"`
	// Files are the checkpoint's files, relative to its directory.
	Files []SnapshotFile `json:"files"`
	// Seqs are the engine's per-shard sequence numbers of the checkpoint.
	Seqs []uint64 `json:"seqs,omitempty"`
}

// Bytes returns the total size of the part's files.
func (p SnapshotPart) Bytes() int64 {
	var n int64
	for _, f := range p.Files {
		n += f.Bytes
	}
	return n
}

// Bytes returns the total size of every part's files.
func (m SnapshotManifest) Bytes() int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.Bytes()
	}
	return n
}

// Part returns the part of node id.
func (m SnapshotManifest) Part(id string) (SnapshotPart, bool) {
	for _, p := range m.Parts {
		if p.Node == id {
			return p, true
		}
	}
	return SnapshotPart{}, false
}

// Owner returns the node whose part holds bucket b ("" if none).
func (m SnapshotManifest) Owner(b uint16) string {
	for _, p := range m.Parts {
		for _, r := range p.Ranges {
			if r.From <= b && b <= r.To {
				return p.Node
			}
		}
	}
	return ""
}

// BucketRange is an inclusive run of buckets.
type BucketRange struct {
	From uint16 `json:"from"`
	To   uint16 `json:"to"`
}

// Ranges turns ascending buckets into inclusive runs.
func Ranges(buckets []uint16) []BucketRange {
	var out []BucketRange
	for _, b := range buckets {
		if n := len(out); n > 0 && out[n-1].To+1 == b {
			out[n-1].To = b
			continue
		}
		out = append(out, BucketRange{From: b, To: b})
	}
	return out
}

// SnapshotFile is one file of a part, with its size and SHA-256 (hex).
type SnapshotFile struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// AddSnapshot commits a global snapshot's manifest. It is refused with
// ErrBadCommand if the ID is empty, too long, has characters other than
// letters, digits, '.', '_' and '-', or is taken; if Buckets is not
// router.NumBuckets; if the parts' nodes repeat or their ranges do not
// cover every bucket exactly once; if a file name is not a clean relative
// path or a checksum is not SHA-256 hex; or if MaxSnapshots are kept.
type AddSnapshot struct {
	Manifest SnapshotManifest `json:"manifest"`
}

// DropSnapshots removes manifests (retention or an operator's delete);
// IDs that are not listed are ignored, so a repeat is harmless.
type DropSnapshots struct {
	IDs []string `json:"ids"`
}

func (AddSnapshot) kind() commandKind   { return kindAddSnapshot }
func (DropSnapshots) kind() commandKind { return kindDropSnapshots }

// Snapshots returns the committed manifests, oldest first (shared: do not
// modify them).
func (s *State) Snapshots() []SnapshotManifest { return slices.Clone(s.snapshots) }

// Snapshot returns the committed manifest with the given ID.
func (s *State) Snapshot(id string) (SnapshotManifest, bool) {
	for _, m := range s.snapshots {
		if m.ID == id {
			return m, true
		}
	}
	return SnapshotManifest{}, false
}

// SnapshotsBeyond returns the IDs of the oldest manifests beyond the
// newest keep ones, oldest first.
func (s *State) SnapshotsBeyond(keep int) []string {
	var out []string
	for i := 0; i < len(s.snapshots)-max(keep, 0); i++ {
		out = append(out, s.snapshots[i].ID)
	}
	return out
}

func (s *State) addSnapshot(m SnapshotManifest) error {
	if err := m.validate(); err != nil {
		return err
	}
	if _, ok := s.Snapshot(m.ID); ok {
		return fmt.Errorf("%w: snapshot %s exists", ErrBadCommand, m.ID)
	}
	if len(s.snapshots) >= MaxSnapshots {
		return fmt.Errorf("%w: already %d snapshots (drop some first)", ErrBadCommand, MaxSnapshots)
	}
	// A new slice: published states share the old one.
	s.snapshots = append(slices.Clip(s.snapshots), m)
	return nil
}

func (s *State) dropSnapshots(ids []string) error {
	if len(ids) > MaxSnapshots {
		return fmt.Errorf("%w: %d snapshot IDs, more than %d", ErrBadCommand, len(ids), MaxSnapshots)
	}
	s.snapshots = slices.DeleteFunc(slices.Clone(s.snapshots), func(m SnapshotManifest) bool { return slices.Contains(ids, m.ID) })
	return nil
}

// ValidSnapshotID reports whether id may name a snapshot (and so a
// directory): 1 to MaxSnapshotIDLen letters, digits, '.', '_' or '-', not
// starting with '.'.
func ValidSnapshotID(id string) bool {
	if id == "" || len(id) > MaxSnapshotIDLen || id[0] == '.' {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidSnapshotFileName reports whether name is a clean relative path with
// no '..' element: safe to join to a snapshot directory.
func ValidSnapshotFileName(name string) bool {
	if name == "" || len(name) > 255 || strings.Contains(name, "\\") || path.IsAbs(name) || path.Clean(name) != name {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." || el == "." {
			return false
		}
	}
	return true
}

func (m SnapshotManifest) validate() error {
	if !ValidSnapshotID(m.ID) {
		return fmt.Errorf("%w: snapshot ID %q", ErrBadCommand, truncate(m.ID))
	}
	if m.Buckets != router.NumBuckets {
		return fmt.Errorf("%w: snapshot %s has %d buckets, want %d", ErrBadCommand, m.ID, m.Buckets, router.NumBuckets)
	}
	if len(m.Parts) == 0 || len(m.Parts) > MaxMembers {
		return fmt.Errorf("%w: snapshot %s has %d parts, want 1 to %d", ErrBadCommand, m.ID, len(m.Parts), MaxMembers)
	}
	covered := make([]bool, router.NumBuckets)
	nodes := map[string]bool{}
	for _, p := range m.Parts {
		if p.Node == "" || len(p.Node) > MaxNodeIDLen || nodes[p.Node] {
			return fmt.Errorf("%w: snapshot %s: part node %q empty, too long or repeated", ErrBadCommand, m.ID, truncate(p.Node))
		}
		nodes[p.Node] = true
		for _, r := range p.Ranges {
			if r.From > r.To || int(r.To) >= router.NumBuckets {
				return fmt.Errorf("%w: snapshot %s: node %s: bucket range %d-%d", ErrBadCommand, m.ID, p.Node, r.From, r.To)
			}
			for b := int(r.From); b <= int(r.To); b++ {
				if covered[b] {
					return fmt.Errorf("%w: snapshot %s: bucket %d in two parts", ErrBadCommand, m.ID, b)
				}
				covered[b] = true
			}
		}
		if len(p.Files) > MaxSnapshotFiles {
			return fmt.Errorf("%w: snapshot %s: node %s has %d files, more than %d", ErrBadCommand, m.ID, p.Node, len(p.Files), MaxSnapshotFiles)
		}
		names := map[string]bool{}
		for _, f := range p.Files {
			sum, err := hex.DecodeString(f.SHA256)
			if !ValidSnapshotFileName(f.Name) || names[f.Name] || f.Bytes < 0 || err != nil || len(sum) != 32 {
				return fmt.Errorf("%w: snapshot %s: node %s: file %q (%d bytes, sha256 %q) bad or repeated", ErrBadCommand, m.ID, p.Node, truncate(f.Name), f.Bytes, truncate(f.SHA256))
			}
			names[f.Name] = true
		}
	}
	for b, ok := range covered {
		if !ok {
			return fmt.Errorf("%w: snapshot %s: bucket %d in no part", ErrBadCommand, m.ID, b)
		}
	}
	return nil
}
