package app

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tlsconfig/tlstest"
)

func TestVerify(t *testing.T) {
	const goodAM = "route: {receiver: slack}\nreceivers:\n- name: slack\n  slack_configs:\n  - api_url: http://127.0.0.1:1/hook\n    channel: '#alerts'\n"
	const noSlackURL = "route: {receiver: slack}\nreceivers:\n- name: slack\n  slack_configs:\n  - channel: '#alerts'\n"
	const goodRules = "groups:\n- name: nodes\n  rules:\n  - alert: TooFewNodes\n    expr: count(kube_node_info) < 1\n    for: 15m\n"
	const badRules = "groups:\n- name: nodes\n  rules:\n  - alert: TooFewNodes\n    expr: count(kube_node_info <\n"

	for _, tc := range []struct {
		name      string
		am, rules string
		args      []string
		wantErr   string
	}{
		{name: "notifier and ruler files load", am: goodAM, rules: goodRules, args: []string{"-target=notifier,ruler", "-memberlist.join=127.0.0.1:7946"}},
		{name: "slack receiver without api_url", am: noSlackURL, rules: goodRules, args: []string{"-target=notifier"}, wantErr: "notifier.config_file"},
		{name: "rule with a bad expression", am: goodAM, rules: badRules, args: []string{"-target=ruler", "-memberlist.join=127.0.0.1:7946"}, wantErr: "rules.files"},
		// A process without the notifier role does not read alertmanager.yml.
		{name: "querier ignores notifier file", am: noSlackURL, rules: badRules, args: []string{"-target=querier", "-memberlist.join=127.0.0.1:7946"}},
		{name: "invalid section", am: goodAM, rules: goodRules, args: []string{"-target=all", "-ring.replication-factor=0"}, wantErr: "ring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			amFile := filepath.Join(dir, "alertmanager.yml")
			require.NoError(t, os.WriteFile(amFile, []byte(tc.am), 0o644))
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "rules"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "rules", "alerts.yml"), []byte(tc.rules), 0o644))
			args := append([]string{
				"-config.verify",
				"-storage.path=" + filepath.Join(dir, "data"),
				"-notifier.config-file=" + amFile,
				"-rules.files=" + filepath.Join(dir, "rules", "*.yml"),
			}, tc.args...)
			cfg, err := Load(args)
			require.NoError(t, err)
			require.True(t, cfg.VerifyOnly())
			err = Verify(cfg)
			if tc.wantErr == "" {
				require.NoError(t, err)
				_, statErr := os.Stat(filepath.Join(dir, "data"))
				require.True(t, os.IsNotExist(statErr), "verify must not create the data directory")
				return
			}
			require.ErrorIs(t, err, ErrConfigInvalid)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestLoadErrorUnderVerifyIsInvalidConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pharos.yml")
	require.NoError(t, os.WriteFile(file, []byte("ring: {replication_factr: 3}\n"), 0o644))

	_, err := Load([]string{"-config.file=" + file, "-config.verify"})
	require.ErrorIs(t, err, ErrConfigInvalid)
	require.ErrorContains(t, err, "replication_factr")

	// Without -config.verify a load error stays a plain (usage) error.
	_, err = Load([]string{"-config.file=" + file})
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrConfigInvalid)
}

// TestVerifyReadsTLSFiles: -config.verify reads the certificates of the
// links the process's roles use, and names the setting of a broken one.
func TestVerifyReadsTLSFiles(t *testing.T) {
	ca := tlstest.NewCA(t, "verify CA")
	pair := ca.Issue(t, "pharos")
	broken := filepath.Join(t.TempDir(), "broken.crt")
	require.NoError(t, os.WriteFile(broken, []byte("not a certificate\n"), 0o644))
	missing := filepath.Join(t.TempDir(), "missing.crt")
	peer := func(prefix, cert string) []string {
		return []string{"-" + prefix + "cert-file=" + cert, "-" + prefix + "key-file=" + pair.KeyFile, "-" + prefix + "ca-file=" + ca.CertFile}
	}
	grpc := func(cert string) []string {
		return []string{"-server.grpc-tls.cert-file=" + cert, "-server.grpc-tls.key-file=" + pair.KeyFile, "-server.grpc-tls.client-ca-file=" + ca.CertFile}
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "every link's files load", args: slices.Concat([]string{"-target=all"}, grpc(pair.CertFile), peer("ingester.client.tls.", pair.CertFile), peer("ruler.raft-tls.", pair.CertFile), peer("notifier.cluster-tls.", pair.CertFile))},
		{name: "broken gRPC server certificate", args: slices.Concat([]string{"-target=ingester"}, grpc(broken)), wantErr: "server.grpc_tls"},
		{name: "missing ingester client certificate", args: slices.Concat([]string{"-target=querier", "-ingester.client.addresses=127.0.0.1:9095"}, peer("ingester.client.tls.", missing)), wantErr: "ingester_client.tls"},
		{name: "broken raft certificate", args: slices.Concat([]string{"-target=ruler", "-ingester.client.addresses=127.0.0.1:9095"}, peer("ruler.raft-tls.", broken)), wantErr: "ruler.raft_tls"},
		{name: "broken notifier cluster certificate", args: slices.Concat([]string{"-target=notifier"}, peer("notifier.cluster-tls.", broken)), wantErr: "notifier.cluster_tls"},
		// A querier neither serves raft nor joins the notifier cluster.
		{name: "querier ignores raft and cluster files", args: slices.Concat([]string{"-target=querier", "-ingester.client.addresses=127.0.0.1:9095"}, peer("ruler.raft-tls.", broken), peer("notifier.cluster-tls.", broken))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			amFile := filepath.Join(dir, "alertmanager.yml")
			require.NoError(t, os.WriteFile(amFile, []byte("route: {receiver: default}\nreceivers:\n- name: default\n"), 0o644))
			cfg, err := Load(append([]string{"-config.verify", "-storage.path=" + filepath.Join(dir, "data"), "-notifier.config-file=" + amFile, "-memberlist.join=127.0.0.1:7946"}, tc.args...))
			require.NoError(t, err)
			err = Verify(cfg)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrConfigInvalid)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
