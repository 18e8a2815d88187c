// Package node wires one dbx process together: config, storage (engine),
// the shared RPC + Raft port (transport.PortMux), the metadata Raft group
// (coordinator), gossip (memberlist), the RESP server and the admin API
// (server), and their lifecycle. It holds no protocol logic: placement,
// Raft, framing and RESP live in their packages; this one only connects
// them.
//
// # Usage
//
//	cfg := node.DefaultConfig()
//	cfg.ID, cfg.DataDir = "n1", "/var/lib/dbx"
//	cfg.Join = []string{"10.0.0.2:7946"} // gossip address of any member; empty: bootstrap
//	n, err := node.Start(ctx, cfg)
//	defer n.Close()
//	n.RESPAddr() // the real addresses, also when cfg asked for port 0
//
// # Start-up
//
// Start opens the engine at DataDir/engine, binds the ports (RESP, cluster
// RESP, the optional TLS RESP, RPC + Raft, gossip, HTTP), opens the coordinator with its Raft log under
// DataDir/raft — bootstrapping a one-voter cluster when Join is empty and
// there is no Raft state — and starts memberlist with the node's ID as its
// name and {id, rpc, resp, http, weight, state} as its metadata. With Join
// it enters the gossip ring through any of the given gossip addresses,
// reads the other members' RPC addresses from their metadata and asks the
// Raft leader (any member passes the request on) to add it
// (coordinator.Join). A restart with the same DataDir rejoins with its data;
// its addresses may change (the node re-announces them to the leader).
//
// start (node.go) is a list of steps read top to bottom — data dir,
// engine, security (TLS files, peer authentication), listeners, RPC
// transport, coordinator, goroutine tracking, RPC methods, admin server,
// RESP server, gossip, serve loops, join, ready —
// each starting one component and pushing what stops it onto a cleanup
// stack (Node.stops). A failed step returns; Start then calls Close,
// which ends the node's lifetime and unwinds the stack, last pushed
// first, so only what was started is stopped: not ready, gossip (peers
// hear the node leave while it still serves), the RESP and admin servers
// (the admin shutdown bounded by 2 s), the wait for every goroutine,
// the coordinator, the transport and port, the listeners, the engine.
//
// # Security
//
// The security step (security.go), before any port is bound, loads the
// TLS identities (internal/tlsreload) and builds the RPC port's
// transport.PeerAuth from the Peer*File settings and ClusterSecret; the
// same PeerAuth goes to the port mux (accepted RPC and Raft connections),
// the RPC transport and Raft's stream layer (dialed ones). With
// TLSCertFile the serve step wraps the RESP ports (or only TLSRESPAddr)
// and the admin port in TLS and starts one goroutine per identity that
// reloads changed files every TLSReloadInterval; ReloadTLS (SIGHUP in
// dbx-node) does it at once.
//
// # Requests
//
// The RESP server's Backend looks every key's bucket up in the placement
// table the coordinator publishes (router.Holder): the node's own buckets
// go to the local keyspace (kv.Engine), others are forwarded over the
// transport ("kv.get", "kv.set", ...) to the owner, which serves them from
// its kv.Engine, bounded by the request's context (the server's
// RequestTimeout, 2 s by default). A failure says whether the request can
// have been applied: never sent (no connection, the owner not serving) is
// server.ErrOwnerDown ("-CLUSTERDOWN Hash slot not served ... (not
// applied)"), sent without an answer (transport.ErrNoReply, or the owner's
// handler deadline) is server.ErrNoReply ("-ERR outcome unknown"), a
// bucket switching owner is -TRYAGAIN (errFenced wraps server.ErrTryAgain).
// MGET, MSET, DEL and EXISTS are split by owner and fanned out, one call
// per owner. SCAN and DBSIZE (scan.go) cover the whole cluster: the cursor
// is a bucket, every owner scans its own buckets from it in parallel, the
// next cursor is the least bucket an owner did not finish. CLUSTER SLOTS/
// SHARDS/NODES show the placement table with the members' cluster RESP
// addresses (Config.ClusterRESPAddr, served by server.ServeNodeScope, where
// SCAN and DBSIZE cover this node's buckets only), so cluster-aware clients
// route directly and see each key once when they scan every primary. Each
// node's health in that view (health.go) comes from memberlist's
// suspect/dead states and the metadata; a node that was drained and left
// answers every data command with -CLUSTERDOWN naming the members to use.
//
// The first time a node stores a key it has the leader commit MarkHasData
// (before the write): from then on a placement change becomes a migration
// whose bucket moves the node runs, with no acknowledged write lost. The
// protocol is package rebalancer's state machines (Leader, Pull, Local);
// migrate.go is their driver: it feeds Local every applied metadata state
// and a 250 ms Tick (feed), serves the source's RPCs from engine snapshots,
// runs a target's Pull steps over the transport and the engine's
// ingestion, and performs the effects (proposals, deletes, fence wake-ups)
// in order, never under its mutex.
//
// The local keyspace runs the node's per-key checks, given to kv.New at
// start: Node.guard (catching up, fence, ownership in the applied table,
// then the wait for prepared keys) before every operation, for writes
// under the key's stripe lock; Node.servable again after every read; the
// migrator's onApplied for every key a write applies, while its stripe
// lock is held. A source's fence waits for every stripe lock
// (kv.Engine.Barrier) before its last delta, and a prepare holds its keys'
// stripe locks (kv.Engine.LockKeys): migrate.go's guard and servable say
// why that order loses no acknowledged write.
//
// # Membership
//
// On the Raft leader, gossip drives member states: a member memberlist
// reports gone (left or dead) becomes failed, a failed member it reports
// alive becomes active again. Event callbacks only record the event and
// wake the reconcile loop (memberlist's lock is held during callbacks).
//
// # Admin API
//
// server.Admin serves GET /v1/cluster (epoch, leader, cluster_state,
// nodes with weight, state, health, bucket count and RESP address,
// migration progress and what it waits for), /metrics, /healthz (200 once
// the node serves, 503 "left: ..." after it was drained) and pprof; the
// node adds POST /v1/nodes/{id}/weight ({"weight": W}), POST
// /v1/nodes/{id}/drain and the migration limits, run on the leader; with
// data they start a migration (progress in /v1/cluster).
//
// For the Redis introspection commands (introspect.go) the backend is a
// server.InfoProvider (engine, Raft and placement figures in INFO memory,
// persistence and the "Dbx" section; the version in INFO server) and a
// server.KeyspaceCounter (INFO keyspace's keys and expiries, counted at
// each bucket's owner like DBSIZE); Config.Version and the read-only
// CONFIG GET settings (appendfsync, dir, port, ...) go to the server.
//
// /metrics carries, besides the server's RESP and the transactions'
// families, every subsystem's (metrics.go): the engine's (WAL bytes,
// fsyncs and their latency histogram, group commits, memtables, flushes,
// compactions, level sizes, disk free), Raft's (term, indexes, apply lag,
// leader, leader changes), gossip's (members by state, health score),
// placement's (epoch, buckets per node, moves by state, bytes moved),
// forwarding (calls by method and result, latency) and global snapshots
// (takes, duration). Most are read at scrape time from Stats, Raft and
// memberlist; forwarding and snapshots are counted as they happen. Labels
// are bounded: no key or bucket is ever a label.
//
// # Global snapshots
//
// POST /v1/snapshots (any node; run on the leader) takes a consistent
// cluster-wide snapshot. The steps are package snapshot's: NewPlan checks
// the metadata allows one, Take is the sequence (pause every node's new
// 2PC commit decisions and Prepares for a lease, drain the decisions sent
// before, checkpoint every owner's engine into DataDir/snapshots/<id>,
// resume, describe the parts, commit the manifest) as effects that
// takeSnapshot (gsnapshot.go) performs in order: RPCs fanned out to the
// nodes, waits, the Raft commit, releases. Then the leader writes the
// manifest file and applies the retention (Config.SnapshotRetention).
// What stays here is I/O: the lock, lease timer and Prepare waits around
// every node's snapshot.Gate (snapGate), the steps' handlers, the manifest
// and epoch files every node keeps in line with the committed manifests
// (snapshotReconcile), the admin endpoints. GET /v1/snapshots and /v1/snapshots/{id} list them;
// ExportSnapshot and RestoreSnapshot (snaprestore.go) are
// archive.Export and archive.Restore. Every snapshot file the node
// writes or reads goes through the engine's vfs.FS (Config.Engine.FS).
//
// # Transactions
//
// Multi-key writes on several nodes run through two-phase commit
// (txnbackend.go picks the path; txn.go drives the twophase state
// machines). Each state machine call queues its effects per transaction
// and state machine, and the goroutine that finds a queue idle performs it
// in order, so one transaction's record writes, votes and applies never
// race while different transactions run concurrently. Records live in the
// engine bucket txnBucket, encoded and read back at start by twophase's
// storage adapter. A commit's intents are written per engine shard, then
// its marker, and only then does Participant.Applied release its keys.
// The participant's lock table is the one record of locked keys: the key
// guard (reads, writes, 1PC), prepares, a move's fence and a snapshot's
// drain all ask it, with an atomic count as the lock-free path while
// nothing is locked.
//
// # Replication
//
// With a replication factor above 1 (--replication-factor, recorded in
// the metadata at bootstrap), every bucket has that many owners and
// replicate.go drives replica's state machines: every keyspace write is
// offered to the replicator (kv.WithReplicator), proposed to its bucket's
// primary as one entry of physical operations (kv.EncodeOps), written to
// the bucket's durable log in engine bucket 0xFFFD (replica's storage
// adapter; one fsync for every log write of a loop iteration), shipped
// to the other owners in checksummed batches (methodReplMsgs), and
// applied to the store — and answered — only once every member of the
// bucket's in-sync set has it durable. The key's stripe lock is held
// until then, so the next write of the key reads it; a write whose
// client gave up keeps it until the entry is resolved. Reads and writes
// wait (guard) until this node is the bucket's primary with a lease and
// everything committed applied; a quiesced bucket's first read costs a
// lease round. Backups apply what a later round says is committed. The
// metadata leader probes every member (methodReplPing) and runs
// replica.Failover: a node not heard from for 1.5 s loses its primaries
// to in-set replicas and leaves every in-sync set, in batched
// ChangeReplicas entries. A restarted node restores its logs, applies
// what was committed, and proposes a new epoch for the buckets it leads.
// Routing follows the promoted primaries (ownerOf). Two-phase commits
// apply their intents through the replicator too; their prepare and
// transaction records are not replicated yet.
//
// # Goroutines
//
// Every long-lived goroutine the node starts (loops, bucket moves, the move
// protocol's feed, 2PC message sends) goes through goFunc, which refuses
// once Close has begun; Close ends the node's lifetime context (life) and
// waits for all of them before it closes Raft, the transport and the
// engine, so none outlives what it uses. Background work derives its
// contexts from life. Goroutines that fan a call out and wait for it
// (fanOut, a snapshot step, a page prefetch) are scoped to that call.
//
// # Caveats
//
//   - Replication (RF > 1) is new: join, drain and reweight of a cluster
//     holding data at RF > 1, full copies for replicas too far behind
//     (NeedCopy), replicated 2PC records, SCAN after a failover and
//     READONLY reads are not done yet; a write spanning buckets commits
//     bucket by bucket (a failover between them leaves it partial).
//   - MGET reads each owner's keys from one snapshot, but not across
//     owners (MSET, DEL and MULTI/EXEC across owners are atomic: 2PC).
//   - There is no replication (RF 1): while a node is down, its keys answer
//     "-CLUSTERDOWN Hash slot not served" within the request timeout.
//   - A SCAN returns a key present for the whole scan at least once, and
//     exactly once while no bucket moves; a bucket that moves between two
//     calls is scanned by its new owner if the cursor has not passed it.
//   - Failed voters are not removed from the Raft configuration
//     automatically (see coordinator): with 3 voters one failure is
//     survived.
//   - The RPC + Raft port is open to anyone without ClusterSecret or the
//     Peer*File settings (the node warns at start); with the secret alone
//     its traffic is not encrypted (see transport). Gossip is encrypted
//     only with GossipKey, and a gossip member is not authenticated by
//     the secret or peer certificates (it cannot join Raft without them).
//   - The leader marks a member failed when it has never seen it in gossip
//     for 15 s after its own start, so start nodes within that time of each
//     other, or they flap failed → active once.
package node
