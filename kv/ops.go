package kv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dbx-kv/dbx/engine"
)

// The replicated form of a write: the engine operations of one batch, as
// a replication entry carries them (node/ proposes them, and applies them
// on every replica once committed). Operations are physical — a key's new
// value and expiry, or its deletion — so applying an entry twice, or a
// run of entries again from an earlier point, ends in the same state.
//
//	ops := version(1) count(uvarint) op*
//	op  := kind(1: 0 delete, 1 set) bucket(2) keylen(uvarint) key
//	       [vallen(uvarint) value expireAtMs(varint)]   (set only)

const opsVersion = 1

// ErrBadOps reports replicated operations that do not decode.
var ErrBadOps = errors.New("kv: bad replicated operations")

// EncodeOps returns the replicated form of b's operations.
func EncodeOps(b *engine.Batch) []byte {
	out := binary.AppendUvarint([]byte{opsVersion}, uint64(b.Len()))
	b.ForEachOp(func(op engine.Op) {
		kind := byte(1)
		if op.Delete {
			kind = 0
		}
		out = append(out, kind, byte(op.Bucket>>8), byte(op.Bucket))
		out = binary.AppendUvarint(out, uint64(len(op.Key)))
		out = append(out, op.Key...)
		if !op.Delete {
			out = binary.AppendUvarint(out, uint64(len(op.Value)))
			out = append(out, op.Value...)
			out = binary.AppendVarint(out, op.ExpireAtMs)
		}
	})
	return out
}

// DecodeOps appends the operations of data to b. Every length is checked
// against the bytes left before it is used; the engine's own limits apply
// when b is written.
func DecodeOps(data []byte, b *engine.Batch) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadOps, what) }
	if len(data) < 1 || data[0] != opsVersion {
		return bad("unknown version")
	}
	p := data[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	count, ok := uv()
	if !ok || count > uint64(len(p)) {
		return bad("count")
	}
	for range count {
		if len(p) < 3 {
			return bad("truncated op")
		}
		kind, bucket := p[0], binary.BigEndian.Uint16(p[1:])
		p = p[3:]
		kl, ok := uv()
		if !ok || kl > uint64(len(p)) {
			return bad("key length")
		}
		key := p[:kl]
		p = p[kl:]
		switch kind {
		case 0:
			b.Delete(bucket, key)
		case 1:
			vl, ok := uv()
			if !ok || vl > uint64(len(p)) {
				return bad("value length")
			}
			val := p[:vl]
			p = p[vl:]
			at, n := binary.Varint(p)
			if n <= 0 {
				return bad("expiry")
			}
			p = p[n:]
			b.SetWithExpiry(bucket, key, val, at)
		default:
			return bad("op kind")
		}
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return nil
}
