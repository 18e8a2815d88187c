package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The transaction commands' replies, on both backends, match Redis's.
func TestTxnReplies(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b, clk := mk(t)
			_, addr := startServer(t, testConfig(clk), b)
			r := dialRaw(t, addr)
			other := dialRaw(t, addr)
			runSteps(t, r, []step{
				cmd("-ERR EXEC without MULTI", "EXEC"),
				cmd("-ERR DISCARD without MULTI", "DISCARD"),
				cmd("+OK", "SET", "a", "1"),
				cmd("+OK", "MULTI"),
				cmd("-ERR MULTI calls can not be nested", "MULTI"),
				cmd("+QUEUED", "GET", "a"),
				cmd("+QUEUED", "SET", "a", "2"),
				cmd("+QUEUED", "GET", "a"), // reads see the transaction's own writes
				cmd("+QUEUED", "INCR", "n"),
				cmd("+QUEUED", "INCRBY", "n", "10"),
				cmd("+QUEUED", "MSET", "x", "1", "y", "2"),
				cmd("+QUEUED", "MGET", "x", "y", "z"),
				cmd("+QUEUED", "EXISTS", "x", "z"),
				cmd("+QUEUED", "DEL", "x", "z"),
				cmd("+QUEUED", "INCR", "a2"),
				cmd("+QUEUED", "SET", "s", "str"),
				cmd("+QUEUED", "INCR", "s"), // runtime error: only this reply fails
				cmd("+QUEUED", "PING"),
				cmd(`["1", +OK, "2", :1, :11, +OK, ["1", "2", (nil)], :1, :1, :1, +OK, -ERR value is not an integer or out of range, +PONG]`, "EXEC"),
				cmd(`"2"`, "GET", "a"),
				cmd(`"11"`, "GET", "n"),
				cmd("(nil)", "GET", "x"),
				cmd(`"str"`, "GET", "s"),
				// INCR of an empty string is an error inside MULTI too
				// (the engine hands an empty value to EXEC as nil).
				cmd("+OK", "SET", "e", ""),
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "INCR", "e"),
				cmd(`[-ERR value is not an integer or out of range]`, "EXEC"),
				cmd(`""`, "GET", "e"),
				// Errors while queuing abort the whole transaction.
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "SET", "a", "3"),
				cmd("-ERR unknown command 'NOSUCH', with args beginning with: ", "NOSUCH"),
				cmd("-ERR wrong number of arguments for 'get' command", "GET"),
				cmd("-ERR command 'scan' is not allowed inside MULTI", "SCAN", "0"),
				cmd("-EXECABORT Transaction discarded because of previous errors.", "EXEC"),
				cmd(`"2"`, "GET", "a"),
				// DISCARD drops the queue.
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "SET", "a", "4"),
				cmd("+OK", "DISCARD"),
				cmd(`"2"`, "GET", "a"),
				// WATCH: a change by another client makes EXEC return a null array.
				cmd("+OK", "MULTI"),
				cmd("-ERR WATCH inside MULTI is not allowed", "WATCH", "a"),
				cmd("+OK", "DISCARD"),
				cmd("+OK", "WATCH", "a", "w"),
			})
			runSteps(t, other, []step{cmd("+OK", "SET", "a", "changed")})
			runSteps(t, r, []step{
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "SET", "a", "mine"),
				cmd("(nilarray)", "EXEC"),
				cmd(`"changed"`, "GET", "a"),
				// Unchanged watched keys let EXEC run; EXEC clears the watch.
				cmd("+OK", "WATCH", "a"),
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "SET", "a", "mine"),
				cmd(`[+OK]`, "EXEC"),
				cmd(`"mine"`, "GET", "a"),
				// Rewriting the same value still counts as a change.
				cmd("+OK", "WATCH", "a"),
			})
			runSteps(t, other, []step{cmd("+OK", "SET", "a", "mine")})
			runSteps(t, r, []step{
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "SET", "a", "again"),
				cmd("(nilarray)", "EXEC"),
				// A watched key that did not exist and was created.
				cmd("+OK", "WATCH", "fresh"),
			})
			runSteps(t, other, []step{cmd("+OK", "SET", "fresh", "1")})
			runSteps(t, r, []step{
				cmd("+OK", "MULTI"),
				cmd("(nilarray)", "EXEC"),
				// UNWATCH forgets.
				cmd("+OK", "WATCH", "a"),
				cmd("+OK", "UNWATCH"),
			})
			runSteps(t, other, []step{cmd("+OK", "SET", "a", "x")})
			runSteps(t, r, []step{
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "GET", "a"),
				cmd(`["x"]`, "EXEC"),
				// Expiry inside a transaction.
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "SET", "e", "v", "EX", "100"),
				cmd("+QUEUED", "TTL", "e"),
				cmd("+QUEUED", "PERSIST", "e"),
				cmd("+QUEUED", "TTL", "e"),
				cmd(`[+OK, :100, :1, :-1]`, "EXEC"),
				cmd(":-1", "TTL", "e"),
				// MSETNX, in and out of a transaction.
				cmd(":1", "MSETNX", "m1", "a", "m2", "b"),
				cmd(":0", "MSETNX", "m2", "c", "m3", "d"),
				cmd("(nil)", "GET", "m3"),
				cmd("-ERR wrong number of arguments for 'msetnx' command", "MSETNX", "m1", "a", "m2"),
				cmd("+OK", "MULTI"),
				cmd("+QUEUED", "MSETNX", "m4", "a", "m5", "b"),
				cmd("+QUEUED", "MSETNX", "m5", "c"),
				cmd(`[:1, :0]`, "EXEC"),
				cmd(`"b"`, "GET", "m5"),
			})
			_ = clk
		})
	}
}

// The key and command limits abort EXEC with a clear error at queue time.
func TestTxnLimits(t *testing.T) {
	clk := newClock()
	cfg := testConfig(clk)
	cfg.TxnKeysMax, cfg.TxnCommandsMax = 3, 4
	_, addr := startServer(t, cfg, newMemBackend(clk.Now))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd("+OK", "MULTI"),
		cmd("+QUEUED", "MSET", "a", "1", "b", "2", "c", "3"),
		cmd("-ERR transaction too large: 4 keys, the maximum is 3 (--txn-keys-max)", "SET", "d", "1"),
		cmd("-EXECABORT Transaction discarded because of previous errors.", "EXEC"),
		cmd("+OK", "MULTI"),
		cmd("+QUEUED", "PING"),
		cmd("+QUEUED", "PING"),
		cmd("+QUEUED", "PING"),
		cmd("+QUEUED", "PING"),
		cmd("-ERR transaction too large: more than 4 queued commands (TxnCommandsMax)", "PING"),
		cmd("-EXECABORT Transaction discarded because of previous errors.", "EXEC"),
		cmd("-ERR too many watched keys: 4, the maximum is 3 (--txn-keys-max)", "WATCH", "a", "b", "c", "d"),
		cmd("(nil)", "GET", "a"),
	})
}

// go-redis's TxPipelined and Watch work, and WATCH-based increments from
// many clients lose no update (the transaction is atomic and isolated).
func TestTxnGoRedis(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b, _ := mk(t)
			_, addr := startServer(t, DefaultConfig(), b)
			rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 16})
			defer rdb.Close()
			ctx := context.Background()
			cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "k1", "v1", 0)
				p.Incr(ctx, "ctr")
				p.Get(ctx, "k1")
				return nil
			})
			if err != nil || len(cmds) != 3 || cmds[2].(*redis.StringCmd).Val() != "v1" || cmds[1].(*redis.IntCmd).Val() != 1 {
				t.Fatalf("TxPipelined: %v %v", cmds, err)
			}
			const clients, each = 8, 25
			var wg sync.WaitGroup
			var mu sync.Mutex
			committed, conflicts := 0, 0
			incr := func(tx *redis.Tx) error {
				n, err := tx.Get(ctx, "counter").Int()
				if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, "counter", strconv.Itoa(n+1), 0)
					return nil
				})
				return err
			}
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						for attempt := 0; attempt < 200; attempt++ {
							err := rdb.Watch(ctx, incr, "counter")
							if errors.Is(err, redis.TxFailedErr) {
								mu.Lock()
								conflicts++
								mu.Unlock()
								continue
							}
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							committed++
							mu.Unlock()
							break
						}
					}
				}()
			}
			wg.Wait()
			got, err := rdb.Get(ctx, "counter").Int()
			if err != nil || got != committed || committed != clients*each {
				t.Fatalf("counter = %d (%v), committed %d of %d (conflicts %d): a lost update or a lost transaction", got, err, committed, clients*each, conflicts)
			}
			t.Logf("%d increments, %d WATCH conflicts retried", committed, conflicts)
		})
	}
}

// A transfer-style workload through MULTI without WATCH (INCRBY pairs)
// keeps the total: every EXEC is atomic, and readers in MULTI see no
// half-applied transfer.
func TestTxnTransfersConserveTotal(t *testing.T) {
	clk := newClock()
	st := openEngine(t, clk)
	_, addr := startServer(t, DefaultConfig(), newEngineBackend(st, time.Now))
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 16})
	defer rdb.Close()
	ctx := context.Background()
	const accounts, initial = 8, 100
	for i := 0; i < accounts; i++ {
		rdb.Set(ctx, fmt.Sprintf("acct:%d", i), initial, 0)
	}
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = fmt.Sprintf("acct:%d", i)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				from, to := (w+i)%accounts, (w*3+i*5+1)%accounts
				if from == to {
					continue
				}
				_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.DecrBy(ctx, keys[from], 7)
					p.IncrBy(ctx, keys[to], 7)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	reads := 0
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.MGet(ctx, keys...)
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			sum := 0
			for _, v := range cmds[0].(*redis.SliceCmd).Val() {
				n, _ := strconv.Atoi(v.(string))
				sum += n
			}
			if sum != accounts*initial {
				t.Errorf("a read in MULTI summed to %d, want %d", sum, accounts*initial)
				return
			}
			reads++
		}
	}()
	wg.Wait()
	close(stop)
	<-readerDone
	vals, _ := rdb.MGet(ctx, keys...).Result()
	sum := 0
	for _, v := range vals {
		n, _ := strconv.Atoi(v.(string))
		sum += n
	}
	if sum != accounts*initial {
		t.Fatalf("final total %d, want %d", sum, accounts*initial)
	}
	t.Logf("%d consistent reads during the transfers", reads)
}
