package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestMain lets a test run the real command in a child process: with
// DBX_NODE_TEST_MAIN=1 the test binary is dbx-node (os.Args[1:] its
// arguments).
func TestMain(m *testing.M) {
	if os.Getenv("DBX_NODE_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func writeFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func TestSecretFileFlags(t *testing.T) {
	dir := t.TempDir()
	// The file's content is used, trailing spaces and newline removed: a
	// 5-byte key proves it was read ("c2hvcnQ=  " would not be base64).
	key := writeFile(t, "c2hvcnQ=  \n", 0o600)
	_, err := run("serve", "--id", "n1", "--data-dir", dir, "--gossip-key-file", key)
	if err == nil || !strings.Contains(err.Error(), "gossip-key is 5 bytes") {
		t.Errorf("--gossip-key-file: %v, want the file's 5-byte key refused", err)
	}
	for _, name := range []string{"requirepass", "admin-token", "gossip-key"} {
		good := writeFile(t, "s3cret\n", 0o600)
		_, err := run("serve", "--id", "n1", "--data-dir", dir, "--"+name, "x", "--"+name+"-file", good)
		if want := "--" + name + " and --" + name + "-file both given"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--%s with its -file: %v, want %q", name, err, want)
		}
		for content, want := range map[string]string{"": "is empty", " \n\n": "is empty", "a\nb\n": "more than one line"} {
			_, err := run("serve", "--id", "n1", "--data-dir", dir, "--"+name+"-file", writeFile(t, content, 0o600))
			if err == nil || !strings.Contains(err.Error(), "--"+name+"-file: ") || !strings.Contains(err.Error(), want) {
				t.Errorf("--%s-file holding %q: %v, want %q", name, content, err, want)
			}
		}
		_, err = run("serve", "--id", "n1", "--data-dir", dir, "--"+name+"-file", filepath.Join(dir, "missing"))
		if err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("--%s-file of a missing file: %v", name, err)
		}
	}
	// A variable counts as the flag.
	t.Setenv("DBX_REQUIREPASS", "from-env")
	_, err = run("serve", "--id", "n1", "--data-dir", dir, "--requirepass-file", writeFile(t, "p\n", 0o600))
	if err == nil || !strings.Contains(err.Error(), "DBX_REQUIREPASS and --requirepass-file both given") {
		t.Errorf("DBX_REQUIREPASS with --requirepass-file: %v", err)
	}
}

func TestSecretFlagResolve(t *testing.T) {
	var v string
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	s := addSecretFlag(fs, &v, "token", "admin token")
	if err := fs.Parse([]string{"--token-file", writeFile(t, "tok en\r\n", 0o600)}); err != nil {
		t.Fatal(err)
	}
	var warned []string
	if err := s.resolve(fs, func(msg string, _ ...any) { warned = append(warned, msg) }); err != nil || v != "tok en" {
		t.Fatalf("resolve = %v, value %q, want \"tok en\"", err, v)
	}
	if len(warned) != 0 {
		t.Errorf("warnings for a 0600 file: %q", warned)
	}
	if _, err := readSecretFile(writeFile(t, "x\n", 0o644), func(msg string, _ ...any) { warned = append(warned, msg) }); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "readable by every user") {
		t.Errorf("warnings for a 0644 file: %q", warned)
	}
	if _, err := readSecretFile(t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("readSecretFile of a directory: %v", err)
	}
}

// TestTokenFile: the admin commands send the token read from --token-file.
func TestTokenFile(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer file-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"epoch": 7, "leader": "n1", "self": "n1", "nodes": [], "migration": {}}`))
	}))
	defer hs.Close()
	tok := writeFile(t, "file-token\n", 0o600)
	if out, err := run("status", "--http", hs.URL, "--token-file", tok); err != nil || !strings.Contains(out, "epoch 7") {
		t.Errorf("status --token-file: %q, %v", out, err)
	}
	t.Setenv("DBX_TOKEN_FILE", tok)
	if out, err := run("limits", "--http", hs.URL); err != nil || !strings.Contains(out, "migration") {
		t.Errorf("limits with DBX_TOKEN_FILE: %q, %v", out, err)
	}
	if _, err := run("status", "--http", hs.URL, "--token", "x"); err == nil || !strings.Contains(err.Error(), "--token and DBX_TOKEN_FILE both given") {
		t.Errorf("--token with DBX_TOKEN_FILE: %v", err)
	}
	if _, err := run("snapshot", "list", "--http", hs.URL, "--token-file", writeFile(t, "", 0o600)); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("snapshot list with an empty --token-file: %v", err)
	}
}

func TestLogFlagsRejected(t *testing.T) {
	dir := t.TempDir()
	_, err := run("serve", "--id", "n1", "--data-dir", dir, "--log-format", "yaml", "--log-level", "loud", "--sync", "often")
	for _, want := range []string{
		`--log-format "yaml": want one of text, json`,
		`--log-level "loud": want one of debug, info, warn, error`,
		`sync: unknown sync mode "often" (want always, interval or none)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serve with bad log flags: %v, want %q", err, want)
		}
	}
	t.Setenv("DBX_LOG_FORMAT", "xml")
	if _, err := run("serve", "--id", "n1", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), `--log-format "xml"`) {
		t.Errorf("DBX_LOG_FORMAT=xml: %v", err)
	}
	var buf bytes.Buffer
	l, err := newLogger(&buf, "WARN", "json")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"msg":"shown"`) {
		t.Errorf("warn-level JSON logger wrote %q", s)
	}
}

func TestShutdownTimeoutFlag(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ v, want string }{
		{"500ms", "shutdown-timeout 500ms must be in [1s, 10m0s]"},
		{"11m", "shutdown-timeout 11m0s must be in [1s, 10m0s]"},
		{"soon", `invalid argument "soon" for "--shutdown-timeout"`},
	} {
		if _, err := run("serve", "--id", "n1", "--data-dir", dir, "--shutdown-timeout", tc.v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--shutdown-timeout %s: %v, want %q", tc.v, err, tc.want)
		}
	}
	_, err := run("serve", "--id", "n1", "--data-dir", dir, "--client-input-bytes-max", "1000", "--client-query-buffer-bytes-max", "2000")
	for _, want := range []string{"client-input-bytes-max 1000 must be at least", "client-query-buffer-bytes-max 2000 must be at least"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("small client limits: %v, want %q", err, want)
		}
	}
	if _, err := run("serve", "--id", "n1", "--data-dir", dir, "--force-recover=maybe"); err == nil || !strings.Contains(err.Error(), "force-recover") {
		t.Errorf("--force-recover=maybe: %v", err)
	}
}

func TestAwaitClose(t *testing.T) {
	log := newTestLogger(t)
	never := func() error { select {} }
	start := time.Now()
	err := awaitClose(log, never, 200*time.Millisecond, nil)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code == 0 || !strings.Contains(err.Error(), "200ms") {
		t.Errorf("awaitClose of a hanging Close = %v, want an exit error naming the timeout", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("awaitClose returned after %s, want ~200ms", d)
	}
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	start = time.Now()
	if err := awaitClose(log, never, time.Minute, sigs); !errors.As(err, &ee) || !strings.Contains(err.Error(), "during shutdown") || time.Since(start) > 2*time.Second {
		t.Errorf("awaitClose with a second signal = %v after %s, want an exit error at once", err, time.Since(start))
	}
	if err := awaitClose(log, func() error { return nil }, time.Minute, make(chan os.Signal)); err != nil {
		t.Errorf("awaitClose of a working Close = %v", err)
	}
	boom := errors.New("boom")
	if err := awaitClose(log, func() error { return boom }, time.Minute, nil); err != boom {
		t.Errorf("awaitClose of a failing Close = %v, want boom", err)
	}
}

func TestVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "github.com/dbx-kv/dbx", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := formatVersion("", bi, true)
	for _, want := range []string{"dbx-node v1.4.0\n", "revision: abc123 (modified)\n", "time:     2026-01-02T03:04:05Z\n", "go:       go1.99 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("formatVersion = %q, lacks %q", got, want)
		}
	}
	if got := formatVersion("v2.0.0-rc1", bi, true); !strings.HasPrefix(got, "dbx-node v2.0.0-rc1\n") {
		t.Errorf("override: %q", got)
	}
	got = formatVersion("", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true)
	if !strings.HasPrefix(got, "dbx-node (devel)\n") || !strings.Contains(got, "revision: unknown") || !strings.Contains(got, runtime.Version()) {
		t.Errorf("without VCS info: %q", got)
	}
	if got := formatVersion("", nil, false); !strings.HasPrefix(got, "dbx-node (devel)\n") {
		t.Errorf("without build info: %q", got)
	}

	old := version
	version = "v7.7.7-test"
	defer func() { version = old }()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := run(args...)
		if err != nil || out != buildVersion() || !strings.HasPrefix(out, "dbx-node v7.7.7-test\n") || !strings.Contains(out, "go:       go") {
			t.Errorf("dbx-node %s: %q, %v", args[0], out, err)
		}
	}
}

// TestServeProcess runs dbx-node serve in a child process with a secret
// on its command line and the admin token in a file: the admin API's
// /debug/pprof/cmdline and the logs do not show them, and SIGTERM ends
// the process cleanly within --shutdown-timeout.
func TestServeProcess(t *testing.T) {
	tokFile := writeFile(t, "tok-from-file\n", 0o600)
	cmd := exec.Command(os.Args[0], "serve", "--id", "p1", "--data-dir", t.TempDir(),
		"--resp-addr", "127.0.0.1:0", "--rpc-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--sync", "none", "--requirepass", "hunter2-cmdline", "--admin-token-file", tokFile,
		"--log-format", "json", "--shutdown-timeout", "5s")
	cmd.Env = append(os.Environ(), "DBX_NODE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var logs bytes.Buffer
	httpAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "node serving" {
				httpAddr <- rec.HTTP
			}
		}
		exited <- cmd.Wait()
	}()
	finished := false
	defer func() {
		if !finished {
			cmd.Process.Kill()
			<-exited
		}
	}()
	var addr string
	select {
	case addr = <-httpAddr:
	case err := <-exited:
		finished = true
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		finished = true
		t.Fatalf("serve did not start:\n%s", logs.String())
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/debug/pprof/cmdline", nil)
	req.Header.Set("Authorization", "Bearer tok-from-file")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "hunter2") ||
		!strings.Contains(string(body), "--requirepass\x00<redacted>\x00--admin-token-file\x00"+tokFile) {
		t.Errorf("cmdline (token from the file): %d %q", resp.StatusCode, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		finished = true
		if err != nil {
			t.Errorf("serve after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(8 * time.Second):
		cmd.Process.Kill()
		<-exited
		finished = true
		t.Fatalf("serve still running 8 s after SIGTERM (--shutdown-timeout 5s):\n%s", logs.String())
	}
	out := logs.String()
	for _, secret := range []string{"hunter2-cmdline", "tok-from-file"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows secret %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"msg":"dbx-node starting"`, `"requirepass":"<redacted>"`, `"msg":"signal received, shutting down"`, `"msg":"shut down"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
}

func newTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
