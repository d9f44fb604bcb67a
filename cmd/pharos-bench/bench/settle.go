package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// SettleCores is the CPU, in cores, under which a process counts as quiet.
const SettleCores = 0.1

// settleGiveUp bounds the wait beyond the minimum for a process that never
// quiets (a busy machine): the queries are then timed anyway.
const settleGiveUp = 2 * time.Minute

// Settle waits, before a timed query phase, at least minWait and then until
// the process whose CPU seconds cpu reads has used under SettleCores for
// two ticks in a row. Right after a write burst or a restart the head is
// still writing the burst's chunks to its chunk files (a once-a-minute
// job, so minWait should cover a minute) and the heap is shrinking: a
// query timed then measures that upkeep too. It returns how long it
// waited; minWait 0 returns at once.
func Settle(ctx context.Context, minWait time.Duration, cpu func() (float64, error)) (time.Duration, error) {
	return settle(ctx, minWait, time.Second, cpu)
}

func settle(ctx context.Context, minWait, tick time.Duration, cpu func() (float64, error)) (time.Duration, error) {
	if minWait <= 0 {
		return 0, nil
	}
	start := time.Now()
	prev, err := cpu()
	if err != nil {
		return 0, err
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for quiet := 0; ; {
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-t.C:
		}
		c, err := cpu()
		if err != nil {
			return time.Since(start), err
		}
		if (c-prev)/tick.Seconds() < SettleCores {
			quiet++
		} else {
			quiet = 0
		}
		prev = c
		waited := time.Since(start)
		if (waited >= minWait && quiet >= 2) || waited >= minWait+settleGiveUp {
			return waited, nil
		}
	}
}

// settleSelf is Settle for this process, which holds the local tsdb.
func settleSelf(ctx context.Context, minWait time.Duration) error {
	_, err := Settle(ctx, minWait, func() (float64, error) { return selfUsage().CPUSeconds, nil })
	return err
}

// Settle is Settle for the target's processes, their CPU summed.
func (t *Target) Settle(ctx context.Context, client *http.Client, minWait time.Duration) error {
	_, err := Settle(ctx, minWait, func() (float64, error) {
		u, err := t.Sample(ctx, client)
		return u.CPUSeconds, err
	})
	if err != nil {
		return fmt.Errorf("settle %s: %w", t.Name, err)
	}
	return nil
}
