package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// ErrNotRunning is returned (and served as 503) while Run has not
// started the notifier or after it stopped.
var ErrNotRunning = errors.New("notifier not running")

var errRunTwice = errors.New("notifier: Run called twice")

// Notifier is one replica of the notifier role. Create it with New,
// mount Handler, then call Run once.
type Notifier struct {
	cfg         Config
	routePrefix string
	logger      *slog.Logger
	reg         prometheus.Registerer

	handler atomic.Pointer[http.Handler]
	ready   chan struct{}
	ran     atomic.Bool

	// Set by start before anything can reach them, read-only after.
	amURL   *url.URL
	peer    *cluster.Peer
	configs *tenantConfigs // nil without multi-tenancy
	// tenantsGauge counts running tenants; nil without multi-tenancy,
	// where the metrics stay exactly upstream's.
	tenantsGauge prometheus.Gauge

	// mu guards the instances and the fallback so Reload, the config
	// API and gossiped configurations never race Run's start or stop.
	mu        sync.Mutex
	running   bool
	instances map[string]*instance
	// starting holds the tenants whose Alertmanager is being started;
	// the channel closes when the start is over (see instance).
	starting map[string]chan struct{}
	fallback *config.Config
}

// New validates cfg and the alertmanager.yml it names. An invalid file
// is refused with the upstream message, which names the offending field.
// reg must be private to this Notifier (or at least to one Notifier at a
// time): Run registers the upstream alertmanager_* metrics on it.
func New(cfg Config, routePrefix string, logger *slog.Logger, reg prometheus.Registerer) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notifier config: %w", err)
	}
	if logger == nil || reg == nil {
		return nil, errors.New("notifier: logger and registerer are required")
	}
	if _, err := loadConfig(cfg.ConfigFile); err != nil {
		return nil, err
	}
	if cfg.ExternalURL != "" {
		if _, err := externalURL(cfg.ExternalURL, routePrefix); err != nil {
			return nil, fmt.Errorf("notifier.external-url: %w", err)
		}
	}
	return &Notifier{
		cfg:         cfg,
		routePrefix: "/" + strings.Trim(routePrefix, "/"),
		logger:      logger,
		reg:         reg,
		ready:       make(chan struct{}),
	}, nil
}

// loadConfig is upstream's config.LoadFile plus the location of what it
// refuses and a parse of templated receiver fields (see validate.go).
func loadConfig(file string) (*config.Config, error) {
	c, err := parseConfigFile(file, nil)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	return c, nil
}

// parseConfigFile is loadConfig without the file name in its errors.
// checkGlobs, if not nil, vets the resolved template globs before any
// template file is read.
func parseConfigFile(file string, checkGlobs func([]string) error) (*config.Config, error) {
	c, err := loadFileUpstream(file)
	if err != nil {
		if raw, rerr := os.ReadFile(file); rerr == nil {
			if where := locateError(raw); where != "" {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		}
		return nil, err
	}
	if err := checkTemplates(c); err != nil {
		return nil, err
	}
	if checkGlobs != nil {
		if err := checkGlobs(c.Templates); err != nil {
			return nil, err
		}
	}
	// Upstream parses template files only when applying; doing it here
	// too refuses a bad `templates:` entry at New/Reload time.
	if _, err := template.FromGlobs(c.Templates); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	return c, nil
}

// externalURL follows upstream app/url.go; without an explicit URL the
// host name and route prefix are used (we own no listener to take a port
// from).
func externalURL(external, routePrefix string) (*url.URL, error) {
	if external == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		external = "http://" + host + "/" + strings.Trim(routePrefix, "/")
	}
	u, err := url.Parse(external)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: invalid %q scheme, only 'http' and 'https' are supported", u.String(), u.Scheme)
	}
	p := strings.TrimRight(u.Path, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	u.Path = p
	return u, nil
}

// Ready is closed once Run has started everything and Handler serves.
func (n *Notifier) Ready() <-chan struct{} { return n.ready }

// Handler serves the upstream API v2 (/api/v2/...), the deprecated v1
// stubs, /-/reload, /-/healthy and /-/ready under the route prefix given
// to New. Before Run is ready and after it stops it answers 503.
func (n *Notifier) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := n.handler.Load()
		if h == nil {
			http.Error(w, ErrNotRunning.Error(), http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	})
}

// Reload re-reads the alertmanager.yml. An invalid file is refused with
// an error naming the field and the running configuration stays in
// force. Before Run it only validates the file. With multi-tenancy the
// file is the fallback: every tenant without its own configuration
// switches to the new one.
func (n *Notifier) Reload() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Our checks first: the coordinator knows only upstream's, which
	// neither locate an error nor parse templated fields.
	conf, err := loadConfig(n.cfg.ConfigFile)
	if err != nil || !n.running {
		return err
	}
	if !n.cfg.MultiTenant {
		inst, ok := n.instances[tenant.DefaultTenant]
		if !ok {
			// Still starting: it applies the new fallback once started.
			n.fallback = conf
			return nil
		}
		if err := inst.coordinator.Reload(); err != nil {
			return fmt.Errorf("reload %s: %w", n.cfg.ConfigFile, err)
		}
		return nil
	}
	n.fallback = conf
	var errs []error
	for _, inst := range n.instances {
		if inst.own().IsZero() {
			errs = append(errs, inst.apply(conf, time.Time{}))
		}
	}
	return errors.Join(errs...)
}

type stack []func() error

func (s *stack) push(f func() error) { *s = append(*s, f) }

// drain runs the teardown steps in reverse order, like defers.
func (s stack) drain() error {
	var errs []error
	for i := len(s) - 1; i >= 0; i-- {
		errs = append(errs, s[i]())
	}
	return errors.Join(errs...)
}

// Run joins the gossip cluster, starts silences, the notification log,
// the inhibitor and dispatcher (of each tenant with multi-tenancy),
// serves Handler, and blocks until ctx is done. It returns after a clean
// shutdown: dispatch stopped, final silence and nflog snapshots written
// to DataDir, cluster left. Run may be called once.
func (n *Notifier) Run(ctx context.Context) error {
	if n.ran.Swap(true) {
		return errRunTwice
	}
	var cleanups stack
	err := n.start(&cleanups)
	if err == nil {
		close(n.ready)
		<-ctx.Done()
	}
	n.handler.Store(nil)
	return errors.Join(err, cleanups.drain())
}

// start mirrors upstream app.setup (same order, same options) minus the
// HTTP listener, UI, pprof and default-registry /metrics, which the caller
// owns; the per-Alertmanager part is newInstance.
func (n *Notifier) start(cleanups *stack) error {
	c := n.cfg
	logger, reg := n.logger, n.reg

	if err := os.MkdirAll(c.DataDir, 0o777); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	initialConf, err := loadConfig(c.ConfigFile)
	if err != nil {
		return err
	}
	n.amURL, err = externalURL(c.ExternalURL, n.routePrefix)
	if err != nil {
		return fmt.Errorf("notifier.external-url: %w", err)
	}

	var (
		peer         *cluster.Peer
		settleCancel = func() {}
	)
	if c.ClusterBind != "" {
		tlsConf, err := clusterTLSConfig(c)
		if err != nil {
			return fmt.Errorf("gossip tls config: %w", err)
		}
		peer, err = cluster.Create(
			logger.With("component", "cluster"), reg,
			c.ClusterBind, c.ClusterAdvertise, c.Peers, true,
			c.PushPullInterval, c.GossipInterval, c.TCPTimeout,
			c.PeersResolveTimeout, c.ProbeTimeout, c.ProbeInterval,
			tlsConf, false, c.ClusterLabel, c.ClusterPeerName,
		)
		if err != nil {
			return fmt.Errorf("create gossip peer: %w", err)
		}
		cleanups.push(func() error {
			settleCancel()
			err := peer.Leave(10 * time.Second)
			if !shutdownMemberlist(peer) {
				logger.Warn("could not shut down memberlist; gossip sockets stay open until exit")
			}
			if err != nil {
				return fmt.Errorf("leave gossip mesh: %w", err)
			}
			return nil
		})
	}
	n.peer = peer

	n.mu.Lock()
	n.instances = map[string]*instance{}
	n.starting = map[string]chan struct{}{}
	n.fallback = initialConf
	n.running = true
	n.mu.Unlock()
	// Stop every instance before the peer leaves, as upstream stops
	// dispatch before leaving.
	cleanups.push(n.stopInstances)

	var initial []string
	if c.MultiTenant {
		if initial, err = n.startTenantConfigs(cleanups); err != nil {
			return err
		}
	} else {
		initial = []string{tenant.DefaultTenant}
	}
	for _, id := range initial {
		// Tenants known before the restart run whatever the limit.
		if _, err := n.instance(id, true); err != nil {
			return err
		}
	}

	if peer != nil {
		if err := peer.Join(c.ReconnectInterval, c.ReconnectTimeout); err != nil {
			logger.Warn("unable to join gossip mesh", "err", err)
		}
		settleCtx, cancel := context.WithTimeout(context.Background(), c.SettleTimeout)
		settleCancel = cancel
		go peer.Settle(settleCtx, c.GossipInterval*10)
	}

	var h http.Handler
	if c.MultiTenant {
		h = n.tenantHandler()
	} else {
		h = n.instances[tenant.DefaultTenant].handler
	}
	n.handler.Store(&h)
	return nil
}

// errLimit is returned when a new tenant would exceed notifier.max_tenants.
var errLimit = errors.New("tenant limit reached")

// instance returns tenant id's Alertmanager, starting it with the
// fallback configuration (or the tenant's own, if one is stored) on first
// use; force ignores the tenant limit (for tenants other replicas already
// accepted). A start takes tens of milliseconds, so it runs outside n.mu:
// other tenants' requests never wait for it, the same tenant's wait for
// its one start.
func (n *Notifier) instance(id string, force bool) (*instance, error) {
	n.mu.Lock()
	for {
		if !n.running {
			n.mu.Unlock()
			return nil, ErrNotRunning
		}
		if inst, ok := n.instances[id]; ok {
			n.mu.Unlock()
			return inst, nil
		}
		ch, ok := n.starting[id]
		if !ok {
			break
		}
		n.mu.Unlock()
		<-ch
		n.mu.Lock()
	}
	if running := len(n.instances) + len(n.starting); !force && n.cfg.MaxTenants > 0 && running >= n.cfg.MaxTenants {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: the notifier runs %d tenants, the maximum (notifier.max_tenants)", errLimit, running)
	}
	done := make(chan struct{})
	n.starting[id] = done
	fallback := n.fallback
	n.mu.Unlock()

	inst, err := n.startInstance(id, fallback)

	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.starting, id)
	close(done)
	if err != nil {
		return nil, err
	}
	if !n.running {
		// Stopped while starting: stopInstances did not see it.
		return nil, errors.Join(ErrNotRunning, inst.stop())
	}
	n.instances[id] = inst
	if n.tenantsGauge != nil {
		n.tenantsGauge.Set(float64(len(n.instances)))
	}
	// A reload of the fallback or a gossiped configuration may have come
	// while it started; they skip starting tenants, so catch up here.
	if n.configs != nil {
		if err := n.applyTenantLocked(id, inst); err != nil {
			n.logger.Error("apply tenant configuration", "user", id, "err", err)
		}
	} else if fallback != n.fallback {
		if err := inst.apply(n.fallback, time.Time{}); err != nil {
			n.logger.Error("apply fallback configuration", "user", id, "err", err)
		}
	}
	return inst, nil
}

// startInstance builds tenant id's Alertmanager with its stored
// configuration, else fallback, and announces the tenant to the other
// replicas. n.mu is not held.
func (n *Notifier) startInstance(id string, fallback *config.Config) (*instance, error) {
	conf, own := fallback, time.Time{}
	if n.configs != nil {
		if e, ok := n.configs.get(id); ok {
			c, err := n.writeTenantConfig(id, e)
			if err != nil {
				n.logger.Error("tenant configuration refused; the tenant runs the fallback", "user", id, "err", err)
			} else {
				conf, own = c, e.UpdatedAt
			}
		}
	}
	inst, err := n.newInstance(id, conf, n.peer)
	if err != nil {
		return nil, err
	}
	inst.applied = own
	if n.configs != nil {
		if err := n.configs.announce(id); err != nil {
			n.logger.Error("announce tenant", "user", id, "err", err)
		}
	}
	return inst, nil
}

// stopInstances stops every tenant's Alertmanager, after the starts in
// flight; later lookups fail with ErrNotRunning.
func (n *Notifier) stopInstances() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.running = false
	for len(n.starting) > 0 {
		for _, ch := range n.starting {
			n.mu.Unlock()
			<-ch
			n.mu.Lock()
			break
		}
	}
	var errs []error
	for id, inst := range n.instances {
		errs = append(errs, inst.stop())
		delete(n.instances, id)
	}
	return errors.Join(errs...)
}

// registerLifecycle adds the upstream httpserver endpoints except
// /metrics (default registry) and pprof (DefaultServeMux).
func (n *Notifier) registerLifecycle(r *route.Router) {
	r.Post("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := n.Reload(); err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
		}
	})
	ok := func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusOK)
		if req.Method == http.MethodGet {
			fmt.Fprint(w, "OK")
		}
	}
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		r.Get(p, ok)
		r.Head(p, ok)
	}
}
