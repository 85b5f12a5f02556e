//go:build !windows

package durable

// On Unix the syscall constants in reason.go are the errors the kernel
// returns; there is nothing more to match.

func isDiskFullOS(error) bool { return false }
func isReadOnlyOS(error) bool { return false }
func isQuotaOS(error) bool    { return false }
