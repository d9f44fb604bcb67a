package bench

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// GenConfig shapes the generated series.
type GenConfig struct {
	// ActiveSeries is how many series exist at any moment.
	ActiveSeries int
	// Churn is the fraction of the active series replaced by new ones each
	// round (a pod restarted, a node replaced), e.g. 0.001.
	Churn float64
	// SamplesPerSeries is how many samples each series gets per round,
	// spread evenly over the interval.
	SamplesPerSeries int
	// IntervalMs is the data time between two rounds, as a scrape interval.
	IntervalMs int64
}

// Shapes of the two exporters; six series in ten are node-exporter's.
var (
	nodeMetrics = []string{
		"node_cpu_seconds_total", "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
		"node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_filesystem_avail_bytes",
		"node_memory_MemAvailable_bytes", "node_load1",
	}
	nodeModes   = []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}
	ksmMetrics  = []string{"kube_pod_status_phase", "kube_pod_container_status_restarts_total", "kube_pod_container_resource_requests", "kube_pod_info", "kube_pod_status_ready"}
	ksmPhases   = []string{"Running", "Pending", "Succeeded", "Failed", "Unknown"}
	namespaces  = []string{"default", "kube-system", "monitoring", "payments", "checkout", "search", "auth", "web", "batch", "data"}
	nodeCounter = map[string]bool{"node_load1": false, "node_memory_MemAvailable_bytes": false, "node_filesystem_avail_bytes": false}
)

// Counter reports whether series i is a counter (its value only grows).
func Counter(i int) bool {
	name, node := metricOf(i)
	if node {
		c, listed := nodeCounter[name]
		return !listed || c
	}
	return name == "kube_pod_container_status_restarts_total"
}

func metricOf(i int) (string, bool) {
	if i%10 < 6 {
		j := i/10*6 + i%10
		return nodeMetrics[j%len(nodeMetrics)], true
	}
	k := i/10*4 + i%10 - 6
	return ksmMetrics[k%len(ksmMetrics)], false
}

// Generation is series i's generation at round r: it grows by one each
// time the series is churned. About Churn×ActiveSeries series move on per
// round, spread over the index space.
func (c GenConfig) Generation(i, r int) uint64 {
	if c.Churn <= 0 || c.ActiveSeries == 0 {
		return 0
	}
	return uint64(float64(r)*c.Churn + float64(i)/float64(c.ActiveSeries))
}

// SeriesLabels is the label set of series i in generation gen. Distinct
// (i, gen) pairs give distinct label sets.
func SeriesLabels(b *labels.ScratchBuilder, i int, gen uint64) labels.Labels {
	b.Reset()
	name, node := metricOf(i)
	b.Add(model.MetricNameLabel, name)
	b.Add("cluster", "prod-eu-"+strconv.Itoa(i%3))
	if node {
		j := i/10*6 + i%10
		per := len(nodeMetrics) * len(nodeModes)
		host := j / per
		b.Add("cpu", strconv.Itoa(j/len(nodeMetrics)%len(nodeModes)))
		b.Add("mode", nodeModes[j/len(nodeMetrics)%len(nodeModes)])
		b.Add("endpoint", "metrics")
		b.Add("instance", fmt.Sprintf("10.%d.%d.%d:9100", host>>16&255, host>>8&255, host&255))
		b.Add("job", "node-exporter")
		b.Add("namespace", "monitoring")
		b.Add("node", fmt.Sprintf("ip-10-%d-%d-g%d", host>>8&255, host&255, gen))
		b.Add("pod", "node-exporter-"+suffix(uint64(host), gen))
		b.Add("service", "node-exporter")
	} else {
		k := i/10*4 + i%10 - 6
		m := k % len(ksmMetrics)
		pod := k / len(ksmMetrics)
		ns := namespaces[pod%len(namespaces)]
		b.Add("container", "app")
		b.Add("endpoint", "http")
		b.Add("instance", "10.0.0.2:8080")
		b.Add("job", "kube-state-metrics")
		b.Add("namespace", ns)
		b.Add("pod", fmt.Sprintf("%s-%d-%s", ns, pod/len(namespaces), suffix(uint64(pod), gen)))
		b.Add("service", "kube-state-metrics")
		if m == 0 {
			b.Add("phase", ksmPhases[pod%len(ksmPhases)])
		} else {
			b.Add("uid", suffix(uint64(pod)<<8, gen))
		}
	}
	b.Sort()
	return b.Labels()
}

// suffix is a pod-name-like hash of x and the generation.
func suffix(x, gen uint64) string {
	h := fnv.New64a()
	var buf [16]byte
	for k := range 8 {
		buf[k] = byte(x >> (8 * k))
		buf[8+k] = byte(gen >> (8 * k))
	}
	h.Write(buf[:])
	return strconv.FormatUint(h.Sum64()&0xffffffffff, 36)
}

// Value is the k-th sample of series i (generation gen) in round r:
// counters grow at a rate of their own, so that topk has no ties to break
// differently on two sides; gauges wander within a per-series band.
func Value(i int, gen uint64, r, k, perRound int) float64 {
	return value(Counter(i), i, gen, r, k, perRound)
}

// value is Value for a series whose Counter is known: the writers keep it
// per series rather than look the metric up for every sample.
func value(counter bool, i int, gen uint64, r, k, perRound int) float64 {
	step := float64(r*perRound + k)
	if counter {
		return step * (1 + float64((uint64(i)*2654435761+gen*40503)%1000003)/1000003)
	}
	return float64(100+i%50) + float64((r*perRound+k+i)%13)
}
