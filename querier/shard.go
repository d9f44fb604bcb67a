package querier

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// ShardLabel is the pseudo label a selector carries to read one shard of
// its series: `{__query_shard__="2_of_4"}` (1-based, as Mimir writes it).
// The querier turns it into shard hints for the ingesters, which cut the
// shard by each series' stable label hash.
const ShardLabel = "__query_shard__"

// ShardSelector is the matcher value for shard i (0-based) of n.
func ShardSelector(i, n int) string { return fmt.Sprintf("%d_of_%d", i+1, n) }

// CutShardMatcher removes a shard matcher from ms and returns the shard it
// names, 0-based, with shardCount 0 when there is none.
func CutShardMatcher(ms []*labels.Matcher) (out []*labels.Matcher, shardIndex, shardCount uint64, err error) {
	for i, m := range ms {
		if m.Name != ShardLabel {
			continue
		}
		if m.Type != labels.MatchEqual {
			return nil, 0, 0, fmt.Errorf("%s: only = is supported", ShardLabel)
		}
		idx, cnt, ok := strings.Cut(m.Value, "_of_")
		a, err1 := strconv.ParseUint(idx, 10, 64)
		b, err2 := strconv.ParseUint(cnt, 10, 64)
		if !ok || err1 != nil || err2 != nil || a < 1 || a > b {
			return nil, 0, 0, fmt.Errorf("%s: %q is not <index>_of_<count> with 1 <= index <= count", ShardLabel, m.Value)
		}
		out = append(append(make([]*labels.Matcher, 0, len(ms)-1), ms[:i]...), ms[i+1:]...)
		return out, a - 1, b, nil
	}
	return ms, 0, 0, nil
}
