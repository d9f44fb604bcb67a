//go:build race

package app

// raceEnabled shrinks the cluster tests' data under the race detector, which
// slows tsdb appends about tenfold.
const raceEnabled = true
