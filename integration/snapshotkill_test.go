package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// TestSnapshotLeaderKilledMidTake: the Raft leader SIGKILLs itself after
// every node checkpointed and before the manifest is committed. The take
// fails, nothing is listed, the pause lifts by itself (the bank keeps
// committing), the checkpoints the take left on every node are released
// (no orphans), the next take succeeds, and the bank total holds.
func TestSnapshotLeaderKilledMidTake(t *testing.T) {
	c := startProcCluster(t, 3, func(p *proc) {
		p.extra = []string{"--snapshot-orphan-age", "3s"}
		if p.id == "n1" {
			p.extra = append(p.extra, "--failpoints", "snap-leader-before-commit")
		}
	})
	n1, n2 := c.byID("n1"), c.byID("n2")
	if cj, err := getCluster(n2.http); err != nil || cj.Leader != "n1" {
		t.Skipf("the test needs n1 (the bootstrap node) to lead: leader %q, %v", cj.Leader, err)
	}
	ctx := context.Background()
	var clients []*redis.Client
	for _, p := range c.procs[1:] { // n1 is about to die
		cl := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: p.resp, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 8 * time.Second})
		t.Cleanup(func() { cl.Close() })
		clients = append(clients, cl)
	}
	own := owners(ctx, t, clients[0])
	var accounts []string
	for i := 0; len(accounts) < 6 && i < 100000; i++ {
		k := fmt.Sprintf("acct-%d", i)
		if own[router.BucketString(k)] != n1.id { // n1's keys are unreachable while it is down
			accounts = append(accounts, k)
		}
	}
	for _, a := range accounts {
		if err := clients[0].Set(ctx, a, 100, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := 100 * len(accounts)
	done := make(chan *bankResult, 1)
	go func() { done <- runBank(ctx, clients, accounts, total, 4, 25*time.Second) }()
	time.Sleep(time.Second)

	code, body, err := post(n2.http, "/v1/snapshots", ``)
	if err == nil && code/100 == 2 {
		t.Fatalf("take succeeded though the leader died mid-way: %d %s", code, body)
	}
	select {
	case <-n1.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the failpoint did not kill n1")
	}
	t.Logf("take failed as expected: %d %s %v", code, body, err)
	n1.extra = []string{"--snapshot-orphan-age", "3s"}
	n1.start(t, c.bin, []string{n2.gossip})
	c.waitActive(t, 30*time.Second, c.procs)

	listed := func() int {
		resp, err := getJSON(n2.http, "/v1/snapshots")
		if err != nil {
			t.Fatal(err)
		}
		var v []json.RawMessage
		if err := json.Unmarshal(resp, &v); err != nil {
			t.Fatalf("GET /v1/snapshots: %v: %s", err, resp)
		}
		return len(v)
	}
	if n := listed(); n != 0 {
		t.Fatalf("%d snapshots listed after a take whose leader died", n)
	}
	waitFor(t, 60*time.Second, "no orphan checkpoints on any node", func() error {
		for _, p := range c.procs {
			ents, _ := os.ReadDir(filepath.Join(p.dir, "snapshots"))
			if len(ents) > 0 {
				return fmt.Errorf("%s still has %d checkpoint dirs", p.id, len(ents))
			}
		}
		return nil
	})
	if code, body, err := post(n2.http, "/v1/snapshots", ``); err != nil || code/100 != 2 {
		t.Fatalf("take after the leader's restart: %d %s %v", code, body, err)
	}
	if n := listed(); n != 1 {
		t.Fatalf("%d snapshots listed, want 1", n)
	}
	res := <-done
	t.Logf("bank: %d transfers, %d failed, %d consistent reads", res.transfers, res.failed, res.reads)
	if len(res.badReads) > 0 {
		t.Fatalf("%d reads broke the total, first %s", len(res.badReads), res.badReads[0])
	}
	sum := 0
	for _, a := range accounts {
		v, err := clients[1].Get(ctx, a).Int()
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	if sum != total {
		t.Fatalf("final total %d, want %d", sum, total)
	}
}

func getJSON(httpAddr, path string) ([]byte, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + httpAddr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
