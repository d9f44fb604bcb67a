package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSettleWaitsForQuiet: Settle returns only after the minimum wait and
// two quiet ticks, however long the process stays busy before.
func TestSettleWaitsForQuiet(t *testing.T) {
	const tick = time.Millisecond
	busyTicks, reads := 20, 0
	cpu := func() (float64, error) {
		reads++
		if reads <= busyTicks {
			// A whole core per tick: busy.
			return float64(reads) * tick.Seconds(), nil
		}
		return float64(busyTicks) * tick.Seconds(), nil
	}
	waited, err := settle(context.Background(), 2*tick, tick, cpu)
	require.NoError(t, err)
	require.GreaterOrEqual(t, reads, busyTicks+2, "returned while the process was busy")
	require.GreaterOrEqual(t, waited, 2*tick)

	waited, err = settle(context.Background(), 0, tick, cpu)
	require.NoError(t, err)
	require.Zero(t, waited, "minWait 0 does not wait")
}

func TestSettleStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := settle(ctx, time.Hour, time.Millisecond, func() (float64, error) { return 0, nil })
	require.ErrorIs(t, err, context.Canceled)
}
