package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll parses every request of src, returning the commands (each
// joined with spaces, copied) and the final error (nil at a clean EOF).
func readAll(t testing.TB, src io.Reader, lim Limits, b *Budget, unauth bool) ([]string, error) {
	t.Helper()
	rd := NewReader(src, lim, b, unauth)
	defer rd.Release()
	var out []string
	for i := 0; i < 1<<20; i++ {
		args, err := rd.Next()
		if err == ErrIncomplete {
			if err := rd.Fill(); err != nil {
				if errors.Is(err, io.EOF) {
					if rd.Buffered() > 0 {
						return out, io.ErrUnexpectedEOF
					}
					return out, nil
				}
				return out, err
			}
			continue
		}
		if err != nil {
			return out, err
		}
		if len(args) == 0 {
			t.Fatal("Next returned no arguments and no error")
		}
		parts := make([]string, len(args))
		for j, a := range args {
			parts[j] = string(a)
		}
		out = append(out, strings.Join(parts, " "))
		if len(args) > 0 && string(args[0]) == "AUTH" {
			rd.SetAuthenticated(true)
		}
	}
	t.Fatal("readAll: too many iterations")
	return nil, nil
}

func TestReaderParses(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"multibulk", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", []string{"GET k"}, ""},
		{"pipeline", "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", []string{"PING", "ECHO "}, ""},
		{"empty multibulk skipped", "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", []string{"PING"}, ""},
		{"inline", "SET k v\r\nGET k\n", []string{"SET k v", "GET k"}, ""},
		{"inline blank skipped", "\r\n\n  \r\nPING\r\n", []string{"PING"}, ""},
		{"inline quotes", `SET "a b" 'c\'d' "\x41\n"` + "\r\n", []string{"SET a b c'd A\n"}, ""},
		{"inline unbalanced", "SET \"a b\r\n", nil, "Protocol error: unbalanced quotes in request"},
		{"inline quote then text", "SET \"a\"b\r\n", nil, "Protocol error: unbalanced quotes in request"},
		{"binary bulk", "*2\r\n$3\r\nGET\r\n$4\r\n\r\n\x00\xff\r\n", []string{"GET \r\n\x00\xff"}, ""},
		// The two requests that crashed and pinned redcon v1.6.2.
		{"redcon overflow", "*1\r\n$9223372036854775800\r\n", nil, "Protocol error: invalid bulk length (9223372036854775800 bytes, the limit is 16777216)"},
		{"redcon huge count", "*9223372036854775807\r\n", nil, "Protocol error: invalid multibulk length"},
		{"count overflow", "*99999999999999999999\r\n", nil, "Protocol error: invalid multibulk length"},
		{"count over max", "*1048577\r\n", nil, "Protocol error: invalid multibulk length"},
		{"count not a number", "*1x\r\n", nil, "Protocol error: invalid multibulk length"},
		{"count plus sign", "*+1\r\n", nil, "Protocol error: invalid multibulk length"},
		{"bulk negative", "*1\r\n$-1\r\n", nil, "Protocol error: invalid bulk length"},
		{"bulk overflow", "*1\r\n$-9223372036854775809\r\n", nil, "Protocol error: invalid bulk length"},
		{"bulk over max", "*1\r\n$16777217\r\n", nil, "Protocol error: invalid bulk length (16777217 bytes, the limit is 16777216)"},
		{"bulk no dollar", "*1\r\n:1\r\n", nil, "Protocol error: expected '$', got ':'"},
		{"bulk bad crlf", "*1\r\n$1\r\nab\r\n", nil, "Protocol error: expected CRLF after bulk data"},
		{"header lf only", "*1\n", nil, "Protocol error: expected CRLF at the end of a header line"},
		{"truncated", "*2\r\n$3\r\nGET\r\n", nil, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				var src io.Reader = strings.NewReader(tc.in)
				if chunked {
					src = iotest.OneByteReader(src)
				}
				got, err := readAll(t, src, DefaultLimits(), nil, false)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("chunked=%v: commands %q, want %q", chunked, got, tc.want)
				}
				if es := errString(err); es != tc.err {
					t.Errorf("chunked=%v: error %q, want %q", chunked, es, tc.err)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestReaderUnauthenticatedLimits(t *testing.T) {
	lim := DefaultLimits()
	many := "*11\r\n" + strings.Repeat("$1\r\na\r\n", 11)
	if _, err := readAll(t, strings.NewReader(many), lim, nil, true); errString(err) != "Protocol error: unauthenticated multibulk length" {
		t.Fatalf("11 args unauthenticated: %v", err)
	}
	big := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n", lim.UnauthBulkBytesMax+1)
	if _, err := readAll(t, strings.NewReader(big), lim, nil, true); errString(err) != "Protocol error: unauthenticated bulk length" {
		t.Fatalf("big bulk unauthenticated: %v", err)
	}
	// After AUTH (readAll lifts the limits) the same requests pass.
	in := "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n" + many
	got, err := readAll(t, strings.NewReader(in), lim, nil, true)
	if err != nil || len(got) != 2 {
		t.Fatalf("after AUTH: %q, %v", got, err)
	}
}

// TestReaderBufferFollowsReceivedBytes: a declared length costs nothing
// until its bytes arrive; the buffer is at most about twice what was sent.
func TestReaderBufferFollowsReceivedBytes(t *testing.T) {
	lim := DefaultLimits()
	b := NewBudget(1 << 30)
	pr, pw := io.Pipe()
	rd := NewReader(pr, lim, b, false)
	head := "*2\r\n$3\r\nSET\r\n$16000000\r\n0123456789"
	go func() {
		pw.Write([]byte(head))
	}()
	for {
		if _, err := rd.Next(); err != ErrIncomplete {
			t.Fatalf("Next: %v", err)
		}
		if rd.Buffered() >= len(head) {
			break
		}
		if err := rd.Fill(); err != nil {
			t.Fatal(err)
		}
	}
	if got := rd.BufferBytes(); got != bufBytesInit {
		t.Fatalf("buffer after a 16 MB declaration and 10 data bytes: %d bytes, want %d", got, bufBytesInit)
	}
	if b.Used() != bufBytesInit {
		t.Fatalf("budget used %d, want %d", b.Used(), bufBytesInit)
	}
	// Send 1 MB more: the buffer grows, at most to twice what arrived.
	go func() {
		pw.Write(bytes.Repeat([]byte{'x'}, 1<<20))
	}()
	for rd.Buffered() < len(head)+1<<20 {
		if err := rd.Fill(); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.Next(); err != ErrIncomplete {
			t.Fatalf("Next: %v", err)
		}
	}
	if got, max := rd.BufferBytes(), 2*(len(head)+1<<20); got > max {
		t.Fatalf("buffer %d bytes for %d received", got, len(head)+1<<20)
	}
	rd.Release()
	pw.Close()
	if b.Used() != 0 {
		t.Fatalf("budget used %d after Release", b.Used())
	}
}

func TestReaderRequestTooLarge(t *testing.T) {
	lim := DefaultLimits()
	lim.BulkBytesMax, lim.RequestBytesMax = 1<<20, 2<<20
	// Declared over the request bound: refused at the header.
	in := "*3\r\n$3\r\nSET\r\n$1048576\r\n" + strings.Repeat("x", 1<<20) + "\r\n$1048576\r\n"
	if _, err := readAll(t, strings.NewReader(in), lim, nil, false); !errors.Is(err, ErrRequestTooLarge) {
		t.Fatalf("err %v, want ErrRequestTooLarge", err)
	}
	// Many small arguments adding up past the bound.
	var sb strings.Builder
	sb.WriteString("*1000000\r\n")
	for sb.Len() < 3<<20 {
		sb.WriteString("$1\r\na\r\n")
	}
	if _, err := readAll(t, strings.NewReader(sb.String()), lim, nil, false); !errors.Is(err, ErrRequestTooLarge) {
		t.Fatalf("err %v, want ErrRequestTooLarge", err)
	}
}

func TestReaderBudget(t *testing.T) {
	b := NewBudget(100 << 10)
	in := "*2\r\n$3\r\nSET\r\n$200000\r\n" + strings.Repeat("x", 200000) + "\r\n"
	if _, err := readAll(t, strings.NewReader(in), DefaultLimits(), b, false); !errors.Is(err, ErrInputMemory) {
		t.Fatalf("err %v, want ErrInputMemory", err)
	}
	if b.Rejected() == 0 || b.Used() != 0 {
		t.Fatalf("rejected %d used %d", b.Rejected(), b.Used())
	}
	// Small requests fit.
	if got, err := readAll(t, strings.NewReader("*1\r\n$4\r\nPING\r\n"), DefaultLimits(), b, false); err != nil || len(got) != 1 {
		t.Fatalf("%q %v", got, err)
	}
	if b.Peak() > b.Max() {
		t.Fatalf("peak %d over max %d", b.Peak(), b.Max())
	}
}

// TestReaderSlowHeader: a header line sent one byte at a time is scanned
// once (a quadratic rescan would take minutes here).
func TestReaderSlowHeader(t *testing.T) {
	lim := DefaultLimits()
	in := "*1\r\n$" + strings.Repeat("0", lim.InlineBytesMax-10) + "1\r\na\r\n"
	got, err := readAll(t, iotest.OneByteReader(strings.NewReader(in)), lim, nil, false)
	if err == nil || len(got) != 0 {
		t.Fatalf("got %q, %v; want an invalid bulk length (too many digits)", got, err)
	}
	inl := strings.Repeat("a", lim.InlineBytesMax+1)
	if _, err := readAll(t, iotest.OneByteReader(strings.NewReader(inl)), lim, nil, false); errString(err) != "Protocol error: too big inline request" {
		t.Fatalf("long inline: %v", err)
	}
}

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	w.WriteString("OK")
	w.WriteError("ERR a\r\nb")
	w.WriteInt64(-7)
	w.WriteArray(2)
	w.WriteBulk([]byte("x\r\n"))
	w.WriteNull()
	w.WriteBulkString("")
	w.WriteRaw([]byte("+r\r\n"))
	if out.Len() != 0 {
		t.Fatal("wrote before Flush")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "+OK\r\n-ERR a  b\r\n:-7\r\n*2\r\n$3\r\nx\r\n\r\n$-1\r\n$0\r\n\r\n+r\r\n"
	if out.String() != want {
		t.Fatalf("%q, want %q", out.String(), want)
	}
}
