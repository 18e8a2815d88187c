package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

// Batch is a set of writes applied atomically by Store.Write: after a crash
// either every operation of an acknowledged-or-not batch is present or none
// is. A Batch is not safe for concurrent use; it copies keys and values, so
// the caller may reuse its buffers after each call.
type Batch struct {
	ops  []batchOp
	data []byte // arena holding every key and value
	size int    // bytes counted against BatchBytesMax
	// walBytes is the exact size of the ops in a WAL record (checkBatch).
	walBytes int
}

type batchOp struct {
	kind     base.Kind
	bucket   uint16
	key      [2]int // offsets in data
	value    [2]int
	expireAt int64 // unix milliseconds; 0 = never
}

// Set stores value under (bucket, key).
func (b *Batch) Set(bucket uint16, key, value []byte) { b.SetWithExpiry(bucket, key, value, 0) }

// SetWithExpiry stores value under (bucket, key), invisible from expireAtMs
// (Unix milliseconds) on; 0 means no expiry.
func (b *Batch) SetWithExpiry(bucket uint16, key, value []byte, expireAtMs int64) {
	op := batchOp{kind: base.KindSet, bucket: bucket, expireAt: expireAtMs}
	op.key = b.push(key)
	op.value = b.push(value)
	b.ops = append(b.ops, op)
	b.size += len(key) + len(value) + batchOpBytes
	b.walBytes += opWALBytes(base.KindSet, len(key), len(value), expireAtMs != 0)
}

// Delete removes (bucket, key).
func (b *Batch) Delete(bucket uint16, key []byte) {
	op := batchOp{kind: base.KindDelete, bucket: bucket}
	op.key = b.push(key)
	b.ops = append(b.ops, op)
	b.size += len(key) + batchOpBytes
	b.walBytes += opWALBytes(base.KindDelete, len(key), 0, false)
}

// ForEachKey calls fn with the bucket and key of every operation, in order
// (the key is only valid during the call).
func (b *Batch) ForEachKey(fn func(bucket uint16, key []byte)) {
	for i := range b.ops {
		fn(b.ops[i].bucket, b.opKey(&b.ops[i]))
	}
}

// Op is one operation of a Batch, as ForEachOp reports it.
type Op struct {
	Bucket uint16
	// Delete: the op removes Key (Value and ExpireAtMs are zero).
	Delete     bool
	Key, Value []byte
	ExpireAtMs int64
}

// ForEachOp calls fn with every operation, in order (Key and Value are
// only valid during the call).
func (b *Batch) ForEachOp(fn func(op Op)) {
	for i := range b.ops {
		o := &b.ops[i]
		op := Op{Bucket: o.bucket, Delete: o.kind == base.KindDelete, Key: b.opKey(o)}
		if !op.Delete {
			op.Value, op.ExpireAtMs = b.opValue(o), o.expireAt
		}
		fn(op)
	}
}

// Len is the number of operations.
func (b *Batch) Len() int { return len(b.ops) }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() { b.ops, b.data, b.size, b.walBytes = b.ops[:0], b.data[:0], 0, 0 }

func (b *Batch) push(p []byte) [2]int {
	start := len(b.data)
	b.data = append(b.data, p...)
	return [2]int{start, len(b.data)}
}

func (b *Batch) opKey(op *batchOp) []byte   { return b.data[op.key[0]:op.key[1]] }
func (b *Batch) opValue(op *batchOp) []byte { return b.data[op.value[0]:op.value[1]] }

// validate applies the engine's storage limits (limits.go) to b.
func (b *Batch) validate(c *Config) error { return checkBatch(c, b) }

// Internal user keys are the 2-byte big-endian bucket followed by the key,
// so each bucket is one contiguous key range.
func appendUserKey(dst []byte, bucket uint16, key []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, bucket)
	return append(dst, key...)
}

func bucketOf(ukey []byte) uint16 { return binary.BigEndian.Uint16(ukey) }

// Stored values carry a flags byte; flagExpiry adds an 8-byte expiry (unix ms).
const flagExpiry = 1

func appendStoredValue(dst []byte, value []byte, expireAt int64) []byte {
	if expireAt != 0 {
		dst = append(dst, flagExpiry)
		dst = binary.BigEndian.AppendUint64(dst, uint64(expireAt))
	} else {
		dst = append(dst, 0)
	}
	return append(dst, value...)
}

// decodeStoredValue splits a stored value; ok is false if it is malformed.
func decodeStoredValue(sv []byte) (value []byte, expireAt int64, ok bool) {
	if len(sv) < 1 {
		return nil, 0, false
	}
	switch sv[0] {
	case 0:
		return sv[1:], 0, true
	case flagExpiry:
		if len(sv) < 9 {
			return nil, 0, false
		}
		return sv[9:], int64(binary.BigEndian.Uint64(sv[1:9])), true
	}
	return nil, 0, false
}

// WAL record types (first payload byte).
const (
	recBatch    byte = 1 // seq, count, ops
	recXPart    byte = 2 // xid, participants, seq, count, ops: one shard's part of a cross-shard batch
	recXCommit  byte = 3 // xid: the cross-shard batch committed (written in the home shard's WAL)
	recRangeDel byte = 4 // seq, lo, hi: delete buckets [lo, hi]
)

// walEntry is one decoded operation of a WAL record.
type walEntry struct {
	key   base.InternalKey
	value []byte // stored value
}

// encodeOps appends the ops of b that belong to shard (all if shard < 0),
// numbered from seq, and returns the count.
func appendOps(dst []byte, b *Batch, idx []int, seq uint64) []byte {
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, uint64(len(idx)))
	var vbuf []byte
	for _, i := range idx {
		op := &b.ops[i]
		dst = append(dst, byte(op.kind))
		key := b.opKey(op)
		dst = binary.AppendUvarint(dst, uint64(len(key)+2))
		dst = appendUserKey(dst, op.bucket, key)
		if op.kind == base.KindSet {
			vbuf = appendStoredValue(vbuf[:0], b.opValue(op), op.expireAt)
			dst = binary.AppendUvarint(dst, uint64(len(vbuf)))
			dst = append(dst, vbuf...)
		} else {
			dst = binary.AppendUvarint(dst, 0)
		}
	}
	return dst
}

// decodeOps parses (seq, count, ops); keys and values are copied.
func decodeOps(p []byte) ([]walEntry, []byte, error) {
	seq, n := binary.Uvarint(p)
	if n <= 0 {
		return nil, nil, fmt.Errorf("%w: bad seq in wal record", ErrCorrupt)
	}
	p = p[n:]
	count, n := binary.Uvarint(p)
	if n <= 0 || count > uint64(len(p)) {
		return nil, nil, fmt.Errorf("%w: bad op count in wal record", ErrCorrupt)
	}
	p = p[n:]
	out := make([]walEntry, 0, count)
	for i := uint64(0); i < count; i++ {
		if len(p) < 1 {
			return nil, nil, fmt.Errorf("%w: short wal record", ErrCorrupt)
		}
		kind := base.Kind(p[0])
		if kind > base.KindMax {
			return nil, nil, fmt.Errorf("%w: bad kind %d in wal record", ErrCorrupt, kind)
		}
		p = p[1:]
		kl, n := binary.Uvarint(p)
		if n <= 0 || kl < 3 || kl > uint64(len(p)-n) {
			return nil, nil, fmt.Errorf("%w: bad key length in wal record", ErrCorrupt)
		}
		key := append([]byte(nil), p[n:n+int(kl)]...)
		p = p[n+int(kl):]
		vl, n := binary.Uvarint(p)
		if n <= 0 || vl > uint64(len(p)-n) {
			return nil, nil, fmt.Errorf("%w: bad value length in wal record", ErrCorrupt)
		}
		var val []byte
		if kind == base.KindSet {
			val = append([]byte(nil), p[n:n+int(vl)]...)
			if _, _, ok := decodeStoredValue(val); !ok {
				return nil, nil, fmt.Errorf("%w: bad stored value in wal record", ErrCorrupt)
			}
		}
		p = p[n+int(vl):]
		out = append(out, walEntry{key: base.InternalKey{UserKey: key, Seq: seq + i, Kind: kind}, value: val})
	}
	return out, p, nil
}
