package frontend

import (
	"container/list"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// extent is a cached stretch of one query's part: every point from start to
// end (inclusive, on the step grid).
type extent struct {
	start, end int64
	streams    []stream
	size       int64
	// cachedAt is when its oldest points were evaluated: an extent grown
	// from a cached one keeps that one's time, so results_cache_ttl
	// bounds the age of every point served.
	cachedAt time.Time
}

func (e *extent) bytes() int64 {
	n := int64(64)
	for _, s := range e.streams {
		n += int64(len(s.key)) + 64
		for _, p := range s.Values {
			n += int64(len(p)) + 32
		}
		for _, p := range s.Histograms {
			n += int64(len(p)) + 32
		}
	}
	return n
}

// cache is an LRU of extents bounded in bytes.
type cache struct {
	mu       sync.Mutex
	max, cur int64
	ll       *list.List
	items    map[string]*list.Element

	evictions prometheus.Counter
}

type entry struct {
	key string
	ext *extent
}

func newCache(maxBytes int64, reg prometheus.Registerer) *cache {
	c := &cache{max: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
	c.evictions = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "pharos_frontend_results_cache_evictions_total",
		Help: "Extents evicted from the results cache to stay within its size.",
	})
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pharos_frontend_results_cache_bytes",
		Help: "Estimated size of the results cache.",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(c.cur)
	})
	return c
}

func (c *cache) get(key string) *extent {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(el)
	return el.Value.(*entry).ext
}

func (c *cache) put(key string, ext *extent) {
	ext.size = ext.bytes()
	if ext.size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.cur -= el.Value.(*entry).ext.size
		el.Value.(*entry).ext = ext
		c.ll.MoveToFront(el)
	} else {
		c.items[key] = c.ll.PushFront(&entry{key: key, ext: ext})
	}
	c.cur += ext.size
	for c.cur > c.max {
		el := c.ll.Back()
		e := el.Value.(*entry)
		c.ll.Remove(el)
		delete(c.items, e.key)
		c.cur -= e.ext.size
		c.evictions.Inc()
	}
}
