// Package tenant carries the tenant (Cortex and Mimir call it the org ID) of a
// request from the edge of Pharos to every component behind it.
//
// At the HTTP edge the X-Scope-OrgID header names the tenant, as Mimir,
// Cortex and Loki expect, so their clients and Grafana data sources work
// unchanged. With multi-tenancy off, every request belongs to one fixed
// tenant (DefaultTenant) and the header is ignored. Inside a process the
// tenant travels in the context.Context (With, FromContext); between
// processes it travels as gRPC metadata (the client interceptors put it there,
// the server side reads it with FromIncomingContext).
//
// Storage keeps a tenant's series apart by a reserved label, Label, that only
// the ingester writes and strips: it is part of the series identity, so of
// its ring hash and of every index lookup, and queriers never see it. The
// default tenant's series carry no such label, so data written before
// multi-tenancy was turned on stays where it was and keeps its ring place.
package tenant
