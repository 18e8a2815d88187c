package node

import (
	"context"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/snapshot"
)

// Export and restore live in package snapshot; these names are the ones
// dbx-node and the tests have always used.

// Progress is called with the bytes done and the total of a long
// operation (export, restore); it may be nil.
type Progress = snapshot.Progress

// ExportManifestName is the manifest's file in an export directory; each
// node's part is in the directory named by the node's ID next to it.
const ExportManifestName = snapshot.ExportManifestName

// ExportOptions configure ExportSnapshot (snapshot.ExportOptions).
type ExportOptions = snapshot.ExportOptions

// ExportSnapshot copies a snapshot out of a running cluster
// (snapshot.Export).
func ExportSnapshot(ctx context.Context, opts ExportOptions) (coordinator.SnapshotManifest, error) {
	return snapshot.Export(ctx, opts)
}

// RestoreOptions configure RestoreSnapshot (snapshot.RestoreOptions).
type RestoreOptions = snapshot.RestoreOptions

// ErrRestoreRefused reports a restore that was not done; the node's data
// is untouched. It is snapshot.ErrRestoreRefused.
var ErrRestoreRefused = snapshot.ErrRestoreRefused

// RestoreSnapshot puts a stopped node's part of a snapshot back in place
// of its engine directory (snapshot.Restore).
func RestoreSnapshot(opts RestoreOptions) (coordinator.SnapshotManifest, error) {
	return snapshot.Restore(opts)
}
