package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pharos-tsdb/pharos/alerting"
)

// NotifierConfig is the `notifier:` section: the alerting settings plus the
// listener the notifier role gets when no querier shares its process.
type NotifierConfig struct {
	alerting.Config `yaml:",inline"`
	// HTTPListen is where a process that runs the notifier without the
	// querier serves it at the root path, as Alertmanager does on :9093.
	HTTPListen string `yaml:"http_listen"`
}

// RegisterFlags registers the notifier.* flags.
func (c *NotifierConfig) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	fs.StringVar(&c.HTTPListen, "notifier.http-listen", ":9093", "Address of the notifier's own HTTP server (API v2 at /api/v2, /metrics, /-/ready, /-/healthy, /-/reload), used when the process runs the notifier but not the querier. With the querier, the notifier is served under /alertmanager on server.http_listen instead.")
}

// notifierPrefix is where the notifier's API lives on the main HTTP server,
// as in an alertmanager run with --web.route-prefix=/alertmanager.
const notifierPrefix = "/alertmanager"

// defaultAlertmanagerConfigName is where the embedded alertmanager.yml is
// written when notifier.config_file is empty.
const defaultAlertmanagerConfigName = "alertmanager.default.yml"

// notifierOwnListener reports whether the notifier gets its own HTTP server
// (notifier.http_listen, root path) rather than /alertmanager on the main
// one: that is the case whenever no querier shares the process, so a
// dedicated notifier looks like an Alertmanager to amtool and Prometheus.
func (c *Config) notifierOwnListener() bool {
	roles, _ := c.Roles()
	return slices.Contains(roles, RoleNotifier) && !slices.Contains(roles, RoleQuerier)
}

// validateNotifier checks the notifier section as this process will run it.
func (c *Config) validateNotifier() error {
	n := c.notifierConfig()
	if err := n.Validate(); err != nil {
		return err
	}
	if c.notifierOwnListener() && c.Notifier.HTTPListen == "" {
		return errors.New("http_listen: must not be empty when the notifier runs without the querier")
	}
	return nil
}

// notifierConfig is the notifier section with the defaults that derive from
// other sections: data under <storage.path>/notifier, the embedded
// alertmanager.yml, and the gossip peers.
//
// Peers: explicit notifier.peers win. Otherwise a lone all-in-one process
// (no memberlist.join) runs without notifier gossip, and an all-in-one
// process that joins a memberlist cluster takes its notifier peers from the
// memberlist.join hosts at this process's notifier cluster port. That is
// sound only because in all-in-one mode every joined host runs a notifier
// and all nodes share one configuration, hence one cluster port (a
// StatefulSet, a compose file); processes with split roles must list
// notifier.peers themselves, since a join host may run no notifier.
func (c *Config) notifierConfig() alerting.Config {
	n := c.Notifier.Config
	// One Alertmanager per tenant, chosen by X-Scope-OrgID, as the rest
	// of the process serves tenants.
	n.MultiTenant = c.Multitenancy.Enabled
	if n.DataDir == "" {
		n.DataDir = filepath.Join(c.Storage.Path, "notifier")
	}
	if n.ConfigFile == "" {
		n.ConfigFile = filepath.Join(n.DataDir, defaultAlertmanagerConfigName)
	}
	if strings.TrimSpace(c.Target) == RoleAll && len(n.Peers) == 0 && n.ClusterBind != "" {
		if len(c.Memberlist.Join) == 0 {
			n.ClusterBind = ""
		} else {
			n.Peers = notifierPeersFromJoin(c.Memberlist.Join, n.ClusterAdvertise, n.ClusterBind)
		}
	}
	return n
}

// notifierPeersFromJoin maps memberlist seeds (host:port, dns+host:port,
// dnssrv+name) to notifier cluster peers host:<notifier port>. The
// alertmanager cluster resolves each host to all its addresses, so a
// dns+ seed keeps its meaning. A dnssrv+ seed names no host whose port we
// could swap and is skipped; so is everything when the notifier port is
// not fixed (":0").
func notifierPeersFromJoin(join []string, advertise, bind string) []string {
	addr := advertise
	if addr == "" {
		addr = bind
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return nil
	}
	var peers []string
	for _, j := range join {
		if strings.HasPrefix(j, "dnssrv+") {
			continue
		}
		host, _, err := net.SplitHostPort(strings.TrimPrefix(j, "dns+"))
		if err != nil || host == "" {
			continue
		}
		peers = append(peers, net.JoinHostPort(host, port))
	}
	return peers
}

// hostExternalURL is upstream's default --web.external-url: this host at
// the port listen serves, plus the route prefix (Prometheus's for its
// generator links, Alertmanager's for the links in notifications).
func hostExternalURL(scheme string, listen net.Addr, prefix string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	port := "80"
	if tcp, ok := listen.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	}
	return scheme + "://" + net.JoinHostPort(host, port) + strings.TrimRight(prefix, "/")
}

// buildNotifier creates the notifier, writing the embedded alertmanager.yml
// when none is configured. It mounts it under notifierPrefix on mux, or, for
// a process without a querier, opens notifier.http_listen and serves it
// there at the root with its own /metrics.
func (a *App) buildNotifier(mux *http.ServeMux) error {
	ncfg := a.cfg.notifierConfig()
	if a.cfg.Notifier.ConfigFile == "" {
		if err := os.MkdirAll(ncfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("notifier data dir: %w", err)
		}
		if err := os.WriteFile(ncfg.ConfigFile, defaultAlertmanagerYAML, 0o644); err != nil {
			return fmt.Errorf("write default alertmanager config: %w", err)
		}
	}
	own := a.cfg.notifierOwnListener()
	prefix, listen := notifierPrefix, a.httpLn.Addr()
	if own {
		ln, err := net.Listen("tcp", a.cfg.Notifier.HTTPListen)
		if err != nil {
			return fmt.Errorf("listen notifier http: %w", err)
		}
		a.notifierLn = ln
		prefix, listen = "", ln.Addr()
	}
	if ncfg.ExternalURL == "" {
		ncfg.ExternalURL = hostExternalURL(a.sec.scheme, listen, prefix)
	}
	n, err := alerting.New(ncfg, prefix, a.logger.With("component", "notifier"), a.reg)
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	a.notifier = n
	if !own {
		mux.Handle(notifierPrefix+"/", n.Handler())
		return nil
	}
	nmux := http.NewServeMux()
	nmux.Handle("/metrics", promhttp.InstrumentMetricHandler(a.reg, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})))
	// The notifier handler serves /api/v2, /-/reload (alertmanager.yml, as
	// upstream's), /-/healthy and /-/ready.
	nmux.Handle("/", n.Handler())
	a.notifierSrv = &http.Server{Handler: nmux, ReadHeaderTimeout: 30 * time.Second}
	return nil
}

// NotifierAddr is the address of the notifier's own HTTP server, "" when the
// notifier is served under /alertmanager or not run.
func (a *App) NotifierAddr() string {
	if a.notifierLn == nil {
		return ""
	}
	return a.notifierLn.Addr().String()
}

// startNotifier starts the notifier and its own HTTP server, if any; errc
// receives a serve failure.
func (a *App) startNotifier(errc chan<- error) {
	if a.notifier == nil {
		return
	}
	if a.notifierSrv != nil {
		go func() {
			if err := a.serveHTTP(a.notifierSrv, a.notifierLn, a.logger.With("component", "notifier http")); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("notifier http server: %w", err)
			}
		}()
	}
	nctx, stop := context.WithCancel(context.Background())
	a.notifierStop, a.notifierDone = stop, make(chan error, 1)
	go func() { a.notifierDone <- a.notifier.Run(nctx) }()
}

// stopNotifier drains the notifier's HTTP server, then stops the notifier,
// which writes its silence and notification-log snapshots and leaves its
// gossip cluster on the way out.
func (a *App) stopNotifier(ctx context.Context) error {
	var errs []error
	if a.notifierSrv != nil {
		if err := a.notifierSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("notifier http shutdown: %w", err))
		}
		a.notifierSrv = nil
	}
	if a.notifierStop != nil {
		a.notifierStop()
		if a.notifierDone != nil {
			if err := <-a.notifierDone; err != nil {
				errs = append(errs, fmt.Errorf("notifier: %w", err))
			}
		}
		a.notifierStop = nil
	}
	return errors.Join(errs...)
}
