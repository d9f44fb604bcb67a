package ring

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestShardKey(t *testing.T) {
	a := labels.FromStrings("__name__", "up", "job", "node", "instance", "h:9100")
	// Golden value: placement is a persistent contract between releases.
	require.Equal(t, uint32(0xbdc1bec5), ShardKey(a))
	tests := []struct {
		name string
		b    labels.Labels
		same bool
	}{
		{"same set, different construction order", labels.FromStrings("job", "node", "instance", "h:9100", "__name__", "up"), true},
		{"different value", labels.FromStrings("__name__", "up", "job", "node", "instance", "h:9101"), false},
		{"boundary moved", labels.FromStrings("__name__", "up", "job", "nodei", "nstance", "h:9100"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.same, ShardKey(a) == ShardKey(tc.b))
		})
	}
	require.NotEqual(t, StringKey("ab", "c"), StringKey("a", "bc"))
	require.Equal(t, StringKey("job", "addr"), StringKey("job", "addr"))
}
