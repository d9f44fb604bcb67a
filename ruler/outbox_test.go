package ruler

import (
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

func TestOutboxKeepsNewestPerAlert(t *testing.T) {
	alert := func(name string, v float64) *rules.Alert {
		return &rules.Alert{Labels: labels.FromStrings("alertname", name), Value: v}
	}
	var ob outbox
	ob.hold("a > 0", []*rules.Alert{alert("A", 1), alert("A2", 1)})
	ob.hold("b > 0", []*rules.Alert{alert("B", 1)})
	// A commit failed; the next evaluation holds a newer copy of A.
	ob.hold("a > 0", []*rules.Alert{alert("A", 2)})

	type sent struct {
		expr   string
		names  []string
		values []float64
	}
	var got []sent
	ob.flush(func(expr string, alerts []*rules.Alert) {
		s := sent{expr: expr}
		for _, a := range alerts {
			s.names = append(s.names, a.Labels.Get("alertname"))
			s.values = append(s.values, a.Value)
		}
		got = append(got, s)
	})
	require.Equal(t, []sent{
		{"a > 0", []string{"A", "A2"}, []float64{2, 1}},
		{"b > 0", []string{"B"}, []float64{1}},
	}, got)

	ob.flush(func(string, []*rules.Alert) { t.Fatal("a flushed outbox sent again") })
}

func TestOutboxConcurrentHolds(t *testing.T) {
	var ob outbox
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ob.hold("x", []*rules.Alert{{Labels: labels.FromStrings("i", string(rune('a'+i)))}})
		}()
	}
	wg.Wait()
	n := 0
	ob.flush(func(_ string, alerts []*rules.Alert) { n += len(alerts) })
	require.Equal(t, 8, n)
}
