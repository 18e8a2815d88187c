package integration

// Multi-process cluster: real dbx-node binaries on loopback, killed with
// SIGKILL and restarted with the same data dir. Every acknowledged write
// must survive (the nodes run with the default --sync always).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// binDir is the temporary directory buildNode used; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildNode builds cmd/dbx-node into a temporary directory once per test
// binary and returns its path.
var buildNode = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "dbx-node-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "dbx-node")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/dbx-kv/dbx/cmd/dbx-node")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func nodeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test builds and runs dbx-node binaries: skipped under -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH: cannot build dbx-node")
	}
	bin, err := buildNode()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 that are also
// free for UDP (memberlist binds both).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n && tries < 100*n; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			l.Close()
			continue
		}
		u.Close()
		lns = append(lns, l)
		ports = append(ports, p)
	}
	if len(ports) < n {
		t.Fatalf("found %d free ports, want %d", len(ports), n)
	}
	return ports
}

// proc is one dbx-node process.
type proc struct {
	id, dir, logPath        string
	resp, rpc, gossip, http string
	cluster                 string // --cluster-resp-addr ("": the default)
	cmd                     *exec.Cmd
	exited                  chan struct{}
	extra                   []string // more serve flags, for the next start only
}

func (p *proc) start(t *testing.T, bin string, join []string) {
	t.Helper()
	args := []string{"serve", "--id", p.id, "--data-dir", p.dir,
		"--resp-addr", p.resp, "--rpc-addr", p.rpc, "--gossip-addr", p.gossip, "--http-addr", p.http,
		"--join-timeout", "20s", "--log-level", "info"}
	if p.cluster != "" {
		args = append(args, "--cluster-resp-addr", p.cluster)
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	args = append(args, p.extra...)
	p.extra = nil
	lf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(lf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", p.id, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		lf.Close()
		close(exited)
	}(p.exited)
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits (at most 10 s) for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s (pid %d) still running 10 s after SIGKILL", p.id, p.cmd.Process.Pid)
	}
}

// stop sends SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func healthy(httpAddr string) error {
	hc := http.Client{Timeout: time.Second}
	resp, err := hc.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz %d", resp.StatusCode)
	}
	return nil
}

// mpCluster is a cluster of dbx-node processes.
type mpCluster struct {
	bin   string
	procs []*proc
}

// startProcCluster starts size dbx-node processes n1..n<size>; edit, if
// given, sees each proc before its first start (to add flags, say).
func startProcCluster(t *testing.T, size int, edit ...func(*proc)) *mpCluster {
	t.Helper()
	c := &mpCluster{bin: nodeBinary(t)}
	ports := freePorts(t, 5*size)
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	logDir := t.TempDir()
	if d := os.Getenv("DBX_TEST_LOG_DIR"); d != "" { // keep the nodes' logs (debugging)
		logDir = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		_ = os.MkdirAll(logDir, 0o755)
	}
	for i := range size {
		p := &proc{
			id:      fmt.Sprintf("n%d", i+1),
			dir:     t.TempDir(),
			logPath: filepath.Join(logDir, fmt.Sprintf("n%d.log", i+1)),
			resp:    addr(ports[5*i]), rpc: addr(ports[5*i+1]), gossip: addr(ports[5*i+2]), http: addr(ports[5*i+3]),
			cluster: addr(ports[5*i+4]),
		}
		for _, e := range edit {
			e(p)
		}
		c.procs = append(c.procs, p)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.stop()
		}
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("--- last lines of %s's log:\n%s", p.id, p.logTail(40))
			}
		}
	})
	for i, p := range c.procs {
		var join []string
		if i > 0 {
			join = []string{c.procs[0].gossip}
		}
		p.start(t, c.bin, join)
		if i == 0 {
			waitFor(t, 15*time.Second, p.id+" healthy", func() error { return healthy(p.http) })
		}
	}
	c.waitActive(t, 30*time.Second, c.procs)
	return c
}

// waitActive waits until every process in live answers /v1/cluster with
// the same epoch and leader, every member active and owning buckets.
func (c *mpCluster) waitActive(t *testing.T, d time.Duration, live []*proc) clusterJSON {
	t.Helper()
	var last clusterJSON
	waitFor(t, d, "all members active", func() error {
		var first *clusterJSON
		for _, p := range live {
			if !p.running() {
				return fmt.Errorf("%s exited:\n%s", p.id, p.logTail(20))
			}
			cj, err := getCluster(p.http)
			if err != nil {
				return fmt.Errorf("%s: %v", p.id, err)
			}
			if len(cj.Nodes) != len(c.procs) || cj.Leader == "" {
				return fmt.Errorf("%s: %d nodes, leader %q", p.id, len(cj.Nodes), cj.Leader)
			}
			for _, nd := range cj.Nodes {
				if nd.State != "active" || nd.Buckets == 0 {
					return fmt.Errorf("%s sees %s %s with %d buckets", p.id, nd.ID, nd.State, nd.Buckets)
				}
			}
			if first == nil {
				first = &cj
			} else if cj.Epoch != first.Epoch || cj.Leader != first.Leader {
				return fmt.Errorf("%s: epoch %d leader %s, others epoch %d leader %s", p.id, cj.Epoch, cj.Leader, first.Epoch, first.Leader)
			}
		}
		last = *first
		return nil
	})
	return last
}

func (c *mpCluster) byID(id string) *proc {
	for _, p := range c.procs {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (c *mpCluster) live() []*proc {
	var out []*proc
	for _, p := range c.procs {
		if p.running() {
			out = append(out, p)
		}
	}
	return out
}

// owners maps every bucket to the ID of its owner, from CLUSTER SLOTS of
// addr.
func owners(ctx context.Context, t *testing.T, rc *redis.Client) []string {
	t.Helper()
	slots, err := rc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, router.NumBuckets)
	for _, s := range slots {
		for b := s.Start; b <= s.End; b++ {
			out[b] = s.Nodes[0].ID
		}
	}
	for b, a := range out {
		if a == "" {
			t.Fatalf("bucket %d has no owner in CLUSTER SLOTS", b)
		}
	}
	return out
}

// ackLog records every acknowledged write: key → value.
type ackLog map[string]string

// writeKeys writes n keys named prefix-i, value prefix-i-<i>, through the
// live processes in turn. Writes whose owner is in down must fail within
// the request bound; the others must succeed. It returns the number of
// writes refused because the owner was down.
func writeKeys(ctx context.Context, t *testing.T, clients map[string]*redis.Client, live []*proc, owner []string, down *proc, prefix string, n int, acked ackLog) int {
	t.Helper()
	refused := 0
	for i := range n {
		k := fmt.Sprintf("%s-%d", prefix, i)
		v := fmt.Sprintf("%s-v%d", k, i)
		p := live[i%len(live)]
		start := time.Now()
		err := clients[p.id].Set(ctx, k, v, 0).Err()
		took := time.Since(start)
		ownerDown := down != nil && owner[router.BucketString(k)] == down.id
		switch {
		case err == nil && ownerDown:
			t.Fatalf("SET %s on %s acknowledged while its owner %s is down", k, p.id, down.id)
		case err == nil:
			acked[k] = v
		case ownerDown:
			if took > 3*time.Second {
				t.Fatalf("SET %s (owner %s down) on %s failed after %s, want within the 2 s bound", k, down.id, p.id, took)
			}
			refused++
		default:
			t.Fatalf("SET %s on %s: %v", k, p.id, err)
		}
	}
	return refused
}

// checkDownKeysFailFast reads up to max keys owned by down through every
// live process and asserts each fails within the 2 s request bound.
func checkDownKeysFailFast(ctx context.Context, t *testing.T, clients map[string]*redis.Client, live []*proc, owner []string, down *proc, acked ackLog, max int) time.Duration {
	t.Helper()
	var worst time.Duration
	checked := 0
	for k := range acked {
		if owner[router.BucketString(k)] != down.id {
			continue
		}
		for _, p := range live {
			start := time.Now()
			err := clients[p.id].Get(ctx, k).Err()
			took := time.Since(start)
			if err == nil || took > 3*time.Second {
				t.Fatalf("GET %s (owner %s down) on %s: err %v after %s, want an error within the 2 s bound", k, down.id, p.id, err, took)
			}
			worst = max2(worst, took)
		}
		if checked++; checked == max {
			break
		}
	}
	if checked == 0 {
		t.Fatalf("no acknowledged key is owned by %s", down.id)
	}
	return worst
}

func max2(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// verifyAll reads every acknowledged key through every live process.
func verifyAll(ctx context.Context, t *testing.T, clients map[string]*redis.Client, live []*proc, acked ackLog) {
	t.Helper()
	lost, wrong := 0, 0
	for _, p := range live {
		pipe := clients[p.id].Pipeline()
		cmds := make(map[string]*redis.StringCmd, len(acked))
		for k := range acked {
			cmds[k] = pipe.Get(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
		for k, cmd := range cmds {
			v, err := cmd.Result()
			switch {
			case errors.Is(err, redis.Nil):
				lost++
				t.Errorf("%s: GET %s: lost (acknowledged %q)", p.id, k, acked[k])
			case err != nil:
				lost++
				t.Errorf("%s: GET %s: %v", p.id, k, err)
			case v != acked[k]:
				wrong++
				t.Errorf("%s: GET %s = %q, acknowledged %q", p.id, k, v, acked[k])
			}
			if lost+wrong > 20 {
				t.Fatalf("too many failures: lost %d, wrong %d", lost, wrong)
			}
		}
	}
	if lost+wrong > 0 {
		t.Fatalf("lost %d, wrong %d of %d acknowledged keys × %d nodes", lost, wrong, len(acked), len(live))
	}
}

// TestMultiProcessKillRestart runs three dbx-node processes, writes keys
// through every node, SIGKILLs a follower and later the Raft leader,
// restarts each with its data dir and --join of a live member, and checks
// that every acknowledged write is readable with its value from every node.
func TestMultiProcessKillRestart(t *testing.T) {
	c := startProcCluster(t, 3)
	ctx := context.Background()
	clients := map[string]*redis.Client{}
	for _, p := range c.procs {
		rc := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: p.resp, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
		t.Cleanup(func() { rc.Close() })
		clients[p.id] = rc
	}
	owner := owners(ctx, t, clients["n1"])
	acked := ackLog{}
	writeKeys(ctx, t, clients, c.procs, owner, nil, "base", 300, acked)
	verifyAll(ctx, t, clients, c.procs, acked)

	phase := func(t *testing.T, name string, victim *proc) {
		oldLeader := c.waitActive(t, 10*time.Second, c.procs).Leader
		victim.kill(t)
		killed := time.Now()
		live := c.live()
		if victim.id == oldLeader {
			newLeader := ""
			waitFor(t, 10*time.Second, "new leader", func() error {
				for _, p := range live {
					cj, err := getCluster(p.http)
					if err != nil {
						return err
					}
					if cj.Leader == "" || cj.Leader == oldLeader || (newLeader != "" && cj.Leader != newLeader) {
						newLeader = ""
						return fmt.Errorf("%s sees leader %q", p.id, cj.Leader)
					}
					newLeader = cj.Leader
				}
				return nil
			})
			t.Logf("%s: new leader %s seen by every live node %s after SIGKILL of leader %s", name, newLeader, time.Since(killed).Round(time.Millisecond), oldLeader)
		}
		worst := checkDownKeysFailFast(ctx, t, clients, live, owner, victim, acked, 5)
		t.Logf("%s: GETs of %s's keys failed within %s at most", name, victim.id, worst)
		refused := writeKeys(ctx, t, clients, live, owner, victim, name, 100, acked)
		t.Logf("%s: %d of 100 writes refused while %s was down (its keys), the rest acknowledged", name, refused, victim.id)

		// Stay down until the leader has marked the victim failed (gossip
		// failure detection, memberlist's LAN profile), so that the restart
		// must bring it back to active.
		waitFor(t, 20*time.Second, victim.id+" marked failed", func() error {
			cj, err := getCluster(live[0].http)
			if err != nil {
				return err
			}
			for _, nd := range cj.Nodes {
				if nd.ID == victim.id && nd.State != "failed" {
					return fmt.Errorf("%s is %s", nd.ID, nd.State)
				}
			}
			return nil
		})
		t.Logf("%s: %s marked failed %s after SIGKILL", name, victim.id, time.Since(killed).Round(time.Millisecond))

		restarted := time.Now()
		victim.start(t, c.bin, []string{live[0].gossip})
		waitFor(t, 30*time.Second, victim.id+" healthy", func() error {
			if !victim.running() {
				return fmt.Errorf("exited:\n%s", victim.logTail(20))
			}
			return healthy(victim.http)
		})
		healthyAfter := time.Since(restarted)
		// Connections to the killed process are dead: a fresh client.
		clients[victim.id].Close()
		clients[victim.id] = redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: victim.resp, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
		c.waitActive(t, 30*time.Second, c.procs)
		activeAfter := time.Since(restarted)
		waitFor(t, 15*time.Second, victim.id+"'s keys readable", func() error {
			for k := range acked {
				if owner[router.BucketString(k)] == victim.id {
					return clients[live[0].id].Get(ctx, k).Err()
				}
			}
			return nil
		})
		t.Logf("%s: %s down %s; restart → healthy %s, → active on every node %s, → its keys readable %s",
			name, victim.id, restarted.Sub(killed).Round(time.Millisecond), healthyAfter.Round(time.Millisecond),
			activeAfter.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		if got := owners(ctx, t, clients[victim.id]); fmt.Sprint(got) != fmt.Sprint(owner) {
			t.Fatalf("placement changed across the restart of %s", victim.id)
		}
		verifyAll(ctx, t, clients, c.procs, acked)
		t.Logf("%s: all %d acknowledged keys read back from all 3 nodes: lost 0, wrong 0", name, len(acked))
	}

	t.Run("KillFollower", func(t *testing.T) {
		leader := c.waitActive(t, 10*time.Second, c.procs).Leader
		var victim *proc
		for _, p := range c.procs {
			if p.id != leader {
				victim = p
				break
			}
		}
		phase(t, "follower", victim)
	})
	t.Run("KillLeader", func(t *testing.T) {
		leader := c.waitActive(t, 10*time.Second, c.procs).Leader
		victim := c.byID(leader)
		if victim == nil {
			t.Fatalf("leader %q is not a process of the test", leader)
		}
		phase(t, "leader", victim)
	})
}
