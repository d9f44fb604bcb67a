package distributor

import (
	"cmp"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"
)

// haStatus is one election on the tracker's status page, also its JSON form.
type haStatus struct {
	Tenant     string    `json:"tenant"`
	Cluster    string    `json:"cluster"`
	Replica    string    `json:"replica"`
	ElectedAt  time.Time `json:"elected_at"`
	ReceivedAt time.Time `json:"received_at"`
	// FailoverInSeconds is how long until another replica may take over if the
	// elected one sends nothing more (0: it may already).
	FailoverInSeconds float64 `json:"failover_in_seconds"`
}

func (t *HATracker) status() []haStatus {
	now := t.now()
	failover := time.Duration(t.cfg.FailoverTimeout)
	t.mu.Lock()
	out := make([]haStatus, 0, len(t.entries))
	for key, e := range t.entries {
		tenant, cluster, _ := splitHAKey(key)
		received := time.UnixMilli(e.receivedAt)
		out = append(out, haStatus{
			Tenant: tenant, Cluster: cluster, Replica: e.replica,
			ElectedAt: time.UnixMilli(e.electedAt).UTC(), ReceivedAt: received.UTC(),
			FailoverInSeconds: max(0, received.Add(failover).Sub(now).Seconds()),
		})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b haStatus) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Cluster, b.Cluster))
	})
	return out
}

// ServeHTTP serves the elected replica of every HA cluster this
// distributor knows, Mimir's /distributor/ha_tracker page: HTML by default,
// JSON with ?format=json or an Accept header preferring application/json.
func (t *HATracker) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	st := t.status()
	if wantsJSON(req) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = haPage.Execute(w, struct {
		Elections               []haStatus
		UpdateTimeout, Failover string
	}{st, t.cfg.UpdateTimeout.String(), t.cfg.FailoverTimeout.String()})
}

func wantsJSON(req *http.Request) bool {
	if f := req.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	accept := req.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

var haPage = template.Must(template.New("ha").Funcs(template.FuncMap{
	"secs": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
	},
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Pharos HA tracker</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>
</head><body>
<h1>HA tracker</h1>
<p>{{len .Elections}} HA clusters; the elected replica's push is recorded every {{.UpdateTimeout}} at most, another replica takes over after {{.Failover}} without one.</p>
<table>
<tr><th>Tenant</th><th>Cluster</th><th>Elected replica</th><th>Elected at</th><th>Last recorded push</th><th>Failover possible in</th></tr>
{{range .Elections}}<tr><td>{{.Tenant}}</td><td>{{.Cluster}}</td><td>{{.Replica}}</td><td>{{.ElectedAt.Format "2006-01-02 15:04:05.000"}}</td><td>{{.ReceivedAt.Format "2006-01-02 15:04:05.000"}}</td><td>{{secs .FailoverInSeconds}}</td></tr>
{{end}}</table>
</body></html>
`))
