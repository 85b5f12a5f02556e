//go:build unix

package api

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// ShareToken: the token file goes to the group, 0640, by name or number;
// an unknown group is refused and the file stays as it was.
func TestShareToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, TokenFile)
	stat := func() (os.FileMode, int) {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm(), int(st.Sys().(*syscall.Stat_t).Gid)
	}
	if mode, _ := stat(); mode != 0o600 {
		t.Fatalf("a new token's mode %v, want 0600", mode)
	}
	if err := ShareToken(dir, "no-such-group-peerq"); err == nil || !strings.Contains(err.Error(), "api: token group") {
		t.Errorf("an unknown group: %v", err)
	}
	if mode, _ := stat(); mode != 0o600 {
		t.Errorf("after a refused group the mode is %v, want 0600", mode)
	}
	// By name: this process's own group, which any user may give a file.
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("this process's group has no name: %v", err)
	}
	if err := ShareToken(dir, g.Name); err != nil {
		t.Fatal(err)
	}
	if mode, gid := stat(); mode != 0o640 || gid != os.Getgid() {
		t.Errorf("group %s: mode %v gid %d, want 0640 and %d", g.Name, mode, gid, os.Getgid())
	}
	// By number, to another group: only root may.
	if os.Getuid() == 0 {
		if err := ShareToken(dir, "4242"); err != nil {
			t.Fatal(err)
		}
		if mode, gid := stat(); mode != 0o640 || gid != 4242 {
			t.Errorf("group 4242: mode %v gid %d", mode, gid)
		}
	}
	// The agent's next start reads the same token, and keeps the mode.
	if again, err := LoadOrCreateToken(dir); again != tok || err != nil {
		t.Errorf("reloaded token %q %v, want %q", again, err, tok)
	}
	if mode, _ := stat(); mode != 0o640 {
		t.Errorf("after a reload the mode is %v, want 0640", mode)
	}
}
