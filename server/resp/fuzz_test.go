package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
)

// chunkReader returns its data in chunks whose sizes cycle through sizes.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])%64 + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzReader feeds arbitrary bytes, whole and in arbitrary chunks, and
// checks: no panic; the same commands and the same final error either way;
// the buffer never exceeds RequestBytesMax nor twice the bytes received
// (beyond the initial buffer); every parsed multibulk request, encoded
// again, parses back to itself.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$9223372036854775800\r\n",
		"*9223372036854775807\r\n",
		"*-9223372036854775808\r\n",
		"*2\r\n$-1\r\n",
		"*1\r\n$18446744073709551616\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n",
		"*1048576\r\n$1\r\na\r\n",
		"*2\r\n$4\r\nAUTH\r\n$99999\r\n",
		"SET \"a\\x41\" 'b\\'c'\r\nPING\n",
		"*0\r\n*-1\r\n\r\n",
		"$5\r\nhello\r\n",
		"*1\r\n$0\r\n\r\n",
	} {
		f.Add([]byte(s), []byte{0, 5, 63}, false)
		f.Add([]byte(s), []byte(nil), true)
	}
	lim := DefaultLimits()
	lim.ArgsMax, lim.BulkBytesMax, lim.RequestBytesMax, lim.InlineBytesMax = 64, 1<<10, 4<<10, 256
	lim.UnauthArgsMax, lim.UnauthBulkBytesMax = 4, 64
	f.Fuzz(func(t *testing.T, data, sizes []byte, unauth bool) {
		whole, errWhole := parse(t, bytes.NewReader(data), lim, unauth)
		chunked, errChunked := parse(t, &chunkReader{data: data, sizes: sizes}, lim, unauth)
		if fmt.Sprint(whole) != fmt.Sprint(chunked) || errString(errWhole) != errString(errChunked) {
			t.Fatalf("whole: %q %v\nchunked: %q %v", whole, errWhole, chunked, errChunked)
		}
		for _, cmd := range whole {
			var enc []byte
			enc = append(enc, '*')
			enc = strconv.AppendInt(enc, int64(len(cmd)), 10)
			enc = append(enc, "\r\n"...)
			for _, a := range cmd {
				enc = append(enc, '$')
				enc = strconv.AppendInt(enc, int64(len(a)), 10)
				enc = append(enc, "\r\n"...)
				enc = append(enc, a...)
				enc = append(enc, "\r\n"...)
			}
			again, err := parse(t, bytes.NewReader(enc), lim, false)
			if err != nil && !errors.Is(err, ErrRequestTooLarge) {
				t.Fatalf("re-encoded %q: %v", cmd, err)
			}
			if err == nil && fmt.Sprint(again) != fmt.Sprint([][]string{cmd}) {
				t.Fatalf("re-encoded %q parsed as %q", cmd, again)
			}
		}
	})
}

func parse(t *testing.T, src io.Reader, lim Limits, unauth bool) ([][]string, error) {
	rd := NewReader(src, lim, nil, unauth)
	var out [][]string
	received := 0
	for i := 0; i < 1<<16; i++ {
		args, err := rd.Next()
		if err == ErrIncomplete {
			before := rd.Buffered()
			err = rd.Fill()
			received += rd.Buffered() - before
			if rd.BufferBytes() > max(bufBytesInit, lim.RequestBytesMax, 2*received) {
				t.Fatalf("buffer %d bytes after %d received", rd.BufferBytes(), received)
			}
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			continue
		}
		if err != nil {
			return out, err
		}
		cmd := make([]string, len(args))
		for j, a := range args {
			cmd[j] = string(a)
		}
		out = append(out, cmd)
	}
	t.Fatal("parse: too many iterations")
	return nil, nil
}
