package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/twophase"
)

// TestTxnRestoreLocksUntilApplied: a node restarted on transaction
// records rebuilds its participant from them (twophase's storage
// adapter). A transaction committed in its record but not applied — the
// crash between the decision and the marker — is applied at start, and
// its key served with the new value once Applied released it; one still
// PENDING keeps its key locked: a read waits and answers TRYAGAIN.
func TestTxnRestoreLocksUntilApplied(t *testing.T) {
	dir := t.TempDir()
	start := func() *Node {
		cfg := DefaultConfig()
		cfg.ID, cfg.DataDir = "n1", dir
		cfg.RESPAddr, cfg.RPCAddr, cfg.GossipAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.GossipProfile, cfg.Sync = "local", "none"
		cfg.Engine.Shards = 2
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		n, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		return n
	}
	n := start()
	deadline := time.Now().Add(15 * time.Second)
	for n.Coordinator().Current().Table() == nil || n.catchingUp.Load() {
		if time.Now().After(deadline) {
			t.Fatal("no placement within 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx := context.Background()
	// The records of a crash after the holder's COMMITTED record (n1.x.1)
	// and of one before its decision (n1.x.2), both held and coordinated
	// here.
	var effs []twophase.Effect
	for id, st := range map[twophase.TxID]twophase.Status{"n1.x.1": twophase.StatusCommitted, "n1.x.2": twophase.StatusPending} {
		key := map[twophase.TxID]string{"n1.x.1": "ka", "n1.x.2": "kp"}[id]
		effs = append(effs, twophase.PersistRecord{Rec: twophase.TxnRecord{Txn: id, Status: st}},
			twophase.PersistPrepare{Rec: twophase.PrepareRecord{Txn: id, State: twophase.StatePrepared, Coordinator: "n1", Holder: "n1",
				Intents: []twophase.Intent{{Key: key, Value: []byte("new")}}, Locks: []string{key}}})
	}
	for _, e := range effs {
		op, _ := twophase.StorageOp(e)
		if err := n.store.Put(ctx, txnBucket, op.Key, op.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = start()
	defer n.Close()
	if got := n.txns.heldTxns(); !slices.Equal(got, []twophase.TxID{"n1.x.2"}) {
		t.Fatalf("transactions holding keys after start: %v, want only the pending n1.x.2", got)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if v, _, err := n.backend.Get(rctx, []byte("ka")); err != nil || string(v) != "new" {
		t.Fatalf("committed key after restart: %q, %v; want its intent applied", v, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if _, _, err := n.backend.Get(wctx, []byte("kp")); !errors.Is(err, server.ErrTryAgain) {
		t.Fatalf("read of a key of a pending prepared transaction: %v, want TRYAGAIN after waiting", err)
	}
}
