package router

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/ring"
)

var update = flag.Bool("update", false, "rewrite testdata/golden_digests.txt")

// goldenCase is a fixed placement input.
type goldenCase struct {
	name  string
	cfg   ring.Config
	nodes []ring.Node
}

func goldenCases() []goldenCase {
	mixed := func(n int) []ring.Node {
		nodes := make([]ring.Node, n)
		for i := range nodes {
			// Weights from 0.25 to 4 in steps of 0.25, spread without randomness.
			nodes[i] = ring.Node{ID: fmt.Sprintf("node-%02d", i), Weight: 0.25 * float64(1+(i*7)%16)}
		}
		return nodes
	}
	def := ring.DefaultConfig()
	rf3 := def
	rf3.RF = 3
	exact := def
	exact.LoadEpsilon = 0
	return []goldenCase{
		{"default-3-equal", def, []ring.Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}, {ID: "c", Weight: 1}}},
		{"default-10-mixed", def, mixed(10)},
		{"default-64-mixed", def, mixed(64)},
		{"rf3-7-mixed", rf3, mixed(7)},
		{"exact-8-mixed", exact, mixed(8)},
		{"small-vnodes", ring.Config{VnodesPerNode: 8, RF: 2, LoadEpsilon: 0.05}, mixed(20)},
	}
}

// goldenDigests computes "name digest" lines for every golden case, as
// epoch-1 tables.
func goldenDigests(t testing.TB) []string {
	var out []string
	for _, c := range goldenCases() {
		r, err := ring.New(c.cfg, c.nodes)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		tab, err := FromRing(1, r)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		d := tab.Digest()
		out = append(out, c.name+" "+hex.EncodeToString(d[:]))
	}
	return append(out, goldenChain(t)...)
}

// goldenChain pins FromRingPrev: a 10-node cluster's first table, then one
// table per change (add, reweight, remove, add), each computed from the
// previous table, as "chain-<step>-<change> digest" lines.
func goldenChain(t testing.TB) []string {
	nodes := make([]ring.Node, 10)
	for i := range nodes {
		nodes[i] = ring.Node{ID: fmt.Sprintf("node-%02d", i), Weight: 0.25 * float64(1+(i*7)%16)}
	}
	r, err := ring.New(ring.DefaultConfig(), nodes)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := FromRing(1, r)
	if err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		name string
		do   func(*ring.Ring) (*ring.Ring, error)
	}{
		{"add-node-10", func(r *ring.Ring) (*ring.Ring, error) { return r.WithNode(ring.Node{ID: "node-10", Weight: 1.5}) }},
		{"reweight-node-03", func(r *ring.Ring) (*ring.Ring, error) { return r.WithWeight("node-03", 3.5) }},
		{"remove-node-05", func(r *ring.Ring) (*ring.Ring, error) { return r.WithoutNode("node-05") }},
		{"add-node-11", func(r *ring.Ring) (*ring.Ring, error) { return r.WithNode(ring.Node{ID: "node-11", Weight: 0.25}) }},
	}
	var out []string
	for i, c := range changes {
		if r, err = c.do(r); err != nil {
			t.Fatalf("chain %s: %v", c.name, err)
		}
		if tab, err = FromRingPrev(uint64(i+2), r, tab); err != nil {
			t.Fatalf("chain %s: %v", c.name, err)
		}
		d := tab.Digest()
		out = append(out, fmt.Sprintf("chain-%d-%s %s", i+1, c.name, hex.EncodeToString(d[:])))
	}
	return out
}

// TestGoldenDigests pins the placement: the committed digests were computed
// by the process that wrote the file (possibly on another machine). A difference means the placement
// changed (hash, cost, bounds, defaults or encoding); if that is intended,
// rerun with -update and say so in the change, since every cluster's buckets
// move.
func TestGoldenDigests(t *testing.T) {
	path := filepath.Join("testdata", "golden_digests.txt")
	got := goldenDigests(t)
	if *update {
		if err := os.WriteFile(path, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(want) != len(got) {
		t.Fatalf("%d golden digests, computed %d", len(want), len(got))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("placement changed:\n got %s\nwant %s", got[i], want[i])
		}
	}
}

const childEnv = "DBX_ROUTER_DIGEST_CHILD"

// TestDigestsAcrossProcesses re-executes the test binary and compares the
// child's digests with this process's: map iteration order, addresses and
// scheduling differ between the two, the placement must not.
func TestDigestsAcrossProcesses(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		for _, l := range goldenDigests(t) {
			fmt.Println("digest", l)
		}
		return
	}
	if testing.Short() {
		t.Skip("re-exec skipped in -short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDigestsAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", "GOMAXPROCS=1", "GOGC=5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var child []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "digest "); ok {
			child = append(child, l)
		}
	}
	mine := goldenDigests(t)
	if strings.Join(child, "\n") != strings.Join(mine, "\n") {
		t.Fatalf("child process computed\n%s\nthis process\n%s", strings.Join(child, "\n"), strings.Join(mine, "\n"))
	}
}
