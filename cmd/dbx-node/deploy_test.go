package main

import (
	"os"
	"strings"
	"testing"
)

// TestExampleConfigFile: deploy/dbx.toml, the example config, is read
// without an error by serve's flags.
func TestExampleConfigFile(t *testing.T) {
	fs := newServeCmd().Flags()
	if err := fs.Parse([]string{"--config", "../../deploy/dbx.toml"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigFile(fs); err != nil {
		t.Fatalf("deploy/dbx.toml: %v", err)
	}
	if got := fs.Lookup("data-dir").Value.String(); got != "/var/lib/dbx" {
		t.Errorf("data-dir = %q", got)
	}
	unit, err := os.ReadFile("../../deploy/systemd/dbx-node.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/dbx-node serve --config /etc/dbx/dbx.toml") {
		t.Error("the systemd unit does not start serve with the config file")
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), `CMD ["/dbx-node", "healthcheck"`) {
		t.Error("the Dockerfile has no HEALTHCHECK running dbx-node healthcheck")
	}
}
