package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// replClusterJSON is the replication part of /v1/cluster.
type replClusterJSON struct {
	Leader            string `json:"leader"`
	ReplicationFactor int    `json:"replication_factor"`
	UnderReplicated   int    `json:"under_replicated"`
}

func getRepl(httpAddr string) (replClusterJSON, error) {
	var r replClusterJSON
	b, err := getJSON(httpAddr, "/v1/cluster")
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	return r, err
}

// TestReplicationSIGKILL runs real dbx-node processes at replication
// factor 3 under a set workload (every write a new key) and SIGKILLs a
// node twice: a follower, restarted after a while (it must catch up and
// rejoin every set), then the Raft leader. Every acknowledged write must
// read back afterwards (lost: 0), and after each kill every probed key
// must be readable and writable again within the bound: the measured
// unavailability window is logged per kill.
func TestReplicationSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	c := startProcCluster(t, 3, func(p *proc) { p.extra = []string{"--replication-factor", "3"} })
	waitFor(t, 30*time.Second, "every bucket on 3 in-sync replicas", func() error {
		for _, p := range c.procs {
			r, err := getRepl(p.http)
			if err != nil {
				return err
			}
			if r.ReplicationFactor != 3 || r.UnderReplicated != 0 {
				return fmt.Errorf("%s: %+v", p.id, r)
			}
		}
		return nil
	})
	clients := map[string]*redis.Client{}
	for _, p := range c.procs {
		clients[p.id] = redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: p.resp, MaxRetries: -1,
			DialTimeout: 300 * time.Millisecond, ReadTimeout: 3 * time.Second, WriteTimeout: time.Second})
		defer clients[p.id].Close()
	}
	// procMu orders the workload's reads of the processes (live) with
	// their restart, which rewrites proc fields.
	var procMu sync.RWMutex
	liveClient := func(rng *rand.Rand) *redis.Client {
		procMu.RLock()
		defer procMu.RUnlock()
		live := c.live()
		return clients[live[rng.IntN(len(live))].id]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ready := time.Now()
	waitFor(t, 30*time.Second, "the cluster takes writes", func() error {
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range 64 {
			if err := liveClient(rng).Set(ctx, fmt.Sprintf("warm%d", i), "x", 0).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("writable %v after full replication", time.Since(ready).Round(time.Millisecond))

	// The workload: 8 writers, each key written once; acked holds what
	// must survive.
	var (
		acked   sync.Map
		nAcked  atomic.Int64
		nFailed atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; !stop.Load() && i < 1_000_000; i++ {
				k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)
				if err := liveClient(rng).Set(ctx, k, v, 0).Err(); err != nil {
					nFailed.Add(1)
					time.Sleep(10 * time.Millisecond) // retry backoff
					continue
				}
				acked.Store(k, v)
				nAcked.Add(1)
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// window kills victim and returns how long until each of 128 probe
	// keys (spread over the buckets) was readable and writable again.
	window := func(victim *proc) time.Duration {
		t.Helper()
		victim.kill(t)
		start := time.Now()
		var worst atomic.Int64
		var pw sync.WaitGroup
		for g := range 8 {
			pw.Add(1)
			go func() {
				defer pw.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 99))
				for i := g; i < 128; i += 8 {
					k := fmt.Sprintf("probe-%d", i)
					dumped := false
					var lastErr error
					for {
						if time.Since(start) > 60*time.Second {
							t.Errorf("%s not writable 60 s after %s was killed", k, victim.id)
							return
						}
						if el := time.Since(start); el > 8*time.Second && !dumped {
							dumped = true
							b := router.BucketString(k)
							for _, p := range c.live() {
								body, _ := getJSON(p.http, fmt.Sprintf("/v1/buckets/%d/replica", b))
								t.Logf("%s still failing after %v (%v); bucket %d: %s", k, el.Round(time.Millisecond), lastErr, b, body)
							}
						}
						rc := liveClient(rng)
						err := rc.Set(ctx, k, "p", 0).Err()
						if err == nil {
							if err = rc.Get(ctx, k).Err(); err == nil {
								break
							}
						}
						lastErr = err
						time.Sleep(20 * time.Millisecond) // retry backoff
					}
					if d := int64(time.Since(start)); d > worst.Load() {
						worst.Store(d)
					}
				}
			}()
		}
		pw.Wait()
		return time.Duration(worst.Load())
	}

	time.Sleep(3 * time.Second) // writes before the first kill
	var follower *proc
	for _, p := range c.procs {
		if r, err := getRepl(p.http); err == nil && r.Leader != p.id {
			follower = p
			break
		}
	}
	before := nAcked.Load()
	w1 := window(follower)
	t.Logf("SIGKILL %s (follower): every probed key writable after %v; %d writes acknowledged before", follower.id, w1.Round(time.Millisecond), before)

	// Writes go on without it (its buckets are under-replicated), then it
	// comes back and catches up.
	time.Sleep(5 * time.Second)
	shrunk := 0
	procMu.RLock()
	live := c.live()
	procMu.RUnlock()
	for _, p := range live {
		if r, err := getRepl(p.http); err == nil {
			shrunk = max(shrunk, r.UnderReplicated)
		}
	}
	if shrunk == 0 {
		t.Fatalf("no bucket under-replicated with %s down", follower.id)
	}
	t.Logf("%d buckets under-replicated with %s down", shrunk, follower.id)
	var join []string
	for _, p := range c.live() {
		join = append(join, p.gossip)
	}
	procMu.Lock()
	follower.start(t, c.bin, join)
	procMu.Unlock()
	back := time.Now()
	waitFor(t, 60*time.Second, follower.id+" back in every in-sync set", func() error {
		for _, p := range c.procs {
			r, err := getRepl(p.http)
			if err != nil {
				return err
			}
			if r.UnderReplicated != 0 {
				return fmt.Errorf("%s: %d buckets under-replicated", p.id, r.UnderReplicated)
			}
		}
		return nil
	})
	t.Logf("%s restarted and back in every set after %v", follower.id, time.Since(back).Round(time.Millisecond))

	var leader *proc
	if r, err := getRepl(c.live()[0].http); err == nil {
		leader = c.byID(r.Leader)
	}
	if leader == nil {
		t.Fatal("no leader known")
	}
	w2 := window(leader)
	t.Logf("SIGKILL %s (leader): every probed key writable after %v", leader.id, w2.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	// Lost writes: every acknowledged key reads back its value.
	lost, checked := 0, 0
	rng := rand.New(rand.NewPCG(3, 3))
	acked.Range(func(k, v any) bool {
		checked++
		var got string
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			if got, err = liveClient(rng).Get(ctx, k.(string)).Result(); err == nil || err == redis.Nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // retry backoff
		}
		if got != v.(string) {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s=%s reads %q (%v)", k, v, got, err)
			}
		}
		return true
	})
	t.Logf("%d writes acknowledged (%d checked), %d failed or unknown, lost %d", nAcked.Load(), checked, nFailed.Load(), lost)
	if lost > 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	if checked == 0 {
		t.Fatal("no write was acknowledged")
	}
	for i, w := range []time.Duration{w1, w2} {
		if w > 15*time.Second {
			t.Errorf("kill %d: unavailability window %v, want at most 15 s", i+1, w)
		}
	}
}
