package integration

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// TestSnapshotRestoreProcesses runs the operator's procedure on dbx-node
// processes: snapshots taken with the CLI during the bank workload, a take
// refused while a node is killed, then the whole cluster stopped, every
// node restored from its own snapshots dir with the CLI and started again:
// the bank total read back through RESP is the total, every key written
// before the snapshot has its value, and a key written after it is gone.
func TestSnapshotRestoreProcesses(t *testing.T) {
	c := startProcCluster(t, 3)
	ctx := context.Background()
	cli := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(cctx, c.bin, args...).CombinedOutput()
		return string(out), err
	}
	var clients []*redis.Client
	for _, p := range c.procs {
		cl := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: p.resp, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 8 * time.Second, PoolSize: 8})
		t.Cleanup(func() { cl.Close() })
		clients = append(clients, cl)
	}
	own := owners(ctx, t, clients[0])
	var accounts []string
	for i := 0; len(accounts) < 9 && i < 100000; i++ {
		k := fmt.Sprintf("acct-%d", i)
		if own[router.BucketString(k)] == c.procs[len(accounts)%3].id {
			accounts = append(accounts, k)
		}
	}
	const initial = 100
	for _, a := range accounts {
		if err := clients[0].Set(ctx, a, initial, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := initial * len(accounts)
	var markers []string
	for i := range 60 {
		k := fmt.Sprintf("pre-%d", i)
		if err := clients[i%3].Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
		markers = append(markers, k)
	}

	done := make(chan *bankResult, 1)
	go func() { done <- runBank(ctx, clients, accounts, total, 6, 4*time.Second) }()
	time.Sleep(time.Second)
	out, err := cli("snapshot", "take", "--http", c.procs[1].http)
	if err != nil {
		t.Fatalf("snapshot take: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`snapshot (\S+) taken`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("take printed %q", out)
	}
	id := m[1]
	t.Logf("%s", strings.TrimSpace(out))
	time.Sleep(time.Second)
	if out, err := cli("snapshot", "take", "--http", c.procs[2].http); err != nil {
		t.Fatalf("second take: %v\n%s", err, out)
	}
	res := <-done
	t.Logf("bank: transfers %d, conflicts %d, failed %d", res.transfers, res.conflicts, res.failed)
	if res.transfers < 10 {
		t.Fatalf("too little work: %d transfers", res.transfers)
	}
	if err := clients[0].Set(ctx, "pre-0", "after", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := clients[0].Set(ctx, "post", "after", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// A killed node: the take fails naming it.
	n3 := c.byID("n3")
	n3.kill(t)
	out, err = cli("snapshot", "take", "--http", c.procs[0].http)
	if err == nil || !strings.Contains(out, "node n3") {
		t.Fatalf("take with n3 killed: %v\n%s", err, out)
	}
	t.Logf("take with n3 killed: %s", strings.TrimSpace(out))
	if out, err := cli("snapshot", "list", "--http", c.procs[0].http); err != nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("list after the failed take: %v\n%s", err, out)
	}

	// Stop everything, restore every node, start again.
	for _, p := range c.procs {
		p.stop()
	}
	for _, p := range c.procs {
		out, err := cli("restore", "--snapshot", id, "--data-dir", p.dir, "--id", p.id)
		if err != nil {
			t.Fatalf("restore %s: %v\n%s", p.id, err, out)
		}
		t.Logf("%s", strings.TrimSpace(out))
	}
	for i, p := range c.procs {
		var join []string
		if i > 0 {
			join = []string{c.procs[0].gossip}
		}
		p.start(t, c.bin, join)
	}
	c.waitActive(t, 60*time.Second, c.procs)
	waitFor(t, 30*time.Second, "restored bank total", func() error {
		sum := 0
		for _, a := range accounts {
			n, err := clients[1].Get(ctx, a).Int()
			if err != nil || n < 0 {
				return fmt.Errorf("%s = %d, %v", a, n, err)
			}
			sum += n
		}
		if sum != total {
			return fmt.Errorf("restored total %d, want %d", sum, total)
		}
		return nil
	})
	for _, k := range markers {
		if v, err := clients[2].Get(ctx, k).Result(); err != nil || v != k {
			t.Fatalf("restored %s = %q, %v", k, v, err)
		}
	}
	if err := clients[0].Get(ctx, "post").Err(); err != redis.Nil {
		t.Fatalf("a key written after the snapshot survived the restore: %v", err)
	}
}
