package app

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// addIngester starts one more ingester that joins the running cluster.
func (c *testCluster) addIngester(id, zone string) *testNode {
	c.t.Helper()
	n := &testNode{id: id, zone: zone, dir: c.t.TempDir(), grpcAddr: "127.0.0.1:0"}
	c.ings = append(c.ings, n)
	c.start(n, c.front.app.GossipAddr())
	return n
}

// waitState waits until the front sees instance id in state s.
func (c *testCluster) waitState(id string, s ring.State) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		in, ok := c.front.app.Ring().View().Desc().Get(id)
		return ok && in.State == s
	}, 30*time.Second, 10*time.Millisecond, "%s never %s", id, s)
}

// writeReplicaIDs is the IDs of the instances the front's ring writes the
// series s to.
func (c *testCluster) writeReplicaIDs(s prompb.TimeSeries) []string {
	c.t.Helper()
	b := labels.NewScratchBuilder(len(s.Labels))
	for _, l := range s.Labels {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	rs, err := c.front.app.Ring().Get(ring.ShardKey(b.Labels()), ring.Write)
	require.NoError(c.t, err)
	ids := make([]string, 0, len(rs.Instances))
	for _, in := range rs.Instances {
		ids = append(ids, in.ID)
	}
	slices.Sort(ids)
	return ids
}

// drainRequest calls /ingester/readonly on n and returns the status and the
// state it reports.
func drainRequest(t testing.TB, n *testNode, method string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+n.app.HTTPAddr()+"/ingester/readonly", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		State    string `json:"state"`
		ReadOnly bool   `json:"read_only"`
	}
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		require.Equal(t, body.State == "READONLY", body.ReadOnly)
	}
	return resp.StatusCode, body.State
}

// idSet is the values of label id of series.
func idSet(series []prompb.TimeSeries) map[string]bool {
	m := make(map[string]bool, len(series))
	for _, s := range series {
		m[s.Labels[1].Value] = true
	}
	return m
}

// requireSameAnswers runs every cluster query at ts against the cluster and
// a single node that received the same writes.
func requireSameAnswers(t testing.TB, clusterBase, singleBase string, ts int64) {
	t.Helper()
	for _, q := range clusterQueries {
		code, got := query(t, clusterBase, q, ts)
		require.Equal(t, http.StatusOK, code, got.Error)
		_, want := query(t, singleBase, q, ts)
		requireSameResult(t, want.Data, got.Data, "%s at %d", q, ts)
	}
}

// TestClusterReadOnlyDrain drains one of four ingesters (RF 3): it keeps
// serving the data it holds, new writes go to the other three only, and
// undoing the drain makes it take writes again.
func TestClusterReadOnlyDrain(t *testing.T) {
	const n = 400
	c := newTestCluster(t, 3, []string{"", "", "", ""})
	single, _ := startApp(t, "")
	singleBase := "http://" + single.HTTPAddr()
	drained := c.ings[3]

	t0 := time.Now().Add(-2 * time.Minute).UnixMilli()
	before := genSeries(0, n, t0)
	writeAll(t, c.base(), before, n)
	writeAll(t, singleBase, before, n)
	heldBefore := labelValues(t, drained.grpcAddr, "id")
	require.NotEmpty(t, heldBefore, "with 4 ingesters and RF 3 each holds about 3/4 of the series")

	code, state := drainRequest(t, drained, http.MethodGet)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ACTIVE", state)
	code, state = drainRequest(t, drained, http.MethodPost)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "READONLY", state)
	code, state = drainRequest(t, drained, http.MethodPost)
	require.Equal(t, http.StatusOK, code, "draining twice is no error")
	require.Equal(t, "READONLY", state)
	c.waitState(drained.id, ring.StateReadOnly)

	// New writes, of old and new series, land on the three others only.
	t1 := t0 + 10_000
	after := append(genSeries(0, n, t1), genSeries(n, n, t1)...)
	writeAll(t, c.base(), after, n)
	writeAll(t, singleBase, after, n)
	require.ElementsMatch(t, heldBefore, labelValues(t, drained.grpcAddr, "id"), "a READONLY ingester takes no new series")
	for _, s := range after {
		require.NotContains(t, c.writeReplicaIDs(s), drained.id)
	}
	for _, ing := range c.ings[:3] {
		held := map[string]bool{}
		for _, id := range labelValues(t, ing.grpcAddr, "id") {
			held[id] = true
		}
		for id := range idSet(after) {
			require.True(t, held[id], "series %s on %s", id, ing.id)
		}
	}
	// Reads still use the drained ingester and stay exact, before and after.
	requireSameAnswers(t, c.base(), singleBase, t0+1000)
	requireSameAnswers(t, c.base(), singleBase, t1+1000)

	// Undo: ACTIVE again, and it takes its share of new series.
	code, state = drainRequest(t, drained, http.MethodDelete)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ACTIVE", state)
	c.waitState(drained.id, ring.StateActive)
	t2 := t1 + 10_000
	fresh := genSeries(2*n, n, t2)
	writeAll(t, c.base(), fresh, n)
	writeAll(t, singleBase, fresh, n)
	var want []string
	for _, s := range fresh {
		if slices.Contains(c.writeReplicaIDs(s), drained.id) {
			want = append(want, s.Labels[1].Value)
		}
	}
	require.NotEmpty(t, want)
	got := labelValues(t, drained.grpcAddr, "id")
	for _, id := range want {
		require.Contains(t, got, id)
	}
	requireSameAnswers(t, c.base(), singleBase, t2+1000)

	// Only an ACTIVE or READONLY ingester can be switched; other methods are refused.
	code, _ = drainRequest(t, drained, http.MethodPatch)
	require.Equal(t, http.StatusMethodNotAllowed, code)
}

// TestClusterScaleUp adds a fourth ingester to a running 3-ingester RF 3
// cluster: it becomes ACTIVE, takes the new series of its token ranges, and
// everything written before stays exactly queryable.
func TestClusterScaleUp(t *testing.T) {
	n := 600
	if testing.Short() {
		n = 300
	}
	c := newTestCluster(t, 3, []string{"", "", ""})
	single, _ := startApp(t, "")
	singleBase := "http://" + single.HTTPAddr()

	t0 := time.Now().Add(-2 * time.Minute).UnixMilli()
	before := genSeries(0, n, t0)
	writeAll(t, c.base(), before, n)
	writeAll(t, singleBase, before, n)

	added := c.addIngester("ing-3", "")
	c.waitActive(4)
	require.Empty(t, labelValues(t, added.grpcAddr, "id"), "a new ingester starts empty")
	requireSameAnswers(t, c.base(), singleBase, t0+1000)

	t1 := t0 + 10_000
	newSeries := genSeries(n, n, t1)
	writeAll(t, c.base(), newSeries, n)
	writeAll(t, singleBase, newSeries, n)
	var want []string
	for _, s := range newSeries {
		ids := c.writeReplicaIDs(s)
		require.Len(t, ids, 3)
		if slices.Contains(ids, added.id) {
			want = append(want, s.Labels[1].Value)
		}
	}
	got := labelValues(t, added.grpcAddr, "id")
	require.NotEmpty(t, got, "the new ingester takes series")
	require.Less(t, len(got), n, "but not all of them")
	require.ElementsMatch(t, want, got, "exactly the series of its token ranges")
	for _, id := range got {
		v, err := strconv.Atoi(id)
		require.NoError(t, err)
		require.GreaterOrEqual(t, v, n, "only series written after it joined")
	}
	requireSameAnswers(t, c.base(), singleBase, t0+1000)
	requireSameAnswers(t, c.base(), singleBase, t1+1000)
}
