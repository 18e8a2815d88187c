package segment

import (
	"errors"
	"fmt"
	"strings"
)

// Limits enforced by Writer.Add. They bound the memory a Reader allocates for
// one block (a block holds at least one entry, so a block is at most about
// KeyBytesMax+ValueBytesMax bytes).
const (
	// KeyBytesMax is the largest user key Writer.Add accepts.
	KeyBytesMax = 64 << 10
	// ValueBytesMax is the largest value Writer.Add accepts.
	ValueBytesMax = 1 << 30
)

// Bounds checked by WriterOptions.Validate.
const (
	blockSizeMin       = 64
	blockSizeMax       = 16 << 20
	restartIntervalMax = 1024
	bloomBitsPerKeyMax = 64
)

// DefaultTableCacheCapacity is the number of open readers a TableCache keeps
// when the engine has no reason to choose otherwise.
const DefaultTableCacheCapacity = 512

// WriterOptions configures a Writer.
type WriterOptions struct {
	// BlockSize is the target size in bytes of an uncompressed data block.
	// A block is cut at the first entry that takes it to BlockSize or more,
	// so blocks are slightly larger than this, and an entry larger than
	// BlockSize gets a block of its own.
	BlockSize int
	// BloomBitsPerKey is the size of the whole-file bloom filter in bits per
	// distinct user key. 10 gives a false-positive rate of about 1%. Zero
	// writes no filter (Reader.MayContain then always reports true).
	BloomBitsPerKey int
	// RestartInterval is the number of entries between restart points in a
	// data block: keys are prefix-compressed against the previous key, and
	// every RestartInterval-th key is stored whole so a lookup can binary
	// search the restart points.
	RestartInterval int
}

// DefaultWriterOptions returns 4 KiB blocks, 10 bloom bits per key and a
// restart point every 16 entries.
func DefaultWriterOptions() WriterOptions {
	return WriterOptions{BlockSize: 4096, BloomBitsPerKey: 10, RestartInterval: 16}
}

// Validate reports every out-of-range option at once.
func (o WriterOptions) Validate() error {
	var problems []string
	if o.BlockSize < blockSizeMin || o.BlockSize > blockSizeMax {
		problems = append(problems, fmt.Sprintf("BlockSize (%d) must be between %d and %d", o.BlockSize, blockSizeMin, blockSizeMax))
	}
	if o.BloomBitsPerKey < 0 || o.BloomBitsPerKey > bloomBitsPerKeyMax {
		problems = append(problems, fmt.Sprintf("BloomBitsPerKey (%d) must be between 0 and %d", o.BloomBitsPerKey, bloomBitsPerKeyMax))
	}
	if o.RestartInterval < 1 || o.RestartInterval > restartIntervalMax {
		problems = append(problems, fmt.Sprintf("RestartInterval (%d) must be between 1 and %d", o.RestartInterval, restartIntervalMax))
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New("segment: invalid writer options: " + strings.Join(problems, "; "))
}
