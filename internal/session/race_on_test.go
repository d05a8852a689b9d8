//go:build race

package session

// raceEnabled reports a race-detector build, whose memory and time costs make some tests
// scale down (each says how).
const raceEnabled = true
