package api

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/grafana/regexp"
	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/httputil"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/querier/resultwire"
)

// Prefix is the path under which Handler serves.
const Prefix = "/api/v1"

// MetadataFunc returns metric metadata as /api/v1/metadata shows it: at most
// limit metrics and limitPerMetric entries each, a negative limit meaning
// none. querier.NewMetadataFunc builds one over the ingesters.
type MetadataFunc = func(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error)

// Options are what New needs. Queryable, Engine, Metadata and Exemplars
// are required; everything else has a working default.
type Options struct {
	Queryable storage.SampleAndChunkQueryable
	Engine    promql.QueryEngine
	Metadata  MetadataFunc
	// Exemplars answers /api/v1/query_exemplars; querier.NewExemplarQueryable
	// builds one over the ingesters.
	Exemplars storage.ExemplarQueryable

	// PromConfig returns the configuration /api/v1/status/config shows
	// (the scrape section). Nil shows an empty configuration.
	PromConfig func() config.Config
	// Flags is what /api/v1/status/flags shows.
	Flags map[string]string
	// LocalTSDB serves /api/v1/status/tsdb and the WAL replay status when
	// the process holds an ingester (all-in-one); without it they answer
	// with an error.
	// It is a function: an ingester reopens its DB after a storage failure.
	LocalTSDB func() *tsdb.DB
	// MultiTenant refuses /api/v1/status/tsdb: the local head's statistics
	// count every tenant's series, names and values together.
	MultiTenant bool

	Targets       func(context.Context) v1.TargetRetriever
	ScrapePools   func(context.Context) v1.ScrapePoolsRetriever
	Rules         func(context.Context) v1.RulesRetriever
	Alertmanagers func(context.Context) v1.AlertmanagerRetriever

	// Scrapers lists the scrapers whose targets /api/v1/targets,
	// /api/v1/targets/metadata and /api/v1/scrape_pools merge, over HTTP
	// with ScraperClient (nil: http.DefaultClient). Nil leaves those
	// endpoints to Targets and ScrapePools.
	Scrapers      func(context.Context) []ScraperEndpoint
	ScraperClient *http.Client

	// Ready wraps every handler; it should answer 503 until the process is
	// ready. Nil means always ready.
	Ready func(http.HandlerFunc) http.HandlerFunc
	// RuntimeInfo is /api/v1/status/runtimeinfo; nil reports this process.
	RuntimeInfo func() (v1.RuntimeInfo, error)
	Version     *v1.PrometheusVersion
	// ListenAddress and ExternalURL are used to show target URLs.
	ListenAddress string
	ExternalURL   *url.URL
	CORSOrigin    *regexp.Regexp
	// LookbackDelta and QueryTimeout are what the engine was built with;
	// the API shows them and uses them for per-query overrides.
	LookbackDelta time.Duration
	QueryTimeout  time.Duration
	Features      features.Collector
	// RemoteRead bounds /api/v1/read; the zero value means no sample and
	// concurrency limits and Prometheus's 1 MiB frames.
	RemoteRead querier.RemoteReadConfig

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// API is the Prometheus HTTP API of a querier.
type API struct {
	handler  http.Handler
	federate http.Handler
	opts     Options
}

// New builds the API.
func New(opts Options) (*API, error) {
	if opts.Queryable == nil || opts.Engine == nil || opts.Metadata == nil || opts.Exemplars == nil {
		return nil, errors.New("api: Queryable, Engine, Metadata and Exemplars are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PromConfig == nil {
		opts.PromConfig = func() config.Config { return config.DefaultConfig }
	}
	if opts.Flags == nil {
		opts.Flags = map[string]string{}
	}
	if opts.Targets == nil {
		opts.Targets = func(context.Context) v1.TargetRetriever { return emptyTargets{} }
	}
	if opts.ScrapePools == nil {
		opts.ScrapePools = func(context.Context) v1.ScrapePoolsRetriever { return emptyScrapePools{} }
	}
	if opts.Rules == nil {
		opts.Rules = func(context.Context) v1.RulesRetriever { return emptyRules{} }
	}
	if opts.Alertmanagers == nil {
		opts.Alertmanagers = func(context.Context) v1.AlertmanagerRetriever { return emptyAlertmanagers{} }
	}
	if opts.Ready == nil {
		opts.Ready = func(f http.HandlerFunc) http.HandlerFunc { return f }
	}
	if opts.RuntimeInfo == nil {
		start := time.Now()
		opts.RuntimeInfo = func() (v1.RuntimeInfo, error) { return processRuntimeInfo(start), nil }
	}
	if opts.Version == nil {
		opts.Version = &v1.PrometheusVersion{GoVersion: runtime.Version()}
	}
	if opts.ExternalURL == nil {
		opts.ExternalURL = &url.URL{Scheme: "http", Host: opts.ListenAddress}
	}
	if opts.Features == nil {
		opts.Features = features.NewRegistry()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	var db v1.TSDBAdminStats = noLocalTSDB{}
	dbDir := ""
	if opts.LocalTSDB != nil {
		db = localTSDB{db: opts.LocalTSDB, multiTenant: opts.MultiTenant}
		dbDir = opts.LocalTSDB().Dir()
	}

	// Prometheus's read handler gates reads on a channel of this capacity,
	// so its "0 means no limit" would admit none.
	concurrency := opts.RemoteRead.ConcurrentLimit
	if concurrency <= 0 {
		concurrency = math.MaxInt32
	}
	if opts.RemoteRead.MaxBytesInFrame <= 0 {
		opts.RemoteRead.MaxBytesInFrame = querier.DefaultRemoteReadMaxBytesInFrame
	}
	upstream := v1.NewAPI(
		opts.Engine,
		opts.Queryable,
		nil, // no appender: remote write is the distributor's
		opts.Exemplars,
		opts.ScrapePools,
		opts.Targets,
		opts.Alertmanagers,
		opts.PromConfig,
		opts.Flags,
		v1.GlobalURLOptions{ListenAddress: opts.ListenAddress, Host: opts.ExternalURL.Host, Scheme: opts.ExternalURL.Scheme},
		opts.Ready,
		db,
		dbDir,
		false, // admin endpoints would act on one ingester only
		false, // search
		0,
		opts.Logger,
		opts.Rules,
		opts.RemoteRead.SampleLimit, concurrency, opts.RemoteRead.MaxBytesInFrame,
		false, // not an agent
		opts.CORSOrigin,
		opts.RuntimeInfo,
		opts.Version,
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		opts.Gatherer,
		opts.Registerer,
		nil,   // default stats renderer
		false, // remote write: served by the distributor
		nil,
		false, false, false, // OTLP
		opts.LookbackDelta,
		false, false,
		nil,
		opts.Features,
		v1.OpenAPIOptions{ExternalURL: opts.ExternalURL.String(), Version: opts.Version.Version},
		nil, // default parser
		false,
		opts.QueryTimeout,
	)
	router := route.New().WithPrefix(Prefix)
	// The query frontend asks for shards' answers in binary form.
	upstream.InstallCodec(resultwire.Codec{})
	upstream.Register(router)

	a := &API{opts: opts}
	a.federate = newFederation(a, opts.Registerer)
	metadataHandler := opts.Ready(httputil.CompressionHandler{Handler: http.HandlerFunc(a.metricMetadata)}.ServeHTTP)
	var targets *targetsAPI
	if opts.Scrapers != nil {
		targets = &targetsAPI{api: a, scrapers: opts.Scrapers, client: cmp.Or(opts.ScraperClient, http.DefaultClient)}
	}
	a.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// route.Router cannot replace a route Register added, so the one
		// endpoint we answer ourselves is picked off before it.
		if r.URL.Path == Prefix+"/metadata" && r.Method == http.MethodGet {
			metadataHandler(w, r)
			return
		}
		if targets != nil && r.Method == http.MethodGet {
			if h, ok := targets.handler(r.URL.Path); ok {
				h(w, r)
				return
			}
		}
		router.ServeHTTP(w, r)
	})
	return a, nil
}

// Handler serves every /api/v1/ endpoint; mount it at /api/v1/.
func (a *API) Handler() http.Handler { return a.handler }

// metricMetadata mirrors upstream's handler, parameters and errors included,
// with the ingesters as the source.
func (a *API) metricMetadata(w http.ResponseWriter, r *http.Request) {
	httputil.SetCORS(w, a.opts.CORSOrigin, r)
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			a.respond(w, http.StatusBadRequest, &v1.Response{Status: "error", ErrorType: "bad_data", Error: "limit must be a number"})
			return
		}
	}
	limitPerMetric := -1
	if s := r.FormValue("limit_per_metric"); s != "" {
		var err error
		if limitPerMetric, err = strconv.Atoi(s); err != nil {
			a.respond(w, http.StatusBadRequest, &v1.Response{Status: "error", ErrorType: "bad_data", Error: "limit_per_metric must be a number"})
			return
		}
	}
	md, err := a.opts.Metadata(r.Context(), r.FormValue("metric"), limit, limitPerMetric)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			a.respond(w, 499, &v1.Response{Status: "error", ErrorType: "canceled", Error: err.Error()})
			return
		}
		a.respond(w, http.StatusInternalServerError, &v1.Response{Status: "error", ErrorType: "internal", Error: err.Error()})
		return
	}
	a.respond(w, http.StatusOK, &v1.Response{Status: "success", Data: md})
}

func (a *API) respond(w http.ResponseWriter, code int, resp *v1.Response) {
	b, err := jsoniter.ConfigCompatibleWithStandardLibrary.Marshal(resp)
	if err != nil {
		a.opts.Logger.Error("marshal metadata response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		a.opts.Logger.Debug("write metadata response", "err", err)
	}
}

func processRuntimeInfo(start time.Time) v1.RuntimeInfo {
	cwd, _ := os.Getwd()
	host, _ := os.Hostname()
	return v1.RuntimeInfo{
		StartTime:           start,
		CWD:                 cwd,
		Hostname:            host,
		ServerTime:          time.Now().UTC(),
		ReloadConfigSuccess: true,
		LastConfigTime:      start,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
	}
}

// errNoLocalTSDB is what TSDB status endpoints answer on a querier without
// an ingester in its process: the data is spread over ingesters.
var errNoLocalTSDB = errors.New("TSDB status is only available on a process that runs an ingester")

type noLocalTSDB struct{}

func (noLocalTSDB) CleanTombstones() error { return errNoLocalTSDB }
func (noLocalTSDB) Delete(context.Context, int64, int64, ...*labels.Matcher) error {
	return errNoLocalTSDB
}
func (noLocalTSDB) Snapshot(string, bool) error            { return errNoLocalTSDB }
func (noLocalTSDB) Stats(string, int) (*tsdb.Stats, error) { return nil, errNoLocalTSDB }
func (noLocalTSDB) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, errNoLocalTSDB
}
func (noLocalTSDB) BlockMetas() ([]tsdb.BlockMeta, error) { return nil, errNoLocalTSDB }

// errTSDBStatsMultiTenant is /api/v1/status/tsdb's answer in multi-tenant
// mode.
var errTSDBStatsMultiTenant = errors.New("TSDB status is not available with multi-tenancy enabled: the head statistics would show every tenant's metric names and label values")

// localTSDB adapts *tsdb.DB to v1.TSDBAdminStats as Prometheus's
// readyStorage does.
type localTSDB struct {
	db          func() *tsdb.DB
	multiTenant bool
}

func (l localTSDB) CleanTombstones() error { return l.db().CleanTombstones() }
func (l localTSDB) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	return l.db().Delete(ctx, mint, maxt, ms...)
}
func (l localTSDB) Snapshot(dir string, withHead bool) error { return l.db().Snapshot(dir, withHead) }
func (l localTSDB) Stats(name string, limit int) (*tsdb.Stats, error) {
	if l.multiTenant {
		return nil, errTSDBStatsMultiTenant
	}
	return l.db().Head().Stats(name, limit), nil
}

// WALReplayStatus reports no replay in progress: the DB is handed over only
// once open, and tsdb keeps the live status to the opener.
func (localTSDB) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, nil
}
func (l localTSDB) BlockMetas() ([]tsdb.BlockMeta, error) { return l.db().BlockMetas(), nil }

type emptyTargets struct{}

func (emptyTargets) TargetsActive() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }
func (emptyTargets) TargetsDropped() map[string][]*scrape.Target {
	return map[string][]*scrape.Target{}
}
func (emptyTargets) TargetsDroppedCounts() map[string]int { return map[string]int{} }
func (emptyTargets) ScrapePoolConfig(name string) (*config.ScrapeConfig, error) {
	return nil, errors.New("scrape pool " + strconv.Quote(name) + " not found")
}

type emptyScrapePools struct{}

func (emptyScrapePools) ScrapePools() []string { return []string{} }

type emptyRules struct{}

func (emptyRules) RuleGroups() []*rules.Group           { return []*rules.Group{} }
func (emptyRules) AlertingRules() []*rules.AlertingRule { return []*rules.AlertingRule{} }

type emptyAlertmanagers struct{}

func (emptyAlertmanagers) Alertmanagers() []*url.URL        { return []*url.URL{} }
func (emptyAlertmanagers) DroppedAlertmanagers() []*url.URL { return []*url.URL{} }
