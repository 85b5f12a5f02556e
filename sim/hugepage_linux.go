package sim

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHugePages asks Linux to back a large block with 2 MiB pages. A
// simulator touches its peers in random order, so with 4 KiB pages nearly
// every access misses the TLB; huge pages make those walks rare. Failure is
// harmless (the block keeps small pages).
func adviseHugePages(p unsafe.Pointer, size uintptr) {
	const page = 4096
	start := (uintptr(p) + page - 1) &^ (page - 1)
	end := (uintptr(p) + size) &^ (page - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}
