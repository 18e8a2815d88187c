package segment

import (
	"encoding/binary"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

// Iter walks the entries of a segment in base.Compare order: every version
// of every key, tombstones included (the engine filters by seq). An Iter is
// used by one goroutine at a time; several Iters of one Reader may run
// concurrently. Positioning methods return Valid().
type Iter struct {
	r     *Reader
	bi    int // index of the current block
	v     blockView
	off   int // offset of the current entry in the block
	next  int // offset of the entry after it
	key   []byte
	ikey  base.InternalKey
	val   []byte
	valid bool
	err   error
	buf   []byte // block buffer, reused when the Reader has no cache

	// A scan iterator reads blocks missing from the cache through the
	// readahead buffer ra, which holds the file bytes at [raOff,
	// raOff+len(ra)).
	scan  bool
	ra    []byte
	raOff uint64
}

// scanReadaheadBytes is how much a scan iterator reads from the file at once
// (a variable for tests).
var scanReadaheadBytes uint64 = 256 << 10

// NewIter returns an unpositioned iterator; call First or SeekGE. Blocks it
// reads go into the BlockCache. Close it before closing the Reader.
func (r *Reader) NewIter() *Iter {
	return &Iter{r: r}
}

// NewScanIter returns an iterator for long sequential scans (compactions,
// full range scans). It uses blocks already in the BlockCache but reads the
// others in large chunks (256 KiB) into a private buffer, verifying each
// block's checksum, and does not cache them, so a scan neither evicts the
// working set of point reads nor pays for cache inserts.
func (r *Reader) NewScanIter() *Iter {
	return &Iter{r: r, scan: true}
}

// First positions the iterator at the first entry of the file.
func (it *Iter) First() bool {
	it.err = nil
	if !it.loadBlock(0) {
		return false
	}
	return it.decode(0)
}

// SeekGE positions the iterator at the first entry whose user key is >=
// userKey (its newest version).
func (it *Iter) SeekGE(userKey []byte) bool {
	it.err = nil
	i := it.r.searchIndex(userKey, searchTrailer)
	if !it.loadBlock(i) {
		return false
	}
	key, val, off, next, st := it.v.seekGE(it.key, userKey, searchTrailer)
	it.key = key
	switch st {
	case seekBad:
		return it.corrupt(off, "malformed entry")
	case seekExhausted:
		// The block's separator is above its last key; the answer is the
		// first entry of the next block.
		if !it.loadBlock(i + 1) {
			return false
		}
		return it.decode(0)
	}
	it.off, it.next, it.val = off, next, val
	return it.setKey()
}

// Next moves to the next entry.
func (it *Iter) Next() bool {
	if !it.valid {
		return false
	}
	if it.next >= it.v.entriesEnd {
		if !it.loadBlock(it.bi + 1) {
			return false
		}
		return it.decode(0)
	}
	return it.decode(it.next)
}

// Valid reports whether the iterator is at an entry.
func (it *Iter) Valid() bool { return it.valid }

// Key returns the current entry's key. Its UserKey is valid until the next
// positioning call and must not be modified.
func (it *Iter) Key() base.InternalKey { return it.ikey }

// Value returns the current entry's value, valid until the next positioning
// call; it must not be modified.
func (it *Iter) Value() []byte { return it.val }

// Error returns the error that made the iterator invalid, if any: an error
// wrapping ErrCorrupt for damage, or an I/O error.
func (it *Iter) Error() error { return it.err }

// Close releases the iterator and returns Error. The Iter must not be used
// afterwards.
func (it *Iter) Close() error {
	err := it.err
	*it = Iter{}
	return err
}

// loadBlock makes block i current; it reports false (invalid, with it.err set
// on failure) if there is no such block.
func (it *Iter) loadBlock(i int) bool {
	it.valid = false
	it.val = nil
	if i >= len(it.r.index) {
		it.bi = len(it.r.index)
		return false
	}
	var b []byte
	var err error
	if it.scan {
		b, err = it.scanBlock(i)
	} else {
		b, err = it.r.dataBlock(i, &it.buf)
	}
	if err != nil {
		it.err = err
		return false
	}
	it.bi, it.v = i, viewBlock(b)
	it.key = it.key[:0]
	return true
}

// scanBlock returns block i from the cache or the readahead buffer,
// refilling the buffer from the block's offset when needed.
func (it *Iter) scanBlock(i int) ([]byte, error) {
	r := it.r
	h := r.index[i].h
	if r.cache != nil {
		if b := r.cache.get(r.fileNum, h.off); b != nil {
			return b, nil
		}
	}
	if h.off < it.raOff || h.end() > it.raOff+uint64(len(it.ra)) {
		// Refill: at least the block, at most the readahead size, never
		// past the data blocks.
		dataEnd := r.index[len(r.index)-1].h.end()
		n := max(h.n+blockTrailerLen, min(scanReadaheadBytes, dataEnd-h.off))
		if uint64(cap(it.ra)) < n {
			it.ra = make([]byte, n)
		}
		it.ra = it.ra[:n]
		if err := r.readAt(it.ra, int64(h.off)); err != nil {
			it.ra = it.ra[:0]
			return nil, err
		}
		it.raOff = h.off
	}
	raw := it.ra[h.off-it.raOff : h.end()-it.raOff]
	b, err := r.verifyBlock(h, raw)
	if err != nil {
		return nil, err
	}
	if !checkBlock(b) {
		return nil, corruptf(r.fileNum, int64(h.off), "malformed data block")
	}
	return b, nil
}

// decode makes the entry at off (in the current block) current.
func (it *Iter) decode(off int) bool {
	key, val, next, ok := it.v.decodeEntry(off, it.key)
	it.key = key
	if !ok {
		return it.corrupt(off, "malformed entry")
	}
	it.off, it.next, it.val = off, next, val
	return it.setKey()
}

// setKey decodes it.key into it.ikey and validates the kind.
func (it *Iter) setKey() bool {
	n := len(it.key) - trailerLen
	seq, kind := base.DecodeTrailer(binary.LittleEndian.Uint64(it.key[n:]))
	if kind > base.KindMax {
		return it.corrupt(it.off, "invalid kind %d", kind)
	}
	it.ikey = base.InternalKey{UserKey: it.key[:n:n], Seq: seq, Kind: kind}
	it.valid = true
	return true
}

func (it *Iter) corrupt(off int, format string, args ...any) bool {
	it.valid = false
	it.val = nil
	it.err = corruptf(it.r.fileNum, int64(it.r.index[it.bi].h.off)+int64(off), format, args...)
	return false
}
