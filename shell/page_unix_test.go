//go:build unix

package shell

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The pager leaves the process's signal handling as it found it: a
// program that runs the shell as a library and catches Ctrl-C itself
// still hears it while the pager runs and after, and a Ctrl-C meant for
// the pager does not end the process.
func TestPageLeavesSignalsAlone(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	// A pager that is sent Ctrl-C (as the terminal sends it to the whole
	// foreground group: here, to the test process) and then shows its input.
	script := filepath.Join(t.TempDir(), "pager.sh")
	if err := os.WriteFile(script, []byte("kill -INT $PPID\ncat\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mine := make(chan os.Signal, 4)
	signal.Notify(mine, os.Interrupt)
	defer signal.Stop(mine)

	var out bytes.Buffer
	if err := page("sh "+script, "a tall answer\n", &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a tall answer\n" {
		t.Errorf("the pager showed %q", out.String())
	}
	select {
	case <-mine:
	case <-time.After(10 * time.Second):
		t.Fatal("the caller's own SIGINT channel did not hear the Ctrl-C sent while the pager ran: page took it over")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mine:
	case <-time.After(10 * time.Second):
		t.Fatal("after the pager, the caller's SIGINT channel no longer hears Ctrl-C: page reset it")
	}
}
