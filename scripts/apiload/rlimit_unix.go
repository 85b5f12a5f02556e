//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// checkFileLimit says when the file-descriptor limit is too small for n
// connections. Go raises the soft RLIMIT_NOFILE to the hard limit when a
// program starts (Linux and macOS, since Go 1.19), so only the hard limit
// can be in the way: raise it with `ulimit -Hn` as root, or in
// /etc/security/limits.conf.
func checkFileLimit(n int) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return ""
	}
	if need := uint64(n) + 64; uint64(lim.Cur) < need {
		return fmt.Sprintf("%d connections need about %d file descriptors; this process may open %d (hard limit %d): "+
			"connections beyond it fail as \"client file limit\"", n, need, lim.Cur, lim.Max)
	}
	return ""
}
