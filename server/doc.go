// Package server is a dbx node's client-facing side: the RESP server that
// Redis clients talk to, and the HTTP admin API (/v1/cluster, /metrics,
// /healthz, /debug/pprof, and the status page at /: status.html, embedded,
// which reads /v1/cluster). It owns no data: every data command becomes a call
// on a Backend, which the node supplies; the server only translates RESP to
// calls and errors to Redis error replies.
//
// # Usage
//
//	var b server.Backend = nodeBackend              // kv.Engine for owned keys, forwarding for others
//	reg := prometheus.NewRegistry()
//	m, _ := server.NewMetrics(reg)
//	cfg := server.DefaultConfig()
//	cfg.RequirePass, cfg.Metrics = pass, m
//	srv, err := server.New(cfg, b)
//	ln, _ := net.Listen("tcp", respAddr)
//	go srv.Serve(ln)                                // returns nil after Close
//	go srv.ServeNodeScope(ln2)                      // the port CLUSTER SLOTS advertises
//	admin := server.NewAdmin(server.AdminConfig{Token: tok}, clusterInfo, reg)
//	go http.Serve(httpLn, admin)
//	admin.SetReady(true)                            // /healthz → 200
//	...
//	srv.Close()                                     // cancels backend calls, waits for connections
//
// # Commands
//
// PING ECHO QUIT AUTH HELLO SELECT(0 only) READONLY READWRITE
// COMMAND(|COUNT|INFO|DOCS|LIST) CLUSTER(SLOTS|SHARDS|NODES|KEYSLOT|MYID|INFO|HELP)
// INFO DBSIZE SCAN GET SET (EX PX EXAT PXAT NX XX GET KEEPTTL) SETNX SETEX
// PSETEX STRLEN DEL UNLINK EXISTS TYPE MGET MSET INCR INCRBY DECR DECRBY EXPIRE
// PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST MSETNX
// MULTI EXEC DISCARD WATCH UNWATCH, and for operators (introspect.go)
// CLIENT(ID|GETNAME|SETNAME|SETINFO|INFO|LIST|KILL|NO-EVICT|NO-TOUCH|PAUSE|UNPAUSE)
// CONFIG(GET|SET|RESETSTAT|REWRITE refused) SLOWLOG(GET|LEN|RESET)
// LATENCY(LATEST|HISTORY|RESET|DOCTOR) MEMORY USAGE MONITOR TIME ROLE WAIT,
// with Redis's reply formats and error texts ("-ERR wrong number of
// arguments for 'get' command", "-ERR unknown command 'x', with args
// beginning with: 'a' ", "-NOAUTH Authentication
// required.", "-WRONGPASS invalid username-password pair or user is
// disabled.", MOVED/ASK from a *MovedError, ...). The table of backend
// errors to replies is on the error variables in errors.go.
//
// The server speaks RESP2 only. HELLO 2 answers as Redis does; HELLO 3
// answers "-NOPROTO", which go-redis v9 (protocol 3 by default) takes as
// "fall back to RESP2 and AUTH": it connects normally.
//
// # Introspection
//
// INFO has Redis's sections and field names where they mean something in
// dbx (server, clients, memory — used_memory is the Go runtime's heap
// objects, stacks and metadata, which hold the memtables —, persistence,
// stats, replication, cpu, commandstats, errorstats, latencystats, cluster,
// keyspace with the expiry counts of a KeyspaceCounter backend); an
// InfoProvider backend adds fields to them (a field it names again replaces
// the server's) and sections of its own (the node's "Dbx"). commandstats,
// errorstats and latencystats (log2 buckets) are atomics per command; the
// slow log (slowlog-log-slower-than, slowlog-max-len ≤ SlowlogLenMax, 32
// arguments of 128 bytes per entry) and the latency monitor
// (latency-monitor-threshold, 160 samples per event) take a lock only for a
// command over their threshold; CLIENT PAUSE costs one atomic load per
// command, MONITOR one while nobody monitors (at most MonitorsMax monitors,
// each with a queue of 4096 lines: one that falls behind is disconnected).
// CONFIG GET answers the server's settings and Config.Settings (the node's,
// read-only: appendfsync, dir, port, ...), "save" as "" and "appendonly" as
// "yes" (the WAL); CONFIG SET changes slowlog-*, latency-monitor-threshold,
// maxclients (≤ ConnsMaxLimit) and timeout, all or nothing; CONFIG REWRITE
// is refused with the reason. CLIENT PAUSE is bounded by PauseMax and never
// holds CLIENT itself (so UNPAUSE works). ROLE and WAIT answer "master, no
// replicas" unless the backend is a ReplicationInfo.
//
// # Limits and failure behaviour
//
//   - Requests are read by server/resp, dbx's own RESP reader (redcon's
//     trusted declared lengths: one 26-byte request crashed the process,
//     one of 22 bytes pinned a core). Every declared count and length is
//     checked before it is used: more than 1,048,576 arguments is "-ERR
//     Protocol error: invalid multibulk length", an argument over the
//     larger of KeyBytesMax and ValueBytesMax "-ERR Protocol error: invalid
//     bulk length (N bytes, the limit is M)", a request over
//     RequestBytesMax (the query buffer limit) "-ERR Protocol error:
//     request too large ...". Before AUTH (with RequirePass) a request may
//     have at most 10 arguments of at most 16 KiB ("unauthenticated
//     multibulk/bulk length"), as in Redis 7. Each of these closes that
//     connection only (RESP cannot resynchronise); other malformed input
//     gets Redis's texts ("expected '$', got ':'", "unbalanced quotes in
//     request", ...) and the same treatment.
//   - Input memory: no buffer is sized by a declared length (a connection
//     holds at most about twice what its current request has sent), and
//     the input buffers of all connections together are bounded by
//     ClientInputBytesMax; a connection whose request finds no room gets
//     "-ERR client input memory limit reached ..." and is closed. INFO
//     clients and /metrics (dbx_client_input_bytes, _max,
//     dbx_client_input_rejected_total{reason}) show both.
//   - Within those bounds, wrong arity, unknown commands, bad options, keys
//     over KeyBytesMax and more than ArgsMax arguments get an error reply;
//     the connection stays usable (pipelined replies keep their order).
//   - TLS: Serve a tls.NewListener (the node's reloading configuration
//     comes from internal/tlsreload); each connection's handshake runs on
//     its own goroutine, bounded by TLSHandshakeTimeout (10 s), and a
//     failure closes it (dbx_client_input_rejected_total{reason="tls"}).
//   - AUTH: passwords are compared as SHA-256 digests in constant time;
//     the n-th failed AUTH or HELLO AUTH on a connection is answered after
//     n × AuthFailureDelay (100 ms, at most 2 s), and the
//     AuthFailuresMax-th (10) closes the connection.
//   - A panic while serving a connection closes that connection, is logged
//     with its stack and counted (dbx_resp_panics_total); the process and
//     the other connections go on.
//   - ConnsMax: one connection more gets "-ERR max number of clients
//     reached" and is closed. WriteTimeout bounds writes to a client that
//     does not read; replies are flushed at the end of a pipeline and
//     whenever 64 KiB are pending. IdleTimeout (off by default) closes
//     silent clients.
//   - Close is bounded: it cancels backend calls, wakes blocked reads, lets
//     connections finish for CloseTimeout, then closes their sockets; after
//     another CloseTimeout it returns an error naming how many are still
//     stuck (a backend ignoring ctx) rather than wait.
//   - Every backend call runs under a context with RequestTimeout (default
//     2 s); a deadline error becomes "-ERR outcome unknown: request timed
//     out after 2s (...)". A backend says whether a failed call was
//     applied: ErrOwnerDown "-CLUSTERDOWN Hash slot not served: <detail>
//     (not applied)", ErrNoReply "-ERR outcome unknown: <detail> (...)";
//     ErrUnreachable "-ERR owner unreachable: <detail>" when it cannot tell.
//   - CLUSTER INFO/NODES/SHARDS and INFO show each node's
//     ClusterNode.Health (fail?/fail flags, health failed, cluster_state).
//
// # Backends
//
// The server has no keyspace of its own. The node's Backend serves a key
// it owns from its kv.Engine (one node's keyspace over the engine: stripe
// locks held across the commit, WATCH versions, expiry), forwards another
// (transport, bounded by ctx) or returns a *MovedError; multi-key calls are
// split by owner and, for MSET and DEL, committed with two-phase commit.
// The data types of Backend and TxBackend and their errors (SetOptions,
// TxRequest, ErrNotFound, ErrWatchFailed, ...) are package kv's, under the
// same names here. Tests serve kv/kvtest's in-memory twin, which passes
// the keyspace's conformance suite (kvtest.Run) as kv.Engine does. Inside
// EXEC the queued commands run against the transaction's overlay
// (overlay.go): a private Backend over the values the TxBackend read, which
// lives for one EXEC.
//
// The package must not own data (no keyspace, no store, no state kept for
// a key beyond a request or an EXEC) nor import node; kv/kvtest is for its
// tests only.
//
// # Caveats
//
//   - A backend must honour ctx: the server does not run calls on a separate
//     goroutine (that would cost one per command), so a backend that blocks
//     ignoring ctx hangs that client's connection (only that one) and Close.
//   - Expiries cross the Backend boundary as absolute Unix ms computed with
//     Config.Now; a forwarding node and the owner must have roughly synced
//     clocks (as Redis replicas with PEXPIREAT).
//   - SCAN cursors are bucket numbers: a call returns whole buckets, so it can
//     return more than COUNT keys when buckets are large. What SCAN and
//     DBSIZE cover is the backend's: the node's covers the whole cluster;
//     on a ServeNodeScope port a NodeScanner backend covers its own
//     buckets only (as in Redis Cluster). MATCH patterns are limited to
//     4 KiB and COUNT to 100,000; TYPE string matches every key, other
//     types none.
//   - DBSIZE on kv.Engine counts keys (O(keys)); INFO's keyspace line
//     calls it too.
//   - EXPIRE's NX/XX/GT/LT options, RESP3 and ACL users other than
//     "default" are not supported. An empty multibulk ("*0") is skipped
//     without a reply, as in Redis.
//   - CLUSTER NODES reports a bus port of RESP port + 10000 and no replicas;
//     clients only use it for display. Node IDs should not contain spaces.
package server
