//go:build race

package sim

// raceDetector says the tests were built with -race.
const raceDetector = true
