package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSnapshotCommands runs take, list, show, export and restore against a
// one-node cluster with an admin token.
func TestSnapshotCommands(t *testing.T) {
	n, dataDir := startAdminNode(t)
	var err error
	auth := []string{"--http", n.HTTPAddr(), "--token", "secret"}
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err = run(append([]string{"snapshot", "take"}, auth...)...)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // no placement yet
	}
	if err != nil {
		t.Fatalf("take: %q, %v", out, err)
	}
	id := regexp.MustCompile(`snapshot (\S+) taken`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("take printed %q", out)
	}
	if out, err := run(append([]string{"snapshot", "list"}, auth...)...); err != nil || !strings.Contains(out, id[1]) {
		t.Fatalf("list: %q, %v", out, err)
	}
	if out, err := run(append([]string{"snapshot", "show", id[1]}, auth...)...); err != nil || !strings.Contains(out, "s1") || !strings.Contains(out, "16384") {
		t.Fatalf("show: %q, %v", out, err)
	}
	if _, err := run(append([]string{"snapshot", "show", "nope"}, auth...)...); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("show of an unknown snapshot: %v, want 404", err)
	}
	dir := filepath.Join(t.TempDir(), "exp")
	if out, err := run(append([]string{"snapshot", "export", id[1], "--to", dir}, auth...)...); err != nil || !strings.Contains(out, "exported") {
		t.Fatalf("export: %q, %v", out, err)
	}
	// The running node's engine is locked: restore refuses.
	if _, err := run("restore", "--snapshot", dir, "--data-dir", dataDir, "--id", "s1"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("restore of a running node: %v, want a refusal", err)
	}
	n.Close()
	if out, err := run("restore", "--snapshot", dir, "--data-dir", dataDir, "--id", "s1"); err != nil || !strings.Contains(out, "restored") {
		t.Fatalf("restore: %q, %v", out, err)
	}
	if out, err := run("restore", "--snapshot", id[1], "--data-dir", dataDir, "--id", "s2"); err == nil || !strings.Contains(err.Error(), "no part for node s2") {
		t.Fatalf("restore of a node not in the snapshot: %q, %v", out, err)
	}
}
