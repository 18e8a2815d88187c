package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFilePrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dbx.toml")
	if err := os.WriteFile(path, []byte(`
id = "from-file"
resp_addr = "127.0.0.1:7000"
weight = 2.5
join = ["10.0.0.1:7946", "10.0.0.2:7946"]
slowlog-log-slower-than = 500
sync = "interval"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DBX_SYNC", "none")
	fs := newServeCmd().Flags()
	if err := fs.Parse([]string{"--config", path, "--id", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigFile(fs); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"id":                      "from-flag", // the command line wins
		"sync":                    "none",      // then the environment
		"resp-addr":               "127.0.0.1:7000",
		"weight":                  "2.5",
		"join":                    "[10.0.0.1:7946,10.0.0.2:7946]",
		"slowlog-log-slower-than": "500",
	} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte("nosuch = 1\nweight = \"heavy\"\n[engine]\nshards = 2\n"), 0o600)
	fs := newServeCmd().Flags()
	fs.Parse([]string{"--config", path})
	err := applyConfigFile(fs)
	if err == nil {
		t.Fatal("a bad config file was accepted")
	}
	for _, want := range []string{`unknown setting "nosuch"`, `unknown setting "engine"`, "weight:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	fs = newServeCmd().Flags()
	fs.Parse([]string{"--config", filepath.Join(t.TempDir(), "missing.toml")})
	if err := applyConfigFile(fs); err == nil {
		t.Error("a missing config file was accepted")
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	run := func(args ...string) error {
		root := newRootCmd()
		root.SetArgs(append([]string{"healthcheck"}, args...))
		root.SetOut(new(strings.Builder))
		root.SetErr(new(strings.Builder))
		return root.Execute()
	}
	if err := run("--http-addr", addr); err != nil {
		t.Fatalf("healthy node: %v", err)
	}
	status = http.StatusServiceUnavailable
	var ee *exitError
	if err := run("--http-addr", addr); !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("503: %v, want exit 1", err)
	}
	t.Setenv("DBX_HTTP_ADDR", "127.0.0.1:1") // nothing listens: refused
	if err := run(); !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("no node: %v, want exit 1", err)
	}
	if err := run("--http-addr", addr, "--timeout", "2m"); err == nil {
		t.Fatal("--timeout 2m accepted")
	}
}
