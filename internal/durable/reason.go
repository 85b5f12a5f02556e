package durable

import (
	"errors"
	"io/fs"
	"syscall"
)

// Reason turns the cause of a failed Write, Probe or Read into a few words
// for a user-facing error, such as "disk full at a5": "disk full",
// "disk quota exceeded", "read-only", "permission denied" or "i/o error".
// It returns "" when the cause is none of these; show the error itself
// then.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case IsDiskFull(err):
		return "disk full"
	case isQuota(err):
		return "disk quota exceeded"
	case IsReadOnly(err):
		return "read-only"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, syscall.EIO):
		return "i/o error"
	}
	return ""
}

// IsDiskFull reports whether err was caused by a full disk.
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || isDiskFullOS(err)
}

// IsReadOnly reports whether err was caused by a file system mounted (or
// remounted, after errors) read-only.
func IsReadOnly(err error) bool {
	return errors.Is(err, syscall.EROFS) || isReadOnlyOS(err)
}

func isQuota(err error) bool {
	return errors.Is(err, syscall.EDQUOT) || isQuotaOS(err)
}
