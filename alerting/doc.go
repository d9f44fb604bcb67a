// Package alerting is the Pharos notifier role: an embedded, unmodified
// Prometheus Alertmanager (v0.34.x) with routing, grouping, inhibition,
// silences, the notification log, every upstream integration, API v2,
// /-/reload and memberlist gossip for HA de-duplication.
//
// Routing and notifying are never re-implemented here: the Notifier wires
// the upstream config, dispatch, notify, silence, nflog, inhibit,
// provider/mem, cluster and api packages exactly as upstream app/app.go
// does. The upstream app package itself cannot be imported (its ui
// package embeds build output missing from the module zip), so its
// reloader and metrics are copied verbatim. Handler serves API v2,
// /-/reload, /-/healthy and /-/ready under the caller's route prefix ("" for
// the root, as a stand-alone Alertmanager); the caller owns the listener
// and /metrics.
//
// With Config.MultiTenant (the process's multitenancy.enabled) the Notifier
// runs one such Alertmanager per tenant (instance.go), as Mimir's
// multi-tenant Alertmanager does, all sharing one gossip peer: each
// tenant's silences and notification log are peer states of their own
// ("sil:<tenant>", "nfl:<tenant>"). Requests reach the Alertmanager of
// their X-Scope-OrgID; a tenant without its own configuration runs the
// configured file (the fallback). Tenants store their own configuration
// through Mimir's /api/v1/alerts (tenants.go); the configurations are one
// more peer state, "cfg", a last-writer-wins map persisted in the data dir
// (tenantconfig.go). Without multi-tenancy everything is as a stand-alone
// Alertmanager: one instance, upstream's state keys, metrics and paths.
//
// Configuration loading adds two things to upstream's (validate.go): a
// refused alertmanager.yml is reported with the YAML path at fault, and
// templated receiver fields are parsed at load time rather than at the
// first notification.
package alerting
