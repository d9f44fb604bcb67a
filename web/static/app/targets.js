// The /targets page: active targets per scrape pool with health, last
// scrape, duration, error and, when scraping is sharded, the scraper that
// owns the target. From /api/v1/targets.
import { html, useState, useMemo, useAPI, promAPI, ErrorBox, Loading, Labels, ago, humanizeDuration, usePager, Section } from './lib.js';

// owner is the scraper that scrapes a target. The Prometheus API has no such
// field; Pharos's merged targets API adds scrapeInstance.
export function owner(t) {
  return t.scrapeInstance || t.scraper || t.owner || '';
}

export function TargetsPage() {
  const q = useAPI(() => promAPI('targets', { state: 'active' }), [], 10000);
  const [unhealthy, setUnhealthy] = useState(false);
  const [filter, setFilter] = useState('');
  const targets = (q.data && q.data.activeTargets) || [];
  const pools = useMemo(() => {
    const m = new Map();
    for (const t of targets) {
      if (!m.has(t.scrapePool)) m.set(t.scrapePool, []);
      m.get(t.scrapePool).push(t);
    }
    return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  }, [q.data]);
  const f = filter.toLowerCase();
  const match = (t) => (!unhealthy || t.health !== 'up')
    && (!f || t.scrapeUrl.toLowerCase().includes(f) || JSON.stringify(t.labels).toLowerCase().includes(f) || owner(t).toLowerCase().includes(f));
  const sharded = targets.some((t) => owner(t));
  return html`<${Section} title="Targets" actions=${html`
      <label><input type="checkbox" checked=${unhealthy} onChange=${(e) => setUnhealthy(e.target.checked)} /> Unhealthy only</label>
      <input type="search" placeholder="Filter by endpoint, labels or scraper" aria-label="filter targets" value=${filter} onInput=${(e) => setFilter(e.target.value)} />`}>
    <${ErrorBox} error=${q.error} />
    ${q.loading && !q.data && html`<${Loading} />`}
    ${q.data && targets.length === 0 && html`<p class="muted empty">No targets.</p>`}
    ${pools.map(([name, ts]) => html`<${Pool} key=${name} name=${name} targets=${ts.filter(match)} all=${ts} sharded=${sharded} />`)}
  </${Section}>`;
}

function Pool({ name, targets, all, sharded }) {
  const [open, setOpen] = useState(true);
  const up = all.filter((t) => t.health === 'up').length;
  const { rows, pager } = usePager(targets, 100);
  if (!targets.length) return null;
  const cls = up === all.length ? 'ok' : up === 0 ? 'bad' : 'warn';
  return html`<div class="group pool" data-pool=${name}>
    <button type="button" class="group-toggle" aria-expanded=${open} onClick=${() => setOpen(!open)}>
      <h2 class="group-name">${name} <span class=${'count ' + cls}>(${up}/${all.length} up)</span></h2>
    </button>
    ${open && html`<table class="data targets-table">
      <thead><tr><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Scrape duration</th><th>Scraper</th><th>Error</th></tr></thead>
      <tbody>${rows.map((t) => html`<tr key=${t.scrapeUrl + JSON.stringify(t.labels)} class=${'t-' + t.health}>
        <td><a href=${t.globalUrl || t.scrapeUrl} rel="noreferrer">${t.scrapeUrl}</a></td>
        <td><span class=${'badge h-' + t.health}>${t.health.toUpperCase()}</span></td>
        <td><${Labels} labels=${t.labels} /></td>
        <td>${ago(t.lastScrape)}</td>
        <td>${t.lastScrapeDuration ? humanizeDuration(t.lastScrapeDuration) : ''}</td>
        <td class="owner">${owner(t) || html`<span class="muted">${sharded ? '—' : 'this node'}</span>`}</td>
        <td class="error-text">${t.lastError}</td>
      </tr>`)}</tbody>
    </table>`}
    ${open && pager}
  </div>`;
}
