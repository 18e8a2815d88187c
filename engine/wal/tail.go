package wal

import "fmt"

// TornReason says why a Reader ended a log in a torn tail.
type TornReason int

const (
	// NotTorn: the log ended cleanly (or is not read to its end yet).
	NotTorn TornReason = iota
	// TornFileHeader: the file holds at most a file header, and not the
	// expected one (a crash inside NewWriter, or a file cut to that size).
	TornFileHeader
	// TornRecordHeader: fewer than RecordHeaderLen bytes follow the last
	// good record (a partial record header).
	TornRecordHeader
	// TornRecord: a record whose (valid) length runs past the end of the
	// file (a partial record: a torn write, or a file cut inside a record).
	TornRecord
	// TornChecksum: a record with a valid length whose checksum does not
	// match, with no intact record after it.
	TornChecksum
	// TornBadHeader: a record header whose length fails its check, with no
	// intact record after it.
	TornBadHeader
	// TornZeros: a file longer than its header that is zero from its first
	// byte (data that never reached the disk).
	TornZeros
)

func (r TornReason) String() string {
	switch r {
	case NotTorn:
		return "not torn"
	case TornFileHeader:
		return "partial file header"
	case TornRecordHeader:
		return "partial record header"
	case TornRecord:
		return "partial record"
	case TornChecksum:
		return "checksum mismatch"
	case TornBadHeader:
		return "bad record header"
	case TornZeros:
		return "zeroed file"
	}
	return fmt.Sprintf("TornReason(%d)", int(r))
}

// Tail describes the torn tail a Reader stopped at: the bytes after
// ValidOffset, which Recover cuts off.
//
// A torn tail cannot say how much was lost, only what is left of it. The
// dropped bytes are walked record by record from Offset using the record
// lengths: Records counts the records whose header (length and length
// check) is intact, each of them damaged or cut short, hence lost; what
// follows the last of them and does not start an intact header is
// UnframedBytes (zeros, garbage, a partial header), which may have held
// more records. Records lying wholly past the end of the file (a file cut
// at, or beyond, a record boundary) leave no trace at all, so Records is
// always a lower bound on the records lost; Exact reports the case where
// nothing in the file suggests more.
type Tail struct {
	// Reason classifies the first damaged record (or file header).
	Reason TornReason
	// Offset is where replay stopped: the end of the last good record
	// (Reader.ValidOffset), 0 when the file header is torn.
	Offset int64
	// Bytes is the size of the tail: file size minus Offset.
	Bytes int64
	// Records is the number of records with an intact header found in the
	// tail (see the type's comment): lost records, a lower bound.
	Records int
	// CutRecord reports that the last of those records runs past the end
	// of the file: the file ends inside a record.
	CutRecord bool
	// UnframedBytes is the number of tail bytes after those records that
	// do not start an intact record header; UnframedZero reports that they
	// are all zero.
	UnframedBytes int64
	UnframedZero  bool
}

// Exact reports whether the tail is exactly Records whole records (each
// failing its checksum), so that, short of a cut at a record boundary
// (which no file can show), Records is the number of records lost.
func (t Tail) Exact() bool {
	return t.Records > 0 && !t.CutRecord && t.UnframedBytes == 0
}

// String says what the tail holds, without Offset and Bytes: the reason,
// whether the file ends inside a record and what follows the records.
func (t Tail) String() string {
	s := t.Reason.String()
	if t.CutRecord {
		s += ", the file ends inside a record"
	}
	if t.UnframedBytes > 0 {
		s += fmt.Sprintf(", then %d bytes that are no record", t.UnframedBytes)
		if t.UnframedZero {
			s += " (all zero)"
		}
	}
	return s
}

// Tail describes the torn tail once Next has returned io.EOF with Torn
// true; otherwise it returns the zero Tail. It reads the tail's record
// headers (at most one read per RecordHeaderLen bytes of tail, through the
// Reader's window) and does not change the file.
func (r *Reader) Tail() (Tail, error) {
	if !r.torn {
		return Tail{}, nil
	}
	t := Tail{Reason: r.why, Offset: r.off, Bytes: r.size - r.off}
	p := r.off
	if p >= FileHeaderLen { // a torn file header holds no record to walk
		for r.size-p >= RecordHeaderLen {
			h, err := r.bytesAt(p, RecordHeaderLen)
			if err != nil {
				return Tail{}, err
			}
			n, ok := decodeLength(h)
			if !ok {
				break
			}
			t.Records++
			end := p + RecordHeaderLen + int64(n)
			if end > r.size {
				t.CutRecord = true
				p = r.size
				break
			}
			p = end
		}
	}
	t.UnframedBytes = r.size - p
	if t.UnframedBytes > 0 {
		zero, err := r.zeroFrom(p)
		if err != nil {
			return Tail{}, err
		}
		t.UnframedZero = zero
	}
	return t, nil
}
