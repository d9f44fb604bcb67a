package cluster

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ringStatus is the /ring page's data, also its JSON form.
type ringStatus struct {
	ReplicationFactor int              `json:"replication_factor"`
	HeartbeatTimeout  string           `json:"heartbeat_timeout"`
	Zones             []string         `json:"zones"`
	Instances         []instanceStatus `json:"instances"`
	Now               time.Time        `json:"now"`
}

type instanceStatus struct {
	ID                  string    `json:"id"`
	Addr                string    `json:"addr"`
	Zone                string    `json:"zone"`
	State               string    `json:"state"`
	Healthy             bool      `json:"healthy"`
	Heartbeat           time.Time `json:"heartbeat"`
	HeartbeatAgeSeconds float64   `json:"heartbeat_age_seconds"`
	Registered          time.Time `json:"registered"`
	Tokens              int       `json:"tokens"`
	TokenShare          float64   `json:"token_share"`
}

func (r *Ring) status() ringStatus {
	v := r.View()
	now := time.Now()
	shares := v.TokenShares()
	st := ringStatus{
		ReplicationFactor: r.cfg.ReplicationFactor,
		HeartbeatTimeout:  r.cfg.HeartbeatTimeout.String(),
		Zones:             v.Zones(),
		Now:               now,
	}
	for _, in := range v.Instances() {
		age := now.Sub(in.HeartbeatTime())
		st.Instances = append(st.Instances, instanceStatus{
			ID: in.ID, Addr: in.Addr, Zone: in.Zone, State: in.State.String(),
			Healthy:             age <= r.cfg.HeartbeatTimeout,
			Heartbeat:           in.HeartbeatTime().UTC(),
			HeartbeatAgeSeconds: age.Seconds(),
			Registered:          time.UnixMilli(in.Registered).UTC(),
			Tokens:              len(in.Tokens),
			TokenShare:          shares[in.ID],
		})
	}
	return st
}

// ServeHTTP serves the ring status page: HTML by default, JSON with
// ?format=json or an Accept header preferring application/json. A POST
// with forget=<id> removes an unhealthy instance.
func (r *Ring) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		id := req.FormValue("forget")
		if id == "" {
			http.Error(w, "missing forget=<instance id>", http.StatusBadRequest)
			return
		}
		if err := r.Forget(id); err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrInstanceNotFound):
				code = http.StatusNotFound
			case errors.Is(err, ErrInstanceHealthy):
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		if wantsJSON(req) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Redirect(w, req, req.URL.Path, http.StatusSeeOther)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	st := r.status()
	if wantsJSON(req) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = ringPage.Execute(w, st)
}

func wantsJSON(req *http.Request) bool {
	if f := req.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	accept := req.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

var ringPage = template.Must(template.New("ring").Funcs(template.FuncMap{
	"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 2, 64) + "%" },
	"age": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
	},
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Pharos ring</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}tr.unhealthy{background:#fdd}</style>
</head><body>
<h1>Ring</h1>
<p>Replication factor {{.ReplicationFactor}}, heartbeat timeout {{.HeartbeatTimeout}}, {{len .Instances}} instances{{if .Zones}}, zones: {{range $i, $z := .Zones}}{{if $i}}, {{end}}{{if $z}}{{$z}}{{else}}(none){{end}}{{end}}{{end}}.</p>
<table>
<tr><th>Instance</th><th>Address</th><th>Zone</th><th>State</th><th>Last heartbeat</th><th>Tokens</th><th>Token share</th><th></th></tr>
{{range .Instances}}<tr{{if not .Healthy}} class="unhealthy"{{end}}>
<td>{{.ID}}</td><td>{{.Addr}}</td><td>{{.Zone}}</td><td>{{.State}}{{if not .Healthy}} (unhealthy){{end}}</td>
<td>{{age .HeartbeatAgeSeconds}} ago</td><td>{{.Tokens}}</td><td>{{pct .TokenShare}}</td>
<td>{{if not .Healthy}}<form method="post"><input type="hidden" name="forget" value="{{.ID}}"><button type="submit">Forget</button></form>{{end}}</td>
</tr>
{{end}}</table>
</body></html>
`))
