package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"
)

// redisErr is an error reply as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Outcome
	}{
		{nil, OK},
		{redis.Nil, OK},
		{redis.TxFailedErr, OK},
		{redisErr("CLUSTERDOWN The cluster is down"), Failed},
		{redisErr("ERR unknown command 'MULTI', with args beginning with: "), Failed},
		{redisErr("ERR owner unreachable: node n3 at 10.0.0.13:7380: transport: peer unreachable: dial 10.0.0.13:7380: connect: connection refused"), Failed},
		{redisErr("ERR owner unreachable: request timed out after 2s"), Unknown},
		{redisErr("ERR owner unreachable: node n3 at 10.0.0.13:7380: transport: connection closed"), Unknown},
		{fmt.Errorf("wrapped: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), Failed},
		{&net.OpError{Op: "read", Err: errors.New("i/o timeout")}, Unknown},
		{redis.ErrPoolTimeout, Failed},
		{context.DeadlineExceeded, Unknown},
		{errors.New("EOF"), Unknown},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// reg builds register operations compactly: times in ms.
func reg(client int, kind RegisterKind, value string, call, ret int64) RegisterOp {
	return RegisterOp{Client: client, Key: "k", Kind: kind, Value: value, Outcome: OK, Call: call * 1e6, Return: ret * 1e6}
}

func cas(client int, expect, value string, swapped bool, call, ret int64) RegisterOp {
	op := reg(client, RegCAS, value, call, ret)
	op.Expect, op.Swapped = expect, swapped
	return op
}

func unknown(op RegisterOp) RegisterOp {
	op.Outcome, op.Return = Unknown, 0
	return op
}

func failed(op RegisterOp) RegisterOp {
	op.Outcome = Failed
	return op
}

func TestCheckRegister(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []RegisterOp
		ok   bool
	}{
		{"sequential", []RegisterOp{
			reg(0, RegGet, "", 0, 1), reg(0, RegSet, "a", 2, 3), reg(1, RegGet, "a", 4, 5),
			cas(1, "a", "b", true, 6, 7), cas(0, "a", "c", false, 8, 9), reg(0, RegGet, "b", 10, 11),
		}, true},
		{"concurrent read may see either", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), reg(0, RegSet, "b", 2, 10), reg(1, RegGet, "a", 3, 4), reg(1, RegGet, "b", 5, 6),
		}, true},
		{"stale read after the write completed", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), reg(0, RegSet, "b", 2, 3), reg(1, RegGet, "a", 4, 5),
		}, false},
		{"read goes back in time", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), reg(0, RegSet, "b", 2, 20), reg(1, RegGet, "b", 3, 4), reg(1, RegGet, "a", 5, 6),
		}, false},
		{"acknowledged write lost", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), reg(1, RegGet, "", 2, 3),
		}, false},
		{"read of a value never written", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), reg(1, RegGet, "zz", 2, 3),
		}, false},
		{"failed write must not be seen", []RegisterOp{
			failed(reg(0, RegSet, "a", 0, 1)), reg(1, RegGet, "a", 2, 3),
		}, false},
		{"unknown write seen late", []RegisterOp{
			unknown(reg(0, RegSet, "a", 0, 1)), reg(1, RegGet, "", 2, 3), reg(1, RegGet, "a", 50, 51), reg(1, RegGet, "a", 60, 61),
		}, true},
		{"unknown write never seen", []RegisterOp{
			reg(1, RegSet, "x", 0, 1), unknown(reg(0, RegSet, "a", 2, 3)), reg(1, RegGet, "x", 4, 5),
		}, true},
		{"unknown write seen, then gone", []RegisterOp{
			reg(1, RegSet, "x", 0, 1), unknown(reg(0, RegSet, "a", 2, 3)), reg(1, RegGet, "a", 4, 5), reg(1, RegGet, "x", 6, 7),
		}, false},
		{"cas swapped from the wrong value", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), cas(1, "z", "b", true, 2, 3),
		}, false},
		{"cas refused although the value matched", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), cas(1, "a", "b", false, 2, 3),
		}, false},
		{"cas refused because of a concurrent write", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), cas(1, "a", "b", false, 2, 10), reg(0, RegSet, "c", 3, 4),
		}, true},
		{"unknown cas may take effect", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), unknown(cas(1, "a", "b", false, 2, 3)), reg(0, RegGet, "b", 4, 5),
		}, true},
		{"unknown cas cannot swap from the wrong value", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), unknown(cas(1, "z", "b", false, 2, 3)), reg(0, RegGet, "b", 4, 5),
		}, false},
		{"unknown read is ignored", []RegisterOp{
			reg(0, RegSet, "a", 0, 1), unknown(reg(1, RegGet, "zz", 2, 3)),
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckRegister(tc.ops, 10*time.Second)
			if res.OK() != tc.ok {
				t.Fatalf("CheckRegister: %s, want ok=%v", res, tc.ok)
			}
		})
	}
}

func TestCheckRegisterPartitionsByKey(t *testing.T) {
	a := reg(0, RegSet, "a", 0, 1)
	b := reg(1, RegGet, "", 2, 3) // reads key k2: absent is right there
	b.Key = "k2"
	res := CheckRegister([]RegisterOp{a, b}, 10*time.Second)
	if !res.OK() || res.Keys != 2 {
		t.Fatalf("two keys: %s", res)
	}
	b.Key = "k" // the same read on k misses an acknowledged write
	c := reg(1, RegGet, "", 2, 3)
	c.Key = "k3"
	res = CheckRegister([]RegisterOp{a, b, c}, 10*time.Second)
	if res.OK() || strings.Join(res.BadKeys, ",") != "k" {
		t.Fatalf("one bad key: %s, want a violation on k only", res)
	}
}

func TestRegisterUnknownVerdictFails(t *testing.T) {
	if (RegisterResult{Result: porcupine.Unknown}).OK() {
		t.Fatal("porcupine Unknown (timeout) must not pass")
	}
}

func TestRegisterVisualize(t *testing.T) {
	ops := []RegisterOp{reg(0, RegSet, "a", 0, 1), reg(1, RegGet, "", 2, 3)}
	res := CheckRegister(ops, 10*time.Second)
	path := t.TempDir() + "/register.html"
	if err := VisualizeRegister(res, nil, path); err != nil {
		t.Fatal(err)
	}
}

func TestCheckBank(t *testing.T) {
	good := BankRead{Balances: []int64{10, 20, 30}}
	for _, tc := range []struct {
		name string
		read BankRead
		ok   bool
	}{
		{"conserved", good, true},
		{"sum too high", BankRead{Balances: []int64{10, 25, 30}}, false},
		{"sum too low", BankRead{Balances: []int64{10, 20, 29}}, false},
		{"negative balance", BankRead{Balances: []int64{-5, 35, 30}}, false},
		{"missing account", ParseBankRead([]string{"a", "b", "c"}, []any{"10", nil, "50"}), false},
		{"garbled account", ParseBankRead([]string{"a", "b", "c"}, []any{"10", "x", "50"}), false},
		{"short reply", ParseBankRead([]string{"a", "b", "c"}, []any{"10", "50"}), false},
		{"parsed", ParseBankRead([]string{"a", "b", "c"}, []any{"10", "20", "30"}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckBank(60, 3, []BankRead{good, tc.read, good})
			if res.OK() != tc.ok {
				t.Fatalf("CheckBank: %s, want ok=%v", res, tc.ok)
			}
			if !tc.ok && res.Bad != 1 {
				t.Fatalf("CheckBank: %d bad reads, want 1", res.Bad)
			}
		})
	}
}

func TestCheckSet(t *testing.T) {
	att := func(k string, o Outcome) SetAttempt { return SetAttempt{Key: k, Value: "v" + k, Outcome: o} }
	attempts := []SetAttempt{att("a", OK), att("b", OK), att("c", Failed), att("d", Unknown), att("e", Unknown)}
	present := func(kv ...string) SetFinal {
		f := SetFinal{Present: map[string]string{}}
		for _, k := range kv {
			f.Present[k] = "v" + k
		}
		return f
	}
	for _, tc := range []struct {
		name  string
		final SetFinal
		check func(SetResult) bool
		ok    bool
	}{
		{"all there", present("a", "b", "d"), func(r SetResult) bool { return r.UnknownPresent == 1 && r.Acked == 2 }, true},
		{"lost", present("a", "d"), func(r SetResult) bool { return strings.Join(r.Lost, ",") == "b" }, false},
		{"never written", present("a", "b", "zz"), func(r SetResult) bool { return len(r.Unexpected) == 1 }, false},
		{"wrong value", SetFinal{Present: map[string]string{"a": "va", "b": "other"}}, func(r SetResult) bool { return len(r.Unexpected) == 1 && len(r.Lost) == 0 }, false},
		{"failed but present", present("a", "b", "c"), func(r SetResult) bool { return strings.Join(r.FailedPresent, ",") == "c" }, false},
		{"unreadable", SetFinal{Present: map[string]string{"a": "va"}, Unreadable: []string{"b"}}, func(r SetResult) bool { return len(r.Unreadable) == 1 && len(r.Lost) == 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckSet(attempts, tc.final)
			if res.OK() != tc.ok || !tc.check(res) {
				t.Fatalf("CheckSet: %s, want ok=%v", res, tc.ok)
			}
		})
	}
}

// The snapshot verdict fails on a broken total and on having nothing to
// check (a run where no take succeeded proves nothing).
func TestSnapshotResultVerdict(t *testing.T) {
	if (SnapshotResult{Taken: 3, Checked: 2}).OK() != true {
		t.Fatal("two conserved snapshots: not OK")
	}
	if (SnapshotResult{Taken: 3, Checked: 2, Bad: []string{"s1: bank total 998, want 1000"}}).OK() {
		t.Fatal("a broken total passed")
	}
	if (SnapshotResult{Taken: 0, Refused: 5}).OK() {
		t.Fatal("no snapshot checked passed")
	}
}
