package ingester

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// tsdbCollectors holds the collectors one tsdb.DB registered, and exposes
// those of the current DB: after a reopen (failure.go) the new DB's metrics
// replace the old ones under the same names, which registering the new DB
// on the process registry directly would refuse as duplicates.
type tsdbCollectors struct {
	mu  sync.RWMutex
	cur *recordingRegisterer
}

// next returns a registerer for the DB about to be opened; it becomes
// current with use.
func (t *tsdbCollectors) next() *recordingRegisterer { return &recordingRegisterer{} }

func (t *tsdbCollectors) use(r *recordingRegisterer) {
	t.mu.Lock()
	t.cur = r
	t.mu.Unlock()
}

// Describe sends nothing: the collector is unchecked, since the set of
// metrics changes with the DB.
func (t *tsdbCollectors) Describe(chan<- *prometheus.Desc) {}

func (t *tsdbCollectors) Collect(ch chan<- prometheus.Metric) {
	t.mu.RLock()
	cur := t.cur
	t.mu.RUnlock()
	if cur == nil {
		return
	}
	cur.mu.Lock()
	cs := append([]prometheus.Collector(nil), cur.cs...)
	cur.mu.Unlock()
	for _, c := range cs {
		c.Collect(ch)
	}
}

// recordingRegisterer keeps what is registered on it.
type recordingRegisterer struct {
	mu sync.Mutex
	cs []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cs = append(r.cs, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recordingRegisterer) Unregister(c prometheus.Collector) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, x := range r.cs {
		if x == c {
			r.cs = append(r.cs[:k], r.cs[k+1:]...)
			return true
		}
	}
	return false
}
