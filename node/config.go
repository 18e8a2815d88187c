package node

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/internal/failpoint"
	"github.com/dbx-kv/dbx/replica"
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

// Defaults and bounds of the process and client-input limits.
const (
	DefaultShutdownTimeout = 10 * time.Second
	MinShutdownTimeout     = time.Second
	MaxShutdownTimeout     = 10 * time.Minute

	// DefaultClientQueryBufferBytesMax is ClientQueryBufferBytesMax's
	// default.
	DefaultClientQueryBufferBytesMax = 64 << 20
	// MinClientBytes is the least ClientInputBytesMax and
	// ClientQueryBufferBytesMax accept.
	MinClientBytes = 1 << 20
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
	// ClusterRESPAddr is a second RESP listener: the address CLUSTER
	// SLOTS/SHARDS/NODES advertise, so the one cluster-aware clients
	// (go-redis ClusterClient, redis-py RedisCluster, redis-cli -c after a
	// redirect) use. There SCAN and DBSIZE cover this node's own buckets, as
	// on a Redis Cluster node; on RESPAddr they cover the whole cluster.
	// Everything else is the same on both. Empty (default): RESPAddr's host
	// and its port + 10000 (6379 → 16379); a free port when that is over
	// 65535 or RESPAddr's port is 0 (it is advertised, so clients find it).
	ClusterRESPAddr string
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
	// TLSCertFile and TLSKeyFile, when set (both), are the PEM certificate
	// and key of the client-facing ports: the RESP ports and the admin
	// HTTP port then speak TLS (1.3 at least), unless TLSRESPAddr is set:
	// then RESPAddr and ClusterRESPAddr stay plain and TLSRESPAddr is a
	// TLS RESP port beside them (Redis's tls-port, for a migration). The
	// admin port speaks TLS either way. TLSClientCAFile, when set, makes
	// the TLS ports require client certificates that chain to it. The
	// files are read again on SIGHUP (ReloadTLS) and when they change
	// (checked every TLSReloadInterval), without a restart.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// TLSRESPAddr, when set, is a TLS RESP listener beside the plain one
	// (needs TLSCertFile). Like RESPAddr, SCAN and DBSIZE there cover the
	// whole cluster.
	TLSRESPAddr string
	// PeerCertFile, PeerKeyFile and PeerCAFile, when set (all three),
	// turn on mutual TLS on the RPC + Raft port: every connection between
	// nodes, both ways, presents a certificate that must chain to
	// PeerCAFile, or is refused before the RPC handshake. Certificates
	// need both the server and client auth extended key usages; host
	// names are not checked, so the CA must issue node certificates only.
	// Reloaded as TLSCertFile.
	PeerCertFile, PeerKeyFile, PeerCAFile string
	// ClusterSecret, when set (at least 16 bytes), must be proven by every
	// connection on the RPC + Raft port, both ways, with an HMAC
	// challenge-response (transport.PeerAuth); it never crosses the
	// wire. Every node needs the same one. Without it and without peer
	// TLS the node logs a warning at start: anyone who reaches the RPC
	// port can read and write every key.
	ClusterSecret string
	// TLSReloadInterval is how often the TLS files are checked for a
	// change (default 10 s, in [100ms, 1h]).
	TLSReloadInterval time.Duration
	// Sync is the engine's WAL sync mode: always (default), interval, none.
	Sync string
	// VotersMax is the number of Raft voters (default 3, at most 5).
	VotersMax int
	// ReplicationFactor is the number of nodes holding each bucket
	// (1..7, default 1), recorded in the metadata when this node
	// bootstraps a cluster and ignored by joining nodes.
	ReplicationFactor int
	// MinReplicasToWrite: a bucket whose in-sync set has fewer backups
	// refuses writes with NOREPLICAS (default 1; at most
	// ReplicationFactor-1 makes sense).
	MinReplicasToWrite int
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
	// kills itself with SIGKILL: "name[:n],..." (n-th hit, default 1); the
	// names are internal/failpoint.Names (2PC coordinator, holder and
	// participant steps, a move's target copy and source fence, the
	// snapshot leader before its commit).
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
	// ShutdownTimeout bounds how long the dbx-node process waits for Close
	// after SIGTERM/SIGINT before it logs an error and exits non-zero
	// (default 10 s, in [1s, 10m]). The node itself does not read it: the
	// process that owns the node enforces it (cmd/dbx-node).
	ShutdownTimeout time.Duration
	// ForceRecover starts the node even when the engine finds a live WAL
	// that its manifest names missing (a lost or deleted log file): the
	// writes it held are lost, and the loss is reported in the log.
	// Without it such a node refuses to start. Copied to
	// Engine.ForceRecover.
	ForceRecover bool
	// ClientInputBytesMax bounds the client input (RESP requests read but
	// not yet executed) the node buffers across all its client connections,
	// in bytes. Default: 1/8 of the machine's memory (MemTotal in
	// /proc/meminfo; 1 GiB assumed when unreadable), at least 64 MiB and at
	// most 4 GiB (DefaultClientInputBytesMax). At least 1 MiB.
	ClientInputBytesMax int64
	// ClientQueryBufferBytesMax bounds one client connection's query
	// buffer (an incomplete or pipelined request), in bytes, as Redis's
	// client-query-buffer-limit. Default 64 MiB; at least 1 MiB and at most
	// ClientInputBytesMax.
	ClientQueryBufferBytesMax int
	// Engine, Server, Transport and Raft are the sub-configs. Fields the
	// node owns are overwritten: Engine.Sync (from Sync) and
	// Engine.ForceRecover (from ForceRecover), Server.RequirePass
	// and Server.Metrics, Transport.NodeID/BindAddr/AdvertiseAddr/Logger/PeerAuth,
	// and Raft's NodeID, Self, DataDir, Bootstrap, VotersMax, Holder and
	// Logger. Their timing and size fields apply as given.
	Engine    engine.Config
	Server    server.Config
	Transport transport.Config
	Raft      coordinator.Config
	// Logger receives structured logs (nil: slog.Default()).
	Logger *slog.Logger
	// Version is the binary's version (dbx-node version), shown by INFO
	// server (dbx_version) and /v1/cluster. Default "dev".
	Version string
}

// DefaultConfig returns a config with the default ports on loopback,
// weight 1, WAL sync always, 3 voters and the sub-packages' defaults.
func DefaultConfig() Config {
	return Config{
		RESPAddr:                  DefaultRESPAddr,
		RPCAddr:                   DefaultRPCAddr,
		GossipAddr:                DefaultGossipAddr,
		HTTPAddr:                  DefaultHTTPAddr,
		JoinTimeout:               30 * time.Second,
		TLSReloadInterval:         10 * time.Second,
		Weight:                    1,
		Sync:                      "always",
		VotersMax:                 coordinator.DefaultVoters,
		ReplicationFactor:         coordinator.DefaultReplicationFactor,
		MinReplicasToWrite:        1,
		GossipProfile:             "lan",
		TxnKeysMax:                1024,
		TxnDeadline:               5 * time.Second,
		MoveBytesPerSec:           -1,
		SnapshotRetention:         5,
		SnapshotOrphanAge:         2 * time.Minute,
		ShutdownTimeout:           DefaultShutdownTimeout,
		ClientInputBytesMax:       DefaultClientInputBytesMax(),
		ClientQueryBufferBytesMax: DefaultClientQueryBufferBytesMax,
		Engine:                    engine.DefaultConfig(),
		Server:                    server.DefaultConfig(),
		Transport:                 transport.DefaultConfig(),
		Raft:                      coordinator.DefaultConfig(),
		Version:                   "dev",
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
	if c.ClusterRESPAddr != "" {
		addrs = append(addrs, struct{ name, v string }{"cluster-resp-addr", c.ClusterRESPAddr})
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
	errs = append(errs, c.validateSecurity()...)
	if c.VotersMax < 1 || c.VotersMax > coordinator.MaxVoters {
		bad("voters-max %d must be in [1, %d]", c.VotersMax, coordinator.MaxVoters)
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > coordinator.MaxReplicationFactor {
		bad("replication-factor %d must be in [1, %d]", c.ReplicationFactor, coordinator.MaxReplicationFactor)
	}
	if c.MinReplicasToWrite < 0 || c.MinReplicasToWrite > replica.ReplicasToWriteLimit {
		bad("min-replicas-to-write %d must be in [0, %d]", c.MinReplicasToWrite, replica.ReplicasToWriteLimit)
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
	if _, err := failpoint.Parse(c.Failpoints); err != nil {
		bad("%v", err)
	}
	if c.GossipProfile != "lan" && c.GossipProfile != "local" {
		bad("gossip profile %q: want lan or local", c.GossipProfile)
	}
	if c.ShutdownTimeout < MinShutdownTimeout || c.ShutdownTimeout > MaxShutdownTimeout {
		bad("shutdown-timeout %s must be in [%s, %s]", c.ShutdownTimeout, MinShutdownTimeout, MaxShutdownTimeout)
	}
	if c.MoveBytesPerSec < -1 {
		bad("move-rate %d must be at least -1 (-1: keep the cluster's, 0: unlimited)", c.MoveBytesPerSec)
	}
	if c.ClientInputBytesMax < MinClientBytes {
		bad("client-input-bytes-max %d must be at least %d (1 MiB)", c.ClientInputBytesMax, MinClientBytes)
	}
	switch {
	case c.ClientQueryBufferBytesMax < MinClientBytes:
		bad("client-query-buffer-bytes-max %d must be at least %d (1 MiB)", c.ClientQueryBufferBytesMax, MinClientBytes)
	case c.ClientQueryBufferBytesMax < c.Server.KeyBytesMax+c.Server.ValueBytesMax+1024:
		bad("client-query-buffer-bytes-max %d must hold the largest key and value of one request (%d)",
			c.ClientQueryBufferBytesMax, c.Server.KeyBytesMax+c.Server.ValueBytesMax+1024)
	case int64(c.ClientQueryBufferBytesMax) > c.ClientInputBytesMax && c.ClientInputBytesMax >= MinClientBytes:
		bad("client-query-buffer-bytes-max %d must be at most client-input-bytes-max %d (lower it too)", c.ClientQueryBufferBytesMax, c.ClientInputBytesMax)
	}
	if v := c.Server.SlowlogLogSlowerThanUsec; v < -1 {
		bad("slowlog-log-slower-than %d must be -1 (off) or more", v)
	}
	if v := c.Server.SlowlogMaxLen; v < 0 || v > server.SlowlogLenMax {
		bad("slowlog-max-len %d must be in [0, %d]", v, server.SlowlogLenMax)
	}
	if v := c.Server.LatencyMonitorThresholdMs; v < 0 || v > server.LatencyThresholdMsMax {
		bad("latency-monitor-threshold %d must be in [0, %d] ms", v, server.LatencyThresholdMsMax)
	}
	if c.Version == "" {
		bad("Version must be set")
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

// DefaultClientInputBytesMax is ClientInputBytesMax's default: 1/8 of the
// machine's memory (MemTotal of /proc/meminfo, read once; 1 GiB when it
// cannot be read), at least 64 MiB and at most 4 GiB.
func DefaultClientInputBytesMax() int64 { return clientInputBytesMaxFor(memTotal()) }

var memTotal = sync.OnceValue(func() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return fallbackMemTotal
	}
	defer f.Close()
	if n, ok := parseMemTotal(f); ok {
		return n
	}
	return fallbackMemTotal
})

const fallbackMemTotal = 1 << 30

// parseMemTotal reads the MemTotal line ("MemTotal:  16314384 kB") of
// /proc/meminfo, in bytes.
func parseMemTotal(r io.Reader) (int64, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n <= 0 {
			return 0, false
		}
		mult := int64(1)
		if len(f) > 1 {
			switch strings.ToLower(f[1]) {
			case "kb":
				mult = 1 << 10
			case "mb":
				mult = 1 << 20
			case "gb":
				mult = 1 << 30
			default:
				return 0, false
			}
		}
		if n > (1<<62)/mult {
			return 0, false
		}
		return n * mult, true
	}
	return 0, false
}

func clientInputBytesMaxFor(memTotal int64) int64 {
	return min(max(memTotal/8, 64<<20), 4<<30)
}

// redactedValue replaces a set secret in Redacted, String and LogValue.
const redactedValue = "<redacted>"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redactedValue
}

// Redacted returns a copy of c with every secret that is set (GossipKey,
// RequirePass, AdminToken, ClusterSecret, Server.RequirePass) replaced by
// "<redacted>" and Transport.PeerAuth dropped: safe to log or print. Not
// for Start.
func (c Config) Redacted() Config {
	c.GossipKey = redact(c.GossipKey)
	c.RequirePass = redact(c.RequirePass)
	c.AdminToken = redact(c.AdminToken)
	c.ClusterSecret = redact(c.ClusterSecret)
	c.Transport.PeerAuth = nil
	c.Server.RequirePass = redact(c.Server.RequirePass)
	c.Join = slices.Clone(c.Join)
	return c
}

// LogValue implements slog.LogValuer: the node's own settings as a group,
// secrets shown as "<redacted>" when set (empty when not), so
// log.Info("...", "config", cfg) never prints one.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.String("id", r.ID),
		slog.String("data_dir", r.DataDir),
		slog.String("resp_addr", r.RESPAddr),
		slog.String("rpc_addr", r.RPCAddr),
		slog.String("gossip_addr", r.GossipAddr),
		slog.String("http_addr", r.HTTPAddr),
		slog.String("advertise_host", r.AdvertiseHost),
		slog.String("join", strings.Join(r.Join, ",")),
		slog.Duration("join_timeout", r.JoinTimeout),
		slog.Float64("weight", r.Weight),
		slog.String("gossip_key", r.GossipKey),
		slog.String("requirepass", r.RequirePass),
		slog.String("admin_token", r.AdminToken),
		slog.String("cluster_secret", r.ClusterSecret),
		slog.String("tls_cert_file", r.TLSCertFile),
		slog.String("tls_client_ca_file", r.TLSClientCAFile),
		slog.String("tls_resp_addr", r.TLSRESPAddr),
		slog.String("peer_cert_file", r.PeerCertFile),
		slog.String("peer_ca_file", r.PeerCAFile),
		slog.String("sync", r.Sync),
		slog.Int("voters_max", r.VotersMax),
		slog.Int("replication_factor", r.ReplicationFactor),
		slog.Int("min_replicas_to_write", r.MinReplicasToWrite),
		slog.Int("txn_keys_max", r.TxnKeysMax),
		slog.Duration("txn_deadline", r.TxnDeadline),
		slog.Int("move_concurrency", r.MoveConcurrency),
		slog.Int64("move_bytes_per_sec", r.MoveBytesPerSec),
		slog.String("failpoints", r.Failpoints),
		slog.Int("snapshot_retention", r.SnapshotRetention),
		slog.Duration("snapshot_orphan_age", r.SnapshotOrphanAge),
		slog.String("gossip_profile", r.GossipProfile),
		slog.Duration("shutdown_timeout", r.ShutdownTimeout),
		slog.Bool("force_recover", r.ForceRecover),
		slog.Int64("client_input_bytes_max", r.ClientInputBytesMax),
		slog.Int("client_query_buffer_bytes_max", r.ClientQueryBufferBytesMax),
	)
}

// String implements fmt.Stringer (%v, %+v, %s) with LogValue's fields, so a
// printed Config never shows a secret.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("node.Config{")
	for i, a := range c.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", a.Key, a.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// GoString implements fmt.GoStringer (%#v) as String.
func (c Config) GoString() string { return c.String() }

// clusterRESPAddr is ClusterRESPAddr, or its default derived from RESPAddr.
func (c *Config) clusterRESPAddr() (string, error) {
	if c.ClusterRESPAddr != "" {
		return c.ClusterRESPAddr, nil
	}
	h, p, err := net.SplitHostPort(c.RESPAddr)
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", err
	}
	if port == 0 || port+10000 > 65535 {
		return net.JoinHostPort(h, "0"), nil // any free port; it is advertised
	}
	return net.JoinHostPort(h, strconv.Itoa(port+10000)), nil
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
