package app

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-tsdb/pharos/alerting"
)

// ErrConfigInvalid marks a configuration that -config.verify refused, so
// main can exit 1 (invalid) rather than 2 (usage) for load errors too.
var ErrConfigInvalid = errors.New("invalid configuration")

// VerifyOnly reports whether -config.verify was given: check the
// configuration with Verify and exit instead of running.
func (c *Config) VerifyOnly() bool { return c.verifyOnly }

// Verify checks what a start would refuse without binding a port or
// touching the data directory, so it can run in an init container or a
// CI job against rendered manifests: the sections, then the files the
// configuration points at and that this process's roles will read (the
// notifier's alertmanager.yml, the ruler's rule files, the certificates of
// the links they serve or dial). The scrape section
// was already loaded by Prometheus's own loader in Load.
func Verify(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfigInvalid, err)
	}
	roles, _ := cfg.Roles()
	if slices.Contains(roles, RoleNotifier) && cfg.Notifier.ConfigFile != "" {
		if err := alerting.CheckConfigFile(cfg.Notifier.ConfigFile); err != nil {
			return fmt.Errorf("%w: notifier.config_file: %w", ErrConfigInvalid, err)
		}
	}
	if slices.Contains(roles, RoleRuler) {
		if err := verifyRuleFiles(cfg.Rules.Files); err != nil {
			return fmt.Errorf("%w: rules.files: %w", ErrConfigInvalid, err)
		}
	}
	if err := verifyTLSFiles(cfg, roles); err != nil {
		return fmt.Errorf("%w: %w", ErrConfigInvalid, err)
	}
	return nil
}

// verifyTLSFiles reads the certificates, keys and CA bundles of the links
// this process's roles serve or dial, as their start does: a Secret
// mounted with a missing or broken file fails here, named by its setting,
// rather than at the first handshake. (The gossip key is read by the
// memberlist section's Validate.)
func verifyTLSFiles(cfg *Config, roles []string) error {
	has := func(rs ...string) bool {
		return slices.ContainsFunc(rs, func(r string) bool { return slices.Contains(roles, r) })
	}
	builds := []struct {
		setting string
		on      bool
		build   func() error
	}{
		{"server.grpc_tls", has(RoleIngester), func() error { _, err := cfg.Server.GRPCTLS.Build(); return err }},
		{"server.http_client_tls", true, func() error { _, err := cfg.Server.HTTPClientTLS.Build(); return err }},
		{"ingester_client.tls", has(RoleDistributor, RoleQuerier, RoleRuler), func() error { _, err := cfg.IngesterClient.TLS.Build(); return err }},
		{"ruler.raft_tls", has(RoleRuler), func() error { _, _, err := cfg.Ruler.RaftTLS.Build(); return err }},
		{"notifier.cluster_tls", has(RoleNotifier), func() error { _, _, err := cfg.Notifier.ClusterTLS.Build(); return err }},
	}
	for _, b := range builds {
		if !b.on {
			continue
		}
		if err := b.build(); err != nil {
			return fmt.Errorf("%s: %w", b.setting, err)
		}
	}
	return nil
}

// verifyRuleFiles parses every file the globs match as the ruler will
// (promtool check rules). A glob that matches nothing is not an error, as
// in Prometheus's rule_files.
func verifyRuleFiles(globs []string) error {
	var files []string
	for _, g := range globs {
		m, err := filepath.Glob(g)
		if err != nil {
			return fmt.Errorf("%q: %w", g, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	p := parser.NewParser(parser.Options{})
	var errs []error
	for _, f := range slices.Compact(files) {
		_, fileErrs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
		errs = append(errs, fileErrs...)
	}
	return errors.Join(errs...)
}
