// Package ruler evaluates Prometheus alerting and recording rules on a
// raft-elected leader.
//
// Rule groups come from Prometheus rule files (read by every replica) and
// from a Cortex-style configuration API (committed to the raft log). The
// leader runs the upstream rules.Manager over the cluster's Queryable,
// writes recording-rule output and ALERTS through the distributor, and
// sends alerts with the upstream notifier package.
//
// What makes a failover invisible to the receiver is the alert state: after
// every evaluation that changed an alert (pending, firing, resolved, last
// sent), the leader commits the group's alert state to the raft log, and
// only then sends the evaluation's notifications. A new
// leader waits for its FSM to catch up (raft.Barrier) and seeds each alerting
// rule with that state before its first evaluation, so `for` progress,
// startsAt and resend timing carry over. Prometheus's own restore from
// ALERTS_FOR_STATE is not used: it counts an outage as not pending, which is
// right for a single server and wrong when another replica kept evaluating.
//
// Rule groups and alert state belong to tenants. The leader runs one
// rules.Manager per tenant that has rules, with the tenant in the manager's
// context: the engine passes that context to Select and the group to
// AppenderV2, so a tenant's rules read and write only its series; its
// alerts go out through a notifier client of its own that sets
// X-Scope-OrgID.
//
// Raft makes the ruler CP: a replica that cannot reach a quorum evaluates
// nothing. With isolated_fallback, a replica that has seen no leader for a
// while evaluates on its own from its last replicated state, and stops as
// soon as a leader is back; the notifier de-duplicates what both sent.
package ruler
