package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version, if set at build time (go build -ldflags "-X main.version=v1.2.3"),
// replaces the main module's version from the build info.
var version string

// buildVersion describes the running binary (see formatVersion).
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	return formatVersion(version, bi, ok)
}

// versionLine is the first line of buildVersion: "dbx-node VERSION".
func versionLine() string {
	v, _, _ := strings.Cut(buildVersion(), "\n")
	return v
}

// formatVersion renders the version (override, else the main module's
// version, else "(devel)"), the VCS revision, time and modified flag when
// the build recorded them (not with -buildvcs=false or outside a
// checkout), the Go version and GOOS/GOARCH.
func formatVersion(override string, bi *debug.BuildInfo, ok bool) string {
	v := override
	if v == "" && ok && bi != nil {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	var rev, at, modified string
	if ok && bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dbx-node %s\n", v)
	switch {
	case rev == "":
		b.WriteString("revision: unknown (built without VCS information)\n")
	default:
		if modified == "true" {
			rev += " (modified)"
		}
		fmt.Fprintf(&b, "revision: %s\n", rev)
		if at != "" {
			fmt.Fprintf(&b, "time:     %s\n", at)
		}
	}
	goVersion := runtime.Version()
	if ok && bi != nil && bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(&b, "go:       %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the build: version, VCS revision, Go version, OS/architecture",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), buildVersion())
			return err
		},
	}
}
