package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// opTimeout bounds one client operation (the node's own request timeout
// is 2 s; a compare-and-set is four round trips).
const opTimeout = 5 * time.Second

// newClient returns a RESP client of one node that never retries (a retry
// would hide when a write really happened) and never waits long.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		Protocol:              2,
		DisableIdentity:       true,
		MaxRetries:            -1,
		DialTimeout:           time.Second,
		ReadTimeout:           4 * time.Second,
		WriteTimeout:          4 * time.Second,
		PoolSize:              2,
		PoolTimeout:           time.Second,
		ContextTimeoutEnabled: true,
	})
}

// opContext returns the context of one operation: not tied to the
// workload's stop signal, so stopping never turns an operation's outcome
// into unknown; bounded by opTimeout.
func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// clock gives operation timestamps: nanoseconds since the run started,
// from the monotonic clock.
type clock struct{ start time.Time }

func (c clock) now() int64 { return int64(time.Since(c.start)) }

// progress records the first successful operation invoked after a point in
// time (a heal), for the recovery figures.
type progress struct {
	mu    sync.Mutex
	since int64
	first int64 // return time; 0: none yet
}

func (p *progress) watch(since int64) {
	p.mu.Lock()
	p.since, p.first = since, 0
	p.mu.Unlock()
}

func (p *progress) ok(call, ret int64) {
	p.mu.Lock()
	if p.first == 0 && p.since > 0 && call >= p.since {
		p.first = ret
	}
	p.mu.Unlock()
}

func (p *progress) firstOK() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first, p.first != 0
}

// ProbeMulti reports whether the server accepts WATCH/MULTI/EXEC, by running
// one compare-and-set on key; the string says why not.
func ProbeMulti(ctx context.Context, rdb *redis.Client, key string) (bool, string) {
	var last error
	for range 10 {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		err := rdb.Watch(octx, func(tx *redis.Tx) error {
			if err := tx.Get(octx, key).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			_, err := tx.TxPipelined(octx, func(p redis.Pipeliner) error {
				p.Set(octx, key, "probe", 0)
				return nil
			})
			return err
		}, key)
		cancel()
		if err == nil || errors.Is(err, redis.TxFailedErr) {
			return true, ""
		}
		if strings.Contains(err.Error(), "unknown command") {
			return false, "server lacks MULTI: " + err.Error()
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return false, fmt.Sprintf("MULTI probe kept failing: %v", last)
}

// placement maps buckets to nodes, from CLUSTER SLOTS.
type placement struct {
	owner [router.NumBuckets]*Node
}

func readPlacement(ctx context.Context, c *Cluster, rdb *redis.Client) (*placement, error) {
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
	}
	p := &placement{}
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			return nil, fmt.Errorf("CLUSTER SLOTS: slots %d-%d without a node", s.Start, s.End)
		}
		n := c.byID(s.Nodes[0].ID) // the address is the cluster RESP port
		if n == nil {
			return nil, fmt.Errorf("CLUSTER SLOTS: unknown node %s at %s", s.Nodes[0].ID, s.Nodes[0].Addr)
		}
		for b := s.Start; b <= s.End && b < router.NumBuckets; b++ {
			p.owner[b] = n
		}
	}
	for b, n := range p.owner {
		if n == nil {
			return nil, fmt.Errorf("CLUSTER SLOTS: bucket %d has no owner", b)
		}
	}
	return p, nil
}

func (p *placement) ownerOf(key string) *Node { return p.owner[router.BucketString(key)] }

// keysOn returns perNode keys prefix<i> owned by each node, in node order
// (node 0's keys first).
func (p *placement) keysOn(nodes []*Node, prefix string, perNode int) ([]string, error) {
	byNode := map[*Node][]string{}
	for i := 0; i < 1_000_000; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		n := p.ownerOf(k)
		if len(byNode[n]) < perNode {
			byNode[n] = append(byNode[n], k)
		}
		done := true
		for _, m := range nodes {
			done = done && len(byNode[m]) == perNode
		}
		if done {
			var out []string
			for _, m := range nodes {
				out = append(out, byNode[m]...)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("could not find %d keys %s* on every node", perNode, prefix)
}
