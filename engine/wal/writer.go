package wal

import (
	"fmt"
	"io"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// Writer appends records to a new WAL file. Append only copies into a
// buffer; Flush writes the buffer to the file and Sync also makes it
// durable, so a caller doing group commit appends a group and then calls
// Sync once.
//
// After a failed write or sync the Writer is broken: the failing call and
// every later call return the same error, and nothing more is written, so a
// partly written record is never followed by another.
//
// A Writer is used by one goroutine at a time.
type Writer struct {
	f      vfs.File
	logNum uint64
	opts   WriterOptions
	// buf holds bytes appended but not yet written; cap(buf) is BufferBytes.
	buf []byte
	// written counts the bytes handed to f.Write successfully.
	written int64
	// err is sticky: once set, every method returns it.
	err error
	// hdr is scratch space for a record header that does not go straight
	// into buf (a field, so it does not escape to the heap per record).
	hdr [RecordHeaderLen]byte
}

// NewWriter starts log logNum in f, which must be empty: it writes the file
// header and syncs it, so that a log holding any record has a durable header
// (the Reader relies on this). Making the file's name durable (SyncDir) is
// the caller's job. On error f is left open for the caller to close.
func NewWriter(f vfs.File, logNum uint64, opts WriterOptions) (*Writer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal %06d: size: %w", logNum, err)
	}
	if size != 0 {
		return nil, fmt.Errorf("wal %06d: new writer needs an empty file, this one has %d bytes", logNum, size)
	}
	w := &Writer{f: f, logNum: logNum, opts: opts, buf: make([]byte, 0, opts.BufferBytes)}
	w.write(appendFileHeader(make([]byte, 0, FileHeaderLen), logNum))
	if err := w.Sync(); err != nil {
		return nil, err
	}
	return w, nil
}

// Append adds one record holding payload. It does not retain payload.
func (w *Writer) Append(payload []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(payload) > w.opts.MaxRecordBytes {
		return w.tooLarge(len(payload))
	}
	if n := len(w.buf); RecordHeaderLen+len(payload) <= cap(w.buf)-n {
		w.buf = w.buf[:n+RecordHeaderLen]
		putRecordHeader(w.buf[n:], len(payload), payload)
		w.buf = append(w.buf, payload...)
		return nil
	}
	putRecordHeader(w.hdr[:], len(payload), payload)
	w.write(w.hdr[:])
	w.write(payload)
	return w.err
}

// AppendV adds one record whose payload is the concatenation of parts, so a
// caller can frame a payload without copying it first. It does not retain
// parts.
func (w *Writer) AppendV(parts ...[]byte) error {
	if w.err != nil {
		return w.err
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > w.opts.MaxRecordBytes {
		return w.tooLarge(n)
	}
	putRecordHeader(w.hdr[:], n, parts...)
	w.write(w.hdr[:])
	for _, p := range parts {
		w.write(p)
	}
	return w.err
}

func (w *Writer) tooLarge(n int) error {
	return fmt.Errorf("wal %06d: payload of %d bytes, max is %d: %w", w.logNum, n, w.opts.MaxRecordBytes, ErrRecordTooLarge)
}

// Flush writes the buffered bytes to the file, without syncing.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.flush()
	}
	return w.err
}

// Sync flushes the buffer and syncs the file: when it returns nil, every
// record appended so far is durable.
func (w *Writer) Sync() error {
	if w.Flush() != nil {
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("wal %06d: sync at size %d (writer is unusable): %w", w.logNum, w.written, err)
	}
	return w.err
}

// Size returns the logical size of the log: bytes written to the file plus
// bytes still buffered.
func (w *Writer) Size() int64 { return w.written + int64(len(w.buf)) }

// Close syncs and closes the file. The file is closed even if the Writer is
// broken or the sync fails; the first error is returned. Later calls to any
// method return an error wrapping ErrClosed.
func (w *Writer) Close() error {
	if w.f == nil {
		return w.err
	}
	err := w.Sync()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("wal %06d: close: %w", w.logNum, cerr)
	}
	w.f = nil
	w.err = fmt.Errorf("wal %06d: %w", w.logNum, ErrClosed)
	return err
}

// write appends p to the buffer, writing the buffer out each time it
// fills. A p that does not fit in an empty buffer goes straight to the file.
func (w *Writer) write(p []byte) {
	for w.err == nil && len(p) > cap(w.buf)-len(w.buf) {
		if len(w.buf) == 0 {
			w.writeFile(p)
			return
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:cap(w.buf)]
		p = p[k:]
		w.flush()
	}
	if w.err == nil {
		w.buf = append(w.buf, p...)
	}
}

func (w *Writer) flush() {
	if len(w.buf) > 0 {
		w.writeFile(w.buf)
		w.buf = w.buf[:0]
	}
}

func (w *Writer) writeFile(p []byte) {
	n, err := w.f.Write(p)
	if n < 0 || n > len(p) {
		// A broken vfs.File; count nothing rather than trust n.
		n, err = 0, fmt.Errorf("write returned count %d for %d bytes", n, len(p))
	}
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	off := w.written
	w.written += int64(n)
	if err != nil {
		w.err = fmt.Errorf("wal %06d: write of %d bytes at offset %d wrote %d (writer is unusable): %w", w.logNum, len(p), off, n, err)
		return
	}
	if invariantsEnabled {
		if size, err := w.f.Size(); err == nil && size != w.written {
			panic(fmt.Sprintf("wal %06d: file size %d after writing %d bytes: the file was written by someone else", w.logNum, size, w.written))
		}
	}
}
