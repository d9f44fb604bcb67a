package ingester

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

type metrics struct {
	pushes            *prometheus.CounterVec // by outcome
	pushOK            prometheus.Counter
	samplesAppended   prometheus.Counter
	histogramsApp     prometheus.Counter
	exemplarsAppended prometheus.Counter
	exemplarsRejected prometheus.Counter
	rejected          [numReasons]prometheus.Counter // indexed by reason
	metadataDropped   prometheus.Counter
	queryStreams      *prometheus.CounterVec // by outcome
	seriesStreamed    prometheus.Counter
	storageFailures   prometheus.Counter
	storageRecoveries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_ingester_push_requests_total",
			Help: "Push requests by outcome: ok, or the gRPC code of the failure.",
		}, []string{"outcome"}),
		samplesAppended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_ingester_samples_appended_total",
			Help: "Float samples committed to the tsdb.",
		}),
		histogramsApp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_ingester_histograms_appended_total",
			Help: "Native histogram samples committed to the tsdb.",
		}),
		exemplarsAppended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_ingester_exemplars_appended_total",
			Help: "Exemplars committed to the tsdb.",
		}),
		exemplarsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_ingester_exemplars_rejected_total",
			Help: "Exemplars the tsdb refused (out of order, invalid, storage disabled).",
		}),
		metadataDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_ingester_metadata_dropped_total",
			Help: "Metadata of new metric families dropped because the metadata map was full.",
		}),
	}
	m.queryStreams = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_ingester_query_streams_total",
		Help: "QueryStream requests by outcome: ok, canceled (the querier gave up: its client went away, a limit was hit or the query timed out) or error.",
	}, []string{"outcome"})
	m.seriesStreamed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pharos_ingester_query_stream_series_total",
		Help: "Series sent by QueryStream.",
	})
	m.storageFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pharos_ingester_storage_failures_total",
		Help: "Commits to the tsdb that failed (disk full, I/O error); each stops writes until the storage recovers.",
	})
	m.storageRecoveries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pharos_ingester_storage_recoveries_total",
		Help: "Times the tsdb was reopened after a storage failure, its WAL replayed.",
	})
	m.pushOK = m.pushes.WithLabelValues("ok")
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_ingester_samples_rejected_total",
		Help: "Samples and histograms rejected one by one, by reason.",
	}, []string{"reason"})
	for code, name := range ingesterpb.SeriesError_Reason_name {
		m.rejected[code] = rejected.WithLabelValues(reasonLabel(name))
	}
	for _, c := range []prometheus.Collector{m.pushes, m.samplesAppended, m.histogramsApp, m.exemplarsAppended, m.exemplarsRejected, m.metadataDropped, rejected, m.queryStreams, m.seriesStreamed, m.storageFailures, m.storageRecoveries} {
		if reg == nil {
			break
		}
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) registerMetadata(reg prometheus.Registerer, s *metadataStore) error {
	if reg == nil {
		return nil
	}
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pharos_ingester_metadata_families",
		Help: "Metric families whose metadata is held in memory.",
	}, func() float64 { return float64(s.len()) }))
}

func reasonLabel(name string) string {
	b := []byte(name)
	for k, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[k] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// numReasons sizes per-reason arrays; PER_METRIC_SERIES_LIMIT is the last
// reason.
const numReasons = int(ingesterpb.SeriesError_PER_METRIC_SERIES_LIMIT) + 1
