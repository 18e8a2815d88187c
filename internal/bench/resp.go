package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// CheckReachable dials every address at once (each bounded by timeout)
// and returns ErrUnreachable listing each one that refused.
func CheckReachable(ctx context.Context, addrs []string, timeout time.Duration) error {
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, "tcp", a)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", a, err)
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	var bad []string
	for _, err := range errs {
		if err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrUnreachable, strings.Join(bad, "; "))
	}
	return nil
}

// respTarget is Run's Target: one go-redis Client per address, or one
// ClusterClient.
type respTarget struct {
	clients []redis.UniversalClient
}

// newRESPTarget returns one ClusterClient (Cluster) or one Client per
// address with a pool as large as the number of workers using it.
func newRESPTarget(cfg *Config) *respTarget {
	if cfg.Cluster {
		return &respTarget{clients: []redis.UniversalClient{redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 cfg.Addrs,
			Password:              cfg.Password,
			TLSConfig:             cfg.TLS,
			Protocol:              2,
			PoolSize:              cfg.Clients,
			MaxRetries:            -1,
			DialTimeout:           min(cfg.Timeout, dialTimeoutMax),
			ReadTimeout:           cfg.Timeout,
			WriteTimeout:          cfg.Timeout,
			ContextTimeoutEnabled: true,
			DisableIdentity:       true,
		})}}
	}
	cs := make([]redis.UniversalClient, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		workers := cfg.Clients / len(cfg.Addrs)
		if i < cfg.Clients%len(cfg.Addrs) {
			workers++
		}
		cs[i] = newClient(cfg, a, max(workers, 1))
	}
	return &respTarget{clients: cs}
}

func newClient(cfg *Config, addr string, pool int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		Password:              cfg.Password,
		TLSConfig:             cfg.TLS,
		Protocol:              2,
		PoolSize:              pool,
		MaxRetries:            -1,
		DialTimeout:           min(cfg.Timeout, dialTimeoutMax),
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
	})
}

func (t *respTarget) Name() string { return "resp" }

func (t *respTarget) Conn(worker int) (Conn, error) {
	c := &respConn{c: t.clients[worker%len(t.clients)]}
	c.cluster, _ = c.c.(*redis.ClusterClient)
	return c, nil
}

func (t *respTarget) close() {
	for _, c := range t.clients {
		c.Close()
	}
}

// respConn is one worker's view of the clients; the connection pool of
// its client hands it a connection per batch.
type respConn struct {
	c       redis.UniversalClient
	cluster *redis.ClusterClient // set in Cluster mode
	cmds    []redis.Cmder
	txCmds  []*redis.Cmd
}

// Do sends the batch (pipelined when it holds more than one operation).
// The SETs of read-modify-writes go in a second round trip after their
// GETs. A workload's batches are all transactions or none.
func (c *respConn) Do(ctx context.Context, batch []Op, errs []error) {
	if batch[0].Kind == OpTxn {
		c.doTxn(ctx, batch, errs)
		return
	}
	c.cmds = c.send(ctx, batch, errs, c.cmds[:0], false)
	rmw := false
	for i, cmd := range c.cmds {
		errs[i] = cmdErr(cmd)
		rmw = rmw || batch[i].Kind == OpRMW
	}
	if !rmw {
		return
	}
	second := c.send(ctx, batch, errs, nil, true)
	j := 0
	for i, o := range batch {
		if o.Kind == OpRMW && errs[i] == nil {
			errs[i] = cmdErr(second[j])
			j++
		}
	}
}

// send issues one command per operation (writes: only the SET half of
// read-modify-writes whose GET succeeded) and waits for the replies.
func (c *respConn) send(ctx context.Context, batch []Op, errs []error, cmds []redis.Cmder, writes bool) []redis.Cmder {
	var cl redis.Cmdable = c.c
	var pipe redis.Pipeliner
	if len(batch) > 1 {
		pipe = c.c.Pipeline()
		cl = pipe
	}
	for i, o := range batch {
		if writes {
			if o.Kind == OpRMW && errs[i] == nil {
				cmds = append(cmds, cl.Set(ctx, o.Keys[0], o.Value, 0))
			}
			continue
		}
		switch o.Kind {
		case OpGet, OpRMW:
			cmds = append(cmds, cl.Get(ctx, o.Keys[0]))
		case OpSet:
			cmds = append(cmds, cl.Set(ctx, o.Keys[0], o.Value, 0))
		case OpMSet:
			args := make([]any, 0, 2*len(o.Keys))
			for _, k := range o.Keys {
				args = append(args, k, o.Value)
			}
			cmds = append(cmds, cl.MSet(ctx, args...))
		}
	}
	if pipe != nil && len(cmds) > 0 {
		_, _ = pipe.Exec(ctx) // errors are per command
	}
	return cmds
}

// doTxn sends MULTI, one SET per key and EXEC for every transaction of the
// batch in one round trip: to the worker's server, or in Cluster mode to
// the owner of the first key (Validate allows one transaction per batch
// there).
func (c *respConn) doTxn(ctx context.Context, batch []Op, errs []error) {
	var pipe redis.Pipeliner
	if c.cluster != nil {
		node, err := c.cluster.MasterForKey(ctx, batch[0].Keys[0])
		if err != nil {
			for i := range errs {
				errs[i] = err
			}
			return
		}
		pipe = node.Pipeline()
	} else {
		pipe = c.c.Pipeline()
	}
	cmds := c.txCmds[:0]
	for _, o := range batch {
		cmds = append(cmds, pipe.Do(ctx, "multi"))
		for _, k := range o.Keys {
			cmds = append(cmds, pipe.Do(ctx, "set", k, o.Value))
		}
		cmds = append(cmds, pipe.Do(ctx, "exec"))
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	c.txCmds = cmds
	for i, o := range batch {
		n := len(o.Keys) + 2
		errs[i] = txnErr(cmds[:n])
		cmds = cmds[n:]
	}
}

// txnErr is the outcome of MULTI, the SETs and EXEC (in cmds, in order): the
// first error a command got, ErrTxnAborted for a nil EXEC, or an error one
// of EXEC's replies holds.
func txnErr(cmds []*redis.Cmd) error {
	if err := cmds[0].Err(); err != nil {
		return replyErr("MULTI", err)
	}
	sets, exec := cmds[1:len(cmds)-1], cmds[len(cmds)-1]
	for _, s := range sets {
		if err := s.Err(); err != nil {
			return replyErr("SET after MULTI", err)
		}
	}
	v, err := exec.Result()
	if errors.Is(err, redis.Nil) {
		return ErrTxnAborted
	}
	if err != nil {
		return replyErr("EXEC", err)
	}
	replies, ok := v.([]any)
	if !ok || len(replies) != len(sets) {
		return fmt.Errorf("EXEC: want an array of %d replies, got %T %v", len(sets), v, v)
	}
	for _, r := range replies {
		if err, ok := r.(error); ok {
			return fmt.Errorf("EXEC: a queued SET failed: %w", err)
		}
	}
	return nil
}

// replyErr prefixes what to an error the server replied; network errors
// (every command of the batch has them) stay as they are.
func replyErr(what string, err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

// cmdErr is a command's error; a missing key (redis.Nil) is a success.
func cmdErr(c redis.Cmder) error {
	if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	return nil
}

// probeMulti sends an empty transaction (MULTI, EXEC) to every address and
// fails with ErrNotSupported, quoting the reply, where MULTI is an unknown
// command or EXEC says transactions are not supported (a dbx server whose
// backend cannot run them); an empty transaction changes nothing.
func probeMulti(ctx context.Context, cfg *Config) error {
	errs := make([]error, len(cfg.Addrs))
	var wg sync.WaitGroup
	for i, a := range cfg.Addrs {
		wg.Go(func() {
			c := newClient(cfg, a, 1)
			defer c.Close()
			pipe := c.Pipeline()
			multi := pipe.Do(ctx, "multi")
			exec := pipe.Do(ctx, "exec")
			_, _ = pipe.Exec(ctx)
			cmd, err := "MULTI", multi.Err()
			if err == nil {
				cmd, err = "EXEC", exec.Err()
			}
			switch msg := strings.ToLower(fmt.Sprint(err)); {
			case err == nil:
			case strings.Contains(msg, "unknown command") || strings.Contains(msg, "not supported"):
				errs[i] = fmt.Errorf("workload txn: %w: %s does not serve MULTI/EXEC (%s answered %q)", ErrNotSupported, a, cmd, err)
			default:
				errs[i] = fmt.Errorf("workload txn: %s on %s: %w", cmd, a, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loadPlacement reads CLUSTER SLOTS from Addrs[0] and sorts the key space
// by owner for CrossNode and SameNode, failing with ErrInvalidConfig when
// the server cannot give what they need.
func loadPlacement(ctx context.Context, cfg *Config) (*placement, error) {
	flag := "same-node"
	if cfg.CrossNode {
		flag = "cross-node"
	}
	c := newClient(cfg, cfg.Addrs[0], 1)
	defer c.Close()
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		var re redis.Error
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%w: %s needs CLUSTER SLOTS, and %s answered %q: is it a single server rather than a cluster?",
				ErrInvalidConfig, flag, cfg.Addrs[0], err)
		}
		return nil, fmt.Errorf("%s: CLUSTER SLOTS on %s: %w", flag, cfg.Addrs[0], err)
	}
	var ranges []slotRange
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		n := s.Nodes[0] // the master
		name := n.ID
		if name == "" {
			name = n.Addr
		}
		ranges = append(ranges, slotRange{start: s.Start, end: s.End, node: name})
	}
	p, owners := newPlacement(ranges, cfg.Keys, cfg.Distribution == DistZipfian, cfg.TxnKeys)
	if err := p.check(cfg, owners); err != nil {
		return nil, err
	}
	return p, nil
}
