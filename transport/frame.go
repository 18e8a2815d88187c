package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Protocol bytes: the first byte a dialer writes on a new connection to the
// RPC port says which protocol the rest of the connection speaks. PortMux
// routes on it.
const (
	// ProtoRPC opens a dbx RPC connection (this package's frames).
	ProtoRPC byte = 'D'
	// ProtoRaft opens a Raft connection (hashicorp/raft's NetworkTransport
	// stream, see DialRaft and RaftStreamLayer).
	ProtoRaft byte = 'R'
)

// Protocol limits.
const (
	// ProtocolVersion is the version of the frame protocol this package
	// speaks. Peers with another version are refused at the handshake with
	// ErrVersionMismatch.
	ProtocolVersion = 1
	// FrameBytesMaxLimit is the largest value Config.FrameBytesMax may take.
	FrameBytesMaxLimit = 1 << 30
	// FrameBytesMaxMin is the smallest value Config.FrameBytesMax may take.
	FrameBytesMaxMin = 64 << 10
	// MethodBytesMax bounds the length of a method name.
	MethodBytesMax = 128
	// NodeIDBytesMax bounds the length of a node ID.
	NodeIDBytesMax = 255
	// ErrorMessageBytesMax bounds the message of an error sent back to a
	// caller; longer messages are truncated.
	ErrorMessageBytesMax = 4 << 10
	// FrameOverheadBytesMax bounds what a frame adds to its body: with a
	// body of b bytes, a request fits in FrameBytesMax when
	// b + FrameOverheadBytesMax ≤ FrameBytesMax.
	FrameOverheadBytesMax = 64 + MethodBytesMax + errorCodeBytesMax + ErrorMessageBytesMax

	// frameHeaderBytes is the big-endian uint32 length before every frame.
	frameHeaderBytes = 4
	// handshakeBytesMax bounds a handshake frame; it is read before the
	// peer is known, so it is small.
	handshakeBytesMax = 1 << 10
	// handshakeMagic opens every handshake frame.
	handshakeMagic = "dbx"
	// frameFields is the number of fields of a version-1 frame; later
	// versions may append scalar fields, which version 1 skips.
	frameFields = 7
	// smallFrameBytes: frames up to this size are read with one
	// allocation; larger ones grow as their bytes arrive, so a peer that
	// declares a large frame and stalls costs little memory.
	smallFrameBytes = 1 << 20
	// pooledBufBytesMax: encode buffers up to this capacity are reused.
	pooledBufBytesMax = 64 << 10
)

// kind is the type of a frame.
type kind uint8

const (
	kindRequest  kind = 1 // caller → server: run method with body
	kindResponse kind = 2 // server → caller: body is the result
	kindError    kind = 3 // server → caller: code and message of the error
	kindCancel   kind = 4 // caller → server: the caller gave up on id
)

func (k kind) String() string {
	switch k {
	case kindRequest:
		return "request"
	case kindResponse:
		return "response"
	case kindError:
		return "error"
	case kindCancel:
		return "cancel"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// frame is one message on an RPC connection. On the wire it is a 4-byte
// big-endian length followed by a msgpack array of
// [id, kind, method, timeoutNanos, body, code, message].
//
// The deadline travels as the time remaining (timeoutNanos, 0 = none), not
// as an absolute time, so that clock skew between nodes does not shorten
// or stretch it; transit time is added to it, which errs on the side of the
// server working a little longer than the caller waits.
type frame struct {
	id      uint64
	kind    kind
	method  string // request
	timeout int64  // request: nanoseconds the caller still waits, 0 = none
	body    []byte // request, response
	code    string // error
	msg     string // error
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= pooledBufBytesMax {
		b.Reset()
		bufPool.Put(b)
	}
}

// encodeFrame returns f as it goes on the wire, length prefix included.
// It fails with ErrFrameTooLarge when the frame (without prefix) would
// exceed limit; then no large buffer is built. The caller passes the
// buffer to putBuf when done with it.
func encodeFrame(f *frame, limit int) (*bytes.Buffer, error) {
	if n := len(f.body) + len(f.method) + len(f.code) + len(f.msg); n > limit {
		return nil, fmt.Errorf("%w: %s frame with %d bytes of payload exceeds the limit of %d bytes", ErrFrameTooLarge, f.kind, n, limit)
	}
	buf := getBuf()
	buf.Grow(frameHeaderBytes + len(f.body) + len(f.method) + len(f.code) + len(f.msg) + 32) // one allocation, not a doubling chain
	buf.Write([]byte{0, 0, 0, 0})
	enc := msgpack.GetEncoder()
	enc.Reset(buf)
	err := enc.EncodeArrayLen(frameFields)
	if err == nil {
		err = enc.EncodeUint(f.id)
	}
	if err == nil {
		err = enc.EncodeUint(uint64(f.kind))
	}
	if err == nil {
		err = enc.EncodeString(f.method)
	}
	if err == nil {
		err = enc.EncodeInt(f.timeout)
	}
	if err == nil {
		err = enc.EncodeBytes(f.body)
	}
	if err == nil {
		err = enc.EncodeString(f.code)
	}
	if err == nil {
		err = enc.EncodeString(f.msg)
	}
	msgpack.PutEncoder(enc)
	if err != nil { // bytes.Buffer does not fail; kept for safety
		putBuf(buf)
		return nil, fmt.Errorf("transport: encode frame: %w", err)
	}
	n := buf.Len() - frameHeaderBytes
	if n > limit {
		putBuf(buf)
		return nil, fmt.Errorf("%w: %s frame of %d bytes exceeds the limit of %d bytes", ErrFrameTooLarge, f.kind, n, limit)
	}
	binary.BigEndian.PutUint32(buf.Bytes()[:frameHeaderBytes], uint32(n))
	return buf, nil
}

// decodeFrame parses one frame (without its length prefix). It never
// panics and never allocates more than len(b) for the frame's contents:
// every declared length is checked against the bytes present. f.body
// aliases b.
func decodeFrame(b []byte) (f frame, err error) {
	r := bytes.NewReader(b)
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(r)
	n, err := d.DecodeArrayLen()
	if err != nil {
		return f, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if n < frameFields {
		return f, fmt.Errorf("%w: %d fields, want at least %d", ErrBadFrame, n, frameFields)
	}
	if f.id, err = d.DecodeUint64(); err != nil {
		return f, fmt.Errorf("%w: id: %v", ErrBadFrame, err)
	}
	k, err := d.DecodeUint64()
	if err != nil {
		return f, fmt.Errorf("%w: kind: %v", ErrBadFrame, err)
	}
	if k < uint64(kindRequest) || k > uint64(kindCancel) {
		return f, fmt.Errorf("%w: unknown kind %d", ErrBadFrame, k)
	}
	f.kind = kind(k)
	if f.method, err = decodeStr(d, r, b, MethodBytesMax, "method"); err != nil {
		return f, err
	}
	if f.timeout, err = d.DecodeInt64(); err != nil {
		return f, fmt.Errorf("%w: timeout: %v", ErrBadFrame, err)
	}
	if f.timeout < 0 {
		return f, fmt.Errorf("%w: negative timeout %d", ErrBadFrame, f.timeout)
	}
	if f.body, err = decodeBin(d, r, b, len(b), "body"); err != nil {
		return f, err
	}
	if f.code, err = decodeStr(d, r, b, errorCodeBytesMax, "code"); err != nil {
		return f, err
	}
	if f.msg, err = decodeStr(d, r, b, ErrorMessageBytesMax, "message"); err != nil {
		return f, err
	}
	if n-frameFields > r.Len() { // every field takes at least one byte
		return f, fmt.Errorf("%w: %d extra fields in %d bytes", ErrBadFrame, n-frameFields, r.Len())
	}
	for i := frameFields; i < n; i++ {
		if err := skipScalar(d); err != nil {
			return f, err
		}
	}
	if r.Len() != 0 {
		return f, fmt.Errorf("%w: %d trailing bytes", ErrBadFrame, r.Len())
	}
	switch f.kind {
	case kindRequest:
		if err := checkMethod(f.method); err != nil {
			return f, fmt.Errorf("%w: %v", ErrBadFrame, err)
		}
	case kindError:
		if f.code == "" && f.msg == "" {
			return f, fmt.Errorf("%w: error frame without code or message", ErrBadFrame)
		}
	}
	return f, nil
}

// decodeBin reads a msgpack bin (or str) of at most max bytes from d, whose
// reader r reads b; the result aliases b. Unlike msgpack's DecodeBytes it
// checks the declared length against the bytes left before touching
// memory.
func decodeBin(d *msgpack.Decoder, r *bytes.Reader, b []byte, max int, what string) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadFrame, what, err)
	}
	if n < 0 { // nil
		return nil, nil
	}
	if n > max || n > r.Len() {
		return nil, fmt.Errorf("%w: %s of %d bytes (limit %d, %d bytes left)", ErrBadFrame, what, n, max, r.Len())
	}
	pos := len(b) - r.Len()
	if _, err := r.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadFrame, what, err)
	}
	return b[pos : pos+n : pos+n], nil
}

func decodeStr(d *msgpack.Decoder, r *bytes.Reader, b []byte, max int, what string) (string, error) {
	s, err := decodeBin(d, r, b, max, what)
	return string(s), err
}

// skipScalar skips one field that a later protocol version appended.
// Containers are refused: skipping them recurses in msgpack, and a frame
// must not be able to choose the decoder's stack depth.
func skipScalar(d *msgpack.Decoder) error {
	c, err := d.PeekCode()
	if err != nil {
		return fmt.Errorf("%w: extra field: %v", ErrBadFrame, err)
	}
	if msgpcode.IsFixedArray(c) || msgpcode.IsFixedMap(c) ||
		c == msgpcode.Array16 || c == msgpcode.Array32 || c == msgpcode.Map16 || c == msgpcode.Map32 {
		return fmt.Errorf("%w: extra field is a container (code %#x)", ErrBadFrame, c)
	}
	if err := d.Skip(); err != nil {
		return fmt.Errorf("%w: extra field: %v", ErrBadFrame, err)
	}
	return nil
}

// readFrame reads one length-prefixed frame of at most limit bytes. A
// larger declared length fails with ErrFrameTooLarge before anything is
// allocated for it; the caller closes the connection.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	var hdr [frameHeaderBytes]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: peer declared a frame of %d bytes, the limit is %d", ErrFrameTooLarge, n, limit)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrBadFrame)
	}
	if n <= smallFrameBytes {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, noEOF(err)
		}
		return b, nil
	}
	// Grow with the bytes that actually arrive: a peer that declares a
	// large frame and stalls costs at most twice what it sent.
	b := make([]byte, 0, smallFrameBytes)
	for len(b) < int(n) {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(cap(b), int(n)-len(b)))
		}
		m, err := io.ReadFull(r, b[len(b):min(cap(b), int(n))])
		b = b[:len(b)+m]
		if err != nil {
			return nil, noEOF(err)
		}
	}
	return b, nil
}

// noEOF turns an EOF in the middle of a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkMethod validates a method name.
func checkMethod(m string) error {
	if m == "" || len(m) > MethodBytesMax {
		return fmt.Errorf("%w: the name has %d bytes, want 1 to %d", ErrBadMethod, len(m), MethodBytesMax)
	}
	return nil
}

// hello is the handshake: the dialer sends it after ProtoRPC, the server
// answers with its own (err set when it refuses the connection). On the
// wire: length prefix, then a msgpack array
// [magic, version, nodeID, frameBytesMax, err].
type hello struct {
	version       uint64
	nodeID        string
	frameBytesMax uint64
	err           string
}

func encodeHello(h *hello) []byte {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	enc := msgpack.GetEncoder()
	enc.Reset(&buf)
	_ = enc.EncodeArrayLen(5) // writes to a bytes.Buffer cannot fail
	_ = enc.EncodeString(handshakeMagic)
	_ = enc.EncodeUint(h.version)
	_ = enc.EncodeString(h.nodeID)
	_ = enc.EncodeUint(h.frameBytesMax)
	_ = enc.EncodeString(h.err)
	msgpack.PutEncoder(enc)
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-frameHeaderBytes))
	return b
}

func decodeHello(b []byte) (h hello, err error) {
	r := bytes.NewReader(b)
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(r)
	n, err := d.DecodeArrayLen()
	if err != nil || n < 5 {
		return h, fmt.Errorf("%w: handshake is not a %d-field array", ErrBadFrame, 5)
	}
	magic, err := decodeStr(d, r, b, len(handshakeMagic), "magic")
	if err != nil || magic != handshakeMagic {
		return h, fmt.Errorf("%w: handshake without the %q magic", ErrBadFrame, handshakeMagic)
	}
	if h.version, err = d.DecodeUint64(); err != nil {
		return h, fmt.Errorf("%w: handshake version: %v", ErrBadFrame, err)
	}
	if h.nodeID, err = decodeStr(d, r, b, NodeIDBytesMax, "node id"); err != nil {
		return h, err
	}
	if h.frameBytesMax, err = d.DecodeUint64(); err != nil {
		return h, fmt.Errorf("%w: handshake frame limit: %v", ErrBadFrame, err)
	}
	if h.err, err = decodeStr(d, r, b, len(b), "handshake error"); err != nil {
		return h, err
	}
	if n-5 > r.Len() {
		return h, fmt.Errorf("%w: %d extra handshake fields in %d bytes", ErrBadFrame, n-5, r.Len())
	}
	for i := 5; i < n; i++ {
		if err := skipScalar(d); err != nil {
			return h, err
		}
	}
	return h, nil
}
