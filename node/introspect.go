package node

import (
	"context"
	"strconv"

	"github.com/dbx-kv/dbx/server"
)

// Info implements server.InfoProvider: the engine's figures in INFO
// memory and persistence, and the dbx section (engine, Raft, placement).
func (b *backend) Info(context.Context) ([]server.InfoSection, error) {
	n := b.n
	st := n.store.Stats()
	var mem, imm, l0, l1, flushes, compactions, syncs int64
	readOnly := ""
	for _, sh := range st.Shards {
		mem += sh.MemtableBytes
		imm += int64(sh.Immutable)
		l0 += int64(sh.L0Files)
		l1 += int64(sh.L1Files)
		flushes += sh.Flushes
		compactions += sh.Compactions
		syncs += sh.Syncs
		if sh.ReadOnly != "" && readOnly == "" {
			readOnly = sh.ReadOnly
		}
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	writeStatus := "ok"
	if readOnly != "" {
		writeStatus = "err"
	}
	secs := []server.InfoSection{
		{Name: "Server", Fields: [][2]string{{"dbx_version", n.cfg.Version}}},
		{Name: "Memory", Fields: [][2]string{
			{"used_memory_dataset", i(mem)},
			{"dbx_engine_memtable_bytes", i(mem)},
			{"dbx_engine_memtables_immutable", i(imm)},
		}},
		{Name: "Persistence", Fields: [][2]string{
			{"aof_last_write_status", writeStatus},
			{"dbx_wal_sync", n.cfg.Sync},
			{"dbx_engine_read_only", strconv.Quote(readOnly)},
		}},
	}
	raftFields := [][2]string{}
	if c := n.coord; c != nil {
		rs := c.Raft().Stats()
		leader, _ := c.Leader()
		raftFields = append(raftFields,
			[2]string{"dbx_raft_state", rs["state"]},
			[2]string{"dbx_raft_term", rs["term"]},
			[2]string{"dbx_raft_commit_index", rs["commit_index"]},
			[2]string{"dbx_raft_applied_index", rs["applied_index"]},
			[2]string{"dbx_raft_leader", leader},
		)
	}
	var epoch uint64
	buckets := 0
	if t := n.holder.Load(); t != nil {
		epoch = t.Epoch()
		buckets = len(t.BucketsOf(n.cfg.ID))
	}
	dbx := [][2]string{
		{"dbx_node_id", n.cfg.ID},
		{"dbx_engine_shards", strconv.Itoa(len(st.Shards))},
		{"dbx_engine_segment_bytes", i(st.SegmentBytes)},
		{"dbx_engine_l0_files", i(l0)},
		{"dbx_engine_l1_files", i(l1)},
		{"dbx_engine_flushes", i(flushes)},
		{"dbx_engine_compactions", i(compactions)},
		{"dbx_engine_wal_syncs", i(syncs)},
		{"dbx_placement_epoch", strconv.FormatUint(epoch, 10)},
		{"dbx_buckets_owned", strconv.Itoa(buckets)},
	}
	secs = append(secs, server.InfoSection{Name: "Dbx", Fields: append(dbx, raftFields...)})
	return secs, nil
}

// configSettings are the node's read-only CONFIG GET parameters, in
// Redis's names where one exists.
func (n *Node) configSettings() [][2]string {
	fsync := map[string]string{"always": "always", "interval": "everysec", "none": "no"}[n.cfg.Sync]
	_, port := splitPort(n.respAddr)
	return [][2]string{
		{"appendfsync", fsync},
		{"dir", n.cfg.DataDir},
		{"port", port},
		{"bind", n.cfg.RESPAddr},
		{"cluster-announce-ip", n.cfg.AdvertiseHost},
		{"dbx-id", n.cfg.ID},
		{"dbx-sync", n.cfg.Sync},
		{"dbx-weight", strconv.FormatFloat(n.cfg.Weight, 'g', -1, 64)},
		{"dbx-http-addr", n.httpAddr},
		{"dbx-rpc-addr", n.rpcAddr},
		{"dbx-txn-keys-max", strconv.Itoa(n.cfg.TxnKeysMax)},
		{"dbx-version", n.cfg.Version},
	}
}

func splitPort(addr string) (host, port string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}
