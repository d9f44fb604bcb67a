package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// do sends a request as tenant id ("" for none) and returns the status
// code and body.
func do(t *testing.T, method, url, id, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if id != "" {
		req.Header.Set(tenant.HeaderName, id)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestAllInOneNotifierTenants: with multitenancy.enabled the notifier under
// /alertmanager answers per tenant: 401 without one, a tenant's own
// configuration through the config API routes its alerts to its webhook,
// another tenant's alert with the same labels goes to the fallback and
// stays invisible to the first, metrics carry the tenant as `user`.
func TestAllInOneNotifierTenants(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			CommonLabels map[string]string `json:"commonLabels"`
		}
		_ = json.NewDecoder(r.Body).Decode(&msg)
		mu.Lock()
		got = append(got, msg.CommonLabels["alertname"])
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)

	a, _ := startApp(t, "multitenancy: {enabled: true}\n")
	base := "http://" + a.HTTPAddr() + "/alertmanager"

	code, body := do(t, http.MethodGet, base+"/api/v2/alerts", "", "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, tenant.HeaderName)

	cfg := "alertmanager_config: |\n" +
		"  route: {receiver: hook, group_wait: 0s, group_by: [alertname]}\n" +
		"  receivers:\n" +
		"  - name: hook\n" +
		"    webhook_configs: [{url: '" + hook.URL + "'}]\n"
	code, body = do(t, http.MethodPost, base+"/api/v1/alerts", "A", "application/yaml", cfg)
	require.Equal(t, http.StatusCreated, code, body)
	code, body = do(t, http.MethodGet, base+"/api/v1/alerts", "A", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, hook.URL)
	code, _ = do(t, http.MethodGet, base+"/api/v1/alerts", "B", "", "")
	require.Equal(t, http.StatusNotFound, code)

	alert := func(name string) string {
		return `[{"labels":{"alertname":"` + name + `"},"endsAt":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `"}]`
	}
	for _, id := range []string{"A", "B"} {
		code, body = do(t, http.MethodPost, base+"/api/v2/alerts", id, "application/json", alert("Shared"))
		require.Equal(t, http.StatusOK, code, body)
	}
	code, body = do(t, http.MethodPost, base+"/api/v2/alerts", "B", "application/json", alert("OnlyB"))
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && got[0] == "Shared"
	}, 30*time.Second, 20*time.Millisecond, "A's alert reaches A's webhook")

	var alerts []struct {
		Labels map[string]string `json:"labels"`
	}
	code, body = do(t, http.MethodGet, base+"/api/v2/alerts", "A", "", "")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &alerts))
	require.Len(t, alerts, 1, "A sees only its own alert")
	code, body = do(t, http.MethodGet, base+"/api/v2/alerts", "B", "", "")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &alerts))
	require.Len(t, alerts, 2)

	// The whole-process reload re-reads the fallback for every tenant.
	code, body = do(t, http.MethodPost, "http://"+a.HTTPAddr()+"/-/reload", "", "", "")
	require.Equal(t, http.StatusOK, code, body)

	code, body = do(t, http.MethodGet, "http://"+a.HTTPAddr()+"/metrics", "", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `alertmanager_alerts_received_total{status="firing",user="A",version="v2"} 1`)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"Shared"}, got, "B's alerts never reach A's webhook")
}
