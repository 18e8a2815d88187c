package kv

import (
	"errors"
	"reflect"
	"testing"

	"github.com/dbx-kv/dbx/engine"
)

func opsOf(b *engine.Batch) []engine.Op {
	var out []engine.Op
	b.ForEachOp(func(op engine.Op) {
		op.Key, op.Value = append([]byte(nil), op.Key...), append([]byte(nil), op.Value...)
		out = append(out, op)
	})
	return out
}

func TestOpsRoundTrip(t *testing.T) {
	var b engine.Batch
	b.SetWithExpiry(7, []byte("k1"), []byte("v1"), 1234567890123)
	b.Delete(16383, []byte("gone"))
	b.Set(0, []byte(""), []byte{})
	data := EncodeOps(&b)
	var got engine.Batch
	if err := DecodeOps(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opsOf(&got), opsOf(&b)) {
		t.Fatalf("round trip: %+v, want %+v", opsOf(&got), opsOf(&b))
	}
	for i := range data {
		var c engine.Batch
		if err := DecodeOps(data[:i], &c); !errors.Is(err, ErrBadOps) {
			t.Fatalf("truncated to %d bytes: %v", i, err)
		}
	}
}

func FuzzDecodeOps(f *testing.F) {
	var b engine.Batch
	b.SetWithExpiry(7, []byte("k1"), []byte("v1"), -5)
	b.Delete(1, []byte("x"))
	f.Add(EncodeOps(&b))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got engine.Batch
		if err := DecodeOps(data, &got); err != nil {
			return
		}
		var again engine.Batch
		if err := DecodeOps(EncodeOps(&got), &again); err != nil || !reflect.DeepEqual(opsOf(&again), opsOf(&got)) {
			t.Fatalf("decoded ops do not round-trip: %v", err)
		}
	})
}
