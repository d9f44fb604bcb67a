// The notifier's pages at /alertmanager/, with alertmanager's own hash
// routes (#/alerts, #/silences, #/silences/new, #/status) so its links
// keep working. Everything goes through alertmanager API v2 under
// /alertmanager/api/v2.
import {
  html, useState, useEffect, useMemo, useAPI, fetchJSON, ErrorBox, Loading, Labels, ago, isoTime,
  parseDuration, formatDuration, usePager, Section,
} from './lib.js';

const base = '/alertmanager/api/v2';

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/alerts');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/alerts');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

export function NotifierPage() {
  const hash = useHash();
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  let view;
  if (path.startsWith('/silences/new')) view = html`<${NewSilence} params=${params} />`;
  else if (path.startsWith('/silences/')) view = html`<${NewSilence} params=${params} editId=${path.slice('/silences/'.length)} />`;
  else if (path.startsWith('/silences')) view = html`<${Silences} />`;
  else if (path.startsWith('/status')) view = html`<${AMStatus} />`;
  else view = html`<${Alerts} />`;
  const tabs = [['#/alerts', 'Alerts'], ['#/silences', 'Silences'], ['#/status', 'Status']];
  return html`<section class="page notifier-page">
    <nav class="subnav" aria-label="alertmanager">
      ${tabs.map(([h, t]) => html`<a key=${h} href=${h} class=${path.startsWith(h.slice(1)) ? 'active' : ''}>${t}</a>`)}
      <a href="#/silences/new" class="button primary new-silence">New silence</a>
    </nav>
    ${view}
  </section>`;
}

// matchersOf turns label pairs into exact matchers, for "Silence" on an alert.
function matchersOf(labels) {
  return '{' + Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') + '}';
}

function Alerts() {
  const [filter, setFilter] = useState('');
  const [silenced, setSilenced] = useState(false);
  const [inhibited, setInhibited] = useState(false);
  const q = useAPI(() => {
    const qs = new URLSearchParams({ silenced: String(silenced), inhibited: String(inhibited), active: 'true' });
    parseMatchers(filter).matchers.forEach((m) => qs.append('filter', m.text));
    return fetchJSON(`${base}/alerts/groups?${qs}`);
  }, [filter, silenced, inhibited], 10000);
  const groups = q.data || [];
  const byReceiver = useMemo(() => {
    const m = new Map();
    for (const g of groups) {
      const r = (g.receiver && g.receiver.name) || '';
      if (!m.has(r)) m.set(r, []);
      m.get(r).push(g);
    }
    return [...m.entries()];
  }, [q.data]);
  const pm = parseMatchers(filter);
  return html`<${Section} title="Alerts" actions=${html`
      <input type="search" class="matcher-filter" placeholder='Filter, e.g. {severity="notify"}' aria-label="filter alerts by matchers"
        value=${filter} onChange=${(e) => setFilter(e.target.value)} />
      <label><input type="checkbox" checked=${silenced} onChange=${(e) => setSilenced(e.target.checked)} /> Silenced</label>
      <label><input type="checkbox" checked=${inhibited} onChange=${(e) => setInhibited(e.target.checked)} /> Inhibited</label>`}>
    ${pm.error && html`<div class="error">${pm.error}</div>`}
    <${ErrorBox} error=${q.error} />
    ${q.loading && !q.data && html`<${Loading} />`}
    ${q.data && groups.every((g) => !g.alerts.length) && html`<p class="muted empty">No alerts.</p>`}
    ${byReceiver.map(([recv, gs]) => html`<div class="group receiver" key=${recv}>
      <h2 class="group-name">Receiver: ${recv}</h2>
      ${gs.filter((g) => g.alerts.length).map((g) => html`<${AlertGroup} key=${JSON.stringify(g.labels)} group=${g} />`)}
    </div>`)}
  </${Section}>`;
}

function AlertGroup({ group }) {
  const { rows, pager } = usePager(group.alerts, 50);
  return html`<div class="am-group">
    <h3><${Labels} labels=${group.labels} /> <span class="muted">${group.alerts.length} alert${group.alerts.length === 1 ? '' : 's'}</span></h3>
    <ul class="am-alerts">${rows.map((a) => html`<${AMAlert} key=${a.fingerprint} alert=${a} />`)}</ul>
    ${pager}
  </div>`;
}

function AMAlert({ alert }) {
  const [open, setOpen] = useState(false);
  const st = alert.status || {};
  return html`<li class=${'am-alert am-' + st.state} data-alertname=${alert.labels.alertname}>
    <div class="am-alert-head">
      <span class="muted">${isoTime(alert.startsAt)} (${ago(alert.startsAt)})</span>
      <button type="button" class="small" aria-expanded=${open} onClick=${() => setOpen(!open)}>${open ? '− Info' : '+ Info'}</button>
      ${alert.generatorURL && html`<a class="small" href=${alert.generatorURL} rel="noreferrer">Source</a>`}
      <a class="small button" href=${'#/silences/new?filter=' + encodeURIComponent(matchersOf(alert.labels))}>Silence</a>
      ${st.state !== 'active' && html`<span class=${'badge am-' + st.state}>${st.state}</span>`}
    </div>
    <${Labels} labels=${alert.labels} />
    ${open && html`<div class="am-annotations">
      ${Object.entries(alert.annotations || {}).map(([k, v]) => html`<div key=${k}><b>${k}</b>: ${v}</div>`)}
      ${(st.silencedBy || []).length > 0 && html`<div>silenced by ${st.silencedBy.map((id) => html`<a key=${id} href=${'#/silences/' + id}>${id.slice(0, 8)}</a> `)}</div>`}
      ${(st.inhibitedBy || []).length > 0 && html`<div>inhibited by ${st.inhibitedBy.join(', ')}</div>`}
    </div>`}
  </li>`;
}

// parseMatchers reads alertmanager matchers: {a="b", c=~"d.*"} or the
// same without braces. Label values must be quoted.
export function parseMatchers(text) {
  const out = [];
  let s = (text || '').trim();
  if (!s) return { matchers: out };
  if (s.startsWith('{')) {
    if (!s.endsWith('}')) return { matchers: [], error: 'missing closing }' };
    s = s.slice(1, -1);
  }
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return { matchers: [], error: `cannot parse matchers near "${s.slice(pos, pos + 20)}": write name="value"` };
    const value = JSON.parse('"' + m[3] + '"');
    out.push({ name: m[1], value, isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!'), text: `${m[1]}${m[2]}${JSON.stringify(value)}` });
    pos = re.lastIndex;
    if (m[4] === '') break;
  }
  return { matchers: out };
}

function matcherText(m) {
  const op = (m.isEqual === false ? '!' : '') + (m.isRegex ? '~' : '=');
  return `${m.name}${op === '~' ? '=~' : op === '!~' ? '!~' : op}${JSON.stringify(m.value)}`;
}

function Silences() {
  const q = useAPI(() => fetchJSON(`${base}/silences`), [], 10000);
  const [tab, setTab] = useState('active');
  const [err, setErr] = useState(null);
  const all = q.data || [];
  const byState = { active: [], pending: [], expired: [] };
  for (const s of all) (byState[s.status.state] || (byState[s.status.state] = [])).push(s);
  for (const k of Object.keys(byState)) byState[k].sort((a, b) => (a.endsAt < b.endsAt ? 1 : -1));
  const { rows, pager } = usePager(byState[tab] || [], 50);
  const expire = async (id) => {
    setErr(null);
    try {
      await fetchJSON(`${base}/silence/${encodeURIComponent(id)}`, { method: 'DELETE' });
      q.reload();
    } catch (e) {
      setErr(e);
    }
  };
  return html`<${Section} title="Silences">
    <div class="tabs" role="tablist">${['active', 'pending', 'expired'].map((s) => html`<button type="button" role="tab" key=${s}
      class=${'tab' + (tab === s ? ' active' : '')} aria-selected=${tab === s} onClick=${() => setTab(s)}>${s[0].toUpperCase() + s.slice(1)} (${byState[s].length})</button>`)}</div>
    <${ErrorBox} error=${q.error || err} />
    ${q.loading && !q.data && html`<${Loading} />`}
    ${q.data && !rows.length && html`<p class="muted empty">No ${tab} silences.</p>`}
    <ul class="silences">${rows.map((s) => html`<li key=${s.id} class=${'silence sl-' + s.status.state} data-id=${s.id}>
      <div class="silence-head">
        <code class="matchers">{${s.matchers.map(matcherText).join(', ')}}</code>
        <span class="muted">${s.status.state === 'expired' ? `expired ${ago(s.endsAt)}` : s.status.state === 'pending' ? `starts ${ago(s.startsAt)}` : `ends ${ago(s.endsAt)}`}</span>
      </div>
      <div class="silence-meta"><span>${s.comment}</span> <span class="muted">— ${s.createdBy}, id ${s.id}</span></div>
      <div class="silence-actions">
        <a class="button small" href=${'#/silences/' + s.id}>${s.status.state === 'expired' ? 'Recreate' : 'Edit'}</a>
        ${s.status.state !== 'expired' && html`<button type="button" class="small danger" onClick=${() => expire(s.id)}>Expire</button>`}
      </div>
    </li>`)}</ul>
    ${pager}
  </${Section}>`;
}

function NewSilence({ params, editId }) {
  const [form, setForm] = useState({ matchers: params.get('filter') || '', duration: '2h', createdBy: localStorage.getItem('pharos.silence.author') || '', comment: '' });
  const [err, setErr] = useState(null);
  const [done, setDone] = useState(null);
  const [preview, setPreview] = useState(null);
  const [loadErr, setLoadErr] = useState(null);
  useEffect(() => {
    if (!editId) return;
    fetchJSON(`${base}/silence/${encodeURIComponent(editId)}`).then((s) => {
      const ms = Date.parse(s.endsAt) - Math.max(Date.parse(s.startsAt), Date.now());
      setForm({
        matchers: '{' + s.matchers.map(matcherText).join(', ') + '}',
        duration: formatDuration(Math.max(ms, 60e3) - (Math.max(ms, 60e3) % 60e3)),
        createdBy: s.createdBy,
        comment: s.comment,
        expired: s.status.state === 'expired',
      });
    }, setLoadErr);
  }, [editId]);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const pm = parseMatchers(form.matchers);
  const durMs = parseDuration(form.duration);
  const submit = async (e) => {
    e.preventDefault();
    setErr(null);
    if (pm.error || !pm.matchers.length) { setErr(new Error(pm.error || 'at least one matcher is needed')); return; }
    if (!durMs) { setErr(new Error('duration must look like 2h or 1d12h')); return; }
    const now = Date.now();
    const body = {
      matchers: pm.matchers.map(({ name, value, isRegex, isEqual }) => ({ name, value, isRegex, isEqual })),
      startsAt: new Date(now).toISOString(),
      endsAt: new Date(now + durMs).toISOString(),
      createdBy: form.createdBy,
      comment: form.comment,
    };
    // Editing a live silence replaces it; an expired one is recreated.
    if (editId && !form.expired) body.id = editId;
    try {
      localStorage.setItem('pharos.silence.author', form.createdBy);
      const r = await fetchJSON(`${base}/silences`, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(body) });
      setDone(r.silenceID);
    } catch (e2) {
      setErr(e2);
    }
  };
  const doPreview = async () => {
    if (pm.error || !pm.matchers.length) return;
    const qs = new URLSearchParams({ silenced: 'true', inhibited: 'true', active: 'true' });
    pm.matchers.forEach((m) => qs.append('filter', m.text));
    try {
      setPreview(await fetchJSON(`${base}/alerts?${qs}`));
    } catch (e2) {
      setErr(e2);
    }
  };
  if (done) {
    return html`<${Section} title="Silence saved"><p class="ok-text">Silence <code class="silence-id">${done}</code> is saved.</p>
      <p><a href="#/silences">Back to silences</a></p></${Section}>`;
  }
  return html`<${Section} title=${editId ? 'Edit silence' : 'New silence'}>
    <${ErrorBox} error=${loadErr} />
    <form class="silence-form" onSubmit=${submit}>
      <label>Matchers <input type="text" name="matchers" required value=${form.matchers} onInput=${set('matchers')}
        placeholder='{alertname="TooManyNodes", severity="notify"}' /></label>
      ${pm.error && html`<div class="error small">${pm.error}</div>`}
      <label>Duration <input type="text" name="duration" required value=${form.duration} onInput=${set('duration')} size="8" />
        <span class="muted small">${durMs ? `until ${isoTime(Date.now() + durMs)}` : 'e.g. 2h, 1d12h'}</span></label>
      <label>Creator <input type="text" name="createdBy" required value=${form.createdBy} onInput=${set('createdBy')} /></label>
      <label>Comment <textarea name="comment" required rows="3" value=${form.comment} onInput=${set('comment')}></textarea></label>
      <${ErrorBox} error=${err} />
      <div class="form-actions">
        <button type="submit" class="primary">${editId && !form.expired ? 'Update' : 'Create'}</button>
        <button type="button" onClick=${doPreview}>Preview alerts</button>
        <a href="#/silences">Cancel</a>
      </div>
    </form>
    ${preview && html`<div class="preview"><h3>${preview.length} alert${preview.length === 1 ? '' : 's'} affected</h3>
      <ul>${preview.slice(0, 100).map((a) => html`<li key=${a.fingerprint}><${Labels} labels=${a.labels} /></li>`)}</ul></div>`}
  </${Section}>`;
}

function AMStatus() {
  const q = useAPI(() => fetchJSON(`${base}/status`), [], 15000);
  const d = q.data;
  return html`<${Section} title="Status">
    <${ErrorBox} error=${q.error} />
    ${q.loading && !d && html`<${Loading} />`}
    ${d && html`<div>
      <table class="data kv"><tbody>
        <tr><th>Uptime</th><td>${isoTime(d.uptime)} (${ago(d.uptime)})</td></tr>
        <tr><th>Cluster status</th><td>${d.cluster && d.cluster.status}</td></tr>
        <tr><th>Peer name</th><td>${d.cluster && d.cluster.name}</td></tr>
        <tr><th>Peers</th><td>${((d.cluster && d.cluster.peers) || []).map((p) => html`<div key=${p.name}>${p.name} @ ${p.address}</div>`)}</td></tr>
        ${Object.entries(d.versionInfo || {}).map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${v}</td></tr>`)}
      </tbody></table>
      <h2>Config</h2>
      <pre class="config-yaml">${d.config && d.config.original}</pre>
    </div>`}
  </${Section}>`;
}
