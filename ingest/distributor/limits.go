package distributor

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Limits are the per-tenant limits the distributor enforces;
// *limits.Overrides implements them. Every method must be cheap and safe
// for concurrent use: Push asks once per request.
type Limits interface {
	// IngestionRate is in samples (histograms and exemplars included) per
	// second; 0 means no limit. IngestionBurstSize is the most samples
	// above the rate one request may take.
	IngestionRate(tenant string) float64
	IngestionBurstSize(tenant string) int
	MaxLabelNamesPerSeries(tenant string) int
	MaxLabelNameLength(tenant string) int
	MaxLabelValueLength(tenant string) int
}

// Defaults of the label limits when neither SetLimits nor the deprecated
// Config fields give them; Mimir's defaults.
const (
	defaultMaxLabelNamesPerSeries = 30
	defaultMaxLabelNameLength     = 1024
	defaultMaxLabelValueLength    = 2048
)

// ReasonRateLimited is the discard reason of samples refused by a tenant's
// ingestion rate limit.
const ReasonRateLimited = "rate_limited"

// configLimits are the limits of a distributor without SetLimits: the
// deprecated Config fields, with Mimir's defaults, and no rate limit.
type configLimits struct{ names, nameLen, valueLen int }

func newConfigLimits(cfg *Config) configLimits {
	or := func(v, d int) int {
		if v > 0 {
			return v
		}
		return d
	}
	return configLimits{
		names:    or(cfg.MaxLabelNamesPerSeries, defaultMaxLabelNamesPerSeries),
		nameLen:  or(cfg.MaxLabelNameLength, defaultMaxLabelNameLength),
		valueLen: or(cfg.MaxLabelValueLength, defaultMaxLabelValueLength),
	}
}

func (configLimits) IngestionRate(string) float64        { return 0 }
func (configLimits) IngestionBurstSize(string) int       { return 0 }
func (c configLimits) MaxLabelNamesPerSeries(string) int { return c.names }
func (c configLimits) MaxLabelNameLength(string) int     { return c.nameLen }
func (c configLimits) MaxLabelValueLength(string) int    { return c.valueLen }

// SetLimits makes Push enforce per-tenant limits l instead of the
// deprecated Config fields. It must be called before the first Push.
func (d *Distributor) SetLimits(l Limits) {
	d.limits = l
}

// tenantOf returns the tenant Push writes for. The scrape and rule paths
// carry none while multi-tenancy is off; their samples are the default
// tenant's.
func tenantOf(ctx context.Context) string {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return tenant.DefaultTenant
	}
	return id
}

// RateLimitError is a push refused as a whole because its tenant is over
// its ingestion rate (HTTP 429). Nothing of it was written.
type RateLimitError struct {
	Tenant  string
	Rate    float64 // samples/s
	Burst   int
	Samples int // in the refused request
	// RetryAfter is when enough tokens will have accumulated for this
	// request; 0 if it is larger than the burst and can never pass.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter <= 0 {
		return fmt.Sprintf("ingestion rate limit (%g samples/s) exceeded for tenant %q: the request holds %d samples, more than the burst size of %d (limits.ingestion_burst_size); send smaller requests or raise the limit (limits.ingestion_rate)",
			e.Rate, e.Tenant, e.Samples, e.Burst)
	}
	return fmt.Sprintf("ingestion rate limit (%g samples/s) exceeded for tenant %q: %d samples refused, retry after %s or raise the limit (limits.ingestion_rate)",
		e.Rate, e.Tenant, e.Samples, e.RetryAfter.Round(time.Millisecond))
}

// retryAfterSeconds is the Retry-After header of e: whole seconds, at
// least 1. A request over the burst never passes; it is told to wait as
// long as a full burst takes to accumulate.
func (e *RateLimitError) retryAfterSeconds() int {
	d := e.RetryAfter
	if d <= 0 && e.Rate > 0 {
		d = time.Duration(float64(e.Burst) / e.Rate * float64(time.Second))
	}
	return max(1, int(math.Ceil(d.Seconds())))
}

// rateLimiters holds one token bucket per tenant. Buckets follow changes of
// the tenant's limits (runtime overrides) at its next request.
type rateLimiters struct {
	mu  sync.Mutex
	lim map[string]*rate.Limiter
}

// take takes n tokens from tenant's bucket at now, or none and an error
// saying when to retry. n == 0 always passes.
func (r *rateLimiters) take(l Limits, id string, n int, now time.Time) error {
	perSec := l.IngestionRate(id)
	if perSec <= 0 || n == 0 {
		return nil
	}
	burst := l.IngestionBurstSize(id)
	r.mu.Lock()
	if r.lim == nil {
		r.lim = map[string]*rate.Limiter{}
	}
	lim := r.lim[id]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(perSec), burst)
		r.lim[id] = lim
	} else {
		if lim.Limit() != rate.Limit(perSec) {
			lim.SetLimitAt(now, rate.Limit(perSec))
		}
		if lim.Burst() != burst {
			lim.SetBurstAt(now, burst)
		}
	}
	r.mu.Unlock()

	if n > burst {
		return &RateLimitError{Tenant: id, Rate: perSec, Burst: burst, Samples: n}
	}
	res := lim.ReserveN(now, n)
	if !res.OK() {
		return &RateLimitError{Tenant: id, Rate: perSec, Burst: burst, Samples: n}
	}
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return &RateLimitError{Tenant: id, Rate: perSec, Burst: burst, Samples: n, RetryAfter: delay}
	}
	return nil
}

// rateLimit takes the samples, histograms and exemplars of req from
// tenant's bucket; over the limit they are all discarded.
func (d *Distributor) rateLimit(id string, req *ingesterpb.PushRequest, now time.Time) error {
	if d.limits.IngestionRate(id) <= 0 {
		return nil
	}
	var samples, exemplars int
	for _, ts := range req.Series {
		samples += len(ts.Samples) + len(ts.Histograms)
		exemplars += len(ts.Exemplars)
	}
	err := d.rate.take(d.limits, id, samples+exemplars, now)
	if err != nil {
		d.discard(id, ReasonRateLimited, samples)
	}
	return err
}
