//go:build !race

package ingester

const raceEnabled = false
