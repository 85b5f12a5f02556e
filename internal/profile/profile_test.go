package profile

import (
	"os"
	"path/filepath"
	"testing"
)

// Both profiles land in their files, non-empty; an empty CPU path writes
// nothing; a path that cannot be created is an error, not a silent skip.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	stop, err := StartCPU(filepath.Join(dir, "cpu"))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if err := WriteHeap(filepath.Join(dir, "heap")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cpu", "heap"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s profile: %v, %v", name, st, err)
		}
	}
	if stop, err := StartCPU(""); err != nil || stop == nil {
		t.Errorf("empty path: %v", err)
	} else {
		stop()
	}
	bad := filepath.Join(dir, "no", "such", "dir")
	if _, err := StartCPU(bad); err == nil {
		t.Error("cpu profile into a missing directory: no error")
	}
	if err := WriteHeap(bad); err == nil {
		t.Error("heap profile into a missing directory: no error")
	}
}
