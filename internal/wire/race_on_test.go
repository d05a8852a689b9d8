//go:build race

package wire

// raceEnabled reports a race-detector build, in which sync.Pool drops items at random.
const raceEnabled = true
