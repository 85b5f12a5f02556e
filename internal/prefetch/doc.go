// Package prefetch asks the CPU to start loading memory that will be read
// soon, without waiting for it.
//
// The simulator visits a million peers in random order; each visit misses
// the cache. A plain load issued ahead of time (what the simulator did
// before) overlaps a little, but a missing load holds up the retirement of
// every instruction after it, so the CPU stalls a few hundred instructions
// later. A prefetch instruction retires at once: the misses of the next
// dozen peers then proceed in parallel with this peer's work. See Intel's
// Optimization Reference Manual, "Software Prefetch".
//
// On amd64 Range issues PREFETCHT0 for each 64-byte line; elsewhere it does
// nothing (correct, only slower).
package prefetch
