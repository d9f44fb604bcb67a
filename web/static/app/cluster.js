// The /cluster page: what a cluster adds to a Prometheus UI. The ingester
// ring (/ring?format=json), the ruler's raft state (/api/v1/status/ruler,
// when a ruler answers) and the notifier's gossip peers (alertmanager API
// v2 /status).
import { html, useState, useAPI, fetchJSON, promAPI, ErrorBox, Loading, Section, humanizeDuration, isoTime, usePager } from './lib.js';

export function ClusterPage() {
  const [auto, setAuto] = useState(true);
  const every = auto ? 5000 : 0;
  const ring = useAPI(() => fetchJSON('/ring?format=json'), [], every);
  const ruler = useAPI(() => promAPI('status/ruler'), [], every);
  const notifier = useAPI(() => fetchJSON('/alertmanager/api/v2/status'), [], every);
  return html`<${Section} title="Cluster" actions=${html`
      <label><input type="checkbox" checked=${auto} onChange=${(e) => setAuto(e.target.checked)} /> Refresh every 5s</label>
      <button type="button" onClick=${() => { ring.reload(); ruler.reload(); notifier.reload(); }}>Refresh</button>`}>
    <div class="card ring">
      <h2>Ingester ring</h2>
      ${ring.error ? html`<${ErrorBox} error=${ring.error} />` : ring.data ? html`<${Ring} data=${ring.data} />` : html`<${Loading} />`}
    </div>
    <div class="card ruler">
      <h2>Ruler</h2>
      ${ruler.data ? html`<${Ruler} data=${ruler.data} />`
        : ruler.error ? html`<p class="muted not-running">ruler not running <span class="small">(${ruler.error.message})</span></p>` : html`<${Loading} />`}
    </div>
    <div class="card notifier">
      <h2>Notifier</h2>
      ${notifier.data ? html`<${Notifier} data=${notifier.data} />`
        : notifier.error ? html`<p class="muted not-running">notifier not reachable here <span class="small">(${notifier.error.message})</span></p>` : html`<${Loading} />`}
    </div>
  </${Section}>`;
}

function Ring({ data }) {
  const instances = data.instances || [];
  const { rows, pager } = usePager(instances, 100);
  const byState = {};
  for (const i of instances) byState[i.state] = (byState[i.state] || 0) + 1;
  return html`<div>
    <p>Replication factor <b>${data.replication_factor}</b>, heartbeat timeout ${data.heartbeat_timeout}, ${instances.length} instances (${Object.entries(byState).map(([s, n]) => `${n} ${s}`).join(', ') || 'none'})${data.zones && data.zones.some((z) => z) ? html`, zones: ${data.zones.join(', ')}` : ''}.</p>
    <table class="data ring-table">
      <thead><tr><th>Instance</th><th>Address</th><th>Zone</th><th>State</th><th>Heartbeat</th><th>Tokens</th><th>Token share</th><th>Registered</th></tr></thead>
      <tbody>${rows.map((i) => html`<tr key=${i.id} class=${i.healthy ? '' : 'unhealthy'}>
        <td>${i.id}</td><td>${i.addr}</td><td>${i.zone || html`<span class="muted">—</span>`}</td>
        <td><span class=${'badge st-' + i.state + (i.healthy ? '' : ' h-down')}>${i.state}</span>${i.healthy ? '' : html` <span class="error-text">unhealthy</span>`}</td>
        <td>${humanizeDuration(i.heartbeat_age_seconds)} ago</td>
        <td>${i.tokens}</td>
        <td><span class="share"><span class="bar" style=${{ width: Math.round(i.token_share * 100) + '%' }}></span></span> ${(i.token_share * 100).toFixed(1)}%</td>
        <td>${isoTime(i.registered)}</td>
      </tr>`)}</tbody>
    </table>
    ${pager}
  </div>`;
}

// Ruler renders the raft view. The endpoint's shape is Pharos's own; the
// fields named here are shown first and anything else follows as is.
function Ruler({ data }) {
  const leader = data.leader ?? data.leaderId ?? data.leader_id ?? '';
  const term = data.term ?? data.currentTerm ?? data.current_term ?? '';
  const peers = data.peers || data.servers || [];
  const known = new Set(['leader', 'leaderId', 'leader_id', 'term', 'currentTerm', 'current_term', 'peers', 'servers']);
  const rest = Object.entries(data).filter(([k]) => !known.has(k));
  return html`<div>
    <table class="data kv"><tbody>
      <tr><th>Leader</th><td class="ruler-leader">${String(leader) || html`<span class="error-text">no leader</span>`}</td></tr>
      <tr><th>Term</th><td>${String(term)}</td></tr>
      ${rest.map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${typeof v === 'object' ? JSON.stringify(v) : String(v)}</td></tr>`)}
    </tbody></table>
    ${peers.length > 0 && html`<h3>Peers</h3><table class="data peers"><thead><tr><th>Peer</th><th>Details</th></tr></thead>
      <tbody>${peers.map((p, i) => {
        if (typeof p !== 'object') return html`<tr key=${i}><td>${String(p)}</td><td></td></tr>`;
        const id = p.id ?? p.ID ?? p.name ?? p.address ?? i;
        return html`<tr key=${i}><td>${String(id)}${String(id) === String(leader) ? html` <span class="badge st-ACTIVE">leader</span>` : ''}</td>
          <td>${Object.entries(p).filter(([k]) => !['id', 'ID', 'name'].includes(k)).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')}</td></tr>`;
      })}</tbody></table>`}
  </div>`;
}

function Notifier({ data }) {
  const c = data.cluster || {};
  const peers = c.peers || [];
  return html`<div>
    <p>Cluster status: <span class=${'badge cs-' + c.status}>${c.status || 'unknown'}</span>${c.name ? html` · this peer: <code>${c.name}</code>` : ''}
      · up since ${isoTime(data.uptime)}</p>
    ${peers.length > 0 ? html`<table class="data peers"><thead><tr><th>Peer</th><th>Address</th></tr></thead>
      <tbody>${peers.map((p) => html`<tr key=${p.name}><td>${p.name}${p.name === c.name ? ' (this peer)' : ''}</td><td>${p.address}</td></tr>`)}</tbody></table>`
      : html`<p class="muted">No gossip peers${c.status === 'disabled' ? ': this notifier runs alone' : ''}.</p>`}
  </div>`;
}
