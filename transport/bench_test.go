package transport

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkCallTCP measures small round trips over loopback from parallel
// callers sharing the default pool (two connections), in calls/s.
func BenchmarkCallTCP(b *testing.B) {
	cfg := tcfg()
	srv := startTCP(b, cfg)
	srv.Serve(echoHandler)
	cli := startTCP(b, cfg)
	body := bytes.Repeat([]byte("v"), 64)
	ctx := context.Background()
	if _, err := cli.Call(ctx, srv.LocalAddr(), "kv.get", body); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8) // 8 × GOMAXPROCS callers
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cli.Call(ctx, srv.LocalAddr(), "kv.get", body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkCallInmem is the same over the in-memory twin.
func BenchmarkCallInmem(b *testing.B) {
	n := NewInmemNetwork()
	srv, _ := NewInmem(n, "srv", tcfg())
	cli, _ := NewInmem(n, "cli", tcfg())
	b.Cleanup(func() { _ = srv.Close(); _ = cli.Close() })
	srv.Serve(echoHandler)
	body := bytes.Repeat([]byte("v"), 64)
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cli.Call(ctx, "srv", "kv.get", body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
