package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/vfs"
)

// writeBufferBytes is how much encoded output a Writer gathers before it
// issues a File.Write.
const writeBufferBytes = 256 << 10

// Props are the totals of a segment, recorded in its properties block and
// returned by Writer.Finish and Reader.Props.
type Props struct {
	// Entries counts every entry, tombstones included.
	Entries uint64
	// Tombstones counts the KindDelete entries.
	Tombstones uint64
	// RawKeyBytes is the sum of the user key lengths of all entries.
	RawKeyBytes uint64
	// RawValueBytes is the sum of the value lengths of all entries.
	RawValueBytes uint64
	// Smallest and Largest are the first and last internal keys of the file
	// (zero when Entries is 0). Their UserKey is the user-key range.
	Smallest, Largest base.InternalKey
	// MinSeq and MaxSeq bound the sequence numbers of all entries (zero when
	// Entries is 0).
	MinSeq, MaxSeq uint64
	// DataBytes is the size of all data blocks including their trailers.
	DataBytes uint64
	// DataBlocks is the number of data blocks.
	DataBlocks uint64
	// IndexBytes and FilterBytes are the sizes of the index and filter
	// blocks (FilterBytes is 0 when the file has no filter).
	IndexBytes, FilterBytes uint64
	// FileBytes is the size of the whole file. It is not stored in the
	// properties block: Finish and Open fill it in.
	FileBytes uint64
}

// Writer writes one segment file. Keys must be added in strictly increasing
// base.Compare order. A Writer is not safe for concurrent use.
type Writer struct {
	f    vfs.File
	opts WriterOptions
	err  error // sticky: the first write error, or invalid options

	off int64  // file offset of the first byte in out
	out []byte // encoded bytes not yet written to f

	block   blockBuilder
	lastKey []byte // encoded last key added; nil before the first Add
	scratch []byte // encoding of the key being added

	// pendingBlock is the handle of the last finished data block, whose
	// index entry waits for the next key so it can use a short separator.
	pendingBlock   handle
	pendingIndex   bool
	index          []byte // encoded index entries
	indexCount     int
	separatorBytes []byte

	hashes []uint64 // bloom hashes of the distinct user keys
	props  Props
	done   bool
}

// NewWriter returns a Writer that writes a segment to f and takes ownership
// of f: Finish or Abort closes it. If opts is invalid, every Add and Finish
// returns the Validate error (Finish still closes f).
func NewWriter(f vfs.File, opts WriterOptions) *Writer {
	w := &Writer{f: f, opts: opts, err: opts.Validate()}
	w.block.interval = opts.RestartInterval
	return w
}

// Add appends an entry. The key must be strictly greater than the previous
// one in base.Compare order (else an error wrapping ErrOutOfOrder), have a
// valid kind and a seq of at most base.SeqMax, and the key and value must fit
// KeyBytesMax and ValueBytesMax. A rejected entry leaves the Writer as it
// was; a write error is sticky. Add does not retain key or value.
func (w *Writer) Add(k base.InternalKey, value []byte) error {
	switch {
	case w.done:
		return fmt.Errorf("segment: add after finish or abort: %w", ErrClosed)
	case w.err != nil:
		return w.err
	case k.Kind > base.KindMax:
		return fmt.Errorf("segment: add %s: invalid kind", k)
	case k.Seq > base.SeqMax:
		return fmt.Errorf("segment: add %s: seq above SeqMax", k)
	case len(k.UserKey) > KeyBytesMax:
		return fmt.Errorf("segment: add: user key of %d bytes exceeds KeyBytesMax (%d)", len(k.UserKey), KeyBytesMax)
	case len(value) > ValueBytesMax:
		return fmt.Errorf("segment: add %s: value of %d bytes exceeds ValueBytesMax (%d)", k, len(value), ValueBytesMax)
	}
	w.scratch = k.AppendEncoded(w.scratch[:0])
	if w.lastKey != nil && compareEncoded(w.lastKey, w.scratch) >= 0 {
		last, _ := base.DecodeInternalKey(w.lastKey)
		return fmt.Errorf("segment: add %s after %s: %w", k, last, ErrOutOfOrder)
	}

	if !w.block.empty() && w.block.size() >= w.opts.BlockSize {
		if err := w.flushBlock(); err != nil {
			return err
		}
	}
	if w.pendingIndex {
		w.separatorBytes = separator(w.separatorBytes[:0], w.lastKey, w.scratch)
		w.addIndexEntry(w.separatorBytes)
	}
	if w.opts.BloomBitsPerKey > 0 && (w.lastKey == nil || !bytes.Equal(w.lastKey[:len(w.lastKey)-trailerLen], k.UserKey)) {
		w.hashes = append(w.hashes, hash64(k.UserKey))
	}
	w.block.add(w.lastKey, w.scratch, value)

	p := &w.props
	if p.Entries == 0 {
		p.Smallest = base.InternalKey{UserKey: bytes.Clone(k.UserKey), Seq: k.Seq, Kind: k.Kind}
		p.MinSeq, p.MaxSeq = k.Seq, k.Seq
	}
	p.Entries++
	if k.Kind == base.KindDelete {
		p.Tombstones++
	}
	p.RawKeyBytes += uint64(len(k.UserKey))
	p.RawValueBytes += uint64(len(value))
	p.MinSeq = min(p.MinSeq, k.Seq)
	p.MaxSeq = max(p.MaxSeq, k.Seq)

	if w.lastKey == nil {
		w.lastKey = make([]byte, 0, len(w.scratch))
	}
	w.lastKey, w.scratch = w.scratch, w.lastKey
	return nil
}

// EstimatedSize is the size the file would have if Finish were called now,
// give or take the current block's trailer and the footer.
func (w *Writer) EstimatedSize() int64 {
	filter := len(w.hashes) * w.opts.BloomBitsPerKey / 8
	return w.off + int64(len(w.out)+w.block.size()+len(w.index)+filter)
}

// flushBlock writes the current data block and leaves its index entry
// pending.
func (w *Writer) flushBlock() error {
	contents := w.block.finish()
	if invariants && !checkBlock(contents) {
		panic("segment: writer built a malformed block")
	}
	h, err := w.writeBlock(contents)
	w.block.reset()
	if err != nil {
		return err
	}
	w.pendingBlock, w.pendingIndex = h, true
	w.props.DataBlocks++
	w.props.DataBytes += h.n + blockTrailerLen
	return nil
}

func (w *Writer) addIndexEntry(sep []byte) {
	w.index = binary.AppendUvarint(w.index, uint64(len(sep)))
	w.index = append(w.index, sep...)
	w.index = binary.AppendUvarint(w.index, w.pendingBlock.off)
	w.index = binary.AppendUvarint(w.index, w.pendingBlock.n)
	w.indexCount++
	w.pendingIndex = false
}

// writeBlock appends contents and its trailer to the output.
func (w *Writer) writeBlock(contents []byte) (handle, error) {
	h := handle{off: uint64(w.off) + uint64(len(w.out)), n: uint64(len(contents))}
	start := len(w.out)
	w.out = append(w.out, contents...)
	w.out = append(w.out, compressionNone)
	w.out = binary.LittleEndian.AppendUint32(w.out, blockChecksum(w.out[start:]))
	if len(w.out) >= writeBufferBytes {
		return h, w.flushOut()
	}
	return h, nil
}

func (w *Writer) flushOut() error {
	if len(w.out) == 0 {
		return nil
	}
	n, err := w.f.Write(w.out)
	w.off += int64(n)
	if err == nil && n < len(w.out) {
		err = fmt.Errorf("segment: short write (%d of %d bytes)", n, len(w.out))
	}
	w.out = w.out[:0]
	if err != nil {
		w.err = fmt.Errorf("segment: write: %w", err)
	}
	return w.err
}

// Finish writes the last data block, the filter, index and properties blocks
// and the footer, syncs and closes the file, and returns the file's Props.
// On error the file is closed and its contents are garbage.
func (w *Writer) Finish() (Props, error) {
	if w.done {
		return Props{}, fmt.Errorf("segment: finish after finish or abort: %w", ErrClosed)
	}
	err := w.finish()
	w.done = true
	if err != nil {
		return Props{}, errors.Join(err, w.f.Close())
	}
	if err := w.f.Sync(); err != nil {
		return Props{}, errors.Join(fmt.Errorf("segment: sync: %w", err), w.f.Close())
	}
	if err := w.f.Close(); err != nil {
		return Props{}, fmt.Errorf("segment: close: %w", err)
	}
	return w.props, nil
}

func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	if !w.block.empty() {
		if err := w.flushBlock(); err != nil {
			return err
		}
	}
	if w.pendingIndex {
		w.separatorBytes = successor(w.separatorBytes[:0], w.lastKey)
		w.addIndexEntry(w.separatorBytes)
	}
	if w.lastKey != nil {
		last, _ := base.DecodeInternalKey(w.lastKey)
		last.UserKey = bytes.Clone(last.UserKey)
		w.props.Largest = last
	}

	var ft footer
	ft.version = formatVersion
	ft.filter.off = uint64(w.off) + uint64(len(w.out))
	if len(w.hashes) > 0 {
		var err error
		if ft.filter, err = w.writeBlock(buildBloom(w.hashes, w.opts.BloomBitsPerKey)); err != nil {
			return err
		}
		w.props.FilterBytes = ft.filter.n + blockTrailerLen
	}

	idx := binary.AppendUvarint(nil, uint64(w.indexCount))
	idx = append(idx, w.index...)
	var err error
	if ft.index, err = w.writeBlock(idx); err != nil {
		return err
	}
	w.props.IndexBytes = ft.index.n + blockTrailerLen

	if ft.props, err = w.writeBlock(encodeProps(&w.props)); err != nil {
		return err
	}
	w.out = append(w.out, ft.encode()...)
	w.props.FileBytes = uint64(w.off) + uint64(len(w.out))
	return w.flushOut()
}

// Abort closes the file without finishing it; the caller removes the file.
// It returns the error from closing the file.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.f.Close()
}

// propsVersion tags the encoding of the properties block.
const propsVersion = 1

// encodeProps encodes p as a version varint, then varints for the counters
// in field order, then Smallest and Largest as length-prefixed encoded
// internal keys (empty when p.Entries is 0).
func encodeProps(p *Props) []byte {
	b := binary.AppendUvarint(nil, propsVersion)
	for _, v := range [...]uint64{p.Entries, p.Tombstones, p.RawKeyBytes, p.RawValueBytes, p.MinSeq, p.MaxSeq, p.DataBytes, p.DataBlocks, p.IndexBytes, p.FilterBytes} {
		b = binary.AppendUvarint(b, v)
	}
	for _, k := range [...]base.InternalKey{p.Smallest, p.Largest} {
		if p.Entries == 0 {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(k.UserKey)+trailerLen))
		b = k.AppendEncoded(b)
	}
	return b
}

// decodeProps parses a properties block; ok is false if it is malformed.
func decodeProps(b []byte) (p Props, ok bool) {
	off := 0
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, false
		}
		off += n
		return v, true
	}
	if v, ok := next(); !ok || v != propsVersion {
		return Props{}, false
	}
	for _, dst := range [...]*uint64{&p.Entries, &p.Tombstones, &p.RawKeyBytes, &p.RawValueBytes, &p.MinSeq, &p.MaxSeq, &p.DataBytes, &p.DataBlocks, &p.IndexBytes, &p.FilterBytes} {
		v, ok := next()
		if !ok {
			return Props{}, false
		}
		*dst = v
	}
	for _, dst := range [...]*base.InternalKey{&p.Smallest, &p.Largest} {
		n, ok := next()
		if !ok || n > uint64(len(b)-off) {
			return Props{}, false
		}
		if n == 0 {
			if p.Entries != 0 {
				return Props{}, false
			}
			continue
		}
		k, ok := base.DecodeInternalKey(bytes.Clone(b[off : off+int(n)]))
		if !ok || k.Kind > base.KindMax {
			return Props{}, false
		}
		*dst = k
		off += int(n)
	}
	return p, off == len(b) && p.Tombstones <= p.Entries && p.MinSeq <= p.MaxSeq
}
