// Package wal is the write-ahead-log file format of the storage engine: one
// WAL file per engine shard, a sequence of checksummed records, written by a
// Writer and replayed by a Reader (or Recover) when the shard opens.
//
// The package owns the bytes of a WAL file and the rule that tells a torn
// tail from corruption. It does not decide when to sync (sync modes and
// group commit are the caller's), what a payload means (the engine encodes
// its write batches), or which files exist (naming, creating, rotating and
// deleting WAL files, and SyncDir, are the engine's). All I/O goes through
// vfs.File.
//
// # Format
//
// A file is a 16-byte header followed by records, with no padding:
//
//	header:  magic "DBXWAL\x00\x01" (8 bytes; the last two are the format
//	         version, big endian) | log number (uint64, little endian)
//	record:  checksum (uint32) | length n (uint32) | ^n (uint32) | payload (n bytes)
//
// Integers are little endian. The checksum is CRC-32C (Castagnoli) of the
// 8 bytes of length and length check followed by the payload. The length
// check ^n (n with every bit inverted) lets the Reader trust a length before
// it has read the payload: a damaged length field is recognised as damage
// instead of sending the reader to a wrong record end. A record of all-zero
// bytes is never valid. A payload is at most MaxRecordBytes (64 MiB); a
// Writer can be configured with a lower limit.
//
// The log number in the header is checked against the number the caller
// expects, so a WAL is not confused with another file, or with the WAL of
// another log renamed or reused by mistake ("wal 000012: header says log 7").
//
// # Writing
//
// NewWriter writes the header into an empty file and syncs it, so a file
// longer than its header always has a durable header. Append (or AppendV,
// which frames a payload given in parts) copies a record into a buffer of
// WriterOptions.BufferBytes (256 KiB by default); a record too large for the
// buffer goes to the file directly. Flush writes the buffer out; Sync flushes
// and syncs the file, after which every record appended so far is durable.
// Group commit is: Append each record of the group, then Sync once.
//
// A failed write or sync breaks the Writer: that call and every later one
// return the same error, and the Writer never writes again. The file may
// then end in a partial record, which is why nothing may follow it; the
// engine must stop using the log (and, after a failed sync, must not assume
// that anything since the last good sync is durable).
//
// # Reading, torn tails and corruption
//
// NewReader checks the header; Next returns the payloads in order, then
// io.EOF. A crash while appending can leave a torn tail after the last good
// record: part of a record, zeros where data never reached the disk, or a
// few garbled bytes of a torn sector. The Reader ends the log there: Next
// returns io.EOF, Torn reports true and ValidOffset is the end of the last
// good record, and Tail describes what was dropped: the reason (a partial
// record header or record, a checksum mismatch, a bad header, zeros), the
// bytes, and the records still recognisable in them by an intact header (a
// lower bound on the records lost). Recover replays a log and truncates a
// torn tail (and syncs); RecoverAt also passes each record's offset and
// returns the Tail.
//
// The rule is: a damaged record is corruption only on evidence that data
// was written after it and survived, that is, an intact record (valid
// length check, end within the file, matching checksum) starting after the
// damage. Without such evidence the damage is indistinguishable from a torn
// write and is treated as a torn tail. In detail, with the bytes after the
// last good record:
//
//   - none: clean end of the log;
//   - fewer than a record header, or a record whose valid length runs past
//     the end of the file: torn;
//   - a checksum mismatch: corrupt if an intact record starts at or after
//     the record's end, torn otherwise;
//   - a header whose length fails its check (or exceeds MaxRecordBytes): the
//     record's end is unknown, so corrupt if an intact record starts anywhere
//     after the header's first byte, torn otherwise.
//
// So damage in the middle of a log is reported, never skipped: Next returns
// a *CorruptError (wrapping ErrCorrupt) naming the log, the offset of the
// damaged record and the offset of the intact record found after it, and
// Recover returns it without changing the file. A checksum failure in the
// final record, by contrast, is a torn tail: it is what a sector torn by a
// power loss looks like. Zeros after the last good record are torn too.
//
// A file of at most 16 bytes holds no record; if it is not exactly the
// expected header it was left by a crash inside NewWriter and is torn at 0
// (Recover truncates it to 0 bytes). A longer file whose header is wrong is
// corrupt, unless the whole file is zero (torn at 0).
//
// # Concurrency
//
// A Writer is used by one goroutine: Append, Flush, Sync and Close must not
// be called concurrently (the engine's shard worker owns its Writer). A
// Reader is used by one goroutine too, and must not run on a file that is
// being written: it reads with ReadAt only, does not move the file offset,
// and sees the file as it was at NewReader.
//
// # Caveats
//
//   - The payload returned by Next, and passed to Recover's callback, is
//     valid only until the next call: it aliases the Reader's buffer. Copy
//     what you keep (a memtable insert that copies keys and values is fine).
//   - A torn tail is cut without error, and damage to the last records of a
//     log (with nothing intact after it) is classified as torn. If those
//     records had been synced (acknowledged), they are lost and only
//     Result.TruncatedBytes and the Tail say so; records wholly past a
//     cut at a record boundary leave no trace. The Reader cannot tell
//     synced from unsynced bytes; an engine that must detect such loss needs a durable
//     watermark of its own (for instance the last synced sequence number
//     recorded elsewhere) to compare with what was replayed.
//   - If the device or file system persists unsynced pages out of order, a
//     crash can leave a hole (zeros) in the unsynced tail followed by intact
//     records; that is reported as corruption, not torn. With sync after
//     every group this only concerns the last group; the CorruptError offset
//     (equal to Result.ValidOffset) lets an operator or a deliberate engine
//     policy truncate there.
//   - A damaged record header near the end of a log is resolved by scanning
//     the following bytes for an intact record; a payload that itself
//     contains a well-formed WAL record could make a torn tail look corrupt
//     (never the reverse). The scan checksums at most 256 MiB of candidates;
//     past that it reports corruption.
//   - A Writer only starts new logs (NewWriter requires an empty file). To
//     continue after a crash, Recover the old log and start a new one with a
//     new log number; Recover's Truncate does not move the file offset.
//   - Creating a WAL file is durable only after SyncDir on its directory;
//     NewWriter syncs the file, not the directory.
//   - Every record costs RecordHeaderLen (12) bytes; the Reader may hold a
//     buffer as large as the largest record (up to 64 MiB) plus 256 KiB.
//   - CRC-32C detects accidental damage, not deliberate tampering.
package wal
