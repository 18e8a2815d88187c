package resp

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits bound what a Reader accepts. Every declared count and length is
// checked against them before anything is buffered for it.
type Limits struct {
	// ArgsMax bounds a multibulk count (arguments of one request, the
	// command name included). Redis: 1,048,576.
	ArgsMax int
	// BulkBytesMax bounds one argument. Redis: proto-max-bulk-len.
	BulkBytesMax int
	// RequestBytesMax bounds one request as it is buffered: headers, data
	// and CRLFs (Redis's client-query-buffer-limit for one request). A
	// request that declares or reaches more ends the connection.
	RequestBytesMax int
	// InlineBytesMax bounds an inline request line and any header line.
	// Redis: 64 KiB.
	InlineBytesMax int
	// UnauthArgsMax and UnauthBulkBytesMax apply while the connection is
	// not authenticated (Redis 7: 10 and 16,384).
	UnauthArgsMax, UnauthBulkBytesMax int
}

// DefaultLimits are Redis's limits with dbx's 16 MiB argument bound.
func DefaultLimits() Limits {
	return Limits{
		ArgsMax:            1 << 20,
		BulkBytesMax:       16 << 20,
		RequestBytesMax:    64 << 20,
		InlineBytesMax:     64 << 10,
		UnauthArgsMax:      10,
		UnauthBulkBytesMax: 16 << 10,
	}
}

// Validate reports every problem at once.
func (l Limits) Validate() error {
	var errs []error
	if l.ArgsMax < 1 {
		errs = append(errs, fmt.Errorf("resp: ArgsMax (%d) must be at least 1", l.ArgsMax))
	}
	if l.BulkBytesMax < 1 {
		errs = append(errs, fmt.Errorf("resp: BulkBytesMax (%d) must be at least 1", l.BulkBytesMax))
	}
	if l.InlineBytesMax < 64 {
		errs = append(errs, fmt.Errorf("resp: InlineBytesMax (%d) must be at least 64", l.InlineBytesMax))
	}
	if l.RequestBytesMax < l.BulkBytesMax+l.InlineBytesMax {
		errs = append(errs, fmt.Errorf("resp: RequestBytesMax (%d) must be at least BulkBytesMax+InlineBytesMax (%d)",
			l.RequestBytesMax, l.BulkBytesMax+l.InlineBytesMax))
	}
	if l.UnauthArgsMax < 2 || l.UnauthArgsMax > l.ArgsMax {
		errs = append(errs, fmt.Errorf("resp: UnauthArgsMax (%d) must be in [2, ArgsMax (%d)]", l.UnauthArgsMax, l.ArgsMax))
	}
	if l.UnauthBulkBytesMax < 64 || l.UnauthBulkBytesMax > l.BulkBytesMax {
		errs = append(errs, fmt.Errorf("resp: UnauthBulkBytesMax (%d) must be in [64, BulkBytesMax (%d)]", l.UnauthBulkBytesMax, l.BulkBytesMax))
	}
	return errors.Join(errs...)
}

var (
	// ErrIncomplete is returned by Next when the buffer holds no complete
	// request: call Fill, then Next again.
	ErrIncomplete = errors.New("resp: incomplete request")
	// ErrRequestTooLarge reports a request over Limits.RequestBytesMax.
	ErrRequestTooLarge = errors.New("request too large")
	// ErrInputMemory reports that the node-wide client input budget had no
	// room for the buffer this request needs.
	ErrInputMemory = errors.New("client input memory limit reached")
)

// ProtocolError is malformed input. RESP cannot resynchronise after one, so
// the server replies "-ERR Protocol error: <Msg>" and closes the connection.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

func protoErr(msg string) error { return &ProtocolError{Msg: msg} }

// Sizes of the read buffer: it starts at bufBytesInit, doubles only when a
// single incomplete request fills it (so it is at most twice the bytes that
// request has actually sent), and returns to bufBytesInit once it is empty
// again after having grown past bufBytesShrink.
const (
	bufBytesInit   = 16 << 10
	bufBytesShrink = 64 << 10
	// lenDigitsMax bounds the digits of a declared count or length.
	lenDigitsMax = 19
)

// span is an argument's place in the buffer, relative to the start of its
// request (offsets survive compaction, which moves the request to 0).
type span struct{ off, n int }

// Reader parses client requests (multibulk and inline) from a stream under
// Limits. It is not safe for concurrent use.
//
// The work done per Fill and Next is bounded by the bytes received: a
// request is parsed incrementally, each byte once, and no buffer is sized
// by a declared length — a client that declares 512 MiB and sends 10 bytes
// costs 16 KiB.
type Reader struct {
	src    io.Reader
	lim    Limits
	budget *Budget
	unauth bool

	buf  []byte // buf[r:w] is unparsed input
	r, w int
	held int // bytes of buf reserved from budget

	// the request being parsed; offsets relative to r
	kind  byte // 0: none yet, '*' multibulk, 'i' inline
	count int  // declared arguments of a multibulk
	pos   int  // parse position
	bulk  int  // declared length of the bulk being read, -1 for a header next
	scan  int  // where the search for the end of the current line resumes
	spans []span
	args  [][]byte
}

// NewReader returns a Reader of src under lim, reserving its buffers from
// budget (nil: unbounded). It starts unauthenticated when unauth is set.
func NewReader(src io.Reader, lim Limits, budget *Budget, unauth bool) *Reader {
	return &Reader{src: src, lim: lim, budget: budget, unauth: unauth, bulk: -1}
}

// SetAuthenticated lifts the unauthenticated limits (after AUTH).
func (r *Reader) SetAuthenticated(ok bool) { r.unauth = !ok }

// Buffered is the number of unparsed bytes held.
func (r *Reader) Buffered() int { return r.w - r.r }

// BufferBytes is the size of the read buffer (what the connection holds
// against the budget).
func (r *Reader) BufferBytes() int { return r.held }

// Release returns the buffer to the budget; the Reader must not be used
// afterwards.
func (r *Reader) Release() {
	r.budget.Release(r.held)
	r.held, r.buf, r.r, r.w = 0, nil, 0, 0
}

// Fill reads once from the source into the buffer, growing it if a single
// request fills it. It returns the source's error (io.EOF at the end),
// ErrRequestTooLarge or ErrInputMemory.
func (r *Reader) Fill() error {
	if r.r == r.w && r.kind == 0 {
		r.r, r.w = 0, 0
		if len(r.buf) > bufBytesShrink {
			r.budget.Release(r.held)
			r.held, r.buf = 0, nil
		}
	}
	if r.buf == nil {
		if !r.budget.Reserve(bufBytesInit) {
			return ErrInputMemory
		}
		r.held = bufBytesInit
		r.buf = make([]byte, bufBytesInit)
	}
	if r.w == len(r.buf) {
		if r.r > 0 { // move the incomplete request to the front
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		} else {
			if len(r.buf) >= r.lim.RequestBytesMax {
				return ErrRequestTooLarge
			}
			n := min(2*len(r.buf), r.lim.RequestBytesMax)
			if !r.budget.Reserve(n - r.held) {
				return ErrInputMemory
			}
			nb := make([]byte, n)
			copy(nb, r.buf[:r.w])
			r.buf, r.held = nb, n
		}
	}
	n, err := r.src.Read(r.buf[r.w:])
	r.w += n
	if n > 0 && err != nil && !errors.Is(err, io.EOF) {
		return nil // deliver what arrived first; the error comes back on the next read
	}
	return err
}

// Next parses the next complete request and returns its arguments (never
// empty). They alias the buffer and are valid until the next Next or Fill.
// ErrIncomplete means more input is needed; a *ProtocolError or
// ErrRequestTooLarge is final for the connection.
func (r *Reader) Next() ([][]byte, error) {
	for {
		args, err := r.next()
		if err != nil || len(args) > 0 {
			return args, err
		}
		// an empty request ("*0", "*-1", a blank inline line): Redis skips it
	}
}

func (r *Reader) next() ([][]byte, error) {
	in := r.buf[r.r:r.w]
	if r.kind == 0 {
		if len(in) == 0 {
			return nil, ErrIncomplete
		}
		if in[0] == '*' {
			r.kind = '*'
			r.count = -1
		} else {
			r.kind = 'i'
		}
		r.pos, r.scan, r.bulk = 0, 0, -1
		r.spans = r.spans[:0]
	}
	if r.kind == 'i' {
		return r.inline(in)
	}
	if r.count < 0 {
		line, err := r.line(in, "too big mbulk count string")
		if err != nil {
			return nil, err
		}
		n, ok := parseLen(line[1:])
		switch {
		case !ok || n > int64(r.lim.ArgsMax):
			return nil, protoErr("invalid multibulk length")
		case n <= 0:
			r.consume()
			return nil, nil
		case r.unauth && n > int64(r.lim.UnauthArgsMax):
			return nil, protoErr("unauthenticated multibulk length")
		}
		r.count = int(n)
	}
	for len(r.spans) < r.count {
		if r.bulk < 0 {
			line, err := r.line(in, "too big bulk count string")
			if err != nil {
				return nil, err
			}
			if line[0] != '$' {
				return nil, protoErr(fmt.Sprintf("expected '$', got '%s'", printable(line[0])))
			}
			n, ok := parseLen(line[1:])
			switch {
			case !ok || n < 0:
				return nil, protoErr("invalid bulk length")
			case n > int64(r.lim.BulkBytesMax):
				return nil, protoErr(fmt.Sprintf("invalid bulk length (%d bytes, the limit is %d)", n, r.lim.BulkBytesMax))
			case r.unauth && n > int64(r.lim.UnauthBulkBytesMax):
				return nil, protoErr("unauthenticated bulk length")
			case int64(r.pos)+n+2 > int64(r.lim.RequestBytesMax):
				return nil, ErrRequestTooLarge
			}
			r.bulk = int(n)
		}
		end := r.pos + r.bulk
		if end+2 > len(in) {
			return nil, ErrIncomplete
		}
		if in[end] != '\r' || in[end+1] != '\n' {
			return nil, protoErr("expected CRLF after bulk data")
		}
		r.spans = append(r.spans, span{r.pos, r.bulk})
		r.pos, r.scan, r.bulk = end+2, end+2, -1
	}
	args := r.build(in)
	r.consume()
	return args, nil
}

// line returns the header line at pos (without CRLF) and moves pos past
// it. The search resumes where the last one stopped, so a slow client's
// header costs its length, not its length squared.
func (r *Reader) line(in []byte, tooBig string) ([]byte, error) {
	for i := max(r.scan, r.pos); i < len(in); i++ {
		if in[i] != '\n' {
			continue
		}
		if i-r.pos > r.lim.InlineBytesMax {
			return nil, protoErr(tooBig)
		}
		if i == r.pos || in[i-1] != '\r' {
			return nil, protoErr("expected CRLF at the end of a header line")
		}
		line := in[r.pos : i-1]
		if len(line) == 0 {
			return nil, protoErr("empty header line")
		}
		r.pos, r.scan = i+1, i+1
		return line, nil
	}
	r.scan = len(in)
	if len(in)-r.pos > r.lim.InlineBytesMax {
		return nil, protoErr(tooBig)
	}
	if r.pos > r.lim.RequestBytesMax {
		return nil, ErrRequestTooLarge
	}
	return nil, ErrIncomplete
}

func (r *Reader) build(in []byte) [][]byte {
	r.args = r.args[:0]
	for _, s := range r.spans {
		r.args = append(r.args, in[s.off:s.off+s.n:s.off+s.n])
	}
	return r.args
}

// consume ends the current request.
func (r *Reader) consume() {
	r.r += r.pos
	r.kind, r.pos, r.scan, r.bulk = 0, 0, 0, -1
}

// inline parses a request line as Redis does (sdssplitargs): words split
// by spaces, "double quotes" with \n \r \t \b \a \\ \" \xHH escapes,
// 'single quotes' with \'. Arguments are decoded in place.
func (r *Reader) inline(in []byte) ([][]byte, error) {
	i := -1
	for j := r.scan; j < len(in); j++ {
		if in[j] == '\n' {
			i = j
			break
		}
	}
	if i < 0 {
		r.scan = len(in)
		if len(in) > r.lim.InlineBytesMax {
			return nil, protoErr("too big inline request")
		}
		return nil, ErrIncomplete
	}
	if i > r.lim.InlineBytesMax {
		return nil, protoErr("too big inline request")
	}
	line := in[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	r.pos = i + 1
	if err := r.splitInline(line); err != nil {
		return nil, err
	}
	if r.unauth && len(r.spans) > r.lim.UnauthArgsMax {
		return nil, protoErr("unauthenticated multibulk length")
	}
	if len(r.spans) > r.lim.ArgsMax {
		return nil, protoErr("invalid multibulk length")
	}
	args := r.build(in)
	r.consume()
	return args, nil
}

func (r *Reader) splitInline(line []byte) error {
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			return nil
		}
		start := p // decoded bytes are written from start; never ahead of p
		o := start
		switch line[p] {
		case '"':
			p++
			for {
				if p == len(line) {
					return protoErr("unbalanced quotes in request")
				}
				c := line[p]
				if c == '\\' && p+3 < len(line) && line[p+1] == 'x' && isHex(line[p+2]) && isHex(line[p+3]) {
					line[o] = unhex(line[p+2])<<4 | unhex(line[p+3])
					o, p = o+1, p+4
					continue
				}
				if c == '\\' && p+1 < len(line) {
					p++
					switch line[p] {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					default:
						c = line[p]
					}
					line[o] = c
					o, p = o+1, p+1
					continue
				}
				if c == '"' {
					p++
					if p < len(line) && !isSpace(line[p]) {
						return protoErr("unbalanced quotes in request")
					}
					break
				}
				line[o] = c
				o, p = o+1, p+1
			}
		case '\'':
			p++
			for {
				if p == len(line) {
					return protoErr("unbalanced quotes in request")
				}
				c := line[p]
				if c == '\\' && p+1 < len(line) && line[p+1] == '\'' {
					line[o] = '\''
					o, p = o+1, p+2
					continue
				}
				if c == '\'' {
					p++
					if p < len(line) && !isSpace(line[p]) {
						return protoErr("unbalanced quotes in request")
					}
					break
				}
				line[o] = c
				o, p = o+1, p+1
			}
		default:
			for p < len(line) && !isSpace(line[p]) {
				p++
			}
			o = p
		}
		if len(r.spans) >= r.lim.ArgsMax {
			return protoErr("invalid multibulk length")
		}
		r.spans = append(r.spans, span{start, o - start})
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// parseLen parses a declared count or length: an optional '-' and 1 to 19
// decimal digits, nothing else, no overflow.
func parseLen(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > lenDigitsMax {
		return 0, false
	}
	if neg { // any negative count or length means "none"; only its form matters
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		return -1, true
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return `\x` + strconv.FormatUint(uint64(c)|0x100, 16)[1:]
}
