package durable

import (
	"errors"
	"syscall"
)

// On Windows syscall.ENOSPC and friends are values Go invented, which the
// system never returns; these are the codes it does return (winerror.h).
const (
	errorWriteProtect      syscall.Errno = 19   // ERROR_WRITE_PROTECT
	errorHandleDiskFull    syscall.Errno = 39   // ERROR_HANDLE_DISK_FULL
	errorDiskFull          syscall.Errno = 112  // ERROR_DISK_FULL
	errorDiskQuotaExceeded syscall.Errno = 1295 // ERROR_DISK_QUOTA_EXCEEDED
)

func isDiskFullOS(err error) bool {
	return errors.Is(err, errorDiskFull) || errors.Is(err, errorHandleDiskFull)
}

func isReadOnlyOS(err error) bool { return errors.Is(err, errorWriteProtect) }
func isQuotaOS(err error) bool    { return errors.Is(err, errorDiskQuotaExceeded) }
