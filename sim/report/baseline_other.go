//go:build !unix

package report

import (
	"errors"
	"fmt"
	"runtime"
)

// mapAnon is not available here: the baseline maps its array with an
// anonymous mmap, outside the Go heap, so that it adds nothing to the
// simulation's memory, and this build has no mmap. A Go slice would time
// something else (and stay in the heap), so --baseline says so instead.
func mapAnon(size int) ([]byte, func(), error) {
	return nil, nil, fmt.Errorf("report: the random-read baseline is not available on %s (it needs an anonymous mmap): %w", runtime.GOOS, errors.ErrUnsupported)
}
