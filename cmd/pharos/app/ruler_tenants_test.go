package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// writeNodesAs remote-writes n kube_node_info series as tenant id.
func writeNodesAs(t testing.TB, base, id string, n int) {
	t.Helper()
	wr := &prompb.WriteRequest{}
	now := time.Now().UnixMilli()
	for i := range n {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "kube_node_info"}, {Name: "node", Value: fmt.Sprintf("node-%d", i)}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
		})
	}
	raw, err := wr.Marshal()
	require.NoError(t, err)
	code, body := tenantRequest(t, http.MethodPost, base+"/api/v1/write", id, snappy.Encode(nil, raw), map[string]string{
		"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0",
	})
	require.Less(t, code, 300, body)
}

// TestAllInOneRulesPerTenant: two tenants write the same series names with
// different values and post a group of the same namespace and name. Each
// tenant's recording rule counts only its own series and its output is
// readable only by it; /api/v1/rules and /api/v1/alerts and the notifier
// show each tenant its own.
func TestAllInOneRulesPerTenant(t *testing.T) {
	a, _ := startApp(t, "multitenancy: {enabled: true}\nruler:\n  evaluation_interval: 1s\n  resend_delay: 1s\n")
	base := "http://" + a.HTTPAddr()
	nodes := map[string]int{"team-a": 3, "team-b": 1}
	for id, n := range nodes {
		writeNodesAs(t, base, id, n)
		group := fmt.Sprintf(`name: nodes
interval: 1s
rules:
- record: nodes:count
  expr: count(kube_node_info)
- alert: Nodes
  expr: count(kube_node_info) >= 1
  labels:
    owner: %s
`, id)
		// 503 until the ruler has elected itself.
		var (
			code int
			body string
		)
		require.Eventually(t, func() bool {
			code, body = tenantRequest(t, http.MethodPost, base+"/api/v1/rules/infra", id, []byte(group), map[string]string{"Content-Type": "application/yaml"})
			return code != http.StatusServiceUnavailable
		}, 10*time.Second, 50*time.Millisecond)
		require.Equal(t, http.StatusAccepted, code, body)
	}

	count := func(id string) string {
		code, body := tenantRequest(t, http.MethodGet, base+"/api/v1/query?"+url.Values{"query": {"nodes:count"}}.Encode(), id, nil, nil)
		require.Equal(t, http.StatusOK, code, body)
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &r), body)
		if len(r.Data.Result) != 1 {
			return fmt.Sprintf("%d series", len(r.Data.Result))
		}
		return r.Data.Result[0].Value[1].(string)
	}
	require.Eventually(t, func() bool { return count("team-a") == "3" && count("team-b") == "1" }, 20*time.Second, 100*time.Millisecond,
		"each tenant's recording rule counts its own series only: a %s, b %s", count("team-a"), count("team-b"))
	require.Equal(t, "0 series", count("team-c"))

	for id := range nodes {
		code, body := tenantRequest(t, http.MethodGet, base+"/api/v1/rules", id, nil, nil)
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, 1, strings.Count(body, `"name":"Nodes"`), body)
		require.Contains(t, body, `"owner":"`+id+`"`)
		require.Eventually(t, func() bool {
			_, body := tenantRequest(t, http.MethodGet, base+"/api/v1/alerts", id, nil, nil)
			return strings.Contains(body, `"owner":"`+id+`"`) && strings.Count(body, `"alertname":"Nodes"`) == 1
		}, 10*time.Second, 100*time.Millisecond, "alerts of %s", id)
		// The embedded notifier received it under the tenant's header.
		require.Eventually(t, func() bool {
			code, body := tenantRequest(t, http.MethodGet, base+"/alertmanager/api/v2/alerts", id, nil, nil)
			return code == http.StatusOK && strings.Contains(body, `"owner":"`+id+`"`) && strings.Count(body, `"alertname":"Nodes"`) == 1
		}, 15*time.Second, 100*time.Millisecond, "notifier alerts of %s", id)
	}
	code, _ := tenantRequest(t, http.MethodGet, base+"/api/v1/rules/infra", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	// Mimir's path lists every namespace of the tenant.
	code, body := tenantRequest(t, http.MethodGet, base+"/prometheus/config/v1/rules", "team-b", nil, nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "owner: team-b")
	require.NotContains(t, body, "team-a")
}
