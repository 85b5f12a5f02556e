package prefetch

import "unsafe"

// Range asks for the cache lines of the n bytes at p.
//
//go:noescape
func Range(p unsafe.Pointer, n uintptr)
