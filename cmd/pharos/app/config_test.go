package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pharos.yml")
	require.NoError(t, os.WriteFile(file, []byte(body), 0o644))
	return file
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load(nil)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	require.Equal(t, ":9090", cfg.Server.HTTPListen)
	require.Equal(t, ":9095", cfg.Server.GRPCListen)
	require.Equal(t, "./data", cfg.Storage.Path)
	roles, err := cfg.Roles()
	require.NoError(t, err)
	require.Equal(t, []string{RoleIngester, RoleDistributor, RoleQuerier, RoleScraper, RoleNotifier, RoleRuler}, roles)
	// The notifier's data and embedded alertmanager.yml live under the
	// storage path, and a lone all-in-one process does not gossip.
	n := cfg.notifierConfig()
	require.Equal(t, "data/notifier", n.DataDir)
	require.Equal(t, "data/notifier/"+defaultAlertmanagerConfigName, n.ConfigFile)
	require.Empty(t, n.ClusterBind)
	// The embedded config scrapes the node itself.
	require.Len(t, cfg.Scrape.ScrapeConfigs, 1)
	require.Equal(t, "pharos", cfg.Scrape.ScrapeConfigs[0].JobName)
}

func TestLoadPrecedence(t *testing.T) {
	file := writeConfig(t, "server:\n  http_listen: \":1111\"\n  grpc_listen: \":2222\"\nstorage:\n  path: /from/file\n")
	cfg, err := Load([]string{"-config.file=" + file, "-storage.path=/from/flag"})
	require.NoError(t, err)
	require.Equal(t, ":1111", cfg.Server.HTTPListen, "file beats flag default")
	require.Equal(t, "/from/flag", cfg.Storage.Path, "explicit flag beats file")
	require.Nil(t, cfg.Scrape, "a file without scrape section scrapes nothing")
}

func TestLoadErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		body, want string
	}{
		"unknown top-level key": {"servre:\n  http_listen: x\n", "line 1: field servre not found"},
		"unknown nested key":    {"server:\n  http_listen: \":1\"\n  grpc: x\n", "line 3: field grpc not found"},
		"bad scrape section":    {"scrape:\n  scrape_configs:\n    - job_name: a\n      scrape_intervall: 1s\n", "line 4: field scrape_intervall not found"},
		"bad scrape value":      {"server:\n  log_level: info\nscrape:\n  scrape_configs:\n    - job_name: a\n      scrape_interval: banana\n", "banana"},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeConfig(t, tc.body)
			_, err := Load([]string{"-config.file=" + file})
			require.Error(t, err)
			require.Contains(t, err.Error(), file)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown role":      {[]string{"-target=all,bogus"}, `target: unknown role "bogus"`},
		"ruler alone":       {[]string{"-target=ruler"}, "ingester_client.addresses: required"},
		"bad ruler lease":   {[]string{"-ruler.raft-leader-lease-timeout=2s"}, "ruler: raft_leader_lease_timeout"},
		"querier alone":     {[]string{"-target=querier"}, "ingester_client.addresses: required"},
		"bad log level":     {[]string{"-server.log-level=loud"}, "server: log_level"},
		"bad compression":   {[]string{"-ingester.client.grpc-compression=lz4"}, "ingester_client: grpc_compression"},
		"querier with addr": {[]string{"-target=querier", "-ingester.client.addresses=a:1,b:2"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(tc.args)
			require.NoError(t, err)
			err = cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("PHAROS_TEST_DIR", "/env/dir")
	file := writeConfig(t, `storage:
  path: ${PHAROS_TEST_DIR}
server:
  http_listen: "${PHAROS_UNSET_VAR::9999}"
scrape:
  scrape_configs:
    - job_name: a
      relabel_configs:
        - source_labels: [__address__]
          regex: (.*):.*
          replacement: ${1}:9100
          target_label: __address__
`)
	cfg, err := Load([]string{"-config.file=" + file, "-config.expand-env"})
	require.NoError(t, err)
	require.Equal(t, "/env/dir", cfg.Storage.Path)
	require.Equal(t, ":9999", cfg.Server.HTTPListen)
	require.Equal(t, "${1}:9100", cfg.Scrape.ScrapeConfigs[0].RelabelConfigs[0].Replacement, "regex references survive")
}

// FuzzLoad: any configuration file loads or is refused with an error; the
// loader never panics (the scrape section goes through Prometheus's loader,
// notifier and ruler sections through theirs).
func FuzzLoad(f *testing.F) {
	f.Add([]byte("server:\n  http_listen: :9090\nring:\n  replication_factor: 3\n"))
	f.Add([]byte("scrape:\n  global:\n    scrape_interval: 1m\n  scrape_configs:\n    - job_name: x\n      static_configs:\n        - targets: [a:1]\n"))
	f.Add([]byte("rules:\n  files: [a.yml]\nruler:\n  peers: [a:1, b:2]\n  isolated_fallback: true\n"))
	f.Add([]byte("query_frontend:\n  query_sharding_total_shards: 4\nquerier:\n  max_fetched_series_per_query: 10\n"))
	f.Add([]byte("target: all,bogus\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		file := filepath.Join(t.TempDir(), "pharos.yml")
		require.NoError(t, os.WriteFile(file, body, 0o644))
		cfg, err := Load([]string{"-config.file=" + file})
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		_ = cfg.Validate()
	})
}

// Repeatable flags keep each value once although Load parses the flags
// twice (before and after the file).
func TestRepeatableFlagsOnce(t *testing.T) {
	cfg, err := Load([]string{"-memberlist.join=a:7946", "-memberlist.join=b:7946,c:7946", "-notifier.peer=n1:9094", "-notifier.peer=n2:9094"})
	require.NoError(t, err)
	require.Equal(t, []string{"a:7946", "b:7946", "c:7946"}, cfg.Memberlist.Join)
	require.Equal(t, []string{"n1:9094", "n2:9094"}, cfg.Notifier.Peers)
	require.Equal(t, "a:7946,b:7946,c:7946", cfg.flags["memberlist.join"])

	_, err = Load([]string{"-config.verify", "-no.such-flag"})
	require.ErrorIs(t, err, ErrConfigInvalid)
	_, err = Load([]string{"stray"})
	require.ErrorContains(t, err, "unexpected arguments")
}
