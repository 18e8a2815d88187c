package integration

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// TestTxnBankSIGKILL runs the bank workload on 3 dbx-node processes and
// kills one of them with SIGKILL at a failpoint in each phase of two-phase
// commit — as coordinator (before asking the record holder to commit,
// after the decision but before the commit messages), as record holder
// (right after the COMMITTED record is durable) and as participant (after
// its prepare record is durable, before applying a commit). The node is
// restarted. Every read of all accounts in MULTI/EXEC and the final read
// must sum to the initial total with no negative balance, and no node may
// have a transaction in doubt 30 s after all are back.
func TestTxnBankSIGKILL(t *testing.T) {
	for _, fp := range []string{"coord-before-decide", "coord-before-commit", "holder-after-decide-write", "part-after-prepare", "part-before-apply"} {
		t.Run(fp, func(t *testing.T) { bankKill(t, fp) })
	}
}

func bankKill(t *testing.T, failpoint string) {
	c := startProcCluster(t, 3, func(p *proc) {
		if p.id == "n2" {
			p.extra = []string{"--failpoints", failpoint + ":10"}
		}
	})
	victim := c.byID("n2")
	ctx := context.Background()
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

	done := make(chan *bankResult, 1)
	go func() { done <- runBank(ctx, clients, accounts, total, 6, 12*time.Second) }()
	select {
	case <-victim.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("failpoint %s never killed n2", failpoint)
	}
	killedAt := time.Now()
	victim.start(t, c.bin, []string{c.procs[0].gossip})
	c.waitActive(t, 30*time.Second, c.procs)
	t.Logf("n2 killed at %s, back and active after %s", failpoint, time.Since(killedAt).Round(time.Millisecond))
	res := <-done
	workloadEnd := time.Now()
	t.Logf("transfers %d, WATCH conflicts %d, failed (node down, unknown outcome) %d, consistent reads %d",
		res.transfers, res.conflicts, res.failed, res.reads)
	if len(res.badReads) > 0 {
		t.Fatalf("%d reads broke the invariant, first: %s", len(res.badReads), res.badReads[0])
	}
	if res.transfers < 10 || res.reads < 3 {
		t.Fatalf("too little work to prove anything: %d transfers, %d reads", res.transfers, res.reads)
	}
	inDoubt := regexp.MustCompile(`(?m)^dbx_txn_in_doubt (\S+)$`)
	var resolvedAfter time.Duration
	waitFor(t, 30*time.Second, "no transaction in doubt", func() error {
		for _, p := range c.procs {
			m := inDoubt.FindStringSubmatch(httpGet(t, "http://"+p.http+"/metrics"))
			if m == nil {
				return fmt.Errorf("%s: no dbx_txn_in_doubt metric", p.id)
			}
			if n, _ := strconv.ParseFloat(m[1], 64); n != 0 {
				return fmt.Errorf("%s: %s in doubt", p.id, m[1])
			}
		}
		resolvedAfter = time.Since(workloadEnd)
		return nil
	})
	t.Logf("no transaction in doubt on any node %s after the workload ended", resolvedAfter.Round(time.Millisecond))
	for _, cl := range clients {
		sum := 0
		for _, a := range accounts {
			n, err := cl.Get(ctx, a).Int()
			if err != nil || n < 0 {
				t.Fatalf("final %s = %d, %v", a, n, err)
			}
			sum += n
		}
		if sum != total {
			t.Fatalf("final total %d, want %d", sum, total)
		}
	}
}
