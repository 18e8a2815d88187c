package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dbx-kv/dbx/node"
)

// snapshotInfo is a row of GET /v1/snapshots (and GET /v1/snapshots/{id}).
type snapshotInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Epoch   uint64    `json:"epoch"`
	Bytes   int64     `json:"bytes"`
	Files   int       `json:"files"`
	Parts   []struct {
		Node    string `json:"node"`
		Buckets int    `json:"buckets"`
		Files   int    `json:"files"`
		Bytes   int64  `json:"bytes"`
	} `json:"parts"`
}

func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot take|list|show ID|export ID --to DIR",
		Short: "Global snapshots: consistent cluster-wide checkpoints kept in Raft",
	}
	cmd.AddCommand(newSnapshotTakeCmd(), newSnapshotListCmd(), newSnapshotShowCmd(), newSnapshotExportCmd())
	return cmd
}

func newSnapshotTakeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "take",
		Short: "Take a global snapshot (the leader pauses cross-node commit decisions for a moment)",
		Args:  cobra.NoArgs,
	}
	a := adminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		a.hc.Timeout = 11 * time.Minute
		out := cmd.OutOrStdout()
		stop := ticking(out, "taking snapshot")
		var res struct {
			ID       string       `json:"id"`
			TookMs   int64        `json:"took_ms"`
			Snapshot snapshotInfo `json:"snapshot"`
		}
		err := a.do(http.MethodPost, "/v1/snapshots", nil, &res)
		stop()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "snapshot %s taken in %s: %d nodes, %d files, %s\n", res.ID,
			time.Duration(res.TookMs)*time.Millisecond, len(res.Snapshot.Parts), res.Snapshot.Files, humanBytes(res.Snapshot.Bytes))
		return nil
	}
	return cmd
}

func newSnapshotListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List the committed global snapshots, oldest first", Args: cobra.NoArgs}
	a := adminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var list []snapshotInfo
		if err := a.do(http.MethodGet, "/v1/snapshots", nil, &list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tEPOCH\tNODES\tFILES\tSIZE")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.ID, s.Created.Format(time.RFC3339), s.Epoch, len(s.Parts), s.Files, humanBytes(s.Bytes))
		}
		return tw.Flush()
	}
	return cmd
}

func newSnapshotShowCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "show ID", Short: "Show a global snapshot and its per-node parts", Args: cobra.ExactArgs(1)}
	a := adminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var s snapshotInfo
		if err := a.do(http.MethodGet, "/v1/snapshots/"+args[0], nil, &s); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "snapshot %s  created %s  epoch %d  %d files  %s\n", s.ID, s.Created.Format(time.RFC3339), s.Epoch, s.Files, humanBytes(s.Bytes))
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tBUCKETS\tFILES\tSIZE")
		for _, p := range s.Parts {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p.Node, p.Buckets, p.Files, humanBytes(p.Bytes))
		}
		return tw.Flush()
	}
	return cmd
}

func newSnapshotExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export ID --to DIR",
		Short: "Copy every node's part of a snapshot and its manifest into DIR (checksums verified on both sides)",
		Args:  cobra.ExactArgs(1),
	}
	a := adminFlags(cmd)
	var to string
	cmd.Flags().StringVar(&to, "to", "", "directory to export into (created; must be empty)")
	_ = cmd.MarkFlagRequired("to")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		out := cmd.OutOrStdout()
		p := progressPrinter(out, "exported")
		m, err := node.ExportSnapshot(ctx, node.ExportOptions{Admin: a.addr, Token: a.token, ID: args[0], Dir: to, Progress: p.update})
		p.finish()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "snapshot %s exported to %s: %d nodes, %s\n", m.ID, to, len(m.Parts), humanBytes(m.Bytes()))
		return nil
	}
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var opts node.RestoreOptions
	cmd := &cobra.Command{
		Use:   "restore --snapshot ID|DIR --data-dir DIR --id ID [--force]",
		Short: "Replace a STOPPED node's data with its part of a global snapshot",
		Long: "Replace a stopped node's engine directory with its part of a global snapshot:\n" +
			"from its own DataDir/snapshots (--snapshot ID) or from an export (--snapshot DIR).\n" +
			"Every file is checked first; a missing or corrupt one refuses the restore and\n" +
			"leaves the node untouched. Refused if the node last applied another placement\n" +
			"epoch than the snapshot's, unless --force. Restore every node of the snapshot.",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&opts.Snapshot, "snapshot", "", "snapshot ID or export directory")
	f.StringVar(&opts.DataDir, "data-dir", "", "the node's data directory")
	f.StringVar(&opts.ID, "id", "", "the node's ID")
	f.BoolVar(&opts.Force, "force", false, "restore even if the placement epoch changed since the snapshot")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out := cmd.OutOrStdout()
		p := progressPrinter(out, "checked and copied")
		opts.Progress = p.update
		m, err := node.RestoreSnapshot(opts)
		p.finish()
		if err != nil {
			return err
		}
		part, _ := m.Part(opts.ID)
		fmt.Fprintf(out, "node %s restored from snapshot %s (epoch %d): %d files, %s\n", opts.ID, m.ID, m.Epoch, len(part.Files), humanBytes(part.Bytes()))
		return nil
	}
	return cmd
}

// ticking prints "what… Ns" every 2 s while an operation runs (nothing
// if it ends sooner); stop ends it.
func ticking(out io.Writer, what string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tk := time.NewTicker(2 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				fmt.Fprintf(out, "%s… %s\n", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// progress prints byte progress at most once a second, starting only once
// the operation has run for a second.
type progress struct {
	out         io.Writer
	what        string
	start, last time.Time
	printed     bool
	mu          sync.Mutex
}

func progressPrinter(out io.Writer, what string) *progress {
	return &progress{out: out, what: what, start: time.Now()}
}

func (p *progress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.start) < time.Second || time.Since(p.last) < time.Second {
		return
	}
	p.last, p.printed = time.Now(), true
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(p.out, "%s %s of %s (%.0f%%)\n", p.what, humanBytes(done), humanBytes(total), pct)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed {
		fmt.Fprintf(p.out, "done in %s\n", time.Since(p.start).Round(100*time.Millisecond))
	}
}
