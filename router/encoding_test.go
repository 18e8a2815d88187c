package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

func TestMarshalRoundTrip(t *testing.T) {
	for _, rf := range []int{1, 2, 3} {
		tab := testTable(t, 42, rf, 1, 0.5, 2, 1)
		data, err := tab.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Table
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatalf("rf %d: %v", rf, err)
		}
		if got.Digest() != tab.Digest() || got.Epoch() != 42 || got.RF() != rf {
			t.Fatalf("rf %d: round trip changed the table", rf)
		}
		again, _ := got.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("rf %d: encoding is not canonical", rf)
		}
		for b := uint16(0); b < NumBuckets; b += 97 {
			if got.OwnerOfBucket(b) != tab.OwnerOfBucket(b) {
				t.Fatalf("rf %d: bucket %d owner changed", rf, b)
			}
		}
		if p, err := ParseTable(data); err != nil || p.Digest() != tab.Digest() {
			t.Fatalf("ParseTable: %v", err)
		}
	}
}

func TestDigestDistinguishes(t *testing.T) {
	a := testTable(t, 1, 1, 1, 1, 1)
	b := testTable(t, 2, 1, 1, 1, 1) // same placement, other epoch
	c := testTable(t, 1, 1, 1, 1, 2) // other placement
	if a.Digest() == b.Digest() || a.Digest() == c.Digest() {
		t.Fatal("different tables share a digest")
	}
	if a.Digest() != testTable(t, 1, 1, 1, 1, 1).Digest() {
		t.Fatal("equal tables have different digests")
	}
}

// reseal recomputes the checksum of a modified encoding, so the decoder's
// structural checks (not the checksum) must catch the damage.
func reseal(data []byte) []byte {
	body := data[:len(data)-checksumLen]
	return binary.BigEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
}

func TestUnmarshalRejects(t *testing.T) {
	tab := testTable(t, 9, 2, 1, 2, 3)
	good, _ := tab.MarshalBinary()
	idOff := headerLen // first node ID length byte
	ownersOff := len(good) - checksumLen - NumBuckets*2*2
	tests := []struct {
		name string
		data func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"short", func() []byte { return good[:headerLen] }},
		{"trailing byte", func() []byte { return reseal(append(bytes.Clone(good[:len(good)-checksumLen]), 0, 0, 0, 0, 0)) }},
		{"bad magic", func() []byte { d := bytes.Clone(good); d[0] = 'X'; return reseal(d) }},
		{"bad version", func() []byte { d := bytes.Clone(good); d[4] = 2; return reseal(d) }},
		{"bit flip", func() []byte { d := bytes.Clone(good); d[len(d)/2] ^= 1; return d }},
		{"rf 0", func() []byte { d := bytes.Clone(good); d[5] = 0; return reseal(d) }},
		{"rf 200", func() []byte { d := bytes.Clone(good); d[5] = 200; return reseal(d) }},
		{"no nodes", func() []byte { d := bytes.Clone(good); d[6], d[7] = 0, 0; return reseal(d) }},
		{"more nodes than bytes", func() []byte { d := bytes.Clone(good); d[6], d[7] = 0x03, 0xff; return reseal(d) }},
		{"id runs past end", func() []byte { d := bytes.Clone(good); d[idOff] = 255; return reseal(d) }},
		{"unsorted ids", func() []byte {
			d := bytes.Clone(good)
			d[idOff+1] = 'z' // "node-1" → "zode-1" sorts after "node-2"
			return reseal(d)
		}},
		{"owner out of range", func() []byte {
			d := bytes.Clone(good)
			binary.BigEndian.PutUint16(d[ownersOff:], 3)
			return reseal(d)
		}},
		{"owner twice", func() []byte {
			d := bytes.Clone(good)
			copy(d[ownersOff+2:ownersOff+4], d[ownersOff:ownersOff+2])
			return reseal(d)
		}},
		{"too long", func() []byte { return make([]byte, maxEncodedLen+1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Table
			if err := got.UnmarshalBinary(tt.data()); !errors.Is(err, ErrBadTable) {
				t.Fatalf("UnmarshalBinary = %v, want ErrBadTable", err)
			}
		})
	}
	// Every truncation fails cleanly.
	for n := 0; n < len(good); n += 1 + n/64 {
		if _, err := ParseTable(good[:n]); !errors.Is(err, ErrBadTable) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
}

// FuzzUnmarshal: no input makes the decoder panic, and whatever it accepts
// re-encodes to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	tab := testTable(f, 3, 1, 1, 2)
	good, _ := tab.MarshalBinary()
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte("DBXT"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseTable(data)
		if err != nil {
			if !errors.Is(err, ErrBadTable) {
				t.Fatalf("error %v does not wrap ErrBadTable", err)
			}
			return
		}
		again, _ := got.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatal("accepted input is not canonical")
		}
	})
}
