// The /status and /config pages: build and runtime information, TSDB head
// statistics and flags; the effective configuration as the API returns it
// (secrets already replaced by <secret>).
import { html, useState, useAPI, promAPI, ErrorBox, Loading, Section, formatBytes, isoTime, ago, usePager } from './lib.js';

export function ConfigPage() {
  const q = useAPI(() => promAPI('status/config'), []);
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(q.data.yaml);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      setCopied(false);
    }
  };
  return html`<${Section} title="Configuration" actions=${q.data && html`<button type="button" onClick=${copy}>${copied ? 'Copied' : 'Copy to clipboard'}</button>`}>
    <${ErrorBox} error=${q.error} />
    ${q.loading && !q.data && html`<${Loading} />`}
    ${q.data && html`<pre class="config-yaml">${q.data.yaml}</pre>`}
  </${Section}>`;
}

function KV({ title, data, fmt = {} }) {
  if (!data) return null;
  return html`<div class="card">
    <h2>${title}</h2>
    <table class="data kv"><tbody>${Object.entries(data).map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${fmt[k] ? fmt[k](v) : String(v)}</td></tr>`)}</tbody></table>
  </div>`;
}

function Part({ q, children }) {
  if (q.error) return html`<${ErrorBox} error=${q.error} />`;
  if (!q.data) return html`<${Loading} />`;
  return children(q.data);
}

export function StatusPage() {
  const build = useAPI(() => promAPI('status/buildinfo'), []);
  const runtime = useAPI(() => promAPI('status/runtimeinfo'), [], 15000);
  const tsdb = useAPI(() => promAPI('status/tsdb'), [], 30000);
  const flags = useAPI(() => promAPI('status/flags'), []);
  return html`<${Section} title="Status">
    <div class="cards">
      <${Part} q=${build}>${(d) => html`<${KV} title="Build information" data=${d} />`}</${Part}>
      <${Part} q=${runtime}>${(d) => html`<${KV} title="Runtime information" data=${d} fmt=${{
        startTime: (v) => `${isoTime(v)} (${ago(v)})`,
        lastConfigTime: (v) => `${isoTime(v)} (${ago(v)})`,
        reloadConfigSuccess: (v) => (v ? 'yes' : html`<span class="error-text">no</span>`),
      }} />`}</${Part}>
    </div>
    <${Part} q=${tsdb}>${(d) => html`<${TSDBStatus} data=${d} />`}</${Part}>
    <${Part} q=${flags}>${(d) => html`<${Flags} flags=${d} />`}</${Part}>
  </${Section}>`;
}

function TSDBStatus({ data }) {
  const head = data.headStats || {};
  const tables = [
    ['Top series count by metric name', data.seriesCountByMetricName, 'Count'],
    ['Top label names with value count', data.labelValueCountByLabelName, 'Count'],
    ['Top label names with high memory usage', data.memoryInBytesByLabelName, 'Bytes'],
    ['Top series count by label value pairs', data.seriesCountByLabelValuePair, 'Count'],
  ];
  return html`<div class="card tsdb">
    <h2>TSDB status (this node's ingester head)</h2>
    <table class="data kv"><tbody>
      <tr><th>Number of series</th><td>${head.numSeries}</td></tr>
      <tr><th>Number of chunks</th><td>${head.chunkCount}</td></tr>
      <tr><th>Number of label pairs</th><td>${head.numLabelPairs}</td></tr>
      <tr><th>Current min time</th><td>${head.minTime ? isoTime(head.minTime) : ''} <span class="muted">(${head.minTime})</span></td></tr>
      <tr><th>Current max time</th><td>${head.maxTime ? isoTime(head.maxTime) : ''} <span class="muted">(${head.maxTime})</span></td></tr>
    </tbody></table>
    <div class="cards">
      ${tables.map(([title, rows, col]) => html`<div key=${title}><h3>${title}</h3>
        <table class="data"><thead><tr><th>Name</th><th>${col}</th></tr></thead>
        <tbody>${(rows || []).map((r) => html`<tr key=${r.name}><td>${r.name}</td><td>${col === 'Bytes' ? formatBytes(r.value) : r.value}</td></tr>`)}</tbody></table></div>`)}
    </div>
  </div>`;
}

function Flags({ flags }) {
  const [filter, setFilter] = useState('');
  const f = filter.toLowerCase();
  const rows = Object.entries(flags).sort(([a], [b]) => (a < b ? -1 : 1))
    .filter(([k, v]) => !f || k.toLowerCase().includes(f) || String(v).toLowerCase().includes(f));
  const { rows: page, pager } = usePager(rows, 100);
  return html`<div class="card flags">
    <h2>Command-line flags</h2>
    <input type="search" placeholder="Filter flags" aria-label="filter flags" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
    <table class="data kv"><tbody>${page.map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${v}</td></tr>`)}</tbody></table>
    ${pager}
  </div>`;
}
