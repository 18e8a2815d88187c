package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func mustEncode(t testing.TB, f *frame) []byte {
	t.Helper()
	buf, err := encodeFrame(f, FrameBytesMaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.Clone(buf.Bytes())
	putBuf(buf)
	return b
}

func sameFrame(a, b frame) bool {
	return a.id == b.id && a.kind == b.kind && a.method == b.method && a.timeout == b.timeout &&
		bytes.Equal(a.body, b.body) && a.code == b.code && a.msg == b.msg
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []frame{
		{id: 1, kind: kindRequest, method: "kv.get", timeout: 2e9, body: []byte("key")},
		{id: 1<<64 - 1, kind: kindResponse, body: bytes.Repeat([]byte{7}, 70000)},
		{id: 3, kind: kindResponse},
		{id: 4, kind: kindError, code: "server.not_owner", msg: "bucket 7"},
		{id: 5, kind: kindCancel},
	} {
		b := mustEncode(t, &f)
		if n := binary.BigEndian.Uint32(b); int(n) != len(b)-frameHeaderBytes {
			t.Errorf("length prefix %d, frame has %d bytes", n, len(b)-frameHeaderBytes)
		}
		g, err := decodeFrame(b[frameHeaderBytes:])
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if !sameFrame(f, g) {
			t.Errorf("round trip: got %+v, want %+v", g, f)
		}
		if len(f.body)+len(f.method)+len(f.code)+len(f.msg)+FrameOverheadBytesMax-ErrorMessageBytesMax-errorCodeBytesMax-MethodBytesMax < len(b)-frameHeaderBytes {
			t.Errorf("frame of %d bytes exceeds its payload plus the documented overhead", len(b))
		}
	}
}

func TestEncodeFrameTooLarge(t *testing.T) {
	_, err := encodeFrame(&frame{id: 1, kind: kindRequest, method: "m", body: make([]byte, 100)}, 100)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	valid := mustEncode(t, &frame{id: 1, kind: kindRequest, method: "m", body: []byte("x")})[frameHeaderBytes:]
	enc := func(vals ...any) []byte {
		b, err := msgpack.Marshal(vals)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"empty":            {},
		"not an array":     {0xc0},
		"short array":      enc(1, 1, "m"),
		"bad kind":         enc(1, 9, "m", 0, []byte{}, "", ""),
		"negative timeout": enc(1, 1, "m", -5, []byte{}, "", ""),
		"empty method":     enc(1, 1, "", 0, []byte{}, "", ""),
		"long method":      enc(1, 1, strings.Repeat("m", MethodBytesMax+1), 0, []byte{}, "", ""),
		"empty error":      enc(1, 3, "", 0, []byte{}, "", ""),
		"container extra":  enc(1, 1, "m", 0, []byte{}, "", "", []int{1}),
		"trailing":         append(bytes.Clone(valid), 0),
		"truncated":        valid[:len(valid)-1],
		// A bin32 that declares 4 GiB inside a 20-byte frame.
		"huge bin": {0x97, 0x01, 0x02, 0xa0, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xa0},
	}
	for name, b := range cases {
		if _, err := decodeFrame(b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: got %v, want ErrBadFrame", name, err)
		}
	}
	// A later version's extra scalar fields are skipped.
	if _, err := decodeFrame(enc(1, 1, "m", 0, []byte{}, "", "", 42, "future")); err != nil {
		t.Errorf("extra scalar fields: %v", err)
	}
}

func TestReadFrameLimit(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<31)
	_, err := readFrame(bufio.NewReader(bytes.NewReader(hdr[:])), 1<<20)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	// A large frame that stops early fails without reading past the input.
	binary.BigEndian.PutUint32(hdr[:], 3<<20)
	in := append(hdr[:], make([]byte, 2<<20)...)
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(in)), 4<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated large frame: got %v, want io.ErrUnexpectedEOF", err)
	}
	// A large frame that arrives whole is read whole.
	in = append(hdr[:], bytes.Repeat([]byte{9}, 3<<20)...)
	b, err := readFrame(bufio.NewReader(bytes.NewReader(in)), 4<<20)
	if err != nil || len(b) != 3<<20 || b[len(b)-1] != 9 {
		t.Fatalf("large frame: %d bytes, %v", len(b), err)
	}
}

func TestHelloRoundTrip(t *testing.T) {
	h := hello{version: 7, nodeID: "n1", frameBytesMax: 1 << 20, err: "nope"}
	b := encodeHello(&h)
	g, err := decodeHello(b[frameHeaderBytes:])
	if err != nil || g != h {
		t.Fatalf("got %+v, %v; want %+v", g, err, h)
	}
	if _, err := decodeHello([]byte{0x95, 0xa3, 'x', 'y', 'z', 1, 0xa0, 1, 0xa0}); !errors.Is(err, ErrBadFrame) {
		t.Errorf("bad magic: %v, want ErrBadFrame", err)
	}
}

func TestCheckMsgpack(t *testing.T) {
	type inner struct {
		A []byte
		M map[string]any
	}
	good, err := msgpack.Marshal(map[string]any{"a": []any{1, -1, 1.5, "s", nil, true, []byte("b")}, "i": inner{A: []byte("x")}, "big": int64(1) << 60})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkMsgpack(good); err != nil {
		t.Errorf("valid value refused: %v", err)
	}
	deep := append(bytes.Repeat([]byte{0x91}, msgpackDepthMax+1), 0x01)
	bad := map[string][]byte{
		"empty":         {},
		"trailing":      {0x01, 0x02},
		"unused code":   {0xc1},
		"huge bin":      {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00},
		"huge array":    {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00},
		"huge map":      {0xdf, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00},
		"short int":     {0xcf, 0x00},
		"short fixext":  {0xd8, 0x01},
		"deep":          deep,
		"array missing": {0x92, 0x01},
	}
	for name, b := range bad {
		if err := checkMsgpack(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := checkMsgpack(deep[1:]); err != nil {
		t.Errorf("nesting of exactly %d: %v", msgpackDepthMax, err)
	}
}

// FuzzFrameDecode checks that the frame decoder never panics, never
// accepts what it cannot re-encode, and that a decoded frame survives a
// round trip.
func FuzzFrameDecode(f *testing.F) {
	for _, fr := range []frame{
		{id: 1, kind: kindRequest, method: "kv.get", timeout: 2e9, body: []byte("key")},
		{id: 2, kind: kindResponse, body: []byte("value")},
		{id: 3, kind: kindError, code: "server.not_owner", msg: "bucket 7 moved"},
		{id: 4, kind: kindCancel},
	} {
		f.Add(mustEncode(f, &fr)[frameHeaderBytes:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeFrame(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v does not match ErrBadFrame", err)
			}
			return
		}
		again, err := decodeFrame(mustEncode(t, &g)[frameHeaderBytes:])
		if err != nil {
			t.Fatalf("re-encoded frame %+v does not decode: %v", g, err)
		}
		if !sameFrame(g, again) {
			t.Fatalf("round trip changed %+v into %+v", g, again)
		}
		_ = checkMsgpack(b) // must not panic either
	})
}

// FuzzUnmarshal checks that bodies the validator accepts decode into typed
// values and interfaces without panicking, and that it refuses what
// msgpack cannot read at all.
func FuzzUnmarshal(f *testing.F) {
	type rec struct {
		K string
		V []byte
		N []int64
		M map[string]any
	}
	for _, v := range []any{
		rec{K: "k", V: []byte("v"), N: []int64{1, -1}, M: map[string]any{"a": []any{1, "x"}}},
		[]any{nil, true, 1.5, map[string]any{}},
		"s",
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r rec
		_ = unmarshal(b, &r)
		var v any
		if err := unmarshal(b, &v); err != nil && checkMsgpack(b) == nil && strings.Contains(err.Error(), "EOF") {
			t.Fatalf("validated body hit EOF while decoding: %v", err)
		}
	})
}
