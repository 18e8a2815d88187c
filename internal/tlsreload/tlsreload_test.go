package tlsreload_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/internal/tlsreload"
	"github.com/dbx-kv/dbx/internal/tlsreload/certtest"
)

func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	f := ca.Write(t, dir, "n1", ca.Issue(t, "first"))
	r, err := tlsreload.New(tlsreload.Files{Cert: f.Cert, Key: f.Key, CA: f.CA})
	if err != nil {
		t.Fatal(err)
	}
	cn := func() string { return r.Certificate().Leaf.Subject.CommonName }
	if changed, err := r.Reload(); changed || err != nil {
		t.Errorf("Reload of unchanged files = %v, %v; want false, nil", changed, err)
	}
	// A half-written rotation (new certificate, old key) keeps the old one.
	second := ca.Issue(t, "second")
	certtest.WriteFile(t, f.Cert, second.CertPEM)
	if _, err := r.Reload(); err == nil {
		t.Error("Reload of a certificate with another key's file: no error")
	}
	if cn() != "first" {
		t.Errorf("after a failed reload the certificate is %q, want the old one", cn())
	}
	certtest.WriteFile(t, f.Key, second.KeyPEM)
	if changed, err := r.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if cn() != "second" {
		t.Errorf("certificate %q after reload, want second", cn())
	}
	// Watch notices a change without being told.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan error, 8)
	go r.Watch(ctx, 5*time.Millisecond, func(err error) { events <- err })
	ca.Write(t, dir, "n1", ca.Issue(t, "third"))
	select {
	case err := <-events:
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not reload a changed certificate")
	}
	if cn() != "third" {
		t.Errorf("certificate %q after watch, want third", cn())
	}
	// A missing file is an error naming it; the identity stays.
	if err := os.Remove(f.Key); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-events:
		if err == nil {
			t.Fatal("watch reported success with the key file gone")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not report the missing key")
	}
	if cn() != "third" {
		t.Errorf("certificate %q after a failed watch reload", cn())
	}
	if _, err := tlsreload.New(tlsreload.Files{Cert: f.Cert}); err == nil {
		t.Error("New without a key: no error")
	}
}
