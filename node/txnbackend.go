package node

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
	"github.com/dbx-kv/dbx/twophase"
)

// txnAttemptsMax bounds the attempts of one transaction that keeps
// conflicting (each attempt reads, computes and validates again).
const txnAttemptsMax = 64

var _ server.TxBackend = (*backend)(nil)

// Versions implements server.TxBackend: each key's version from its owner,
// tagged with the owner (watchVersion): versions are the owner engine's
// sequence numbers, meaningless on another node.
func (b *backend) Versions(ctx context.Context, keys [][]byte) ([]uint64, error) {
	var vers map[string]uint64
	var groups []*group
	err := b.retryMoved(ctx, func() error {
		var err error
		if groups, err = b.split(keys); err != nil {
			return err
		}
		_, vers, err = b.txReadMode(ctx, groups, keys, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(keys))
	for _, g := range groups {
		for _, i := range g.idx {
			out[i] = watchVersion(g.id, vers[string(keys[i])])
		}
	}
	return out, nil
}

// watchVersion tags an owner's version of a key with the owner: a key
// whose bucket moved between WATCH and EXEC has a version from another
// engine, which says nothing about whether it changed. EXEC then answers
// TRYAGAIN (as Redis Cluster does for a key that moved) instead of
// claiming a watched key changed. (Two nodes whose tags collide — 1 in 256
// — compare raw versions, as before the tag.)
func watchVersion(owner string, v uint64) uint64 { return v<<8 | uint64(ownerTag(owner)) }

func ownerTag(id string) byte { return byte(crc32.ChecksumIEEE([]byte(id))) }

// untagWatch checks that every watched key still has the owner it was
// watched at and returns the watch list with raw versions.
func untagWatch(groups []*group, keys [][]byte, watch []server.WatchedKey) ([]server.WatchedKey, error) {
	if len(watch) == 0 {
		return nil, nil
	}
	owner := make(map[string]string, len(keys))
	for _, g := range groups {
		for _, i := range g.idx {
			owner[string(keys[i])] = g.id
		}
	}
	out := make([]server.WatchedKey, len(watch))
	for i, w := range watch {
		if byte(w.Version) != ownerTag(owner[string(w.Key)]) {
			return nil, fmt.Errorf("%w: watched key %q moved to another node since WATCH", server.ErrTryAgain, w.Key)
		}
		out[i] = server.WatchedKey{Key: w.Key, Version: w.Version >> 8}
	}
	return out, nil
}

// watchHolds checks the WATCH versions (tagged with the owner they were
// read at) against vers, the versions read from the owners in groups (for
// keys reads): a key now read at another owner is TRYAGAIN, one whose
// version changed is ErrWatchFailed.
func watchHolds(groups []*group, reads [][]byte, watch []server.WatchedKey, vers map[string]uint64) error {
	raw, err := untagWatch(groups, reads, watch)
	if err != nil {
		return err
	}
	for _, w := range raw {
		if vers[string(w.Key)] != w.Version {
			return server.ErrWatchFailed
		}
	}
	return nil
}

// txRead reads keys with their versions from their owners, in parallel.
func (b *backend) txRead(ctx context.Context, groups []*group, keys [][]byte) (map[string]server.TxItem, map[string]uint64, error) {
	return b.txReadMode(ctx, groups, keys, false)
}

// txReadMode is txRead; versionsOnly reads only the versions GET's state
// has (WATCH).
func (b *backend) txReadMode(ctx context.Context, groups []*group, keys [][]byte, versionsOnly bool) (map[string]server.TxItem, map[string]uint64, error) {
	itemsOf := make([][]server.TxItem, len(groups))
	versOf := make([][]uint64, len(groups))
	err := fanOut(groups, func(g *group) error {
		ks := pick(keys, g.idx)
		i := indexOf(groups, g)
		if g.addr == "" {
			if err := b.checkOwned(ks...); err != nil {
				return err
			}
			if versionsOnly {
				vers, err := b.local.Versions(ctx, ks)
				itemsOf[i], versOf[i] = make([]server.TxItem, len(ks)), vers
				return err
			}
			items, vers, err := b.local.Items(ctx, ks)
			itemsOf[i], versOf[i] = items, vers
			return err
		}
		r, err := call[txnReadReq, txnReadResp](ctx, b, g.addr, methodTxnRead, &txnReadReq{Keys: ks, VersionsOnly: versionsOnly})
		if err != nil {
			return remoteErr(g.id, g.addr, err)
		}
		if len(r.Items) != len(ks) || len(r.Versions) != len(ks) {
			return fmt.Errorf("node %s answered %d items for %d keys", g.id, len(r.Items), len(ks))
		}
		itemsOf[i], versOf[i] = r.Items, r.Versions
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	items := make(map[string]server.TxItem, len(keys))
	vers := make(map[string]uint64, len(keys))
	for gi, g := range groups {
		for j, i := range g.idx {
			k := string(keys[i])
			it := itemsOf[gi][j]
			if it.Found && it.Value == nil {
				it.Value = []byte{}
			}
			if it.Found {
				items[k] = it
			}
			vers[k] = versOf[gi][j]
		}
	}
	return items, vers, nil
}

// Exec implements server.TxBackend.
//
//   - Every key on this node: 1PC under the keys' locks (kv.Engine.Exec),
//     one engine batch, no retry.
//   - Every key on one other node: read the keys and their versions there,
//     run, and send the writes back to commit in one batch if no version
//     changed (txn.commit1).
//   - Keys on several nodes: read, run, then two-phase commit with every
//     key's read version checked at prepare (twophase Watch), so the
//     transaction is serializable; this node coordinates and, when it owns
//     any of the keys, holds the transaction record.
//
// A conflict (a version changed, a key locked by another transaction)
// retries from the read, up to txnAttemptsMax times with jittered backoff;
// a WATCHed key that changed since WATCH ends it with ErrWatchFailed.
func (b *backend) Exec(ctx context.Context, req *server.TxRequest, run server.TxFunc) error {
	groups, err := b.split(req.Keys)
	if err != nil {
		return err
	}
	if err := b.ensureHasData(ctx); err != nil {
		return err
	}
	t := b.n.txns
	moved := false
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			t.m.retries.Inc()
			if moved {
				if werr := b.movedBackoff(ctx, attempt); werr != nil {
					return fmt.Errorf("%w: gave up after %d attempts: %v", server.ErrTxnAborted, attempt-1, werr)
				}
			}
			if groups, err = b.split(req.Keys); err != nil {
				return err
			}
		}
		moved = true
		if attempt > txnAttemptsMax {
			t.m.aborts.WithLabelValues("conflict").Inc()
			return fmt.Errorf("%w: %d attempts", server.ErrTxnConflict, attempt-1)
		}
		watch, err := untagWatch(groups, req.Keys, req.Watch)
		if err != nil {
			t.m.aborts.WithLabelValues("watch_moved").Inc()
			return err
		}
		if len(groups) == 1 && groups[0].addr == "" {
			if err := b.checkOwned(req.Keys...); err != nil {
				continue // the table changed under us: route again
			}
			err := b.local.Exec(ctx, &server.TxRequest{Keys: req.Keys, Reads: req.Reads, Watch: watch}, run)
			if errors.Is(err, errFenced) {
				continue
			}
			t.count("1pc", err)
			return err
		}
		// Only the keys whose values the commands need are read (and
		// their versions checked at commit); blind writes just lock.
		items, vers := map[string]server.TxItem{}, map[string]uint64{}
		if len(req.Reads) > 0 {
			rgroups, err := b.split(req.Reads)
			if err != nil {
				return err
			}
			items, vers, err = b.txRead(ctx, rgroups, req.Reads)
			if movedErr(err) {
				continue
			}
			if err != nil {
				return err
			}
			// The reads were routed by a second look at the table, which
			// a switch may have changed since the first: the watched
			// versions are checked against the owners actually read.
			if err := watchHolds(rgroups, req.Reads, req.Watch, vers); err != nil {
				if errors.Is(err, server.ErrTryAgain) {
					t.m.aborts.WithLabelValues("watch_moved").Inc()
				} else {
					t.m.aborts.WithLabelValues("watch").Inc()
				}
				return err
			}
		} else if len(watch) > 0 {
			t.m.aborts.WithLabelValues("watch").Inc()
			return server.ErrWatchFailed // watched keys are always read
		}
		writes, err := run(items)
		if err != nil {
			return err
		}
		var conflict error
		if len(groups) == 1 {
			conflict, err = b.commitRemote1(ctx, groups[0], req.Keys, vers, writes)
		} else {
			conflict, err = b.commit2PC(ctx, groups, req.Keys, vers, writes)
		}
		if err != nil || conflict == nil {
			return err
		}
		moved = false
		// Conflict: exponential backoff with full jitter (1 ms doubling
		// to 64 ms), so contending transactions spread out.
		backoff := time.Duration(rand.Int64N(int64(time.Millisecond)<<min(attempt, 6))) + 1
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: gave up retrying after %d attempts: %v", server.ErrTxnAborted, attempt, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// count records a finished one-node transaction.
func (t *txns) count(path string, err error) {
	switch {
	case err == nil:
		t.m.commits.WithLabelValues(path).Inc()
	case errors.Is(err, server.ErrWatchFailed):
		t.m.aborts.WithLabelValues("watch").Inc()
	default:
		t.m.aborts.WithLabelValues("error").Inc()
	}
}

// commitRemote1 commits on the one other node owning every key. It
// returns a non-nil conflict when a version changed (retry).
func (b *backend) commitRemote1(ctx context.Context, g *group, keys [][]byte, vers map[string]uint64, writes []server.TxWrite) (conflict, err error) {
	req := &txnCommitReq{Keys: keys, Writes: writes}
	for _, k := range keys {
		if v, read := vers[string(k)]; read {
			req.Watch = append(req.Watch, server.WatchedKey{Key: k, Version: v})
		}
	}
	_, err = call[txnCommitReq, emptyResp](ctx, b, g.addr, methodTxnCommit1, req)
	switch {
	case err == nil:
		b.n.txns.m.commits.WithLabelValues("1pc").Inc()
		return nil, nil
	case errors.Is(err, server.ErrWatchFailed), errors.Is(err, ErrNotOwner), errors.Is(err, errFenced):
		return err, nil
	case errors.Is(err, context.DeadlineExceeded) && (errors.Is(err, transport.ErrNoReply) || errors.Is(err, transport.ErrRemote)):
		b.n.txns.m.aborts.WithLabelValues("unknown").Inc()
		return nil, fmt.Errorf("%w: one-node commit on %s: %v", server.ErrOutcomeUnknown, g.id, err)
	}
	b.n.txns.m.aborts.WithLabelValues("error").Inc()
	return nil, remoteErr(g.id, g.addr, err)
}

// commit2PC runs the writes through two-phase commit, every key's read
// version checked at prepare. It returns a non-nil conflict for an abort
// worth retrying (lock or version conflict).
func (b *backend) commit2PC(ctx context.Context, groups []*group, keys [][]byte, vers map[string]uint64, writes []server.TxWrite) (conflict, err error) {
	t := b.n.txns
	byKey := make(map[string]server.TxWrite, len(writes))
	for _, w := range writes {
		byKey[string(w.Key)] = w
	}
	txn := twophase.Txn{ID: t.newID()}
	for _, g := range groups {
		p := twophase.Part{Node: twophase.NodeID(g.id), Watch: make(map[string]uint64, len(g.idx))}
		for _, i := range g.idx {
			k := string(keys[i])
			v, read := vers[k]
			if read {
				p.Watch[k] = v
			}
			if w, ok := byKey[k]; ok {
				// The value is copied: the participants apply it after the
				// client has its reply, when the caller's buffer (the RESP
				// reader's) holds the next request.
				p.Intents = append(p.Intents, twophase.Intent{Key: k, Value: slices.Clone(w.Value), Delete: w.Delete, ExpireAtMs: w.ExpireAtMs})
			} else if !read {
				p.Reads = append(p.Reads, k) // neither read nor written in the end: locked all the same
			}
		}
		if g.addr == "" { // this node holds the record: Decide stays local
			txn.Parts = append([]twophase.Part{p}, txn.Parts...)
		} else {
			txn.Parts = append(txn.Parts, p)
		}
	}
	r := t.run2PC(ctx, txn)
	switch r.Outcome {
	case twophase.OutcomeCommitted:
		t.m.commits.WithLabelValues("2pc").Inc()
		return nil, nil
	case twophase.OutcomeUnknown:
		t.m.aborts.WithLabelValues("unknown").Inc()
		return nil, fmt.Errorf("%w: %v", server.ErrOutcomeUnknown, r.Err)
	}
	switch {
	case errors.Is(r.Err, twophase.ErrLockConflict):
		t.m.aborts.WithLabelValues("lock_conflict").Inc()
		return r.Err, nil
	case errors.Is(r.Err, twophase.ErrWatchConflict):
		t.m.aborts.WithLabelValues("version_conflict").Inc()
		return r.Err, nil
	case errors.Is(r.Err, twophase.ErrDeadline):
		t.m.aborts.WithLabelValues("deadline").Inc()
	case errors.Is(r.Err, twophase.ErrTooManyKeys):
		t.m.aborts.WithLabelValues("too_many_keys").Inc()
	default:
		t.m.aborts.WithLabelValues("aborted").Inc()
	}
	return nil, fmt.Errorf("%w: %v", server.ErrTxnAborted, r.Err)
}

// execWrites commits writes computed from the values of reads (a subset
// of keys) atomically across nodes: multi-key MSET and DEL whose keys have
// several owners.
func (b *backend) execWrites(ctx context.Context, keys, reads [][]byte, run server.TxFunc) error {
	return b.Exec(ctx, &server.TxRequest{Keys: keys, Reads: reads}, run)
}
