package transport_test

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/transport"
	"github.com/dbx-kv/dbx/transport/transporttest"
)

// testConfig is a small, fast configuration for tests.
func testConfig() transport.Config {
	cfg := transport.DefaultConfig()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.FrameBytesMax = 1 << 20
	cfg.DialTimeout = time.Second
	cfg.CallTimeout = 5 * time.Second
	cfg.HandshakeTimeout = time.Second
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

func newTCP(t testing.TB, cfg transport.Config) *transport.TCP {
	t.Helper()
	tr, err := transport.NewTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func TestConformanceTCP(t *testing.T) {
	transporttest.RunConformance(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		cfg := testConfig()
		cfg.ConnsPerPeer = 1 // every call of a pair shares one connection
		return newTCP(t, cfg), newTCP(t, cfg)
	})
}

func TestConformanceTCPPool(t *testing.T) {
	transporttest.RunConformance(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		cfg := testConfig()
		cfg.ConnsPerPeer = 3
		return newTCP(t, cfg), newTCP(t, cfg)
	})
}

var inmemSeq atomic.Int64

func TestConformanceInmem(t *testing.T) {
	transporttest.RunConformance(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		n := transport.NewInmemNetwork()
		mk := func() transport.Transport {
			tr, err := transport.NewInmem(n, fmt.Sprintf("inmem-%d", inmemSeq.Add(1)), testConfig())
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
		return mk(), mk()
	})
}

func TestConformanceInmemDelayed(t *testing.T) {
	transporttest.RunConformance(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		n := transport.NewInmemNetwork()
		mk := func() transport.Transport {
			tr, err := transport.NewInmem(n, fmt.Sprintf("inmem-%d", inmemSeq.Add(1)), testConfig())
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
		a, b := mk(), mk()
		n.SetDelay(a.LocalAddr(), b.LocalAddr(), 2*time.Millisecond)
		n.SetDelay(b.LocalAddr(), a.LocalAddr(), time.Millisecond)
		return a, b
	})
}
