package bench

import (
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
	// ErrNotSupported is a workload that exists by name but cannot run yet.
	ErrNotSupported = errors.New("not supported yet")
	// ErrUnreachable means at least one address refused a TCP connection;
	// the message lists each one.
	ErrUnreachable = errors.New("unreachable")
	// ErrInterrupted is returned with the partial Result when ctx was
	// cancelled before the run finished.
	ErrInterrupted = errors.New("interrupted")
)

// Workload names.
const (
	WorkloadSet   = "set"
	WorkloadGet   = "get"
	WorkloadYCSBA = "ycsb-a" // 50% GET, 50% SET
	WorkloadYCSBB = "ycsb-b" // 95% GET, 5% SET
	WorkloadYCSBC = "ycsb-c" // 100% GET
	WorkloadYCSBF = "ycsb-f" // 50% GET, 50% read-modify-write (GET then SET)
	WorkloadMSet  = "mset"   // MSET of MSetKeys keys
	WorkloadTxn   = "txn"    // reserved: needs MULTI/EXEC
)

// Workloads lists every workload name Validate accepts.
var Workloads = []string{WorkloadSet, WorkloadGet, WorkloadYCSBA, WorkloadYCSBB, WorkloadYCSBC, WorkloadYCSBF, WorkloadMSet, WorkloadTxn}

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
		Seed:             1,
		Timeout:          5 * time.Second,
		ProgressInterval: time.Second,
	}
}

// Validate reports every problem at once, each wrapped in ErrInvalidConfig
// (or ErrNotSupported for the txn workload).
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
	switch {
	case c.Workload == WorkloadTxn:
		errs = append(errs, fmt.Errorf("workload %q: %w: dbx does not implement MULTI/EXEC", c.Workload, ErrNotSupported))
	case !slices.Contains(Workloads, c.Workload):
		bad("workload %q is unknown (want one of %s)", c.Workload, strings.Join(Workloads, ", "))
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
	if c.Workload == WorkloadMSet {
		perOp = int64(c.MSetKeys)
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
