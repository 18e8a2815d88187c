// Package segment implements the storage engine's segment files: immutable
// files of internal keys in sorted order (SSTables), with a block index, a
// whole-file bloom filter over user keys and a checksum on every block; plus
// BlockCache, a sharded cache of data blocks shared by all readers (CLOCK,
// an approximation of LRU), and TableCache, an LRU cache of open Readers.
//
// The package owns the file format and reading and writing one file. It does
// not name, create, delete or pick files, and keeps no live/total statistics
// across files: that is the engine's job (Props gives each file's totals).
//
// # Usage
//
// Writing (flush or compaction):
//
//	w := segment.NewWriter(f, segment.DefaultWriterOptions()) // w owns f
//	for ... {
//		if err := w.Add(key, value); err != nil { ... }         // strictly increasing keys
//	}
//	props, err := w.Finish() // writes the metadata, syncs and closes f
//	// on failure: w.Abort() (if Finish was not called), then remove the file
//
// Reading:
//
//	blocks := segment.NewBlockCache(64 << 20)
//	tables, err := segment.NewTableCache(segment.DefaultTableCacheCapacity, func(n uint64) (*segment.Reader, error) {
//		f, err := fs.Open(name(n))
//		if err != nil {
//			return nil, err
//		}
//		return segment.Open(f, n, blocks) // Open owns f, even on error
//	})
//	r, release, err := tables.Acquire(n)
//	value, kind, found, err := r.Get(userKey, readSeq) // or r.Lookup to get the entry's seq too
//	release()
//
//	// Iterators: NewIter for seeks and short scans (blocks go into the
//	// BlockCache), NewScanIter for compactions and full scans (large
//	// reads, no cache pollution).
//	it := r.NewIter()
//	for ok := it.SeekGE(start); ok; ok = it.Next() { ... it.Key(), it.Value() ... }
//	if err := it.Close(); err != nil { ... }
//	// when file n is deleted:
//	tables.Evict(n)
//	blocks.Evict(n)
//
// # File format
//
// All integers are little-endian; "varint" is encoding/binary's unsigned
// varint. A file is
//
//	data block 0 | trailer
//	...
//	data block n-1 | trailer
//	filter block | trailer      (absent when the file has no filter)
//	index block | trailer
//	properties block | trailer
//	footer
//
// Every block is followed by a 5-byte trailer: one compression-type byte
// (0 = none, the only type) and the crc32c (Castagnoli) of the block
// contents followed by the type byte. A block is located by a handle (offset
// of its contents, length of its contents without the trailer).
//
// An encoded internal key is the user key followed by the 8-byte trailer
// seq<<8|kind (base.InternalKey.AppendEncoded). Encoded keys sort as
// base.Compare sorts internal keys: user key ascending, then trailer
// descending.
//
// Data block (about WriterOptions.BlockSize bytes, at least one entry):
//
//	entry*  restart[numRestarts] uint32  numRestarts uint32
//	entry = varint shared | varint unshared | varint valueLen | key[shared:] | value
//
// Each key is stored as the number of bytes it shares with the previous key
// of the block plus the rest. Every RestartInterval-th entry (the first one
// included) is a restart point: shared is 0 and its offset is listed in the
// restart array, so a lookup binary searches the restart points and then
// scans at most RestartInterval entries.
//
// Filter block: a cache-line-blocked bloom filter over the distinct user
// keys: lines*64 bytes of bits, lines uint32, probes uint8. A key's 64-bit
// hash (hash64, part of the format) picks a line from its low 32 bits, and
// its high 32 bits h give the probes h, h+d, h+2d, ... (d = rotl(h,15)|1)
// taken mod 512 inside the line.
//
// Index block: varint count, then per data block: varint keyLen, key,
// varint offset, varint length. The key is a separator: >= every key of the
// block and < every key of the next block. When possible it is a short user
// key strictly between the block's last key and the next block's first key
// (with trailer all ones); otherwise the block's last key. The data blocks
// tile the start of the file in order.
//
// Properties block: varint version (1), then varints Entries, Tombstones,
// RawKeyBytes, RawValueBytes, MinSeq, MaxSeq, DataBytes, DataBlocks,
// IndexBytes, FilterBytes, then Smallest and Largest as varint length +
// encoded internal key (length 0 in an empty file).
//
// Footer (64 bytes): filter, index and properties handles (offset uint64,
// length uint64 each; a filter length of 0 means no filter, its offset is
// then where the index starts), format version uint32 (1), crc32c of the
// preceding 52 bytes uint32, magic "DBXSEG01".
//
// Open reads the footer, then the properties, filter and index blocks, and
// checks that the blocks tile the file exactly; every offset and length is
// checked against the file size before anything is allocated. Data blocks
// are read on demand, and their checksum and restart array are verified on
// every read from the file (not on cache hits); entry decoding is
// bounds-checked on every access. Damage anywhere yields an error wrapping
// ErrCorrupt that names the file number and offset.
//
// # Lookup cost
//
// Reader.Get checks the bloom filter (one 64-byte line), binary searches the
// in-memory index (mostly over a dense array of 8-byte key prefixes), looks
// the block up in the BlockCache (one shard mutex, no allocation on a hit),
// binary searches the block's restart points and scans at most
// RestartInterval entries. A miss reads the block with one ReadAt and
// verifies its crc32c.
//
// # Concurrency
//
// A Writer is used by one goroutine. A Reader's Get, MayContain, NewIter and
// accessors may run concurrently; each Iter is used by one goroutine at a
// time, and several Iters of one Reader may run concurrently. Reader.Close
// must run after every other use of the Reader has ended (TableCache
// guarantees that for Acquired readers). BlockCache and TableCache are safe
// for concurrent use; no I/O happens under their mutexes (TableCache's open
// function and Reader.Close run outside it).
//
// # Caveats
//
//   - Values returned by Reader.Get and Reader.Lookup must not be modified.
//     They alias an immutable cached block (or are a private copy when the
//     Reader has no cache) and stay valid indefinitely, also after Close and
//     eviction, but retaining one keeps its whole block (~4 KiB) alive: copy
//     a value that is kept for long.
//   - Iter.Key and Iter.Value are valid only until the iterator moves (or is
//     closed) and must not be modified: without a cache, and for
//     NewScanIter, they point into a buffer the next block read reuses.
//   - Get returns the newest version with seq <= the given seq. A tombstone
//     is returned with found=true and kind base.KindDelete; the caller stops
//     there. Iterators return every version and every tombstone.
//   - The index and the bloom filter of an open Reader live in ordinary
//     memory, not in the BlockCache: about BloomBitsPerKey/8 bytes per
//     distinct key plus one separator per block, for as long as the Reader
//     is open. TableCache's capacity bounds this as well as open files.
//   - The BlockCache key is (file number, offset): file numbers must never
//     be reused, and the engine calls BlockCache.Evict and TableCache.Evict
//     when it deletes a file (blocks of a deleted file otherwise linger
//     until they age out of the LRU).
//   - A file with no entries is valid (Props.Entries is 0, Smallest and
//     Largest are zero, the file has no filter).
//   - Open and Writer take ownership of their file and close it, also on
//     error: the caller must not close it again.
//   - The BlockCache is filled by Gets and NewIter iterators; blocks larger
//     than a shard's share of the capacity (capacity/16 for caches of 16 MiB
//     and more) are never cached and are re-read on every access.
//   - Writer.Add accepts user keys up to KeyBytesMax and values up to
//     ValueBytesMax; a value larger than BlockSize gets a block of its own,
//     read (and cached) whole.
package segment
