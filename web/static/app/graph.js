// The /graph page: expression panels with Table and Graph tabs. The panels'
// state lives in the URL with Prometheus's parameter names (g0.expr,
// g0.tab, g0.range_input, g0.end_input, g0.step_input, g0.display_mode), so
// a link reproduces the page, and links made for Prometheus open here.
import {
  html, useState, useEffect, useRef, useMemo, promAPI, parseDuration, formatDuration,
  formatSeries, seriesColor, isDark, usePager, ErrorBox,
} from './lib.js';
import uPlot from '../vendor/uPlot.esm.js';
import { functions, aggregations, keywords, completionContext, rank } from './promql.js';

const rangeSteps = ['1m', '5m', '15m', '30m', '1h', '2h', '6h', '12h', '1d', '2d', '1w', '2w', '4w', '8w', '26w', '1y'];

function defaultPanel() {
  return { expr: '', tab: 'table', range: '1h', end: '', step: '', stacked: false };
}

// readPanels parses g<N>.* parameters; Prometheus 2's numeric tabs
// (0 graph, 1 table) are accepted too.
export function readPanels(search) {
  const qs = new URLSearchParams(search);
  const byIdx = new Map();
  for (const [k, v] of qs) {
    const m = /^g(\d+)\.(.+)$/.exec(k);
    if (!m) continue;
    const i = parseInt(m[1], 10);
    if (!byIdx.has(i)) byIdx.set(i, defaultPanel());
    const p = byIdx.get(i);
    switch (m[2]) {
      case 'expr': p.expr = v; break;
      case 'tab': p.tab = v === '0' || v === 'graph' ? 'graph' : 'table'; break;
      case 'range_input': if (parseDuration(v)) p.range = v; break;
      case 'end_input': p.end = v; break;
      case 'moment_input': if (!p.end) p.end = v; break;
      case 'step_input': p.step = v; break;
      case 'display_mode': p.stacked = v === 'stacked'; break;
      case 'stacked': p.stacked = v === '1'; break;
      default:
    }
  }
  const panels = [...byIdx.keys()].sort((a, b) => a - b).map((i) => byIdx.get(i));
  return panels.length ? panels : [defaultPanel()];
}

export function writePanels(panels) {
  const qs = new URLSearchParams();
  panels.forEach((p, i) => {
    qs.set(`g${i}.expr`, p.expr);
    qs.set(`g${i}.tab`, p.tab);
    qs.set(`g${i}.range_input`, p.range);
    if (p.end) qs.set(`g${i}.end_input`, p.end);
    if (p.step) qs.set(`g${i}.step_input`, p.step);
    qs.set(`g${i}.display_mode`, p.stacked ? 'stacked' : 'lines');
  });
  return '?' + qs.toString();
}

// Metric and label names are fetched once per page and shared by panels.
let namesPromise = null;
function metricNames() {
  if (!namesPromise) namesPromise = promAPI('label/__name__/values').catch(() => []);
  return namesPromise;
}
const labelNameCache = new Map();
function labelNames(metric) {
  const key = metric || '';
  if (!labelNameCache.has(key)) {
    const params = metric ? { 'match[]': metric } : {};
    labelNameCache.set(key, promAPI('labels', params).catch(() => []));
  }
  return labelNameCache.get(key);
}
const labelValueCache = new Map();
function labelValues(label, metric) {
  const key = label + '\u0000' + metric;
  if (!labelValueCache.has(key)) {
    const params = metric ? { 'match[]': metric } : {};
    labelValueCache.set(key, promAPI(`label/${encodeURIComponent(label)}/values`, params).catch(() => []));
  }
  return labelValueCache.get(key);
}

const staticWords = [
  ...functions.map((f) => ({ text: f, kind: 'function' })),
  ...aggregations.map((f) => ({ text: f, kind: 'aggregation' })),
  ...keywords.map((f) => ({ text: f, kind: 'keyword' })),
];

export function GraphPage() {
  const [panels, setPanels] = useState(() => readPanels(location.search));
  useEffect(() => {
    const url = location.pathname + writePanels(panels);
    if (url !== location.pathname + location.search) history.replaceState(null, '', url);
  }, [panels]);
  useEffect(() => {
    const on = () => location.pathname === '/graph' && setPanels(readPanels(location.search));
    window.addEventListener('popstate', on);
    return () => window.removeEventListener('popstate', on);
  }, []);
  // "/" jumps to the first expression box, as in Prometheus's UI.
  useEffect(() => {
    const on = (e) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.target.closest && e.target.closest('input, textarea, select, [contenteditable]')) return;
      const box = document.querySelector('.expr-input textarea');
      if (box) { e.preventDefault(); box.focus(); }
    };
    document.addEventListener('keydown', on);
    return () => document.removeEventListener('keydown', on);
  }, []);
  const update = (i, patch) => setPanels((ps) => ps.map((p, j) => (j === i ? { ...p, ...patch } : p)));
  const remove = (i) => setPanels((ps) => (ps.length > 1 ? ps.filter((_, j) => j !== i) : [defaultPanel()]));
  return html`<section class="page graph-page">
    ${panels.map((p, i) => html`<${Panel} key=${i} idx=${i} panel=${p}
      onChange=${(patch) => update(i, patch)} onRemove=${() => remove(i)} />`)}
    <button type="button" class="add-panel" onClick=${() => setPanels((ps) => [...ps, defaultPanel()])}>+ Add panel</button>
  </section>`;
}

// Panel holds one expression and its result. Queries run only on Execute
// (or when a link arrives with an expression), not on every keystroke.
function Panel({ idx, panel, onChange, onRemove }) {
  const [draft, setDraftState] = useState(panel.expr);
  // Execute reads the draft from a ref: a key pressed right after typing
  // may come before the render that would give it the new text.
  const draftRef = useRef(panel.expr);
  const setDraft = (v) => { draftRef.current = v; setDraftState(v); };
  // executed bumps on every Execute, so the same expression re-runs.
  const [executed, setExecuted] = useState(panel.expr ? 1 : 0);
  // The draft follows panel.expr when it changes from outside (the URL, on
  // back and forward), not when it is what this panel executed: that
  // effect runs a frame later, and would take back what was typed since.
  const ownExpr = useRef(panel.expr);
  useEffect(() => {
    if (panel.expr === ownExpr.current) return;
    ownExpr.current = panel.expr;
    setDraft(panel.expr);
  }, [panel.expr]);
  const execute = () => {
    ownExpr.current = draftRef.current;
    onChange({ expr: draftRef.current });
    setExecuted((n) => n + 1);
  };
  const tabs = [['table', 'Table'], ['graph', 'Graph']];
  return html`<div class="panel" data-panel=${idx}>
    <div class="expr-row">
      <${ExprInput} value=${draft} onInput=${setDraft} onExecute=${execute} autoFocus=${idx === 0} />
      <button type="button" class="primary execute" onClick=${execute}>Execute</button>
      <button type="button" class="icon remove-panel" title="Remove panel" aria-label="remove panel" onClick=${onRemove}>✕</button>
    </div>
    <div class="tabs" role="tablist">
      ${tabs.map(([id, label]) => html`<button type="button" role="tab" key=${id} class=${'tab' + (panel.tab === id ? ' active' : '')}
        aria-selected=${panel.tab === id} onClick=${() => onChange({ tab: id })}>${label}</button>`)}
    </div>
    <div class="tab-body">
      ${panel.tab === 'table'
        ? html`<${TableView} panel=${panel} executed=${executed} onChange=${onChange} />`
        : html`<${GraphView} panel=${panel} executed=${executed} onChange=${onChange} />`}
    </div>
  </div>`;
}

// ExprInput is a textarea with completion of metric names, functions,
// keywords, label names and values. Enter or Ctrl+Enter executes; with the
// list open, arrows pick, Tab or Enter accepts, Escape closes.
function ExprInput({ value, onInput, onExecute, autoFocus }) {
  const ref = useRef(null);
  const [items, setItems] = useState([]);
  const [sel, setSel] = useState(-1);
  const [ctx, setCtx] = useState(null);
  const seq = useRef(0);
  // The list closes a moment after the box loses focus, so that a click on
  // an item still lands; coming back before then keeps it open.
  const blurTimer = useRef(0);

  useEffect(() => {
    if (autoFocus && ref.current && !value) ref.current.focus();
  }, []);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = Math.min(el.scrollHeight, 300) + 'px';
  }, [value]);

  const suggest = async (text, caret) => {
    const my = ++seq.current;
    const c = completionContext(text.slice(0, caret));
    let cands = [];
    if (c.kind === 'expr' && c.word) {
      const names = await metricNames();
      cands = names.map((n) => ({ text: n, kind: 'metric' })).concat(staticWords);
    } else if (c.kind === 'labelName') {
      cands = (await labelNames(c.metric)).filter((n) => n !== '__name__').map((n) => ({ text: n, kind: 'label' }));
      if (!c.word) { if (my === seq.current) { setItems(cands.slice(0, 50)); setSel(-1); setCtx(c); } return; }
    } else if (c.kind === 'labelValue') {
      cands = (await labelValues(c.label, c.metric)).map((n) => ({ text: n, kind: 'value' }));
      if (!c.word) { if (my === seq.current) { setItems(cands.slice(0, 50)); setSel(-1); setCtx(c); } return; }
    }
    if (my !== seq.current) return;
    setItems(rank(cands, c.word));
    setSel(-1);
    setCtx(c);
  };

  const close = () => { seq.current++; setItems([]); setSel(-1); };

  const accept = (item) => {
    const el = ref.current;
    const caret = el.selectionStart;
    const before = value.slice(0, caret);
    const after = value.slice(caret);
    const wordLen = ctx ? ctx.word.length : 0;
    let insert = item.text;
    let caretShift = 0;
    if (item.kind === 'function' || item.kind === 'aggregation') {
      if (!after.startsWith('(')) { insert += '()'; caretShift = -1; }
    } else if (item.kind === 'value') {
      insert = item.text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    }
    const next = before.slice(0, before.length - wordLen) + insert + after;
    const pos = before.length - wordLen + insert.length + caretShift;
    onInput(next);
    close();
    // The text and caret are set now, not a frame later: a later caret
    // would collapse a selection made since (a select-all before Delete)
    // and the Delete would then remove one character.
    el.value = next;
    el.focus();
    el.setSelectionRange(pos, pos);
  };

  const onKeyDown = (e) => {
    const open = items.length > 0;
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault(); close(); onExecute(); return;
    }
    if (open && e.key === 'ArrowDown') { e.preventDefault(); setSel((s) => (s + 1) % items.length); return; }
    if (open && e.key === 'ArrowUp') { e.preventDefault(); setSel((s) => (s <= 0 ? items.length - 1 : s - 1)); return; }
    if (open && e.key === 'Tab' && !e.shiftKey) { e.preventDefault(); accept(items[Math.max(sel, 0)]); return; }
    if (open && e.key === 'Escape') { e.preventDefault(); close(); return; }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      if (open && sel >= 0) { accept(items[sel]); return; }
      close(); onExecute();
    }
  };

  return html`<div class="expr-input">
    <textarea ref=${ref} rows="1" spellcheck="false" autocomplete="off" value=${value}
      placeholder="Expression (Enter executes, Shift+Enter adds a line, / focuses)"
      aria-label="expression" aria-autocomplete="list" aria-expanded=${items.length > 0}
      onInput=${(e) => { onInput(e.target.value); suggest(e.target.value, e.target.selectionStart); }}
      onKeyDown=${onKeyDown}
      onBlur=${() => { blurTimer.current = setTimeout(close, 150); }}
      onFocus=${() => clearTimeout(blurTimer.current)} />
    ${items.length > 0 && html`<ul class="completions" role="listbox" data-word=${ctx ? ctx.word : ''}>
      ${items.map((it, i) => html`<li key=${it.kind + it.text} role="option" aria-selected=${i === sel}
          class=${i === sel ? 'selected' : ''}
          onMouseDown=${(e) => { e.preventDefault(); accept(it); }}>
        <span class="c-text">${it.text}</span><span class=${'c-kind k-' + it.kind}>${it.kind}</span></li>`)}
    </ul>`}
  </div>`;
}

// evalTime is the panel's end time in seconds, or now.
function evalTime(panel) {
  if (panel.end) {
    const t = Date.parse(panel.end.includes('T') || panel.end.includes(' ') ? panel.end.replace(' ', 'T') : panel.end);
    if (Number.isFinite(t)) return t / 1000;
  }
  return Date.now() / 1000;
}

function useQuery(run, deps, enabled) {
  const [st, setSt] = useState({ result: null, error: null, loading: false, ms: 0 });
  useEffect(() => {
    if (!enabled) return undefined;
    const ctl = new AbortController();
    const t0 = performance.now();
    setSt((s) => ({ ...s, loading: true, error: null }));
    run(ctl.signal).then(
      (result) => setSt({ result, error: null, loading: false, ms: performance.now() - t0 }),
      (error) => { if (error.name !== 'AbortError') setSt({ result: null, error, loading: false, ms: 0 }); },
    );
    return () => ctl.abort();
  }, deps);
  return st;
}

function EndTimeInput({ panel, onChange }) {
  const local = (sec) => {
    const d = new Date(sec * 1000 - new Date(sec * 1000).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
  };
  const shift = (dir) => {
    const r = (parseDuration(panel.range) || 3600e3) / 1000;
    const end = evalTime(panel) + dir * r;
    onChange({ end: new Date(end * 1000).toISOString().replace(/\.\d+Z$/, 'Z') });
  };
  const value = panel.end ? local(evalTime(panel)) : '';
  return html`<span class="control end">
    <button type="button" class="icon" title="Earlier by one range" aria-label="earlier" onClick=${() => shift(-1)}>«</button>
    <input type="datetime-local" step="1" aria-label="end time" value=${value}
      onChange=${(e) => onChange({ end: e.target.value ? new Date(e.target.value).toISOString().replace(/\.\d+Z$/, 'Z') : '' })} />
    <button type="button" class="icon" title="Later by one range" aria-label="later" onClick=${() => shift(1)}>»</button>
    ${panel.end && html`<button type="button" class="link" onClick=${() => onChange({ end: '' })}>now</button>`}
  </span>`;
}

function TableView({ panel, executed, onChange }) {
  const time = panel.end ? evalTime(panel) : null;
  const st = useQuery(
    (signal) => promAPI('query', { query: panel.expr, time: time ?? Date.now() / 1000 }, { signal }),
    [panel.expr, executed, panel.end],
    executed > 0 && panel.expr !== '',
  );
  return html`<div class="table-view">
    <div class="controls"><label>Evaluation time</label><${EndTimeInput} panel=${panel} onChange=${onChange} /></div>
    <${ErrorBox} error=${st.error} />
    ${st.loading && html`<div class="muted">Loading…</div>`}
    ${st.result && html`<${ResultTable} result=${st.result} ms=${st.ms} />`}
    ${!st.result && !st.error && !st.loading && html`<div class="muted empty">No data queried yet</div>`}
  </div>`;
}

function Warnings({ result }) {
  const w = (result && result.warnings) || [];
  const inf = (result && result.infos) || [];
  if (!w.length && !inf.length) return null;
  return html`<div class="warnings">${w.map((x) => html`<div class="warning">⚠ ${x}</div>`)}${inf.map((x) => html`<div class="info">ℹ ${x}</div>`)}</div>`;
}

function fmtSample(v) {
  return v;
}

function fmtHistogram(hist) {
  if (!hist) return '';
  const [, hh] = hist;
  return `count=${hh.count} sum=${hh.sum}` + (hh.buckets ? ` buckets=${hh.buckets.length}` : '');
}

function ResultTable({ result, ms }) {
  let rows;
  const type = result.resultType;
  if (type === 'vector') {
    rows = result.result.map((s) => ({ key: formatSeries(s.metric), metric: s.metric, value: s.value ? fmtSample(s.value[1]) : fmtHistogram(s.histogram) }));
  } else if (type === 'matrix') {
    rows = result.result.map((s) => ({
      key: formatSeries(s.metric),
      metric: s.metric,
      value: [...(s.values || []).map(([t, v]) => `${v} @${t}`), ...(s.histograms || []).map((x) => `${fmtHistogram(x)} @${x[0]}`)].join('\n'),
    }));
  } else if (type === 'scalar' || type === 'string') {
    rows = [{ key: type, metric: null, value: result.result[1] }];
  } else {
    rows = [];
  }
  const { rows: page, pager } = usePager(rows, 100);
  return html`<div>
    <${Warnings} result=${result} />
    <div class="stats muted">Load time: ${Math.round(ms)}ms · Result series: ${rows.length}</div>
    ${rows.length === 0 ? html`<div class="muted empty">Empty query result</div>` : html`
      <table class="data result-table">
        <tbody>${page.map((r) => html`<tr key=${r.key}>
          <td class="series">${r.metric ? formatSeries(r.metric) : html`<i>${r.key}</i>`}</td>
          <td class="value">${r.value}</td></tr>`)}</tbody>
      </table>`}
    ${pager}
  </div>`;
}

// autoStep is Prometheus's default resolution: about 250 points per series.
function autoStep(rangeSec) {
  return Math.max(Math.floor(rangeSec / 250), 1);
}

function GraphView({ panel, executed, onChange }) {
  const rangeMs = parseDuration(panel.range) || 3600e3;
  const rangeSec = rangeMs / 1000;
  const stepSec = (panel.step && parseDuration(panel.step) / 1000) || autoStep(rangeSec);
  const endRef = useRef(0);
  const st = useQuery(
    (signal) => {
      const end = evalTime(panel);
      // Aligning to the step keeps the time grid stable between executions;
      // rounding up keeps the newest samples in view.
      const alignedEnd = Math.ceil(end / stepSec) * stepSec;
      endRef.current = alignedEnd;
      return promAPI('query_range', { query: panel.expr, start: alignedEnd - rangeSec, end: alignedEnd, step: stepSec }, { signal })
        .then((r) => ({ ...r, start: alignedEnd - rangeSec, end: alignedEnd, step: stepSec, warnings: r.warnings, infos: r.infos }));
    },
    [panel.expr, executed, panel.range, panel.end, stepSec],
    executed > 0 && panel.expr !== '',
  );
  const stepRange = (dir) => {
    const cur = rangeSteps.findIndex((s) => parseDuration(s) >= rangeMs);
    let i = cur < 0 ? rangeSteps.length - 1 : cur;
    if (dir < 0) i = parseDuration(rangeSteps[i]) > rangeMs ? i - 1 : i - 1;
    else i = parseDuration(rangeSteps[i]) > rangeMs ? i : i + 1;
    i = Math.max(0, Math.min(rangeSteps.length - 1, i));
    onChange({ range: rangeSteps[i] });
  };
  return html`<div class="graph-view">
    <div class="controls">
      <span class="control range">
        <button type="button" class="icon" aria-label="shorter range" onClick=${() => stepRange(-1)}>−</button>
        <input type="text" aria-label="range" size="5" value=${panel.range}
          onChange=${(e) => { if (parseDuration(e.target.value)) onChange({ range: formatDuration(parseDuration(e.target.value)) }); }} />
        <button type="button" class="icon" aria-label="longer range" onClick=${() => stepRange(1)}>+</button>
      </span>
      <${EndTimeInput} panel=${panel} onChange=${onChange} />
      <input type="text" class="control step" size="10" aria-label="resolution" placeholder=${`Res. (${stepSec}s)`}
        value=${panel.step} onChange=${(e) => onChange({ step: e.target.value.trim() })} title="Resolution in seconds or as a duration; empty for automatic" />
      <label class="control stacked"><input type="checkbox" checked=${panel.stacked} onChange=${(e) => onChange({ stacked: e.target.checked })} /> stacked</label>
    </div>
    <${ErrorBox} error=${st.error} />
    ${st.loading && html`<div class="muted">Loading…</div>`}
    ${st.result && html`<${Warnings} result=${st.result} />`}
    ${st.result && html`<${Chart} data=${st.result} stacked=${panel.stacked} ms=${st.ms} />`}
    ${!st.result && !st.error && !st.loading && html`<div class="muted empty">No data queried yet</div>`}
  </div>`;
}

// toColumns turns a matrix into uPlot's columnar form on the query's step
// grid. Missing and non-finite samples are gaps.
export function toColumns(res) {
  const { start, end, step } = res;
  const n = Math.floor((end - start) / step) + 1;
  const xs = new Array(n);
  for (let i = 0; i < n; i++) xs[i] = start + i * step;
  const series = [];
  for (const s of res.result) {
    if (!s.values || !s.values.length) continue;
    const ys = new Array(n).fill(null);
    for (const [t, v] of s.values) {
      const i = Math.round((t - start) / step);
      if (i < 0 || i >= n) continue;
      const f = parseFloat(v);
      ys[i] = Number.isFinite(f) ? f : null;
    }
    series.push({ metric: s.metric, name: formatSeries(s.metric), ys });
  }
  return { xs, series };
}

// stack accumulates series in order; a gap adds nothing.
function stack(series) {
  const acc = new Array(series.length ? series[0].ys.length : 0).fill(0);
  return series.map((s) => {
    const ys = s.ys.map((v, i) => {
      if (v === null) return null;
      acc[i] += v;
      return acc[i];
    });
    return { ...s, ys };
  });
}

function Chart({ data, stacked, ms }) {
  const box = useRef(null);
  const tip = useRef(null);
  const plot = useRef(null);
  const [hidden, setHidden] = useState(() => new Set());
  const [theme, setTheme] = useState(isDark());
  const [renderMs, setRenderMs] = useState(null);
  const cols = useMemo(() => toColumns(data), [data]);
  useEffect(() => {
    const on = () => setTheme(isDark());
    window.addEventListener('pharos-theme', on);
    return () => window.removeEventListener('pharos-theme', on);
  }, []);
  useEffect(() => setHidden(new Set()), [data]);

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const t0 = performance.now();
    delete el.dataset.renderMs;
    const dark = theme;
    const many = cols.series.length > 100;
    const drawn = stacked ? stack(cols.series) : cols.series;
    const axisColor = dark ? '#c9d1d9' : '#24292f';
    const gridColor = dark ? 'rgba(255,255,255,0.08)' : 'rgba(0,0,0,0.08)';
    const opts = {
      width: Math.max(el.clientWidth, 300),
      height: 380,
      legend: { show: false },
      cursor: { focus: { prox: many ? -1 : 16 }, drag: { x: true, y: false } },
      focus: { alpha: many ? 1 : 0.3 },
      scales: { x: { time: true } },
      axes: [
        { stroke: axisColor, grid: { stroke: gridColor }, ticks: { stroke: gridColor } },
        { stroke: axisColor, grid: { stroke: gridColor }, ticks: { stroke: gridColor }, size: 60 },
      ],
      series: [{}],
      hooks: {
        setCursor: [(u) => showTip(u, tip.current, cols.series, drawn)],
        // uPlot draws in a microtask after construction: the first draw
        // is when the chart is on screen.
        draw: [() => {
          if (el.dataset.renderMs) return;
          const took = performance.now() - t0;
          el.dataset.renderMs = String(Math.round(took));
          setRenderMs(took);
        }],
      },
    };
    // Stacked areas are drawn top-down so each fill covers the one below.
    const order = drawn.map((_, i) => i);
    if (stacked) order.reverse();
    for (const i of order) {
      const s = drawn[i];
      const color = seriesColor(s.name, dark);
      opts.series.push({
        label: s.name,
        stroke: color,
        width: drawn.length > 10 ? 1 : 2,
        fill: stacked ? color.replace(')', ' / 0.35)') : undefined,
        points: { show: many ? false : undefined, filter: isolatedPoints },
        show: !hidden.has(i),
      });
    }
    const ys = order.map((i) => drawn[i].ys);
    if (plot.current) plot.current.destroy();
    const u = new uPlot(opts, [cols.xs, ...ys], el);
    u.pharosOrder = order;
    plot.current = u;
    const ro = new ResizeObserver(() => {
      if (el.clientWidth && Math.abs(el.clientWidth - u.width) > 2) u.setSize({ width: el.clientWidth, height: 380 });
    });
    ro.observe(el);
    return () => { ro.disconnect(); };
  }, [cols, stacked, theme]);
  useEffect(() => () => plot.current && plot.current.destroy(), []);

  const toggle = (i, only) => {
    const u = plot.current;
    const next = new Set(hidden);
    if (only) {
      const isOnly = cols.series.every((_, j) => (j === i ? !hidden.has(j) : hidden.has(j)));
      next.clear();
      if (!isOnly) cols.series.forEach((_, j) => j !== i && next.add(j));
    } else if (next.has(i)) next.delete(i);
    else next.add(i);
    setHidden(next);
    if (u) {
      u.batch(() => u.pharosOrder.forEach((si, pos) => u.setSeries(pos + 1, { show: !next.has(si) })));
    }
  };
  const npoints = cols.series.length * cols.xs.length;
  return html`<div class="chart-wrap">
    <div class="stats muted">Load time: ${Math.round(ms)}ms · Resolution: ${data.step}s · Result series: ${cols.series.length}
      ${renderMs !== null && html` · Rendered ${npoints} points in <span class="render-ms">${Math.round(renderMs)}</span>ms`}</div>
    ${cols.series.length === 0 && html`<div class="muted empty">Empty query result</div>`}
    <div class="chart" ref=${box}><div class="chart-tip" ref=${tip} hidden></div></div>
    <${Legend} series=${cols.series} hidden=${hidden} toggle=${toggle} dark=${theme} />
  </div>`;
}

// isolatedPoints marks samples with no neighbour, which a line cannot
// show: a series that just started, or one sample between gaps.
function isolatedPoints(u, si, show) {
  if (show) return null;
  const ys = u.data[si];
  const out = [];
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] !== null && (i === 0 || ys[i - 1] === null) && (i === ys.length - 1 || ys[i + 1] === null)) out.push(i);
  }
  return out.length ? out : null;
}

// showTip names the series nearest the cursor: with hundreds of series a
// full legend per position would be unreadable and slow.
function showTip(u, tip, series, drawn) {
  if (!tip) return;
  const { idx, left, top } = u.cursor;
  if (idx === null || idx === undefined || left < 0) { tip.hidden = true; return; }
  const yv = u.posToVal(top, 'y');
  let best = -1;
  let bestD = Infinity;
  u.pharosOrder.forEach((si, pos) => {
    if (!u.series[pos + 1].show) return;
    const v = drawn[si].ys[idx];
    if (v === null) return;
    const d = Math.abs(v - yv);
    if (d < bestD) { bestD = d; best = si; }
  });
  if (best < 0) { tip.hidden = true; return; }
  const s = series[best];
  const t = new Date(u.data[0][idx] * 1000);
  tip.textContent = '';
  const head = document.createElement('div');
  head.className = 'tip-time';
  head.textContent = t.toISOString().replace('T', ' ').replace('.000Z', 'Z');
  const name = document.createElement('div');
  name.className = 'tip-series';
  name.textContent = s.name;
  const val = document.createElement('div');
  val.className = 'tip-value';
  val.textContent = 'value: ' + s.ys[idx];
  tip.append(head, name, val);
  tip.hidden = false;
  const x = left + 12 + tip.offsetWidth > u.over.clientWidth ? left - tip.offsetWidth - 12 : left + 12;
  tip.style.transform = `translate(${x + u.over.offsetLeft}px, ${top + u.over.offsetTop + 12}px)`;
}

function Legend({ series, hidden, toggle, dark }) {
  const items = useMemo(() => series.map((s, i) => ({ ...s, i })), [series]);
  const { rows, pager } = usePager(items, 50);
  if (!series.length) return null;
  return html`<div class="legend">
    <div class="muted legend-hint">Click a series to show only it; Ctrl+click to toggle it.</div>
    <ul>${rows.map((s) => html`<li key=${s.i} class=${hidden.has(s.i) ? 'off' : ''}>
      <button type="button" class="legend-item" onClick=${(e) => toggle(s.i, !(e.ctrlKey || e.metaKey))}>
        <span class="swatch" style=${{ background: seriesColor(s.name, dark) }}></span>
        <span class="series-name">${s.name}</span></button></li>`)}</ul>
    ${pager}
  </div>`;
}
