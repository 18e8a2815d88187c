package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/vfs"
)

// indexEntry locates one data block. The block's separator key is
// Reader.indexKeys[keyOff:keyEnd]: every key in the block is <= it and every
// key in later blocks is > it.
type indexEntry struct {
	keyOff, keyEnd uint32
	h              handle
}

// Reader reads one segment file. Its index, bloom filter and properties are
// loaded by Open and kept in memory; data blocks are read on demand through
// the BlockCache.
//
// Get, MayContain, NewIter and the accessors are safe for concurrent use;
// each Iter is used by one goroutine at a time. Close must not run
// concurrently with other calls, nor before every Iter is closed.
type Reader struct {
	f       vfs.File
	fileNum uint64
	size    int64
	cache   *BlockCache // nil: no caching

	index     []indexEntry
	indexKeys []byte
	// The separators' user keys all start with indexCommon; indexPrefix[i]
	// holds the next 8 bytes of separator i (big-endian, zero-padded), so
	// the index binary search mostly compares integers in a dense array
	// and reads a full separator only on a tie.
	indexCommon []byte
	indexPrefix []uint64
	filter      *bloom // nil: no filter
	props       Props
}

// Open reads the footer, index, filter and properties of the segment in f and
// returns a Reader. fileNum names the file in errors and keys its blocks in
// cache (which may be nil to cache nothing). Open takes ownership of f: the
// Reader's Close closes it, and Open closes it before returning an error.
// Damage yields an error wrapping ErrCorrupt (and ErrNotSegment if the magic
// is wrong).
func Open(f vfs.File, fileNum uint64, cache *BlockCache) (*Reader, error) {
	r, err := open(f, fileNum, cache)
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return r, nil
}

func open(f vfs.File, fileNum uint64, cache *BlockCache) (*Reader, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("segment %06d: size: %w", fileNum, err)
	}
	r := &Reader{f: f, fileNum: fileNum, size: size, cache: cache}
	if size < footerLen {
		return nil, fmt.Errorf("%w (%w)", corruptf(fileNum, 0, "file of %d bytes is shorter than the footer", size), ErrNotSegment)
	}
	var fb [footerLen]byte
	if err := r.readAt(fb[:], size-footerLen); err != nil {
		return nil, err
	}
	ft, magicOK, crcOK := decodeFooter(fb[:])
	switch {
	case !magicOK:
		return nil, fmt.Errorf("%w (%w)", corruptf(fileNum, size-footerLen, "bad magic %q", fb[footerLen-len(magic):]), ErrNotSegment)
	case !crcOK:
		return nil, corruptf(fileNum, size-footerLen, "footer checksum mismatch")
	case ft.version != formatVersion:
		return nil, corruptf(fileNum, size-footerLen, "unsupported format version %d", ft.version)
	}
	// The blocks must tile the file exactly: data blocks, the optional
	// filter, index, props, footer. Every length is bounded by the file size
	// before anything is allocated.
	fsize := uint64(size)
	dataEnd := ft.filter.off
	if dataEnd > fsize {
		return nil, corruptf(fileNum, size-footerLen, "filter offset %d beyond file size", dataEnd)
	}
	next := dataEnd
	if ft.filter.n > 0 {
		if ft.filter.n > fsize || ft.filter.end() > fsize {
			return nil, corruptf(fileNum, size-footerLen, "filter block (%d, %d) beyond file size", ft.filter.off, ft.filter.n)
		}
		next = ft.filter.end()
	}
	if ft.index.off != next || ft.index.n > fsize || ft.index.end() > fsize {
		return nil, corruptf(fileNum, size-footerLen, "index block (%d, %d) misplaced", ft.index.off, ft.index.n)
	}
	if ft.props.off != ft.index.end() || ft.props.n > fsize || ft.props.end() != fsize-footerLen {
		return nil, corruptf(fileNum, size-footerLen, "properties block (%d, %d) misplaced", ft.props.off, ft.props.n)
	}

	pb, err := r.readBlock(ft.props, nil)
	if err != nil {
		return nil, err
	}
	props, ok := decodeProps(pb)
	if !ok {
		return nil, corruptf(fileNum, int64(ft.props.off), "malformed properties block")
	}
	filterBytes := uint64(0)
	if ft.filter.n > 0 {
		filterBytes = ft.filter.n + blockTrailerLen
	}
	if props.FilterBytes != filterBytes || props.IndexBytes != ft.index.n+blockTrailerLen {
		return nil, corruptf(fileNum, int64(ft.props.off), "properties (filter %d bytes, index %d bytes) disagree with footer", props.FilterBytes, props.IndexBytes)
	}
	props.FileBytes = fsize
	r.props = props

	if ft.filter.n > 0 {
		fb, err := r.readBlock(ft.filter, nil)
		if err != nil {
			return nil, err
		}
		bf, ok := decodeBloom(fb)
		if !ok {
			return nil, corruptf(fileNum, int64(ft.filter.off), "malformed filter block")
		}
		r.filter = &bf
	}

	ib, err := r.readBlock(ft.index, nil)
	if err != nil {
		return nil, err
	}
	if err := r.decodeIndex(ib, ft.index.off, dataEnd); err != nil {
		return nil, err
	}
	if uint64(len(r.index)) != props.DataBlocks || dataEnd != props.DataBytes {
		return nil, corruptf(fileNum, int64(ft.props.off), "properties (%d blocks, %d bytes) disagree with index (%d blocks, %d bytes)",
			props.DataBlocks, props.DataBytes, len(r.index), dataEnd)
	}
	return r, nil
}

// decodeIndex parses the index block b (at file offset off). The data blocks
// must tile [0, dataEnd) in order and the separators must increase.
func (r *Reader) decodeIndex(b []byte, off, dataEnd uint64) error {
	bad := func(what string) error { return corruptf(r.fileNum, int64(off), "index block: %s", what) }
	count, n := binary.Uvarint(b)
	// An entry takes at least 1+trailerLen+1+1 bytes: bound count before
	// allocating.
	if n <= 0 || count > uint64(len(b))/(trailerLen+3) {
		return bad("bad entry count")
	}
	p := n
	r.index = make([]indexEntry, 0, count)
	r.indexKeys = make([]byte, 0, len(b))
	var blockEnd uint64
	for i := uint64(0); i < count; i++ {
		klen, n := binary.Uvarint(b[p:])
		if n <= 0 || klen < trailerLen || klen > uint64(len(b)-p-n) {
			return bad(fmt.Sprintf("entry %d: bad key length", i))
		}
		p += n
		key := b[p : p+int(klen)]
		p += int(klen)
		boff, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return bad(fmt.Sprintf("entry %d: bad block offset", i))
		}
		p += n
		blen, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return bad(fmt.Sprintf("entry %d: bad block length", i))
		}
		p += n
		h := handle{off: boff, n: blen}
		if boff != blockEnd || blen > dataEnd || h.end() > dataEnd {
			return bad(fmt.Sprintf("entry %d: block (%d, %d) does not follow the previous block at %d", i, boff, blen, blockEnd))
		}
		blockEnd = h.end()
		if len(r.index) > 0 {
			last := r.index[len(r.index)-1]
			if compareEncoded(r.indexKeys[last.keyOff:last.keyEnd], key) >= 0 {
				return bad(fmt.Sprintf("entry %d: separators out of order", i))
			}
		}
		start := len(r.indexKeys)
		r.indexKeys = append(r.indexKeys, key...)
		r.index = append(r.index, indexEntry{keyOff: uint32(start), keyEnd: uint32(len(r.indexKeys)), h: h})
	}
	if p != len(b) || blockEnd != dataEnd {
		return bad("trailing bytes or data blocks not covered")
	}
	if len(r.index) == 0 {
		return nil
	}
	first, last := r.separatorUserKey(0), r.separatorUserKey(len(r.index)-1)
	common := 0
	for common < len(first) && common < len(last) && first[common] == last[common] {
		common++
	}
	r.indexCommon = first[:common:common]
	r.indexPrefix = make([]uint64, len(r.index))
	for i := range r.index {
		r.indexPrefix[i] = prefix64(r.separatorUserKey(i)[common:])
	}
	return nil
}

// separatorUserKey returns the user key of index entry i's separator.
func (r *Reader) separatorUserKey(i int) []byte {
	e := &r.index[i]
	return r.indexKeys[e.keyOff : e.keyEnd-trailerLen]
}

// prefix64 returns the first 8 bytes of b as a big-endian integer, padding a
// shorter b with zeros. If prefix64(a) < prefix64(b) then a < b.
func prefix64(b []byte) uint64 {
	if len(b) >= 8 {
		return binary.BigEndian.Uint64(b)
	}
	var v uint64
	for i := range 8 {
		v <<= 8
		if i < len(b) {
			v |= uint64(b[i])
		}
	}
	return v
}

// readAt fills b from offset off; a short read is corruption (the file is
// shorter than its structure says).
func (r *Reader) readAt(b []byte, off int64) error {
	n, err := r.f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf(r.fileNum, off, "short read (%d of %d bytes)", n, len(b))
	}
	return fmt.Errorf("segment %06d: read at %d: %w", r.fileNum, off, err)
}

// readBlock reads the block at h from the file into buf (grown if needed)
// and verifies its checksum and type. It returns the block contents.
func (r *Reader) readBlock(h handle, buf []byte) ([]byte, error) {
	n := int(h.n) + blockTrailerLen
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if err := r.readAt(buf, int64(h.off)); err != nil {
		return nil, err
	}
	return r.verifyBlock(h, buf)
}

// verifyBlock verifies the checksum and type of raw, the bytes of the block
// at h including its trailer, and returns the block contents.
func (r *Reader) verifyBlock(h handle, raw []byte) ([]byte, error) {
	contents, typ := raw[:h.n:h.n], raw[h.n]
	if binary.LittleEndian.Uint32(raw[h.n+1:]) != blockChecksum(raw[:h.n+1]) {
		return nil, corruptf(r.fileNum, int64(h.off), "block checksum mismatch")
	}
	if typ != compressionNone {
		return nil, corruptf(r.fileNum, int64(h.off), "unknown compression type %d", typ)
	}
	return contents, nil
}

// readDataBlock reads data block i from the file into buf and validates its
// structure.
func (r *Reader) readDataBlock(i int, buf []byte) ([]byte, error) {
	h := r.index[i].h
	b, err := r.readBlock(h, buf)
	if err != nil {
		return nil, err
	}
	if !checkBlock(b) {
		return nil, corruptf(r.fileNum, int64(h.off), "malformed data block")
	}
	return b, nil
}

// dataBlock returns data block i through the cache. The result is shared and
// must not be modified. Without a cache the block is read into *buf (grown
// as needed), so the caller may reuse *buf once done with the result; buf may
// be nil to allocate.
func (r *Reader) dataBlock(i int, buf *[]byte) ([]byte, error) {
	if r.cache == nil {
		if buf == nil {
			return r.readDataBlock(i, nil)
		}
		if n := int(r.index[i].h.n) + blockTrailerLen; cap(*buf) < n {
			*buf = make([]byte, n)
		}
		return r.readDataBlock(i, *buf)
	}
	off := r.index[i].h.off
	if b := r.cache.get(r.fileNum, off); b != nil {
		return b, nil
	}
	b, err := r.readDataBlock(i, nil)
	if err != nil {
		return nil, err
	}
	return r.cache.insert(r.fileNum, off, b), nil
}

// searchIndex returns the first block whose separator is >= (userKey,
// trailer), or len(r.index).
func (r *Reader) searchIndex(userKey []byte, trailer uint64) int {
	lo, hi := 0, len(r.index)
	if hi == 0 {
		return 0
	}
	common := r.indexCommon
	if len(userKey) < len(common) || !bytes.Equal(userKey[:len(common)], common) {
		// userKey does not start with the prefix every separator has, so
		// it sorts before all of them or after all of them.
		if bytes.Compare(userKey, common) < 0 {
			return 0
		}
		return hi
	}
	want := prefix64(userKey[len(common):])
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		var c int
		switch p := r.indexPrefix[mid]; {
		case p < want:
			c = -1
		case p > want:
			c = 1
		default:
			e := &r.index[mid]
			c = compareSearch(r.indexKeys[e.keyOff:e.keyEnd], userKey, trailer)
		}
		if c < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// blockBufs recycles block buffers for Gets on a Reader without a cache.
var blockBufs = sync.Pool{New: func() any { return new([]byte) }}

// pooledBlockBytesMax bounds the buffers kept in blockBufs.
const pooledBlockBytesMax = 256 << 10

// keyScratchBytes is the stack buffer Get rebuilds keys in; longer keys
// spill to the heap.
const keyScratchBytes = 128

// Get returns the newest entry for userKey whose seq is <= seq. found is
// false if the file has none. A tombstone is returned as found with kind
// base.KindDelete, so the caller can stop looking in older files.
//
// The value must not be modified. It stays valid indefinitely (it aliases an
// immutable cached block, or is a private copy when the Reader has no cache),
// but holding it keeps its whole block in memory; copy it to retain it long.
// A cache hit does not allocate.
func (r *Reader) Get(userKey []byte, seq uint64) (value []byte, kind base.Kind, found bool, err error) {
	k, value, found, err := r.Lookup(userKey, seq)
	return value, k.Kind, found, err
}

// Lookup is Get that also reports the entry's seq: key is the entry's
// internal key, with UserKey set to the userKey argument (not copied). The
// value follows Get's rules.
func (r *Reader) Lookup(userKey []byte, seq uint64) (key base.InternalKey, value []byte, found bool, err error) {
	if r.filter != nil && !r.filter.mayContain(hash64(userKey)) {
		return base.InternalKey{}, nil, false, nil
	}
	seq = min(seq, base.SeqMax)
	trailer := seq<<8 | 0xff
	i := r.searchIndex(userKey, trailer)
	if i == len(r.index) {
		return base.InternalKey{}, nil, false, nil
	}
	var bufp *[]byte
	if r.cache == nil {
		bufp = blockBufs.Get().(*[]byte)
		defer func() {
			if cap(*bufp) <= pooledBlockBytesMax {
				blockBufs.Put(bufp)
			}
		}()
	}
	b, err := r.dataBlock(i, bufp)
	if err != nil {
		return base.InternalKey{}, nil, false, err
	}
	v := viewBlock(b)
	var scratch [keyScratchBytes]byte
	ek, val, off, _, st := v.seekGE(scratch[:0], userKey, trailer)
	switch st {
	case seekBad:
		return base.InternalKey{}, nil, false, corruptf(r.fileNum, int64(r.index[i].h.off)+int64(off), "malformed entry")
	case seekExhausted:
		// The separator of block i is >= the search key but the block's
		// keys are not: the separator is a user key absent from the file,
		// so no version of userKey exists.
		return base.InternalKey{}, nil, false, nil
	}
	n := len(ek) - trailerLen
	if !bytes.Equal(ek[:n], userKey) {
		return base.InternalKey{}, nil, false, nil
	}
	eseq, kind := base.DecodeTrailer(binary.LittleEndian.Uint64(ek[n:]))
	if kind > base.KindMax {
		return base.InternalKey{}, nil, false, corruptf(r.fileNum, int64(r.index[i].h.off)+int64(off), "invalid kind %d", kind)
	}
	if bufp != nil {
		val = append([]byte(nil), val...)
	}
	return base.InternalKey{UserKey: userKey, Seq: eseq, Kind: kind}, val, true, nil
}

// MayContain reports whether the file may hold an entry for userKey. False
// is certain; true may be a false positive (about 1% at 10 bits per key). A
// file without a filter always reports true.
func (r *Reader) MayContain(userKey []byte) bool {
	return r.filter == nil || r.filter.mayContain(hash64(userKey))
}

// Props returns the file's properties. The caller must not modify the
// returned keys.
func (r *Reader) Props() Props { return r.props }

// FileNum returns the file number given to Open.
func (r *Reader) FileNum() uint64 { return r.fileNum }

// Size returns the file size in bytes.
func (r *Reader) Size() int64 { return r.size }

// Close closes the file. Blocks already cached stay in the BlockCache (the
// file may be reopened); call BlockCache.Evict when the file is deleted.
func (r *Reader) Close() error {
	return r.f.Close()
}
