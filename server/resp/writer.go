package resp

import (
	"io"
	"strconv"
	"strings"
)

// writerBytesKeep is the reply buffer a Writer keeps after a flush; a
// larger one (a big reply) is dropped so that idle connections stay small.
const writerBytesKeep = 1 << 20

// Writer buffers RESP2 replies for one connection. Replies reach the
// connection only on Flush. It is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	b   []byte
	err error
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Buffered is the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return len(w.b) }

// Bytes returns the unflushed replies (aliasing the buffer).
func (w *Writer) Bytes() []byte { return w.b }

// Flush writes the buffered replies. After a write error every later
// Flush returns it.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.b) == 0 {
		return nil
	}
	_, w.err = w.w.Write(w.b)
	if cap(w.b) > writerBytesKeep || w.err != nil {
		w.b = nil
	} else {
		w.b = w.b[:0]
	}
	return w.err
}

// WriteString writes a simple string; CR and LF become spaces.
func (w *Writer) WriteString(s string) {
	w.b = append(w.b, '+')
	w.b = appendLine(w.b, s)
}

// WriteError writes an error reply ("ERR ..." without the dash); CR and LF
// become spaces.
func (w *Writer) WriteError(s string) {
	w.b = append(w.b, '-')
	w.b = appendLine(w.b, s)
}

// WriteInt64 writes an integer reply.
func (w *Writer) WriteInt64(n int64) {
	w.b = append(w.b, ':')
	w.b = strconv.AppendInt(w.b, n, 10)
	w.b = append(w.b, '\r', '\n')
}

// WriteArray writes an array header of n elements.
func (w *Writer) WriteArray(n int) {
	w.b = append(w.b, '*')
	w.b = strconv.AppendInt(w.b, int64(n), 10)
	w.b = append(w.b, '\r', '\n')
}

// WriteBulk writes a bulk string.
func (w *Writer) WriteBulk(v []byte) {
	w.b = append(w.b, '$')
	w.b = strconv.AppendInt(w.b, int64(len(v)), 10)
	w.b = append(w.b, '\r', '\n')
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
}

// WriteBulkString writes a bulk string.
func (w *Writer) WriteBulkString(v string) {
	w.b = append(w.b, '$')
	w.b = strconv.AppendInt(w.b, int64(len(v)), 10)
	w.b = append(w.b, '\r', '\n')
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
}

// WriteNull writes the RESP2 null bulk string.
func (w *Writer) WriteNull() { w.b = append(w.b, "$-1\r\n"...) }

// WriteRaw writes already-encoded RESP.
func (w *Writer) WriteRaw(v []byte) { w.b = append(w.b, v...) }

func appendLine(b []byte, s string) []byte {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	b = append(b, s...)
	return append(b, '\r', '\n')
}
