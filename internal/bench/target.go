package bench

import (
	"context"
	"fmt"
	"io"
)

// OpKind is what one operation does.
type OpKind uint8

// Operation kinds.
const (
	OpGet  OpKind = iota // GET Keys[0]; a missing key is a success
	OpSet                // SET Keys[0] Value
	OpRMW                // GET Keys[0], then SET Keys[0] Value (ycsb-f)
	OpMSet               // MSET of every key to Value
	OpTxn                // one transaction writing Value to every key
)

// Op is one operation of a batch. Keys and Value must not be modified;
// Value is shared by every operation of a worker.
type Op struct {
	Kind  OpKind
	Keys  []string
	Value []byte
}

// Conn executes the batches of one worker. Run calls Do from that worker's
// goroutine only, one batch at a time; the Conns of different workers are
// used concurrently.
type Conn interface {
	// Do executes batch (several operations: pipelined if the target can)
	// and sets errs[i] to nil or to the error of batch[i]; len(errs) ==
	// len(batch). It honours ctx: Run discards a batch that ends after
	// ctx, so a Do cut short by ctx may leave errs as it likes.
	Do(ctx context.Context, batch []Op, errs []error)
}

// Target is what a run drives: RESP servers (Run) or anything else that can
// execute Ops (RunTarget), such as the etcd driver in the bench module.
type Target interface {
	// Name is the target's kind, reported as config.target ("resp").
	Name() string
	// Conn returns worker i's Conn. RunTarget calls it once per worker,
	// from one goroutine, before the first phase.
	Conn(worker int) (Conn, error)
}

// RunTarget runs cfg's workload against t, like Run does against RESP
// servers: the same phases, progress lines, histograms, Result and
// cancellation. It does not dial anything itself and cannot honour
// CrossNode or SameNode (they need CLUSTER SLOTS); the caller checks what
// its target supports (pipelining, the workload) and closes t afterwards.
func RunTarget(ctx context.Context, cfg Config, t Target, progress io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CrossNode || cfg.SameNode {
		return nil, fmt.Errorf("%w: cross-node and same-node need a RESP cluster (CLUSTER SLOTS); target %s has none", ErrInvalidConfig, t.Name())
	}
	return run(ctx, &cfg, t, nil, progress)
}
