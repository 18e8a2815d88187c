package integration

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// TestRebalanceSIGKILL joins a fourth dbx-node process under a set
// workload and kills, in one run, the target of a move while it copies and,
// in another, a source right after it fenced its buckets; the killed node
// restarts. The migration completes; no acknowledged write is lost, no key
// appears that was never written, every key lives only on its owner, and
// clients (connected to nodes that are not killed) see errors only for
// keys of the killed node's own buckets.
func TestRebalanceSIGKILL(t *testing.T) {
	for _, tc := range []struct{ name, victim, failpoint string }{
		{"target", "n4", "mig-target-copy:3"},
		{"source", "n2", "mig-source-fence:2"},
	} {
		t.Run(tc.name, func(t *testing.T) { rebalanceKill(t, tc.victim, tc.failpoint) })
	}
}

func rebalanceKill(t *testing.T, victimID, failpoint string) {
	// Throttled (64 KiB/s per move), so writes keep coming while buckets move.
	c := startProcCluster(t, 3, func(p *proc) {
		p.extra = []string{"--move-rate", "65536"}
		if p.id == victimID {
			p.extra = append(p.extra, "--failpoints", failpoint)
		}
	})
	ctx := context.Background()
	n1 := c.byID("n1")
	rc := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n1.resp})
	defer rc.Close()
	before := owners(ctx, t, rc)

	var clientAddrs []string
	for _, p := range c.procs {
		if p.id != victimID {
			clientAddrs = append(clientAddrs, p.resp)
		}
	}
	w := startSetWorkload(t, func() []string { return clientAddrs }, 4)
	stopped := false
	defer func() {
		if !stopped {
			w.halt()
		}
	}()
	waitFor(t, 10*time.Second, "some data", func() error {
		if w.n.Load() < 2000 {
			return fmt.Errorf("%d keys", w.n.Load())
		}
		return nil
	})

	ports := freePorts(t, 5)
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	p4 := &proc{id: "n4", dir: t.TempDir(), logPath: filepath.Join(filepath.Dir(n1.logPath), "n4.log"),
		resp: addr(ports[0]), rpc: addr(ports[1]), gossip: addr(ports[2]), http: addr(ports[3]), cluster: addr(ports[4])}
	if victimID == "n4" {
		p4.extra = []string{"--failpoints", failpoint}
	}
	c.procs = append(c.procs, p4)
	joinedAt := time.Now()
	p4.start(t, c.bin, []string{n1.gossip})
	victim := c.byID(victimID)
	select {
	case <-victim.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("failpoint %s never killed %s", failpoint, victimID)
	}
	killedAt := time.Now()
	t.Logf("%s killed at %s %s after the join", victimID, failpoint, killedAt.Sub(joinedAt).Round(time.Millisecond))
	victim.start(t, c.bin, []string{n1.gossip})
	var cj clusterJSON
	waitFor(t, 120*time.Second, "migration complete with 4 active members", func() error {
		var err error
		if cj, err = getCluster(n1.http); err != nil {
			return err
		}
		if cj.Migration.Active || len(cj.Nodes) != 4 {
			return fmt.Errorf("migration %+v, %d members", cj.Migration, len(cj.Nodes))
		}
		for _, nd := range cj.Nodes {
			if nd.State != "active" || nd.Buckets == 0 {
				return fmt.Errorf("%s %s with %d buckets", nd.ID, nd.State, nd.Buckets)
			}
		}
		return nil
	})
	c.waitActive(t, 30*time.Second, c.procs)
	t.Logf("migration complete %s after the kill: %d of %d buckets moved, %d bytes", time.Since(killedAt).Round(time.Millisecond),
		cj.Migration.Done, cj.Migration.Total, cj.Migration.Bytes)
	w.halt()
	stopped = true

	after := owners(ctx, t, rc)
	var allowed, forbidden int
	var firstBad string
	w.failed.Range(func(k, v any) bool {
		b := router.BucketString(k.(string))
		if before[b] == victimID || after[b] == victimID {
			allowed++
		} else {
			forbidden++
			firstBad = fmt.Sprintf("%s: %s", k, v)
		}
		return true
	})
	t.Logf("client errors: %d on the killed node's buckets, %d elsewhere", allowed, forbidden)
	if forbidden > 0 {
		t.Fatalf("client errors outside the killed node's buckets, e.g. %s", firstBad)
	}
	// Every node's own data, read from its store once it has stopped: owned
	// by it, nothing lost or invented (a source deletes what it handed over
	// once the switch is applied).
	found := map[string]string{}
	for _, p := range c.procs {
		p.stop()
		for _, k := range storedKeysOffline(t, p.dir, "set:") {
			if after[router.BucketString(k)] != p.id {
				t.Errorf("%s stores %s, owned by %s", p.id, k, after[router.BucketString(k)])
			}
			if other, dup := found[k]; dup {
				t.Errorf("%s on both %s and %s", k, other, p.id)
			}
			found[k] = p.id
		}
	}
	lost, unexpected, acked := 0, 0, 0
	w.acked.Range(func(k, _ any) bool {
		acked++
		if _, ok := found[k.(string)]; !ok {
			lost++
			if lost <= 5 {
				b := router.BucketString(k.(string))
				t.Logf("lost %s: bucket %d, owner before %s, after %s", k, b, before[b], after[b])
			}
		}
		return true
	})
	for k := range found {
		if _, ok := w.attempted.Load(k); !ok {
			unexpected++
		}
	}
	t.Logf("keys stored %d, acknowledged %d, lost %d, unexpected %d", len(found), acked, lost, unexpected)
	if lost != 0 || unexpected != 0 {
		t.Fatalf("lost %d acknowledged writes, %d unexpected keys", lost, unexpected)
	}
}
