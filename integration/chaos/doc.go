// Package chaos runs dbx clusters in Docker, injects faults and checks what
// the clients saw against models. It owns the harness: the cluster of
// containers (cluster.go), the faults (nemesis.go, netfault.go), the
// workloads that record histories (register.go, bank.go, set.go), global
// snapshots taken during the bank and restored at the end (snapshot.go,
// through the admin API and the operator's export/restore code in node/),
// the checkers (pure functions over those histories, unit-tested with
// hand-made bad histories) and the report. It must not reach into the
// running nodes: everything goes through the docker CLI, RESP and the
// admin API, as an operator's tools would.
//
// # Running
//
//	make chaos-short      # CI mode: one round of every fault, ~3 minutes on 2 cores
//	make chaos            # longer: CHAOS_DURATION=10m by default
//	DBX_CHAOS=1 go test ./integration/chaos -run TestChaos -v -count=1 \
//	    -chaos.duration 10m -chaos.seed 42 -chaos.nemeses partition-halves,pause
//
// Other flags: -chaos.rebalance=false (leave the rebalance nemeses below
// out of the default list), -chaos.hold (how long a fault stays), -chaos.workloads,
// -chaos.multi off (no WATCH/MULTI/EXEC: register without compare-and-set,
// no bank), -chaos.nodes, -chaos.results, -chaos.keep (keep the results of
// a passing run too). -chaos.nemeses none runs the workloads without
// faults.
//
// Without DBX_CHAOS=1, or when `docker info` fails, TestChaos skips at once
// and says why; the checker tests always run. The harness builds a static
// dbx-node, an image FROM scratch with the repository's Dockerfile, and five
// containers with fixed IPs on a private network. Every container, volume,
// network and image it creates carries a run-unique name prefix and the
// label dbx.chaos=<run>, and is removed when the test ends, failed or not
// (`make chaos-clean` removes leftovers of a killed test process).
//
// # Faults
//
// partition-halves, isolate-leader and bridge drop packets between nodes
// with iptables rules applied from the host in each container's network
// namespace (nsenter); loss drops 30% of them (iptables statistic);
// delay uses tc netem (skipped, with the reason, when the kernel lacks
// sch_netem); kill-one and kill-minority send SIGKILL (docker kill) and
// restart the node on its volume; pause freezes a node (docker pause)
// longer than the gossip suspicion timeout; restart stops a node with
// SIGTERM and starts it again. The client (the test process, on the host)
// always reaches every node: a partition splits the nodes, not the client.
// Each fault is healed, then the run waits until every node reports the
// same leader and epoch with all members active and every node serves a
// key of every owner; those times are the reported recovery times.
//
// Membership changes run under the same workloads (rebalance.go; in the
// default list unless -chaos.rebalance=false, and always by name): join
// (a 6th container joins, the run waits until it owns its share; healing
// drains it again, so later faults see 5 nodes), reweight (a non-leader
// to weight 2, back to 1 at heal), drain (a non-leader drained until it
// has left Raft and gossip; healing brings it back as a fresh member: same
// ID and IP, new container, empty data dir), and kill-migration-target /
// kill-migration-source (moves throttled to one at a time and 16 KiB/s,
// so that with the 4 MiB of filler keys the run writes before the
// workloads when a rebalance nemesis is selected a move copies for
// seconds; a non-leader reweighted to 2 — the target of
// every move — or 0.5 — the source of every move — and SIGKILLed once
// /v1/cluster shows a move in progress; healing restores the limits,
// restarts it, waits for the migration and sets weight 1 again). Every
// wait for a migration is bounded (90 s) and fails the run with what it
// waited for; the fault's note gives the migration times.
//
// # Checkers
//
//   - register: GET/SET/compare-and-set (WATCH, GET, MULTI, SET, EXEC) on
//     two keys per node, a new generation of keys every 10 s, checked for
//     linearizability with porcupine, one partition per key. Operations
//     whose outcome is unknown (timeouts, lost connections) are open-ended;
//     a client stops writing a key after an unknown write to it, so each
//     key has few open operations (porcupine's search is exponential in
//     them). porcupine's Unknown (timeout) is a failure, not a pass.
//   - bank: transfers with WATCH/MULTI/EXEC between accounts on different
//     nodes; every read of all accounts (MGET inside MULTI/EXEC) must sum to
//     the total with no negative balance.
//   - set: unique keys written by several clients; at the end every
//     acknowledged key must be there (lost = 0) and nothing present may be
//     something no client wrote (unexpected = 0).
//
// When the server does not accept MULTI, compare-and-set and bank are
// skipped and the report says so.
//
// # Caveats
//
//   - Needs root on the host (nsenter, iptables, tc) for the network faults;
//     without it they are skipped with the reason.
//   - The test process talks to the containers' private IPs, so it must run
//     on the Docker host (Linux), not through a remote Docker context.
//   - Which error replies mean "certainly not applied" is decided by
//     Classify, partly from the text of dbx's "owner unreachable" reply
//     (see notSentMarker); the set checker's failed-but-present count
//     checks that decision on every run.
package chaos
