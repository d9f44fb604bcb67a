package app

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int64
		ok    bool
	}{
		{"max\n", 0, false},
		{"", 0, false},
		{"2147483648\n", 2147483648, true},
		{"9223372036854771712\n", 0, false}, // cgroup v1's "no limit"
		{"garbage", 0, false},
		{"-1", 0, false},
	} {
		limit, ok := parseCgroupLimit(tc.in)
		require.Equal(t, tc.ok, ok, tc.in)
		require.Equal(t, tc.limit, limit, tc.in)
	}
}

func TestApplyGoRuntime(t *testing.T) {
	type call struct {
		gcPercent int
		memLimit  int64
	}
	run := func(c GoRuntimeConfig, env map[string]string, cgroup int64) call {
		got := call{gcPercent: -1, memLimit: -1}
		applyGoRuntime(c, slog.New(slog.DiscardHandler),
			func(k string) string { return env[k] },
			func() (int64, bool) { return cgroup, cgroup > 0 },
			func(p int) int { got.gcPercent = p; return 100 },
			func(l int64) int64 { got.memLimit = l; return 0 })
		return got
	}
	def := GoRuntimeConfig{GOGC: 75, AutoGoMemLimitRatio: 0.9}

	require.Equal(t, call{gcPercent: 75, memLimit: 900}, run(def, nil, 1000))
	require.Equal(t, call{gcPercent: 75, memLimit: -1}, run(def, nil, 0), "no cgroup limit: no GOMEMLIMIT")
	require.Equal(t, call{gcPercent: -1, memLimit: -1}, run(def, map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}, 1000),
		"the environment wins, as with Prometheus")
	require.Equal(t, call{gcPercent: 75, memLimit: -1}, run(GoRuntimeConfig{GOGC: 75}, nil, 1000), "ratio 0 turns the limit off")
}

func TestGoRuntimeConfigValidate(t *testing.T) {
	require.ErrorContains(t, (&GoRuntimeConfig{GOGC: 0, AutoGoMemLimitRatio: 0.9}).Validate(), "gogc")
	require.ErrorContains(t, (&GoRuntimeConfig{GOGC: 75, AutoGoMemLimitRatio: 1.5}).Validate(), "auto_gomemlimit_ratio")
	require.NoError(t, (&GoRuntimeConfig{GOGC: 75, AutoGoMemLimitRatio: 0.9}).Validate())
}
