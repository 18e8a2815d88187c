// Package base holds the key and entry definitions shared by the engine's
// memtable, WAL records and segment files.
//
// An internal key is the user key (already prefixed by the engine with the
// 2-byte big-endian bucket) plus a sequence number and a kind. Internal keys
// sort by user key ascending, then sequence number descending, so the newest
// version of a key comes first.
package base

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Kind says what an entry is.
type Kind uint8

const (
	// KindDelete is a point tombstone.
	KindDelete Kind = 0
	// KindSet is a value.
	KindSet Kind = 1
	// KindMax is the largest valid kind.
	KindMax = KindSet
)

func (k Kind) String() string {
	switch k {
	case KindDelete:
		return "DEL"
	case KindSet:
		return "SET"
	}
	return fmt.Sprintf("KIND(%d)", uint8(k))
}

// SeqMax is the largest usable sequence number (56 bits; the trailer packs seq<<8|kind).
const SeqMax = uint64(1)<<56 - 1

// TrailerLen is the encoded size of (seq, kind).
const TrailerLen = 8

// InternalKey is a user key with its sequence number and kind.
type InternalKey struct {
	UserKey []byte
	Seq     uint64
	Kind    Kind
}

// Trailer packs seq and kind.
func (k InternalKey) Trailer() uint64 { return k.Seq<<8 | uint64(k.Kind) }

// DecodeTrailer unpacks a trailer.
func DecodeTrailer(t uint64) (seq uint64, kind Kind) { return t >> 8, Kind(t & 0xff) }

// AppendEncoded appends UserKey followed by the 8-byte little-endian trailer.
func (k InternalKey) AppendEncoded(dst []byte) []byte {
	dst = append(dst, k.UserKey...)
	return binary.LittleEndian.AppendUint64(dst, k.Trailer())
}

// DecodeInternalKey splits an encoded internal key. The returned UserKey aliases b.
func DecodeInternalKey(b []byte) (InternalKey, bool) {
	if len(b) < TrailerLen {
		return InternalKey{}, false
	}
	n := len(b) - TrailerLen
	seq, kind := DecodeTrailer(binary.LittleEndian.Uint64(b[n:]))
	return InternalKey{UserKey: b[:n:n], Seq: seq, Kind: kind}, true
}

// Compare orders internal keys: user key ascending, then seq descending,
// then kind descending.
func Compare(a, b InternalKey) int {
	if c := bytes.Compare(a.UserKey, b.UserKey); c != 0 {
		return c
	}
	switch {
	case a.Seq > b.Seq:
		return -1
	case a.Seq < b.Seq:
		return 1
	}
	switch {
	case a.Kind > b.Kind:
		return -1
	case a.Kind < b.Kind:
		return 1
	}
	return 0
}

func (k InternalKey) String() string {
	return fmt.Sprintf("%q#%d,%s", k.UserKey, k.Seq, k.Kind)
}
