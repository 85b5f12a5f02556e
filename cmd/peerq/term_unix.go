//go:build unix

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// terminalRows is the height of the terminal w writes to, or 0.
func terminalRows(w any) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Row)
}
