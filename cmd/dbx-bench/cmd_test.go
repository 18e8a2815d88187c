package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFlagsValidatedTogether(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs([]string{"--workload", "nope", "--clients", "0", "--pipeline", "0", "--distribution", "normal"})
	err := cmd.Execute()
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, want := range []string{"at least one address", `workload "nope"`, "clients (0)", "pipeline (0)", `distribution "normal"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestTxnNotSupported(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs([]string{"--addrs", "127.0.0.1:6379", "--workload", "txn"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "not supported yet") {
		t.Fatalf("txn: %v", err)
	}
}
