package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is peerq's release; a release build sets it with
// -ldflags "-X main.version=v0.2.0".
var version = "0.2.0-dev"

// versionText is the version with what the binary knows of its build: the
// commit and its time (when built from a checkout), and the Go release.
func versionText() string {
	s := "peerq " + version
	if commit, at := buildCommit(); commit != "" {
		s += fmt.Sprintf(" (commit %s, %s)", commit, at)
	}
	return s + fmt.Sprintf(" %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildCommit is the commit the binary was built from, abbreviated to 12
// digits, "+changes" after it if the checkout had changes, and the
// commit's time: from the build's VCS settings (go build in a checkout);
// "" outside one.
func buildCommit() (commit, at string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	var rev, dirty string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = "+changes"
			}
		}
	}
	if rev == "" {
		return "", ""
	}
	return fmt.Sprintf("%.12s%s", rev, dirty), at
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print peerq's version, the commit it was built from, and the Go release",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionText())
		},
	}
}
