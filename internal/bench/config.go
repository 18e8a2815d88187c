package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors returned by Validate and Run; classify them with errors.Is.
var (
	// ErrInvalidConfig wraps every problem Validate reports.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNotSupported means the server lacks what the workload needs: the
	// txn workload against a server that answers MULTI with "unknown
	// command".
	ErrNotSupported = errors.New("not supported by the server")
	// ErrUnreachable means at least one address refused a TCP connection;
	// the message lists each one.
	ErrUnreachable = errors.New("unreachable")
	// ErrInterrupted is returned with the partial Result when ctx was
	// cancelled before the run finished.
	ErrInterrupted = errors.New("interrupted")
	// ErrTxnAborted is the error counted for a transaction whose EXEC
	// answered nil (the server aborted it, as after a failed WATCH).
	ErrTxnAborted = errors.New("transaction aborted: EXEC answered nil")
)

// Workload names.
const (
	WorkloadSet   = "set"
	WorkloadGet   = "get"
	WorkloadMixed = "mixed"  // a YCSB core mix of GET and SET: Config.Mix
	WorkloadYCSBA = "ycsb-a" // alias of mixed with mix A
	WorkloadYCSBB = "ycsb-b" // alias of mixed with mix B
	WorkloadYCSBC = "ycsb-c" // alias of mixed with mix C
	WorkloadYCSBF = "ycsb-f" // alias of mixed with mix F
	WorkloadMSet  = "mset"   // MSET of MSetKeys keys
	WorkloadTxn   = "txn"    // MULTI, TxnKeys SETs, EXEC
)

// Workloads lists every workload name Validate accepts.
var Workloads = []string{WorkloadSet, WorkloadGet, WorkloadMixed, WorkloadYCSBA, WorkloadYCSBB, WorkloadYCSBC, WorkloadYCSBF, WorkloadMSet, WorkloadTxn}

// Mixes of the mixed workload (Config.Mix), after YCSB's core workloads.
const (
	MixA = "A" // 50% GET, 50% SET (update heavy)
	MixB = "B" // 95% GET, 5% SET (read mostly)
	MixC = "C" // 100% GET (read only)
	MixF = "F" // 50% GET, 50% read-modify-write (GET, then SET of that key)
)

// Mixes lists every mix Validate accepts (in either case).
var Mixes = []string{MixA, MixB, MixC, MixF}

// mixAliases maps the ycsb-* workload names to their mix.
var mixAliases = map[string]string{WorkloadYCSBA: MixA, WorkloadYCSBB: MixB, WorkloadYCSBC: MixC, WorkloadYCSBF: MixF}

// Key distributions.
const (
	DistUniform = "uniform"
	DistZipfian = "zipfian"
)

// Bounds that Validate enforces.
const (
	clientsMax     = 10_000
	keysMax        = 1_000_000_000
	valueBytesMax  = 16 << 20
	pipelineMax    = 1_000
	msetKeysMax    = 1_000
	txnKeysMax     = 64
	labelBytesMax  = 128
	batchBytesMax  = 64 << 20 // one worker's pipelined payload: pipeline × msetKeys × valueBytes
	requestsMax    = 1 << 40
	errorMsgsMax   = 5 // distinct error messages kept
	dialTimeoutMax = 2 * time.Second
)

// Config describes one benchmark run. Start from DefaultConfig.
type Config struct {
	// Addrs are the RESP servers, host:port. Without Cluster, workers are
	// spread over them round-robin; with Cluster they are the seeds.
	Addrs []string
	// Cluster routes like a cluster-aware client (go-redis ClusterClient).
	Cluster bool
	// Password is sent with AUTH (user "default") on every connection.
	Password string
	// TLS, when set, makes every connection speak TLS with it (dbx's
	// --tls-cert ports, Redis's tls-port).
	TLS *tls.Config
	// Workload is one of Workloads. Default "set".
	Workload string
	// Clients is the number of concurrent workers, one connection each.
	// Default 50.
	Clients int
	// Requests bounds the measured operations; 0 means bounded by Duration
	// only. Default 100,000.
	Requests int64
	// Duration bounds the measured phase; 0 means bounded by Requests only.
	// At least one of Requests and Duration must be set.
	Duration time.Duration
	// Warmup runs the workload unrecorded for this long first. Default 0.
	Warmup time.Duration
	// Load sets every key once (SET, pipelined) before warmup.
	Load bool
	// Keys is the key space: key:0 … key:Keys-1. Default 100,000.
	Keys int64
	// Distribution picks keys: "uniform" (default) or "zipfian" (θ = 0.99).
	Distribution string
	// ValueBytes is the size of every value written. Default 64.
	ValueBytes int
	// Pipeline is the number of operations per round trip. Default 1.
	Pipeline int
	// MSetKeys is the keys per MSET for the mset workload. Default 10.
	MSetKeys int
	// Mix is the mixed workload's mix, one of Mixes; empty means A. The
	// ycsb-a, -b, -c and -f workloads name their mix themselves and take
	// no Mix.
	Mix string
	// TxnKeys is the keys each transaction of the txn workload writes
	// (MULTI, TxnKeys SETs of ValueBytes, EXEC), at most 64. Default 2.
	TxnKeys int
	// CrossNode makes every transaction write keys owned by different
	// nodes (as many as there are nodes, round-robin beyond that), by the
	// CLUSTER SLOTS of Addrs[0]. Run fails with ErrInvalidConfig when the
	// server is not a cluster of at least two nodes.
	CrossNode bool
	// SameNode makes every transaction write keys owned by one node (a
	// one-phase commit in dbx), by the CLUSTER SLOTS of Addrs[0].
	SameNode bool
	// Label names the run in reports and in --compare. Optional.
	Label string
	// Seed makes key and operation choice reproducible. Worker i uses
	// Seed+i; the order in which servers see them still varies.
	Seed uint64
	// Timeout bounds dialing (at most 2 s for the reachability check), each
	// read and each write. Default 5 s.
	Timeout time.Duration
	// ProgressInterval is the period of the status lines Run writes to its
	// progress writer. Default 1 s.
	ProgressInterval time.Duration
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		Workload:         WorkloadSet,
		Clients:          50,
		Requests:         100_000,
		Keys:             100_000,
		Distribution:     DistUniform,
		ValueBytes:       64,
		Pipeline:         1,
		MSetKeys:         10,
		TxnKeys:          2,
		Seed:             1,
		Timeout:          5 * time.Second,
		ProgressInterval: time.Second,
	}
}

// Validate reports every problem at once, each wrapped in ErrInvalidConfig.
// What needs the server (MULTI support, CLUSTER SLOTS for CrossNode and
// SameNode) is checked by Run.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if len(c.Addrs) == 0 {
		bad("at least one address is required (--addrs host:port,...)")
	}
	for _, a := range c.Addrs {
		if err := checkAddr(a); err != nil {
			bad("address %q: %v", a, err)
		}
	}
	if !slices.Contains(Workloads, c.Workload) {
		bad("workload %q is unknown (want one of %s)", c.Workload, strings.Join(Workloads, ", "))
	}
	switch {
	case c.Mix != "" && !slices.Contains(Mixes, strings.ToUpper(c.Mix)):
		bad("mix %q is unknown (want one of %s)", c.Mix, strings.Join(Mixes, ", "))
	case c.Mix != "" && c.Workload != WorkloadMixed:
		bad("mix %q applies to workload mixed only (workload %q)", c.Mix, c.Workload)
	}
	if c.TxnKeys < 1 || c.TxnKeys > txnKeysMax {
		bad("txn keys (%d) must be in [1, %d]", c.TxnKeys, txnKeysMax)
	} else if c.Workload == WorkloadTxn && int64(c.TxnKeys) > c.Keys && c.Keys >= 1 {
		bad("txn keys (%d) must not exceed keys (%d)", c.TxnKeys, c.Keys)
	}
	if (c.CrossNode || c.SameNode) && c.Workload != WorkloadTxn {
		bad("cross-node and same-node apply to workload txn only (workload %q)", c.Workload)
	}
	if c.CrossNode && c.SameNode {
		bad("cross-node and same-node exclude each other")
	}
	if c.CrossNode && c.TxnKeys == 1 {
		bad("cross-node needs txn keys >= 2 (txn keys 1)")
	}
	if c.Workload == WorkloadTxn && c.Cluster && c.Pipeline > 1 {
		bad("workload txn with cluster routing needs pipeline 1 (pipeline %d): each transaction goes to its first key's owner", c.Pipeline)
	}
	if len(c.Label) > labelBytesMax || strings.ContainsAny(c.Label, "\r\n") {
		bad("label must be one line of at most %d bytes", labelBytesMax)
	}
	if c.Clients < 1 || c.Clients > clientsMax {
		bad("clients (%d) must be in [1, %d]", c.Clients, clientsMax)
	}
	if c.Requests < 0 || c.Requests > requestsMax {
		bad("requests (%d) must be in [0, %d]", c.Requests, int64(requestsMax))
	}
	if c.Duration < 0 {
		bad("duration (%s) must not be negative", c.Duration)
	}
	if c.Requests == 0 && c.Duration == 0 {
		bad("one of requests and duration must be set: every run is bounded")
	}
	if c.Warmup < 0 {
		bad("warmup (%s) must not be negative", c.Warmup)
	}
	if c.Keys < 1 || c.Keys > keysMax {
		bad("keys (%d) must be in [1, %d]", c.Keys, keysMax)
	}
	if c.Distribution != DistUniform && c.Distribution != DistZipfian {
		bad("distribution %q is unknown (want %s or %s)", c.Distribution, DistUniform, DistZipfian)
	}
	if c.ValueBytes < 0 || c.ValueBytes > valueBytesMax {
		bad("value bytes (%d) must be in [0, %d]", c.ValueBytes, valueBytesMax)
	}
	if c.Pipeline < 1 || c.Pipeline > pipelineMax {
		bad("pipeline (%d) must be in [1, %d]", c.Pipeline, pipelineMax)
	}
	if c.MSetKeys < 1 || c.MSetKeys > msetKeysMax {
		bad("mset keys (%d) must be in [1, %d]", c.MSetKeys, msetKeysMax)
	} else if c.Workload == WorkloadMSet && int64(c.MSetKeys) > c.Keys && c.Keys >= 1 {
		bad("mset keys (%d) must not exceed keys (%d)", c.MSetKeys, c.Keys)
	}
	perOp := int64(1)
	switch c.Workload {
	case WorkloadMSet:
		perOp = int64(c.MSetKeys)
	case WorkloadTxn:
		perOp = int64(c.TxnKeys)
	}
	if b := int64(c.Pipeline) * perOp * int64(c.ValueBytes); b > batchBytesMax {
		bad("pipeline (%d) × keys per op (%d) × value bytes (%d) = %d must be at most %d", c.Pipeline, perOp, c.ValueBytes, b, batchBytesMax)
	}
	if c.Timeout <= 0 {
		bad("timeout (%s) must be positive", c.Timeout)
	}
	if c.ProgressInterval <= 0 {
		bad("progress interval (%s) must be positive", c.ProgressInterval)
	}
	return errors.Join(errs...)
}

// mix is the effective mix of a mixed or ycsb-* workload, "" for others.
func (c *Config) mix() string {
	if m, ok := mixAliases[c.Workload]; ok {
		return m
	}
	if c.Workload != WorkloadMixed {
		return ""
	}
	if c.Mix == "" {
		return MixA
	}
	return strings.ToUpper(c.Mix)
}

func checkAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q must be in [1, 65535]", port)
	}
	return nil
}
