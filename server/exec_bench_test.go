package server

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// discardWriter is a replyWriter that keeps nothing.
type discardWriter struct{}

func (discardWriter) WriteString(string)     {}
func (discardWriter) WriteBulk([]byte)       {}
func (discardWriter) WriteBulkString(string) {}
func (discardWriter) WriteInt64(int64)       {}
func (discardWriter) WriteError(string)      {}
func (discardWriter) WriteArray(int)         {}
func (discardWriter) WriteNull()             {}
func (discardWriter) WriteRaw([]byte)        {}

// BenchmarkExecGet is the server's per-command cost on the hot path (GET
// of a present key on the in-memory backend, metrics on, as the node runs
// it): introspection must not add allocations or locks here.
func BenchmarkExecGet(b *testing.B) {
	cfg := testConfig(nil)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	cfg.Metrics = m
	be := newMemBackend(cfg.Now)
	s, err := New(cfg, be)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &session{id: 1, authed: true, w: discardWriter{}, info: &clientInfo{}}
	s.exec(c, [][]byte{[]byte("SET"), []byte("k"), []byte("v")})
	args := [][]byte{[]byte("GET"), []byte("k")}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.exec(c, args)
	}
}
