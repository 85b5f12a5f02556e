package main

import "syscall"

// The errnos kindOf tells apart. Windows reports its own (WSA) codes,
// which these do not match: kindOf falls back on the error's text there.
var (
	errRefused      error = syscall.ECONNREFUSED
	errReset        error = syscall.ECONNRESET
	errPipe         error = syscall.EPIPE
	errNoPort       error = syscall.EADDRNOTAVAIL
	errTooManyFiles error = syscall.EMFILE
)
