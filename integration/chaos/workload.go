package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Target is what one workload client talks to: one node's RESP port.
type Target struct {
	Node string
	RDB  *redis.Client
}

// Workload pacing: every client waits pace (±50%) between operations and
// errorBackoff after an error, so a fault does not flood the history with
// open operations (porcupine's search grows with them).
const errorBackoff = 300 * time.Millisecond

func think(stop context.Context, rnd *rand.Rand, pace time.Duration, failed bool) {
	d := pace/2 + time.Duration(rnd.Int64N(int64(pace)+1))
	if failed {
		d += errorBackoff
	}
	select {
	case <-stop.Done():
	case <-time.After(d):
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Register is the register workload: GET, SET of unique values and, when
// CAS is set, compare-and-set with WATCH/GET/MULTI/SET/EXEC.
//
// Porcupine's search grows exponentially with the operations left open
// (unknown outcome) on one key, so every key is short-lived and few
// operations stay open on it: clients move to the next generation of keys
// every Period (Keys[g] during generation g; the last one stays once they
// run out), and a client whose write to a key had an unknown outcome only
// reads that key afterwards. Each key thus has at most one open write per
// client.
type Register struct {
	Keys   [][]string
	Period time.Duration
	CAS    bool
	Pace   time.Duration
	MaxOps int // per client

	clock clock
	prog  *progress

	mu  sync.Mutex
	ops []RegisterOp
}

// RegisterPeriod is how long clients use one generation of register keys.
const RegisterPeriod = 10 * time.Second

func (w *Register) record(op RegisterOp) {
	if op.Outcome == OK {
		w.prog.ok(op.Call, op.Return)
	}
	w.mu.Lock()
	w.ops = append(w.ops, op)
	w.mu.Unlock()
}

// History returns a copy of the operations recorded so far.
func (w *Register) History() []RegisterOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ops)
}

// KeysUsed counts the keys of the generations that have started.
func (w *Register) KeysUsed() int {
	g := w.generation()
	n := 0
	for _, keys := range w.Keys[:g+1] {
		n += len(keys)
	}
	return n
}

func (w *Register) generation() int {
	g := int(time.Duration(w.clock.now()) / w.Period)
	return min(g, len(w.Keys)-1)
}

// Run is one client: it runs until stop ends or MaxOps operations.
func (w *Register) Run(stop context.Context, client int, t Target, rnd *rand.Rand) {
	seen := map[string]string{}   // last value this client saw per key
	readOnly := map[string]bool{} // keys this client wrote with an unknown outcome
	for seq := 0; seq < w.MaxOps && stop.Err() == nil; seq++ {
		keys := w.Keys[w.generation()]
		key := keys[rnd.IntN(len(keys))]
		value := fmt.Sprintf("c%d-%d", client, seq)
		op := RegisterOp{Client: client, Node: t.Node, Key: key}
		r := rnd.Float64()
		switch {
		case r < 0.5 || readOnly[key]:
			op = w.get(t, op)
			if op.Outcome == OK {
				seen[key] = op.Value
			}
		case !w.CAS || r < 0.8:
			op = w.set(t, op, value)
			if op.Outcome == OK {
				seen[key] = value
			}
		default:
			op = w.cas(t, op, seen[key], value)
			if op.Outcome == OK && (op.Kind == RegGet || op.Swapped) {
				seen[key] = op.Value
			}
		}
		if op.Outcome == Unknown && op.Kind != RegGet {
			readOnly[key] = true
		}
		w.record(op)
		think(stop, rnd, w.Pace, op.Outcome != OK)
	}
}

func (w *Register) get(t Target, op RegisterOp) RegisterOp {
	ctx, cancel := opContext()
	defer cancel()
	op.Kind = RegGet
	op.Call = w.clock.now()
	v, err := t.RDB.Get(ctx, op.Key).Result()
	op.Return = w.clock.now()
	op.Outcome, op.Err = Classify(err), errString(err)
	if err == nil {
		op.Value = v
	}
	return op
}

func (w *Register) set(t Target, op RegisterOp, value string) RegisterOp {
	ctx, cancel := opContext()
	defer cancel()
	op.Kind, op.Value = RegSet, value
	op.Call = w.clock.now()
	err := t.RDB.Set(ctx, op.Key, value, 0).Err()
	op.Return = w.clock.now()
	op.Outcome, op.Err = Classify(err), errString(err)
	return op
}

// cas sets key to value if it holds expect: WATCH, GET, then MULTI/SET/EXEC
// only if GET returned expect. When GET shows another value, the operation
// is recorded as that GET (nothing was written).
func (w *Register) cas(t Target, op RegisterOp, expect, value string) RegisterOp {
	ctx, cancel := opContext()
	defer cancel()
	op.Kind, op.Expect, op.Value = RegCAS, expect, value
	op.Call = w.clock.now()
	var (
		execSent, mismatch bool
		observed           string
		getReturn          int64
	)
	err := t.RDB.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, op.Key).Result()
		getReturn = w.clock.now()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if v != expect {
			observed, mismatch = v, true
			return nil
		}
		execSent = true
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, op.Key, value, 0)
			return nil
		})
		return err
	}, op.Key)
	op.Return = w.clock.now()
	op.Err = errString(err)
	switch {
	case err == nil && mismatch:
		op.Kind, op.Value, op.Expect, op.Return, op.Outcome = RegGet, observed, "", getReturn, OK
	case err == nil:
		op.Outcome, op.Swapped = OK, true
	case errors.Is(err, redis.TxFailedErr):
		op.Outcome, op.Swapped = OK, false
	case !execSent:
		op.Outcome = Failed // WATCH or GET failed: no EXEC, no write
	default:
		op.Outcome = Classify(err)
	}
	return op
}

// BankCounts counts transfer outcomes.
type BankCounts struct {
	OK, Conflict, Insufficient, Failed, Unknown, Reads, ReadErrors int
}

// Bank is the bank workload: transfers between Accounts with
// WATCH/MULTI/EXEC, and reads of every account in one MULTI/EXEC.
type Bank struct {
	Accounts []string
	Initial  int64 // balance of every account at the start
	// Pace and ReadPace are the think times of transferring and reading
	// clients.
	Pace, ReadPace time.Duration
	MaxOps         int // per client

	clock clock
	prog  *progress

	mu        sync.Mutex
	reads     []BankRead
	transfers []BankTransfer
	counts    BankCounts
}

// BankTransfer is one transfer attempt, kept for the results of a failed
// run (the checker reads only BankReads).
type BankTransfer struct {
	Client int    `json:"client"`
	Node   string `json:"node"`
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
	Result string `json:"result"` // ok, insufficient, conflict, failed, unknown
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Err    string `json:"err,omitempty"`
}

// Total is the sum every read must see.
func (w *Bank) Total() int64 { return w.Initial * int64(len(w.Accounts)) }

// Init writes every account's initial balance, retrying for up to 30 s.
func (w *Bank) Init(ctx context.Context, rdb *redis.Client) error {
	for _, a := range w.Accounts {
		if err := waitUntil(ctx, 30*time.Second, func() error {
			octx, cancel := opContext()
			defer cancel()
			return rdb.Set(octx, a, w.Initial, 0).Err()
		}); err != nil {
			return fmt.Errorf("bank init %s: %w", a, err)
		}
	}
	return nil
}

// Reads returns a copy of the reads so far; Counts the transfer counts.
func (w *Bank) Reads() []BankRead {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.reads)
}

// Transfers returns a copy of the transfer attempts so far.
func (w *Bank) Transfers() []BankTransfer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.transfers)
}

// Counts returns the transfer and read counts.
func (w *Bank) Counts() BankCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts
}

// transfer results.
const (
	transferOK           = "ok"
	transferInsufficient = "insufficient" // the source had too little: nothing written
	transferConflict     = "conflict"     // EXEC answered nil: a watched account changed
	transferFailed       = "failed"
	transferUnknown      = "unknown"
)

// RunTransfers is one transferring client.
func (w *Bank) RunTransfers(stop context.Context, client int, t Target, rnd *rand.Rand) {
	for i := 0; i < w.MaxOps && stop.Err() == nil; i++ {
		p := rnd.Perm(len(w.Accounts))
		from, to := w.Accounts[p[0]], w.Accounts[p[1]]
		amount := 1 + rnd.Int64N(5)
		call := w.clock.now()
		res, err := w.transfer(t, from, to, amount)
		w.mu.Lock()
		w.transfers = append(w.transfers, BankTransfer{Client: client, Node: t.Node, From: from, To: to, Amount: amount,
			Result: res, Call: call, Return: w.clock.now(), Err: errString(err)})
		switch res {
		case transferOK:
			w.counts.OK++
		case transferInsufficient:
			w.counts.Insufficient++
		case transferConflict:
			w.counts.Conflict++
		case transferFailed:
			w.counts.Failed++
		default:
			w.counts.Unknown++
		}
		w.mu.Unlock()
		answered := res == transferOK || res == transferInsufficient || res == transferConflict
		if answered {
			w.prog.ok(call, w.clock.now())
		}
		think(stop, rnd, w.Pace, !answered)
	}
}

// transfer moves amount from one account to another if the source has it:
// WATCH both, MGET, MULTI, SET, SET, EXEC.
func (w *Bank) transfer(t Target, from, to string, amount int64) (string, error) {
	ctx, cancel := opContext()
	defer cancel()
	execSent, insufficient := false, false
	err := t.RDB.Watch(ctx, func(tx *redis.Tx) error {
		vals, err := tx.MGet(ctx, from, to).Result()
		if err != nil {
			return err
		}
		r := ParseBankRead([]string{from, to}, vals)
		if len(r.Problems) > 0 {
			return fmt.Errorf("bank: %v", r.Problems)
		}
		if r.Balances[0] < amount {
			insufficient = true
			return nil
		}
		execSent = true
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, from, r.Balances[0]-amount, 0)
			p.Set(ctx, to, r.Balances[1]+amount, 0)
			return nil
		})
		return err
	}, from, to)
	switch {
	case err == nil && insufficient:
		return transferInsufficient, nil
	case err == nil:
		return transferOK, nil
	case errors.Is(err, redis.TxFailedErr):
		return transferConflict, nil
	case !execSent || Classify(err) == Failed:
		return transferFailed, err
	}
	return transferUnknown, err
}

// Read reads every account in one MULTI/MGET/EXEC.
func (w *Bank) Read(client int, t Target) (BankRead, error) {
	ctx, cancel := opContext()
	defer cancel()
	var cmd *redis.SliceCmd
	_, err := t.RDB.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cmd = p.MGet(ctx, w.Accounts...)
		return nil
	})
	if err != nil {
		return BankRead{}, err
	}
	r := ParseBankRead(w.Accounts, cmd.Val())
	r.Client, r.Node, r.Time = client, t.Node, w.clock.now()
	return r, nil
}

// RunReads is one reading client.
func (w *Bank) RunReads(stop context.Context, client int, t Target, rnd *rand.Rand) {
	for i := 0; i < w.MaxOps && stop.Err() == nil; i++ {
		call := w.clock.now()
		r, err := w.Read(client, t)
		w.mu.Lock()
		if err != nil {
			w.counts.ReadErrors++
		} else {
			w.counts.Reads++
			w.reads = append(w.reads, r)
		}
		w.mu.Unlock()
		if err == nil {
			w.prog.ok(call, r.Time)
		}
		think(stop, rnd, w.ReadPace, err != nil)
	}
}

// FinalRead reads every account until a read succeeds (through any of
// targets, in turn) or d passes, and records it as the final read. A read
// that never succeeds is recorded with the problem.
func (w *Bank) FinalRead(ctx context.Context, targets []Target, d time.Duration) BankRead {
	var r BankRead
	i := 0
	err := waitUntil(ctx, d, func() error {
		t := targets[i%len(targets)]
		i++
		var err error
		r, err = w.Read(-1, t)
		return err
	})
	if err != nil {
		r = BankRead{Client: -1, Time: w.clock.now(), Problems: []string{fmt.Sprintf("no successful read of every account within %s: %v", d, err)}}
	}
	r.Final = true
	w.mu.Lock()
	w.reads = append(w.reads, r)
	w.mu.Unlock()
	return r
}

// Set is the set workload: every client inserts unique keys
// Prefix:<client>:<seq>.
type Set struct {
	Prefix string
	Pace   time.Duration
	MaxOps int // per client

	clock clock
	prog  *progress

	mu       sync.Mutex
	attempts []SetAttempt
}

// Attempts returns a copy of the inserts so far.
func (w *Set) Attempts() []SetAttempt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.attempts)
}

// Run is one inserting client.
func (w *Set) Run(stop context.Context, client int, t Target, rnd *rand.Rand) {
	for seq := 0; seq < w.MaxOps && stop.Err() == nil; seq++ {
		a := SetAttempt{Client: client, Node: t.Node, Key: fmt.Sprintf("%s:%d:%d", w.Prefix, client, seq), Value: fmt.Sprintf("v%d-%d", client, seq)}
		ctx, cancel := opContext()
		a.Call = w.clock.now()
		err := t.RDB.Set(ctx, a.Key, a.Value, 0).Err()
		a.Return = w.clock.now()
		cancel()
		a.Outcome, a.Err = Classify(err), errString(err)
		if a.Outcome == OK {
			w.prog.ok(a.Call, a.Return)
		}
		w.mu.Lock()
		w.attempts = append(w.attempts, a)
		w.mu.Unlock()
		think(stop, rnd, w.Pace, a.Outcome != OK)
	}
}

// setReadBatch is how many keys one final MGET reads.
const setReadBatch = 200

// Final reads every attempted key (MGET in batches, through targets in
// turn, each batch retried for up to d) and scans through every target
// (each SCAN covers the whole cluster; doing it through every node checks
// them all) for keys of the prefix no client attempted.
func (w *Set) Final(ctx context.Context, targets []Target, d time.Duration) SetFinal {
	f := SetFinal{Present: map[string]string{}}
	attempts := w.Attempts()
	keys := make([]string, 0, len(attempts))
	known := make(map[string]bool, len(attempts))
	for _, a := range attempts {
		keys = append(keys, a.Key)
		known[a.Key] = true
	}
	var scanned []string
	for _, t := range targets {
		var cursor uint64
		for range 100_000 {
			var batch []string
			err := waitUntil(ctx, d, func() error {
				octx, cancel := opContext()
				defer cancel()
				var err error
				batch, cursor, err = t.RDB.Scan(octx, cursor, w.Prefix+":*", 1000).Result()
				return err
			})
			if err != nil {
				f.Unreadable = append(f.Unreadable, fmt.Sprintf("SCAN of %s: %v", t.Node, err))
				break
			}
			for _, k := range batch {
				if !known[k] {
					known[k] = true
					scanned = append(scanned, k)
				}
			}
			if cursor == 0 {
				break
			}
		}
	}
	keys = append(keys, scanned...)
	for i := 0; i < len(keys); i += setReadBatch {
		batch := keys[i:min(i+setReadBatch, len(keys))]
		var vals []any
		n := 0
		err := waitUntil(ctx, d, func() error {
			t := targets[(i/setReadBatch+n)%len(targets)]
			n++
			octx, cancel := opContext()
			defer cancel()
			var err error
			vals, err = t.RDB.MGet(octx, batch...).Result()
			return err
		})
		if err != nil {
			f.Unreadable = append(f.Unreadable, batch...)
			continue
		}
		for j, v := range vals {
			switch v := v.(type) {
			case nil:
			case string:
				f.Present[batch[j]] = v
			default:
				f.Present[batch[j]] = fmt.Sprint(v)
			}
		}
	}
	return f
}
