// The /alerts page: alerting rules per rule group, coloured by state
// (inactive green, pending yellow, firing red), each expandable to its
// definition and active alerts, from /api/v1/rules?type=alert.
import { html, useState, useMemo, useAPI, promAPI, ErrorBox, Loading, Labels, ago, isoTime, humanizeDuration, Section } from './lib.js';

const states = ['inactive', 'pending', 'firing'];

function ruleState(r) {
  return r.state || (r.alerts && r.alerts.some((a) => a.state === 'firing') ? 'firing' : 'inactive');
}

export function AlertsPage() {
  const q = useAPI(() => promAPI('rules', { type: 'alert' }), [], 10000);
  const [show, setShow] = useState(() => new Set(states));
  const [filter, setFilter] = useState('');
  const [openAll, setOpenAll] = useState(null);
  const groups = (q.data && q.data.groups) || [];
  const counts = useMemo(() => {
    const c = { inactive: 0, pending: 0, firing: 0 };
    for (const g of groups) for (const r of g.rules || []) c[ruleState(r)] = (c[ruleState(r)] || 0) + 1;
    return c;
  }, [q.data]);
  const toggleState = (s) => {
    const n = new Set(show);
    if (n.has(s)) n.delete(s); else n.add(s);
    setShow(n);
  };
  const f = filter.toLowerCase();
  const visible = groups.map((g) => ({
    ...g,
    rules: (g.rules || []).filter((r) => show.has(ruleState(r)) && (!f || r.name.toLowerCase().includes(f) || JSON.stringify(r.labels || {}).toLowerCase().includes(f))),
  })).filter((g) => g.rules.length);
  return html`<${Section} title="Alerts" actions=${html`
      ${states.map((s) => html`<label key=${s} class=${'state-filter s-' + s}><input type="checkbox" checked=${show.has(s)} onChange=${() => toggleState(s)} /> ${s[0].toUpperCase() + s.slice(1)} (${counts[s]})</label>`)}
      <input type="search" placeholder="Filter by name or labels" aria-label="filter alerts" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
      <button type="button" onClick=${() => setOpenAll(openAll ? false : true)}>${openAll ? 'Collapse all' : 'Expand all'}</button>`}>
    <${ErrorBox} error=${q.error} />
    ${q.loading && !q.data && html`<${Loading} />`}
    ${q.data && groups.length === 0 && html`<p class="muted empty">No alerting rules are loaded.</p>`}
    ${visible.map((g) => html`<${Group} key=${g.file + '/' + g.name} group=${g} openAll=${openAll} />`)}
  </${Section}>`;
}

function Group({ group, openAll }) {
  return html`<div class="group">
    <h2 class="group-name">${group.name} <span class="muted small">${group.file}</span></h2>
    <div class="rules">
      ${group.rules.map((r) => html`<${AlertRule} key=${r.name + JSON.stringify(r.labels || {})} rule=${r} openAll=${openAll} />`)}
    </div>
  </div>`;
}

function AlertRule({ rule, openAll }) {
  const [open, setOpen] = useState(false);
  const isOpen = openAll === null ? open : (open || openAll);
  const st = ruleState(rule);
  const alerts = rule.alerts || [];
  return html`<div class=${'rule alert-rule s-' + st} data-state=${st} data-name=${rule.name}>
    <button type="button" class="rule-head" aria-expanded=${isOpen} onClick=${() => setOpen(!isOpen)}>
      <span class="badge">${st.toUpperCase()}</span>
      <span class="rule-name">${rule.name}</span>
      <span class="muted">(${alerts.length} active)</span>
      <span class="info-toggle">${isOpen ? '− info' : '+ info'}</span>
    </button>
    ${isOpen && html`<div class="rule-body">
      <pre class="rule-def">${ruleYAML(rule)}</pre>
      ${rule.health && rule.health !== 'ok' && html`<div class="error">health: ${rule.health}${rule.lastError ? ': ' + rule.lastError : ''}</div>`}
      <div class="muted small">Last evaluation ${ago(rule.lastEvaluation)}${rule.evaluationTime !== undefined ? `, took ${humanizeDuration(rule.evaluationTime)}` : ''}</div>
      ${alerts.length > 0 && html`<table class="data alerts-table">
        <thead><tr><th>Labels</th><th>State</th><th>Active since</th><th>Value</th><th>Annotations</th></tr></thead>
        <tbody>${alerts.map((a, i) => html`<tr key=${i} class=${'s-' + a.state}>
          <td><${Labels} labels=${a.labels} /></td>
          <td><span class=${'badge s-' + a.state}>${a.state.toUpperCase()}</span></td>
          <td title=${isoTime(a.activeAt)}>${isoTime(a.activeAt)} <span class="muted">(${ago(a.activeAt)})</span></td>
          <td>${a.value}</td>
          <td>${Object.entries(a.annotations || {}).map(([k, v]) => html`<div key=${k}><b>${k}</b>: ${v}</div>`)}</td>
        </tr>`)}</tbody></table>`}
    </div>`}
  </div>`;
}

// ruleYAML shows the rule as it would be written in a rule file.
export function ruleYAML(rule) {
  const lines = [`${rule.type === 'recording' ? 'record' : 'alert'}: ${rule.name}`, `expr: ${rule.query}`];
  if (rule.duration) lines.push(`for: ${humanizeDuration(rule.duration).replace(/ /g, '')}`);
  if (rule.keepFiringFor) lines.push(`keep_firing_for: ${humanizeDuration(rule.keepFiringFor).replace(/ /g, '')}`);
  for (const key of ['labels', 'annotations']) {
    const m = rule[key];
    if (m && Object.keys(m).length) {
      lines.push(`${key}:`);
      for (const [k, v] of Object.entries(m)) lines.push(`  ${k}: ${v}`);
    }
  }
  return lines.join('\n');
}
