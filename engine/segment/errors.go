package segment

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error that reports damage found in a
// segment file: a checksum mismatch, or a length, offset or count that is
// inconsistent with the file. The message names the file number and offset.
var ErrCorrupt = errors.New("segment: corrupt file")

// ErrNotSegment is wrapped by Open's error when the file does not end with
// the segment magic number. Such an error also wraps ErrCorrupt, since for
// the engine a file named as a segment without the magic is damaged.
var ErrNotSegment = errors.New("segment: not a segment file")

// ErrOutOfOrder is returned (wrapped) by Writer.Add when a key is not
// strictly greater, in base.Compare order, than the previous key.
var ErrOutOfOrder = errors.New("segment: key out of order")

// ErrClosed is returned (wrapped) when a finished or aborted Writer, or a
// closed TableCache, is used.
var ErrClosed = errors.New("segment: closed")

// corruptf returns an error wrapping ErrCorrupt that names the file and the
// offset of the damage.
func corruptf(fileNum uint64, off int64, format string, args ...any) error {
	return fmt.Errorf("segment %06d: offset %d: %s: %w", fileNum, off, fmt.Sprintf(format, args...), ErrCorrupt)
}
