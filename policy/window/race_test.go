//go:build race

package window

// The property test is single-goroutine pure computation: the race detector
// finds nothing there and only slows it down, so it runs fewer samples.
const raceEnabled = true
