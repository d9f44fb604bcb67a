package alerting

import (
	"reflect"
	"unsafe"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/alertmanager/cluster"
)

// shutdownMemberlist closes the gossip sockets and goroutines that
// upstream cluster.Peer.Leave leaves running (the alertmanager binary
// exits right after Leave, so upstream never calls Shutdown). Without
// it an in-process restart leaks nine goroutines and two sockets per
// peer. The memberlist is reached through the unexported field because
// Peer offers no accessor; if a future upstream renames it, this
// degrades to upstream's behaviour and reports false.
func shutdownMemberlist(p *cluster.Peer) bool {
	f := reflect.ValueOf(p).Elem().FieldByName("mlist")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*memberlist.Memberlist]() {
		return false
	}
	ml := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(*memberlist.Memberlist)
	if ml == nil {
		return false
	}
	return ml.Shutdown() == nil
}
