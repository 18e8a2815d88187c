package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedis runs a throwaway redis-server (the workloads' reference: a
// single Redis is linearizable and its MULTI/EXEC atomic) and returns its
// address.
func startRedis(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a redis-server for seconds: skipped under -short")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rdb := newClient(addr)
	defer rdb.Close()
	if err := waitUntil(context.Background(), 10*time.Second, func() error {
		return rdb.Ping(context.Background()).Err()
	}); err != nil {
		t.Fatalf("redis-server on %s: %v", addr, err)
	}
	return addr
}

// workloadRun runs the three workloads against addr for d with a few
// clients each; sabotage, if set, runs alongside them (a misbehaving
// "server" seen from outside) and gets its own client.
func workloadRun(t *testing.T, addr string, d time.Duration, sabotage func(ctx context.Context, rdb *redis.Client)) *Report {
	t.Helper()
	ctx := context.Background()
	clk := clock{start: time.Now()}
	prog := &progress{}
	rep := &Report{Name: t.Name(), Multi: true}
	reg := &Register{Keys: [][]string{{"r0", "r1", "r2"}, {"r3", "r4", "r5"}}, Period: 2 * time.Second, CAS: true,
		Pace: 2 * time.Millisecond, MaxOps: 5000, clock: clk, prog: prog}
	bank := &Bank{Accounts: []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}, Initial: 100, Pace: 2 * time.Millisecond,
		ReadPace: 5 * time.Millisecond, MaxOps: 5000, clock: clk, prog: prog}
	set := &Set{Prefix: "s", Pace: 2 * time.Millisecond, MaxOps: 5000, clock: clk, prog: prog}
	admin := newClient(addr)
	defer admin.Close()
	if ok, why := ProbeMulti(ctx, admin, "probe"); !ok {
		t.Fatalf("redis-server refuses MULTI: %s", why)
	}
	if err := bank.Init(ctx, admin); err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	id := 0
	start := func(run func(context.Context, int, Target, *rand.Rand)) {
		rdb := newClient(addr)
		c := id
		id++
		wg.Go(func() {
			defer rdb.Close()
			run(stop, c, Target{Node: "redis", RDB: rdb}, rand.New(rand.NewPCG(1, uint64(c))))
		})
	}
	for range 4 {
		start(reg.Run)
		start(bank.RunTransfers)
		start(set.Run)
	}
	start(bank.RunReads)
	if sabotage != nil {
		rdb := newClient(addr)
		wg.Go(func() {
			defer rdb.Close()
			sabotage(stop, rdb)
		})
	}
	wg.Wait()
	targets := []Target{{Node: "redis", RDB: admin}}
	bank.FinalRead(ctx, targets, 5*time.Second)
	final := set.Final(ctx, targets, 5*time.Second)

	rep.RegisterOps, rep.RegisterKeys = reg.History(), reg.KeysUsed()
	rr := CheckRegister(rep.RegisterOps, time.Minute)
	rep.RegisterResult = &rr
	rep.BankReads, rep.BankCounts, rep.BankTotal = bank.Reads(), bank.Counts(), bank.Total()
	br := CheckBank(bank.Total(), len(bank.Accounts), rep.BankReads)
	rep.BankResult = &br
	rep.SetAttempts, rep.SetFinal = set.Attempts(), &final
	sr := CheckSet(rep.SetAttempts, final)
	rep.SetResult = &sr
	for name, ok := range map[string]bool{"register": rr.OK(), "bank": br.OK(), "set": sr.OK()} {
		if !ok {
			rep.Failures = append(rep.Failures, name)
		}
	}
	t.Logf("\n%s", rep)
	return rep
}

// TestWorkloadsAgainstRedis runs the workloads and checkers end to end
// against one redis-server: everything must pass, with compare-and-sets
// and transfers both succeeding and conflicting.
func TestWorkloadsAgainstRedis(t *testing.T) {
	addr := startRedis(t)
	rep := workloadRun(t, addr, 3*time.Second, nil)
	if !rep.OK() {
		t.Fatalf("a correct server failed the checkers: %v", rep.Failures)
	}
	cas := map[bool]int{}
	for _, op := range rep.RegisterOps {
		if op.Kind == RegCAS && op.Outcome == OK {
			cas[op.Swapped]++
		}
	}
	c := rep.BankCounts
	if cas[true] == 0 || cas[false] == 0 || c.OK == 0 || c.Conflict == 0 || c.Reads == 0 || rep.SetResult.Acked == 0 {
		t.Fatalf("workloads did too little to mean anything: cas swapped %d / refused %d, transfers ok %d / conflict %d, reads %d, inserts %d",
			cas[true], cas[false], c.OK, c.Conflict, c.Reads, rep.SetResult.Acked)
	}
	// Save exercises the results writer, porcupine's view included.
	if err := rep.Save(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// TestWorkloadsCatchABadServer runs the same workloads while a saboteur
// does what a broken store would: a register takes a value no client
// wrote, money appears in an account, an acknowledged insert disappears.
// Every checker must fail.
func TestWorkloadsCatchABadServer(t *testing.T) {
	addr := startRedis(t)
	sabotage := func(ctx context.Context, rdb *redis.Client) {
		time.Sleep(time.Second)
		bg := context.Background()
		// A value no client wrote, and an old value brought back.
		old, _ := rdb.Get(bg, "r1").Result()
		for i := range 10 {
			rdb.Set(bg, "r1", fmt.Sprintf("never-written-%d", i), 0)
			time.Sleep(20 * time.Millisecond)
			rdb.Set(bg, "r2", old, 0)
			time.Sleep(20 * time.Millisecond)
		}
		rdb.IncrBy(bg, "a3", 7)
		// Delete acknowledged inserts (keys written by now).
		for c := range 4 {
			rdb.Del(bg, fmt.Sprintf("s:%d:0", 2+3*c), fmt.Sprintf("s:%d:1", 2+3*c))
		}
		<-ctx.Done()
	}
	rep := workloadRun(t, addr, 3*time.Second, sabotage)
	if rep.RegisterResult.OK() {
		t.Error("register checker passed registers that took values no client wrote or went back in time")
	}
	if rep.BankResult.OK() {
		t.Error("bank checker passed reads with money created from nothing")
	}
	if len(rep.SetResult.Lost) == 0 {
		t.Errorf("set checker found nothing lost after acknowledged inserts were deleted: %s", rep.SetResult)
	}
}
