package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Router dispatches requests to handlers by method name; its Handle method
// is a Handler: t.Serve(r.Handle). Register and Call add typed methods
// whose requests and responses travel as msgpack.
//
// Concurrency: Register (and HandleFunc) may be called at any time, also
// while requests are served; registering a method twice panics, as
// http.ServeMux does.
type Router struct {
	mu sync.RWMutex
	m  map[string]Handler
}

// NewRouter returns a router without methods.
func NewRouter() *Router { return &Router{m: make(map[string]Handler)} }

// HandleFunc registers h for method. It panics on an invalid or duplicate
// method name.
func (r *Router) HandleFunc(method string, h Handler) {
	if err := checkMethod(method); err != nil {
		panic(fmt.Sprintf("transport: Router.HandleFunc(%q): %v", method, err))
	}
	if h == nil {
		panic(fmt.Sprintf("transport: Router.HandleFunc(%q): nil handler", method))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[method]; dup {
		panic(fmt.Sprintf("transport: Router.HandleFunc(%q): method already registered", method))
	}
	r.m[method] = h
}

// Methods returns the registered method names, sorted.
func (r *Router) Methods() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ms := make([]string, 0, len(r.m))
	for m := range r.m {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return ms
}

// Handle is the router's Handler: it runs the handler registered for
// method, or fails with ErrUnknownMethod. The caller's node ID is
// available to typed handlers through Caller.
func (r *Router) Handle(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	r.mu.RLock()
	h := r.m[method]
	r.mu.RUnlock()
	if h == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMethod, method)
	}
	return h(context.WithValue(ctx, callerKey{}, from), from, method, body)
}

type callerKey struct{}

// Caller returns the node ID of the caller of the request ctx belongs to,
// inside a handler run by a Router ("" elsewhere).
func Caller(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// Register registers fn for method on r: the request body is decoded from
// msgpack into a new Req, and fn's response encoded into msgpack (a nil
// response travels as msgpack nil and decodes to a zero Resp). A body that
// does not decode fails with ErrCodec. It panics on an invalid or duplicate
// method name.
func Register[Req, Resp any](r *Router, method string, fn func(ctx context.Context, req *Req) (*Resp, error)) {
	r.HandleFunc(method, func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
		req := new(Req)
		if err := unmarshal(body, req); err != nil {
			return nil, fmt.Errorf("%w: request of %q: %v", ErrCodec, method, err)
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		b, err := msgpack.Marshal(resp)
		if err != nil {
			return nil, fmt.Errorf("%w: response of %q: %v", ErrCodec, method, err)
		}
		return b, nil
	})
}

// Call calls a method registered with Register on the node at addr: req is
// encoded into msgpack, the response decoded into a new Resp. Errors are
// those of Transport.Call, plus ErrCodec for a request or response that
// does not encode or decode.
func Call[Req, Resp any](ctx context.Context, t Transport, addr, method string, req *Req) (*Resp, error) {
	b, err := msgpack.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: request of %q: %v", ErrCodec, method, err)
	}
	out, err := t.Call(ctx, addr, method, b)
	if err != nil {
		return nil, err
	}
	resp := new(Resp)
	if err := unmarshal(out, resp); err != nil {
		return nil, fmt.Errorf("%w: response of %q from %s: %v", ErrCodec, method, addr, err)
	}
	return resp, nil
}

// msgpackDepthMax bounds the nesting of a typed body.
const msgpackDepthMax = 64

// unmarshal decodes one msgpack value from b into v after checking that b
// is well formed: every declared length fits in b, nesting is at most
// msgpackDepthMax deep, nothing trails. msgpack would otherwise allocate a
// length a peer merely declares.
func unmarshal(b []byte, v any) error {
	if err := checkMsgpack(b); err != nil {
		return err
	}
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(bytes.NewReader(b))
	return d.Decode(v)
}

// checkMsgpack validates the structure of one msgpack value spanning b,
// without allocating in proportion to declared sizes.
func checkMsgpack(b []byte) error {
	// stack holds the number of values still expected at each open level.
	var stack [msgpackDepthMax + 1]uint64
	depth := 0
	stack[0] = 1
	pos := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-pos) {
			return fmt.Errorf("msgpack: value of %d bytes at offset %d, only %d left", n, pos, len(b)-pos)
		}
		return nil
	}
	// length reads a big-endian unsigned integer of size bytes.
	length := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(b[pos])
		case 2:
			n = uint64(binary.BigEndian.Uint16(b[pos:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(b[pos:]))
		}
		pos += size
		return n, nil
	}
	for {
		for depth > 0 && stack[depth] == 0 {
			depth--
		}
		if stack[depth] == 0 { // depth 0 done: the one top-level value
			if pos != len(b) {
				return fmt.Errorf("msgpack: %d trailing bytes", len(b)-pos)
			}
			return nil
		}
		stack[depth]--
		if err := need(1); err != nil {
			return err
		}
		c := b[pos]
		pos++
		var skip, items uint64 // bytes to skip; values contained
		var err error
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		case c >= 0x80 && c <= 0x8f: // fixmap
			items = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f: // fixarray
			items = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
		case c == 0xc4, c == 0xd9: // bin8, str8
			skip, err = length(1)
		case c == 0xc5, c == 0xda: // bin16, str16
			skip, err = length(2)
		case c == 0xc6, c == 0xdb: // bin32, str32
			skip, err = length(4)
		case c == 0xc7: // ext8
			skip, err = length(1)
			skip++
		case c == 0xc8: // ext16
			skip, err = length(2)
			skip++
		case c == 0xc9: // ext32
			skip, err = length(4)
			skip++
		case c == 0xca, c == 0xce, c == 0xd2: // float32, uint32, int32
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3: // float64, uint64, int64
			skip = 8
		case c == 0xcc, c == 0xd0: // uint8, int8
			skip = 1
		case c == 0xcd, c == 0xd1: // uint16, int16
			skip = 2
		case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc: // array16
			items, err = length(2)
		case c == 0xdd: // array32
			items, err = length(4)
		case c == 0xde: // map16
			items, err = length(2)
			items *= 2
		case c == 0xdf: // map32
			items, err = length(4)
			items *= 2
		default: // 0xc1: never used
			return fmt.Errorf("msgpack: invalid code %#x at offset %d", c, pos-1)
		}
		if err != nil {
			return err
		}
		if err := need(skip); err != nil {
			return err
		}
		pos += int(skip)
		if items > 0 {
			if err := need(items); err != nil { // every value takes a byte
				return err
			}
			if depth == msgpackDepthMax {
				return fmt.Errorf("msgpack: nested deeper than %d", msgpackDepthMax)
			}
			depth++
			stack[depth] = items
		}
	}
}
