//go:build windows

package cputime

import (
	"fmt"
	"time"

	"golang.org/x/sys/windows"
)

// Self is the CPU time this process has used, user and kernel.
func Self() (time.Duration, error) {
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user); err != nil {
		return 0, fmt.Errorf("cputime: GetProcessTimes: %w", err)
	}
	// The two are spans, not dates: counts of 100 ns (Filetime's
	// Nanoseconds would subtract the epoch of 1601).
	span := func(f windows.Filetime) time.Duration {
		return time.Duration(int64(f.HighDateTime)<<32|int64(f.LowDateTime)) * 100
	}
	return span(kernel) + span(user), nil
}
