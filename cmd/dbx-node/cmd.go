package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dbx-kv/dbx/node"
	"github.com/dbx-kv/dbx/server"
)

// envPrefix prefixes the environment variable of every flag: --data-dir
// is also read from DBX_DATA_DIR. A flag given on the command line wins.
const envPrefix = "DBX_"

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment variable, reporting every bad value.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				shown := strconv.Quote(v)
				if server.IsSecretFlag(f.Name) {
					shown = server.Redacted
				}
				errs = append(errs, fmt.Errorf("%s=%s: %v", envName(f.Name), shown, err))
				return
			}
			fs.SetAnnotation(f.Name, envAnnotation, []string{envName(f.Name)})
		}
	})
	return errors.Join(errs...)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "dbx-node",
		Short:         "dbx clustered key-value store node",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return applyConfigFile(cmd.Flags())
		},
		Version: versionLine(),
	}
	root.SetVersionTemplate(buildVersion())
	root.AddCommand(newServeCmd(), newStatusCmd(), newDrainCmd(), newReweightCmd(), newLimitsCmd(), newSnapshotCmd(), newRestoreCmd(), newVersionCmd(), newHealthcheckCmd())
	return root
}

// Valid values of --log-level and --log-format.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// newLogger builds the serve logger, refusing unknown levels and formats.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var errs []error
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "info":
		lv = slog.LevelInfo
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want one of %s", level, strings.Join(logLevels, ", ")))
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: want one of %s", format, strings.Join(logFormats, ", ")))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return slog.New(h), nil
}

// exitError ends the process with code after its cause was logged: main
// prints nothing more.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// awaitClose runs closeFn (the node's Close) and waits for it at most
// timeout: past it, or at a signal on sigs (a second SIGTERM/SIGINT), it
// logs an error and returns an *exitError at once (main exits 1; closeFn
// may still be running). Otherwise it returns closeFn's error.
func awaitClose(log *slog.Logger, closeFn func() error, timeout time.Duration, sigs <-chan os.Signal) error {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- closeFn() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
		log.Info("shut down", "took", time.Since(start).Round(time.Millisecond))
		return nil
	case <-t.C:
		log.Error("shutdown did not finish within the shutdown timeout; exiting without waiting", "shutdown_timeout", timeout)
		return &exitError{code: 1, msg: fmt.Sprintf("shutdown did not finish within --shutdown-timeout %s", timeout)}
	case s := <-sigs:
		log.Error("second signal during shutdown; exiting at once", "signal", s.String(), "waited", time.Since(start).Round(time.Millisecond))
		return &exitError{code: 1, msg: fmt.Sprintf("%s during shutdown", s)}
	}
}

func newServeCmd() *cobra.Command {
	cfg := node.DefaultConfig()
	var join []string
	var logLevel, logFormat string
	var secrets []*secretFlag
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a node (without --join it bootstraps a new cluster)",
		Long: "Run a node. Every flag is also read from the environment as DBX_<FLAG>, e.g.\n" +
			"DBX_ID, DBX_DATA_DIR, DBX_JOIN (comma-separated), and from the TOML file\n" +
			"--config names (keys are flag names: resp-addr = \"0.0.0.0:6379\"); the command\n" +
			"line wins over the environment, which wins over the file.\n" +
			"--join takes gossip addresses (--gossip-addr) of any members.\n\n" +
			"Secrets: a flag's value is visible to every user in ps. Give --requirepass,\n" +
			"--admin-token and --gossip-key in a file (--requirepass-file F, ..., trailing\n" +
			"newline removed, keep it chmod 600) or in the environment (DBX_REQUIREPASS,\n" +
			"DBX_ADMIN_TOKEN, DBX_GOSSIP_KEY); a flag and its -file together are refused.\n" +
			"--cluster-secret-file makes every RPC + Raft connection prove the cluster secret.\n\n" +
			"TLS: --tls-cert/--tls-key put TLS on the RESP and admin ports, --peer-cert/--peer-key/\n" +
			"--peer-ca mutual TLS on the RPC + Raft port. SIGHUP (or a change of the files) reloads\n" +
			"the certificates without a restart.\n\n" +
			"On SIGTERM/SIGINT the node closes; if that takes longer than --shutdown-timeout\n" +
			"(or a second signal comes) the process logs it and exits 1 at once.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Join = nil
			for _, j := range join {
				if j = strings.TrimSpace(j); j != "" {
					cfg.Join = append(cfg.Join, j)
				}
			}
			// Every problem at once: log flags, secret files, the config.
			var errs []error
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				errs = append(errs, err)
			}
			var warnings [][]any
			warn := func(msg string, args ...any) { warnings = append(warnings, append([]any{msg}, args...)) }
			for _, s := range secrets {
				if err := s.resolve(cmd.Flags(), warn); err != nil {
					errs = append(errs, err)
				}
			}
			cfg.Logger = logger
			cfg.Version = strings.TrimPrefix(versionLine(), "dbx-node ")
			if err := cfg.Validate(); err != nil {
				errs = append(errs, err)
			}
			if len(errs) > 0 {
				return fmt.Errorf("invalid flags:\n  %s", strings.ReplaceAll(errors.Join(errs...).Error(), "\n", "\n  "))
			}
			for _, w := range warnings {
				logger.Warn(w[0].(string), w[1:]...)
			}
			logger.Info("dbx-node starting", "version", strings.TrimPrefix(versionLine(), "dbx-node "), "pid", os.Getpid(), "config", cfg)

			// One signal channel for the whole run: the first signal
			// cancels the start or begins the shutdown, a second one
			// (buffered here meanwhile) ends the process at once.
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			first := make(chan os.Signal, 1)
			go func() {
				select {
				case s := <-sigs:
					first <- s
					cancel()
				case <-ctx.Done():
				}
			}()
			// SIGHUP reloads the TLS files; caught from before Start so
			// one sent early does not kill the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			n, err := node.Start(ctx, cfg)
			if err != nil {
				return err
			}
			var s os.Signal
			for s == nil {
				select {
				case s = <-first:
				case <-hup:
					if err := n.ReloadTLS(); err != nil {
						logger.Error("SIGHUP: tls reload failed; the certificates in force stay", "err", err)
					} else {
						logger.Info("SIGHUP: tls files reloaded")
					}
				}
			}
			logger.Info("signal received, shutting down", "signal", s.String(), "shutdown_timeout", cfg.ShutdownTimeout)
			return awaitClose(logger, n.Close, cfg.ShutdownTimeout, sigs)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "TOML file of settings (keys are these flags' names; flags and DBX_* override it), e.g. deploy/dbx.toml")
	f.StringVar(&cfg.ID, "id", "", "unique, stable node ID (required)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "data directory (required)")
	f.StringVar(&cfg.RESPAddr, "resp-addr", cfg.RESPAddr, "RESP (Redis protocol) listen address")
	f.StringVar(&cfg.ClusterRESPAddr, "cluster-resp-addr", "", "RESP address advertised to cluster clients (CLUSTER SLOTS), where SCAN/DBSIZE are per node (default: resp-addr port + 10000)")
	f.StringVar(&cfg.RPCAddr, "rpc-addr", cfg.RPCAddr, "node-to-node RPC + Raft listen address")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "gossip (memberlist) listen address, TCP and UDP")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "admin HTTP API listen address")
	f.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "host announced to others (needed when listening on 0.0.0.0)")
	f.StringSliceVar(&join, "join", nil, "gossip addresses H:P,... of cluster members to join (empty: bootstrap)")
	f.Float64Var(&cfg.Weight, "weight", cfg.Weight, "placement weight, in (0, 100]")
	secrets = append(secrets,
		addSecretFlag(f, &cfg.GossipKey, "gossip-key", "base64 16/24/32-byte key encrypting gossip"),
		addSecretFlag(f, &cfg.RequirePass, "requirepass", "RESP password (AUTH)"),
		addSecretFlag(f, &cfg.AdminToken, "admin-token", "bearer token required by the admin API"),
		addSecretFlag(f, &cfg.ClusterSecret, "cluster-secret", "cluster secret every RPC + Raft connection proves with an HMAC handshake (16..4096 bytes, the same on every node; e.g. openssl rand -base64 32)"))
	f.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate of the RESP and admin ports: they speak TLS (1.3+) with it")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.TLSClientCAFile, "tls-client-ca", "", "PEM CA bundle: the TLS ports require client certificates chaining to it")
	f.StringVar(&cfg.TLSRESPAddr, "tls-resp-addr", "", "serve TLS RESP on this address and keep --resp-addr plain (migration); without it --resp-addr is TLS only")
	f.StringVar(&cfg.PeerCertFile, "peer-cert", "", "PEM certificate this node presents to its peers (mutual TLS on --rpc-addr; needs --peer-key and --peer-ca)")
	f.StringVar(&cfg.PeerKeyFile, "peer-key", "", "PEM private key of --peer-cert")
	f.StringVar(&cfg.PeerCAFile, "peer-ca", "", "PEM CA bundle every peer's certificate must chain to")
	f.DurationVar(&cfg.TLSReloadInterval, "tls-reload-interval", cfg.TLSReloadInterval, "how often the TLS files are checked for changes (SIGHUP reloads at once)")
	f.StringVar(&cfg.Sync, "sync", cfg.Sync, "WAL sync mode: always, interval or none")
	f.IntVar(&cfg.VotersMax, "voters-max", cfg.VotersMax, "number of Raft voters (1..5)")
	f.IntVar(&cfg.ReplicationFactor, "replication-factor", cfg.ReplicationFactor, "nodes holding each bucket (1..7), set when the cluster is bootstrapped")
	f.IntVar(&cfg.MinReplicasToWrite, "min-replicas-to-write", cfg.MinReplicasToWrite, "backups a bucket's in-sync set needs for writes (else NOREPLICAS)")
	f.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "how long to try joining at start")
	f.IntVar(&cfg.TxnKeysMax, "txn-keys-max", cfg.TxnKeysMax, "most distinct keys in one transaction (MULTI/EXEC, MSET, MSETNX, DEL)")
	f.DurationVar(&cfg.TxnDeadline, "txn-deadline", cfg.TxnDeadline, "transaction deadline; past it EXEC reports abort, or an unknown outcome once commit was requested")
	f.IntVar(&cfg.MoveConcurrency, "move-concurrency", 0, "set the cluster's bucket moves at once (0: keep; changeable with dbx-node limits)")
	f.Int64Var(&cfg.MoveBytesPerSec, "move-rate", -1, "set the cluster's bytes/s per bucket move (0: unlimited, -1: keep)")
	f.IntVar(&cfg.SnapshotRetention, "snapshot-retention", cfg.SnapshotRetention, "global snapshots the cluster keeps (applied by the leader after each take)")
	f.StringVar(&cfg.Failpoints, "failpoints", "", "fault tests only: name[:n],... kill this process at the n-th hit")
	_ = f.MarkHidden("failpoints")
	f.DurationVar(&cfg.SnapshotOrphanAge, "snapshot-orphan-age", cfg.SnapshotOrphanAge, "release a snapshot checkpoint no committed manifest lists after this long")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "after SIGTERM/SIGINT, exit 1 if closing takes longer (1s..10m)")
	f.BoolVar(&cfg.ForceRecover, "force-recover", false, "start even when the engine finds a live WAL the manifest names missing (the lost writes are reported)")
	f.Int64Var(&cfg.ClientInputBytesMax, "client-input-bytes-max", cfg.ClientInputBytesMax, "bytes of client input buffered across all connections (default: 1/8 of memory, 64 MiB..4 GiB; at least 1 MiB)")
	f.IntVar(&cfg.ClientQueryBufferBytesMax, "client-query-buffer-bytes-max", cfg.ClientQueryBufferBytesMax, "bytes one connection's query buffer may hold (1 MiB..client-input-bytes-max)")
	f.Int64Var(&cfg.Server.SlowlogLogSlowerThanUsec, "slowlog-log-slower-than", cfg.Server.SlowlogLogSlowerThanUsec, "commands taking at least this many µs go to SLOWLOG (0: all, -1: none; CONFIG SET changes it)")
	f.IntVar(&cfg.Server.SlowlogMaxLen, "slowlog-max-len", cfg.Server.SlowlogMaxLen, fmt.Sprintf("entries SLOWLOG keeps (0..%d)", server.SlowlogLenMax))
	f.Int64Var(&cfg.Server.LatencyMonitorThresholdMs, "latency-monitor-threshold", cfg.Server.LatencyMonitorThresholdMs, "LATENCY records commands taking at least this many ms (0: off)")
	f.StringVar(&logLevel, "log-level", "info", "log level: "+strings.Join(logLevels, ", "))
	f.StringVar(&logFormat, "log-format", "text", "log format: "+strings.Join(logFormats, " or "))
	return cmd
}

// admin is a client of a node's admin API.
type admin struct {
	addr, token          string
	caFile, cert, keyPEM string
	hc                   *http.Client
}

// adminFlags adds --http, --token and --token-file to cmd; the token file
// is read before cmd runs (PreRunE).
func adminFlags(cmd *cobra.Command) *admin {
	a := &admin{hc: &http.Client{Timeout: 15 * time.Second}}
	cmd.Flags().StringVar(&a.addr, "http", node.DefaultHTTPAddr, "admin API address H:P of any node")
	tok := addSecretFlag(cmd.Flags(), &a.token, "token", "admin token (bearer)")
	cmd.Flags().StringVar(&a.caFile, "cacert", "", "PEM CA bundle to verify a TLS admin port with (implies https)")
	cmd.Flags().StringVar(&a.cert, "cert", "", "PEM client certificate, for a node with --tls-client-ca")
	cmd.Flags().StringVar(&a.keyPEM, "cert-key", "", "PEM private key of --cert")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := tok.resolve(cmd.Flags(), func(msg string, args ...any) {
			fmt.Fprintln(cmd.ErrOrStderr(), append([]any{"dbx-node: warning:", msg}, args...)...)
		}); err != nil {
			return err
		}
		return a.setupTLS()
	}
	return a
}

// setupTLS makes the client speak https when --cacert or --cert is given.
func (a *admin) setupTLS() error {
	if a.caFile == "" && a.cert == "" && a.keyPEM == "" {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.caFile != "" {
		b, err := os.ReadFile(a.caFile)
		if err != nil {
			return fmt.Errorf("--cacert: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return fmt.Errorf("--cacert: %s holds no PEM certificate", a.caFile)
		}
	}
	if (a.cert == "") != (a.keyPEM == "") {
		return errors.New("--cert and --cert-key go together")
	}
	if a.cert != "" {
		c, err := tls.LoadX509KeyPair(a.cert, a.keyPEM)
		if err != nil {
			return fmt.Errorf("--cert/--cert-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	a.hc.Transport = &http.Transport{TLSClientConfig: tc}
	if !strings.Contains(a.addr, "://") {
		a.addr = "https://" + a.addr
	}
	return nil
}

func (a *admin) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	addr := a.addr
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequest(method, addr+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type clusterInfo struct {
	Epoch  uint64 `json:"epoch"`
	Leader string `json:"leader"`
	Self   string `json:"self"`
	Nodes  []struct {
		ID       string  `json:"id"`
		Weight   float64 `json:"weight"`
		State    string  `json:"state"`
		Health   string  `json:"health"`
		Buckets  int     `json:"buckets"`
		Replicas int     `json:"replicas"`
		RespAddr string  `json:"resp_addr"`
		HTTPAddr string  `json:"http_addr"`
	} `json:"nodes"`
	ClusterState      string        `json:"cluster_state"`
	BucketsFail       int           `json:"buckets_fail"`
	ReplicationFactor int           `json:"replication_factor"`
	UnderReplicated   int           `json:"under_replicated"`
	Failovers         int64         `json:"failovers"`
	Migration         migrationInfo `json:"migration"`
}

type migrationInfo struct {
	Active      bool    `json:"active"`
	Pending     int     `json:"pending"`
	Moving      int     `json:"moving"`
	Done        int     `json:"done"`
	Total       int     `json:"total"`
	Bytes       int64   `json:"bytes"`
	ETASeconds  float64 `json:"eta_seconds"`
	Concurrency int     `json:"concurrency"`
	BytesPerSec int64   `json:"bytes_per_sec"`
	Waiting     string  `json:"waiting"`
}

func (m migrationInfo) String() string {
	rate := "unlimited"
	if m.BytesPerSec > 0 {
		rate = humanBytes(m.BytesPerSec) + "/s per move"
	}
	if !m.Active {
		return fmt.Sprintf("migration: none in progress (last: %d of %d buckets, %s); limits %d moves, %s",
			m.Done, m.Total, humanBytes(m.Bytes), m.Concurrency, rate)
	}
	eta := "unknown"
	if m.ETASeconds >= 0 {
		eta = (time.Duration(m.ETASeconds * float64(time.Second))).Round(time.Second).String()
	}
	s := fmt.Sprintf("migration: %d of %d buckets done, %d moving, %d pending, %s copied, ETA %s; limits %d moves, %s",
		m.Done, m.Total, m.Moving, m.Pending, humanBytes(m.Bytes), eta, m.Concurrency, rate)
	if m.Waiting != "" {
		s += "\n  stalled: " + m.Waiting
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// waitMigration polls /v1/cluster until done(ci) holds, drawing a progress
// bar on a terminal (a line every 2 s otherwise), for at most timeout.
func waitMigration(a *admin, out io.Writer, timeout time.Duration, done func(clusterInfo) bool) error {
	tty := isTerminal(out)
	deadline := time.Now().Add(timeout)
	var last time.Time
	for {
		var ci clusterInfo
		err := a.do(http.MethodGet, "/v1/cluster", nil, &ci)
		if err == nil && done(ci) {
			if tty {
				fmt.Fprintf(out, "\r%s\n", bar(ci.Migration))
			}
			fmt.Fprintln(out, ci.Migration)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s (last error: %v)", timeout, err)
		}
		if err == nil {
			switch {
			case tty:
				fmt.Fprintf(out, "\r%s", bar(ci.Migration))
			case time.Since(last) >= 2*time.Second:
				last = time.Now()
				fmt.Fprintln(out, ci.Migration)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// bar renders one line: [#####.....] done/total buckets, bytes, ETA.
func bar(m migrationInfo) string {
	const width = 30
	frac := 1.0
	if m.Total > 0 {
		frac = float64(m.Done) / float64(m.Total)
	}
	n := int(frac * width)
	eta := "?"
	if m.ETASeconds >= 0 {
		eta = (time.Duration(m.ETASeconds * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s%s] %5.1f%%  %d/%d buckets  %s  ETA %s   ",
		strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, m.Done, m.Total, humanBytes(m.Bytes), eta)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show members, weights, states, bucket counts, epoch, leader and migration progress",
		Args:  cobra.NoArgs,
	}
	a := adminFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON of /v1/cluster")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var ci clusterInfo
		if err := a.do(http.MethodGet, "/v1/cluster", nil, &ci); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(ci)
		}
		leader := ci.Leader
		if leader == "" {
			leader = "(none)"
		}
		fmt.Fprintf(out, "epoch %d   leader %s   answered by %s   cluster_state %s\n", ci.Epoch, leader, ci.Self, ci.ClusterState)
		if ci.ReplicationFactor > 1 {
			line := fmt.Sprintf("replication factor %d", ci.ReplicationFactor)
			if ci.UnderReplicated > 0 {
				line += fmt.Sprintf("   UNDER-REPLICATED: %d buckets have fewer in-sync replicas", ci.UnderReplicated)
			} else {
				line += "   every bucket fully replicated"
			}
			if ci.Failovers > 0 {
				line += fmt.Sprintf("   %d promotions to primary proposed by this leader", ci.Failovers)
			}
			fmt.Fprintln(out, line)
		}
		if ci.BucketsFail > 0 {
			fmt.Fprintf(out, "%d buckets have a failed primary: their keys are unavailable until it returns\n", ci.BucketsFail)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tHEALTH\tWEIGHT\tBUCKETS\tREPLICAS\tRESP\tHTTP\t")
		total := 0
		for _, nd := range ci.Nodes {
			mark := ""
			if nd.ID == ci.Leader {
				mark = " *"
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", nd.ID, mark, nd.State, nd.Health, strconv.FormatFloat(nd.Weight, 'g', -1, 64), nd.Buckets, nd.Replicas, nd.RespAddr, nd.HTTPAddr)
			total += nd.Buckets
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(out, "%d members, %d buckets placed\n%s\n", len(ci.Nodes), total, ci.Migration)
		return nil
	}
	return cmd
}

func newDrainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drain ID",
		Short: "Move every bucket off a node while it serves; it then leaves the cluster (state left)",
		Args:  cobra.ExactArgs(1),
	}
	a := adminFlags(cmd)
	var wait bool
	var waitTimeout time.Duration
	cmd.Flags().BoolVar(&wait, "wait", false, "show progress until the node has left")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 24*time.Hour, "give up waiting after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res struct {
			Epoch uint64 `json:"epoch"`
		}
		if err := a.do(http.MethodPost, "/v1/nodes/"+args[0]+"/drain", struct{}{}, &res); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "node %s draining (epoch %d)\n", args[0], res.Epoch)
		if !wait {
			return nil
		}
		err := waitMigration(a, out, waitTimeout, func(ci clusterInfo) bool {
			for _, nd := range ci.Nodes {
				if nd.ID == args[0] {
					return nd.State == "left" && !ci.Migration.Active
				}
			}
			return !ci.Migration.Active
		})
		if err == nil {
			fmt.Fprintf(out, "node %s has left\n", args[0])
		}
		return err
	}
	return cmd
}

func newReweightCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reweight ID W",
		Short: "Change a node's placement weight; only the difference moves",
		Args:  cobra.ExactArgs(2),
	}
	a := adminFlags(cmd)
	var wait bool
	var waitTimeout time.Duration
	cmd.Flags().BoolVar(&wait, "wait", false, "show progress until the buckets have moved")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 24*time.Hour, "give up waiting after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		w, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return fmt.Errorf("weight %q: %v", args[1], err)
		}
		var res struct {
			Epoch uint64 `json:"epoch"`
		}
		if err := a.do(http.MethodPost, "/v1/nodes/"+args[0]+"/weight", map[string]float64{"weight": w}, &res); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "node %s weight %s (epoch %d)\n", args[0], args[1], res.Epoch)
		if !wait {
			return nil
		}
		time.Sleep(time.Second) // the leader plans the new placement
		return waitMigration(a, out, waitTimeout, func(ci clusterInfo) bool { return !ci.Migration.Active })
	}
	return cmd
}

func newLimitsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "limits [--concurrency N] [--rate BYTES_PER_SEC]",
		Short: "Show or change the migration throttle (moves at once, bytes/s per move; 0 = unlimited)",
		Args:  cobra.NoArgs,
	}
	a := adminFlags(cmd)
	var conc int
	var rate int64
	cmd.Flags().IntVar(&conc, "concurrency", 0, "bucket moves at once (1..64)")
	cmd.Flags().Int64Var(&rate, "rate", 0, "bytes per second each move may copy (0: unlimited)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		body := map[string]any{}
		if cmd.Flags().Changed("concurrency") {
			body["concurrency"] = conc
		}
		if cmd.Flags().Changed("rate") {
			body["bytes_per_sec"] = rate
		}
		if len(body) > 0 {
			if err := a.do(http.MethodPost, "/v1/migration/limits", body, nil); err != nil {
				return err
			}
		}
		var ci clusterInfo
		if err := a.do(http.MethodGet, "/v1/cluster", nil, &ci); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), ci.Migration)
		return nil
	}
	return cmd
}
