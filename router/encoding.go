package router

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Encoding, version 1, all integers big-endian:
//
//	"DBXT" | version u8 = 1 | rf u8 | node count u16 | epoch u64
//	node count × (id length u8 | id bytes)      node IDs, strictly ascending
//	NumBuckets × rf × u16                        owner node indices, bucket by bucket
//	crc32c u32                                   of everything before it
//
// The encoding of a table is canonical: equal tables encode to equal bytes.
const (
	magic         = "DBXT"
	version       = 1
	headerLen     = 4 + 1 + 1 + 2 + 8
	checksumLen   = 4
	maxEncodedLen = headerLen + MaxNodes*(1+MaxNodeIDLen) + NumBuckets*MaxRF*2 + checksumLen
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary returns the table's canonical encoding.
func (t *Table) MarshalBinary() ([]byte, error) { return t.encode(), nil }

func (t *Table) encode() []byte {
	n := headerLen + checksumLen + len(t.owners)*2
	for _, id := range t.nodes {
		n += 1 + len(id)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, magic...)
	buf = append(buf, version, byte(t.rf))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(t.nodes)))
	buf = binary.BigEndian.AppendUint64(buf, t.epoch)
	for _, id := range t.nodes {
		buf = append(buf, byte(len(id)))
		buf = append(buf, id...)
	}
	for _, o := range t.owners {
		buf = binary.BigEndian.AppendUint16(buf, o)
	}
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// UnmarshalBinary decodes a table encoded by MarshalBinary into t,
// validating it fully: any malformed input gives an error wrapping
// ErrBadTable, never a panic. t must not be in use by anyone else.
func (t *Table) UnmarshalBinary(data []byte) error {
	nt, err := decode(data)
	if err != nil {
		return err
	}
	*t = *nt
	return nil
}

// ParseTable decodes a table encoded by MarshalBinary.
func ParseTable(data []byte) (*Table, error) { return decode(data) }

func decode(data []byte) (*Table, error) {
	if len(data) < headerLen+checksumLen || len(data) > maxEncodedLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadTable, len(data))
	}
	body, sum := data[:len(data)-checksumLen], binary.BigEndian.Uint32(data[len(data)-checksumLen:])
	if string(body[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadTable, body[:4])
	}
	if body[4] != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadTable, body[4], version)
	}
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrBadTable, got, sum)
	}
	rf := int(body[5])
	count := int(binary.BigEndian.Uint16(body[6:]))
	epoch := binary.BigEndian.Uint64(body[8:])
	if count == 0 || count > MaxNodes {
		return nil, fmt.Errorf("%w: %d nodes, want 1 to %d", ErrBadTable, count, MaxNodes)
	}
	rest := body[headerLen:]
	nodes := make([]string, count)
	for i := range nodes {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return nil, fmt.Errorf("%w: truncated at node %d", ErrBadTable, i)
		}
		l := int(rest[0])
		nodes[i] = string(rest[1 : 1+l])
		rest = rest[1+l:]
	}
	if rf < 1 || rf > MaxRF {
		return nil, fmt.Errorf("%w: RF %d, want 1 to %d", ErrBadTable, rf, MaxRF)
	}
	if len(rest) != NumBuckets*rf*2 {
		return nil, fmt.Errorf("%w: %d owner bytes, want %d", ErrBadTable, len(rest), NumBuckets*rf*2)
	}
	owners := make([]uint16, NumBuckets*rf)
	for i := range owners {
		owners[i] = binary.BigEndian.Uint16(rest[2*i:])
	}
	if err := validate(nodes, rf, owners); err != nil {
		return nil, err
	}
	return build(epoch, nodes, rf, owners), nil
}
