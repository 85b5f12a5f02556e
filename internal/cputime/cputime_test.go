package cputime

import (
	"testing"
)

// Work on the CPU adds to the process's CPU time; the time never goes
// back.
func TestSelf(t *testing.T) {
	c0, err := Self()
	if err != nil {
		t.Skipf("no CPU time here: %v", err)
	}
	x := 0
	for c := c0; c == c0; {
		for i := range 10_000_000 {
			x += i % 7
		}
		if c, err = Self(); err != nil {
			t.Fatal(err)
		}
		if c < c0 {
			t.Fatalf("CPU time went back: %v, then %v", c0, c)
		}
	}
	if x < 0 {
		t.Fatal(x)
	}
}
