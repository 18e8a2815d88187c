package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/internal/failpoint"
	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/replica"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

// Node is one running dbx process: engine, RPC + Raft port, coordinator,
// gossip, RESP server and admin API. Its methods are safe for concurrent
// use.
type Node struct {
	cfg Config
	log *slog.Logger
	// libLogsOff silences the hashicorp libraries' loggers once Close is done.
	libLogsOff atomic.Bool

	// Advertised addresses (what other nodes and clients dial).
	respAddr, rpcAddr, gossipAddr, httpAddr string
	clusterRespAddr                         string
	tlsRespAddr                             string // "" without Config.TLSRESPAddr

	sec        security // TLS identities and the RPC port's peer authentication
	rpcMethods []string // what serveRPC registered

	store   *engine.Store
	local   *kv.Engine
	backend *backend
	txns    *txns
	repl    *replicator
	mig     *migrator
	pm      *transport.PortMux
	rpc     *transport.TCP
	coord   *coordinator.Coordinator
	holder  router.Holder
	ml      *memberlist.Memberlist
	gossip  *gossip
	resp    *server.Server
	admin   *server.Admin
	httpSrv *http.Server

	// peers maps member IDs to their addresses, rebuilt on every new
	// coordinator state; view is the CLUSTER SLOTS view built with it.
	peers atomic.Pointer[map[string]coordinator.Member]
	view  atomic.Pointer[server.ClusterView]
	// prims caches the current state's promoted primaries (ownerOf).
	prims atomic.Pointer[primaries]

	hasData atomic.Bool // MarkHasData is known to be committed
	// catchingUp: restarted, and not yet applied the log as far as the
	// leader had committed: local keys are not served (a move from this
	// node may have switched its buckets away).
	catchingUp atomic.Bool
	leftGossip atomic.Bool // this node was drained and left gossip
	// synced: the applied metadata is known to be as recent as the
	// leader's at some point since start (fresh node, or caught up).
	synced atomic.Bool

	metrics    *nodeMetrics   // the subsystems' Prometheus metrics (metrics.go)
	failpoints *failpoint.Set // fault tests (Config.Failpoints); nil: none
	markSem    chan struct{}  // one MarkHasData in flight
	snapMu     sync.Mutex     // one global snapshot taken at a time (leader)

	// done is closed and life canceled when Close begins: every goroutine
	// the node starts (goFunc) ends on them, and every context of its
	// background work derives from life.
	done      chan struct{}
	life      context.Context
	endLife   context.CancelFunc
	goMu      sync.Mutex // guards closing against wg.Add
	closing   bool       // Close is waiting for wg: goFunc starts nothing
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	// stops is start's cleanup stack, unwound by Close.
	stops stack
}

// Start opens the node's storage, starts its servers, and bootstraps a new
// cluster (cfg.Join empty, no Raft state in DataDir) or joins the cluster of
// cfg.Join. It returns once the node serves RESP and, when joining, once
// the Raft leader has added it (bounded by cfg.JoinTimeout and ctx). On
// error, everything started is stopped again.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.ID)
	n := &Node{cfg: cfg, log: log, markSem: make(chan struct{}, 1), done: make(chan struct{})}
	n.failpoints, _ = failpoint.Parse(cfg.Failpoints) // validated by cfg.Validate
	n.life, n.endLife = context.WithCancel(context.Background())
	if err := n.start(ctx); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

// start runs the node's start steps in order. Each step starts one
// component and pushes what stops it onto n.stops; if a step fails, start
// returns and Start's Close unwinds the stack, so only what was started
// is stopped, in reverse.
func (n *Node) start(ctx context.Context) error {
	var s startup
	for _, step := range []struct {
		name string
		run  func(context.Context, *startup) error
	}{
		{"data dir", n.openDataDir},
		{"engine", n.openEngine},
		{"security", n.loadSecurity},
		{"listeners", n.listen},
		{"rpc transport", n.openRPC},
		{"coordinator", n.openCoordinator},
		{"goroutines", n.trackGoroutines},
		{"rpc methods", n.serveRPC},
		{"admin server", n.openAdmin},
		{"resp server", n.openRESP},
		{"gossip", n.openGossip},
		{"serve", n.serve},
		{"join", n.joinCluster},
		{"ready", n.ready},
	} {
		if err := step.run(ctx, &s); err != nil {
			return err
		}
	}
	return nil
}

// startup carries what one start step hands to the next.
type startup struct {
	hadRaftState bool
	engine       engine.Config
	rpcLn        net.Listener
	respLn       net.Listener
	clusterLn    net.Listener
	tlsRespLn    net.Listener // nil without Config.TLSRESPAddr
	httpLn       net.Listener
	raftTrans    *raft.NetworkTransport
	reg          *prometheus.Registry
}

func (n *Node) openDataDir(_ context.Context, s *startup) error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	_, raftStateErr := os.Stat(filepath.Join(cfg.DataDir, "raft"))
	s.hadRaftState = raftStateErr == nil
	// A restarted node replays the metadata log from old states, and so
	// does a new node joining a cluster (from the leader's snapshot or the
	// log's start): nothing may act on them (serve keys, delete buckets it
	// seems not to own) until it has caught up with the leader. A joining
	// node can hold an old member's ID (a drained node back with an empty
	// disk): the old tables then give it buckets it does not own.
	// Only a node bootstrapping a new cluster starts in step.
	mustCatchUp := s.hadRaftState || len(cfg.Join) > 0
	n.catchingUp.Store(mustCatchUp)
	n.synced.Store(!mustCatchUp)
	return nil
}

func (n *Node) openEngine(_ context.Context, s *startup) error {
	ecfg := n.cfg.Engine
	ecfg.Sync, _ = engine.ParseSyncMode(n.cfg.Sync)
	ecfg.ForceRecover = n.cfg.ForceRecover
	if ecfg.Logf == nil {
		ecfg.Logf = func(format string, args ...any) { n.log.Warn(fmt.Sprintf(format, args...), "component", "engine") }
	}
	st, err := engine.Open(filepath.Join(n.cfg.DataDir, "engine"), ecfg)
	if errors.Is(err, engine.ErrMissingWAL) {
		return fmt.Errorf("node: open engine: %w (to start without it and lose the writes it held, restart with --force-recover)", err)
	}
	if err != nil {
		return fmt.Errorf("node: open engine: %w", err)
	}
	n.store = st
	n.stops.push("engine", st.Close)
	// The keyspace runs the node's per-key checks inside its operations
	// (guard and servable in migrate.go say why and in which order), and
	// the migrator records the keys it applies in buckets being moved. The
	// hooks reach n.coord and n.txns, set in later steps: nothing calls the
	// keyspace before then.
	n.mig = newMigrator(n, n.catchingUp.Load())
	n.local = kv.New(st, ecfg.Now,
		kv.WithGuard(n.guard),
		kv.WithRecheck(n.servable),
		kv.WithOnApplied(n.mig.onApplied),
		kv.WithReplicator(func(ctx context.Context, b *engine.Batch, release func(bool)) (bool, error) {
			return n.repl.replicate(ctx, b, release) // n.repl is set before any key is served
		}))
	s.engine = ecfg
	return nil
}

// listen binds every port first: with port 0 the advertised addresses are
// only known once bound. A listener is closed on the way down even if no
// server took it (closing one a server already closed does nothing).
func (n *Node) listen(_ context.Context, s *startup) error {
	cfg := n.cfg
	clusterAddr, err := cfg.clusterRESPAddr()
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	for _, l := range []struct {
		ln         *net.Listener
		addr, what string
	}{
		{&s.rpcLn, cfg.RPCAddr, "rpc"},
		{&s.respLn, cfg.RESPAddr, "resp"},
		{&s.clusterLn, clusterAddr, "cluster resp"},
		{&s.httpLn, cfg.HTTPAddr, "http"},
	} {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			if l.what == "cluster resp" {
				return fmt.Errorf("node: listen cluster resp %s (--cluster-resp-addr): %w", l.addr, err)
			}
			return fmt.Errorf("node: listen %s %s: %w", l.what, l.addr, err)
		}
		*l.ln = ln
		n.stops.push(l.what+" listener", func() error { _ = ln.Close(); return nil })
	}
	if cfg.TLSRESPAddr != "" {
		ln, err := net.Listen("tcp", cfg.TLSRESPAddr)
		if err != nil {
			return fmt.Errorf("node: listen tls resp %s (--tls-resp-addr): %w", cfg.TLSRESPAddr, err)
		}
		s.tlsRespLn = ln
		n.stops.push("tls resp listener", func() error { _ = ln.Close(); return nil })
	}
	advHost, err := advertiseHost(cfg.AdvertiseHost, cfg.RPCAddr)
	if err != nil {
		return err
	}
	n.rpcAddr = advertise(advHost, s.rpcLn.Addr())
	n.respAddr = advertise(advHost, s.respLn.Addr())
	n.clusterRespAddr = advertise(advHost, s.clusterLn.Addr())
	n.httpAddr = advertise(advHost, s.httpLn.Addr())
	if s.tlsRespLn != nil {
		n.tlsRespAddr = advertise(advHost, s.tlsRespLn.Addr())
	}
	return nil
}

// openRPC puts RPC and Raft on one port.
func (n *Node) openRPC(_ context.Context, s *startup) error {
	mcfg := portMuxConfig(n.log)
	mcfg.PeerAuth = n.sec.auth
	pm, err := transport.NewPortMux(s.rpcLn, mcfg)
	if err != nil {
		return fmt.Errorf("node: port mux: %w", err)
	}
	n.pm = pm
	n.stops.push("port mux", pm.Close)
	tcfg := n.cfg.Transport
	tcfg.NodeID = n.cfg.ID
	tcfg.AdvertiseAddr = n.rpcAddr
	tcfg.Logger = n.log.With("component", "transport")
	tcfg.PeerAuth = n.sec.auth
	rpc, err := transport.NewTCPOnListener(tcfg, pm.RPC())
	if err != nil {
		return fmt.Errorf("node: rpc transport: %w", err)
	}
	n.rpc = rpc
	n.stops.push("rpc transport", rpc.Close)
	raftAdv, err := net.ResolveTCPAddr("tcp", n.rpcAddr)
	if err != nil {
		return fmt.Errorf("node: raft advertise address: %w", err)
	}
	stream := raftStream{transport.NewRaftStreamLayerAuth(pm.Raft(), raftAdv, n.sec.auth)}
	s.raftTrans = raft.NewNetworkTransport(stream, 3, 10*time.Second, &slogWriter{log: n.log.With("component", "raft-transport"), closed: &n.libLogsOff})
	return nil
}

func (n *Node) openCoordinator(_ context.Context, s *startup) error {
	cfg := n.cfg
	ccfg := cfg.Raft
	ccfg.NodeID = cfg.ID
	ccfg.DataDir = filepath.Join(cfg.DataDir, "raft")
	ccfg.Bootstrap = len(cfg.Join) == 0
	ccfg.VotersMax = cfg.VotersMax
	ccfg.ReplicationFactor = cfg.ReplicationFactor
	ccfg.Self = n.self()
	ccfg.Holder = &n.holder
	ccfg.Logger = n.log.With("component", "coordinator")
	coord, err := coordinator.Open(ccfg, s.raftTrans)
	if err != nil {
		return fmt.Errorf("node: open coordinator: %w", err)
	}
	n.coord = coord
	n.stops.push("coordinator", coord.Close)
	n.hasData.Store(coord.Current().HasData())
	n.refreshPeers(coord.Current())
	return nil
}

// serveRPC registers the node-to-node methods and serves them.
func (n *Node) serveRPC(_ context.Context, s *startup) error {
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(recoveryCollectors(n.store.Recovery())...)
	var err error
	if n.metrics, err = newNodeMetrics(n, s.reg); err != nil {
		return fmt.Errorf("node: metrics: %w", err)
	}
	r := transport.NewRouter()
	n.backend = &backend{n: n, local: n.local}
	n.backend.register(r)
	if n.txns, err = newTxns(n, s.reg); err != nil {
		return fmt.Errorf("node: transactions: %w", err)
	}
	n.mig.register(r)
	n.txns.register(r)
	// In-doubt transactions take their keys' locks before any key is served.
	if err := n.txns.restore(); err != nil {
		return fmt.Errorf("node: restoring transaction records: %w", err)
	}
	rcfg := replica.DefaultConfig()
	rcfg.MinReplicasToWrite = n.cfg.MinReplicasToWrite
	repl, err := newReplicator(n, rcfg)
	if err != nil {
		return fmt.Errorf("node: replication: %w", err)
	}
	// Committed entries not yet in the store are applied before any key
	// is served.
	if err := repl.restore(); err != nil {
		return fmt.Errorf("node: restoring the replication log: %w", err)
	}
	n.repl = repl
	repl.register(r)
	n.goFunc(repl.loop)
	transport.Register(r, methodLeaderOp, n.handleLeaderOp)
	n.registerSnapshots(r)
	n.rpcMethods = r.Methods()
	n.rpc.Serve(r.Handle)
	return nil
}

// trackGoroutines pushes the wait for every goroutine goFunc starts
// (from here on: RPC handlers and restored transactions may start some):
// on the way down it runs once the servers and gossip above it are closed
// (and life has ended: Close), before Raft, the transport and the engine
// they use.
func (n *Node) trackGoroutines(context.Context, *startup) error {
	n.stops.push("goroutines", func() error {
		n.goMu.Lock()
		n.closing = true
		n.goMu.Unlock()
		n.wg.Wait()
		return nil
	})
	return nil
}

func (n *Node) openAdmin(_ context.Context, s *startup) error {
	n.admin = server.NewAdmin(server.AdminConfig{Token: n.cfg.AdminToken}, n.ClusterInfo, s.reg)
	n.registerAdmin()
	n.httpSrv = &http.Server{Handler: n.admin, ReadHeaderTimeout: 10 * time.Second}
	n.stops.push("admin server", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // life has ended: a fresh bound
		defer cancel()
		if err := n.httpSrv.Shutdown(ctx); err != nil {
			return n.httpSrv.Close()
		}
		return nil
	})
	return nil
}

func (n *Node) openRESP(_ context.Context, s *startup) error {
	cfg := n.cfg
	metrics, err := server.NewMetrics(s.reg)
	if err != nil {
		return fmt.Errorf("node: metrics: %w", err)
	}
	scfg := cfg.Server
	scfg.RequirePass = cfg.RequirePass
	scfg.Metrics = metrics
	scfg.TxnKeysMax, scfg.TxnTimeout = cfg.TxnKeysMax, cfg.TxnDeadline+time.Second
	scfg.RequestBytesMax, scfg.ClientInputBytesMax = cfg.ClientQueryBufferBytesMax, cfg.ClientInputBytesMax
	scfg.Settings = append(scfg.Settings, n.configSettings()...)
	if scfg.Now == nil {
		scfg.Now = s.engine.Now
	}
	if scfg.Logf == nil {
		scfg.Logf = func(format string, args ...any) { n.log.Debug(fmt.Sprintf(format, args...), "component", "resp") }
	}
	srv, err := server.New(scfg, n.backend)
	if err != nil {
		return fmt.Errorf("node: resp server: %w", err)
	}
	n.resp = srv
	n.stops.push("resp server", srv.Close)
	return nil
}

// openGossip joins nothing yet: it starts memberlist. It is stopped first
// on the way down, so peers hear this node leave while it still serves.
func (n *Node) openGossip(context.Context, *startup) error {
	g, err := startGossip(n)
	if err != nil {
		return err
	}
	n.gossip = g
	n.ml = g.ml
	n.gossipAddr = g.ml.LocalNode().Address()
	n.stops.push("gossip", g.close)
	return nil
}

// serve starts the servers' and the node's loops (goFunc: waited for by
// the goroutines step).
func (n *Node) serve(_ context.Context, s *startup) error {
	if n.sec.client != nil {
		// TLS on every client port, or only on the extra TLS RESP port
		// while plain clients migrate (Config.TLSRESPAddr).
		if s.tlsRespLn == nil {
			s.respLn, s.clusterLn = n.clientTLS(s.respLn), n.clientTLS(s.clusterLn)
		}
		s.httpLn = n.clientTLS(s.httpLn)
		n.watchTLS()
	}
	if s.tlsRespLn != nil {
		ln := n.clientTLS(s.tlsRespLn)
		n.goFunc(func() {
			if err := n.resp.Serve(ln); err != nil && !errors.Is(err, server.ErrClosed) {
				n.log.Error("tls resp server stopped", "err", err)
			}
		})
	}
	n.goFunc(func() {
		if err := n.resp.Serve(s.respLn); err != nil && !errors.Is(err, server.ErrClosed) {
			n.log.Error("resp server stopped", "err", err)
		}
	})
	n.goFunc(func() {
		if err := n.resp.ServeNodeScope(s.clusterLn); err != nil && !errors.Is(err, server.ErrClosed) {
			n.log.Error("cluster resp server stopped", "err", err)
		}
	})
	n.goFunc(func() {
		if err := n.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("admin server stopped", "err", err)
		}
	})
	n.goFunc(n.watchLoop)
	n.goFunc(n.watchLeaders)
	n.goFunc(n.txns.loop)
	n.goFunc(n.mig.loop)
	n.goFunc(n.mig.feed)
	if n.cfg.MoveConcurrency > 0 || n.cfg.MoveBytesPerSec >= 0 {
		n.goFunc(n.applyMoveLimits)
	}
	if s.hadRaftState {
		n.goFunc(n.catchUp)
	}
	n.goFunc(n.reconcileLoop)
	return nil
}

// joinCluster, with Join, has the leader add this node (bounded by
// JoinTimeout).
func (n *Node) joinCluster(ctx context.Context, s *startup) error {
	if len(n.cfg.Join) == 0 {
		return nil
	}
	jctx, cancel := context.WithTimeout(ctx, n.cfg.JoinTimeout)
	defer cancel()
	if err := n.join(jctx); err != nil {
		return err
	}
	if !s.hadRaftState {
		// Now a member: the leader's log end includes the join.
		n.goFunc(n.catchUp)
	}
	return nil
}

func (n *Node) ready(_ context.Context, s *startup) error {
	n.admin.SetReady(true)
	n.stops.push("ready", func() error { n.admin.SetReady(false); return nil })
	n.gossip.setState("serving")
	n.log.Info("node serving", "resp", n.respAddr, "cluster_resp", n.clusterRespAddr, "rpc", n.rpcAddr, "gossip", n.gossipAddr,
		"http", n.httpAddr, "tls_resp", n.tlsRespAddr, "bootstrap", len(n.cfg.Join) == 0 && !s.hadRaftState, "restart", s.hadRaftState)
	return nil
}

// stack is start's cleanup stack: each start step pushes what stops the
// component it started; unwind runs them last first. Not safe for
// concurrent use (start, then Close, never both at once).
type stack struct{ stops []stop }

type stop struct {
	name string
	fn   func() error
}

func (s *stack) push(name string, fn func() error) { s.stops = append(s.stops, stop{name, fn}) }

// unwind runs every stop, last pushed first, and empties the stack; it
// returns their errors, each naming its component.
func (s *stack) unwind() error {
	var errs []error
	for i := len(s.stops) - 1; i >= 0; i-- {
		if err := s.stops[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.stops[i].name, err))
		}
	}
	s.stops = nil
	return errors.Join(errs...)
}

// join enters the gossip ring through cfg.Join and has the Raft leader add
// this node, retrying until ctx ends.
func (n *Node) join(ctx context.Context) error {
	var lastErr error
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		if _, err := n.ml.Join(n.cfg.Join); err != nil {
			lastErr = fmt.Errorf("gossip join %v: %w", n.cfg.Join, err)
		} else {
			_, err := n.leaderDo(ctx, leaderOp{Op: opJoin, Member: n.self()}, n.gossip.peerRPCAddrs())
			if err == nil {
				n.log.Info("joined cluster", "via", n.cfg.Join)
				return nil
			}
			lastErr = err
		}
		n.log.Warn("join failed, retrying", "err", lastErr)
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: join %v: %w (last error: %v)", n.cfg.Join, ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
	}
}

func (n *Node) self() coordinator.Member {
	return coordinator.Member{ID: n.cfg.ID, RaftAddr: n.rpcAddr, RPCAddr: n.rpcAddr, RESPAddr: n.respAddr, ClusterRESPAddr: n.clusterRespAddr, HTTPAddr: n.httpAddr, Weight: n.cfg.Weight}
}

// Close leaves the gossip ring, stops the servers, Raft and the engine, and
// waits for every goroutine the node started. It is idempotent.
//
// It ends the node's lifetime (done, life) and then unwinds start's stack:
// not ready, gossip, the RESP and admin servers, the wait for goroutines,
// the coordinator, the transport and port, the listeners, the engine —
// only what start reached.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		n.endLife()
		n.closeErr = n.stops.unwind()
		n.libLogsOff.Store(true) // after every stop: library goroutines may linger
		n.log.Info("node closed", "err", n.closeErr)
	})
	return n.closeErr
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// RESPAddr returns the advertised RESP address (the real port when the
// config asked for port 0).
func (n *Node) RESPAddr() string { return n.respAddr }

// RPCMethods returns the node-to-node methods the node serves on its RPC
// port, sorted (for audits and security tests).
func (n *Node) RPCMethods() []string { return slices.Clone(n.rpcMethods) }

// TLSRESPAddr is the advertised address of the TLS RESP port beside the
// plain one (Config.TLSRESPAddr), or "" without it.
func (n *Node) TLSRESPAddr() string { return n.tlsRespAddr }

// Engine returns the node's local store, for tests and tools that inspect
// what the node holds (a SCAN answers by ownership, not by what is on
// disk). Do not write to it.
func (n *Node) Engine() *engine.Store { return n.store }

// ClusterRESPAddr returns the advertised address of the RESP port cluster
// clients are sent to (Config.ClusterRESPAddr).
func (n *Node) ClusterRESPAddr() string { return n.clusterRespAddr }

// RPCAddr returns the advertised RPC + Raft address.
func (n *Node) RPCAddr() string { return n.rpcAddr }

// GossipAddr returns the advertised memberlist address.
func (n *Node) GossipAddr() string { return n.gossipAddr }

// HTTPAddr returns the advertised admin API address.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// Coordinator returns the node's coordinator, for status and tests.
func (n *Node) Coordinator() *coordinator.Coordinator { return n.coord }

// IsLeader reports whether the node believes it is the Raft leader.
func (n *Node) IsLeader() bool { return n.coord.IsLeader() }

// Table returns the placement table the node routes with (nil before the
// first placement).
func (n *Node) Table() *router.Table { return n.holder.Load() }

func (n *Node) goFunc(f func()) bool {
	n.goMu.Lock()
	defer n.goMu.Unlock()
	if n.closing {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// watchLoop rebuilds the peer address map and the CLUSTER view on every new
// coordinator state.
func (n *Node) watchLoop() {
	for {
		s, ch := n.coord.Watch()
		n.refreshPeers(s)
		n.snapshotReconcile(s)
		select {
		case <-ch:
		case <-time.After(30 * time.Second): // orphaned checkpoints age out without state changes
		case <-n.done:
			return
		}
	}
}

func (n *Node) refreshPeers(s *coordinator.State) {
	peers := make(map[string]coordinator.Member)
	resp := make(map[string]string)
	for _, m := range s.Members() {
		peers[m.ID] = m
		resp[m.ID] = m.RESPAddr
		if m.ClusterRESPAddr != "" { // CLUSTER SLOTS/SHARDS/NODES advertise it
			resp[m.ID] = m.ClusterRESPAddr
		}
	}
	resp[n.cfg.ID] = n.clusterRespAddr
	n.peers.Store(&peers)
	if s.HasData() {
		n.hasData.Store(true)
	}
	var v server.ClusterView
	if t := s.Table(); t != nil {
		v = server.ViewFromTable(t, n.cfg.ID, resp)
	} else {
		v = server.ClusterView{Self: n.cfg.ID}
	}
	n.view.Store(&v)
}

func (n *Node) peer(id string) (coordinator.Member, bool) {
	if p := n.peers.Load(); p != nil {
		if m, ok := (*p)[id]; ok {
			return m, true
		}
	}
	// The map is rebuilt after each new state is published, and the
	// router's table before it: a table can name a member the map does
	// not have yet.
	return n.coord.Current().Member(id)
}

// ClusterInfo is the body of GET /v1/cluster: the metadata as this node has
// applied it. It never blocks.
func (n *Node) ClusterInfo() server.ClusterInfo {
	s := n.coord.Current()
	leader, _ := n.coord.Leader()
	info := server.ClusterInfo{Epoch: s.Epoch(), Leader: leader, Self: n.cfg.ID, Version: n.cfg.Version, Nodes: []server.NodeInfo{}}
	info.Migration = n.mig.progress(s)
	t := s.Table()
	health := n.memberHealth(s)
	view := n.backend.ClusterView()
	info.ClusterState, _, _, _, info.BucketsFail = view.ClusterState()
	ranges := map[string][][2]uint16{}
	for _, nd := range view.Nodes {
		for _, r := range nd.Ranges {
			ranges[nd.ID] = append(ranges[nd.ID], [2]uint16{r.Start, r.End})
		}
	}
	info.ReplicationFactor, info.UnderReplicated = s.ReplicationFactor(), s.UnderReplicated()
	if n.repl != nil {
		n.repl.mu.Lock()
		info.Failovers = n.repl.status.Failovers
		n.repl.mu.Unlock()
	}
	// Primaries follow failovers (ownerOf); every other owner holds a
	// replica.
	primaries, replicas := map[string]int{}, map[string]int{}
	if t != nil {
		over := s.PrimaryOverrides()
		for b := range uint16(router.NumBuckets) {
			p := t.OwnerOfBucket(b)
			if o, ok := over[b]; ok {
				p = o
			}
			primaries[p]++
			for _, o := range t.Owners(b) {
				if o != p {
					replicas[o]++
				}
			}
		}
	}
	for _, m := range s.Members() {
		ni := server.NodeInfo{ID: m.ID, Weight: m.Weight, State: string(m.State), Health: health[m.ID], RespAddr: m.RESPAddr, HTTPAddr: m.HTTPAddr, Ranges: ranges[m.ID],
			Buckets: primaries[m.ID], Replicas: replicas[m.ID]}
		info.Nodes = append(info.Nodes, ni)
	}
	return info
}

// advertiseHost picks the host other nodes dial: the configured one, the
// listen host when it is specific, else a private IP of the machine.
func advertiseHost(configured, listen string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	h, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
		return h, nil
	}
	ip, err := sockaddr.GetPrivateIP()
	if err != nil || ip == "" {
		return "", fmt.Errorf("node: listen address %q has no specific host and no private IP was found (set --advertise-host): %v", listen, err)
	}
	return ip, nil
}

func advertise(host string, a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return net.JoinHostPort(host, port)
}

func portMuxConfig(log *slog.Logger) transport.PortMuxConfig {
	c := transport.DefaultPortMuxConfig()
	c.Logger = log.With("component", "portmux")
	return c
}

// raftStream adapts transport.RaftStreamLayer to raft.StreamLayer.
type raftStream struct{ *transport.RaftStreamLayer }

func (s raftStream) Dial(a raft.ServerAddress, d time.Duration) (net.Conn, error) {
	return s.DialAddr(string(a), d)
}

// slogWriter turns the line-oriented logs of hashicorp libraries ("[WARN]
// memberlist: ...") into slog records of the matching level.
//
// closed, once set by Node.Close, makes it drop everything: memberlist's
// Shutdown does not wait for a probe already in flight, and such a
// goroutine must not write to the caller's logger after Close returned.
type slogWriter struct {
	log    *slog.Logger
	closed *atomic.Bool
}

func (w *slogWriter) Write(p []byte) (int, error) {
	if w.closed != nil && w.closed.Load() {
		return len(p), nil
	}
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	level := slog.LevelDebug
	for tag, l := range map[string]slog.Level{"[ERR]": slog.LevelError, "[ERROR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[INFO]": slog.LevelInfo} {
		if idx := strings.Index(msg, tag); idx >= 0 && idx < 40 {
			level = l
			break
		}
	}
	if level == slog.LevelError {
		level = reconnectLevel(msg)
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// reconnectLevel lowers a library's ERROR (memberlist, Raft's network
// transport) that only says a connection ended — what a peer's restart or
// rejoin looks like — to INFO, and one refused (the peer is down) to
// WARN: gossip's suspicion and the alerts report a peer that stays away.
func reconnectLevel(msg string) slog.Level {
	for _, m := range []string{": EOF", "error=EOF", "unexpected EOF", "connection reset by peer", "broken pipe", "use of closed network connection"} {
		if strings.Contains(msg, m) {
			return slog.LevelInfo
		}
	}
	if strings.Contains(msg, "connection refused") {
		return slog.LevelWarn
	}
	return slog.LevelError
}
