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
	require.Equal(t, f.namespace("team"), g.namespace("team"))
	require.Equal(t, int64(42), g.groupState("api:team;g").Rules["A{}"][0].ActiveAt)

	// Deleting the namespace drops its alert state and signals a change.
	require.NoError(t, f.applyCommand(&command{Op: opDeleteNamespace, Namespace: "team"}))
	<-changed
	v2, _ := f.rulesChanged()
	require.Greater(t, v2, v)
	require.Nil(t, f.groupState("api:team;g"))
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
