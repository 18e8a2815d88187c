package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dbx-kv/dbx/transport"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Weight = 101
	cfg.GossipKey = "c2hvcnQ=" // 5 bytes
	cfg.Sync = "sometimes"
	cfg.RESPAddr = "nope"
	cfg.Join = []string{"a:b"}
	err := cfg.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Validate = %v, want ErrBadConfig", err)
	}
	for _, want := range []string{"id is required", "data-dir is required", "resp-addr", "join address", "weight 101", "gossip-key is 5 bytes", "sync"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
	cfg = DefaultConfig()
	cfg.ID, cfg.DataDir = "n1", t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

func TestValidateShutdownAndClientLimits(t *testing.T) {
	valid := func() Config {
		cfg := DefaultConfig()
		cfg.ID, cfg.DataDir = "n1", t.TempDir()
		return cfg
	}
	cfg := valid()
	if cfg.ShutdownTimeout != 10*time.Second || cfg.ClientQueryBufferBytesMax != 64<<20 || cfg.ForceRecover {
		t.Errorf("defaults: shutdown %s, query buffer %d, force-recover %v", cfg.ShutdownTimeout, cfg.ClientQueryBufferBytesMax, cfg.ForceRecover)
	}
	if n := cfg.ClientInputBytesMax; n < 64<<20 || n > 4<<30 {
		t.Errorf("default client-input-bytes-max %d outside [64 MiB, 4 GiB]", n)
	}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string // "" : valid
	}{
		{"shutdown 1s", func(c *Config) { c.ShutdownTimeout = time.Second }, ""},
		{"shutdown 10m", func(c *Config) { c.ShutdownTimeout = 10 * time.Minute }, ""},
		{"shutdown 0", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown-timeout 0s must be in [1s, 10m0s]"},
		{"shutdown 999ms", func(c *Config) { c.ShutdownTimeout = 999 * time.Millisecond }, "shutdown-timeout 999ms"},
		{"shutdown 11m", func(c *Config) { c.ShutdownTimeout = 11 * time.Minute }, "shutdown-timeout 11m0s"},
		{"input 32MiB", func(c *Config) { c.ClientInputBytesMax, c.ClientQueryBufferBytesMax = 32<<20, 32<<20 }, ""},
		{"query under key+value", func(c *Config) { c.ClientQueryBufferBytesMax = 16 << 20 }, "must hold the largest key and value of one request"},
		{"input small", func(c *Config) { c.ClientInputBytesMax = 1<<20 - 1 }, "client-input-bytes-max 1048575 must be at least"},
		{"query small", func(c *Config) { c.ClientQueryBufferBytesMax = 1000 }, "client-query-buffer-bytes-max 1000 must be at least"},
		{"query above input", func(c *Config) { c.ClientInputBytesMax, c.ClientQueryBufferBytesMax = 32<<20, 33<<20 },
			"client-query-buffer-bytes-max 34603008 must be at most client-input-bytes-max 33554432"},
		{"move-rate -2", func(c *Config) { c.MoveBytesPerSec = -2 }, "move-rate -2 must be at least -1"},
		{"force-recover", func(c *Config) { c.ForceRecover = true }, ""},
	} {
		cfg := valid()
		tc.set(&cfg)
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: Validate = %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: Validate = %v, want ErrBadConfig mentioning %q", tc.name, err, tc.want)
		}
	}
	// Every problem at once, with the older ones.
	cfg = DefaultConfig()
	cfg.ShutdownTimeout, cfg.ClientInputBytesMax, cfg.ClientQueryBufferBytesMax, cfg.Sync = 0, 0, 0, "often"
	err := cfg.Validate()
	for _, want := range []string{"id is required", "shutdown-timeout", "client-input-bytes-max", "client-query-buffer-bytes-max", "sync"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
}

func TestClientInputBytesMaxDefault(t *testing.T) {
	for _, tc := range []struct {
		meminfo string
		want    int64
		ok      bool
	}{
		{"MemTotal:       16314384 kB\nMemFree: 1 kB\n", 16314384 << 10, true},
		{"MemFree:  5 kB\nMemTotal: 2048 kB\n", 2 << 20, true},
		{"MemTotal: 7\n", 7, true},
		{"MemTotal: lots kB\n", 0, false},
		{"MemTotal: 5 parsecs\n", 0, false},
		{"MemFree: 5 kB\n", 0, false},
		{"", 0, false},
	} {
		got, ok := parseMemTotal(strings.NewReader(tc.meminfo))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseMemTotal(%q) = %d, %v, want %d, %v", tc.meminfo, got, ok, tc.want, tc.ok)
		}
	}
	for mem, want := range map[int64]int64{
		fallbackMemTotal: 128 << 20, // unreadable /proc/meminfo
		256 << 20:        64 << 20,  // at least 64 MiB
		8 << 30:          1 << 30,   // 1/8
		64 << 30:         4 << 30,   // at most 4 GiB
	} {
		if got := clientInputBytesMaxFor(mem); got != want {
			t.Errorf("clientInputBytesMaxFor(%d) = %d, want %d", mem, got, want)
		}
	}
	if got, want := DefaultClientInputBytesMax(), clientInputBytesMaxFor(memTotal()); got != want {
		t.Errorf("DefaultClientInputBytesMax = %d, want %d", got, want)
	}
}

func TestConfigRedacted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.Join = "n1", []string{"10.0.0.1:7946"}
	cfg.RequirePass, cfg.AdminToken, cfg.GossipKey = "hunter2-pass", "tok-s3cret", "c2VjcmV0LWtleS0xNi1ieXRl"
	cfg.Server.RequirePass = "srv-pass"
	cfg.ClusterSecret = "cluster-secret-0123456789"
	cfg.Transport.PeerAuth = &transport.PeerAuth{Secret: []byte("cluster-secret-0123456789")}
	r := cfg.Redacted()
	if r.ClusterSecret != "<redacted>" || r.Transport.PeerAuth != nil {
		t.Errorf("Redacted kept the cluster secret: %q %v", r.ClusterSecret, r.Transport.PeerAuth)
	}
	if r.RequirePass != "<redacted>" || r.AdminToken != "<redacted>" || r.GossipKey != "<redacted>" || r.Server.RequirePass != "<redacted>" {
		t.Errorf("Redacted kept a secret: %q %q %q %q", r.RequirePass, r.AdminToken, r.GossipKey, r.Server.RequirePass)
	}
	if r.ID != "n1" || cfg.RequirePass != "hunter2-pass" {
		t.Errorf("Redacted changed the wrong fields: id %q, original requirepass %q", r.ID, cfg.RequirePass)
	}
	r.Join[0] = "x"
	if cfg.Join[0] != "10.0.0.1:7946" {
		t.Error("Redacted shares Join with the original")
	}
	if e := (Config{}).Redacted(); e.RequirePass != "" || e.AdminToken != "" {
		t.Errorf("Redacted of unset secrets: %q %q, want empty", e.RequirePass, e.AdminToken)
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("start", "config", cfg)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("start", "config", &cfg)
	for name, out := range map[string]string{
		"text log": text.String(), "json log": js.String(),
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg), "%s": cfg.String(),
	} {
		for _, secret := range []string{"hunter2-pass", "tok-s3cret", "c2VjcmV0LWtleS0xNi1ieXRl", "srv-pass", "cluster-secret-0123456789"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows secret %q: %s", name, secret, out)
			}
		}
		if !strings.Contains(out, "n1") || !strings.Contains(out, "<redacted>") {
			t.Errorf("%s lacks the id or <redacted>: %s", name, out)
		}
	}
	if !json.Valid(js.Bytes()) {
		t.Errorf("json log is not JSON: %s", js.String())
	}
}
