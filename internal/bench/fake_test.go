package bench

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// fakeServer is a RESP server with just what the bench needs (PING, GET,
// SET, MSET, MULTI/EXEC/DISCARD, CLUSTER SLOTS) and knobs to misbehave. Set
// the knobs before start.
type fakeServer struct {
	addr string

	slots      []slotRange // CLUSTER SLOTS; nil: cluster support disabled
	noMulti    bool        // MULTI is an unknown command
	execErr    string      // EXEC answers this error
	abortEvery int         // every abortEvery-th EXEC answers nil (0: never)
	setErr     string      // every SET (queued or not) answers this error
	checkTxn   func(keys []string) error

	stop func() // closes the listener and every connection; idempotent

	mu         sync.Mutex
	data       map[string]string
	calls      map[string]int
	execs      int
	txnKeys    int    // keys written by committed transactions
	violations int    // transactions checkTxn refused
	violation  string // the first refusal
}

type fakeConn struct {
	inMulti bool
	queued  [][]string
	failed  bool // a queued command failed: EXEC answers EXECABORT
}

// start serves on a loopback port until the test ends.
func (f *fakeServer) start(t *testing.T) string {
	t.Helper()
	f.data, f.calls = map[string]string{}, map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	s := redcon.NewServer(f.addr, f.handle, func(c redcon.Conn) bool { c.SetContext(&fakeConn{}); return true }, nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	f.stop = sync.OnceFunc(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("fake server: %v", err)
		}
	})
	t.Cleanup(f.stop)
	return f.addr
}

func (f *fakeServer) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeServer) handle(c redcon.Conn, cmd redcon.Command) {
	st := c.Context().(*fakeConn)
	args := make([]string, len(cmd.Args))
	for i, a := range cmd.Args {
		args[i] = string(a)
	}
	name := strings.ToLower(args[0])
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	if st.inMulti && name != "exec" && name != "discard" && name != "multi" {
		if name == "set" && f.setErr != "" {
			st.failed = true
			c.WriteError(f.setErr)
			return
		}
		st.queued = append(st.queued, args)
		c.WriteString("QUEUED")
		return
	}
	switch {
	case name == "ping":
		c.WriteString("PONG")
	case name == "get" && len(args) == 2:
		if v, ok := f.data[args[1]]; ok {
			c.WriteBulkString(v)
		} else {
			c.WriteNull()
		}
	case name == "set" && len(args) == 3:
		if f.setErr != "" {
			c.WriteError(f.setErr)
			return
		}
		f.data[args[1]] = args[2]
		c.WriteString("OK")
	case name == "mset" && len(args) >= 3 && len(args)%2 == 1:
		for i := 1; i < len(args); i += 2 {
			f.data[args[i]] = args[i+1]
		}
		c.WriteString("OK")
	case name == "multi" && !f.noMulti:
		if st.inMulti {
			c.WriteError("ERR MULTI calls can not be nested")
			return
		}
		*st = fakeConn{inMulti: true}
		c.WriteString("OK")
	case name == "discard" && !f.noMulti:
		if !st.inMulti {
			c.WriteError("ERR DISCARD without MULTI")
			return
		}
		*st = fakeConn{}
		c.WriteString("OK")
	case name == "exec" && !f.noMulti:
		f.exec(c, st)
	case name == "cluster" && len(args) == 2 && strings.EqualFold(args[1], "slots"):
		if f.slots == nil {
			c.WriteError("ERR This instance has cluster support disabled")
			return
		}
		host, port, _ := net.SplitHostPort(f.addr)
		p, _ := strconv.Atoi(port)
		c.WriteArray(len(f.slots))
		for _, r := range f.slots {
			c.WriteArray(3)
			c.WriteInt(r.start)
			c.WriteInt(r.end)
			c.WriteArray(3)
			c.WriteBulkString(host)
			c.WriteInt(p)
			c.WriteBulkString(r.node)
		}
	default:
		c.WriteError(fmt.Sprintf("ERR unknown command '%s', with args beginning with: ", args[0]))
	}
}

// exec runs under f.mu.
func (f *fakeServer) exec(c redcon.Conn, st *fakeConn) {
	if !st.inMulti {
		c.WriteError("ERR EXEC without MULTI")
		return
	}
	queued, failed := st.queued, st.failed
	*st = fakeConn{}
	f.execs++
	switch {
	case f.execErr != "":
		c.WriteError(f.execErr)
		return
	case failed:
		c.WriteError("EXECABORT Transaction discarded because of previous errors.")
		return
	case f.abortEvery > 0 && f.execs%f.abortEvery == 0:
		c.WriteRaw([]byte("*-1\r\n"))
		return
	}
	var keys []string
	for _, q := range queued {
		if strings.EqualFold(q[0], "set") && len(q) == 3 {
			keys = append(keys, q[1])
		}
	}
	if f.checkTxn != nil && len(queued) > 0 { // the probe's transaction is empty
		if err := f.checkTxn(keys); err != nil {
			if f.violations == 0 {
				f.violation = err.Error()
			}
			f.violations++
		}
	}
	c.WriteArray(len(queued))
	for _, q := range queued {
		if strings.EqualFold(q[0], "set") && len(q) == 3 {
			f.data[q[1]] = q[2]
			f.txnKeys++
			c.WriteString("OK")
		} else {
			c.WriteError("ERR only SET is queued by the fake")
		}
	}
}

// threeNodes splits the buckets over n1, n2, n3 as a 3-node Redis Cluster
// would.
var threeNodes = []slotRange{{0, 5460, "n1"}, {5461, 10922, "n2"}, {10923, 16383, "n3"}}

// hangServer accepts connections, reads and never answers, until the test
// ends.
func hangServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			if closed {
				c.Close()
			}
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, 4096)
				for {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
