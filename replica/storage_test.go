package replica

import (
	"bytes"
	"errors"
	"slices"
	"sort"
	"testing"
)

type kvRec struct{ k, v []byte }

func sortedRecords(recs []kvRec) []kvRec {
	sort.Slice(recs, func(i, j int) bool { return bytes.Compare(recs[i].k, recs[j].k) < 0 })
	return recs
}

func load(t *testing.T, recs []kvRec) (map[Bucket]Stored, error) {
	t.Helper()
	l := NewLoader()
	for _, r := range sortedRecords(recs) {
		if err := l.Add(r.k, r.v); err != nil {
			return nil, err
		}
	}
	return l.Buckets()
}

func TestStorageRoundTrip(t *testing.T) {
	var recs []kvRec
	put := func(k, v []byte) { recs = append(recs, kvRec{k, v}) }
	for s := Seq(3); s <= 6; s++ { // entries 3..6; base 4 trims 3 and 4
		put(EntryKey(7, s), EncodeEntry(7, Entry{Seq: s, Epoch: 2, Data: []byte{byte(s)}}))
	}
	put(BaseKey(7), EncodeEntryID(EntryID{Seq: 4, Epoch: 2}))
	put(CommitKey(7), EncodeSeq(5))
	put(AppliedKey(7), EncodeSeq(5))
	put(EntryKey(300, 1), EncodeEntry(300, Entry{Seq: 1, Epoch: 1, Data: []byte("x")}))
	got, err := load(t, recs)
	if err != nil {
		t.Fatal(err)
	}
	b7 := got[7]
	if b7.Base != (EntryID{4, 2}) || b7.Commit != 5 || b7.Applied != 5 || len(b7.Entries) != 2 || b7.Entries[0].Seq != 5 || b7.Entries[1].Data[0] != 6 {
		t.Fatalf("bucket 7 = %+v", b7)
	}
	if b := got[300]; len(b.Entries) != 1 || string(b.Entries[0].Data) != "x" || b.Commit != 0 {
		t.Fatalf("bucket 300 = %+v", b)
	}
}

func TestStorageRefusesCorruption(t *testing.T) {
	v := EncodeEntry(1, Entry{Seq: 2, Epoch: 1, Data: []byte("hello")})
	for i := range v {
		c := slices.Clone(v)
		c[i] ^= 1
		if _, err := load(t, []kvRec{{EntryKey(1, 2), c}}); !errors.Is(err, ErrBadRestore) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// A record under another bucket's or seq's key is refused.
	for _, k := range [][]byte{EntryKey(2, 2), EntryKey(1, 3)} {
		if _, err := load(t, []kvRec{{k, v}}); !errors.Is(err, ErrBadRestore) {
			t.Fatalf("record moved to %x: %v", k, err)
		}
	}
	// A gap in the log is refused.
	gap := []kvRec{{EntryKey(1, 1), EncodeEntry(1, Entry{Seq: 1, Epoch: 1})}, {EntryKey(1, 3), EncodeEntry(1, Entry{Seq: 3, Epoch: 1})}}
	if _, err := load(t, gap); !errors.Is(err, ErrBadRestore) {
		t.Fatalf("gap: %v", err)
	}
}
