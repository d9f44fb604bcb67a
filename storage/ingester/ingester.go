package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// ErrClosed is returned (as codes.Unavailable on the wire) by every call that
// arrives after Close has started.
var ErrClosed = errors.New("ingester is shutting down")

// Ingester serves the Ingester gRPC service from one tsdb.DB. It is safe for
// concurrent use; all methods may be called from any goroutine.
type Ingester struct {
	ingesterpb.UnimplementedIngesterServer

	cfg     Config
	logger  *slog.Logger
	db      *tsdb.DB
	metrics *metrics
	// tsdbMets exposes the current DB's prometheus_tsdb_* metrics.
	tsdbMets *tsdbCollectors
	meta     *metadataStore
	// pushReqs recycles the decoded Push requests.
	pushReqs *pushRequests
	// series counts each tenant's head series and enforces their limits.
	series *seriesTracker
	// refs caches pushed series' head refs (refcache.go); nil when off.
	refs *refCache
	// otherTenants is set once the DB holds series of a tenant other than
	// the default one (see tenant.go); it is never cleared.
	otherTenants atomic.Bool

	// mu guards closing, failed, reopening and the db pointer; inflight
	// counts the calls admitted while neither closing nor reopening.
	mu        sync.RWMutex
	closing   bool
	failed    error // the storage failure that stops writes (failure.go)
	reopening bool
	inflight  sync.WaitGroup
	closed    chan struct{} // closed once the tsdb is closed
	closeErr  error

	// testHookPushAdmitted, if set, runs in Push right after admission; tests
	// use it to hold a push in flight.
	testHookPushAdmitted func()
}

// New validates cfg and opens the tsdb in cfg.Path/tsdb, replaying its WAL;
// it returns once the ingester is ready to accept pushes. The tsdb's own
// metrics (prometheus_tsdb_*) and the ingester's (pharos_ingester_*) are
// registered on reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("storage config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register ingester metrics: %w", err)
	}
	// The tsdb's metrics go through tsdbCollectors, so that a DB reopened
	// after a storage failure takes over the same metric names.
	tc := &tsdbCollectors{}
	rec := tc.next()
	series := newSeriesTracker()
	var refs *refCache
	if cfg.SeriesRefCache {
		refs = newRefCache()
	}
	opts := cfg.tsdbOptions()
	opts.SeriesLifecycleCallback = lifecycle{seriesTracker: series, refs: refs}
	db, err := tsdb.Open(cfg.TSDBDir(), logger.With("component", "tsdb"), rec, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb %s: %w", cfg.TSDBDir(), err)
	}
	series.opened()
	tc.use(rec)
	if reg != nil {
		if err := reg.Register(tc); err != nil {
			return nil, errors.Join(fmt.Errorf("register tsdb metrics: %w", err), db.Close())
		}
	}
	i := &Ingester{
		cfg:      cfg,
		logger:   logger,
		db:       db,
		metrics:  m,
		tsdbMets: tc,
		meta:     newMetadataStore(cfg.MetadataMaxFamilies),
		pushReqs: newPushRequests(),
		series:   series,
		refs:     refs,
		closed:   make(chan struct{}),
	}
	if err := m.registerMetadata(reg, i.meta); err != nil {
		return nil, errors.Join(fmt.Errorf("register metadata metrics: %w", err), db.Close())
	}
	if reg != nil {
		if err := reg.Register(series); err != nil {
			return nil, errors.Join(fmt.Errorf("register active series metric: %w", err), db.Close())
		}
	}
	if err := i.scanTenants(context.Background()); err != nil {
		return nil, errors.Join(fmt.Errorf("find the tenants in the tsdb: %w", err), db.Close())
	}
	logger.Info("ingester ready", "path", cfg.TSDBDir(), "head_series", db.Head().NumSeries())
	return i, nil
}

// Register registers the Ingester service on s. Push is registered with a
// handler that decodes the request into a pooled buffer of the ingester's own
// (pushRequest) and reuses it once the push is done. A server with a unary
// interceptor gets a PushRequest from the vtproto pool instead, returned
// after the handler and interceptor have returned, so interceptors on s must
// not keep the request beyond the call.
func (i *Ingester) Register(s *grpc.Server) {
	desc := ingesterpb.Ingester_ServiceDesc
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for k := range desc.Methods {
		if desc.Methods[k].MethodName == "Push" {
			desc.Methods[k].Handler = pooledPushHandler
		}
	}
	s.RegisterService(&desc, i)
}

func pooledPushHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	if ing, ok := srv.(*Ingester); ok && interceptor == nil {
		r := ing.pushReqs.get()
		defer ing.pushReqs.put(r)
		if err := dec(r); err != nil {
			return nil, err
		}
		return ing.pushFrom(ctx, r)
	}
	in := ingesterpb.PushRequestFromVTPool()
	defer in.ReturnToVTPool()
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(ingesterpb.IngesterServer).Push(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: ingesterpb.Ingester_Push_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return srv.(ingesterpb.IngesterServer).Push(ctx, req.(*ingesterpb.PushRequest))
	})
}

// DB is the underlying tsdb, for status pages and all-in-one wiring. Callers
// must not close it.
func (i *Ingester) DB() *tsdb.DB {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.db
}

// Ready returns nil while the ingester accepts pushes: New has replayed the
// WAL and Close has not started.
func (i *Ingester) Ready(context.Context) error {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.closing {
		return ErrClosed
	}
	if i.failed != nil {
		return fmt.Errorf("storage failed, writes refused until it recovers: %w", i.failed)
	}
	return nil
}

// Close stops admitting calls (they fail with codes.Unavailable), waits for
// in-flight calls until ctx ends, then closes the tsdb. If ctx ends first the
// tsdb is closed anyway and ctx's error is returned with any close error.
// Calling Close again waits for the first Close and returns its result.
func (i *Ingester) Close(ctx context.Context) error {
	i.mu.Lock()
	if i.closing {
		i.mu.Unlock()
		select {
		case <-i.closed:
			return i.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	i.closing = true
	i.mu.Unlock()

	drained := make(chan struct{})
	go func() {
		i.inflight.Wait()
		close(drained)
	}()
	var waitErr error
	select {
	case <-drained:
	case <-ctx.Done():
		waitErr = fmt.Errorf("wait for in-flight requests: %w", ctx.Err())
	}
	i.mu.RLock()
	db := i.db
	i.mu.RUnlock()
	i.closeErr = errors.Join(waitErr, db.Close())
	close(i.closed)
	return i.closeErr
}

// enter admits a call; the caller must call i.inflight.Done when it returns.
func (i *Ingester) enter() error {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.closing {
		return status.Error(codes.Unavailable, ErrClosed.Error())
	}
	if i.reopening {
		return status.Error(codes.Unavailable, "ingester is reopening its storage after a failure")
	}
	i.inflight.Add(1)
	return nil
}
