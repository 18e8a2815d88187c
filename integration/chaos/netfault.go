package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
)

// Network faults are applied from the host inside each container's network
// namespace (nsenter -t PID -n), with the host's iptables and tc: the image
// is FROM scratch and has neither. Rules drop packets between nodes only;
// the test process (on the host, through the bridge gateway) keeps
// reaching every node.

// inNetns runs name args in n's network namespace.
func (c *Cluster) inNetns(ctx context.Context, n *Node, name string, args ...string) (string, error) {
	pid, err := c.pid(ctx, n)
	if err != nil {
		return "", err
	}
	return runCmd(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", name}, args...)...)
}

// iptables runs iptables in n's network namespace (-w: wait for the
// xtables lock, which all namespaces share through the host's /run).
func (c *Cluster) iptables(ctx context.Context, n *Node, args ...string) error {
	_, err := c.inNetns(ctx, n, "iptables", append([]string{"-w", "5"}, args...)...)
	return err
}

// netToolsMissing reports why iptables rules cannot be applied from the
// host (nil: they can), by trying a harmless rule on n.
func (c *Cluster) netToolsMissing(ctx context.Context, n *Node, statistic bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root on the host (nsenter into container network namespaces)")
	}
	for _, tool := range []string{"nsenter", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (apt-get install util-linux iptables)", tool)
		}
	}
	rule := []string{"INPUT", "-s", "192.0.2.1/32", "-j", "DROP"}
	if statistic {
		rule = []string{"INPUT", "-s", "192.0.2.1/32", "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP"}
	}
	if err := c.iptables(ctx, n, append([]string{"-A"}, rule...)...); err != nil {
		return fmt.Errorf("iptables in a container namespace failed: %w", err)
	}
	return c.iptables(ctx, n, append([]string{"-D"}, rule...)...)
}

// netemMissing reports why tc netem cannot be used (nil: it can), by
// trying it on n.
func (c *Cluster) netemMissing(ctx context.Context, n *Node) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root on the host (nsenter into container network namespaces)")
	}
	if _, err := exec.LookPath("tc"); err != nil {
		return errors.New("tc not installed (apt-get install iproute2)")
	}
	if _, err := c.inNetns(ctx, n, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms"); err != nil {
		return fmt.Errorf("tc netem failed (kernel without sch_netem?): %w", err)
	}
	_, err := c.inNetns(ctx, n, "tc", "qdisc", "del", "dev", "eth0", "root")
	return err
}

// Cut drops every packet between the nodes of each pair, both ways.
func (c *Cluster) Cut(ctx context.Context, pairs [][2]*Node) error {
	blocked := map[*Node][]*Node{}
	for _, p := range pairs {
		blocked[p[0]] = append(blocked[p[0]], p[1])
		blocked[p[1]] = append(blocked[p[1]], p[0])
	}
	return c.eachNode(ctx, func(n *Node) error {
		for _, peer := range blocked[n] {
			if err := c.iptables(ctx, n, "-A", "INPUT", "-s", peer.IP, "-j", "DROP"); err != nil {
				return err
			}
			if err := c.iptables(ctx, n, "-A", "OUTPUT", "-d", peer.IP, "-j", "DROP"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Lose drops the given share of packets each node receives from the other
// nodes.
func (c *Cluster) Lose(ctx context.Context, probability float64) error {
	p := strconv.FormatFloat(probability, 'f', 3, 64)
	return c.eachNode(ctx, func(n *Node) error {
		for _, peer := range c.others(n) {
			if err := c.iptables(ctx, n, "-A", "INPUT", "-s", peer.IP, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delay delays every packet each node sends by d ± jitter (tc netem).
func (c *Cluster) Delay(ctx context.Context, delayMs, jitterMs int) error {
	return c.eachNode(ctx, func(n *Node) error {
		_, err := c.inNetns(ctx, n, "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
			"delay", strconv.Itoa(delayMs)+"ms", strconv.Itoa(jitterMs)+"ms")
		return err
	})
}

// HealNetwork removes every rule and qdisc Cut, Lose and Delay added, on
// every node that has a process.
func (c *Cluster) HealNetwork(ctx context.Context) error {
	return c.eachNode(ctx, func(n *Node) error {
		if _, err := c.pid(ctx, n); err != nil {
			return nil // no process, no namespace: nothing to heal
		}
		err := errors.Join(c.iptables(ctx, n, "-F", "INPUT"), c.iptables(ctx, n, "-F", "OUTPUT"))
		// Fails with "no such file" when there is no root qdisc of ours.
		_, _ = c.inNetns(ctx, n, "tc", "qdisc", "del", "dev", "eth0", "root")
		return err
	})
}

// eachNode runs fn for every node concurrently and joins the errors.
func (c *Cluster) eachNode(ctx context.Context, fn func(n *Node) error) error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Go(func() {
			if err := fn(n); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.ID, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
