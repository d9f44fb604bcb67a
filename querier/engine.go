package querier

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// defaultEvaluationInterval is Prometheus's default global evaluation
// interval: the step of a subquery that has none.
const defaultEvaluationInterval = time.Minute

// NewEngine returns the PromQL engine configured as Prometheus configures
// its own by default (@ modifier and negative offsets on). The engine's
// metrics are registered on reg, which may be nil.
func NewEngine(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:               logger,
		Reg:                  reg,
		MaxSamples:           cfg.MaxSamples,
		Timeout:              time.Duration(cfg.Timeout),
		ActiveQueryTracker:   newConcurrencyLimiter(cfg.MaxConcurrent),
		LookbackDelta:        time.Duration(cfg.LookbackDelta),
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return defaultEvaluationInterval.Milliseconds()
		},
		Parser: parser.NewParser(parser.Options{}),
	})
}

// concurrencyLimiter is a promql.QueryTracker that only bounds concurrency.
// Prometheus's ActiveQueryTracker also logs queries to an mmapped file so
// that a crash can name them; a querier has no data directory of its own.
type concurrencyLimiter struct {
	slots chan struct{}
}

var _ promql.QueryTracker = (*concurrencyLimiter)(nil)

func newConcurrencyLimiter(n int) *concurrencyLimiter {
	if n <= 0 {
		n = 1
	}
	return &concurrencyLimiter{slots: make(chan struct{}, n)}
}

func (l *concurrencyLimiter) GetMaxConcurrent() int { return cap(l.slots) }

func (l *concurrencyLimiter) Insert(ctx context.Context, _ string) (int, error) {
	select {
	case l.slots <- struct{}{}:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (l *concurrencyLimiter) Delete(int) { <-l.slots }

func (l *concurrencyLimiter) Close() error { return nil }
