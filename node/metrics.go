package node

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/transport"
)

// Metrics of the node's subsystems, named like etcd's and Pebble's
// (subsystem_name_unit). Labels are bounded: method (the fixed RPC method
// names), result, level, state, node (members: bounded by the cluster's
// size). No per-key or per-bucket label.
//
// Read at scrape time (nodeCollector):
//
//	dbx_engine_wal_bytes_total, dbx_engine_wal_fsyncs_total,
//	dbx_engine_wal_fsync_duration_seconds (histogram),
//	dbx_engine_commit_groups_total, dbx_engine_commit_group_writes_total
//	(their ratio is the group-commit size), dbx_engine_memtable_bytes,
//	dbx_engine_memtables_immutable, dbx_engine_flushes_total,
//	dbx_engine_flush_bytes_total, dbx_engine_compactions_total,
//	dbx_engine_compaction_bytes_total, dbx_engine_write_stalls_total,
//	dbx_engine_level_files{level}, dbx_engine_level_bytes{level},
//	dbx_engine_read_only_shards, dbx_engine_disk_free_bytes,
//	dbx_engine_disk_total_bytes;
//	dbx_raft_term, dbx_raft_commit_index, dbx_raft_applied_index,
//	dbx_raft_last_log_index, dbx_raft_apply_lag_entries, dbx_raft_is_leader,
//	dbx_raft_has_leader, dbx_raft_voters;
//	dbx_gossip_members{state}, dbx_gossip_health_score (memberlist's
//	awareness: rises with failed probes);
//	dbx_placement_epoch, dbx_placement_buckets{node},
//	dbx_placement_members{state}, dbx_placement_moves{state},
//	dbx_placement_move_bytes, dbx_placement_migration_active,
//	dbx_cluster_buckets_failed; dbx_replication_factor,
//	dbx_replication_under_replicated_buckets, dbx_replication_buckets{role},
//	dbx_replication_quiet_buckets, dbx_replication_lagging_replicas,
//	dbx_replication_lag_entries, dbx_replication_failovers_total,
//	dbx_replication_config_changes_total, dbx_replication_need_copy_total,
//	dbx_replication_bad_messages_total.
//
// Counted as they happen:
//
//	dbx_raft_leader_changes_total, dbx_forward_calls_total{method,result},
//	dbx_forward_duration_seconds{method}, dbx_snapshot_takes_total{result},
//	dbx_snapshot_take_duration_seconds.
type nodeMetrics struct {
	leaderChanges prometheus.Counter
	fwdCalls      *prometheus.CounterVec
	fwdDur        *prometheus.HistogramVec
	fwd           sync.Map // method → *fwdMetrics, resolved once
	snapTakes     *prometheus.CounterVec
	snapDur       prometheus.Histogram
}

type fwdMetrics struct {
	ok, err, noReply, timeout prometheus.Counter
	dur                       prometheus.Observer
}

func newNodeMetrics(n *Node, reg prometheus.Registerer) (*nodeMetrics, error) {
	m := &nodeMetrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "dbx_raft_leader_changes_total", Help: "Raft leader changes this node observed (etcd's leader_changes_seen_total)."}),
		fwdCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbx_forward_calls_total",
			Help: "Requests this node sent to another node (forwarding, cluster-wide SCAN/DBSIZE), by RPC method and result (ok, error, no_reply, timeout)."}, []string{"method", "result"}),
		fwdDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dbx_forward_duration_seconds",
			Help: "Latency of requests sent to another node, by RPC method.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}, []string{"method"}),
		snapTakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbx_snapshot_takes_total", Help: "Global snapshots this node took as Raft leader, by result (ok, error)."}, []string{"result"}),
		snapDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dbx_snapshot_take_duration_seconds",
			Help: "Duration of global snapshot takes (pause, drain, checkpoint, commit).", Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
	}
	m.snapTakes.WithLabelValues("ok")
	m.snapTakes.WithLabelValues("error")
	for _, c := range []prometheus.Collector{m.leaderChanges, m.fwdCalls, m.fwdDur, m.snapTakes, m.snapDur, &nodeCollector{n: n}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forwarded counts one call to another node.
func (m *nodeMetrics) forwarded(method string, start time.Time, err error) {
	if m == nil {
		return
	}
	v, ok := m.fwd.Load(method)
	if !ok {
		f := &fwdMetrics{
			ok: m.fwdCalls.WithLabelValues(method, "ok"), err: m.fwdCalls.WithLabelValues(method, "error"),
			noReply: m.fwdCalls.WithLabelValues(method, "no_reply"), timeout: m.fwdCalls.WithLabelValues(method, "timeout"),
			dur: m.fwdDur.WithLabelValues(method),
		}
		v, _ = m.fwd.LoadOrStore(method, f)
	}
	f := v.(*fwdMetrics)
	f.dur.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		f.ok.Inc()
	case errors.Is(err, context.DeadlineExceeded):
		f.timeout.Inc()
	case errors.Is(err, transport.ErrNoReply):
		f.noReply.Inc()
	default:
		f.err.Inc()
	}
}

// takeSnapshot is takeSnapshotOnce, counted and timed.
func (n *Node) takeSnapshot(ctx context.Context) (string, error) {
	start := time.Now()
	id, err := n.takeSnapshotOnce(ctx)
	if m := n.metrics; m != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.snapTakes.WithLabelValues(result).Inc()
		m.snapDur.Observe(time.Since(start).Seconds())
	}
	return id, err
}

// watchLeaders counts Raft leader changes until the node closes.
func (n *Node) watchLeaders() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r := n.coord.Raft()
	r.RegisterObserver(obs)
	defer r.DeregisterObserver(obs)
	last := raft.ServerID("")
	for {
		select {
		case o := <-ch:
			lo := o.Data.(raft.LeaderObservation)
			if lo.LeaderID != "" && lo.LeaderID != last {
				n.metrics.leaderChanges.Inc()
			}
			last = lo.LeaderID
		case <-n.done:
			return
		}
	}
}

// nodeCollector reads the engine's, Raft's, gossip's and placement's
// figures at scrape time: nothing is added to any request path.
type nodeCollector struct{ n *Node }

// Describe sends nothing: an unchecked collector (its families depend on
// the cluster: members, levels).
func (c *nodeCollector) Describe(chan<- *prometheus.Desc) {}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	emit := func(name, help string, t prometheus.ValueType, v float64, labels ...string) {
		var keys, vals []string
		for i := 0; i+1 < len(labels); i += 2 {
			keys, vals = append(keys, labels[i]), append(vals, labels[i+1])
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, keys, nil), t, v, vals...)
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	if n.store != nil {
		st := n.store.Stats()
		var wal, groups, groupWrites, flushes, flushBytes, comps, compBytes, stalls, mem, imm, ro, syncNanos int64
		var hist [engine.SyncHistBuckets]int64
		for _, sh := range st.Shards {
			wal += sh.WALBytes
			groups += sh.Groups
			groupWrites += sh.GroupWrites
			flushes += sh.Flushes
			flushBytes += sh.BytesFlushed
			comps += sh.Compactions
			compBytes += sh.BytesCompacted
			stalls += sh.WriteStalls
			mem += sh.MemtableBytes
			imm += int64(sh.Immutable)
			syncNanos += sh.SyncNanos
			if sh.ReadOnly != "" {
				ro++
			}
			for i, v := range sh.SyncHist {
				hist[i] += v
			}
		}
		emit("dbx_engine_wal_bytes_total", "Record payload bytes appended to the WALs.", counter, float64(wal))
		buckets := map[float64]uint64{}
		cum, syncs := uint64(0), uint64(0)
		for i, v := range hist {
			cum += uint64(v)
			if i < len(hist)-1 {
				buckets[math.Ldexp(1, i)/1e6] = cum // under 2^i µs
			}
		}
		syncs = cum
		emit("dbx_engine_wal_fsyncs_total", "WAL fsyncs.", counter, float64(syncs))
		ch <- prometheus.MustNewConstHistogram(prometheus.NewDesc("dbx_engine_wal_fsync_duration_seconds", "WAL fsync latency (etcd's disk_wal_fsync_duration_seconds).", nil, nil),
			syncs, float64(syncNanos)/1e9, buckets)
		emit("dbx_engine_commit_groups_total", "WAL commit groups (one write and at most one fsync each).", counter, float64(groups))
		emit("dbx_engine_commit_group_writes_total", "Writes committed in WAL commit groups; over dbx_engine_commit_groups_total, the group-commit size.", counter, float64(groupWrites))
		emit("dbx_engine_memtable_bytes", "Bytes in the active memtables.", gauge, float64(mem))
		emit("dbx_engine_memtables_immutable", "Frozen memtables waiting for a flush.", gauge, float64(imm))
		emit("dbx_engine_flushes_total", "Memtable flushes to level-0 segments.", counter, float64(flushes))
		emit("dbx_engine_flush_bytes_total", "Segment bytes written by flushes.", counter, float64(flushBytes))
		emit("dbx_engine_compactions_total", "Compactions (level 0 into level 1, and level-1 rewrites).", counter, float64(comps))
		emit("dbx_engine_compaction_bytes_total", "Segment bytes written by compactions.", counter, float64(compBytes))
		emit("dbx_engine_write_stalls_total", "Writes that waited for a flush (too many level-0 files or frozen memtables).", counter, float64(stalls))
		emit("dbx_engine_read_only_shards", "Shards made read-only by a WAL I/O error or a full disk.", gauge, float64(ro))
		var files, bytes [2]int64
		for _, f := range st.Files {
			if f.Level >= 0 && f.Level < 2 {
				files[f.Level]++
				bytes[f.Level] += f.Bytes
			}
		}
		for l := range 2 {
			emit("dbx_engine_level_files", "Segment files by level.", gauge, float64(files[l]), "level", strconv.Itoa(l))
			emit("dbx_engine_level_bytes", "Segment bytes by level.", gauge, float64(bytes[l]), "level", strconv.Itoa(l))
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(n.cfg.DataDir, &fs); err == nil {
			emit("dbx_engine_disk_free_bytes", "Bytes available to the node on the data directory's file system.", gauge, float64(fs.Bavail)*float64(fs.Bsize))
			emit("dbx_engine_disk_total_bytes", "Size of the data directory's file system.", gauge, float64(fs.Blocks)*float64(fs.Bsize))
		}
	}
	if n.coord != nil && n.mig != nil {
		r := n.coord.Raft()
		rs := r.Stats()
		num := func(k string) float64 { v, _ := strconv.ParseFloat(rs[k], 64); return v }
		emit("dbx_raft_term", "Current Raft term.", gauge, num("term"))
		emit("dbx_raft_commit_index", "Raft commit index.", gauge, num("commit_index"))
		emit("dbx_raft_applied_index", "Raft index applied to the metadata state.", gauge, num("applied_index"))
		emit("dbx_raft_last_log_index", "Last Raft log index.", gauge, num("last_log_index"))
		emit("dbx_raft_apply_lag_entries", "Committed Raft entries not applied yet (commit_index - applied_index).", gauge, max(num("commit_index")-num("applied_index"), 0))
		emit("dbx_raft_voters", "Raft voters in the configuration.", gauge, num("num_peers")+1)
		isLeader, hasLeader := 0.0, 0.0
		if r.State() == raft.Leader {
			isLeader = 1
		}
		if id, _ := n.coord.Leader(); id != "" {
			hasLeader = 1
		}
		emit("dbx_raft_is_leader", "1 on the Raft leader.", gauge, isLeader)
		emit("dbx_raft_has_leader", "1 while this node knows a Raft leader (etcd's has_leader).", gauge, hasLeader)

		s := n.coord.Current()
		info := n.mig.progress(s)
		emit("dbx_placement_epoch", "Placement table epoch in force.", gauge, float64(s.Epoch()))
		if t := n.holder.Load(); t != nil {
			for _, id := range t.Nodes() {
				emit("dbx_placement_buckets", "Buckets each node is primary for.", gauge, float64(len(t.BucketsOf(id))), "node", id)
			}
		}
		states := map[string]int{}
		for _, m := range s.Members() {
			states[string(m.State)]++
		}
		for st, k := range states {
			emit("dbx_placement_members", "Cluster members by state (active, joining, draining, left).", gauge, float64(k), "state", st)
		}
		active := 0.0
		if info.Active {
			active = 1
		}
		emit("dbx_placement_migration_active", "1 while a placement change is carried out.", gauge, active)
		emit("dbx_placement_moves", "Bucket moves of the current placement change, by state.", gauge, float64(info.Pending), "state", "pending")
		emit("dbx_placement_moves", "Bucket moves of the current placement change, by state.", gauge, float64(info.Moving), "state", "moving")
		emit("dbx_placement_moves", "Bucket moves of the current placement change, by state.", gauge, float64(info.Done), "state", "done")
		emit("dbx_placement_move_bytes", "Bytes copied by the finished moves of the current placement change.", gauge, float64(info.Bytes))
		_, _, _, _, failed := n.backend.ClusterView().ClusterState()
		emit("dbx_cluster_buckets_failed", "Buckets whose primary this node's failure detection holds failed (with RF 1: no live copy; CLUSTER INFO cluster_slots_fail).", gauge, float64(failed))
		s = n.coord.Current()
		emit("dbx_replication_factor", "The cluster's replication factor (owners per bucket).", gauge, float64(s.ReplicationFactor()))
		emit("dbx_replication_under_replicated_buckets", "Buckets whose in-sync replica set is smaller than the replication factor.", gauge, float64(s.UnderReplicated()))
	}
	if d := n.repl; d != nil {
		d.mu.Lock()
		rs, st := d.r.Stats(), d.status
		d.mu.Unlock()
		for role, v := range map[string]int{"primary": rs.Primary, "backup": rs.Backup, "learner": rs.Learner} {
			emit("dbx_replication_buckets", "Buckets this node holds, by replication role (learner: an owner catching up, outside the in-sync set).", gauge, float64(v), "role", role)
		}
		emit("dbx_replication_quiet_buckets", "Primary buckets quiesced (no heartbeats until used).", gauge, float64(rs.Quiet))
		emit("dbx_replication_lagging_replicas", "In-sync replicas of this node's primary buckets behind the log end.", gauge, float64(rs.Lagging))
		emit("dbx_replication_lag_entries", "Entries the lagging replicas of this node's primary buckets miss, in all.", gauge, float64(rs.LagEntries))
		emit("dbx_replication_failovers_total", "Promotions of a replica to primary this node proposed as metadata leader (a retried proposal counts again).", counter, float64(st.Failovers))
		emit("dbx_replication_config_changes_total", "Replica set changes this node's primaries proposed (a replica out after falling behind, or back in once caught up).", counter, float64(st.Removed))
		emit("dbx_replication_need_copy_total", "Times a replica was found too far behind for a delta (it stays out of the set: full copies are not done yet).", counter, float64(st.NeedCopy))
		emit("dbx_replication_bad_messages_total", "Replication batches or messages refused (checksum, bounds, wrong recipient).", counter, float64(st.BadMessages))
	}
	if n.ml != nil {
		states := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
		for _, m := range n.ml.Members() {
			switch m.State {
			case memberlist.StateAlive:
				states["alive"]++
			case memberlist.StateSuspect:
				states["suspect"]++
			case memberlist.StateDead:
				states["dead"]++
			case memberlist.StateLeft:
				states["left"]++
			}
		}
		for st, k := range states {
			emit("dbx_gossip_members", "Gossip members by state as this node sees them.", gauge, float64(k), "state", st)
		}
		emit("dbx_gossip_health_score", "memberlist's awareness score: 0 healthy, rises as this node's probes fail or time out.", gauge, float64(n.ml.GetHealthScore()))
	}
}
