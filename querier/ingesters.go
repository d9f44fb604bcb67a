package querier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Ingesters is where a query reads from. ReadSet is called once per query
// (per Querier, and per metadata request) and may return a different set
// each time, as the ring changes.
type Ingesters interface {
	// ReadSet returns the ingesters to ask and the failures the answer
	// tolerates. An error means no complete answer is possible; it should
	// be a promql.ErrStorage so the API answers 5xx.
	ReadSet() (ReadSet, error)
}

// ReadSet is the ingesters one query fans out to, and how many of them may
// fail with the merged answer still complete (because their replicas
// answered).
//
// Ingesters are asked at once. Standby, when not empty, are ingesters that
// could hold data too but are asked only in place of a failed member of
// Ingesters, one standby per failure, in order: a set that leaves out as
// many ingesters as it tolerates failures still meets every write quorum,
// since any quorum of a replication set keeps at least one member among
// those asked. Failures are counted over both lists.
type ReadSet struct {
	Ingesters []Ingester
	Standby   []Ingester
	// MaxErrors is how many ingesters may fail, counted singly.
	MaxErrors int
	// MaxUnavailableZones, when positive, replaces MaxErrors: any number of
	// ingesters may fail as long as they sit in at most this many zones.
	MaxUnavailableZones int
}

// Ingester is one member of a ReadSet.
type Ingester struct {
	// Name identifies the ingester in warnings and errors.
	Name string
	Zone string
	// Client is nil when Err is set.
	Client ingesterpb.IngesterClient
	// Err, when set, is why no client could be had; the ingester counts as
	// failed without being asked.
	Err error
}

// StaticIngesters is a fixed list of ingesters, e.g. the single local one of
// an all-in-one process. Each must answer: no failure is tolerated, since
// nothing says which of them replicate which.
type StaticIngesters []ingesterpb.IngesterClient

// ReadSet implements Ingesters.
func (s StaticIngesters) ReadSet() (ReadSet, error) {
	rs := ReadSet{Ingesters: make([]Ingester, len(s))}
	for i, c := range s {
		rs.Ingesters[i] = Ingester{Name: clientName(c, i), Client: c}
	}
	return rs, nil
}

// maxConcurrencyPerQuery bounds the requests one query has in flight at
// once across all its selectors and ingesters, so that a query over a large
// ring does not open hundreds of streams at the same moment.
const maxConcurrencyPerQuery = 16

// failure is one ingester's failed call.
type failure struct {
	ing    *Ingester
	method string
	err    error
}

// budget counts the failures of one fan-out (one Select, one label query)
// against its read set's tolerance, and hands out the set's standbys in
// place of the failed. Safe for concurrent use.
type budget struct {
	set *ReadSet

	mu      sync.Mutex
	failed  []failure
	fatal   error
	standby int // the next of set.Standby to hand out
}

// replace hands out the next standby to ask in place of ing, whose
// failure (err, of method) the budget tolerated, or nil when none is left;
// and the warning the answer carries for the failure either way.
func (b *budget) replace(ing *Ingester, method string, err error) (*Ingester, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fatal != nil || b.standby >= len(b.set.Standby) {
		return nil, toleratedWarning(ing, method, err)
	}
	b.standby++
	next := &b.set.Standby[b.standby-1]
	return next, replacedWarning(ing, next, method, err)
}

// fail records ing's failure. It returns nil while the failures fit the
// budget, and from then on the one error naming every failed ingester.
func (b *budget) fail(ing *Ingester, method string, err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fatal != nil {
		return b.fatal
	}
	b.failed = append(b.failed, failure{ing: ing, method: method, err: err})
	if b.fits() {
		return nil
	}
	var names []string
	for _, f := range b.failed {
		names = append(names, f.ing.Name)
	}
	var tolerated string
	if b.set.MaxUnavailableZones > 0 {
		tolerated = fmt.Sprintf("failures in at most %d zone(s) tolerated", b.set.MaxUnavailableZones)
	} else {
		tolerated = fmt.Sprintf("at most %d tolerated", b.set.MaxErrors)
	}
	first := b.failed[0]
	b.fatal = promql.ErrStorage{Err: fmt.Errorf("%d of %d ingesters in the read set failed (%s), %s; first failure: ingester %s: %s: %w",
		len(b.failed), len(b.set.Ingesters)+len(b.set.Standby), strings.Join(names, ", "), tolerated, first.ing.Name, first.method, first.err)}
	return b.fatal
}

// setFatal makes err the error of every stream, unless one already is.
func (b *budget) setFatal(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fatal == nil {
		b.fatal = err
	}
}

func (b *budget) fits() bool {
	if b.set.MaxUnavailableZones > 0 {
		zones := map[string]struct{}{}
		for _, f := range b.failed {
			zones[f.ing.Zone] = struct{}{}
		}
		return len(zones) <= b.set.MaxUnavailableZones
	}
	return len(b.failed) <= b.set.MaxErrors
}

// warning is what a tolerated failure adds to the answer's annotations: the
// answer is complete, but clients (Grafana, promtool) should know that a
// replica is down.
func toleratedWarning(ing *Ingester, method string, err error) error {
	return fmt.Errorf("ingester %s failed and was skipped; its replicas answered (%s: %w)", ing.Name, method, err)
}

// replacedWarning is toleratedWarning for a failure a standby made up for.
func replacedWarning(ing, standby *Ingester, method string, err error) error {
	return fmt.Errorf("ingester %s failed and was skipped; ingester %s was asked in its place (%s: %w)", ing.Name, standby.Name, method, err)
}

// contextError turns the error of a call cut short by ctx into the engine's
// own timeout or cancellation, as Prometheus reports them (503 timeout /
// canceled); a storage error would be a 422 execution error. It returns nil
// when ctx is still live: the failure is the ingester's.
func contextError(ctx context.Context) error {
	ctxErr := ctx.Err()
	switch {
	case ctxErr == nil:
		return nil
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return promql.ErrQueryTimeout("fetching series from ingesters")
	case errors.Is(ctxErr, context.Canceled):
		return promql.ErrQueryCanceled("fetching series from ingesters")
	}
	return ctxErr
}

// fanOutUnary calls call on every ingester of set, at most cap(sem) at once,
// and on a standby in place of each that fails, and returns their answers
// in set order (the standby's in the place of the one it replaced; zero for
// failed ingesters) with a warning per tolerated failure. Beyond the budget
// it returns the budget's error and cancels the calls still running. q, if
// not nil, records the call durations.
func fanOutUnary[T any](ctx context.Context, q *Queryable, set *ReadSet, method string, sem chan struct{}, call func(context.Context, ingesterpb.IngesterClient) (T, error)) ([]T, annotations.Annotations, error) {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &budget{set: set}
	results := make([]T, len(set.Ingesters))
	warns := make([][]error, len(set.Ingesters))
	var wg sync.WaitGroup
	// ask calls ing, and on each tolerated failure the next standby in its
	// place, until one answers or none is left.
	ask := func(i int, ing *Ingester) {
		for ing != nil {
			err := ing.Err
			if err == nil {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				start := time.Now()
				var res T
				res, err = call(ctx, ing.Client)
				<-sem
				if q != nil {
					q.observe(method, start, err)
				}
				if err == nil {
					results[i] = res
					return
				}
				if ctx.Err() != nil {
					return // cancelled: the caller's context or another's fatal failure says why
				}
			}
			if b.fail(ing, method, err) != nil {
				cancel()
				return
			}
			next, warning := b.replace(ing, method, err)
			warns[i] = append(warns[i], warning)
			ing = next
		}
	}
	for i := range set.Ingesters {
		wg.Go(func() { ask(i, &set.Ingesters[i]) })
	}
	wg.Wait()
	b.mu.Lock()
	fatal := b.fatal
	b.mu.Unlock()
	if fatal != nil {
		return nil, nil, fatal
	}
	if err := parent.Err(); err != nil {
		return nil, nil, err
	}
	var annos annotations.Annotations
	for _, ws := range warns {
		for _, w := range ws {
			annos.Add(w)
		}
	}
	return results, annos, nil
}
