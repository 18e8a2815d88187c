package wal

import (
	"encoding/binary"
	"hash/crc32"
)

// File layout constants; doc.go describes the format.
const (
	// FileHeaderLen is the size of the file header: magic (with the format
	// version in its last two bytes) and the log number.
	FileHeaderLen = 16
	// RecordHeaderLen is the per-record overhead: checksum, length and
	// length check.
	RecordHeaderLen = 12
	// MaxRecordBytes is the largest payload a record can hold. A Writer may
	// be configured with a lower limit; a Reader always accepts up to this.
	MaxRecordBytes = 64 << 20

	// magic is "DBXWAL" followed by the big-endian format version 1.
	magic         = "DBXWAL\x00\x01"
	magicPrefix   = "DBXWAL"
	formatVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFileHeader appends the 16-byte file header of log logNum to dst.
func appendFileHeader(dst []byte, logNum uint64) []byte {
	dst = append(dst, magic...)
	return binary.LittleEndian.AppendUint64(dst, logNum)
}

// putRecordHeader writes into h (RecordHeaderLen bytes) the header of a
// record whose payload is the concatenation of parts, n bytes in all.
func putRecordHeader(h []byte, n int, parts ...[]byte) {
	binary.LittleEndian.PutUint32(h[4:], uint32(n))
	binary.LittleEndian.PutUint32(h[8:], ^uint32(n))
	c := crc32.Update(0, castagnoli, h[4:RecordHeaderLen])
	for _, p := range parts {
		c = crc32.Update(c, castagnoli, p)
	}
	binary.LittleEndian.PutUint32(h[0:], c)
}

// decodeLength returns the payload length in a record header and whether the
// length passed its check and is within MaxRecordBytes.
func decodeLength(h []byte) (n int, ok bool) {
	l := binary.LittleEndian.Uint32(h[4:])
	if binary.LittleEndian.Uint32(h[8:]) != ^l || l > MaxRecordBytes {
		return 0, false
	}
	return int(l), true
}

// checksumOK reports whether rec (a whole record: header and payload) has a
// matching checksum.
func checksumOK(rec []byte) bool {
	return binary.LittleEndian.Uint32(rec) == crc32.Checksum(rec[4:], castagnoli)
}
