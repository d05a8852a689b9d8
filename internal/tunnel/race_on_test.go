//go:build race

package tunnel

// raceEnabled: the race detector's slowdown and memory call for smaller test volumes.
const raceEnabled = true
