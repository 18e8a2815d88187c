package twophase

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// The storage adapter: how a participant's durable state is laid out as
// key/value pairs in one key space of the caller's store (node/ keeps it
// in an engine bucket of its own), and how it is read back at start. It
// is pure like the rest of the package: the caller does the reads and the
// writes.
//
//	p/<txn>  a PrepareRecord (msgpack): Prepared with its intents and
//	         locks, or a Committed or Aborted marker
//	r/<txn>  a TxnRecord (msgpack), on the record holder
//
// The format is what dbx has always written; a change needs a migration.

const (
	prepareKind = 'p'
	recordKind  = 'r'
)

func storageKey(kind byte, txn TxID) []byte { return append([]byte{kind, '/'}, txn...) }

// PrepareKey returns the key of txn's prepare record.
func PrepareKey(txn TxID) []byte { return storageKey(prepareKind, txn) }

// RecordKey returns the key of txn's transaction record.
func RecordKey(txn TxID) []byte { return storageKey(recordKind, txn) }

// EncodePrepare returns the stored form of r. A Committed record is stored
// as a marker, without intents or locks: the caller writes it only after
// the intents are applied.
func EncodePrepare(r PrepareRecord) []byte {
	if r.State == StateCommitted {
		r.Intents, r.Locks = nil, nil
	}
	return mustMsgpack(r)
}

// EncodeRecord returns the stored form of r.
func EncodeRecord(r TxnRecord) []byte { return mustMsgpack(r) }

func mustMsgpack(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("twophase: encoding %T: %v", v, err)) // plain structs: cannot fail
	}
	return b
}

// Op is one write to the caller's record storage: Value nil deletes Key.
type Op struct {
	Key, Value []byte
}

// StorageOp returns the write that performs e: PersistPrepare and
// PersistRecord put the encoded record, Forget and ForgetRecord delete it.
// Other effects write nothing (ok is false). For a Committed PersistPrepare
// the write is the marker; the intents are the caller's to apply first.
func StorageOp(e Effect) (op Op, ok bool) {
	switch e := e.(type) {
	case PersistPrepare:
		return Op{Key: PrepareKey(e.Rec.Txn), Value: EncodePrepare(e.Rec)}, true
	case PersistRecord:
		return Op{Key: RecordKey(e.Rec.Txn), Value: EncodeRecord(e.Rec)}, true
	case Forget:
		return Op{Key: PrepareKey(e.Txn)}, true
	case ForgetRecord:
		return Op{Key: RecordKey(e.Txn)}, true
	}
	return Op{}, false
}

// Stored is a participant's durable state read back from storage, entry
// by entry (Add), to rebuild the Participant at start (Restore).
type Stored struct {
	Prepares []PrepareRecord
	Records  []TxnRecord
}

// Add decodes one stored entry, as StorageOp wrote it. Keys of another
// form are ignored; a value that does not decode is ErrBadRecords.
func (s *Stored) Add(key, value []byte) error {
	if len(key) <= 2 || key[1] != '/' {
		return nil
	}
	switch key[0] {
	case prepareKind:
		var r PrepareRecord
		if err := msgpack.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("%w: prepare record %q: %v", ErrBadRecords, key, err)
		}
		s.Prepares = append(s.Prepares, r)
	case recordKind:
		var r TxnRecord
		if err := msgpack.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("%w: transaction record %q: %v", ErrBadRecords, key, err)
		}
		s.Records = append(s.Records, r)
	}
	return nil
}

// InDoubt returns the number of Prepared records: the transactions that
// will be in doubt after Restore.
func (s *Stored) InDoubt() int {
	n := 0
	for _, r := range s.Prepares {
		if r.State == StatePrepared {
			n++
		}
	}
	return n
}

// Restore rebuilds p, a new Participant, from the stored records
// (Participant.Restore) and returns the effects to perform.
func (s *Stored) Restore(p *Participant, now Tick) ([]Effect, error) {
	return p.Restore(now, s.Prepares, s.Records)
}
