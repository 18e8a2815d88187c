package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/router"
)

// adminOpTimeout bounds an admin operation forwarded to the leader.
const adminOpTimeout = 10 * time.Second

// registerAdmin adds the operator endpoints to the admin API:
//
//	POST /v1/nodes/{id}/weight  body {"weight": W}
//	POST /v1/nodes/{id}/drain
//
//	POST /v1/migration/limits  body {"concurrency": N, "bytes_per_sec": B}
//
// They run on the Raft leader (forwarded from any node) and answer
// {"epoch": E} on success, or {"error": "..."} with 400 (bad request),
// 404 (unknown member), 409 (refused by the state) or 503 (no leader).
// Weight and drain changes start a migration; GET /v1/cluster shows its
// progress.
func (n *Node) registerAdmin() {
	// GET /v1/buckets/{b}/replica: this node's replication state of
	// bucket b, and why it may not serve it (text, for operators).
	n.admin.Handle("GET /v1/buckets/{b}/replica", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := strconv.ParseUint(r.PathValue("b"), 10, 16)
		if err != nil || b >= router.NumBuckets {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("bucket must be in [0, %d]", router.NumBuckets-1)})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"node": n.cfg.ID, "replica": n.ReplicaStatus(uint16(b))})
	}))
	n.admin.Handle("POST /v1/nodes/{id}/weight", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Weight *float64 `json:"weight"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Weight == nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"weight": W}`})
			return
		}
		n.adminOp(w, r, leaderOp{Op: opWeight, ID: r.PathValue("id"), Weight: *body.Weight})
	}))
	n.admin.Handle("POST /v1/nodes/{id}/drain", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.adminOp(w, r, leaderOp{Op: opDrain, ID: r.PathValue("id")})
	}))
	n.admin.Handle("POST /v1/migration/limits", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Concurrency *int   `json:"concurrency"`
			BytesPerSec *int64 `json:"bytes_per_sec"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || (body.Concurrency == nil && body.BytesPerSec == nil) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"concurrency": N, "bytes_per_sec": B} (either or both)`})
			return
		}
		lim := n.coord.Current().Limits()
		if body.Concurrency != nil {
			lim.Concurrency = *body.Concurrency
		}
		if body.BytesPerSec != nil {
			lim.BytesPerSec = *body.BytesPerSec
		}
		n.adminOp(w, r, leaderOp{Op: opLimits, Limits: lim})
	}))
	n.registerSnapshotAdmin()
}

func (n *Node) adminOp(w http.ResponseWriter, r *http.Request, op leaderOp) {
	ctx, cancel := context.WithTimeout(r.Context(), adminOpTimeout)
	defer cancel()
	res, err := n.leaderDo(ctx, op, nil)
	if err != nil {
		n.log.Warn("admin operation failed", "op", op.Op, "id", op.ID, "err", err)
		writeJSON(w, adminStatus(err), map[string]string{"error": err.Error()})
		return
	}
	n.log.Info("admin operation applied", "op", op.Op, "id", op.ID, "weight", op.Weight, "epoch", res.Epoch)
	writeJSON(w, http.StatusOK, map[string]any{"epoch": res.Epoch})
}

func adminStatus(err error) int {
	switch {
	case errors.Is(err, coordinator.ErrHasData):
		return http.StatusConflict
	case errors.Is(err, coordinator.ErrUnknownMember):
		return http.StatusNotFound
	case errors.Is(err, coordinator.ErrBadCommand):
		return http.StatusBadRequest
	case errors.Is(err, ErrNoLeader), errors.Is(err, coordinator.ErrNotLeader), errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// recoveryCollectors export what the engine's Open could not recover (the
// same figures are in its log lines at start): a torn WAL tail's bytes and
// records, unstorable entries skipped, missing WALs accepted with
// --force-recover. They are fixed for the life of the process.
func recoveryCollectors(r engine.RecoveryReport) []prometheus.Collector {
	g := func(name, help string, v int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(v) })
	}
	return []prometheus.Collector{
		g("dbx_engine_wal_tail_dropped_bytes", "Bytes of damaged or torn WAL tails dropped when the engine opened (see the log for file and offset).", r.TailDroppedBytes),
		g("dbx_engine_wal_tail_dropped_records", "Records known to be lost in dropped WAL tails when the engine opened (a lower bound).", r.TailDroppedRecords),
		g("dbx_engine_recovery_skipped_entries", "WAL entries skipped at open because no segment can store them.", r.SkippedEntries),
		g("dbx_engine_recovery_missing_wals", "Live WALs found missing at open and accepted with --force-recover.", r.MissingWALs),
	}
}
