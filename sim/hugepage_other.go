//go:build !linux

package sim

import "unsafe"

func adviseHugePages(unsafe.Pointer, uintptr) {}
