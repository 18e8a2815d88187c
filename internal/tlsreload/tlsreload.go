// Package tlsreload holds a TLS identity (certificate, key and an optional
// CA bundle, read from PEM files) that can be swapped while connections
// are being made: Reload reads the files again and replaces the identity
// atomically, keeping the old one when the new files do not load (a
// rotation half written, a key that does not match its certificate).
// Handshakes read the identity in force through the tls.Config callbacks
// (GetConfigForClient on a server, GetClientCertificate and
// VerifyConnection on a client), so a reload needs no restart and does not
// touch established connections.
//
// It owns no goroutine of its own: Watch runs on the caller's goroutine
// until its context ends. All methods are safe for concurrent use.
package tlsreload

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// FileBytesMax bounds each PEM file read (a certificate chain or CA bundle
// is a few KiB; this leaves room for large bundles).
const FileBytesMax = 1 << 20

// Files names the PEM files of one identity. Cert and Key are required;
// CA, when set, is the bundle peers' certificates must chain to (client
// certificates on a server, the server's certificate on a client).
type Files struct {
	Cert, Key, CA string
}

// Reloader is one identity that can be reloaded. Make it with New.
type Reloader struct {
	files Files
	mu    sync.Mutex // serialises Reload
	cur   atomic.Pointer[material]
}

type material struct {
	cert   *tls.Certificate
	pool   *x509.CertPool // nil without Files.CA
	server *tls.Config
	sum    [sha256.Size]byte // of the files' contents
}

// New loads the files once; the error names the file at fault.
func New(f Files) (*Reloader, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tlsreload: a certificate and a key file are both required")
	}
	r := &Reloader{files: f}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Files returns the files the identity is read from.
func (r *Reloader) Files() Files { return r.files }

// Reload reads the files again. When their contents changed and load, the
// new identity replaces the old one for every later handshake (changed is
// true). On an error the identity in force stays.
func (r *Reloader) Reload() (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, err := readFile(r.files.Cert)
	if err != nil {
		return false, err
	}
	keyPEM, err := readFile(r.files.Key)
	if err != nil {
		return false, err
	}
	var caPEM []byte
	if r.files.CA != "" {
		if caPEM, err = readFile(r.files.CA); err != nil {
			return false, err
		}
	}
	h := sha256.New()
	for _, b := range [][]byte{certPEM, {0}, keyPEM, {0}, caPEM} {
		h.Write(b)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	if old := r.cur.Load(); old != nil && old.sum == sum {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("tlsreload: %s with %s: %w", r.files.Cert, r.files.Key, err)
	}
	m := &material{cert: &cert, sum: sum}
	if caPEM != nil {
		m.pool = x509.NewCertPool()
		if !m.pool.AppendCertsFromPEM(caPEM) {
			return false, fmt.Errorf("tlsreload: %s holds no PEM certificate", r.files.CA)
		}
	}
	m.server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}
	if m.pool != nil {
		m.server.ClientAuth = tls.RequireAndVerifyClientCert
		m.server.ClientCAs = m.pool
	}
	r.cur.Store(m)
	return true, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tlsreload: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, FileBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("tlsreload: read %s: %w", path, err)
	}
	if len(b) > FileBytesMax {
		return nil, fmt.Errorf("tlsreload: %s is larger than %d bytes", path, FileBytesMax)
	}
	return b, nil
}

// Certificate returns the certificate in force.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load().cert }

// ServerConfig returns a server configuration that serves the identity in
// force at each handshake: TLS 1.3 at least, and, with Files.CA, client
// certificates required and verified against the CA in force.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().server, nil
		},
	}
}

// PeerClientConfig returns the configuration a node dials its peers with
// (mutual TLS): it presents the certificate in force and accepts a server
// whose certificate chains to the CA in force (Files.CA is required). Host
// names are not checked: any holder of a certificate the CA issued is a
// peer, so the CA must issue certificates to cluster nodes only.
func (r *Reloader) PeerClientConfig() (*tls.Config, error) {
	if r.files.CA == "" {
		return nil, errors.New("tlsreload: a peer identity needs a CA file")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is verified in VerifyConnection against the CA in
		// force, without a host name (see above).
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyChain(cs.PeerCertificates, r.cur.Load().pool)
		},
	}, nil
}

func verifyChain(certs []*x509.Certificate, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("tlsreload: the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("tlsreload: peer certificate: %w", err)
	}
	return nil
}

// Watch reloads every interval until ctx ends, calling onReload (when
// non-nil) with the outcome of every reload that changed something or
// failed. A failed reload keeps the identity in force and is retried at
// the next tick.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, onReload func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.Reload()
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			if onReload != nil {
				onReload(err)
			}
		case err == nil && changed:
			lastErr = ""
			if onReload != nil {
				onReload(nil)
			}
		}
	}
}

// LogAttrs describes the certificate in force for a log line: subject,
// expiry and the files.
func (r *Reloader) LogAttrs() []any {
	c := r.cur.Load().cert
	attrs := []any{"cert", r.files.Cert}
	if c.Leaf != nil {
		attrs = append(attrs, "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return attrs
}
