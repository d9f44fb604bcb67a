package ingester

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// Tenants share the one tsdb. A series of tenant T is stored with the label
// tenant.Label="T", so the tenant is part of its identity and every index
// lookup names it. The default tenant (everything while multi-tenancy is
// off) is stored without the label: its series are those that have none.
// That keeps the storage of a single-tenant cluster what it was before
// tenants existed (data written then stays readable, nothing is re-hashed)
// and its lookups as cheap: while no other tenant has written, a default
// tenant's read carries no extra matcher at all.
//
// Clients never see the label: it is stripped from every answer, and their
// own matchers on it are evaluated as if it were absent.

// tenantOf returns the tenant of a call, as a gRPC status error if the call
// carries none.
func tenantOf(ctx context.Context) (string, error) {
	return tenant.FromIncomingContext(ctx)
}

// noteTenant records that id writes to this ingester; from then on the
// default tenant's reads must exclude labelled series. Called before the
// first append of a request, so the flag is set before any series of
// another tenant is visible.
func (i *Ingester) noteTenant(id string) {
	if id != tenant.DefaultTenant && !i.otherTenants.Load() {
		i.otherTenants.Store(true)
	}
}

// scanTenants sets otherTenants if the DB holds series of a tenant other
// than the default one.
func (i *Ingester) scanTenants(ctx context.Context) error {
	q, err := i.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return err
	}
	defer q.Close()
	vals, _, err := q.LabelValues(ctx, tenant.Label, nil)
	if err != nil {
		return err
	}
	if len(vals) > 0 {
		i.otherTenants.Store(true)
	}
	return nil
}

// tenantMatcher is the matcher that confines a lookup to tenant id, nil
// when none is needed (the default tenant while it is the only one).
func (i *Ingester) tenantMatcher(id string) *labels.Matcher {
	if id == tenant.DefaultTenant {
		if !i.otherTenants.Load() {
			return nil
		}
		id = ""
	}
	return labels.MustNewMatcher(labels.MatchEqual, tenant.Label, id)
}

// scopeMatchers confines the client's matchers ms to tenant id. A client
// matcher on tenant.Label is decided against the empty value, as the label
// does not exist for clients: one that accepts it is dropped, one that
// refuses it means nothing can match (none is true). ms is not modified.
func (i *Ingester) scopeMatchers(id string, ms []*labels.Matcher) (scoped []*labels.Matcher, none bool) {
	scoped = make([]*labels.Matcher, 0, len(ms)+1)
	for _, m := range ms {
		if m.Name != tenant.Label {
			scoped = append(scoped, m)
			continue
		}
		if !m.Matches("") {
			return nil, true
		}
	}
	if tm := i.tenantMatcher(id); tm != nil {
		scoped = append(scoped, tm)
	}
	if len(scoped) == 0 && len(ms) > 0 {
		// Every matcher was about the tenant and accepts its absence: the
		// selection is all series (of the default tenant alone here).
		scoped = append(scoped, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".*"))
	}
	return scoped, false
}

// withoutTenantLabel removes tenant.Label from a sorted name list.
func withoutTenantLabel(names []string) []string {
	if k, ok := slices.BinarySearch(names, tenant.Label); ok {
		return slices.Delete(names, k, k+1)
	}
	return names
}

// withoutTenant returns ls without tenant.Label, for messages to clients.
func withoutTenant(ls labels.Labels) labels.Labels {
	if !ls.Has(tenant.Label) {
		return ls
	}
	return labels.NewBuilder(ls).Del(tenant.Label).Labels()
}
