//go:build race

package bufpool

// raceEnabled reports a race-detector build, in which sync.Pool drops items at random.
const raceEnabled = true
