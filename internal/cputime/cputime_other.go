//go:build !unix && !windows

package cputime

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Self would be the CPU time this process has used, which this build
// cannot read.
func Self() (time.Duration, error) {
	return 0, fmt.Errorf("cputime: not measured on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
