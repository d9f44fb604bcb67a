//go:build e2e

package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reader checks exactness continuously, alternating queriers, until
// stopped; it keeps the first problems it saw.
type reader struct {
	mu       sync.Mutex
	checks   int
	problems []string
	stop     chan struct{}
	done     chan struct{}
}

func startReader(c *cluster, ws []*writer) *reader {
	r := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for i := 0; ; i++ {
			select {
			case <-r.stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			q, w := c.fronts[i%len(c.fronts)], ws[i/len(c.fronts)%len(ws)]
			problems, _, err := checkExactlyOnce(q.http, w, w.ackedSnapshot())
			if err != nil {
				problems = append(problems, err.Error())
			}
			r.mu.Lock()
			r.checks++
			for _, p := range problems {
				if len(r.problems) < 10 {
					r.problems = append(r.problems, fmt.Sprintf("%s via %s at %s: %s", w.name, q.name, time.Now().Format(time.TimeOnly), p))
				}
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reader) halt() (checks int, problems []string) {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checks, r.problems
}

// TestRollingRestart restarts every ingester in turn, gracefully (SIGTERM),
// each gated on the previous one being ready again, under load, while a
// reader checks every acknowledged sample through both queriers twice a
// second. No write may fail for good and no read may be inexact at any
// point.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, topology{})
	tl := newTimeline(t)
	ws := startLoad(t, c)
	waitAll(t, ws, 20, 30*time.Second)
	r := startReader(c, ws)
	tl.step("load running; reader checking exactness continuously")

	for _, ing := range c.ingesters {
		began := time.Now()
		ing.stop()
		stopped := time.Since(began)
		ing.restart()
		tl.step("%s: stopped in %.1fs, restarted and ready in %.1fs", ing.name, stopped.Seconds(), time.Since(began).Seconds()-stopped.Seconds())
		waitAll(t, ws, 30, 60*time.Second)
	}
	checks, problems := r.halt()
	require.Empty(t, problems, "reads were inexact during the rolling restart")
	tl.step("%d exactness checks during the restarts, all exact", checks)
	require.Greater(t, checks, 10)
	stopLoad(t, c, tl, ws)
}
