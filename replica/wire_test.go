package replica

import (
	"errors"
	"reflect"
	"testing"
)

func sampleBatch() []Message {
	return []Message{
		{Type: MsgShip, Bucket: 16383, From: "n1", To: "n2", Epoch: 7, Round: 1 << 40, Prev: EntryID{Seq: 9, Epoch: 6},
			Entries: []Entry{{Seq: 10, Epoch: 7, Data: []byte("set a 1")}, {Seq: 11, Epoch: 7, Data: []byte{}}}, Last: 11, Commit: 9},
		{Type: MsgAck, Bucket: 3, From: "n2", To: "n1", Epoch: 7, Round: 5, Seq: 11, Reject: ReasonMismatch, Hint: 4},
		{Type: MsgCatchUp, Bucket: 0, From: "n3", To: "n1", Epoch: 1, Prev: EntryID{Seq: 2, Epoch: 1}, Seq: 2, Commit: 1},
	}
}

func TestWireRoundTrip(t *testing.T) {
	msgs := sampleBatch()
	b, err := AppendBatch([]byte("prefix"), msgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	// An empty entry decodes as empty, not nil.
	msgs[0].Entries[1].Data = got[0].Entries[1].Data
	if !reflect.DeepEqual(got, msgs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, msgs)
	}
	if got[0].Entries[1].Data == nil || len(got[0].Entries[1].Data) != 0 {
		t.Fatalf("empty entry data = %#v", got[0].Entries[1].Data)
	}
}

// TestWireRefusesCorruption: every single-byte change and every
// truncation of a batch is refused, never decoded into other messages.
func TestWireRefusesCorruption(t *testing.T) {
	b, err := AppendBatch(nil, sampleBatch())
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x5a
		if _, err := DecodeBatch(c); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("byte %d flipped: err = %v, want ErrBadMessage", i, err)
		}
		if _, err := DecodeBatch(b[:i]); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrBadMessage", i, err)
		}
	}
}

func TestWireBounds(t *testing.T) {
	long := NodeID(make([]byte, NodeIDBytesMax+1))
	if _, err := AppendBatch(nil, []Message{{Type: MsgAck, From: long}}); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("long node ID: %v", err)
	}
	big := []Message{{Type: MsgShip, Entries: []Entry{{Data: make([]byte, WireBytesMax)}}}}
	if _, err := AppendBatch(nil, big); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("batch over WireBytesMax: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	b, _ := AppendBatch(nil, sampleBatch())
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := DecodeBatch(data)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		again, err := AppendBatch(nil, msgs)
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
		if string(again) != string(data) {
			t.Fatalf("re-encoded batch differs")
		}
	})
}
