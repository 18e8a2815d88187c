package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ports every node listens on, on its own IP.
const (
	respPort   = 6379
	rpcPort    = 7380
	gossipPort = 7946
	httpPort   = 8080
)

// LabelKey labels every Docker object the harness creates, with the run
// name as value (make chaos-clean removes what a killed test left).
const LabelKey = "dbx.chaos"

// ClusterConfig configures a cluster of dbx-node containers.
type ClusterConfig struct {
	// Run is the run-unique prefix of every name (containers, volumes,
	// network).
	Run string
	// Image is the dbx-node image (see BuildImage).
	Image string
	// Nodes and Voters: cluster size and Raft voters (--voters-max).
	Nodes, Voters int
	// LogDir receives each node's container log before a container is
	// removed (restarts recreate containers) and at Close.
	LogDir string
	// Logf reports progress (nil: quiet).
	Logf func(format string, args ...any)
}

// Node is one dbx-node container.
type Node struct {
	ID, IP, Container, Volume string
	Index                     int
	// gen counts the fresh data dirs the node was given (Rejoin).
	gen int
}

func (n *Node) respAddr() string   { return net.JoinHostPort(n.IP, strconv.Itoa(respPort)) }
func (n *Node) gossipAddr() string { return net.JoinHostPort(n.IP, strconv.Itoa(gossipPort)) }
func (n *Node) httpAddr() string   { return net.JoinHostPort(n.IP, strconv.Itoa(httpPort)) }

// Cluster is a running cluster of containers on a private network.
type Cluster struct {
	cfg     ClusterConfig
	d       *docker
	Network string
	Subnet  string
	Nodes   []*Node

	logMu sync.Mutex // serializes appends to LogDir files

	filled bool // fillData ran
	// wiped lists the nodes whose data volume the run removed (a drained
	// node back on an empty disk, the joined node removed at its heal):
	// their snapshot parts are gone.
	wiped []string
}

// ClusterInfo is the part of GET /v1/cluster the harness reads.
type ClusterInfo struct {
	Epoch  uint64 `json:"epoch"`
	Leader string `json:"leader"`
	Self   string `json:"self"`
	Nodes  []struct {
		ID       string  `json:"id"`
		Weight   float64 `json:"weight"`
		State    string  `json:"state"`
		Buckets  int     `json:"buckets"`
		RespAddr string  `json:"resp_addr"`
	} `json:"nodes"`
	Migration struct {
		Active      bool  `json:"active"`
		Pending     int   `json:"pending"`
		Moving      int   `json:"moving"`
		Done        int   `json:"done"`
		Total       int   `json:"total"`
		Bytes       int64 `json:"bytes"`
		Concurrency int   `json:"concurrency"`
		BytesPerSec int64 `json:"bytes_per_sec"`
	} `json:"migration"`
}

// BuildImage builds a static dbx-node (CGO_ENABLED=0) from the module at
// root and an image tagged tag with root's Dockerfile (FROM scratch:
// nothing is pulled). The build context is a temporary directory holding
// only what the Dockerfile copies.
func BuildImage(ctx context.Context, root, tag string) error {
	d, err := newDocker()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "dbx-chaos-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "bin", "docker", "empty"), 0o755); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	build := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "bin", "docker", "dbx-node"), "./cmd/dbx-node"}
	cmd := execIn(bctx, root, "go", build...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build dbx-node: %v\n%s", err, out)
	}
	if _, err := runCmd(bctx, d.bin, "build", "-q", "-f", filepath.Join(root, "Dockerfile"), "-t", tag,
		"--label", LabelKey+"="+tag, dir); err != nil {
		return fmt.Errorf("docker build: %w", err)
	}
	return nil
}

// RemoveImage removes an image BuildImage made.
func RemoveImage(ctx context.Context, tag string) error {
	d, err := newDocker()
	if err != nil {
		return err
	}
	_, err = d.run(ctx, "rmi", "-f", tag)
	return err
}

// StartCluster creates the network, one volume per node and the
// containers: n1 bootstraps, the others join it. It returns once every
// node reports the same leader and epoch with every member active, or an
// error (the caller still calls Close).
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	d, err := newDocker()
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, d: d, Network: cfg.Run + "-net"}
	if err := c.createNetwork(ctx); err != nil {
		return c, err
	}
	base := strings.TrimSuffix(c.Subnet, "0/24")
	for i := range cfg.Nodes {
		n := &Node{ID: fmt.Sprintf("n%d", i+1), Index: i, IP: fmt.Sprintf("%s%d", base, 11+i)}
		n.Container = cfg.Run + "-" + n.ID
		n.Volume = cfg.Run + "-" + n.ID + "-data"
		if _, err := d.run(ctx, "volume", "create", "--label", LabelKey+"="+cfg.Run, n.Volume); err != nil {
			return c, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.runNode(ctx, c.Nodes[0], nil); err != nil {
		return c, err
	}
	if err := waitUntil(ctx, 30*time.Second, func() error { return healthz(ctx, c.Nodes[0]) }); err != nil {
		return c, fmt.Errorf("%s not healthy: %w\n%s", c.Nodes[0].ID, err, c.tail(ctx, c.Nodes[0], 20))
	}
	for _, n := range c.Nodes[1:] {
		if err := c.runNode(ctx, n, []*Node{c.Nodes[0]}); err != nil {
			return c, err
		}
	}
	c.logf("network %s (%s): %d containers started, waiting for them to agree", c.Network, c.Subnet, len(c.Nodes))
	if _, _, err := c.WaitConverged(ctx, 90*time.Second); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

// createNetwork makes a bridge network on a random 10.x.y.0/24 that no
// host interface or Docker network uses.
func (c *Cluster) createNetwork(ctx context.Context) error {
	var lastErr error
	for range 20 {
		subnet := fmt.Sprintf("10.%d.%d.0/24", 100+rand.IntN(150), rand.IntN(256))
		if hostUses(subnet) {
			continue
		}
		_, err := c.d.run(ctx, "network", "create", "--driver", "bridge", "--subnet", subnet,
			"--label", LabelKey+"="+c.cfg.Run, c.Network)
		if err == nil {
			c.Subnet = subnet
			return nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "overlap") {
			return err
		}
	}
	return fmt.Errorf("no free subnet for the chaos network: %v", lastErr)
}

func hostUses(subnet string) bool {
	_, want, err := net.ParseCIDR(subnet)
	if err != nil {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && (want.Contains(ipn.IP) || ipn.Contains(want.IP)) {
			return true
		}
	}
	return false
}

// runNode creates and starts n's container, joining the gossip addresses
// of join (none: bootstrap, or a restart that waits to be found); extra
// flags (e.g. --weight) go last.
func (c *Cluster) runNode(ctx context.Context, n *Node, join []*Node, extra ...string) error {
	args := []string{"run", "-d", "--name", n.Container, "--hostname", n.ID,
		"--network", c.Network, "--ip", n.IP, "--label", LabelKey + "=" + c.cfg.Run,
		"-v", n.Volume + ":/data", "--stop-timeout", "10",
		c.cfg.Image, "serve", "--id", n.ID, "--data-dir", "/data",
		"--resp-addr", n.respAddr(), "--rpc-addr", net.JoinHostPort(n.IP, strconv.Itoa(rpcPort)),
		"--gossip-addr", n.gossipAddr(), "--http-addr", n.httpAddr(),
		"--voters-max", strconv.Itoa(c.cfg.Voters), "--join-timeout", "30s"}
	if len(join) > 0 {
		var addrs []string
		for _, j := range join {
			addrs = append(addrs, j.gossipAddr())
		}
		args = append(args, "--join", strings.Join(addrs, ","))
	}
	args = append(args, extra...)
	_, err := c.d.run(ctx, args...)
	return err
}

// others returns every node but n.
func (c *Cluster) others(n *Node) []*Node {
	var out []*Node
	for _, m := range c.Nodes {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// Kill sends SIGKILL to n's process (docker kill).
func (c *Cluster) Kill(ctx context.Context, n *Node) error {
	_, err := c.d.run(ctx, "kill", "-s", "KILL", n.Container)
	return err
}

// Stop stops n gracefully (SIGTERM, SIGKILL after 10 s).
func (c *Cluster) Stop(ctx context.Context, n *Node) error {
	_, err := c.d.run(ctx, "stop", "-t", "10", n.Container)
	return err
}

// Restart recreates n's container on its volume and IP (its process must
// have ended), joining the other nodes, and waits until it answers
// /healthz. The old container's log is kept in LogDir first.
func (c *Cluster) Restart(ctx context.Context, n *Node) error {
	c.saveLog(ctx, n)
	if _, err := c.d.run(ctx, "rm", "-f", n.Container); err != nil {
		return err
	}
	if err := c.runNode(ctx, n, c.others(n)); err != nil {
		return err
	}
	return waitUntil(ctx, 45*time.Second, func() error {
		if st, _ := c.state(ctx, n); st != "running" {
			return fmt.Errorf("container %s\n%s", st, c.tail(ctx, n, 20))
		}
		return healthz(ctx, n)
	})
}

// Pause freezes every process of n (docker pause); Unpause thaws them.
func (c *Cluster) Pause(ctx context.Context, n *Node) error {
	_, err := c.d.run(ctx, "pause", n.Container)
	return err
}

// Unpause thaws n.
func (c *Cluster) Unpause(ctx context.Context, n *Node) error {
	_, err := c.d.run(ctx, "unpause", n.Container)
	return err
}

// state returns n's container state: running, paused, exited, ...
func (c *Cluster) state(ctx context.Context, n *Node) (string, error) {
	return c.d.run(ctx, "inspect", "-f", "{{.State.Status}}", n.Container)
}

// pid returns the host PID of n's process (for nsenter).
func (c *Cluster) pid(ctx context.Context, n *Node) (int, error) {
	out, err := c.d.run(ctx, "inspect", "-f", "{{.State.Pid}}", n.Container)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s has no process (pid %q)", n.Container, out)
	}
	return pid, nil
}

func (c *Cluster) tail(ctx context.Context, n *Node, lines int) string {
	out, err := runCmd(ctx, c.d.bin, "logs", "--tail", strconv.Itoa(lines), n.Container)
	if err != nil {
		return err.Error()
	}
	return out
}

// saveLog appends n's container log to LogDir/<id>.log.
func (c *Cluster) saveLog(ctx context.Context, n *Node) {
	if c.cfg.LogDir == "" {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	cmd := execIn(lctx, "", c.d.bin, "logs", "-t", n.Container)
	out, _ := cmd.CombinedOutput()
	c.logMu.Lock()
	defer c.logMu.Unlock()
	f, err := os.OpenFile(filepath.Join(c.cfg.LogDir, n.ID+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== container %s log, saved %s\n", n.Container, time.Now().Format(time.RFC3339Nano))
	f.Write(out)
}

// Close saves every node's log and removes every container, volume and the
// network of the run (found by label, so recreated containers go too).
func (c *Cluster) Close(ctx context.Context) error {
	if c == nil || c.d == nil {
		return nil
	}
	for _, n := range c.Nodes {
		c.saveLog(ctx, n)
	}
	var errs []error
	filter := "label=" + LabelKey + "=" + c.cfg.Run
	if ids, err := c.d.run(ctx, "ps", "-aq", "--filter", filter); err != nil {
		errs = append(errs, err)
	} else if ids != "" {
		// Paused containers are thawed first: some runtimes refuse to kill them.
		for _, n := range c.Nodes {
			if st, _ := c.state(ctx, n); st == "paused" {
				_ = c.Unpause(ctx, n)
			}
		}
		if _, err := c.d.run(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if vols, err := c.d.run(ctx, "volume", "ls", "-q", "--filter", filter); err != nil {
		errs = append(errs, err)
	} else if vols != "" {
		if _, err := c.d.run(ctx, append([]string{"volume", "rm", "-f"}, strings.Fields(vols)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if nets, err := c.d.run(ctx, "network", "ls", "-q", "--filter", filter); err != nil {
		errs = append(errs, err)
	} else if nets != "" {
		if _, err := c.d.run(ctx, append([]string{"network", "rm"}, strings.Fields(nets)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func healthz(ctx context.Context, n *Node) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr()+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /healthz: %s", n.ID, resp.Status)
	}
	return nil
}

// Info reads GET /v1/cluster from n.
func (c *Cluster) Info(ctx context.Context, n *Node) (ClusterInfo, error) {
	var ci ClusterInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr()+"/v1/cluster", nil)
	if err != nil {
		return ci, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return ci, fmt.Errorf("%s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ci, fmt.Errorf("%s /v1/cluster: %s", n.ID, resp.Status)
	}
	return ci, json.NewDecoder(resp.Body).Decode(&ci)
}

// Converged checks once that every node answers with the same non-empty
// leader and epoch, every member active and owning buckets.
func (c *Cluster) Converged(ctx context.Context) (ClusterInfo, error) {
	infos := make([]ClusterInfo, len(c.Nodes))
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Go(func() { infos[i], errs[i] = c.Info(ctx, n) })
	}
	wg.Wait()
	for i, n := range c.Nodes {
		ci := infos[i]
		if errs[i] != nil {
			return ci, errs[i]
		}
		members := 0
		for _, m := range ci.Nodes {
			if !c.gone(m.ID, m.State) {
				members++
			}
		}
		if ci.Leader == "" || members != len(c.Nodes) {
			return ci, fmt.Errorf("%s: leader %q, %d members", n.ID, ci.Leader, members)
		}
		for _, m := range ci.Nodes {
			if c.gone(m.ID, m.State) {
				continue
			}
			if m.State != "active" || m.Buckets == 0 {
				return ci, fmt.Errorf("%s sees %s %s with %d buckets", n.ID, m.ID, m.State, m.Buckets)
			}
		}
		if ci.Leader != infos[0].Leader || ci.Epoch != infos[0].Epoch {
			return ci, fmt.Errorf("%s: leader %s epoch %d; %s: leader %s epoch %d",
				n.ID, ci.Leader, ci.Epoch, c.Nodes[0].ID, infos[0].Leader, infos[0].Epoch)
		}
	}
	return infos[0], nil
}

// gone reports whether a member of /v1/cluster is one the run drained
// away: state left and no longer one of c.Nodes (a drained member stays in
// the metadata as left until it joins again).
func (c *Cluster) gone(id, state string) bool {
	return state == "left" && c.byID(id) == nil
}

// WaitConverged polls Converged until it holds or d passes; it returns the
// agreed view and how long it took.
func (c *Cluster) WaitConverged(ctx context.Context, d time.Duration) (ClusterInfo, time.Duration, error) {
	start := time.Now()
	var ci ClusterInfo
	err := waitUntil(ctx, d, func() error {
		var err error
		ci, err = c.Converged(ctx)
		return err
	})
	if err != nil {
		return ci, time.Since(start), fmt.Errorf("cluster did not converge within %s: %w", d, err)
	}
	return ci, time.Since(start), nil
}

// Leader returns the node that a majority of nodes reports as Raft leader
// and that reports itself as leader, waiting up to 20 s for one.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	var leader *Node
	err := waitUntil(ctx, 20*time.Second, func() error {
		votes := map[string]int{}
		for _, n := range c.Nodes {
			if ci, err := c.Info(ctx, n); err == nil && ci.Leader != "" {
				votes[ci.Leader]++
			}
		}
		for id, v := range votes {
			if 2*v <= len(c.Nodes) {
				continue
			}
			n := c.byID(id)
			if n == nil {
				return fmt.Errorf("leader %q is not a node of the run", id)
			}
			if ci, err := c.Info(ctx, n); err != nil || ci.Self != id || ci.Leader != id {
				return fmt.Errorf("a majority names %s, which says leader %q (%v)", id, ci.Leader, err)
			}
			leader = n
			return nil
		}
		return fmt.Errorf("no majority on a leader: %v", votes)
	})
	return leader, err
}

func (c *Cluster) byID(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// waitUntil polls cond every 100 ms until it returns nil, ctx ends or d
// passes; the error is the last one cond gave.
func waitUntil(ctx context.Context, d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
