// The /rules page: every rule group with its rules' health and timing,
// from /api/v1/rules.
import { html, useAPI, promAPI, ErrorBox, Loading, ago, humanizeDuration, Section } from './lib.js';
import { ruleYAML } from './alerts.js';

export function RulesPage() {
  const q = useAPI(() => promAPI('rules'), [], 15000);
  const groups = (q.data && q.data.groups) || [];
  return html`<${Section} title="Rules">
    <${ErrorBox} error=${q.error} />
    ${q.loading && !q.data && html`<${Loading} />`}
    ${q.data && groups.length === 0 && html`<p class="muted empty">No rule groups loaded.</p>`}
    ${groups.map((g) => html`<div class="group" key=${g.file + '/' + g.name}>
      <h2 class="group-name">${g.name} <span class="muted small">${g.file} · every ${humanizeDuration(g.interval)} · last evaluation ${ago(g.lastEvaluation)}${g.evaluationTime !== undefined ? ', took ' + humanizeDuration(g.evaluationTime) : ''}</span></h2>
      <table class="data rules-table">
        <thead><tr><th>Rule</th><th>State</th><th>Error</th><th>Last evaluation</th><th>Evaluation time</th></tr></thead>
        <tbody>${(g.rules || []).map((r, i) => html`<tr key=${i}>
          <td><pre class="rule-def">${ruleYAML(r)}</pre></td>
          <td><span class=${'badge h-' + r.health}>${(r.health || '').toUpperCase()}</span></td>
          <td class="error-text">${r.lastError || ''}</td>
          <td>${ago(r.lastEvaluation)}</td>
          <td>${humanizeDuration(r.evaluationTime)}</td>
        </tr>`)}</tbody>
      </table>
    </div>`)}
  </${Section}>`;
}
