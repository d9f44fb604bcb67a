package ruler

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/dns"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

// parseAlertmanagerURL turns one ruler.alertmanager_url entry into the
// alerting section Prometheus would have for it: a static target, or DNS
// service discovery for dns+ (A records, port from the URL) and dnssrv+
// (SRV records), as the Cortex ruler reads the same syntax.
func parseAlertmanagerURL(raw string) (*promconfig.AlertmanagerConfig, error) {
	sdType := ""
	rest := raw
	switch {
	case strings.HasPrefix(raw, "dnssrv+"):
		sdType, rest = "SRV", strings.TrimPrefix(raw, "dnssrv+")
	case strings.HasPrefix(raw, "dns+"):
		sdType, rest = "A", strings.TrimPrefix(raw, "dns+")
	}
	u, err := url.Parse(rest)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", raw)
	}
	am := promconfig.DefaultAlertmanagerConfig
	am.HTTPClientConfig = commoncfg.DefaultHTTPClientConfig
	am.Scheme = u.Scheme
	am.PathPrefix = strings.TrimSuffix(u.Path, "/")
	am.APIVersion = promconfig.AlertmanagerAPIVersionV2
	if u.User != nil {
		pw, _ := u.User.Password()
		am.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: u.User.Username(), Password: commoncfg.Secret(pw)}
	}
	switch sdType {
	case "":
		am.ServiceDiscoveryConfigs = discovery.Configs{discovery.StaticConfig{{
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
			Source:  raw,
		}}}
	case "A":
		host, portStr, err := net.SplitHostPort(u.Host)
		if err != nil {
			return nil, fmt.Errorf("%q: dns+ needs host:port: %w", raw, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("%q: port: %w", raw, err)
		}
		am.ServiceDiscoveryConfigs = discovery.Configs{&dns.SDConfig{
			Names: []string{host}, Type: "A", Port: port, RefreshInterval: model.Duration(30 * time.Second),
		}}
	case "SRV":
		am.ServiceDiscoveryConfigs = discovery.Configs{&dns.SDConfig{
			Names: []string{u.Hostname()}, Type: "SRV", RefreshInterval: model.Duration(30 * time.Second),
		}}
	}
	return &am, nil
}

// alertingConfig builds the Prometheus configuration the notifier manager
// and its discovery read.
func alertingConfig(urls []string, timeout time.Duration) (*promconfig.Config, error) {
	cfg := promconfig.DefaultConfig
	for _, raw := range urls {
		am, err := parseAlertmanagerURL(raw)
		if err != nil {
			return nil, err
		}
		am.Timeout = model.Duration(timeout)
		cfg.AlertingConfig.AlertmanagerConfigs = append(cfg.AlertingConfig.AlertmanagerConfigs, am)
	}
	return &cfg, nil
}

// notifyDiscovery is the discovery manager feeding the notifier manager
// the alertmanagers to send to, as Prometheus's "notify" discovery does.
type notifyDiscovery struct {
	m      *discovery.Manager
	cancel context.CancelFunc
	done   chan struct{}
}

// newNotifyDiscovery creates the discovery manager. sdMetrics are the
// per-mechanism SD metrics, which a registry holds once per process (the
// scraper's discovery shares them); nil registers them on a registry of
// their own, unexported.
func newNotifyDiscovery(cfg *promconfig.Config, sdMetrics *discovery.SDMetrics, logger *slog.Logger, reg prometheus.Registerer) (*notifyDiscovery, error) {
	if sdMetrics == nil {
		var err error
		if sdMetrics, err = discovery.CreateAndRegisterSDMetrics(prometheus.NewRegistry()); err != nil {
			return nil, fmt.Errorf("create notify discovery metrics: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := discovery.NewManager(ctx, logger.With("component", "discovery manager notify"), reg, sdMetrics, discovery.Name("notify"))
	if m == nil {
		cancel()
		return nil, fmt.Errorf("create notify discovery manager")
	}
	c := map[string]discovery.Configs{}
	for k, v := range cfg.AlertingConfig.AlertmanagerConfigs.ToMap() {
		c[k] = v.ServiceDiscoveryConfigs
	}
	if err := m.ApplyConfig(c); err != nil {
		cancel()
		return nil, fmt.Errorf("apply notify discovery config: %w", err)
	}
	return &notifyDiscovery{m: m, cancel: cancel, done: make(chan struct{})}, nil
}

func (d *notifyDiscovery) syncCh() <-chan map[string][]*targetgroup.Group { return d.m.SyncCh() }

func (d *notifyDiscovery) run() {
	defer close(d.done)
	_ = d.m.Run()
}

func (d *notifyDiscovery) stop() {
	d.cancel()
	<-d.done
}
