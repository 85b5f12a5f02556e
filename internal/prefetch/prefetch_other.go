//go:build !amd64

package prefetch

import "unsafe"

// Range asks for the cache lines of the n bytes at p: on this architecture,
// nothing is done.
func Range(p unsafe.Pointer, n uintptr) {}
