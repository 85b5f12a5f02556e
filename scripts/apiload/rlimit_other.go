//go:build !unix

package main

// checkFileLimit: Windows has no per-process descriptor limit to raise.
func checkFileLimit(int) string { return "" }
