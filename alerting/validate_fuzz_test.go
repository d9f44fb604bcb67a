package alerting

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzLoadConfig holds the notifier's loader to its promise (validate.go):
// it never accepts an alertmanager.yml that upstream refuses, and when it
// refuses one it keeps upstream's reason in the error rather than replacing
// it with its own location. The location search (locateError) loads
// pieces of arbitrary YAML; it must not panic on any of them either.
func FuzzLoadConfig(f *testing.F) {
	tutorial, err := os.ReadFile(filepath.Join("testdata", "tutorial-alertmanager.yml"))
	require.NoError(f, err)
	f.Add(tutorial)
	f.Add([]byte("route:\n  receiver: r\nreceivers:\n- name: r\n"))
	f.Add([]byte("route:\n  receiver: r\n  routes:\n  - matchers: ['a=~\"b\"']\n    receiver: missing\nreceivers:\n- name: r\n"))
	f.Add([]byte("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: http://x/\n    max_alerts: 3\ninhibit_rules:\n- source_matchers: [a=b]\n  target_matchers: [c=d]\n  equal: [e]\n"))
	f.Add([]byte("route:\n  receiver: r\nreceivers:\n- name: r\n  slack_configs:\n  - api_url: http://x/\n    title: '{{ .Foo '\n"))
	f.Add([]byte("global:\n  resolve_timeout: 1m\ntime_intervals:\n- name: w\n  time_intervals:\n  - weekdays: [monday]\nroute:\n  receiver: r\n  mute_time_intervals: [w]\nreceivers:\n- name: r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		file := filepath.Join(t.TempDir(), "alertmanager.yml")
		require.NoError(t, os.WriteFile(file, body, 0o600))
		_, upErr := loadUpstream(string(body))
		_, err := loadConfig(file)
		if upErr != nil {
			require.Error(t, err, "upstream refuses it: %v", upErr)
			require.ErrorContains(t, err, upErr.Error(), "upstream's reason is kept")
			if where := locateError(body); where != "" {
				require.Regexp(t, `^(receivers\[\d+\]|route|inhibit_rules\[\d+\])`, where, "a location is a YAML path into the file")
			}
			return
		}
		// locateError is only called on refused files, but must not
		// panic on any YAML, and finds nothing wrong in a valid file.
		require.Empty(t, locateError(body))
	})
}

// A null route made upstream's loader panic; it is a config error like any
// other, at load and at -config.verify.
func TestNullRouteIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "alertmanager.yml")
	require.NoError(t, os.WriteFile(file, []byte("route:\n  receiver: r\n  routes:\n  -\nreceivers:\n- name: r\n"), 0o600))
	_, err := loadConfig(file)
	require.ErrorContains(t, err, "null route in route.routes")
	require.ErrorContains(t, CheckConfigFile(file), "null route in route.routes")
}
