package ruler

import (
	"bytes"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

func TestCommandEncodingRoundTrips(t *testing.T) {
	small := &command{Op: opLeader, Leader: &leaderInfo{ID: "a", HTTPURL: "http://a"}}
	big := &command{Op: opAlertState, GroupKey: "f;g", State: &groupState{Rules: map[string][]alertState{}}}
	for i := range 50 {
		big.State.Rules["r"] = append(big.State.Rules["r"], alertState{
			Labels: map[string]string{"alertname": "TooManyNodes", "instance": strings.Repeat("x", i)},
			State:  "firing", Value: jsonFloat(math.NaN()), ActiveAt: int64(i),
		})
	}
	for _, c := range []*command{small, big} {
		b, err := encodeCommand(c)
		require.NoError(t, err)
		if c == big {
			require.Equal(t, byte(compressedMarker), b[0])
		} else {
			require.Equal(t, byte('{'), b[0])
		}
		got, err := decodeCommand(b)
		require.NoError(t, err)
		require.Equal(t, c.Op, got.Op)
		if c == big {
			require.Len(t, got.State.Rules["r"], 50)
			require.True(t, math.IsNaN(float64(got.State.Rules["r"][0].Value)), "NaN survives")
		}
	}
}

func TestFSMRefusesBadEntriesAndSnapshotsRestore(t *testing.T) {
	f := newFSM()
	require.Error(t, f.Apply(&raft.Log{Index: 1, Data: []byte("garbage")}).(error))
	require.Error(t, f.Apply(&raft.Log{Index: 2, Data: []byte(`{"op":"nope"}`)}).(error))
	require.ErrorIs(t, f.applyCommand(&command{Op: opDeleteGroup, Namespace: "x", Group: "y"}), errNotFound)

	require.NoError(t, f.applyCommand(&command{Op: opSetGroup, Namespace: "team", Group: "g", Body: "name: g\nrules: []\n"}))
	require.NoError(t, f.applyCommand(&command{Op: opAlertState, GroupKey: "api:team;g", State: &groupState{Rules: map[string][]alertState{
		"A{}": {{Labels: map[string]string{"alertname": "A"}, State: "pending", ActiveAt: 42}},
	}}}))
	v, changed := f.rulesChanged()

	snap, err := f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, snap.Persist(&sink{Buffer: &buf}))

	g := newFSM()
	require.NoError(t, g.Restore(io.NopCloser(&buf)))
	require.Equal(t, f.namespace(tenant.DefaultTenant, "team"), g.namespace(tenant.DefaultTenant, "team"))
	require.Equal(t, int64(42), g.groupState(tenant.DefaultTenant, "api:team;g").Rules["A{}"][0].ActiveAt)

	// Deleting the namespace drops its alert state and signals a change.
	require.NoError(t, f.applyCommand(&command{Op: opDeleteNamespace, Namespace: "team"}))
	<-changed
	v2, _ := f.rulesChanged()
	require.Greater(t, v2, v)
	require.Nil(t, f.groupState(tenant.DefaultTenant, "api:team;g"))
}

type sink struct{ *bytes.Buffer }

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { return nil }
func (s *sink) Close() error  { return nil }

func TestParseGroupReportsBodyLines(t *testing.T) {
	_, err := parseGroup([]byte("name: g\nrules:\n- alert: A\n  expr: up ==\n"), newParserForTest(), nil)
	require.ErrorContains(t, err, `4:9: group "g", rule 1, "A": could not parse expression`)
	_, err = parseGroup([]byte("name: g\nrules:\n- alert: A\n  expr: up\n  for: banana\n"), newParserForTest(), nil)
	require.EqualError(t, err, `invalid rule group: not a valid duration string: "banana"`)
	_, err = parseGroup([]byte("   \n"), newParserForTest(), nil)
	require.ErrorContains(t, err, "empty rule group")
	rg, err := parseGroup([]byte("name: g\ninterval: 30s\nrules:\n- record: r\n  expr: up\n"), newParserForTest(), nil)
	require.NoError(t, err)
	require.Equal(t, "g", rg.Name)
}

func TestAlertmanagerURLs(t *testing.T) {
	for raw, want := range map[string]string{
		"http://am:9093":                        "",
		"https://user:pw@am:9093/alertmanager":  "",
		"dns+http://am.monitoring.svc:9093":     "",
		"dnssrv+http://_web._tcp.am.monitoring": "",
		"ftp://am:9093":                         "scheme must be http or https",
		"dns+http://am.monitoring.svc":          "dns+ needs host:port",
		"http://":                               "no host",
	} {
		_, err := parseAlertmanagerURL(raw)
		if want == "" {
			require.NoError(t, err, raw)
		} else {
			require.ErrorContains(t, err, want, raw)
		}
	}
	am, err := parseAlertmanagerURL("http://am:9093/alertmanager/")
	require.NoError(t, err)
	require.Equal(t, "/alertmanager", am.PathPrefix)
}

func TestResolvePeersOrdersNumerically(t *testing.T) {
	got, err := resolvePeers(t.Context(), []string{"10.0.0.10:9096", "10.0.0.9:9096", "10.0.0.9:9096"})
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.9:9096", "10.0.0.10:9096"}, got)
	got, err = resolvePeers(t.Context(), []string{"dns+localhost:9096"})
	require.NoError(t, err)
	require.Contains(t, got, "127.0.0.1:9096")
}

func TestConfigPeers(t *testing.T) {
	for peer, want := range map[string]string{
		"10.0.0.1:9096":               "",
		"dns+ruler.svc:9096":          "",
		"ruler.svc":                   `peers: "ruler.svc": address ruler.svc: missing port in address`,
		"dnssrv+_raft._tcp.ruler.svc": `peers: "dnssrv+_raft._tcp.ruler.svc": dnssrv+ is not supported, use dns+name:port`,
	} {
		cfg := testConfig()
		cfg.Peers = []string{peer}
		err := cfg.Validate()
		if want == "" {
			require.NoError(t, err, peer)
		} else {
			require.EqualError(t, err, want, peer)
		}
	}
}

func newParserForTest() parser.Parser { return parser.NewParser(parser.Options{}) }

// FuzzFSMApply feeds arbitrary log entries to the FSM, as a corrupt or
// hostile log would: Apply answers an error or nil and never panics (every
// replica applies the same entry), and the state still snapshots and
// restores.
func FuzzFSMApply(f *testing.F) {
	for _, c := range []*command{
		{Op: opSetGroup, Namespace: "team", Group: "g", Body: "name: g\nrules: []\n"},
		{Op: opAlertState, GroupKey: "f;g", State: &groupState{Rules: map[string][]alertState{"A{}": {{Labels: map[string]string{"alertname": "A"}, State: "firing"}}}}},
		{Op: opDeleteNamespace, Namespace: "team"},
		{Op: opSetGroup, Tenant: "team-a", Namespace: "team", Group: "g", Body: "name: g\nrules: []\n"},
		{Op: opAlertState, Tenant: "team-b", GroupKey: "api:team;g", State: &groupState{Rules: map[string][]alertState{"A{}": {{State: "pending"}}}}},
		{Op: opLeader, Leader: &leaderInfo{ID: "a", HTTPURL: "http://a"}},
	} {
		b, err := encodeCommand(c)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{compressedMarker, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := newFSM()
		_ = fsm.Apply(&raft.Log{Index: 1, Data: data})
		_ = fsm.Apply(&raft.Log{Index: 2, Data: data})
		snap, err := fsm.Snapshot()
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, snap.Persist(&sink{Buffer: &buf}))
		require.NoError(t, newFSM().Restore(io.NopCloser(&buf)))
	})
}

// FuzzParseGroup: any body is a rule group or an error, never a panic.
func FuzzParseGroup(f *testing.F) {
	f.Add([]byte("name: g\ninterval: 30s\nrules:\n- alert: A\n  expr: up == 0\n  for: 5m\n  labels:\n    severity: page\n  annotations:\n    summary: '{{ $labels.instance }} down'\n"))
	f.Add([]byte("name: g\nrules:\n- record: r\n  expr: sum(rate(x[5m]))\n"))
	f.Add([]byte("---\n"))
	p := newParserForTest()
	f.Fuzz(func(t *testing.T, body []byte) {
		rg, err := parseGroup(body, p, nil)
		if err == nil {
			require.NotEmpty(t, rg.Name)
		}
	})
}

func TestOrdinalOfName(t *testing.T) {
	for name, want := range map[string]int{
		"pharos-ruler-2.pharos-ruler.monitoring.svc.cluster.local.": 2,
		"pharos-ruler-10.pharos-ruler.":                             10,
		"localhost":                                                 1 << 30,
		"node-x.example.":                                           1 << 30,
	} {
		require.Equal(t, want, ordinalOfName(name), name)
	}
}

// Log entries and snapshots written before tenants existed carry none; they
// belong to the default tenant, so an upgraded cluster keeps its rules and
// alert state.
func TestFSMReadsEntriesAndSnapshotsWithoutTenant(t *testing.T) {
	f := newFSM()
	for i, entry := range []string{
		`{"op":"set_group","ns":"team","group":"g","body":"name: g\nrules: []\n"}`,
		`{"op":"alert_state","key":"api:team;g","state":{"rules":{"A{}":[{"labels":{"alertname":"A"},"state":"firing","value":"1","active_at":7}]}}}`,
	} {
		require.Nil(t, f.Apply(&raft.Log{Index: uint64(i + 1), Data: []byte(entry)}))
	}
	require.Len(t, f.namespace(tenant.DefaultTenant, "team"), 1)
	require.Equal(t, int64(7), f.groupState(tenant.DefaultTenant, "api:team;g").Rules["A{}"][0].ActiveAt)
	require.Equal(t, []string{tenant.DefaultTenant}, f.apiTenants())

	old := `{"namespaces":{"team":{"g":"name: g\nrules: []\n"}},"groups":{"api:team;g":{"rules":{"A{}":[{"labels":{"alertname":"A"},"state":"pending","value":"1","active_at":42}]}}},"leader":{"id":"x","http_url":"http://x","term":3}}`
	g := newFSM()
	require.NoError(t, g.Restore(io.NopCloser(strings.NewReader(old))))
	require.Len(t, g.namespace(tenant.DefaultTenant, "team"), 1)
	require.Equal(t, int64(42), g.groupState(tenant.DefaultTenant, "api:team;g").Rules["A{}"][0].ActiveAt)
	require.Equal(t, uint64(3), g.leaderInfo().Term)
}

func TestFSMKeepsTenantsApart(t *testing.T) {
	f := newFSM()
	state := func(activeAt int64) *groupState {
		return &groupState{Rules: map[string][]alertState{"A{}": {{Labels: map[string]string{"alertname": "A"}, State: "firing", ActiveAt: activeAt}}}}
	}
	for i, id := range []string{"a", "b"} {
		require.NoError(t, f.applyCommand(&command{Op: opSetGroup, Tenant: id, Namespace: "ns", Group: "g", Body: "name: g\nrules: []\n# " + id}))
		require.NoError(t, f.applyCommand(&command{Op: opAlertState, Tenant: id, GroupKey: "api:ns;g", State: state(int64(i + 1))}))
	}
	require.Error(t, f.applyCommand(&command{Op: opSetGroup, Tenant: "../x", Namespace: "ns", Group: "g"}), "an invalid tenant is refused")
	n, exists := f.groupCount("a", "ns", "g")
	require.Equal(t, 1, n)
	require.True(t, exists)

	snap, err := f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, snap.Persist(&sink{Buffer: &buf}))
	g := newFSM()
	require.NoError(t, g.Restore(io.NopCloser(&buf)))
	for i, id := range []string{"a", "b"} {
		require.Contains(t, g.namespace(id, "ns")[0].Body, "# "+id)
		require.Equal(t, int64(i+1), g.groupState(id, "api:ns;g").Rules["A{}"][0].ActiveAt)
	}
	require.Empty(t, g.namespace(tenant.DefaultTenant, "ns"))

	// Deleting a's namespace leaves b's, and drops a from the FSM.
	require.NoError(t, g.applyCommand(&command{Op: opDeleteNamespace, Tenant: "a", Namespace: "ns"}))
	require.Nil(t, g.groupState("a", "api:ns;g"))
	require.NotNil(t, g.groupState("b", "api:ns;g"))
	require.Equal(t, []string{"b"}, g.apiTenants())
	require.NotContains(t, g.tenants, "a")
}
