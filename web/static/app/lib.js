// Shared helpers: rendering, API access, formatting. Every page imports
// from here so that the vendored libraries are named in one place.
import { h, render } from '../vendor/preact.mjs';
import { useState, useEffect, useRef, useCallback, useMemo } from '../vendor/preact-hooks.mjs';
import htm from '../vendor/htm.mjs';

export const html = htm.bind(h);
export { render, useState, useEffect, useRef, useCallback, useMemo };

// APIError carries the API's own error message, so pages can show what the
// server said rather than a bare status code.
export class APIError extends Error {
  constructor(message, status, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

// The tenant the UI reads as in a multi-tenant cluster (-multitenancy.enabled),
// sent as X-Scope-OrgID with every API call, as Grafana's data source sends
// it; kept in localStorage, none by default. The header names a tenant, it
// does not prove one: authentication belongs to the proxy in front.
const tenantKey = 'pharos.tenant';
export const tenantHeader = 'X-Scope-OrgID';
export function currentTenant() {
  return localStorage.getItem(tenantKey) || '';
}
export function setTenant(id) {
  if (id) localStorage.setItem(tenantKey, id);
  else localStorage.removeItem(tenantKey);
}

// fetchJSON returns the decoded body of a JSON endpoint; a non-2xx answer
// becomes an APIError with the server's message when it sent one. A 401
// for want of a tenant also raises the 'pharos-tenant-needed' event, on
// which the top bar asks for one.
export async function fetchJSON(url, init = {}) {
  const headers = { Accept: 'application/json', ...(init.headers || {}) };
  const tenant = currentTenant();
  if (tenant) headers[tenantHeader] = tenant;
  const resp = await fetch(url, { ...init, headers });
  const text = await resp.text();
  if (resp.status === 401 && /^no tenant/.test(text)) {
    window.dispatchEvent(new Event('pharos-tenant-needed'));
    throw new APIError(`This cluster keeps tenants apart: choose the tenant to read as at the top right (the server said: ${text.trim()})`, 401, 'tenant');
  }
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    if (!resp.ok) throw new APIError(`${resp.status} ${resp.statusText}: ${text.trim().slice(0, 200)}`, resp.status);
    throw new APIError(`invalid JSON from ${url}`, resp.status);
  }
  if (!resp.ok) {
    const msg = (body && (body.error || body.message)) || `${resp.status} ${resp.statusText}`;
    throw new APIError(msg, resp.status, body && body.errorType);
  }
  return body;
}

// promAPI calls a Prometheus /api/v1 endpoint and returns its data field;
// warnings, when present, are attached to the result as .warnings.
export async function promAPI(path, params = {}, init = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
    else qs.append(k, String(v));
  }
  let url = '/api/v1/' + path;
  let opts = init;
  // Long expressions go in a POST body, as Prometheus's own UI does.
  if (qs.toString().length > 2000) {
    opts = { ...init, method: 'POST', body: qs, headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' } };
  } else if ([...qs].length) {
    url += '?' + qs;
  }
  const body = await fetchJSON(url, opts);
  if (!body || body.status !== 'success') {
    throw new APIError((body && body.error) || 'unexpected answer', 200, body && body.errorType);
  }
  const data = body.data;
  if (body.warnings && body.warnings.length && data && typeof data === 'object') {
    Object.defineProperty(data, 'warnings', { value: body.warnings, enumerable: false });
  }
  if (body.infos && body.infos.length && data && typeof data === 'object') {
    Object.defineProperty(data, 'infos', { value: body.infos, enumerable: false });
  }
  return data;
}

// useAPI runs load() when deps change and every refreshMs when given; it
// keeps the previous data while reloading so tables do not flicker.
export function useAPI(load, deps = [], refreshMs = 0) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => { live = false; };
  }, [...deps, tick]);
  useEffect(() => {
    if (!refreshMs) return undefined;
    const t = setInterval(() => setTick((x) => x + 1), refreshMs);
    return () => clearInterval(t);
  }, [refreshMs]);
  return { ...state, reload: () => setTick((x) => x + 1) };
}

// Durations in Prometheus syntax: 1y2w3d4h5m6s7ms.
const durUnits = { y: 365 * 86400e3, w: 7 * 86400e3, d: 86400e3, h: 3600e3, m: 60e3, s: 1e3, ms: 1 };

export function parseDuration(s) {
  if (!s) return null;
  s = String(s).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s) * 1000;
  const re = /(\d+)(ms|y|w|d|h|m|s)/g;
  let total = 0;
  let pos = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    if (m.index !== pos) return null;
    total += parseInt(m[1], 10) * durUnits[m[2]];
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? total : null;
}

export function formatDuration(ms) {
  if (ms === 0) return '0s';
  let out = '';
  for (const [u, n] of Object.entries(durUnits)) {
    if (ms >= n) {
      const c = Math.floor(ms / n);
      out += c + u;
      ms -= c * n;
    }
  }
  return out || '0s';
}

// humanizeDuration renders seconds for people: "3.2ms", "1m 5s", "2d 3h".
export function humanizeDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '';
  const neg = seconds < 0;
  let s = Math.abs(seconds);
  let out;
  if (s < 1e-3) out = (s * 1e6).toFixed(0) + 'µs';
  else if (s < 1) out = (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + 'ms';
  else if (s < 60) out = s.toFixed(s < 10 ? 3 : 1) + 's';
  else {
    const parts = [];
    for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
      if (s >= n) {
        parts.push(Math.floor(s / n) + u);
        s %= n;
      }
      if (parts.length === 2) break;
    }
    out = parts.join(' ');
  }
  return neg ? '-' + out : out;
}

// ago renders a timestamp as an age ("12s ago"); the zero time of Go's
// encoding means "never".
export function ago(ts, now = Date.now()) {
  if (!ts) return 'never';
  const t = typeof ts === 'number' ? ts : Date.parse(ts);
  if (!Number.isFinite(t) || t <= 0 || String(ts).startsWith('0001-')) return 'never';
  const d = (now - t) / 1000;
  return d >= 0 ? humanizeDuration(d) + ' ago' : 'in ' + humanizeDuration(-d);
}

export function isoTime(ts) {
  if (!ts) return '';
  const t = typeof ts === 'number' ? ts : Date.parse(ts);
  if (!Number.isFinite(t) || String(ts).startsWith('0001-')) return '';
  return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

// formatLabels renders a label set in PromQL syntax: name{a="b"}.
export function formatSeries(metric) {
  if (!metric) return '{}';
  const name = metric.__name__ || '';
  const rest = Object.entries(metric).filter(([k]) => k !== '__name__')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
  if (!rest) return name || '{}';
  return `${name}{${rest}}`;
}

// seriesColor is stable for a label set, so a series keeps its colour
// across executions and panels.
export function seriesColor(key, dark) {
  let hsh = 2166136261;
  for (let i = 0; i < key.length; i++) {
    hsh ^= key.charCodeAt(i);
    hsh = Math.imul(hsh, 16777619);
  }
  const hue = ((hsh >>> 0) % 360);
  return `hsl(${hue} ${dark ? 70 : 65}% ${dark ? 62 : 42}%)`;
}

export function isDark() {
  return document.documentElement.dataset.theme === 'dark';
}

// Labels renders a label set as chips; the compact form is for tables.
export function Labels({ labels, skipName = false }) {
  const entries = Object.entries(labels || {}).filter(([k]) => !(skipName && k === '__name__'));
  if (!entries.length) return html`<span class="muted">no labels</span>`;
  return html`<span class="labels">${entries.map(([k, v]) => html`<span class="label" key=${k}><b>${k}</b>=${v}</span>`)}</span>`;
}

// Pager splits long lists: only one page of rows is ever in the DOM.
export function usePager(items, pageSize = 100) {
  const [page, setPage] = useState(0);
  const pages = Math.max(1, Math.ceil(items.length / pageSize));
  const p = Math.min(page, pages - 1);
  return {
    rows: items.slice(p * pageSize, (p + 1) * pageSize),
    offset: p * pageSize,
    pager: pages > 1 ? html`<${Pager} page=${p} pages=${pages} total=${items.length} setPage=${setPage} />` : null,
  };
}

function Pager({ page, pages, total, setPage }) {
  return html`<nav class="pager" aria-label="pages">
    <button type="button" disabled=${page === 0} onClick=${() => setPage(0)} aria-label="first page">«</button>
    <button type="button" disabled=${page === 0} onClick=${() => setPage(page - 1)} aria-label="previous page">‹</button>
    <span>page ${page + 1} of ${pages} (${total} rows)</span>
    <button type="button" disabled=${page >= pages - 1} onClick=${() => setPage(page + 1)} aria-label="next page">›</button>
    <button type="button" disabled=${page >= pages - 1} onClick=${() => setPage(pages - 1)} aria-label="last page">»</button>
  </nav>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${String(error.message || error)}</div>`;
}

export function Loading({ what = '' }) {
  return html`<div class="muted loading">Loading${what ? ' ' + what : ''}…</div>`;
}

// Page wraps a view with its title and the API state.
export function Section({ title, children, actions }) {
  return html`<section class="page">
    <header class="page-head"><h1>${title}</h1><div class="actions">${actions}</div></header>
    ${children}
  </section>`;
}
