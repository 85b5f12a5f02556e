// Package profile writes the Go runtime's profiles that peerq's commands
// offer (`peerq sim` and `peerq demo`, --cpuprofile and --memprofile), for
// go tool pprof: one place for the files' handling and errors.
package profile
