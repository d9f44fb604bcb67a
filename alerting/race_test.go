//go:build race

package alerting

// raceEnabled skips the tests that drive upstream code paths with known
// data races (see skipUpstreamRace).
const raceEnabled = true
