package ruler

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// switchStream is a raft stream layer on a real TCP listener that a test
// can cut off: while down it refuses to dial, drops what it accepts, and
// closes every connection it had.
type switchStream struct {
	net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newSwitchStream(t testing.TB, addr string) *switchStream {
	t.Helper()
	var (
		ln  net.Listener
		err error
	)
	// A restarted ruler rebinds its old port; the old listener may take a
	// moment to be released.
	require.Eventually(t, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "listen %s: %v", addr, err)
	return &switchStream{Listener: ln, conns: map[net.Conn]struct{}{}}
}

func (s *switchStream) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if s.track(c) {
			return c, nil
		}
	}
}

func (s *switchStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return nil, errors.New("partitioned")
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if !s.track(c) {
		return nil, errors.New("partitioned")
	}
	return c, nil
}

func (s *switchStream) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// Close closes the listener and every connection: raft's transport leaves
// the goroutines of accepted connections running otherwise.
func (s *switchStream) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
	clear(s.conns)
	return err
}

func (s *switchStream) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
	if down {
		for c := range s.conns {
			c.Close()
		}
		clear(s.conns)
	}
}

// receivedAlert is one alert as a notifier received it over API v2.
type receivedAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	At          time.Time         `json:"-"`
	Tenant      string            `json:"-"` // the request's X-Scope-OrgID
}

// receiver is an Alertmanager API v2 endpoint that records what it gets.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	alerts []receivedAlert
	// check, when set, sees each alert as it arrives, before the
	// request is answered.
	check func(receivedAlert)
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var as []receivedAlert
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		rc.mu.Lock()
		check := rc.check
		for i := range as {
			as[i].At = now
			as[i].Tenant = r.Header.Get("X-Scope-OrgID")
		}
		rc.alerts = append(rc.alerts, as...)
		rc.mu.Unlock()
		if check != nil {
			for _, a := range as {
				check(a)
			}
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// named returns the alerts received for alertname, firing or resolved.
func (rc *receiver) named(name string) []receivedAlert {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []receivedAlert
	for _, a := range rc.alerts {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// storageT is the cluster's storage as the rulers see it: one real tsdb.
type storageT struct {
	db     *tsdb.DB
	engine *promql.Engine
}

func newStorage(t testing.TB) *storageT {
	db, err := tsdb.Open(t.TempDir(), promslog.NewNopLogger(), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	return &storageT{db: db, engine: engine}
}

// writeNodes appends kube_node_info for n of maxNodes nodes at now, and
// staleness markers for the others, as a scrape would.
func (s *storageT) writeNodes(t testing.TB, n int) {
	app := s.db.Appender(context.Background())
	ts := time.Now().UnixMilli()
	for i := range maxNodes {
		v := 1.0
		if i >= n {
			v = math.Float64frombits(value.StaleNaN)
		}
		_, err := app.Append(0, labels.FromStrings("__name__", "kube_node_info", "node", "node-"+string(rune('a'+i))), ts, v)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

const maxNodes = 5

// feedNodes keeps writing n nodes every 200ms until the test ends; set
// changes n.
func (s *storageT) feedNodes(t testing.TB, n int) (set func(int)) {
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			mu.Lock()
			cur := n
			mu.Unlock()
			s.writeNodes(t, cur)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func(v int) { mu.Lock(); n = v; mu.Unlock() }
}

// replica is one ruler of a test cluster, restartable.
type replica struct {
	t      testing.TB
	addr   string
	dir    string
	stream *switchStream
	reg    *prometheus.Registry
	r      *Ruler
	cancel context.CancelFunc
	done   chan error
}

type clusterT struct {
	t        testing.TB
	store    *storageT
	recv     *receiver
	rules    string // rule file
	replicas []*replica
	mutate   func(*Config)
	options  func(*Options)
}

func testConfig() Config {
	var c Config
	fs := newFlagSet()
	c.RegisterFlags(fs)
	c.EvaluationInterval = time.Second
	c.ResendDelay = 2 * time.Second
	c.HeartbeatTimeout = 500 * time.Millisecond
	c.ElectionTimeout = 500 * time.Millisecond
	c.LeaderLeaseTimeout = 250 * time.Millisecond
	return c
}

// newCluster starts n rulers on 127.0.0.1 sharing storage and a receiver.
func newCluster(t testing.TB, n int, rulesYAML string, mutate func(*Config)) *clusterT {
	return newClusterWith(t, n, rulesYAML, mutate, nil)
}

// newClusterWith is newCluster with a hook that changes each replica's
// Options before New.
func newClusterWith(t testing.TB, n int, rulesYAML string, mutate func(*Config), options func(*Options)) *clusterT {
	c := &clusterT{t: t, store: newStorage(t), recv: newReceiver(t), mutate: mutate, options: options}
	if rulesYAML != "" {
		c.rules = filepath.Join(t.TempDir(), "rules.yml")
		require.NoError(t, os.WriteFile(c.rules, []byte(rulesYAML), 0o644))
	}
	var peers []string
	for range n {
		rp := &replica{t: t, dir: t.TempDir()}
		rp.stream = newSwitchStream(t, "127.0.0.1:0")
		rp.addr = rp.stream.Addr().String()
		peers = append(peers, rp.addr)
		c.replicas = append(c.replicas, rp)
	}
	for _, rp := range c.replicas {
		c.start(rp, peers)
	}
	t.Cleanup(func() {
		for _, rp := range c.replicas {
			c.stop(rp)
		}
	})
	return c
}

func (c *clusterT) peers() []string {
	var out []string
	for _, rp := range c.replicas {
		out = append(out, rp.addr)
	}
	return out
}

func (c *clusterT) start(rp *replica, peers []string) {
	t := c.t
	if rp.stream == nil {
		rp.stream = newSwitchStream(t, rp.addr)
	}
	cfg := testConfig()
	cfg.Peers = peers
	cfg.AlertmanagerURL = []string{c.recv.srv.URL}
	if c.mutate != nil {
		c.mutate(&cfg)
	}
	var files []string
	if c.rules != "" {
		files = []string{c.rules}
	}
	rp.reg = prometheus.NewRegistry()
	opts := Options{
		Config:      cfg,
		Rules:       RulesConfig{Files: files},
		RaftDir:     rp.dir,
		Queryable:   c.store.db,
		Engine:      c.store.engine,
		Appendable:  c.store.db,
		Logger:      promslog.New(&promslog.Config{}).With("ruler", rp.addr),
		Registerer:  rp.reg,
		StreamLayer: rp.stream,
	}
	if c.options != nil {
		c.options(&opts)
	}
	r, err := New(opts)
	require.NoError(t, err)
	rp.r = r
	ctx, cancel := context.WithCancel(context.Background())
	rp.cancel, rp.done = cancel, make(chan error, 1)
	go func() { rp.done <- r.Run(ctx) }()
}

// stop ends a replica's Run, as a crash would as far as raft is concerned:
// no leadership transfer.
func (c *clusterT) stop(rp *replica) {
	if rp.cancel == nil {
		return
	}
	rp.cancel()
	require.NoError(c.t, <-rp.done)
	rp.cancel, rp.r, rp.stream = nil, nil, nil
}

// leader waits for exactly one evaluating leader and returns it.
func (c *clusterT) leader() *replica {
	var l *replica
	require.Eventually(c.t, func() bool {
		l = nil
		n := 0
		for _, rp := range c.replicas {
			if rp.r != nil && rp.r.Mode() == ModeLeader {
				l = rp
				n++
			}
		}
		return n == 1
	}, 20*time.Second, 20*time.Millisecond, "no single leader")
	return l
}

func (c *clusterT) evaluating() []*replica {
	var out []*replica
	for _, rp := range c.replicas {
		if rp.r != nil && rp.r.Mode() != ModeFollower {
			out = append(out, rp)
		}
	}
	return out
}

// alert returns the state of alertname's alert on replica rp, nil if none.
func alertOn(rp *replica, name string) *alertSnapshot {
	for _, ar := range rp.r.AlertingRules() {
		if ar.Name() != name {
			continue
		}
		for _, a := range ar.ActiveAlerts() {
			return &alertSnapshot{State: a.State.String(), ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, Annotations: a.Annotations.Map()}
		}
	}
	return nil
}

type alertSnapshot struct {
	State             string
	ActiveAt, FiredAt time.Time
	Annotations       map[string]string
}
