package node

import (
	"context"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/snapshot/archive"
)

// Export and restore live in package snapshot; these names are the ones
// dbx-node and the tests have always used.

// Progress is called with the bytes done and the total of a long
// operation (export, restore); it may be nil.
type Progress = archive.Progress

// ExportManifestName is the manifest's file in an export directory; each
// node's part is in the directory named by the node's ID next to it.
const ExportManifestName = archive.ExportManifestName

// ExportOptions configure ExportSnapshot (archive.ExportOptions).
type ExportOptions = archive.ExportOptions

// ExportSnapshot copies a snapshot out of a running cluster
// (archive.Export).
func ExportSnapshot(ctx context.Context, opts ExportOptions) (coordinator.SnapshotManifest, error) {
	return archive.Export(ctx, opts)
}

// RestoreOptions configure RestoreSnapshot (archive.RestoreOptions).
type RestoreOptions = archive.RestoreOptions

// ErrRestoreRefused reports a restore that was not done; the node's data
// is untouched. It is archive.ErrRestoreRefused.
var ErrRestoreRefused = archive.ErrRestoreRefused

// RestoreSnapshot puts a stopped node's part of a snapshot back in place
// of its engine directory (archive.Restore).
func RestoreSnapshot(opts RestoreOptions) (coordinator.SnapshotManifest, error) {
	return archive.Restore(opts)
}
