package server

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startServer serves b on a loopback port until the test ends.
func startServer(t testing.TB, cfg Config, b Backend) (*Server, string) {
	t.Helper()
	s, err := New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// rawClient speaks RESP by hand and renders replies as text:
// +simple, -error, :int, "bulk" (Go-quoted), (nil), [a, b].
type rawClient struct {
	t  testing.TB
	c  net.Conn
	rd *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, rd: bufio.NewReader(c)}
}

func encode(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

func (r *rawClient) send(raw []byte) {
	r.t.Helper()
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(raw); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) do(args ...string) string {
	r.t.Helper()
	r.send(encode(args...))
	return r.read()
}

func (r *rawClient) read() string {
	r.t.Helper()
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	s, err := readReply(r.rd)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	return s
}

// readReply parses one RESP2 reply into its text rendering.
func readReply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") || len(line) < 3 {
		return "", fmt.Errorf("bad line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-', ':':
		return line[:1] + body, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(rd, buf); err != nil {
			return "", err
		}
		if string(buf[n:]) != "\r\n" {
			return "", fmt.Errorf("bulk not terminated")
		}
		return strconv.Quote(string(buf[:n])), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nilarray)", nil
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(rd); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("bad reply type %q", line)
}

func ioReadFull(rd *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := rd.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// step is one command and its expected rendered reply ("*" matches anything,
// a trailing "*" matches a prefix).
type step struct {
	args []string
	want string
}

func cmd(want string, args ...string) step { return step{args: args, want: want} }

func runSteps(t *testing.T, r *rawClient, steps []step) {
	t.Helper()
	for _, s := range steps {
		got := r.do(s.args...)
		if !replyMatches(got, s.want) {
			t.Errorf("%q: got %s, want %s", s.args, got, s.want)
		}
	}
}

func replyMatches(got, want string) bool {
	if strings.HasSuffix(want, "*") {
		return strings.HasPrefix(got, want[:len(want)-1])
	}
	return got == want
}
