//go:build unix

package report

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mapAnon maps size bytes of anonymous memory with the kernel's default
// pages, and says how to unmap them.
func mapAnon(size int) ([]byte, func(), error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("report: mapping the baseline's %d bytes: %w", size, err)
	}
	return b, func() { unix.Munmap(b) }, nil
}
