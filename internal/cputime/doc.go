// Package cputime reads the CPU time the process has used, user and
// system together, on every platform peerq is built for: getrusage on
// Unix (cputime_unix.go), GetProcessTimes on Windows (cputime_windows.go);
// elsewhere it says it cannot (ErrUnsupported). The benchmarks that report
// CPU per peer and round, and the idle CPU of the embedded cluster, read
// it; it starts nothing and keeps nothing.
//
// # Usage
//
//	c0, _ := cputime.Self()
//	work()
//	c1, err := cputime.Self()
//	if err == nil {
//		used := c1 - c0
//	}
package cputime
