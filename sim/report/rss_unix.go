//go:build unix

package report

import (
	"runtime"

	"github.com/peerq/peerq/query"
	"golang.org/x/sys/unix"
)

// peakRSS is the process's peak resident set size (getrusage), or "?" if
// getrusage fails.
func peakRSS() string {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return "?"
	}
	unit := 1024.0 // Linux and the BSDs count kilobytes
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		unit = 1 // macOS counts bytes
	}
	return query.FormatBytes(float64(ru.Maxrss) * unit)
}
