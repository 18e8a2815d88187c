package wal

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error that reports damage found in a WAL
// file: a file header that does not belong to the expected log, or a record
// whose checksum or length is wrong while an intact record follows it (see
// the package documentation for the torn-tail rule). Such errors are
// *CorruptError values, which carry the offset of the damage.
var ErrCorrupt = errors.New("wal: corrupt log")

// ErrRecordTooLarge is returned (wrapped) by Writer.Append and Writer.AppendV
// for a payload longer than the writer's MaxRecordBytes. Nothing is written
// and the Writer stays usable.
var ErrRecordTooLarge = errors.New("wal: record too large")

// ErrClosed is returned (wrapped) by every Writer method called after Close.
var ErrClosed = errors.New("wal: writer closed")

// CorruptError describes damage found by a Reader. It wraps ErrCorrupt.
type CorruptError struct {
	// LogNum is the log number the reader expected.
	LogNum uint64
	// Offset is the file offset of the damaged record (the start of its
	// header), or 0 when the file header is damaged.
	Offset int64
	// Reason says what is wrong, with the numbers involved.
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Offset < FileHeaderLen {
		return fmt.Sprintf("wal %06d: %s", e.LogNum, e.Reason)
	}
	return fmt.Sprintf("wal %06d: offset %d: %s", e.LogNum, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt, so errors.Is(err, ErrCorrupt) holds.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corruptf(logNum uint64, off int64, format string, args ...any) error {
	return &CorruptError{LogNum: logNum, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
