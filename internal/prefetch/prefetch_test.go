package prefetch

import (
	"testing"
	"unsafe"
)

// Prefetching must not fault or change memory, at any alignment or length,
// including a range that ends at the end of its allocation.
func TestRangeLeavesMemoryAlone(t *testing.T) {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(i * 7)
	}
	for _, c := range []struct{ off, n int }{{0, 0}, {0, 1}, {1, 63}, {63, 2}, {100, 900}, {4095, 1}, {0, 4096}} {
		Range(unsafe.Pointer(&b[c.off]), uintptr(c.n))
	}
	for i := range b {
		if b[i] != byte(i*7) {
			t.Fatalf("byte %d changed to %d", i, b[i])
		}
	}
}

func BenchmarkRange(b *testing.B) {
	buf := make([]byte, 1024)
	for b.Loop() {
		Range(unsafe.Pointer(&buf[0]), 848)
	}
}
