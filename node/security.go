package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/dbx-kv/dbx/internal/tlsreload"
	"github.com/dbx-kv/dbx/transport"
)

// security is the node's TLS identities, loaded at start (loadSecurity)
// and reloaded by ReloadTLS and the watch loop.
type security struct {
	client *tlsreload.Reloader // RESP and admin ports; nil without TLSCertFile
	peer   *tlsreload.Reloader // RPC + Raft port; nil without PeerCertFile
	auth   *transport.PeerAuth // nil without peer TLS and ClusterSecret
}

func (c *Config) validateSecurity() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls-cert and tls-key go together: give both or neither")
	}
	if c.TLSCertFile == "" && c.TLSClientCAFile != "" {
		bad("tls-client-ca needs tls-cert and tls-key")
	}
	if c.TLSRESPAddr != "" {
		if c.TLSCertFile == "" {
			bad("tls-resp-addr needs tls-cert and tls-key")
		}
		if err := checkHostPort(c.TLSRESPAddr); err != nil {
			bad("tls-resp-addr %q: %v", c.TLSRESPAddr, err)
		}
	}
	if n := countSet(c.PeerCertFile, c.PeerKeyFile, c.PeerCAFile); n != 0 && n != 3 {
		bad("peer-cert, peer-key and peer-ca go together: give all three or none")
	}
	if n := len(c.ClusterSecret); n != 0 && (n < transport.SecretBytesMin || n > transport.SecretBytesMax) {
		bad("cluster-secret has %d bytes, want %d to %d (generate one with: openssl rand -base64 32)", n, transport.SecretBytesMin, transport.SecretBytesMax)
	}
	if c.TLSReloadInterval < 100*time.Millisecond || c.TLSReloadInterval > time.Hour {
		bad("tls-reload-interval %s must be in [100ms, 1h]", c.TLSReloadInterval)
	}
	return errs
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// loadSecurity reads the TLS files and builds the peer authentication,
// before any port is opened; it warns when the RPC port is open to
// anyone.
func (n *Node) loadSecurity(_ context.Context, _ *startup) error {
	cfg := n.cfg
	var err error
	if cfg.TLSCertFile != "" {
		n.sec.client, err = tlsreload.New(tlsreload.Files{Cert: cfg.TLSCertFile, Key: cfg.TLSKeyFile, CA: cfg.TLSClientCAFile})
		if err != nil {
			return fmt.Errorf("node: --tls-cert/--tls-key/--tls-client-ca: %w", err)
		}
		n.log.Info("tls on the client ports", n.sec.client.LogAttrs()...)
	}
	var auth transport.PeerAuth
	if cfg.PeerCertFile != "" {
		n.sec.peer, err = tlsreload.New(tlsreload.Files{Cert: cfg.PeerCertFile, Key: cfg.PeerKeyFile, CA: cfg.PeerCAFile})
		if err != nil {
			return fmt.Errorf("node: --peer-cert/--peer-key/--peer-ca: %w", err)
		}
		auth.ServerTLS = n.sec.peer.ServerConfig()
		if auth.ClientTLS, err = n.sec.peer.PeerClientConfig(); err != nil {
			return fmt.Errorf("node: %w", err)
		}
		n.log.Info("mutual tls on the rpc port", n.sec.peer.LogAttrs()...)
	}
	if cfg.ClusterSecret != "" {
		auth.Secret = []byte(cfg.ClusterSecret)
	}
	if auth.Enabled() {
		n.sec.auth = &auth
	} else {
		n.log.Warn("the rpc port (--rpc-addr, also Raft) has no authentication: anyone who can connect to it can read and write every key and join the cluster; set --cluster-secret-file or --peer-cert/--peer-key/--peer-ca", "rpc_addr", cfg.RPCAddr)
	}
	return nil
}

// clientTLS wraps ln in TLS with the client-facing identity.
func (n *Node) clientTLS(ln net.Listener) net.Listener {
	return tls.NewListener(ln, n.sec.client.ServerConfig())
}

// ReloadTLS reads every TLS file again (the dbx-node process calls it on
// SIGHUP). New handshakes use the new certificates; open connections keep
// theirs. A file that does not load leaves its identity in force and is
// reported.
func (n *Node) ReloadTLS() error {
	var errs []error
	for _, r := range []*tlsreload.Reloader{n.sec.client, n.sec.peer} {
		if r == nil {
			continue
		}
		changed, err := r.Reload()
		switch {
		case err != nil:
			errs = append(errs, err)
		case changed:
			n.log.Info("tls certificate reloaded", r.LogAttrs()...)
		}
	}
	return errors.Join(errs...)
}

// watchTLS reloads the TLS files when they change, until the node closes.
func (n *Node) watchTLS() {
	for _, r := range []*tlsreload.Reloader{n.sec.client, n.sec.peer} {
		if r == nil {
			continue
		}
		n.goFunc(func() {
			r.Watch(n.life, n.cfg.TLSReloadInterval, func(err error) {
				if err != nil {
					n.log.Error("tls certificate reload failed; the one in force stays", "err", err)
					return
				}
				n.log.Info("tls certificate reloaded", r.LogAttrs()...)
			})
		})
	}
}
