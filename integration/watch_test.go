package integration

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/node"
)

// TestWatchIncrementsSyncAlways: WATCH/GET/MULTI/SET/EXEC increments from 4
// clients and plain INCRs from 2 more on one key of a node with WAL sync
// always. Every acknowledged increment must count. (With sync always a
// write is applied before it is durable and visible to GET; WATCH once
// took its version from the applied state while GET read the visible one,
// so EXEC committed over writes the client never saw: the chaos suite's
// register and bank checkers found it.)
func TestWatchIncrementsSyncAlways(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *node.Config) { cfg.Sync = "always" })
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: c.nodes[0].RESPAddr(), PoolSize: 8})
	defer rdb.Close()
	var wg sync.WaitGroup
	var watched, incrs atomic.Int64
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				if w >= 4 {
					if err := rdb.Incr(ctx, "ctr").Err(); err != nil {
						t.Error(err)
						return
					}
					incrs.Add(1)
					continue
				}
				err := rdb.Watch(ctx, func(tx *redis.Tx) error {
					n, err := tx.Get(ctx, "ctr").Int()
					if err != nil && !errors.Is(err, redis.Nil) {
						return err
					}
					_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.Set(ctx, "ctr", strconv.Itoa(n+1), 0)
						return nil
					})
					return err
				}, "ctr")
				switch {
				case err == nil:
					watched.Add(1)
				case !errors.Is(err, redis.TxFailedErr):
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n, err := rdb.Get(ctx, "ctr").Int()
	want := watched.Load() + incrs.Load()
	t.Logf("counter %d: %d WATCH increments committed, %d INCRs", n, watched.Load(), incrs.Load())
	if err != nil || int64(n) != want {
		t.Fatalf("counter = %d (%v), want %d: acknowledged increments lost", n, err, want)
	}
}
