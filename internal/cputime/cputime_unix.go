//go:build unix

package cputime

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Self is the CPU time this process has used, user and system.
func Self() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cputime: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
