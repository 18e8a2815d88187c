package replica

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The storage adapter: how a node's replication state is laid out as
// key/value pairs in one key space of the driver's store (node/ keeps it
// in an engine bucket of its own), and how it is read back at start. It
// is pure like the rest of the package: the driver does the reads and the
// writes.
//
//	l|bucket|seq  an entry: epoch(uvarint) data crc32c(4) — the CRC covers
//	              bucket, seq, epoch and data, so a record read back under
//	              another key or torn is refused
//	c|bucket      the durable commit hint: seq(8)
//	a|bucket      applied: every entry up to this seq(8) is in the store
//	b|bucket      base: the ID (seq(8) epoch(8)) of the entry just below
//	              the first one kept (entries up to it were trimmed)
//
// bucket is 2 bytes and seq 8, big endian, so a bucket's entries are one
// contiguous, ordered key range.
const (
	storeEntry   = 'l'
	storeCommit  = 'c'
	storeApplied = 'a'
	storeBase    = 'b'
)

// EntryKey returns the key of bucket b's entry at seq.
func EntryKey(b Bucket, seq Seq) []byte {
	k := make([]byte, 11)
	k[0] = storeEntry
	binary.BigEndian.PutUint16(k[1:], uint16(b))
	binary.BigEndian.PutUint64(k[3:], uint64(seq))
	return k
}

func bucketKey(kind byte, b Bucket) []byte {
	return []byte{kind, byte(b >> 8), byte(b)}
}

// CommitKey, AppliedKey and BaseKey return the keys of bucket b's commit
// hint, applied point and log base.
func CommitKey(b Bucket) []byte  { return bucketKey(storeCommit, b) }
func AppliedKey(b Bucket) []byte { return bucketKey(storeApplied, b) }
func BaseKey(b Bucket) []byte    { return bucketKey(storeBase, b) }

// EncodeEntry returns the stored form of bucket b's entry e.
func EncodeEntry(b Bucket, e Entry) []byte {
	v := binary.AppendUvarint(make([]byte, 0, len(e.Data)+14), uint64(e.Epoch))
	v = append(v, e.Data...)
	return binary.BigEndian.AppendUint32(v, entrySum(b, e.Seq, v))
}

func entrySum(b Bucket, seq Seq, v []byte) uint32 {
	var h [10]byte
	binary.BigEndian.PutUint16(h[:], uint16(b))
	binary.BigEndian.PutUint64(h[2:], uint64(seq))
	return crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, v)
}

// EncodeSeq and EncodeEntryID return the stored form of a commit hint or
// applied point, and of a log base.
func EncodeSeq(s Seq) []byte { return binary.BigEndian.AppendUint64(nil, uint64(s)) }
func EncodeEntryID(id EntryID) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(id.Seq)), uint64(id.Epoch))
}

// Stored is one bucket's replication state as read back at start.
type Stored struct {
	Base    EntryID
	Entries []Entry // ascending seq, contiguous after Base
	Commit  Seq
	Applied Seq
}

// Loader rebuilds every bucket's Stored from the records of the adapter's
// key space, fed in key order (as a store iterates them).
type Loader struct {
	buckets map[Bucket]*Stored
}

// NewLoader returns an empty Loader.
func NewLoader() *Loader { return &Loader{buckets: map[Bucket]*Stored{}} }

func (l *Loader) of(b Bucket) *Stored {
	s := l.buckets[b]
	if s == nil {
		s = &Stored{}
		l.buckets[b] = s
	}
	return s
}

// Add feeds one record. Records must come in key order; a record that
// does not decode fails with ErrBadRestore.
func (l *Loader) Add(key, value []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: key %x: "+format, append([]any{ErrBadRestore, key}, args...)...)
	}
	if len(key) < 3 {
		return bad("short key")
	}
	b := Bucket(binary.BigEndian.Uint16(key[1:]))
	switch key[0] {
	case storeEntry:
		if len(key) != 11 || len(value) < 5 {
			return bad("malformed entry")
		}
		seq := Seq(binary.BigEndian.Uint64(key[3:]))
		body, sum := value[:len(value)-4], binary.BigEndian.Uint32(value[len(value)-4:])
		if entrySum(b, seq, body) != sum {
			return bad("entry checksum mismatch")
		}
		ep, n := binary.Uvarint(body)
		if n <= 0 {
			return bad("bad epoch")
		}
		s := l.of(b)
		s.Entries = append(s.Entries, Entry{Seq: seq, Epoch: Epoch(ep), Data: append([]byte(nil), body[n:]...)})
	case storeCommit, storeApplied:
		if len(key) != 3 || len(value) != 8 {
			return bad("malformed point")
		}
		v := Seq(binary.BigEndian.Uint64(value))
		if key[0] == storeCommit {
			l.of(b).Commit = v
		} else {
			l.of(b).Applied = v
		}
	case storeBase:
		if len(key) != 3 || len(value) != 16 {
			return bad("malformed base")
		}
		l.of(b).Base = EntryID{Seq: Seq(binary.BigEndian.Uint64(value)), Epoch: Epoch(binary.BigEndian.Uint64(value[8:]))}
	default:
		return bad("unknown record kind %q", key[0])
	}
	return nil
}

// Buckets returns what was loaded, with each bucket's entries cut to those
// after its base and checked contiguous, and its commit hint raised to at
// least the base. A gap fails with ErrBadRestore.
func (l *Loader) Buckets() (map[Bucket]Stored, error) {
	out := make(map[Bucket]Stored, len(l.buckets))
	for b, s := range l.buckets {
		es := s.Entries
		for len(es) > 0 && es[0].Seq <= s.Base.Seq {
			es = es[1:]
		}
		for i, e := range es {
			if e.Seq != s.Base.Seq+Seq(i)+1 {
				return nil, fmt.Errorf("%w: bucket %d: entry %d after base %d and %d entries", ErrBadRestore, b, e.Seq, s.Base.Seq, i)
			}
		}
		st := *s
		st.Entries = es
		st.Commit = max(st.Commit, st.Base.Seq)
		out[b] = st
	}
	return out, nil
}
