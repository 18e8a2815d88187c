package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The wire form of a batch of Messages, for the driver to send between
// nodes. Every batch carries a CRC-32C of its bytes, and every length and
// count is checked against what is left before it is used, so a corrupt
// or forged batch is refused whole (ErrBadMessage) and never half applied.
//
//	batch   := magic(1) version(1) count(uvarint) message* crc32c(4, big endian)
//	message := type(1) bucket(2) from(str) to(str) epoch round prevSeq prevEpoch
//	           last commit seq(uvarint each) reject(1) hint(uvarint)
//	           nentries(uvarint) entry*
//	entry   := seq epoch(uvarint each) len(uvarint) data
//	str     := len(1) bytes
const (
	wireMagic   = 'R'
	wireVersion = 1
	// WireMessagesMax bounds the messages of one batch.
	WireMessagesMax = 1 << 16
	// WireBytesMax bounds an encoded batch (16 MiB): a driver splits
	// larger ones.
	WireBytesMax = 16 << 20
	// NodeIDBytesMax bounds a node ID on the wire.
	NodeIDBytesMax = 255
)

// ErrBadMessage reports a replication batch that does not decode: a bad
// checksum, a length or count beyond its bound or beyond the bytes left,
// an unknown type or reason.
var ErrBadMessage = errors.New("replica: bad message")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendBatch appends the wire form of msgs to dst. It fails (and appends
// nothing) if a bound is exceeded: more than WireMessagesMax messages, a
// node ID over NodeIDBytesMax bytes, a result over WireBytesMax.
func AppendBatch(dst []byte, msgs []Message) ([]byte, error) {
	if len(msgs) > WireMessagesMax {
		return dst, fmt.Errorf("%w: %d messages in a batch, at most %d", ErrBadMessage, len(msgs), WireMessagesMax)
	}
	start := len(dst)
	b := append(dst, wireMagic, wireVersion)
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		if len(m.From) > NodeIDBytesMax || len(m.To) > NodeIDBytesMax {
			return dst, fmt.Errorf("%w: node ID over %d bytes", ErrBadMessage, NodeIDBytesMax)
		}
		b = append(b, byte(m.Type))
		b = binary.BigEndian.AppendUint16(b, uint16(m.Bucket))
		b = append(b, byte(len(m.From)))
		b = append(b, m.From...)
		b = append(b, byte(len(m.To)))
		b = append(b, m.To...)
		for _, v := range [...]uint64{uint64(m.Epoch), m.Round, uint64(m.Prev.Seq), uint64(m.Prev.Epoch), uint64(m.Last), uint64(m.Commit), uint64(m.Seq)} {
			b = binary.AppendUvarint(b, v)
		}
		b = append(b, byte(m.Reject))
		b = binary.AppendUvarint(b, uint64(m.Hint))
		b = binary.AppendUvarint(b, uint64(len(m.Entries)))
		for _, e := range m.Entries {
			b = binary.AppendUvarint(b, uint64(e.Seq))
			b = binary.AppendUvarint(b, uint64(e.Epoch))
			b = binary.AppendUvarint(b, uint64(len(e.Data)))
			b = append(b, e.Data...)
		}
		if len(b)-start > WireBytesMax {
			return dst[:start], fmt.Errorf("%w: batch over %d bytes", ErrBadMessage, WireBytesMax)
		}
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	return b, nil
}

// DecodeBatch decodes a batch written by AppendBatch. The messages'
// entries alias b.
func DecodeBatch(b []byte) ([]Message, error) {
	if len(b) > WireBytesMax+4 {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadMessage, len(b), WireBytesMax)
	}
	if len(b) < 7 {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrBadMessage, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadMessage)
	}
	if body[0] != wireMagic || body[1] != wireVersion {
		return nil, fmt.Errorf("%w: magic %#x version %d", ErrBadMessage, body[0], body[1])
	}
	d := decoder{b: body[2:]}
	n := d.uvarint()
	if n > WireMessagesMax || n > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: %d messages", ErrBadMessage, n)
	}
	msgs := make([]Message, 0, n)
	for range n {
		var m Message
		m.Type = MsgType(d.byte())
		if m.Type < MsgShip || m.Type > MsgCatchUp {
			d.fail("message type %d", m.Type)
		}
		m.Bucket = Bucket(d.uint16())
		m.From = NodeID(d.str())
		m.To = NodeID(d.str())
		m.Epoch = Epoch(d.uvarint())
		m.Round = d.uvarint()
		m.Prev = EntryID{Seq: Seq(d.uvarint()), Epoch: Epoch(d.uvarint())}
		m.Last, m.Commit, m.Seq = Seq(d.uvarint()), Seq(d.uvarint()), Seq(d.uvarint())
		m.Reject = Reason(d.byte())
		if m.Reject > ReasonNotOwner {
			d.fail("reason %d", m.Reject)
		}
		m.Hint = Seq(d.uvarint())
		ne := d.uvarint()
		if ne > uint64(len(d.b)) || ne > EntriesLimit {
			d.fail("%d entries", ne)
		}
		if d.err != nil {
			return nil, d.err
		}
		if ne > 0 {
			m.Entries = make([]Entry, 0, ne)
		}
		for range ne {
			e := Entry{Seq: Seq(d.uvarint()), Epoch: Epoch(d.uvarint())}
			e.Data = d.bytes()
			m.Entries = append(m.Entries, e)
		}
		if d.err != nil {
			return nil, d.err
		}
		msgs = append(msgs, m)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last message", ErrBadMessage, len(d.b))
	}
	return msgs, nil
}

// decoder reads what AppendBatch and the storage adapter write; the first
// problem sticks in err and every later read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrBadMessage}, args...)...)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint16() uint16 {
	if len(d.b) < 2 {
		d.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := int(d.byte())
	if n > len(d.b) {
		d.fail("string of %d bytes, %d left", n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) || n > BytesLimit {
		d.fail("%d bytes, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
