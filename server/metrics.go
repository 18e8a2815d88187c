package server

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dbx-kv/dbx/server/resp"
)

// Metrics are the RESP server's Prometheus collectors. Create them with
// NewMetrics on the node's registry and pass them in Config.Metrics.
//
//	dbx_resp_commands_total{cmd,result}       counter (result: ok|error)
//	dbx_resp_command_duration_seconds{cmd}    histogram
//	dbx_resp_errors_total{type}               counter (ERR, MOVED, NOAUTH, ...)
//	dbx_resp_connections                      gauge
//	dbx_resp_connections_total                counter (accepted)
//	dbx_resp_connections_rejected_total       counter (over ConnsMax)
//	dbx_client_input_bytes                    gauge (input buffers of all clients)
//	dbx_client_input_bytes_peak               gauge (the most at once since start)
//	dbx_client_input_bytes_max                gauge (Config.ClientInputBytesMax)
//	dbx_client_input_rejected_total{reason}   counter (protocol, query_buffer, node_memory, tls)
//	dbx_resp_panics_total                     counter (connections closed by a panic)
//	dbx_resp_input_bytes_total                counter (bytes read from clients)
//	dbx_resp_output_bytes_total               counter (bytes written to clients)
//
// cmd is a known command's lower-case name or "unknown", so label
// cardinality is bounded.
type Metrics struct {
	commands    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	conns       prometheus.Gauge
	connsTotal  prometheus.Counter
	connsRefuse prometheus.Counter
	rejected    *prometheus.CounterVec
	panics      prometheus.Counter
	budget      atomic.Pointer[resp.Budget]
	srv         atomic.Pointer[Server]
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dbx_resp_commands_total", Help: "RESP commands processed, by command and result.",
		}, []string{"cmd", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dbx_resp_command_duration_seconds",
			Help:    "RESP command latency inside the server (backend included), by command.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10), // 50µs .. ~13s
		}, []string{"cmd"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dbx_resp_errors_total", Help: "RESP error replies, by error type (first word).",
		}, []string{"type"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dbx_resp_connections", Help: "Open RESP client connections.",
		}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dbx_resp_connections_total", Help: "RESP client connections accepted.",
		}),
		connsRefuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dbx_resp_connections_rejected_total", Help: "RESP client connections refused over ConnsMax.",
		}),
	}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dbx_client_input_rejected_total",
		Help: "Client connections closed for their input: malformed (protocol), one request over the query buffer limit, or no room in the node-wide input budget.",
	}, []string{"reason"})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dbx_resp_panics_total", Help: "RESP connections closed because serving them panicked (logged with a stack).",
	})
	used := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dbx_client_input_bytes", Help: "Bytes of input buffers held by all RESP client connections.",
	}, func() float64 { return float64(m.budget.Load().Used()) })
	peak := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dbx_client_input_bytes_peak", Help: "The most bytes of client input buffers held at once since start.",
	}, func() float64 { return float64(m.budget.Load().Peak()) })
	maxG := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dbx_client_input_bytes_max", Help: "Bound on dbx_client_input_bytes (--client-input-bytes-max).",
	}, func() float64 { return float64(m.budget.Load().Max()) })
	netIn := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "dbx_resp_input_bytes_total", Help: "Bytes read from RESP clients.",
	}, func() float64 { in, _ := m.srv.Load().netBytes(); return float64(in) })
	netOut := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "dbx_resp_output_bytes_total", Help: "Bytes written to RESP clients.",
	}, func() float64 { _, out := m.srv.Load().netBytes(); return float64(out) })
	for _, r := range []string{"protocol", "query_buffer", "node_memory"} {
		m.rejected.WithLabelValues(r)
	}
	m.errors.WithLabelValues("ERR") // present from the start, as the rejected reasons
	for _, c := range []prometheus.Collector{m.commands, m.duration, m.errors, m.conns, m.connsTotal, m.connsRefuse, m.rejected, m.panics, used, peak, maxG, netIn, netOut} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// cmdMetrics are one command's pre-resolved collectors (no label hashing on
// the hot path).
type cmdMetrics struct {
	ok, fail prometheus.Counter
	latency  prometheus.Observer
}

func (m *Metrics) forCommand(name string) *cmdMetrics {
	if m == nil {
		return nil
	}
	return &cmdMetrics{
		ok:      m.commands.WithLabelValues(name, "ok"),
		fail:    m.commands.WithLabelValues(name, "error"),
		latency: m.duration.WithLabelValues(name),
	}
}

func (m *Metrics) inputRejected(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}
