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
  const scrapers = useAPI(scraperRing, [], every);
  return html`<${Section} title="Cluster" actions=${html`
      <label><input type="checkbox" checked=${auto} onChange=${(e) => setAuto(e.target.checked)} /> Refresh every 5s</label>
      <button type="button" onClick=${() => { ring.reload(); ruler.reload(); notifier.reload(); scrapers.reload(); }}>Refresh</button>`}>
    <div class="card ring">
      <h2>Ingester ring</h2>
      ${ring.error ? html`<${ErrorBox} error=${ring.error} />` : ring.data ? html`<${Ring} data=${ring.data} />` : html`<${Loading} />`}
    </div>
    <div class="card scrapers">
      <h2>Scraper ring</h2>
      ${scrapers.data && scrapers.data.lone ? html`<p class="muted not-running">scraping is not sharded here: this node scrapes every target</p>`
        : scrapers.data ? html`<${Ring} data=${scrapers.data} />`
        : scrapers.error ? html`<p class="muted not-running">${scrapers.error.status === 404 ? 'scraping is not sharded here: this node scrapes every target' : scrapers.error.message}</p>` : html`<${Loading} />`}
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

// scraperRing reads the scrapers' ring, which exists only where nodes
// gossip: a lone all-in-one process (target all, no memberlist.join)
// scrapes everything itself. Asking its flags first spares a 404, which
// browsers log as an error.
let lone = null;
async function scraperRing() {
  if (lone === null) {
    const flags = await promAPI('status/flags');
    lone = (flags.target || 'all').trim() === 'all' && !(flags['memberlist.join'] || '').trim();
  }
  if (lone) return { lone: true };
  return fetchJSON('/scraper/ring?format=json');
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

// Ruler renders /api/v1/status/ruler: this replica's raft view (state,
// leader, term, indices) and the voters. Fields it does not know are
// listed as they come, so additions show up without a UI change.
function Ruler({ data }) {
  const peers = data.peers || [];
  const known = new Set(['id', 'raftState', 'leader', 'leaderHTTPURL', 'term', 'peers', 'mode', 'appliedIndex', 'lastIndex']);
  const rest = Object.entries(data).filter(([k]) => !known.has(k));
  const leaderPeer = peers.find((p) => p.leader);
  return html`<div>
    <table class="data kv"><tbody>
      <tr><th>Leader</th><td class="ruler-leader">${data.leader
        ? html`${leaderPeer && leaderPeer.id !== data.leader ? leaderPeer.id + ' @ ' : ''}${data.leader}${data.leaderHTTPURL ? html` (<a href=${data.leaderHTTPURL + '/cluster'}>${data.leaderHTTPURL}</a>)` : ''}`
        : html`<span class="error-text">no leader</span>`}</td></tr>
      <tr><th>Term</th><td>${String(data.term ?? '')}</td></tr>
      <tr><th>This replica</th><td>${data.id} <span class=${'badge rs-' + data.raftState}>${data.raftState}</span>${data.mode ? ` · mode ${data.mode}` : ''}</td></tr>
      <tr><th>Log index</th><td>applied ${data.appliedIndex} of ${data.lastIndex}</td></tr>
      ${rest.map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${typeof v === 'object' ? JSON.stringify(v) : String(v)}</td></tr>`)}
    </tbody></table>
    ${peers.length > 0 && html`<h3>Peers</h3><table class="data peers"><thead><tr><th>ID</th><th>Raft address</th><th>Suffrage</th><th>Role</th></tr></thead>
      <tbody>${peers.map((p) => html`<tr key=${p.id}><td>${p.id}${p.id === data.id ? ' (this replica)' : ''}</td><td>${p.address}</td><td>${p.suffrage}</td>
        <td>${p.leader ? html`<span class="badge rs-Leader">leader</span>` : 'follower'}</td></tr>`)}</tbody></table>`}
  </div>`;
}

function Notifier({ data }) {
  const c = data.cluster || {};
  const peers = c.peers || [];
  return html`<div>
    <p>Cluster status: <span class=${'badge cs-' + c.status}>${c.status || 'unknown'}</span>${c.name ? html` · this peer: <code>${c.name}</code>` : ''} · up since ${isoTime(data.uptime)}</p>
    ${peers.length > 0 ? html`<table class="data peers"><thead><tr><th>Peer</th><th>Address</th></tr></thead>
      <tbody>${peers.map((p) => html`<tr key=${p.name}><td>${p.name}${p.name === c.name ? ' (this peer)' : ''}</td><td>${p.address}</td></tr>`)}</tbody></table>`
      : html`<p class="muted">No gossip peers${c.status === 'disabled' ? ': this notifier runs alone' : ''}.</p>`}
  </div>`;
}
