//go:build !unix

package main

// terminalRows is 0 where the terminal's size is not read: no pager.
func terminalRows(any) int { return 0 }
