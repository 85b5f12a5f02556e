package report

import (
	"time"
	"unsafe"
)

// BaselineBytes is the size of the random-read baseline's array: 1 GiB,
// larger than any cache, as a million simulated peers are.
const BaselineBytes = 1 << 30

// RandomRead measures one independent random 8-byte read from an array of
// size bytes (reads of them, median of five batches): the memory-bound
// floor that the simulator's time per peer-round is compared with, on the
// same machine in the same run, so that the ratio means the same on every
// machine. The array is an anonymous mapping with the kernel's default
// pages, as a Go slice of that size gets, touched once before the clock
// starts and unmapped after, so it adds nothing to the simulation's RSS.
// The addresses come from a xorshift generator, not from the array: the
// reads are independent and the CPU may overlap their misses.
//
// It needs an anonymous mmap (baseline_unix.go): on Windows it is not
// available and returns an error that wraps errors.ErrUnsupported
// (baseline_other.go), rather than a figure taken some other way.
func RandomRead(size, reads int) (time.Duration, error) {
	b, unmap, err := mapAnon(size)
	if err != nil {
		return 0, err
	}
	defer unmap()
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), size/8)
	for i := 0; i < len(words); i += 512 {
		words[i] = uint64(i) // one write a page: every page is present
	}
	n := uint64(len(words))
	x, sum := uint64(0x9e3779b97f4a7c15), uint64(0)
	var batches [5]time.Duration
	for bt := range batches {
		start := time.Now()
		for range reads {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			sum += words[x%n]
		}
		batches[bt] = time.Since(start)
	}
	sink = sum
	for i := range batches { // insertion sort of five
		for j := i; j > 0 && batches[j] < batches[j-1]; j-- {
			batches[j], batches[j-1] = batches[j-1], batches[j]
		}
	}
	return batches[2] / time.Duration(reads), nil
}

// sink keeps the reads from being optimised away.
var sink uint64
