package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/dbx-kv/dbx/kv"
)

// TxBackend is the optional Backend extension behind MULTI/EXEC, WATCH and
// MSETNX. Without it those commands answer an error.
//
// Exec is optimistic-or-locked at the backend's choice: it reads every key
// of the request (all that any queued command touches, plus the watched
// ones), calls run with their values, and commits the writes run returns as
// one atomic, serializable step — as if the whole transaction ran at one
// instant at which every watched key still had its WATCH-time version. If
// a watched key's version differs, Exec returns ErrWatchFailed and writes
// nothing. A backend that cannot keep the keys still while run runs (keys
// on other nodes) may call run again with fresh values; run is pure apart
// from its result.
type TxBackend interface {
	// Versions returns the current version of each key: 0 for a missing
	// key, otherwise a number that changes with every write of the key.
	Versions(ctx context.Context, keys [][]byte) ([]uint64, error)
	// Exec runs a transaction as described above.
	Exec(ctx context.Context, req *TxRequest, run TxFunc) error
}

// The transaction types are the keyspace's (package kv), named here for
// TxBackend's implementers.
type (
	// TxRequest is what a transaction touches.
	TxRequest = kv.TxRequest
	// WatchedKey is one key of WATCH and its version then.
	WatchedKey = kv.WatchedKey
	// TxItem is a key's value as a transaction reads it.
	TxItem = kv.TxItem
	// TxWrite is one write a transaction commits: a value with its
	// expiry, or a delete.
	TxWrite = kv.TxWrite
	// TxFunc computes a transaction's writes from the values of its keys
	// (items holds every TxRequest key, by string(key)).
	TxFunc = kv.TxFunc
)

var (
	// ErrWatchFailed: a watched key changed; EXEC answers a null array.
	ErrWatchFailed = kv.ErrWatchFailed
	// ErrTxnConflict: the transaction kept conflicting with others and was
	// given up after bounded retries; nothing was written.
	ErrTxnConflict = errors.New("transaction aborted by conflicts")
	// ErrTxnAborted: the transaction was aborted; nothing was written.
	ErrTxnAborted = errors.New("transaction aborted")
	// ErrOutcomeUnknown: the transaction may or may not have committed
	// (its deadline passed after the commit was requested, or the node
	// coordinating it failed); reads tell.
	ErrOutcomeUnknown = errors.New("transaction outcome unknown")
)

// txState is a connection's open MULTI.
type txState struct {
	queued [][][]byte // copied commands, name first
	cmds   []*command
	keys   map[string]struct{}
	dirty  bool // a command failed to queue: EXEC aborts
}

// txAllowed lists the commands MULTI queues (besides the key-less PING and
// ECHO): every data command whose effect a transaction can compute from
// its keys' values.
var txAllowed = map[string]bool{
	"ping": true, "echo": true,
	"get": true, "set": true, "setnx": true, "setex": true, "psetex": true,
	"del": true, "unlink": true, "exists": true, "type": true,
	"mget": true, "mset": true, "msetnx": true,
	"incr": true, "decr": true, "incrby": true, "decrby": true,
	"expire": true, "pexpire": true, "expireat": true, "pexpireat": true,
	"ttl": true, "pttl": true, "expiretime": true, "pexpiretime": true, "persist": true,
}

// blindWrite reports whether a command only writes its keys, whatever
// they held: its reply and effect do not depend on their values.
func blindWrite(name string, args [][]byte) bool {
	switch name {
	case "mset", "setex", "psetex":
		return true
	case "set":
		for i := 3; i < len(args); i++ {
			a := args[i]
			switch {
			case eqFold(a, "EX"), eqFold(a, "PX"), eqFold(a, "EXAT"), eqFold(a, "PXAT"):
				i++ // the option's number
			default:
				return false // NX, XX, GET, KEEPTTL read the old value
			}
		}
		return true
	}
	return false
}

// cmdKeys returns the key arguments of args by the command's key positions.
func cmdKeys(cmd *command, args [][]byte) [][]byte {
	if cmd.first == 0 {
		return nil
	}
	last := cmd.last
	if last < 0 {
		last = len(args) + last
	}
	var keys [][]byte
	for i := cmd.first; i <= last && i < len(args); i += cmd.step {
		keys = append(keys, args[i])
	}
	return keys
}

// queue adds a command to the open MULTI, or fails it (and marks the
// transaction dirty, as Redis does for errors while queuing).
func (s *Server) queue(c *session, cmd *command, args [][]byte) {
	tx := c.multi
	fail := func(msg string) {
		tx.dirty = true
		c.WriteError(msg)
	}
	if !txAllowed[cmd.name] {
		fail("ERR command '" + cmd.name + "' is not allowed inside MULTI")
		return
	}
	if len(tx.queued) >= s.cfg.TxnCommandsMax {
		fail("ERR transaction too large: more than " + strconv.Itoa(s.cfg.TxnCommandsMax) + " queued commands (TxnCommandsMax)")
		return
	}
	for _, k := range cmdKeys(cmd, args) {
		tx.keys[string(k)] = struct{}{}
	}
	if n := len(tx.keys) + len(c.watch); n > s.cfg.TxnKeysMax {
		fail("ERR transaction too large: " + strconv.Itoa(n) + " keys, the maximum is " + strconv.Itoa(s.cfg.TxnKeysMax) + " (--txn-keys-max)")
		return
	}
	cp := make([][]byte, len(args))
	for i, a := range args {
		cp[i] = slices.Clone(a)
	}
	tx.queued = append(tx.queued, cp)
	tx.cmds = append(tx.cmds, cmd)
	c.WriteString("QUEUED")
}

func cmdMulti(s *Server, _ context.Context, c *session, _ [][]byte) {
	if c.multi != nil {
		c.WriteError("ERR MULTI calls can not be nested")
		return
	}
	c.multi = &txState{keys: map[string]struct{}{}}
	c.WriteString("OK")
}

func cmdDiscard(s *Server, _ context.Context, c *session, _ [][]byte) {
	if c.multi == nil {
		c.WriteError("ERR DISCARD without MULTI")
		return
	}
	c.multi, c.watch = nil, nil
	c.WriteString("OK")
}

func cmdUnwatch(s *Server, _ context.Context, c *session, _ [][]byte) {
	c.watch = nil
	c.WriteString("OK")
}

func cmdWatch(s *Server, ctx context.Context, c *session, args [][]byte) {
	if c.multi != nil {
		c.WriteError("ERR WATCH inside MULTI is not allowed")
		return
	}
	tb, ok := s.b.(TxBackend)
	if !ok {
		c.WriteError("ERR WATCH is not supported by this server's backend")
		return
	}
	var keys [][]byte
	for _, k := range args[1:] {
		if !slices.ContainsFunc(c.watch, func(w WatchedKey) bool { return string(w.Key) == string(k) }) &&
			!slices.ContainsFunc(keys, func(o []byte) bool { return string(o) == string(k) }) {
			keys = append(keys, k)
		}
	}
	if n := len(c.watch) + len(keys); n > s.cfg.TxnKeysMax {
		c.WriteError("ERR too many watched keys: " + strconv.Itoa(n) + ", the maximum is " + strconv.Itoa(s.cfg.TxnKeysMax) + " (--txn-keys-max)")
		return
	}
	vers, err := tb.Versions(ctx, keys)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	for i, k := range keys {
		c.watch = append(c.watch, WatchedKey{Key: slices.Clone(k), Version: vers[i]})
	}
	c.WriteString("OK")
}

// cmdExec runs the queued commands as one transaction: the backend reads
// their keys, the commands run against those values in an overlay (the
// same handlers as outside MULTI, so replies match), and the overlay's
// changes are committed atomically. Replies are buffered and written only
// once the outcome is known.
func cmdExec(s *Server, ctx context.Context, c *session, _ [][]byte) {
	if c.multi == nil {
		c.WriteError("ERR EXEC without MULTI")
		return
	}
	tx, watch := c.multi, c.watch
	c.multi, c.watch = nil, nil
	if tx.dirty {
		c.WriteError("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	tb, ok := s.b.(TxBackend)
	if !ok {
		c.WriteError("ERR MULTI/EXEC is not supported by this server's backend")
		return
	}
	req := &TxRequest{Watch: watch}
	seen := make(map[string]bool, len(tx.keys)+len(watch))
	add := func(k []byte) {
		if !seen[string(k)] {
			seen[string(k)] = true
			req.Keys = append(req.Keys, k)
		}
	}
	reads := map[string]bool{}
	for i, args := range tx.queued {
		blind := blindWrite(tx.cmds[i].name, args)
		for _, k := range cmdKeys(tx.cmds[i], args) {
			add(k)
			if !blind && !reads[string(k)] {
				reads[string(k)] = true
				req.Reads = append(req.Reads, k)
			}
		}
	}
	for _, w := range watch {
		add(w.Key)
		if !reads[string(w.Key)] {
			reads[string(w.Key)] = true
			req.Reads = append(req.Reads, w.Key)
		}
	}
	if len(req.Keys) == 0 { // PING/ECHO only: nothing to commit
		rec := &replyRecorder{}
		s.runQueued(ctx, c, tx, rec, newOverlay(s.cfg.Now, nil))
		rec.replay(c, len(tx.queued))
		return
	}
	var rec *replyRecorder
	err := tb.Exec(ctx, req, func(items map[string]TxItem) ([]TxWrite, error) {
		ov := newOverlay(s.cfg.Now, items)
		rec = &replyRecorder{}
		s.runQueued(ctx, c, tx, rec, ov)
		return ov.writes(req.Keys), nil
	})
	switch {
	case errors.Is(err, ErrWatchFailed):
		c.WriteRaw([]byte("*-1\r\n"))
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrOutcomeUnknown):
		s.replyErr(c, fmt.Errorf("%w: EXEC timed out after %s", ErrOutcomeUnknown, s.cfg.TxnTimeout))
	case err != nil:
		s.replyErr(c, err)
	default:
		rec.replay(c, len(tx.queued))
	}
}

// runQueued runs the queued handlers against b, replies going to rec.
func (s *Server) runQueued(ctx context.Context, c *session, tx *txState, rec *replyRecorder, b Backend) {
	w, failed := c.w, c.failed
	c.w, c.txb = rec, b
	for i, args := range tx.queued {
		tx.cmds[i].fn(s, ctx, c, args)
	}
	c.w, c.txb, c.failed = w, nil, failed
}

// cmdMSetNX sets every pair only if none of the keys exists, atomically
// (across nodes too, through the TxBackend).
func cmdMSetNX(s *Server, ctx context.Context, c *session, args [][]byte) {
	if (len(args)-1)%2 != 0 {
		c.WriteError("ERR wrong number of arguments for 'msetnx' command")
		return
	}
	if c.txb != nil { // inside EXEC: the overlay is already consistent
		n := 0
		for i := 1; i < len(args); i += 2 {
			if _, _, err := c.txb.Get(ctx, args[i]); err == nil {
				c.WriteInt64(0)
				return
			} else if !errors.Is(err, ErrNotFound) {
				s.replyErr(c, err)
				return
			}
			n++
		}
		pairs := make([]KV, 0, n)
		for i := 1; i < len(args); i += 2 {
			pairs = append(pairs, KV{Key: args[i], Value: args[i+1]})
		}
		if err := c.txb.MSet(ctx, pairs...); err != nil {
			s.replyErr(c, err)
			return
		}
		c.WriteInt64(1)
		return
	}
	tb, ok := s.b.(TxBackend)
	if !ok {
		c.WriteError("ERR MSETNX is not supported by this server's backend")
		return
	}
	req := &TxRequest{}
	last := map[string]int{}
	for i := 1; i < len(args); i += 2 {
		if _, dup := last[string(args[i])]; !dup {
			req.Keys = append(req.Keys, args[i])
		}
		last[string(args[i])] = i
	}
	req.Reads = req.Keys
	if len(req.Keys) > s.cfg.TxnKeysMax {
		c.WriteError(fmt.Sprintf("ERR MSETNX of %d keys: the maximum is %d (--txn-keys-max)", len(req.Keys), s.cfg.TxnKeysMax))
		return
	}
	set := false
	err := tb.Exec(ctx, req, func(items map[string]TxItem) ([]TxWrite, error) {
		set = false
		for _, it := range items {
			if it.Found {
				return nil, nil
			}
		}
		set = true
		ws := make([]TxWrite, 0, len(req.Keys))
		for _, k := range req.Keys {
			ws = append(ws, TxWrite{Key: k, Value: args[last[string(k)]+1]})
		}
		return ws, nil
	})
	if err != nil {
		s.replyErr(c, err)
		return
	}
	if set {
		c.WriteInt64(1)
	} else {
		c.WriteInt64(0)
	}
}

// replyRecorder buffers replies written during EXEC.
type replyRecorder struct{ ops []recOp }

type recOp struct {
	kind byte
	s    string
	b    []byte
	n    int64
}

func (r *replyRecorder) WriteString(v string) { r.ops = append(r.ops, recOp{kind: '+', s: v}) }
func (r *replyRecorder) WriteBulk(v []byte) {
	r.ops = append(r.ops, recOp{kind: '$', b: slices.Clone(v)})
}
func (r *replyRecorder) WriteBulkString(v string) {
	r.ops = append(r.ops, recOp{kind: '$', b: []byte(v)})
}
func (r *replyRecorder) WriteInt64(v int64)  { r.ops = append(r.ops, recOp{kind: ':', n: v}) }
func (r *replyRecorder) WriteError(v string) { r.ops = append(r.ops, recOp{kind: '-', s: v}) }
func (r *replyRecorder) WriteArray(n int)    { r.ops = append(r.ops, recOp{kind: '*', n: int64(n)}) }
func (r *replyRecorder) WriteNull()          { r.ops = append(r.ops, recOp{kind: '_'}) }
func (r *replyRecorder) WriteRaw(v []byte) {
	r.ops = append(r.ops, recOp{kind: 'r', b: slices.Clone(v)})
}

// replay writes EXEC's array of n replies.
func (r *replyRecorder) replay(c *session, n int) {
	c.w.WriteArray(n)
	for _, op := range r.ops {
		switch op.kind {
		case '+':
			c.w.WriteString(op.s)
		case '$':
			c.w.WriteBulk(op.b)
		case ':':
			c.w.WriteInt64(op.n)
		case '-':
			c.w.WriteError(op.s)
		case '*':
			c.w.WriteArray(int(op.n))
		case '_':
			c.w.WriteNull()
		case 'r':
			c.w.WriteRaw(op.b)
		}
	}
}

// txControl are the commands that run at once inside MULTI instead of
// being queued.
var txControl = map[string]bool{"multi": true, "exec": true, "discard": true, "watch": true, "unwatch": true, "quit": true}
