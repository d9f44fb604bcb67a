package querier_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// ringCluster is real ingesters registered in an in-memory ring, read
// through the ring-backed Ingesters and a real client pool.
type ringCluster struct {
	nodes []*node
	ids   []string
	kv    *cluster.MemKV
	ring  *cluster.Ring
	pool  *ingesterclient.Pool
	ings  querier.Ingesters
	q     storage.SampleAndChunkQueryable
}

func ringConfig(tb testing.TB, rf int) cluster.Config {
	tb.Helper()
	var cfg cluster.Config
	fs := flag.NewFlagSet("ring", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(tb, fs.Parse(nil))
	cfg.ReplicationFactor = rf
	return cfg
}

func clientConfig(tb testing.TB) ingesterclient.Config {
	tb.Helper()
	var cfg ingesterclient.Config
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	cfg.RegisterFlags("", fs)
	require.NoError(tb, fs.Parse(nil))
	return cfg
}

// newRingCluster starts one ingester per entry of zones ("" for none), all
// ACTIVE in a ring with RF rf. The descriptor is written directly, with
// deterministic tokens: what a Lifecycler would gossip. The ingesters listed
// in stale have a heartbeat older than the timeout, as if they had stopped
// heartbeating a while ago (their servers still run).
func newRingCluster(tb testing.TB, rf int, zones []string, stale ...int) *ringCluster {
	tb.Helper()
	return newRingClusterWith(tb, rf, zones, querier.RingReadConfig{}, nil, stale...)
}

// newRingClusterWith is newRingCluster reading with cfg, whose ingester i
// serves with the options opts(i) returns, if opts is not nil.
func newRingClusterWith(tb testing.TB, rf int, zones []string, cfg querier.RingReadConfig, opts func(i int) []grpc.ServerOption, stale ...int) *ringCluster {
	tb.Helper()
	c := &ringCluster{kv: cluster.NewMemKV()}
	rnd := rand.New(rand.NewPCG(1, 2))
	desc := ring.NewDesc()
	now := time.Now().UnixMilli()
	for i, z := range zones {
		var o []grpc.ServerOption
		if opts != nil {
			o = opts(i)
		}
		n := startNodeWith(tb, ingesterConfig(tb, tb.TempDir()), o...)
		id := fmt.Sprintf("ing-%d", i)
		c.nodes = append(c.nodes, n)
		c.ids = append(c.ids, id)
		heartbeat := now
		if slices.Contains(stale, i) {
			heartbeat = now - time.Hour.Milliseconds()
		}
		desc.Instances[id] = ring.Instance{
			ID: id, Addr: n.client.Addr(), Zone: z, State: ring.StateActive,
			Tokens:    ring.GenerateTokens(128, desc.TakenTokens(""), rnd),
			Timestamp: heartbeat, Registered: heartbeat,
		}
	}
	c.kv.Merge(desc)
	var err error
	c.ring, err = cluster.NewRing(ringConfig(tb, rf), c.kv, nil)
	require.NoError(tb, err)
	c.pool = ingesterclient.NewPool(clientConfig(tb), nil, nil, defaultTenant()...)
	tb.Cleanup(func() { _ = c.pool.Close() }) // may be closed already
	c.ings = querier.NewRingIngesters(c.ring, c.pool, cfg)
	c.q = querier.NewQueryable(c.ings, nil, nil)
	return c
}

// pushAll writes every series, and a metadata entry, to every ingester:
// RF = number of ingesters, as the distributor does for RF=3 on 3.
func pushAll(t *testing.T, c *ringCluster, series []labels.Labels, samples []sample) {
	t.Helper()
	for _, n := range c.nodes {
		for _, ls := range series {
			push(t, n.client, ls, samples)
		}
		_, err := n.client.Push(context.Background(), &ingesterpb.PushRequest{Metadata: []*ingesterpb.MetricMetadata{
			{MetricFamilyName: "m", Type: ingesterpb.MetricMetadata_GAUGE, Help: "a gauge"},
		}})
		require.NoError(t, err)
	}
}

// readResult is what every read method answered.
type readResult struct {
	selected   map[string][]sample
	seriesOnly int
	names      []string
	values     []string
	metadata   int
	warnings   []string
}

// readEverything runs every read RPC through the queryable: a sample select,
// a label-only select, label names and values, and metadata. It returns the
// first error.
func readEverything(t *testing.T, c *ringCluster) (readResult, error) {
	t.Helper()
	var res readResult
	ctx := context.Background()
	qr, err := c.q.Querier(0, 60_000)
	if err != nil {
		return res, err
	}
	defer qr.Close()
	var warns []error
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")

	ss := qr.Select(ctx, true, nil, m)
	res.selected = map[string][]sample{}
	for ss.Next() {
		s := ss.At()
		var got []sample
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			got = append(got, sample{ts, v})
		}
		require.NoError(t, it.Err())
		res.selected[s.Labels().String()] = got
	}
	if err := ss.Err(); err != nil {
		return res, err
	}
	warns = append(warns, ss.Warnings().AsErrors()...)

	ss = qr.Select(ctx, true, &storage.SelectHints{Start: 0, End: 60_000, Func: "series"}, m)
	for ss.Next() {
		res.seriesOnly++
	}
	if err := ss.Err(); err != nil {
		return res, err
	}
	warns = append(warns, ss.Warnings().AsErrors()...)

	names, annos, err := qr.LabelNames(ctx, nil)
	if err != nil {
		return res, err
	}
	res.names = names
	warns = append(warns, annos.AsErrors()...)
	values, annos, err := qr.LabelValues(ctx, "i", nil)
	if err != nil {
		return res, err
	}
	res.values = values
	warns = append(warns, annos.AsErrors()...)

	md, err := querier.NewMetadataFunc(c.ings)(ctx, "", -1, -1)
	if err != nil {
		return res, err
	}
	res.metadata = len(md["m"])
	for _, w := range warns {
		res.warnings = append(res.warnings, w.Error())
	}
	return res, nil
}

// TestRingReads: the querier reads through the ring, answers exactly while
// the failed ingesters fit the read set's budget (RF−quorum instances, or
// one whole zone), says so in warnings, and fails with a storage error
// naming the failed ingesters beyond it.
func TestRingReads(t *testing.T) {
	for _, tc := range []struct {
		name  string
		zones []string
		stop  []int // ingesters whose server is stopped (heartbeat still fresh)
		stale []int // ingesters whose heartbeat is stale (server still up)
		// wantErr lists what the error must name; empty means success.
		wantErr []string
		// wantWarn lists the ingesters the warnings must name.
		wantWarn []string
	}{
		{name: "all up", zones: []string{"", "", ""}},
		{name: "one down", zones: []string{"", "", ""}, stop: []int{1}, wantWarn: []string{"ing-1@"}},
		{name: "two down", zones: []string{"", "", ""}, stop: []int{0, 2}, wantErr: []string{"ing-0@", "ing-2@", "at most 1 tolerated"}},
		{name: "one stale one down", zones: []string{"", "", ""}, stale: []int{0}, stop: []int{2}, wantErr: []string{"ing-2@", "at most 0 tolerated"}},
		{name: "two stale", zones: []string{"", "", ""}, stale: []int{0, 1}, wantErr: []string{"ing-0@", "ing-1@", "too few healthy"}},
		{name: "three zones one down", zones: []string{"a", "b", "c"}, stop: []int{1}, wantWarn: []string{"ing-1@"}},
		{name: "three zones two down", zones: []string{"a", "b", "c"}, stop: []int{0, 1}, wantErr: []string{"ing-0@", "ing-1@", "at most 1 zone"}},
		{name: "zones all up", zones: []string{"a", "b", "c", "a", "b", "c"}},
		{name: "zone a down", zones: []string{"a", "b", "c", "a", "b", "c"}, stop: []int{0, 3}, wantWarn: []string{"ing-0@", "ing-3@"}},
		{name: "two zones hit", zones: []string{"a", "b", "c", "a", "b", "c"}, stop: []int{0, 4}, wantErr: []string{"ing-0@", "ing-4@", "at most 1 zone"}},
	} {
		for _, minimize := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/minimize=%v", tc.name, minimize), func(t *testing.T) {
				c := newRingClusterWith(t, 3, tc.zones, querier.RingReadConfig{MinimizeRequests: minimize}, nil, tc.stale...)
				checkRingRead(t, c, tc.stop, tc.wantErr, tc.wantWarn, minimize && len(tc.zones) == 3)
			})
		}
	}
}

// checkRingRead pushes the series of TestRingReads to every ingester of c,
// stops those in stop and reads everything back: the error must name
// everything in wantErr, or the answer must be complete with warnings that
// name every ingester in wantWarn. With maybeUnasked, where a minimized
// read set may not have asked a stopped ingester, the warnings need only
// name nothing else.
func checkRingRead(t *testing.T, c *ringCluster, stop []int, wantErr, wantWarn []string, maybeUnasked bool) {
	t.Helper()
	const numSeries = 20
	var series []labels.Labels
	var values []string
	for i := range numSeries {
		series = append(series, labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%02d", i)))
		values = append(values, fmt.Sprintf("%02d", i))
	}
	samples := samplesRange(0, 60_000, 15_000)
	pushAll(t, c, series, samples)
	for _, i := range stop {
		require.NoError(t, c.nodes[i].Close())
	}

	res, err := readEverything(t, c)
	if len(wantErr) > 0 {
		var es promql.ErrStorage
		require.ErrorAs(t, err, &es, "must be a storage error (HTTP 5xx)")
		t.Logf("error: %v", err)
		for _, s := range wantErr {
			require.ErrorContains(t, err, s)
		}
		return
	}
	require.NoError(t, err)
	require.Len(t, res.selected, numSeries)
	for _, ls := range series {
		require.Equal(t, samples, res.selected[ls.String()], ls.String())
	}
	require.Equal(t, numSeries, res.seriesOnly)
	require.Equal(t, []string{"__name__", "i"}, res.names)
	require.Equal(t, values, res.values)
	require.Equal(t, 1, res.metadata)
	if len(wantWarn) == 0 {
		require.Empty(t, res.warnings)
	}
	t.Logf("warnings: %s", strings.Join(res.warnings, "\n"))
	if maybeUnasked {
		for _, w := range res.warnings {
			require.True(t, slices.ContainsFunc(wantWarn, func(name string) bool { return strings.Contains(w, name) }), w)
		}
		return
	}
	all := strings.Join(res.warnings, "\n")
	for _, w := range wantWarn {
		require.Contains(t, all, w)
	}
}

// TestRingEmpty: a ring without ingesters fails reads with a storage error
// rather than answering "no data".
func TestRingEmpty(t *testing.T) {
	c := newRingCluster(t, 3, nil)
	_, err := c.q.Querier(0, 1)
	var es promql.ErrStorage
	require.ErrorAs(t, err, &es)
	require.ErrorContains(t, err, ring.ErrEmptyRing.Error())
}
