package main

import (
	"bytes"
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// screen collects what a pseudo-terminal shows.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the screen, after mark, shows want.
func (s *screen) waitFor(t *testing.T, mark int, want string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if i := strings.Index(s.String()[mark:], want); i >= 0 {
			return mark + i + len(want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the terminal never showed %q; it shows:\n%s", want, s.String()[mark:])
	return 0
}

// The interactive shell in a pseudo-terminal: Tab completes an attribute,
// Ctrl-C cancels a running statement and the shell goes on, Ctrl-D quits.
func TestShellInTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := peerqBinary(t)
	cmd := exec.Command(bin, "demo", "--nodes", "6", "--round", "50ms")
	cmd.Env = append(cmd.Environ(), "HOME="+dir, "TERM=xterm", "PEERQ_PAGER=sed s/^/PAGED:/")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 150})
	if errors.Is(err, pty.ErrUnsupported) {
		t.Skipf("no pseudo-terminal on %s: %v", runtime.GOOS, err) // Windows
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var sc screen
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := tty.Read(b)
			sc.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	// The first line says who answers.
	mark := sc.waitFor(t, 0, "connected to peer peer-000000 of the demo, in this process, in a cluster of 6 member(s)")
	mark = sc.waitFor(t, mark, "peerq> ")

	// Completion: "mem_f" + Tab becomes "mem_free".
	tty.Write([]byte("SELECT MAX(mem_f\t"))
	mark = sc.waitFor(t, mark, "mem_free")
	tty.Write([]byte(") FROM peers;\r"))
	mark = sc.waitFor(t, mark, "MAX(mem_free)")
	mark = sc.waitFor(t, mark, "peerq> ")
	// After WHERE, "reli" + Tab is the attribute (RELEASE cannot follow).
	tty.Write([]byte("SELECT COUNT(*) FROM peers WHERE reli\t"))
	mark = sc.waitFor(t, mark, "reliability")
	tty.Write([]byte(" > 0;\r"))
	mark = sc.waitFor(t, mark, "peerq> ")

	// Ctrl-C cancels a statement that would run for 1000 rounds.
	tty.Write([]byte("SELECT AVG(cpu_load) FROM peers WITH ROUNDS 1000, ACCURACY 0.0001%;\r"))
	mark = sc.waitFor(t, mark, "round ")
	tty.Write([]byte{3})
	mark = sc.waitFor(t, mark, "canceled after")
	mark = sc.waitFor(t, mark, "peerq> ")

	// The shell is alive: one more statement (short: not paged).
	tty.Write([]byte("SELECT COUNT(*) FROM peers;\r"))
	mark = sc.waitFor(t, mark, "COUNT(*)")
	mark = sc.waitFor(t, mark, "peerq> ")
	if strings.Contains(sc.String(), "PAGED:") {
		t.Error("a short answer went through the pager")
	}
	// On a short screen, a long answer goes through the pager.
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 10, Cols: 150}); err != nil {
		t.Fatal(err)
	}
	tty.Write([]byte("\\d\r"))
	mark = sc.waitFor(t, mark, "PAGED:")
	sc.waitFor(t, mark, "peerq> ")
	// Then Ctrl-D.
	tty.Write([]byte{4})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("Ctrl-D did not quit")
	}
}
