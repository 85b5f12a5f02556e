//go:build race

package node

// raceDetector says the tests were built with -race.
const raceDetector = true
