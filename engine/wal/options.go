package wal

import (
	"errors"
	"fmt"
	"strings"
)

// Bounds checked by WriterOptions.Validate.
const (
	bufferBytesMin = 64
	bufferBytesMax = 64 << 20
)

// WriterOptions configures a Writer.
type WriterOptions struct {
	// BufferBytes is the size of the Writer's buffer. Records are copied
	// into it and written to the file when it fills or on Flush/Sync; a
	// record that does not fit in an empty buffer is written directly.
	BufferBytes int
	// MaxRecordBytes is the largest payload Append accepts; at most the
	// package constant MaxRecordBytes, which is also the default.
	MaxRecordBytes int
}

// DefaultWriterOptions returns a 256 KiB buffer and the largest allowed
// record size.
func DefaultWriterOptions() WriterOptions {
	return WriterOptions{BufferBytes: 256 << 10, MaxRecordBytes: MaxRecordBytes}
}

// Validate reports every out-of-range option at once.
func (o WriterOptions) Validate() error {
	var problems []string
	if o.BufferBytes < bufferBytesMin || o.BufferBytes > bufferBytesMax {
		problems = append(problems, fmt.Sprintf("BufferBytes (%d) must be between %d and %d", o.BufferBytes, bufferBytesMin, bufferBytesMax))
	}
	if o.MaxRecordBytes < 1 || o.MaxRecordBytes > MaxRecordBytes {
		problems = append(problems, fmt.Sprintf("MaxRecordBytes (%d) must be between 1 and %d", o.MaxRecordBytes, MaxRecordBytes))
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New("wal: invalid writer options: " + strings.Join(problems, "; "))
}
