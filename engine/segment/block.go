package segment

import (
	"encoding/binary"
)

// blockBuilder accumulates the entries of one data block.
type blockBuilder struct {
	buf      []byte
	restarts []uint32
	counter  int // entries since the last restart point
	interval int
}

// add appends an entry. prev is the previous key added to this block (ignored
// at a restart point).
func (b *blockBuilder) add(prev, key, value []byte) {
	shared := 0
	if b.counter == 0 {
		b.restarts = append(b.restarts, uint32(len(b.buf)))
	} else {
		n := min(len(prev), len(key))
		for shared < n && prev[shared] == key[shared] {
			shared++
		}
	}
	b.counter++
	if b.counter == b.interval {
		b.counter = 0
	}
	b.buf = binary.AppendUvarint(b.buf, uint64(shared))
	b.buf = binary.AppendUvarint(b.buf, uint64(len(key)-shared))
	b.buf = binary.AppendUvarint(b.buf, uint64(len(value)))
	b.buf = append(b.buf, key[shared:]...)
	b.buf = append(b.buf, value...)
}

func (b *blockBuilder) empty() bool { return len(b.restarts) == 0 }

// size is the size of the block if it were finished now.
func (b *blockBuilder) size() int { return len(b.buf) + 4*len(b.restarts) + 4 }

// finish appends the restart array and returns the block contents, which stay
// valid until reset.
func (b *blockBuilder) finish() []byte {
	for _, r := range b.restarts {
		b.buf = binary.LittleEndian.AppendUint32(b.buf, r)
	}
	b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(b.restarts)))
	return b.buf
}

func (b *blockBuilder) reset() {
	b.buf = b.buf[:0]
	b.restarts = b.restarts[:0]
	b.counter = 0
}

// blockView reads a data block whose restart array has been checked by
// checkBlock. Entry decoding is bounds-checked on every access anyway, so a
// damaged block yields a "bad" result, never a panic.
type blockView struct {
	data        []byte
	entriesEnd  int // offset of the restart array
	numRestarts int
}

// checkBlock validates the restart array of block contents b: at least one
// entry and one restart point, restart offsets strictly increasing from 0 and
// inside the entries region.
func checkBlock(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	n := uint64(binary.LittleEndian.Uint32(b[len(b)-4:]))
	if n == 0 || n > uint64(len(b)-4)/4 {
		return false
	}
	end := len(b) - 4 - 4*int(n)
	if end < 3 { // the smallest entry is three one-byte varints
		return false
	}
	prev := -1
	for i := range int(n) {
		r := int(binary.LittleEndian.Uint32(b[end+4*i:]))
		if r <= prev || r >= end || (i == 0 && r != 0) {
			return false
		}
		prev = r
	}
	return true
}

// viewBlock returns the view of block contents already accepted by checkBlock.
func viewBlock(b []byte) blockView {
	n := int(binary.LittleEndian.Uint32(b[len(b)-4:]))
	return blockView{data: b, entriesEnd: len(b) - 4 - 4*n, numRestarts: n}
}

func (v *blockView) restart(i int) int {
	return int(binary.LittleEndian.Uint32(v.data[v.entriesEnd+4*i:]))
}

// decodeEntry decodes the entry at off, rebuilding its key in key (which
// holds the previous key). It returns the key, the value (aliasing the block,
// with capacity clipped so appends cannot write into the block) and the
// offset of the next entry; ok is false if the entry is malformed.
func (v *blockView) decodeEntry(off int, key []byte) (k, val []byte, next int, ok bool) {
	end := v.entriesEnd
	shared, p, ok := uvarint(v.data, off, end)
	if !ok {
		return key, nil, 0, false
	}
	unshared, p, ok := uvarint(v.data, p, end)
	if !ok {
		return key, nil, 0, false
	}
	vlen, p, ok := uvarint(v.data, p, end)
	if !ok || shared > len(key) || unshared > end-p {
		return key, nil, 0, false
	}
	kEnd := p + unshared
	if vlen > end-kEnd || shared+unshared < trailerLen {
		return key, nil, 0, false
	}
	key = append(key[:shared], v.data[p:kEnd]...)
	vEnd := kEnd + vlen
	return key, v.data[kEnd:vEnd:vEnd], vEnd, true
}

// restartKey returns the key of the entry at restart point i, aliasing the
// block (a restart entry stores its key whole).
func (v *blockView) restartKey(i int) ([]byte, bool) {
	off := v.restart(i)
	end := v.entriesEnd
	shared, p, ok := uvarint(v.data, off, end)
	if !ok || shared != 0 {
		return nil, false
	}
	unshared, p, ok := uvarint(v.data, p, end)
	if !ok {
		return nil, false
	}
	_, p, ok = uvarint(v.data, p, end)
	if !ok || unshared > end-p || unshared < trailerLen {
		return nil, false
	}
	return v.data[p : p+unshared], true
}

// Results of seekGE.
const (
	seekFound     = iota // an entry >= the search key is in the block
	seekExhausted        // every entry of the block is below the search key
	seekBad              // the block is malformed at the returned offset
)

// seekGE finds the first entry >= (userKey, trailer): binary search over the
// restart points, then a linear scan. key is a scratch buffer for the
// rebuilt key (its contents are replaced). It returns the entry's key (in
// key's storage), value, offset and the offset of the next entry.
func (v *blockView) seekGE(key, userKey []byte, trailer uint64) (k, val []byte, off, next, st int) {
	lo, hi := 0, v.numRestarts
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		rk, ok := v.restartKey(mid)
		if !ok {
			return key, nil, v.restart(mid), 0, seekBad
		}
		if compareSearch(rk, userKey, trailer) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	// Restart lo is the first whose key is >= the search key, so the answer
	// lies between restart lo-1 and restart lo.
	if lo > 0 {
		off = v.restart(lo - 1)
	}
	key = key[:0]
	for off < v.entriesEnd {
		var ok bool
		key, val, next, ok = v.decodeEntry(off, key)
		if !ok {
			return key, nil, off, 0, seekBad
		}
		if compareSearch(key, userKey, trailer) >= 0 {
			return key, val, off, next, seekFound
		}
		off = next
	}
	return key, nil, off, 0, seekExhausted
}
