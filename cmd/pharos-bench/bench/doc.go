// Package bench is the load harness behind pharos-bench: a generator of
// realistic series (node-exporter and kube-state-metrics label shapes, with
// churn), remote-write 1.0 and 2.0 senders, a query load of the kinds
// dashboards and rules run, and the same work done against a prometheus
// tsdb.DB in this process, so that a run reports Pharos's numbers beside
// the limit the machine allows, measured at the same moment.
//
// The generator is pure: a series' labels and values are functions of its
// index, its generation (churn) and the round, so senders that each own a
// disjoint set of series need no coordination and keep every series'
// samples in order.
package bench
