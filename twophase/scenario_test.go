package twophase

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/internal/scenario"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs in testdata/*.txt")

// A scenario file is a sequence of blocks:
//
//	# comments and blank lines, kept on rewrite
//	command args...
//	----
//	expected output lines
//
// ended by a blank line. Commands:
//
//	begin TXN keys=K,K... participants=N,N... [watch=K:V,...] [reads=K,...] [gen=N]
//	    key i goes to participant i mod len(participants); gen=N adds N keys
//	deliver TO TYPE TXN [from=NODE]   deliver the first queued match
//	deliver-all                       deliver the queue in order until empty
//	drop TO TYPE TXN                  lose the first queued match
//	dup                               queue the last delivered message again
//	reorder                           reverse the queue
//	crash NODE | recover NODE         NODE is c (coordinator) or pN
//	tick N [nodes=N,...]              advance the nodes' clocks (all by default) N ticks
//	resolve NODE TXN                  participant NODE queries the record now
//	write NODE KEY VALUE              a plain write (bumps the version)
//	hold NODE                         NODE's driver queues its writes (and what follows them per txn)
//	release NODE [TXN]                perform NODE's queued effects (of TXN only), in order
//	queue | state                     print the queue | every node
func TestScenarios(t *testing.T) {
	files, err := scenario.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

func runScenario(t *testing.T, path string) {
	c := newCluster(testConfig(), 3)
	problems, err := scenario.Play(path, *rewrite, func(b scenario.Block) []string {
		c.out = nil
		if err := c.run(b.Cmd); err != nil {
			c.out = append(c.out, "error: "+err.Error())
		}
		return c.out
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	c.checkAtomic()
	for _, v := range c.violations {
		t.Errorf("%s: violation: %s", path, v)
	}
}

func (c *cluster) run(cmd string) error {
	name, pos, args := scenario.Args(cmd)
	need := func(n int) error {
		if len(pos) != n {
			return fmt.Errorf("%s: want %d arguments, got %d", name, n, len(pos))
		}
		return nil
	}
	switch name {
	case "begin":
		if err := need(1); err != nil {
			return err
		}
		return c.begin(scriptTxn(TxID(pos[0]), args))
	case "deliver", "drop":
		if err := need(3); err != nil {
			return err
		}
		i := c.find(NodeID(pos[0]), pos[1], TxID(pos[2]), NodeID(args["from"]))
		if i < 0 {
			return fmt.Errorf("no queued %s %s to %s", pos[1], pos[2], pos[0])
		}
		m := c.queue[i]
		c.queue = append(c.queue[:i], c.queue[i+1:]...)
		if name == "drop" {
			c.logf("dropped %s -> %s: %s", m.From, m.To, m)
			return nil
		}
		c.deliver(m)
	case "deliver-all":
		for n := 0; len(c.queue) > 0; n++ {
			if n > 1000 {
				return fmt.Errorf("queue does not drain")
			}
			m := c.queue[0]
			c.queue = c.queue[1:]
			c.deliver(m)
		}
	case "dup":
		if c.last == nil {
			return fmt.Errorf("nothing delivered yet")
		}
		c.queue = append(c.queue, *c.last)
		c.logf("queued again %s -> %s: %s", c.last.From, c.last.To, *c.last)
	case "reorder":
		for i, j := 0, len(c.queue)-1; i < j; i, j = i+1, j-1 {
			c.queue[i], c.queue[j] = c.queue[j], c.queue[i]
		}
		c.printQueue()
	case "crash", "recover":
		if err := need(1); err != nil {
			return err
		}
		id := NodeID(pos[0])
		if id != coordID && c.nodes[id] == nil {
			return fmt.Errorf("unknown node %s", id)
		}
		if name == "crash" {
			c.crash(id)
			return nil
		}
		return c.recover(id)
	case "tick":
		if err := need(1); err != nil {
			return err
		}
		n, err := strconv.Atoi(pos[0])
		if err != nil {
			return err
		}
		var only []NodeID
		if args["nodes"] != "" {
			for _, id := range strings.Split(args["nodes"], ",") {
				only = append(only, NodeID(id))
			}
		}
		c.tick(n, only...)
	case "resolve":
		if err := need(2); err != nil {
			return err
		}
		n := c.nodes[NodeID(pos[0])]
		if n == nil || n.p == nil {
			return fmt.Errorf("node %s unknown or down", pos[0])
		}
		c.apply(n.id, n.p.Resolve(c.clock[n.id], TxID(pos[1])))
	case "write":
		if err := need(3); err != nil {
			return err
		}
		n := c.nodes[NodeID(pos[0])]
		if n == nil || n.p == nil {
			return fmt.Errorf("node %s unknown or down", pos[0])
		}
		return c.plainWrite(n, pos[1], pos[2])
	case "hold", "release":
		if len(pos) < 1 || len(pos) > 2 || (name == "hold" && len(pos) == 2) {
			return fmt.Errorf("%s: wrong arguments %v", name, pos)
		}
		n := c.nodes[NodeID(pos[0])]
		if n == nil || n.p == nil {
			return fmt.Errorf("node %s unknown or down", pos[0])
		}
		switch {
		case name == "hold":
			n.hold = true
		case len(pos) == 2:
			c.release(n, TxID(pos[1]))
		default:
			c.release(n, "")
		}
	case "queue":
		c.printQueue()
	case "state":
		c.out = append(c.out, c.state()...)
	default:
		return fmt.Errorf("unknown command %q", name)
	}
	return nil
}

func (c *cluster) printQueue() {
	if len(c.queue) == 0 {
		c.logf("queue empty")
	}
	for _, m := range c.queue {
		c.logf("%s -> %s: %s", m.From, m.To, m)
	}
}

func (c *cluster) find(to NodeID, typ string, txn TxID, from NodeID) int {
	for i, m := range c.queue {
		if m.To == to && m.Type.String() == typ && m.Txn == txn && (from == "" || m.From == from) {
			return i
		}
	}
	return -1
}

func scriptTxn(id TxID, args map[string]string) Txn {
	var keys []string
	if args["keys"] != "" {
		keys = strings.Split(args["keys"], ",")
	}
	if n, _ := strconv.Atoi(args["gen"]); n > 0 {
		for i := range n {
			keys = append(keys, fmt.Sprintf("g%d", i))
		}
	}
	var nodes []string
	if args["participants"] != "" {
		nodes = strings.Split(args["participants"], ",")
	}
	t := Txn{ID: id}
	owner := map[string]int{}
	for _, n := range nodes {
		t.Parts = append(t.Parts, Part{Node: NodeID(n)})
	}
	if len(nodes) == 0 {
		return t
	}
	for i, k := range keys {
		owner[k] = i % len(nodes)
		p := &t.Parts[owner[k]]
		p.Intents = append(p.Intents, Intent{Key: k, Value: []byte(id)})
	}
	if args["watch"] != "" {
		for _, w := range strings.Split(args["watch"], ",") {
			k, v, _ := strings.Cut(w, ":")
			ver, _ := strconv.ParseUint(v, 10, 64)
			p := &t.Parts[owner[k]]
			if p.Watch == nil {
				p.Watch = map[string]uint64{}
			}
			p.Watch[k] = ver
		}
	}
	if args["reads"] != "" {
		for i, k := range strings.Split(args["reads"], ",") {
			p := &t.Parts[i%len(nodes)]
			p.Reads = append(p.Reads, k)
		}
	}
	return t
}
