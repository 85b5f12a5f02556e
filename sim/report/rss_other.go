//go:build !unix

package report

import "runtime"

// peakRSS would be the process's peak resident set size, which this build
// does not read: there is no getrusage on Windows, and the summary says so
// rather than print a figure.
func peakRSS() string {
	return "not measured on " + runtime.GOOS
}
