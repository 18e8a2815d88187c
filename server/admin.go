package server

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ClusterInfo is the body of GET /v1/cluster, supplied by the node.
type ClusterInfo struct {
	Epoch  uint64 `json:"epoch"`
	Leader string `json:"leader"`
	Self   string `json:"self,omitempty"`
	// Version is the answering node's dbx-node version.
	Version string `json:"version,omitempty"`
	// ClusterState is CLUSTER INFO's cluster_state: "fail" while some
	// bucket's primary is failed (or unassigned); BucketsFail counts them.
	ClusterState string `json:"cluster_state"`
	BucketsFail  int    `json:"buckets_fail"`
	// ReplicationFactor is the cluster's (1: no replicas);
	// UnderReplicated counts buckets whose in-sync replica set is smaller
	// than it (fewer nodes than the factor, or a replica down or catching
	// up); Failovers counts the promotions of a replica to primary this
	// answering node proposed as metadata leader since it started (a
	// proposal retried counts again).
	ReplicationFactor int           `json:"replication_factor"`
	UnderReplicated   int           `json:"under_replicated"`
	Failovers         int64         `json:"failovers"`
	Nodes             []NodeInfo    `json:"nodes"`
	Migration         MigrationInfo `json:"migration"`
}

// NodeInfo is one member in ClusterInfo.
type NodeInfo struct {
	ID     string  `json:"id"`
	Weight float64 `json:"weight"`
	State  string  `json:"state"` // e.g. "active", "draining", "left"
	// Health is what this node's failure detection says: "online",
	// "pfail" (suspected), "fail".
	Health  string `json:"health"`
	Buckets int    `json:"buckets"`
	// Replicas counts the buckets it holds as a replica (not primary).
	Replicas int    `json:"replicas"`
	RespAddr string `json:"resp_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// Ranges are the bucket ranges the node is primary for, [start, end]
	// inclusive (what the status page draws).
	Ranges [][2]uint16 `json:"ranges,omitempty"`
}

// MigrationInfo is the bucket-move progress in ClusterInfo.
type MigrationInfo struct {
	// Active: a placement change is being carried out.
	Active bool `json:"active"`
	// Pending buckets wait for a move, Moving are in one, Done moved (of
	// Total) since the current change began; Bytes copied by done moves.
	Pending int   `json:"pending"`
	Moving  int   `json:"moving"`
	Done    int   `json:"done"`
	Total   int   `json:"total"`
	Bytes   int64 `json:"bytes"`
	// ETASeconds estimates the time left from the rate so far (-1: unknown).
	ETASeconds float64 `json:"eta_seconds"`
	// Waiting names the nodes the migration cannot proceed without (a
	// pending move's source or target failed): "waiting for n3 (failed):
	// 1488 buckets move from or to it". Empty when none.
	Waiting string `json:"waiting,omitempty"`
	// Concurrency and BytesPerSec are the throttle (0 bytes/s: unlimited).
	Concurrency int   `json:"concurrency"`
	BytesPerSec int64 `json:"bytes_per_sec"`
}

// AdminConfig configures the admin HTTP API.
type AdminConfig struct {
	// Token, if set, is required as "Authorization: Bearer <Token>" on every
	// endpoint but /healthz (401 otherwise).
	Token string
}

// Admin is the node's HTTP admin API. It is an http.Handler serving:
//
//	GET /v1/cluster     ClusterInfo as JSON (from the view func)
//	GET /metrics        Prometheus text of the registry
//	GET /healthz        200 "ok" once SetReady(true), 503 before, 503 "left: ..." after SetLeft (no token needed)
//	GET /               the status page (status.html: static, no data; it reads /v1/cluster with the token)
//	/debug/pprof/...    net/http/pprof
//
// plus whatever the node adds with Handle. Safe for concurrent use.
type Admin struct {
	cfg   AdminConfig
	mux   *http.ServeMux
	ready atomic.Bool
	left  atomic.Pointer[string]
}

// NewAdmin returns the admin API. view is called on every GET /v1/cluster and
// must not block for long; reg is the node's private registry (nil: an empty
// one). It returns *Admin rather than http.Handler so the node can flip
// readiness (SetReady) and add its own endpoints (Handle).
func NewAdmin(cfg AdminConfig, view func() ClusterInfo, reg *prometheus.Registry) *Admin {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a := &Admin{cfg: cfg, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if msg := a.left.Load(); msg != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("left: " + *msg + "\n"))
			return
		}
		if !a.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(statusPage)
	})
	a.Handle("GET /v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		info := view()
		if info.Nodes == nil {
			info.Nodes = []NodeInfo{}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(info)
	}))
	a.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	a.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
	a.Handle("/debug/pprof/cmdline", cmdlineHandler(func() []string { return os.Args }))
	a.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	a.Handle("/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	a.Handle("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	return a
}

// statusPage is the page served at /: plain HTML and a little JavaScript
// refreshing from /v1/cluster, no build step.
//
//go:embed status.html
var statusPage []byte

// cmdlineHandler serves /debug/pprof/cmdline as net/http/pprof does (the
// arguments, NUL-separated) but with RedactArgs applied, so a secret
// given on the command line is not shown.
func cmdlineHandler(args func() []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, strings.Join(RedactArgs(args()), "\x00"))
	})
}

// Redacted replaces a secret's value in RedactArgs.
const Redacted = "<redacted>"

// IsSecretFlag reports whether a flag name (dashes stripped) carries a
// secret: a password, token, secret or key (requirepass, admin-token,
// gossip-key, cluster-secret, token, ...). A "-file" flag names a path,
// not a secret, and so do the PEM key flags (tls-key, peer-key,
// cert-key).
func IsSecretFlag(name string) bool {
	name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	if name == "" || strings.HasSuffix(name, "-file") || pemKeyFlags[name] {
		return false
	}
	return strings.Contains(name, "pass") || strings.Contains(name, "token") ||
		strings.Contains(name, "secret") || name == "key" || strings.HasSuffix(name, "-key")
}

// pemKeyFlags name files holding private keys, not the keys themselves.
var pemKeyFlags = map[string]bool{"tls-key": true, "peer-key": true, "cert-key": true}

// RedactArgs returns a copy of a command line (os.Args) with the value of
// every secret flag replaced by Redacted: "--requirepass X" (the next
// argument, whatever it is, as pflag takes it), "--requirepass=X", and the
// single-dash forms. Arguments after "--" are kept.
func RedactArgs(args []string) []string {
	out := slices.Clone(args)
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		if !IsSecretFlag(name) {
			continue
		}
		switch {
		case hasValue:
			out[i] = a[:strings.IndexByte(a, '=')+1] + Redacted
		case i+1 < len(out):
			i++
			out[i] = Redacted
		}
	}
	return out
}

// SetReady sets what /healthz answers: 200 when ready, 503 otherwise.
func (a *Admin) SetReady(ready bool) { a.ready.Store(ready) }

// SetLeft makes /healthz answer 503 "left: <msg>" from now on: the node
// was drained and has left the cluster.
func (a *Admin) SetLeft(msg string) { a.left.Store(&msg) }

// Handle adds an endpoint (http.ServeMux pattern) behind the bearer token.
func (a *Admin) Handle(pattern string, h http.Handler) {
	a.mux.Handle(pattern, a.auth(h))
}

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *Admin) auth(h http.Handler) http.Handler {
	if a.cfg.Token == "" {
		return h
	}
	want := []byte("Bearer " + a.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		// Scheme is case-insensitive (RFC 9110); the token is not.
		if len(got) >= 7 && strings.EqualFold(got[:7], "Bearer ") {
			got = "Bearer " + got[7:]
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dbx"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
