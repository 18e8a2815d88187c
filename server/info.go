package server

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KeyspaceCounter is an optional Backend extension for INFO keyspace: the
// keys, how many have an expiry, and the average time left of those (ms).
// nodeScope asks for this node's own buckets only (as DBSIZE on the
// ServeNodeScope port). Without it INFO counts keys with DBSize and
// reports expires=0.
type KeyspaceCounter interface {
	Keyspace(ctx context.Context, nodeScope bool) (KeyspaceInfo, error)
}

// KeyspaceInfo is INFO keyspace's db0 line.
type KeyspaceInfo struct {
	Keys, Expires, AvgTTLMs int64
}

// infoSections are INFO's sections in Redis's order; the flag says
// whether "INFO" / "INFO default" includes it (commandstats and
// latencystats come only with "all", "everything" or by name, as in Redis).
var infoSections = []struct {
	name string
	def  bool
}{
	{"Server", true}, {"Clients", true}, {"Memory", true}, {"Persistence", true}, {"Stats", true},
	{"Replication", true}, {"CPU", true}, {"Commandstats", false}, {"Errorstats", true},
	{"Latencystats", false}, {"Cluster", true}, {"Keyspace", true}, {"Dbx", true},
}

type infoBuilder struct {
	order  []string
	fields map[string][][2]string
}

func (ib *infoBuilder) add(section string, kv ...[2]string) {
	key := strings.ToLower(section)
	if _, ok := ib.fields[key]; !ok {
		ib.order = append(ib.order, section)
	}
	ib.fields[key] = append(ib.fields[key], kv...)
}

// merge adds a backend's section: a field it names again replaces the
// server's, new fields are appended.
func (ib *infoBuilder) merge(sec InfoSection) {
	key := strings.ToLower(sec.Name)
	cur, ok := ib.fields[key]
	if !ok {
		ib.add(sec.Name, sec.Fields...)
		return
	}
	for _, f := range sec.Fields {
		replaced := false
		for i := range cur {
			if cur[i][0] == f[0] {
				cur[i][1], replaced = f[1], true
				break
			}
		}
		if !replaced {
			cur = append(cur, f)
		}
	}
	ib.fields[key] = cur
}

func i64(v int64) string { return strconv.FormatInt(v, 10) }

func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// humanBytes is Redis's bytesToHuman: "1.23M".
func humanBytes(n uint64) string {
	f := float64(n)
	for _, u := range []string{"B", "K", "M", "G", "T", "P"} {
		if f < 1024 || u == "P" {
			if u == "B" {
				return strconv.FormatUint(n, 10) + "B"
			}
			return f2(f) + u
		}
		f /= 1024
	}
	return ""
}

// goMemory reads the Go runtime's memory figures without stopping the
// world: heap objects + stacks + runtime metadata in use ("used"), and
// everything mapped from the OS ("total").
func goMemory() (used, total, heap, stacks uint64) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/metadata/other:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	metrics.Read(samples)
	val := func(i int) uint64 {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			return samples[i].Value.Uint64()
		}
		return 0
	}
	heap, stacks = val(0), val(1)
	return heap + stacks + val(2), val(3), heap, stacks
}

// rssBytes is the process's resident set (Linux /proc/self/statm), or
// fallback where that cannot be read.
func rssBytes(fallback uint64) uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return fallback
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return fallback
	}
	return pages * uint64(os.Getpagesize())
}

func cmdInfo(s *Server, ctx context.Context, c *session, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	everything := want["all"] || want["everything"]
	def := len(want) == 0 || want["default"]
	shown := func(name string, isDefault bool) bool {
		return everything || (def && isDefault) || want[strings.ToLower(name)]
	}
	ib := &infoBuilder{fields: map[string][][2]string{}}
	for _, sec := range infoSections {
		if shown(sec.name, sec.def) {
			ib.add(sec.name) // fixes the order; fields come below
		}
	}
	now := s.cfg.Now()
	view := s.b.ClusterView()
	up := int64(now.Sub(s.started) / time.Second)
	if shown("Server", true) {
		_, port := hostPort(remoteString(c.local), false, nil)
		ib.add("Server",
			[2]string{"redis_version", s.cfg.Version},
			[2]string{"redis_git_sha1", "00000000"},
			[2]string{"redis_git_dirty", "0"},
			[2]string{"redis_mode", "cluster"},
			[2]string{"os", runtime.GOOS + " " + runtime.GOARCH},
			[2]string{"arch_bits", strconv.Itoa(strconv.IntSize)},
			[2]string{"multiplexing_api", "go"},
			[2]string{"go_version", runtime.Version()},
			[2]string{"process_id", strconv.Itoa(os.Getpid())},
			[2]string{"run_id", s.runID},
			[2]string{"tcp_port", strconv.Itoa(port)},
			[2]string{"server_time_usec", i64(now.UnixMicro())},
			[2]string{"uptime_in_seconds", i64(up)},
			[2]string{"uptime_in_days", i64(up / 86400)},
			[2]string{"hz", "10"},
			[2]string{"configured_hz", "10"},
			[2]string{"executable", executable()},
			[2]string{"dbx_node_id", view.Self},
		)
	}
	if shown("Clients", true) {
		ib.add("Clients",
			[2]string{"connected_clients", i64(s.conns.Load())},
			[2]string{"cluster_connections", "0"},
			[2]string{"maxclients", i64(s.connsMax.Load())},
			[2]string{"client_recent_max_input_buffer", i64(s.budget.Peak())},
			[2]string{"client_recent_max_output_buffer", "0"},
			[2]string{"blocked_clients", "0"},
			[2]string{"tracking_clients", "0"},
			[2]string{"pubsub_clients", "0"},
			[2]string{"watching_clients", "0"},
			[2]string{"clients_in_timeout_table", "0"},
			[2]string{"total_watched_keys", "0"},
			[2]string{"total_blocking_keys", "0"},
			[2]string{"client_query_buffer_limit", strconv.Itoa(s.limits.RequestBytesMax)},
			[2]string{"dbx_client_input_bytes", i64(s.budget.Used())},
			[2]string{"dbx_client_input_bytes_peak", i64(s.budget.Peak())},
			[2]string{"dbx_client_input_bytes_max", i64(s.budget.Max())},
			[2]string{"dbx_monitors", strconv.Itoa(int(s.monitoring.Load()))},
		)
	}
	if shown("Memory", true) {
		used, total, heap, stacks := goMemory()
		rss := rssBytes(total)
		peak := s.memPeak.Load()
		for used > peak && !s.memPeak.CompareAndSwap(peak, used) {
			peak = s.memPeak.Load()
		}
		peak = max(peak, used)
		frag := 0.0
		if used > 0 {
			frag = float64(rss) / float64(used)
		}
		ib.add("Memory",
			[2]string{"used_memory", strconv.FormatUint(used, 10)},
			[2]string{"used_memory_human", humanBytes(used)},
			[2]string{"used_memory_rss", strconv.FormatUint(rss, 10)},
			[2]string{"used_memory_rss_human", humanBytes(rss)},
			[2]string{"used_memory_peak", strconv.FormatUint(peak, 10)},
			[2]string{"used_memory_peak_human", humanBytes(peak)},
			[2]string{"maxmemory", "0"},
			[2]string{"maxmemory_human", "0B"},
			[2]string{"maxmemory_policy", "noeviction"},
			[2]string{"mem_fragmentation_ratio", f2(frag)},
			[2]string{"mem_allocator", "go"},
			[2]string{"dbx_go_heap_objects_bytes", strconv.FormatUint(heap, 10)},
			[2]string{"dbx_go_stacks_bytes", strconv.FormatUint(stacks, 10)},
			[2]string{"dbx_go_total_bytes", strconv.FormatUint(total, 10)},
		)
	}
	if shown("Persistence", true) {
		// dbx's WAL is an always-on append-only log; it takes no RDB
		// snapshots (global snapshots are on demand: dbx-node snapshot).
		ib.add("Persistence",
			[2]string{"loading", "0"},
			[2]string{"async_loading", "0"},
			[2]string{"rdb_changes_since_last_save", "0"},
			[2]string{"rdb_bgsave_in_progress", "0"},
			[2]string{"rdb_last_save_time", i64(s.started.Unix())},
			[2]string{"rdb_last_bgsave_status", "ok"},
			[2]string{"aof_enabled", "1"},
			[2]string{"aof_rewrite_in_progress", "0"},
			[2]string{"aof_rewrite_scheduled", "0"},
			[2]string{"aof_last_bgrewrite_status", "ok"},
			[2]string{"aof_last_write_status", "ok"},
		)
	}
	if shown("Stats", true) {
		total := s.stats.commandsTotal.Load()
		in, out := s.netBytes()
		errs := int64(0)
		for i := range s.errStats.n {
			errs += s.errStats.n[i].Load()
		}
		ib.add("Stats",
			[2]string{"total_connections_received", i64(s.stats.connsAccepted.Load())},
			[2]string{"total_commands_processed", i64(total)},
			[2]string{"instantaneous_ops_per_sec", strconv.Itoa(int(s.opsPerSec(now, total)))},
			[2]string{"total_net_input_bytes", i64(in)},
			[2]string{"total_net_output_bytes", i64(out)},
			[2]string{"rejected_connections", i64(s.stats.connsRefused.Load())},
			[2]string{"expired_keys", "0"},
			[2]string{"evicted_keys", "0"},
			[2]string{"evicted_clients", "0"},
			[2]string{"pubsub_channels", "0"},
			[2]string{"pubsub_patterns", "0"},
			[2]string{"total_error_replies", i64(errs)},
			[2]string{"client_query_buffer_limit_disconnections", i64(s.stats.tooLarge.Load())},
			[2]string{"dbx_protocol_errors", i64(s.stats.protocolErrors.Load())},
			[2]string{"dbx_rejected_query_buffer", i64(s.stats.tooLarge.Load())},
			[2]string{"dbx_rejected_client_input_memory", i64(s.stats.inputMemory.Load())},
			[2]string{"dbx_connection_panics", i64(s.stats.panics.Load())},
			[2]string{"dbx_slowlog_len", strconv.Itoa(s.slow.len())},
		)
	}
	if shown("Replication", true) {
		role, off, reps := s.role()
		fields := [][2]string{{"role", role}, {"connected_slaves", strconv.Itoa(len(reps))}}
		for i, r := range reps {
			host, port := hostPort(r.Addr, false, nil)
			fields = append(fields, [2]string{"slave" + strconv.Itoa(i), "ip=" + host + ",port=" + strconv.Itoa(port) + ",state=online,offset=" + i64(r.Offset) + ",lag=0"})
		}
		fields = append(fields,
			[2]string{"master_failover_state", "no-failover"},
			[2]string{"master_replid", s.runID},
			[2]string{"master_replid2", "0000000000000000000000000000000000000000"},
			[2]string{"master_repl_offset", i64(off)},
			[2]string{"second_repl_offset", "-1"},
			[2]string{"repl_backlog_active", "0"},
			[2]string{"repl_backlog_size", "0"},
		)
		ib.add("Replication", fields...)
	}
	if shown("CPU", true) {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		var rc syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &rc)
		tv := func(t syscall.Timeval) string {
			return strconv.FormatFloat(float64(t.Sec)+float64(t.Usec)/1e6, 'f', 6, 64)
		}
		ib.add("CPU",
			[2]string{"used_cpu_sys", tv(ru.Stime)},
			[2]string{"used_cpu_user", tv(ru.Utime)},
			[2]string{"used_cpu_sys_children", tv(rc.Stime)},
			[2]string{"used_cpu_user_children", tv(rc.Utime)},
		)
	}
	names := s.commandNames()
	if shown("Commandstats", false) {
		var fields [][2]string
		for _, n := range names {
			st := &s.cmds[n].st
			calls, usec := st.calls.Load(), st.usec.Load()
			if calls == 0 && st.rejected.Load() == 0 {
				continue
			}
			per := 0.0
			if calls > 0 {
				per = float64(usec) / float64(calls)
			}
			fields = append(fields, [2]string{"cmdstat_" + n, "calls=" + i64(calls) + ",usec=" + i64(usec) +
				",usec_per_call=" + f2(per) + ",rejected_calls=" + i64(st.rejected.Load()) + ",failed_calls=" + i64(st.failed.Load())})
		}
		ib.add("Commandstats", fields...)
	}
	if shown("Errorstats", true) {
		var fields [][2]string
		for i, t := range errorTypes {
			if n := s.errStats.n[i].Load(); n > 0 {
				fields = append(fields, [2]string{"errorstat_" + t, "count=" + i64(n)})
			}
		}
		ib.add("Errorstats", fields...)
	}
	if shown("Latencystats", false) {
		var fields [][2]string
		for _, n := range names {
			p := s.cmds[n].st.lat.percentiles(0.5, 0.99, 0.999)
			if p == nil {
				continue
			}
			fields = append(fields, [2]string{"latency_percentiles_usec_" + n, "p50=" + formatUsec(p[0]) + ",p99=" + formatUsec(p[1]) + ",p99.9=" + formatUsec(p[2])})
		}
		ib.add("Latencystats", fields...)
	}
	if shown("Cluster", true) {
		cstate, _, _, _, cfail := view.ClusterState()
		ib.add("Cluster",
			[2]string{"cluster_enabled", "1"},
			[2]string{"cluster_state", cstate},
			[2]string{"dbx_slots_fail", strconv.Itoa(cfail)},
			[2]string{"dbx_placement_epoch", strconv.FormatUint(view.Epoch, 10)},
		)
	}
	if shown("Keyspace", true) {
		ks, err := s.keyspace(ctx, c)
		if err != nil {
			s.replyErr(c, err)
			return
		}
		if ks.Keys > 0 {
			ib.add("Keyspace", [2]string{"db0", "keys=" + i64(ks.Keys) + ",expires=" + i64(ks.Expires) + ",avg_ttl=" + i64(ks.AvgTTLMs)})
		}
	}
	if ip, ok := s.b.(InfoProvider); ok {
		secs, err := ip.Info(ctx)
		if err != nil {
			s.replyErr(c, err)
			return
		}
		for _, sec := range secs {
			if shown(sec.Name, true) {
				ib.merge(sec)
			}
		}
	}
	var b strings.Builder
	for _, name := range ib.order {
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for _, f := range ib.fields[strings.ToLower(name)] {
			b.WriteString(f[0] + ":" + f[1] + "\r\n")
		}
	}
	c.WriteBulkString(b.String())
}

// keyspace counts keys for INFO: this node's buckets on the ServeNodeScope
// port, the cluster's otherwise (as DBSIZE).
func (s *Server) keyspace(ctx context.Context, c *session) (KeyspaceInfo, error) {
	if kc, ok := s.b.(KeyspaceCounter); ok {
		return kc.Keyspace(ctx, c.nodeScope)
	}
	var n int64
	var err error
	if ns, ok := s.b.(NodeScanner); ok && c.nodeScope {
		n, err = ns.DBSizeNode(ctx)
	} else {
		n, err = s.b.DBSize(ctx)
	}
	return KeyspaceInfo{Keys: n}, err
}

// netBytes are the bytes read from and written to clients since start.
func (s *Server) netBytes() (in, out int64) {
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	in, out = s.closedIn.Load(), s.closedOut.Load()
	for c := range s.open {
		in += c.info.inBytes.Load()
		out += c.info.outBytes.Load()
	}
	s.mu.Unlock()
	return in, out
}

// opsPerSec is the command rate since the previous INFO at least 100 ms
// ago (the last rate when INFO comes faster).
func (s *Server) opsPerSec(now time.Time, total int64) float64 {
	s.opsMu.Lock()
	defer s.opsMu.Unlock()
	if s.opsAt.IsZero() {
		s.opsAt, s.opsCount = s.started, 0
	}
	if d := now.Sub(s.opsAt); d >= 100*time.Millisecond {
		s.opsRate = float64(total-s.opsCount) / d.Seconds()
		s.opsAt, s.opsCount = now, total
	}
	return s.opsRate
}

func executable() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}
