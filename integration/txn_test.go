package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cross-node MULTI/EXEC, WATCH, MSET, MSETNX and DEL through go-redis
// plain clients pointed at one node: atomic, and visible on every node.
func TestTxnCrossNode(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	tab := n1.Table()
	a, b, d := keyOwnedBy(t, tab, "n1", "a"), keyOwnedBy(t, tab, "n2", "b"), keyOwnedBy(t, tab, "n3", "d")
	ctx := context.Background()
	c1, c2, c3 := client(t, n1), client(t, n2), client(t, n3)

	cmds, err := c1.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, a, "va", 0)
		p.Set(ctx, b, "vb", 0)
		p.IncrBy(ctx, d, 5)
		p.Get(ctx, b) // sees the transaction's own write
		p.MGet(ctx, a, b, d)
		return nil
	})
	if err != nil {
		t.Fatalf("cross-node EXEC: %v", err)
	}
	if got := cmds[3].(*redis.StringCmd).Val(); got != "vb" {
		t.Fatalf("GET inside EXEC = %q, want vb", got)
	}
	if got := fmt.Sprint(cmds[4].(*redis.SliceCmd).Val()); got != "[va vb 5]" {
		t.Fatalf("MGET inside EXEC = %s", got)
	}
	for _, cl := range []*redis.Client{c1, c2, c3} {
		vals, err := cl.MGet(ctx, a, b, d).Result()
		if err != nil || fmt.Sprint(vals) != "[va vb 5]" {
			t.Fatalf("after EXEC a node reads %v, %v", vals, err)
		}
	}

	// WATCH across nodes: a change on another node fails EXEC.
	err = c1.Watch(ctx, func(tx *redis.Tx) error {
		if err := c3.Set(ctx, b, "changed", 0).Err(); err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a, "should-not", 0)
			p.Set(ctx, d, "should-not", 0)
			return nil
		})
		return err
	}, b)
	if !errors.Is(err, redis.TxFailedErr) {
		t.Fatalf("EXEC after a watched key changed: %v, want TxFailedErr", err)
	}
	if v := c2.Get(ctx, a).Val(); v != "va" {
		t.Fatalf("a failed EXEC wrote a = %q", v)
	}
	// Unchanged: it commits.
	err = c2.Watch(ctx, func(tx *redis.Tx) error {
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a, "w1", 0)
			p.Set(ctx, d, "w1", 0)
			return nil
		})
		return err
	}, a, b, d)
	if err != nil {
		t.Fatalf("watched EXEC: %v", err)
	}

	// All keys on one other node: the one-node path.
	b2 := keyOwnedBy(t, tab, "n2", "bb")
	if _, err := c1.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, b, "one", 0)
		p.Set(ctx, b2, "node", 0)
		return nil
	}); err != nil {
		t.Fatalf("EXEC on one remote node: %v", err)
	}
	if vals := c2.MGet(ctx, b, b2).Val(); fmt.Sprint(vals) != "[one node]" {
		t.Fatalf("one-node EXEC: %v", vals)
	}

	// MSET, MSETNX and DEL span nodes atomically.
	if err := c3.MSet(ctx, a, "m", b, "m", d, "m").Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := c1.MSetNX(ctx, a, "x", "fresh-"+b, "x").Result(); err != nil || ok {
		t.Fatalf("MSETNX with an existing key = %v, %v; want false", ok, err)
	}
	if n := c1.Exists(ctx, "fresh-"+b).Val(); n != 0 {
		t.Fatal("a refused MSETNX wrote a key")
	}
	if n, err := c2.Del(ctx, a, b, d, "nosuch").Result(); err != nil || n != 3 {
		t.Fatalf("cross-node DEL = %d, %v; want 3", n, err)
	}
	if n := c1.Exists(ctx, a, b, d).Val(); n != 0 {
		t.Fatalf("%d keys left after DEL", n)
	}

	// Blind writes (no read phase, locks only) stay atomic: concurrent
	// MULTI SET x=v SET y=v from clients on every node, and readers in MULTI
	// never see x and y from different transactions.
	x, y := keyOwnedBy(t, tab, "n1", "bx"), keyOwnedBy(t, tab, "n3", "by")
	var wg sync.WaitGroup
	var torn, committed, gaveUp atomic.Int64
	// Under this contention (6 clients, 2 keys) a transaction may give up
	// after its bounded retries with TRYAGAIN: nothing written, the client
	// retries; that is allowed, a torn read is not.
	tryAgain := func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN") }
	for w, cl := range []*redis.Client{c1, c2, c3} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				_, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, x, v, 0)
					p.Set(ctx, y, v, 0)
					return nil
				})
				switch {
				case tryAgain(err):
					gaveUp.Add(1)
				case err != nil:
					t.Error(err)
					return
				default:
					committed.Add(1)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				cmds, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Get(ctx, x)
					p.Get(ctx, y)
					return nil
				})
				if tryAgain(err) {
					continue
				}
				if err != nil && !errors.Is(err, redis.Nil) {
					t.Error(err)
					return
				}
				if a, b := cmds[0].(*redis.StringCmd).Val(), cmds[1].(*redis.StringCmd).Val(); a != b {
					torn.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := torn.Load(); n > 0 {
		t.Fatalf("%d reads saw two keys of one blind MULTI from different transactions", n)
	}
	t.Logf("blind MULTIs: %d committed, %d gave up with TRYAGAIN", committed.Load(), gaveUp.Load())
	if committed.Load() < 60 {
		t.Fatalf("only %d of 300 blind transactions committed", committed.Load())
	}
	if a, b := c2.Get(ctx, x).Val(), c2.Get(ctx, y).Val(); a != b {
		t.Fatalf("after blind MULTIs x=%q y=%q", a, b)
	}

	// Metrics count both paths.
	body := httpGet(t, "http://"+n1.HTTPAddr()+"/metrics")
	for _, want := range []string{`dbx_txn_commits_total{path="2pc"}`, `dbx_txn_commits_total{path="1pc"}`, `dbx_txn_aborts_total{reason="watch"}`, "dbx_txn_in_doubt 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// bank runs transfers between accounts spread over the nodes, each a
// WATCH/MULTI/EXEC read-check-write, from clients on every node, while
// readers sum every account in one MULTI/EXEC. It returns what it saw.
type bankResult struct {
	transfers, conflicts, reads, failed int64
	badReads                            []string
}

func runBank(ctx context.Context, clients []*redis.Client, accounts []string, total int, workers int, d time.Duration) *bankResult {
	res := &bankResult{}
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[w%len(clients)]
			for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
				from, to := accounts[(w+i)%len(accounts)], accounts[(w*7+i*3+1)%len(accounts)]
				if from == to {
					continue
				}
				amount := 1 + (w+i)%5
				err := cl.Watch(ctx, func(tx *redis.Tx) error {
					bal, err := tx.Get(ctx, from).Int()
					if err != nil {
						return err
					}
					if bal < amount {
						return nil
					}
					_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.DecrBy(ctx, from, int64(amount))
						p.IncrBy(ctx, to, int64(amount))
						return nil
					})
					return err
				}, from)
				switch {
				case err == nil:
					atomic.AddInt64(&res.transfers, 1)
				case errors.Is(err, redis.TxFailedErr):
					atomic.AddInt64(&res.conflicts, 1)
				default:
					atomic.AddInt64(&res.failed, 1)
				}
			}
		}()
	}
	for r := 0; r < len(clients); r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[r]
			for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
				cmds, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.MGet(ctx, accounts...)
					return nil
				})
				if err != nil {
					continue // a read that fails proves nothing either way
				}
				sum, neg := 0, false
				for _, v := range cmds[0].(*redis.SliceCmd).Val() {
					s, _ := v.(string)
					n, _ := strconv.Atoi(s)
					sum += n
					neg = neg || n < 0
				}
				atomic.AddInt64(&res.reads, 1)
				if sum != total || neg {
					mu.Lock()
					res.badReads = append(res.badReads, fmt.Sprintf("%v (sum %d)", cmds[0].(*redis.SliceCmd).Val(), sum))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return res
}

// TestTxnBank: concurrent cross-node transfers keep the total in every
// read and at the end, with no negative balance.
func TestTxnBank(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	var clients []*redis.Client
	for _, n := range c.nodes {
		clients = append(clients, client(t, n))
	}
	tab := c.nodes[0].Table()
	var accounts []string
	for i := 0; i < 9; i++ {
		accounts = append(accounts, keyOwnedBy(t, tab, fmt.Sprintf("n%d", i%3+1), fmt.Sprintf("acct%d", i)))
	}
	const initial = 100
	for _, a := range accounts {
		if err := clients[0].Set(ctx, a, initial, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := initial * len(accounts)
	res := runBank(ctx, clients, accounts, total, 6, 4*time.Second)
	t.Logf("transfers %d, WATCH conflicts %d, failed %d, consistent reads %d", res.transfers, res.conflicts, res.failed, res.reads)
	if len(res.badReads) > 0 {
		t.Fatalf("%d reads broke the invariant, first: %s", len(res.badReads), res.badReads[0])
	}
	if res.transfers < 20 || res.reads < 5 {
		t.Fatalf("too little work to prove anything: %d transfers, %d reads", res.transfers, res.reads)
	}
	sum := 0
	for _, a := range accounts {
		n, err := clients[1].Get(ctx, a).Int()
		if err != nil || n < 0 {
			t.Fatalf("final %s = %d, %v", a, n, err)
		}
		sum += n
	}
	if sum != total {
		t.Fatalf("final total %d, want %d", sum, total)
	}
}
