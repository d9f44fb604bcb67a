package alerting

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// A probe in flight when memberlist shuts down finishes on its
		// own after at most one probe interval; everything else of the
		// gossip layer must be gone (see shutdownMemberlist).
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.Cleanup(func(code int) {
			removeAmtool()
			os.Exit(code)
		}),
	)
}
