package segment

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/bits"
)

// File layout constants; doc.go describes the format.
const (
	magic         = "DBXSEG01"
	formatVersion = 1

	// blockTrailerLen is the compression-type byte plus the crc32c.
	blockTrailerLen = 5
	// compressionNone is the only compression type.
	compressionNone = 0

	// footerLen is the fixed size of the footer at the end of the file:
	// three (offset, length) handles, version, footer crc, magic.
	footerLen = 6*8 + 4 + 4 + 8

	// searchTrailer is the trailer (seq<<8|kind) that sorts first among all
	// internal keys with the same user key. Index separators that are not
	// real keys use it.
	searchTrailer = ^uint64(0)

	trailerLen = 8
)

// The footer ends with the 8-byte magic.
var _ [8]byte = [len(magic)]byte{}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockChecksum is the crc32c of a block's contents followed by its type
// byte: b is the contents and the type byte, contiguous as in the file.
func blockChecksum(b []byte) uint32 {
	return crc32.Checksum(b, castagnoli)
}

// handle locates a block: its contents start at off and are n bytes long; the
// 5-byte block trailer follows.
type handle struct {
	off, n uint64
}

// end is the offset just past the block's trailer.
func (h handle) end() uint64 { return h.off + h.n + blockTrailerLen }

// footer is the decoded fixed-size tail of a segment file.
type footer struct {
	filter, index, props handle
	version              uint32
}

func (f footer) encode() []byte {
	b := make([]byte, 0, footerLen)
	for _, h := range [...]handle{f.filter, f.index, f.props} {
		b = binary.LittleEndian.AppendUint64(b, h.off)
		b = binary.LittleEndian.AppendUint64(b, h.n)
	}
	b = binary.LittleEndian.AppendUint32(b, f.version)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return append(b, magic...)
}

// decodeFooter parses b (exactly footerLen bytes). It reports whether the
// magic matched and whether the checksum did.
func decodeFooter(b []byte) (f footer, magicOK, crcOK bool) {
	if len(b) != footerLen || string(b[footerLen-len(magic):]) != magic {
		return footer{}, false, false
	}
	var hs [3]handle
	for i := range hs {
		hs[i].off = binary.LittleEndian.Uint64(b[16*i:])
		hs[i].n = binary.LittleEndian.Uint64(b[16*i+8:])
	}
	f = footer{filter: hs[0], index: hs[1], props: hs[2], version: binary.LittleEndian.Uint32(b[48:])}
	crcOK = binary.LittleEndian.Uint32(b[52:]) == crc32.Checksum(b[:52], castagnoli)
	return f, true, crcOK
}

// compareEncoded orders two encoded internal keys (user key, then 8-byte
// little-endian trailer) as base.Compare orders the decoded keys. Both must
// be at least trailerLen bytes long.
func compareEncoded(a, b []byte) int {
	na, nb := len(a)-trailerLen, len(b)-trailerLen
	if c := bytes.Compare(a[:na], b[:nb]); c != 0 {
		return c
	}
	return compareTrailer(binary.LittleEndian.Uint64(a[na:]), binary.LittleEndian.Uint64(b[nb:]))
}

// compareSearch orders the encoded internal key enc against the search key
// (userKey, trailer). enc must be at least trailerLen bytes long.
func compareSearch(enc, userKey []byte, trailer uint64) int {
	n := len(enc) - trailerLen
	if c := bytes.Compare(enc[:n], userKey); c != 0 {
		return c
	}
	return compareTrailer(binary.LittleEndian.Uint64(enc[n:]), trailer)
}

// compareTrailer orders trailers: a larger trailer (newer seq) sorts first.
func compareTrailer(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// separator returns a short encoded internal key s with a <= s < b, for the
// index entry of a block whose last key is a when the next block starts with
// b (both encoded, a < b). It appends to dst.
func separator(dst, a, b []byte) []byte {
	ua, ub := a[:len(a)-trailerLen], b[:len(b)-trailerLen]
	n := min(len(ua), len(ub))
	i := 0
	for i < n && ua[i] == ub[i] {
		i++
	}
	// Shorten to ua[:i+1] with its last byte incremented, when that is still
	// below ub. The result is a user key strictly between ua and ub, so no
	// entry of the file has it and its trailer is irrelevant to lookups; the
	// trailer that sorts first keeps it above every version of ua.
	if i < n && ua[i] < 0xff && ua[i]+1 < ub[i] && i+1 < len(ua) {
		dst = append(dst, ua[:i+1]...)
		dst[len(dst)-1]++
		return binary.LittleEndian.AppendUint64(dst, searchTrailer)
	}
	return append(dst, a...)
}

// successor returns a short encoded internal key s >= a, for the index entry
// of the last block. It appends to dst.
func successor(dst, a []byte) []byte {
	ua := a[:len(a)-trailerLen]
	for i, c := range ua {
		if c != 0xff {
			if i+1 == len(ua) {
				break // not shorter
			}
			dst = append(dst, ua[:i+1]...)
			dst[len(dst)-1]++
			return binary.LittleEndian.AppendUint64(dst, searchTrailer)
		}
	}
	return append(dst, a...)
}

// uvarint decodes a varint from b[off:end] that must be below 1<<31. It
// returns the value and the offset just past it, or ok=false.
func uvarint(b []byte, off, end int) (v int, next int, ok bool) {
	if off < end && b[off] < 0x80 {
		return int(b[off]), off + 1, true
	}
	if off >= end {
		return 0, 0, false
	}
	x, n := binary.Uvarint(b[off:end])
	if n <= 0 || x >= 1<<31 {
		return 0, 0, false
	}
	return int(x), off + n, true
}

// hash64 is the 64-bit hash of user keys used by the bloom filter. It is part
// of the file format: changing it requires a new format version.
func hash64(b []byte) uint64 {
	const (
		p1 = 0x9e3779b185ebca87
		p2 = 0xc2b2ae3d27d4eb4f
		p3 = 0x165667b19e3779f9
	)
	h := uint64(len(b))*p3 + p1
	for len(b) >= 8 {
		v := binary.LittleEndian.Uint64(b) * p2
		h ^= bits.RotateLeft64(v, 31) * p1
		h = bits.RotateLeft64(h, 27)*p1 + p3
		b = b[8:]
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b)) * p1
		h = bits.RotateLeft64(h, 23)*p2 + p3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * p3
		h = bits.RotateLeft64(h, 11) * p1
	}
	// Final avalanche (murmur3 fmix64).
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
