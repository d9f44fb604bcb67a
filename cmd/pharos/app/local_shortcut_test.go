package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAllInOneLocalShortcut: an all-in-one process writes to and reads from
// its own ingester without a gRPC connection unless
// ingester_client.local_shortcut is off, with the same answers either way.
// Whether a connection was used shows in the client pool's dials.
func TestAllInOneLocalShortcut(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("local_shortcut=%v", on), func(t *testing.T) {
			a, _ := startApp(t, fmt.Sprintf("ingester_client:\n  local_shortcut: %v\n", on))
			base := "http://" + a.HTTPAddr()
			now := time.Now().UnixMilli()
			writeAll(t, base, genSeries(0, 150, now), 50)

			code, res := query(t, base, `count(m)`, now)
			require.Equal(t, http.StatusOK, code, res.Error)
			require.Contains(t, string(res.Data), `"150"`)
			var values []string
			getData(t, base+"/api/v1/label/mod/values", &values)
			require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6"}, values)
			var series []map[string]string
			getData(t, base+"/api/v1/series?match[]="+url.QueryEscape(`m{mod="3"}`), &series)
			require.Len(t, series, 21)

			require.Equal(t, 3.0, metricValue(t, base, "pharos_ingester_push_requests_total", `outcome="ok"`))
			require.Positive(t, metricValue(t, base, "pharos_ingester_query_streams_total", `outcome="ok"`))
			dials := metricValue(t, base, "pharos_ingester_client_dials_total", "")
			if on {
				require.Zero(t, dials, "the process dialled its own ingester")
			} else {
				require.Positive(t, dials)
			}
		})
	}
}

// getData GETs an API path and decodes its data field into v.
func getData(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, u)
	var r apiResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	require.NoError(t, json.Unmarshal(r.Data, v))
}
