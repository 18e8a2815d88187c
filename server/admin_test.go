package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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
	_, addr := startServer(t, cfg, newMemBackend(nil))
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

func TestRedactArgs(t *testing.T) {
	in := []string{"dbx-node", "serve", "--id", "n1",
		"--requirepass", "p1", "--admin-token=t1", "-gossip-key", "k1", "--token", "t2",
		"--requirepass-file", "/run/secrets/pass", "--admin-token-file=/run/secrets/tok",
		"--txn-keys-max", "99", "--gossip-key", "--id", // pflag takes "--id" as the key
		"-requirepass=p2", "--REQUIREPASS", "p3", "--gossip_key", "k2", "--", "--token", "positional"}
	want := []string{"dbx-node", "serve", "--id", "n1",
		"--requirepass", Redacted, "--admin-token=" + Redacted, "-gossip-key", Redacted, "--token", Redacted,
		"--requirepass-file", "/run/secrets/pass", "--admin-token-file=/run/secrets/tok",
		"--txn-keys-max", "99", "--gossip-key", Redacted,
		"-requirepass=" + Redacted, "--REQUIREPASS", Redacted, "--gossip_key", Redacted, "--", "--token", "positional"}
	got := RedactArgs(in)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("RedactArgs:\n got %q\nwant %q", got, want)
	}
	if in[5] != "p1" {
		t.Error("RedactArgs changed its input")
	}
	if got := RedactArgs([]string{"dbx-node", "serve", "--requirepass"}); len(got) != 3 || got[2] != "--requirepass" {
		t.Errorf("RedactArgs of a trailing flag without value: %q", got)
	}

	// The admin API's /debug/pprof/cmdline serves them redacted.
	args := []string{"dbx-node", "serve", "--requirepass", "hunter2", "--admin-token-file", "/tok"}
	hs := httptest.NewServer(cmdlineHandler(func() []string { return args }))
	defer hs.Close()
	resp, err := http.Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "dbx-node\x00serve\x00--requirepass\x00<redacted>\x00--admin-token-file\x00/tok"; string(body) != want {
		t.Errorf("cmdline = %q, want %q", body, want)
	}
	a := httptest.NewServer(NewAdmin(AdminConfig{Token: "tok"}, func() ClusterInfo { return ClusterInfo{} }, nil))
	defer a.Close()
	req, _ := http.NewRequest("GET", a.URL+"/debug/pprof/cmdline", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := strings.Join(RedactArgs(os.Args), "\x00"); resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("admin cmdline: %d %q, want %q", resp.StatusCode, body, want)
	}
}

// TestStatusPage: / serves the status page without the token (it holds
// no data; its requests to /v1/cluster carry the token), only at the root.
func TestStatusPage(t *testing.T) {
	srv := httptest.NewServer(NewAdmin(AdminConfig{Token: "tok"}, func() ClusterInfo { return ClusterInfo{} }, nil))
	defer srv.Close()
	get := func(path string) (int, string, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ctype, body := get("/")
	if code != 200 || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, `fetch("/v1/cluster"`) {
		t.Fatalf("GET / = %d %s %.100q", code, ctype, body)
	}
	if code, _, _ := get("/v1/cluster"); code != http.StatusUnauthorized {
		t.Errorf("/v1/cluster without the token: %d", code)
	}
	if code, _, _ := get("/nosuch"); code != http.StatusNotFound && code != http.StatusUnauthorized {
		t.Errorf("/nosuch: %d, want 404 (or 401)", code)
	}
}
