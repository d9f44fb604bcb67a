package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// threeIngesters registers three lifecyclers on one MemKV plus a dead
// instance, and returns a Ring over it.
func threeIngesters(t *testing.T) (*Ring, *MemKV, *prometheus.Registry) {
	t.Helper()
	kv := NewMemKV()
	for _, id := range []string{"ing-1", "ing-2", "ing-3"} {
		runLifecycler(t, newLifecycler(t, testRingConfig(id), kv, ""))
	}
	// Past the heartbeat timeout (1s) but well within auto_forget_after
	// (10s), so the running lifecyclers do not forget it during the test.
	dead := ring.Instance{ID: "dead", Addr: "dead:9095", State: ring.StateActive, Tokens: []uint32{42}, Timestamp: time.Now().Add(-3 * time.Second).UnixMilli()}
	kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{"dead": dead}})
	reg := prometheus.NewRegistry()
	r, err := NewRing(testRingConfig(""), kv, reg)
	require.NoError(t, err)
	return r, kv, reg
}

func TestRingGet(t *testing.T) {
	r, kv, reg := threeIngesters(t)
	require.Len(t, r.Instances(), 4)

	key := ring.ShardKey(labels.FromStrings("__name__", "up", "job", "node"))
	rs, err := r.Get(key, ring.Write)
	require.NoError(t, err)
	require.Len(t, rs.Instances, 3, "the dead instance is skipped")
	require.False(t, rs.Includes("dead"))
	require.Equal(t, 1, rs.MaxErrors, "quorum 2 of 3")

	all, err := r.AllHealthy(ring.Read)
	require.ErrorIs(t, err, nil)
	require.Len(t, all.Instances, 3)
	require.Equal(t, 0, all.MaxErrors)

	// The view is cached while the descriptor is unchanged.
	v := r.View()
	require.Same(t, v, r.View())
	kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{"x": {ID: "x", State: ring.StatePending, Timestamp: time.Now().UnixMilli()}}})
	require.NotSame(t, v, r.View())

	require.Equal(t, 1.0, gauge(t, reg, "pharos_ring_members", "unhealthy"))
	require.Equal(t, 4.0, gauge(t, reg, "pharos_ring_members", "ACTIVE"))
	require.Equal(t, 1.0, gauge(t, reg, "pharos_ring_members", "PENDING"))
}

// gauge returns the value of name{state=state} gathered from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name, state string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "state" && lp.GetValue() == state {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{state=%q} not found", name, state)
	return 0
}

func TestRingForget(t *testing.T) {
	r, kv, _ := threeIngesters(t)
	tests := []struct {
		id  string
		err error
	}{
		{"nope", ErrInstanceNotFound},
		{"ing-1", ErrInstanceHealthy},
		{"dead", nil},
		{"dead", ErrInstanceNotFound},
	}
	for _, tc := range tests {
		err := r.Forget(tc.id)
		if tc.err == nil {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, tc.err, tc.id)
		}
	}
	in, _ := kv.Get().Get("dead")
	require.Equal(t, ring.StateLeft, in.State)
	require.Len(t, r.Instances(), 3)
}

func TestRingHTTP(t *testing.T) {
	r, _, _ := threeIngesters(t)
	srv := httptest.NewServer(r)
	defer srv.Close()

	get := func(t *testing.T, path, accept string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	for _, tc := range []struct{ name, path, accept string }{
		{"format param", "/ring?format=json", ""},
		{"accept header", "/ring", "application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tc.path, tc.accept)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var st ringStatus
			require.NoError(t, json.Unmarshal([]byte(body), &st))
			require.Equal(t, 3, st.ReplicationFactor)
			require.Len(t, st.Instances, 4)
			share := 0.0
			for _, in := range st.Instances {
				share += in.TokenShare
				require.Equal(t, in.ID != "dead", in.Healthy, in.ID)
			}
			require.InDelta(t, 1, share, 1e-9)
		})
	}

	resp, body := get(t, "/ring", "text/html")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "<td>ing-2</td>")
	require.Contains(t, body, `name="forget" value="dead"`)
	require.NotContains(t, body, `value="ing-1"`, "healthy instances have no forget button")

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		form url.Values
		code int
	}{
		{url.Values{}, http.StatusBadRequest},
		{url.Values{"forget": {"ing-1"}}, http.StatusConflict},
		{url.Values{"forget": {"nope"}}, http.StatusNotFound},
		{url.Values{"forget": {"dead"}}, http.StatusSeeOther},
	} {
		resp, err := client.PostForm(srv.URL+"/ring", tc.form)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, tc.code, resp.StatusCode, tc.form.Encode())
	}
	require.Len(t, r.Instances(), 3)

	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/ring", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
