package ruler

import (
	"context"
	"sync"

	"github.com/prometheus/prometheus/rules"
)

// outbox holds the alerts a leader's evaluation of one group would send
// until the alert state that records them as sent is in the raft log.
//
// Sent before the commit, an alert that just fired can reach the
// notifier while the log still says pending; a leader that stops in
// between leaves a successor that fires it again with a new startsAt, a
// second notification for one alert. Committed first, the worst a
// failover in between can do is a successor that believes the alert was
// sent and sends it at its next resend.
//
// Alerts whose commit failed stay held for the next commit, the newest
// copy of each alert replacing older ones, so the outbox never holds more
// than one alert per active alert of the group.
type outbox struct {
	mu    sync.Mutex
	order []heldKey
	held  map[heldKey]*rules.Alert
}

// heldKey names one alert of one rule: rules are told apart by their
// expression, as the notifier's generator URL is.
type heldKey struct {
	expr string
	hash uint64
}

type outboxCtxKey struct{}

func withOutbox(ctx context.Context, ob *outbox) context.Context {
	return context.WithValue(ctx, outboxCtxKey{}, ob)
}

func outboxFrom(ctx context.Context) *outbox {
	ob, _ := ctx.Value(outboxCtxKey{}).(*outbox)
	return ob
}

// hold keeps alerts until flush. Rules of a group may be evaluated
// concurrently, so hold is safe for concurrent use.
func (ob *outbox) hold(expr string, alerts []*rules.Alert) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.held == nil {
		ob.held = map[heldKey]*rules.Alert{}
	}
	for _, a := range alerts {
		k := heldKey{expr, a.Labels.Hash()}
		if _, ok := ob.held[k]; !ok {
			ob.order = append(ob.order, k)
		}
		ob.held[k] = a
	}
}

// flush hands the held alerts to send, one call per rule in the order
// the rules first held them, and empties the outbox.
func (ob *outbox) flush(send func(expr string, alerts []*rules.Alert)) {
	ob.mu.Lock()
	order, held := ob.order, ob.held
	ob.order, ob.held = nil, nil
	ob.mu.Unlock()
	var exprs []string
	batches := map[string][]*rules.Alert{}
	for _, k := range order {
		if _, ok := batches[k.expr]; !ok {
			exprs = append(exprs, k.expr)
		}
		batches[k.expr] = append(batches[k.expr], held[k])
	}
	for _, expr := range exprs {
		send(expr, batches[expr])
	}
}
