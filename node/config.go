package node

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/ring"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

// Default addresses of a node's four ports.
const (
	DefaultRESPAddr   = "127.0.0.1:6379"
	DefaultRPCAddr    = "127.0.0.1:7380"
	DefaultGossipAddr = "127.0.0.1:7946"
	DefaultHTTPAddr   = "127.0.0.1:8080"
)

// Config configures one dbx node. Start from DefaultConfig, set ID and
// DataDir (and Join for every node but the first), then Start.
type Config struct {
	// ID is the node's unique, stable ID (Raft server ID, member ID and
	// memberlist name). Required; at most coordinator.MaxNodeIDLen bytes,
	// no spaces.
	ID string
	// DataDir holds the engine (DataDir/engine) and the Raft state
	// (DataDir/raft). Required. Restarting with the same DataDir keeps the
	// node's data and cluster membership.
	DataDir string
	// RESPAddr, RPCAddr, GossipAddr and HTTPAddr are where the node listens
	// (host:port; port 0 picks a free port, read it back from the Node).
	// RPCAddr carries dbx RPC and Raft (transport.PortMux).
	RESPAddr, RPCAddr, GossipAddr, HTTPAddr string
	// AdvertiseHost, if set, replaces the host of every address this node
	// announces to others. Needed only when a listen address has an
	// unspecified host (0.0.0.0, ::); without it a private IP of the
	// machine is used then.
	AdvertiseHost string
	// Join lists gossip (memberlist) addresses, host:port, of members of an
	// existing cluster. Empty: bootstrap a new cluster, unless DataDir
	// already holds Raft state (a restart). With Join, the node joins the
	// gossip ring through any of them, finds the Raft leader and asks it to
	// add this node (again: a restart with new addresses is fine).
	Join []string
	// JoinTimeout bounds the whole join (gossip + Raft) at Start.
	JoinTimeout time.Duration
	// Weight is the node's placement weight, in (0, 100]. Default 1.
	Weight float64
	// GossipKey, if set, is the base64 of a 16, 24 or 32-byte AES key that
	// encrypts gossip; every node must use the same one.
	GossipKey string
	// RequirePass is the RESP password (AUTH); empty: none.
	RequirePass string
	// AdminToken, if set, is required as a bearer token on the admin API
	// (except /healthz).
	AdminToken string
	// Sync is the engine's WAL sync mode: always (default), interval, none.
	Sync string
	// VotersMax is the number of Raft voters (default 3, at most 5).
	VotersMax int
	// TxnKeysMax bounds the distinct keys of one transaction (MULTI/EXEC,
	// MSET, MSETNX, DEL; default 1024). It overrides Server.TxnKeysMax.
	TxnKeysMax int
	// TxnDeadline is a transaction's deadline (default 5 s, at least 1 s):
	// running out before the commit is requested aborts it; after, the
	// client is told the outcome is unknown. Server.TxnTimeout is set to
	// it plus one second.
	TxnDeadline time.Duration
	// MoveConcurrency and MoveBytesPerSec, when set (> 0, >= 0), are
	// applied to the cluster's migration limits at start (they are cluster
	// wide, kept in Raft; the admin API changes them at run time). Default
	// 0 and -1: keep the cluster's (2 moves at once, unthrottled).
	MoveConcurrency int
	MoveBytesPerSec int64
	// Failpoints, for fault tests only, names places where the process
	// kills itself with SIGKILL: "name[:n],..." (n-th hit). Names:
	// coord-before-decide, coord-before-commit, holder-after-decide-write,
	// part-after-prepare, part-before-apply (transactions),
	// mig-target-copy (a target after writing a copied page),
	// mig-source-fence (a source right after fencing its buckets).
	Failpoints string
	// SnapshotRetention is how many global snapshots the cluster keeps
	// (default 5, at most coordinator.MaxSnapshots): when this node leads
	// and commits a new one, the oldest beyond it are dropped and their
	// checkpoints released on every node.
	SnapshotRetention int
	// SnapshotOrphanAge is how long a checkpoint no committed manifest
	// lists is kept before it is released (a take that failed, or whose
	// leader died, leaves one). Default 2 min.
	SnapshotOrphanAge time.Duration
	// GossipProfile selects memberlist's timing: "lan" (default) or
	// "local" (loopback/tests: faster failure detection).
	GossipProfile string
	// Engine, Server, Transport and Raft are the sub-configs. Fields the
	// node owns are overwritten: Engine.Sync (from Sync), Server.RequirePass
	// and Server.Metrics, Transport.NodeID/BindAddr/AdvertiseAddr/Logger,
	// and Raft's NodeID, Self, DataDir, Bootstrap, VotersMax, Holder and
	// Logger. Their timing and size fields apply as given.
	Engine    engine.Config
	Server    server.Config
	Transport transport.Config
	Raft      coordinator.Config
	// Logger receives structured logs (nil: slog.Default()).
	Logger *slog.Logger
}

// DefaultConfig returns a config with the default ports on loopback,
// weight 1, WAL sync always, 3 voters and the sub-packages' defaults.
func DefaultConfig() Config {
	return Config{
		RESPAddr:          DefaultRESPAddr,
		RPCAddr:           DefaultRPCAddr,
		GossipAddr:        DefaultGossipAddr,
		HTTPAddr:          DefaultHTTPAddr,
		JoinTimeout:       30 * time.Second,
		Weight:            1,
		Sync:              "always",
		VotersMax:         coordinator.DefaultVoters,
		GossipProfile:     "lan",
		TxnKeysMax:        1024,
		TxnDeadline:       5 * time.Second,
		MoveBytesPerSec:   -1,
		SnapshotRetention: 5,
		SnapshotOrphanAge: 2 * time.Minute,
		Engine:            engine.DefaultConfig(),
		Server:            server.DefaultConfig(),
		Transport:         transport.DefaultConfig(),
		Raft:              coordinator.DefaultConfig(),
	}
}

// Validate reports every problem of c at once, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	switch {
	case c.ID == "":
		bad("id is required")
	case len(c.ID) > coordinator.MaxNodeIDLen:
		bad("id is %d bytes, at most %d", len(c.ID), coordinator.MaxNodeIDLen)
	default:
		for _, r := range c.ID {
			if r <= ' ' || r == 0x7f {
				bad("id %q contains a space or control character", c.ID)
				break
			}
		}
	}
	if c.DataDir == "" {
		bad("data-dir is required")
	}
	addrs := []struct{ name, v string }{
		{"resp-addr", c.RESPAddr}, {"rpc-addr", c.RPCAddr},
		{"gossip-addr", c.GossipAddr}, {"http-addr", c.HTTPAddr},
	}
	for _, a := range addrs {
		if err := checkHostPort(a.v); err != nil {
			bad("%s %q: %v", a.name, a.v, err)
		}
	}
	for _, j := range c.Join {
		if err := checkHostPort(j); err != nil || j == "" {
			bad("join address %q: %v", j, err)
		}
	}
	if c.JoinTimeout <= 0 {
		bad("join timeout %s must be positive", c.JoinTimeout)
	}
	if !(c.Weight > 0 && c.Weight <= ring.MaxWeight) {
		bad("weight %v must be in (0, %v]", c.Weight, ring.MaxWeight)
	}
	if c.GossipKey != "" {
		if k, err := base64.StdEncoding.DecodeString(c.GossipKey); err != nil {
			bad("gossip-key is not base64: %v", err)
		} else if n := len(k); n != 16 && n != 24 && n != 32 {
			bad("gossip-key is %d bytes, want 16, 24 or 32", n)
		}
	}
	if _, err := engine.ParseSyncMode(c.Sync); err != nil {
		bad("sync: %v", err)
	}
	if c.VotersMax < 1 || c.VotersMax > coordinator.MaxVoters {
		bad("voters-max %d must be in [1, %d]", c.VotersMax, coordinator.MaxVoters)
	}
	if c.MoveConcurrency < 0 || c.MoveConcurrency > coordinator.MaxMoveConcurrency {
		bad("move-concurrency %d must be in [0, %d] (0: keep the cluster's)", c.MoveConcurrency, coordinator.MaxMoveConcurrency)
	}
	if c.SnapshotRetention < 1 || c.SnapshotRetention > coordinator.MaxSnapshots {
		bad("snapshot-retention %d must be in [1, %d]", c.SnapshotRetention, coordinator.MaxSnapshots)
	}
	if c.SnapshotOrphanAge < time.Second {
		bad("snapshot-orphan-age %s must be at least 1s", c.SnapshotOrphanAge)
	}
	if c.TxnKeysMax < 1 || c.TxnKeysMax > 1<<20 {
		bad("txn-keys-max %d must be in [1, %d]", c.TxnKeysMax, 1<<20)
	}
	if c.TxnDeadline < time.Second || c.TxnDeadline > 10*time.Minute {
		bad("txn-deadline %s must be in [1s, 10m]", c.TxnDeadline)
	}
	for name := range parseFailpoints(c.Failpoints) {
		if !slices.Contains(failpointNames, name) {
			bad("failpoint %q unknown (known: %s)", name, strings.Join(failpointNames, ", "))
		}
	}
	if c.GossipProfile != "lan" && c.GossipProfile != "local" {
		bad("gossip profile %q: want lan or local", c.GossipProfile)
	}
	if c.AdvertiseHost != "" && net.ParseIP(c.AdvertiseHost) == nil {
		if _, err := net.LookupHost(c.AdvertiseHost); err != nil {
			bad("advertise-host %q: %v", c.AdvertiseHost, err)
		}
	}
	ec := c.Engine
	if sm, err := engine.ParseSyncMode(c.Sync); err == nil {
		ec.Sync = sm
	}
	if err := ec.Validate(); err != nil {
		bad("engine: %v", err)
	}
	sc := c.Server
	sc.RequirePass = c.RequirePass
	sc.TxnKeysMax, sc.TxnTimeout = c.TxnKeysMax, c.TxnDeadline+time.Second
	if err := sc.Validate(); err != nil {
		bad("server: %v", err)
	}
	tc := c.Transport
	tc.NodeID = c.ID
	tc.AdvertiseAddr = "127.0.0.1:1" // set at Start from the listener
	if err := tc.Validate(); err != nil {
		bad("transport: %v", err)
	}
	rc := c.Raft
	rc.NodeID = c.ID
	if rc.NodeID == "" {
		rc.NodeID = "x"
	}
	rc.VotersMax = c.VotersMax
	if err := rc.Validate(); err != nil {
		bad("raft: %v", err)
	}
	return errors.Join(errs...)
}

func checkHostPort(a string) error {
	_, p, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", p)
	}
	return nil
}
