package transport

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Bounds of a cluster secret, in bytes. The lower bound keeps the HMAC
// proof out of reach of guessing: generate one with
// `openssl rand -base64 32`.
const (
	SecretBytesMin = 16
	SecretBytesMax = 4096
)

// errSecretRequired is the handshake error a dbx dialer without the
// cluster secret receives.
const errSecretRequired = "this node requires the cluster secret: give every node the same --cluster-secret-file"

// Cluster-secret handshake constants (see PeerAuth).
const (
	secretMagic   = "dbxS"
	secretVersion = 1
	nonceBytes    = 32
	macBytes      = sha256.Size
	secretOK      = 1
	secretRefused = 0
)

// ErrPeerAuth reports a connection on the RPC + Raft port refused because
// one side did not prove itself: a TLS handshake that failed (no
// certificate, one that does not chain to the peer CA) or a cluster
// secret not proven. The request was not sent.
var ErrPeerAuth = errors.New("transport: peer authentication failed")

// PeerAuth secures every connection on the RPC + Raft port, in both
// directions, before its protocol byte: first mutual TLS when ServerTLS
// and ClientTLS are set, then, when Secret is set, a challenge-response
// proving the cluster secret. A PortMux with a PeerAuth runs the server
// side on every accepted connection (RPC and Raft alike); a TCP
// transport with one (Config.PeerAuth) and DialRaftAuth run the client
// side. Every node of a cluster must use the same settings.
//
// The secret handshake (after TLS, if any), with N a 32-byte random nonce
// and MAC = HMAC-SHA256(secret, label ‖ Nc ‖ Ns):
//
//	dialer → server: "dbxS", version 1, Nc
//	server → dialer: Ns
//	dialer → server: MAC("dbx client v1")
//	server → dialer: 1, MAC("dbx server v1")   (or 0, and it closes)
//
// The secret never crosses the wire, both nonces are fresh so no proof
// can be replayed, the distinct labels stop a proof being reflected, and
// the dialer proves itself first, so a process without the secret learns
// nothing it could guess the secret from offline. Comparisons are
// constant time (hmac.Equal). Without TLS only the connection's start is
// authenticated: an attacker on the path could take over a connection
// after the handshake; use peer TLS against one.
//
// A PeerAuth is read-only once in use; its methods are safe for
// concurrent use (the tls.Configs' callbacks must be too).
type PeerAuth struct {
	// ServerTLS, when set, wraps accepted connections in TLS; for mutual
	// TLS it must require and verify client certificates
	// (tls.RequireAndVerifyClientCert with ClientCAs, or the same through
	// GetConfigForClient).
	ServerTLS *tls.Config
	// ClientTLS, when set, wraps dialed connections in TLS; it verifies
	// the server's certificate and presents this node's.
	ClientTLS *tls.Config
	// Secret, when set (SecretBytesMin..SecretBytesMax bytes), must be
	// proven by both sides of every connection.
	Secret []byte
}

// Validate reports a PeerAuth that cannot work.
func (a *PeerAuth) Validate() error {
	if a == nil {
		return nil
	}
	var errs []error
	if (a.ServerTLS == nil) != (a.ClientTLS == nil) {
		errs = append(errs, fmt.Errorf("%w: PeerAuth needs both ServerTLS and ClientTLS, or neither", ErrBadConfig))
	}
	if a.Secret != nil && (len(a.Secret) < SecretBytesMin || len(a.Secret) > SecretBytesMax) {
		errs = append(errs, fmt.Errorf("%w: the cluster secret has %d bytes, want %d to %d", ErrBadConfig, len(a.Secret), SecretBytesMin, SecretBytesMax))
	}
	return errors.Join(errs...)
}

// Enabled reports whether a secures anything.
func (a *PeerAuth) Enabled() bool {
	return a != nil && (a.ServerTLS != nil || a.Secret != nil)
}

// server runs the server side on an accepted connection, within deadline.
// done interrupts it. It returns the connection to speak on (a *tls.Conn
// with TLS).
func (a *PeerAuth) server(done context.Context, nc net.Conn, deadline time.Time) (net.Conn, error) {
	return a.run(done, nc, deadline, func(nc net.Conn) (*tls.Conn, error) {
		tc := tls.Server(nc, a.ServerTLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("%w: tls: %w", ErrPeerAuth, err)
		}
		return tc, nil
	}, a.proveServer)
}

// run secures nc with tlsStep (when TLS is on) and then secretStep (when
// the secret is set), both within deadline; done interrupts them.
func (a *PeerAuth) run(done context.Context, nc net.Conn, deadline time.Time, tlsStep func(net.Conn) (*tls.Conn, error), secretStep func(net.Conn) error) (net.Conn, error) {
	if !a.Enabled() {
		return nc, nil
	}
	stop := context.AfterFunc(done, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if a.ServerTLS != nil {
		tc, err := tlsStep(nc)
		if err != nil {
			return nil, err
		}
		nc = tc
	}
	if a.Secret != nil {
		if err := secretStep(nc); err != nil {
			return nil, err
		}
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return nc, nil
}

func (a *PeerAuth) proveServer(nc net.Conn) error {
	// The magic first, so a dialer without the secret (whose protocol
	// byte and handshake may be shorter than a challenge) is closed at
	// once.
	var open [len(secretMagic) + 1 + nonceBytes]byte
	if _, err := io.ReadFull(nc, open[:len(secretMagic)+1]); err != nil {
		return fmt.Errorf("%w: cluster secret: reading the dialer's challenge: %w", ErrPeerAuth, err)
	}
	if string(open[:len(secretMagic)]) != secretMagic {
		if open[0] == ProtoRPC {
			// A dbx node without the secret: tell it why in its own
			// handshake, so its error names the cause. This says no more
			// than the refusal itself: that the port wants the secret.
			_, _ = nc.Write(encodeHello(&hello{version: ProtocolVersion, err: errSecretRequired}))
		}
		return fmt.Errorf("%w: cluster secret: the dialer did not start the secret handshake (is the cluster secret set on it?)", ErrPeerAuth)
	}
	if v := open[len(secretMagic)]; v != secretVersion {
		return fmt.Errorf("%w: cluster secret: handshake version %d, this node speaks %d", ErrPeerAuth, v, secretVersion)
	}
	if _, err := io.ReadFull(nc, open[len(secretMagic)+1:]); err != nil {
		return fmt.Errorf("%w: cluster secret: reading the dialer's challenge: %w", ErrPeerAuth, err)
	}
	nc1 := open[len(secretMagic)+1:]
	ns := make([]byte, nonceBytes)
	if _, err := rand.Read(ns); err != nil {
		return err
	}
	if _, err := nc.Write(ns); err != nil {
		return fmt.Errorf("%w: cluster secret: %w", ErrPeerAuth, err)
	}
	got := make([]byte, macBytes)
	if _, err := io.ReadFull(nc, got); err != nil {
		return fmt.Errorf("%w: cluster secret: reading the dialer's proof: %w", ErrPeerAuth, err)
	}
	if !hmac.Equal(got, secretMAC(a.Secret, "dbx client v1", nc1, ns)) {
		_, _ = nc.Write([]byte{secretRefused})
		return fmt.Errorf("%w: cluster secret: the dialer's proof is wrong (another secret)", ErrPeerAuth)
	}
	out := append([]byte{secretOK}, secretMAC(a.Secret, "dbx server v1", nc1, ns)...)
	if _, err := nc.Write(out); err != nil {
		return fmt.Errorf("%w: cluster secret: %w", ErrPeerAuth, err)
	}
	return nil
}

// client runs the dialer's side on a new connection to addr, within
// deadline; done interrupts it.
func (a *PeerAuth) client(done context.Context, nc net.Conn, addr string, deadline time.Time) (net.Conn, error) {
	return a.run(done, nc, deadline, func(nc net.Conn) (*tls.Conn, error) {
		tc := tls.Client(nc, a.ClientTLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("%w: tls with %s: %w", ErrPeerAuth, addr, err)
		}
		return tc, nil
	}, func(nc net.Conn) error { return a.proveClient(nc, addr) })
}

func (a *PeerAuth) proveClient(nc net.Conn, addr string) error {
	open := make([]byte, 0, len(secretMagic)+1+nonceBytes)
	open = append(open, secretMagic...)
	open = append(open, secretVersion)
	nonce := make([]byte, nonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	open = append(open, nonce...)
	if _, err := nc.Write(open); err != nil {
		return fmt.Errorf("%w: cluster secret with %s: %w", ErrPeerAuth, addr, err)
	}
	ns := make([]byte, nonceBytes)
	if _, err := io.ReadFull(nc, ns); err != nil {
		return fmt.Errorf("%w: cluster secret with %s: no challenge (is the cluster secret set there?): %w", ErrPeerAuth, addr, err)
	}
	if _, err := nc.Write(secretMAC(a.Secret, "dbx client v1", nonce, ns)); err != nil {
		return fmt.Errorf("%w: cluster secret with %s: %w", ErrPeerAuth, addr, err)
	}
	var status [1]byte
	if _, err := io.ReadFull(nc, status[:]); err != nil {
		return fmt.Errorf("%w: cluster secret with %s: %w", ErrPeerAuth, addr, err)
	}
	if status[0] != secretOK {
		return fmt.Errorf("%w: %s refused this node's cluster secret (another secret)", ErrPeerAuth, addr)
	}
	got := make([]byte, macBytes)
	if _, err := io.ReadFull(nc, got); err != nil {
		return fmt.Errorf("%w: cluster secret with %s: %w", ErrPeerAuth, addr, err)
	}
	if !hmac.Equal(got, secretMAC(a.Secret, "dbx server v1", nonce, ns)) {
		return fmt.Errorf("%w: %s did not prove the cluster secret", ErrPeerAuth, addr)
	}
	return nil
}

func secretMAC(secret []byte, label string, nc, ns []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write(nc)
	m.Write(ns)
	return m.Sum(nil)
}
