//go:build race

package ingester

// raceEnabled skips allocation counts under the race detector, whose
// sync.Pool drops a share of what is put back on purpose.
const raceEnabled = true
