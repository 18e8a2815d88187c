package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAdmin(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(nil)
	cfg.Metrics = m
	_, addr := startServer(t, cfg, NewMemBackend(nil))
	r := dialRaw(t, addr)
	r.do("SET", "k", "v")
	r.do("GET", "k")
	r.do("NOPE")
	r.do("INCR", "k")

	view := func() ClusterInfo {
		return ClusterInfo{Epoch: 3, Leader: "n1", Nodes: []NodeInfo{
			{ID: "n1", Weight: 1, State: "active", Buckets: 16384, RespAddr: addr},
		}, Migration: MigrationInfo{Pending: 2, Done: 5, Bytes: 1024}}
	}
	a := NewAdmin(AdminConfig{Token: "tok"}, view, reg)
	hs := httptest.NewServer(a)
	defer hs.Close()

	get := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, _ := get("/healthz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before ready: %d", code)
	}
	a.SetReady(true)
	if code, _ := get("/healthz", ""); code != http.StatusOK {
		t.Errorf("healthz when ready: %d", code)
	}
	for _, p := range []string{"/v1/cluster", "/metrics", "/debug/pprof/"} {
		if code, _ := get(p, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without token: %d", p, code)
		}
		if code, _ := get(p, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d", p, code)
		}
		if code, _ := get(p, "tok"); code != http.StatusOK {
			t.Errorf("%s with the token: %d", p, code)
		}
	}

	_, body := get("/v1/cluster", "tok")
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"epoch", "leader", "nodes", "migration"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("/v1/cluster lacks %q: %s", f, body)
		}
	}
	node := raw["nodes"].([]any)[0].(map[string]any)
	for _, f := range []string{"id", "weight", "state", "buckets", "resp_addr"} {
		if _, ok := node[f]; !ok {
			t.Errorf("node lacks %q: %s", f, body)
		}
	}
	mig := raw["migration"].(map[string]any)
	if mig["pending"] != 2.0 || mig["done"] != 5.0 || mig["bytes"] != 1024.0 {
		t.Errorf("migration: %v", mig)
	}

	_, metrics := get("/metrics", "tok")
	for _, want := range []string{
		`dbx_resp_commands_total{cmd="set",result="ok"} 1`,
		`dbx_resp_commands_total{cmd="unknown",result="error"} 1`,
		`dbx_resp_commands_total{cmd="incr",result="error"} 1`,
		`dbx_resp_errors_total{type="ERR"} 1`,
		`dbx_resp_command_duration_seconds_count{cmd="get"} 1`,
		`dbx_resp_connections 1`,
		`dbx_resp_connections_total 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Without a token configured everything is open.
	open := httptest.NewServer(NewAdmin(AdminConfig{}, view, nil))
	defer open.Close()
	resp, err := http.Get(open.URL + "/v1/cluster")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("open admin: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}
