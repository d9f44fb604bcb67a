//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// getJSON decodes u's body into v and returns the status; 0 when the
// request failed (a host that is down or cut off).
func getJSON(u string, v any) int {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	if v != nil && json.Unmarshal(b, v) != nil {
		return 0
	}
	return resp.StatusCode
}

func post(t *testing.T, u string) {
	t.Helper()
	resp, err := httpClient.Post(u, "", nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "POST %s: %s", u, b)
}

// instantValue runs q at now on base and returns the single result's value
// ("" when the result is not exactly one sample).
func instantValue(base, q string) string {
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if getJSON(base+"/api/v1/query?query="+url.QueryEscape(q), &r) != http.StatusOK || len(r.Data.Result) != 1 {
		return ""
	}
	return fmt.Sprint(r.Data.Result[0].Value[1])
}

// rulerMode is "leader", "follower", "fallback", or "" if p does not answer.
func rulerMode(p *proc) string {
	var st struct {
		Data struct {
			Mode string `json:"mode"`
		} `json:"data"`
	}
	if getJSON(p.http+"/api/v1/status/ruler", &st) != http.StatusOK {
		return ""
	}
	return st.Data.Mode
}

// leader waits for exactly one ruler among ps to say it leads, the others
// following, and returns it.
func (c *cluster) leader(ps []*proc, within time.Duration) *proc {
	c.t.Helper()
	var l *proc
	require.Eventually(c.t, func() bool {
		l = nil
		n := 0
		for _, p := range ps {
			switch rulerMode(p) {
			case "leader":
				l = p
				n++
			case "follower":
			default:
				return false
			}
		}
		return n == 1
	}, within, 50*time.Millisecond, "no single ruler leader")
	return l
}

type apiAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
}

// alertState is TooManyNodes's state as ruler p reports it ("inactive"
// when absent, "" when p does not answer).
func alertState(p *proc, name string) (string, time.Time) {
	var r struct {
		Data struct {
			Alerts []apiAlert `json:"alerts"`
		} `json:"data"`
	}
	if getJSON(p.http+"/api/v1/alerts", &r) != http.StatusOK {
		return "", time.Time{}
	}
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == name {
			return a.State, a.ActiveAt
		}
	}
	return "inactive", time.Time{}
}

// slackDeliveries is everything the fake Slack received.
func (c *cluster) slackDeliveries() []slackDelivery {
	var ds []slackDelivery
	if getJSON(fmt.Sprintf("http://%s:%d/deliveries", c.slack.host.ip, portSlack), &ds) != http.StatusOK {
		c.t.Fatalf("fake slack does not answer; log:\n%s", tail(c.slack.logPath, 20))
	}
	return ds
}

// slackCount counts deliveries by alert group (title) and status.
func (c *cluster) slackCount() map[string]int {
	out := map[string]int{}
	for _, d := range c.slackDeliveries() {
		out[d.title()+"/"+d.status()]++
	}
	return out
}

// requireSlackStays asserts that the Slack counts are want and stay so
// for a window in which a duplicate would have arrived.
func (c *cluster) requireSlackStays(want map[string]int, window time.Duration) {
	c.t.Helper()
	require.Equal(c.t, want, c.slackCount())
	require.Never(c.t, func() bool {
		got := c.slackCount()
		return len(got) != len(want) || !maps.Equal(got, want)
	}, window, 250*time.Millisecond, "Slack deliveries changed from %v", want)
}

// notifierAlert is an alert as a notifier's API v2 holds it.
type notifierAlert struct {
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt"`
	Status   struct {
		State string `json:"state"`
	} `json:"status"`
}

func notifierAlerts(p *proc) ([]notifierAlert, bool) {
	var as []notifierAlert
	ok := getJSON(fmt.Sprintf("http://%s:%d/api/v2/alerts", p.host.ip, portNotifier), &as) == http.StatusOK
	return as, ok
}

// setRules rewrites the rule file every ruler reads and reloads each ruler
// that runs, as a config-management rollout would.
func (c *cluster) setRules(t *testing.T, rules string) {
	t.Helper()
	require.NoError(t, os.WriteFile(c.rulesFile, []byte(rules), 0o644))
	for _, r := range c.rulers {
		if r.running() {
			post(t, r.http+"/-/reload")
		}
	}
}

// tutorialRules is a tutorial rule file with `for` shortened to alertFor.
func tutorialRules(t *testing.T, file string) string {
	b, err := os.ReadFile("testdata/tutorial/" + file)
	require.NoError(t, err)
	s := string(b)
	for _, f := range []string{"for: 15m", "for: 1m"} {
		s = strings.ReplaceAll(s, f, "for: "+alertFor.String())
	}
	require.Contains(t, s, "for: "+alertFor.String())
	return s
}

// exporterScrapes is when each exporter address was scraped (unix ms).
func (c *cluster) exporterScrapes() map[string][]int64 {
	var m map[string][]int64
	require.Equal(c.t, http.StatusOK, getJSON(fmt.Sprintf("http://%s:%d/scrapes", c.exporter.host.ip, portExporterCtl), &m))
	return m
}

// metric is the sum of every sample of a metric family in p's /metrics
// (lines starting with name, followed by '{' or ' ').
func metric(p *proc, name string) (float64, bool) {
	resp, err := httpClient.Get(p.http + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// strictEnv makes known product gaps fail the test instead of being logged.
const strictEnv = "PHAROS_E2E_STRICT"

// checkKnownGap records an expectation the product does not meet yet. It
// fails the test under PHAROS_E2E_STRICT=1; otherwise it is logged as a
// KNOWN GAP, so the rest of the scenario still runs and CI stays useful
// until the product catches up.
func checkKnownGap(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv(strictEnv) == "1" {
		t.Errorf(format, args...)
		return
	}
	t.Logf("KNOWN GAP (fails with %s=1): "+format, append([]any{strictEnv}, args...)...)
}
