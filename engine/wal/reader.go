package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// readBufferBytes is the size of a Reader's read window; records larger
// than this get a window of their own size.
const readBufferBytes = 256 << 10

// Reader replays the records of one WAL file in order. It reads the file
// with ReadAt only (the file offset is not moved) and sees the file as it
// was at NewReader: data appended later is not read.
//
// A Reader is used by one goroutine at a time.
type Reader struct {
	f      vfs.File
	logNum uint64
	size   int64
	// off is the offset of the next record: the end of the last good one.
	off int64
	// buf holds the file bytes [bufOff, bufOff+len(buf)).
	buf    []byte
	bufOff int64
	torn   bool
	// why is the kind of torn tail when torn is set.
	why TornReason
	// err is sticky: io.EOF at the end, or the error that stopped reading.
	err error
}

// NewReader checks the file header of f against logNum and returns a Reader
// positioned at the first record.
//
// A file of at most FileHeaderLen bytes holds no record. If it is not
// exactly the expected header, it is what a crash inside NewWriter leaves:
// the Reader reports no records, Torn is true and ValidOffset is 0. A longer
// file must start with the expected header (NewWriter syncs it before any
// record can be written); if it does not, NewReader returns an error wrapping
// ErrCorrupt, unless the whole file is zero, which is treated as torn too.
func NewReader(f vfs.File, logNum uint64) (*Reader, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal %06d: size: %w", logNum, err)
	}
	r := &Reader{f: f, logNum: logNum, size: size, buf: make([]byte, 0, readBufferBytes)}
	h, err := r.bytesAt(0, int(min(size, FileHeaderLen)))
	if err != nil {
		return nil, err
	}
	want := appendFileHeader(make([]byte, 0, FileHeaderLen), logNum)
	if bytes.Equal(h, want) {
		r.off = FileHeaderLen
		return r, nil
	}
	if size <= FileHeaderLen {
		r.torn, r.why, r.err = true, TornFileHeader, io.EOF
		return r, nil
	}
	zero, err := r.zeroFrom(0)
	if err != nil {
		return nil, err
	}
	switch {
	case zero:
		r.torn, r.why, r.err = true, TornZeros, io.EOF
		return r, nil
	case string(h[:len(magicPrefix)]) != magicPrefix:
		return nil, corruptf(logNum, 0, "bad magic %q: not a WAL file", h[:len(magic)])
	case string(h[:len(magic)]) != magic:
		return nil, corruptf(logNum, 0, "format version %d, this build reads version %d", binary.BigEndian.Uint16(h[len(magicPrefix):]), formatVersion)
	default:
		return nil, corruptf(logNum, 0, "header says log %d", binary.LittleEndian.Uint64(h[len(magic):]))
	}
}

// Next returns the next record's payload. The payload is valid only until
// the next call to Next; copy it to keep it.
//
// At the end of the log Next returns io.EOF, also when the log ends in a
// torn tail (see Torn). When a damaged record is followed by an intact one,
// Next returns a *CorruptError (wrapping ErrCorrupt) at the damaged record's
// offset. Either way, later calls return the same error.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	p, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return p, nil
}

// Torn reports whether the log ended in a torn tail: bytes after
// ValidOffset that are not a whole good record and that a crash during a
// write can explain. It is meaningful once Next has returned io.EOF.
func (r *Reader) Torn() bool { return r.torn }

// ValidOffset returns the end of the last good record read so far: the end
// of the file header before the first record, or 0 if the header is torn.
// After Next returns io.EOF with Torn true, truncating the file to
// ValidOffset removes the torn tail; after a CorruptError it is the offset
// of the damaged record.
func (r *Reader) ValidOffset() int64 { return r.off }

// Size returns the file size the Reader saw at NewReader.
func (r *Reader) Size() int64 { return r.size }

func (r *Reader) next() ([]byte, error) {
	off := r.off
	switch rem := r.size - off; {
	case rem == 0:
		return nil, io.EOF
	case rem < RecordHeaderLen:
		// A header cut short by the end of the file.
		r.torn, r.why = true, TornRecordHeader
		return nil, io.EOF
	}
	h, err := r.bytesAt(off, RecordHeaderLen)
	if err != nil {
		return nil, err
	}
	n, ok := decodeLength(h)
	if !ok {
		// The length cannot be trusted, so neither can the record's end:
		// look for an intact record anywhere after the header's start.
		return nil, r.tornOrCorrupt(off, off+1, TornBadHeader, fmt.Sprintf("bad record header %x", h))
	}
	end := off + RecordHeaderLen + int64(n)
	if end > r.size {
		// A record cut short by the end of the file.
		r.torn, r.why = true, TornRecord
		return nil, io.EOF
	}
	rec, err := r.bytesAt(off, RecordHeaderLen+n)
	if err != nil {
		return nil, err
	}
	if !checksumOK(rec) {
		return nil, r.tornOrCorrupt(off, end, TornChecksum, fmt.Sprintf("checksum mismatch in record of %d bytes", n))
	}
	r.off = end
	return rec[RecordHeaderLen:], nil
}

// tornOrCorrupt classifies the damaged record at off: it is corrupt if an
// intact record starts at or after from, and a torn tail (of kind why)
// otherwise.
func (r *Reader) tornOrCorrupt(off, from int64, why TornReason, what string) error {
	at, err := r.findIntact(from)
	switch {
	case err != nil:
		return err
	case at == noIntact:
		r.torn, r.why = true, why
		return io.EOF
	case at == scanGaveUp:
		return corruptf(r.logNum, off, "%s; gave up looking for an intact record after it (checksummed %d bytes of candidates, file size %d)", what, scanBytesMax, r.size)
	default:
		return corruptf(r.logNum, off, "%s, but an intact record follows at offset %d (file size %d)", what, at, r.size)
	}
}

// Results of findIntact besides an offset.
const (
	noIntact   = -1
	scanGaveUp = -2
)

// scanBytesMax bounds the bytes findIntact checksums, so a file crafted to
// hold a plausible record header at every offset cannot make it quadratic.
// It is a variable only so that a test can lower it.
var scanBytesMax int64 = 256 << 20

// findIntact returns the offset of the first intact record (length check,
// end within the file, checksum) starting at or after from, noIntact if
// there is none, or scanGaveUp when the scan budget ran out.
func (r *Reader) findIntact(from int64) (int64, error) {
	budget := scanBytesMax
	for p := from; p+RecordHeaderLen <= r.size; {
		b, err := r.bytesAt(p, int(min(readBufferBytes, r.size-p)))
		if err != nil {
			return 0, err
		}
		next := p + int64(len(b)-RecordHeaderLen+1)
		for i := 0; i+RecordHeaderLen <= len(b); i++ {
			n, ok := decodeLength(b[i:])
			if !ok {
				continue
			}
			start := p + int64(i)
			if start+RecordHeaderLen+int64(n) > r.size {
				continue
			}
			if budget -= int64(RecordHeaderLen + n); budget < 0 {
				return scanGaveUp, nil
			}
			if i+RecordHeaderLen+n <= len(b) {
				if checksumOK(b[i : i+RecordHeaderLen+n]) {
					return start, nil
				}
				continue
			}
			// The candidate runs past the window: read it whole, which
			// replaces the window, and go on scanning after its start.
			rec, err := r.bytesAt(start, RecordHeaderLen+n)
			if err != nil {
				return 0, err
			}
			if checksumOK(rec) {
				return start, nil
			}
			next = start + 1
			break
		}
		p = next
	}
	return noIntact, nil
}

// zeroFrom reports whether the file bytes from off to the end are all zero.
// It reuses the read window.
func (r *Reader) zeroFrom(off int64) (bool, error) {
	for off < r.size {
		n := int(min(int64(cap(r.buf)), r.size-off))
		b, err := r.bytesAt(off, n)
		if err != nil {
			return false, err
		}
		if !isZero(b) {
			return false, nil
		}
		off += int64(n)
	}
	return true, nil
}

// bytesAt returns the n file bytes at off, which must end within the file
// size. The result is valid until the next call.
func (r *Reader) bytesAt(off int64, n int) ([]byte, error) {
	end := off + int64(n)
	if off >= r.bufOff && end <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff : end-r.bufOff], nil
	}
	// Keep the part of the window at or after off, then read the rest.
	var kept []byte
	if off >= r.bufOff && off < r.bufOff+int64(len(r.buf)) {
		kept = r.buf[off-r.bufOff:]
	}
	buf := r.buf
	if n > cap(buf) {
		buf = make([]byte, n)
	}
	k := copy(buf[:cap(buf)], kept)
	want := int(min(int64(cap(buf)), r.size-off))
	got, err := r.f.ReadAt(buf[k:want], off+int64(k))
	if got < want-k {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		r.buf, r.bufOff = buf[:0], 0
		return nil, fmt.Errorf("wal %06d: read %d bytes at offset %d: %w", r.logNum, want-k, off+int64(k), err)
	}
	r.buf, r.bufOff = buf[:want], off
	return r.buf[:n], nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Result summarizes a Recover.
type Result struct {
	// Records is the number of records passed to fn.
	Records int
	// ValidOffset is the end of the last good record; the file's size after
	// a successful Recover.
	ValidOffset int64
	// TruncatedBytes is the size of the torn tail that was cut off.
	TruncatedBytes int64
}

// Recover replays every record of f (log logNum) through fn, in order, then
// truncates a torn tail and syncs the file. fn's payload is valid only for
// the call; fn must copy what it keeps.
//
// If fn fails, or the log is corrupt, Recover stops, leaves the file as it
// is and returns the error with the Result so far (ValidOffset is then the
// end of the last good record).
func Recover(f vfs.File, logNum uint64, fn func(payload []byte) error) (Result, error) {
	res, _, err := RecoverAt(f, logNum, func(_ int64, p []byte) error { return fn(p) })
	return res, err
}

// RecoverAt is Recover, passing fn the file offset at which each record
// starts (its header) along with its payload, and also describing the torn
// tail it cut off (the zero Tail when the log ended cleanly). The Tail is
// computed before the file is truncated.
func RecoverAt(f vfs.File, logNum uint64, fn func(offset int64, payload []byte) error) (Result, Tail, error) {
	r, err := NewReader(f, logNum)
	if err != nil {
		return Result{}, Tail{}, err
	}
	var res Result
	for {
		start := r.ValidOffset()
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			res.ValidOffset = r.ValidOffset()
			return res, Tail{}, err
		}
		if err := fn(start, p); err != nil {
			res.ValidOffset = r.ValidOffset()
			return res, Tail{}, fmt.Errorf("wal %06d: record %d at offset %d: %w", logNum, res.Records, start, err)
		}
		res.Records++
	}
	res.ValidOffset = r.ValidOffset()
	if !r.Torn() {
		return res, Tail{}, nil
	}
	tail, err := r.Tail()
	if err != nil {
		return res, Tail{}, err
	}
	res.TruncatedBytes = r.Size() - res.ValidOffset
	if err := f.Truncate(res.ValidOffset); err != nil {
		return res, tail, fmt.Errorf("wal %06d: truncate torn tail at offset %d: %w", logNum, res.ValidOffset, err)
	}
	if err := f.Sync(); err != nil {
		return res, tail, fmt.Errorf("wal %06d: sync after truncating torn tail at offset %d: %w", logNum, res.ValidOffset, err)
	}
	return res, tail, nil
}
