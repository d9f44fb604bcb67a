// PromQL vocabulary for the expression box's autocomplete: the stable
// functions of the Prometheus release Pharos embeds, its aggregations and
// keywords. Experimental functions are left out: they need a feature flag.
export const functions = [
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh',
  'avg_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh',
  'count_over_time', 'days_in_month', 'day_of_month', 'day_of_week', 'day_of_year', 'deg',
  'delta', 'deriv', 'exp', 'first_over_time', 'floor', 'histogram_avg', 'histogram_count',
  'histogram_sum', 'histogram_stddev', 'histogram_stdvar', 'histogram_fraction',
  'histogram_quantile', 'histogram_quantiles', 'hour', 'idelta', 'increase', 'integral',
  'irate', 'label_replace', 'label_join', 'last_over_time', 'ln', 'log10', 'log2',
  'max_over_time', 'min_over_time', 'minute', 'month', 'pi', 'predict_linear',
  'present_over_time', 'quantile_over_time', 'rad', 'rate', 'resets', 'round', 'scalar', 'sgn',
  'sin', 'sinh', 'sort', 'sort_desc', 'sort_by_label', 'sort_by_label_desc', 'sqrt',
  'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh', 'time', 'timestamp',
  'vector', 'year',
];

export const aggregations = [
  'avg', 'bottomk', 'count', 'count_values', 'group', 'limitk', 'limit_ratio', 'max', 'min',
  'quantile', 'stddev', 'stdvar', 'sum', 'topk',
];

export const keywords = ['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'atan2'];

// context tells what the word before the caret is: a label name inside a
// selector's braces, a label value inside quotes, or an expression word.
export function completionContext(text) {
  let depth = 0;
  let inString = null;
  let lastOpen = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === inString) inString = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') inString = c;
    else if (c === '{') { depth++; lastOpen = i; }
    else if (c === '}') depth = Math.max(0, depth - 1);
  }
  const word = (/[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(text) || [''])[0];
  if (inString) {
    const m = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*["'`]([^"'`]*)$/.exec(text);
    return m ? { kind: 'labelValue', label: m[1], word: m[3], metric: selectorMetric(text, lastOpen) } : { kind: 'none', word: '' };
  }
  if (depth > 0) {
    // After an operator a value must be quoted; only names are completed.
    if (/(=~|!~|!=|=)\s*[a-zA-Z0-9_:]*$/.test(text)) return { kind: 'none', word: '' };
    return { kind: 'labelName', word, metric: selectorMetric(text, lastOpen) };
  }
  // by (...) / without (...) / on (...) / ignoring (...) take label names.
  if (/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(text)) return { kind: 'labelName', word, metric: '' };
  return { kind: 'expr', word };
}

function selectorMetric(text, open) {
  if (open < 0) return '';
  const m = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(text.slice(0, open));
  return m ? m[1] : '';
}

// rank orders candidates: prefix matches first (shortest first), then
// substring matches; at most limit are returned.
export function rank(candidates, word, limit = 50) {
  if (!word) return [];
  const w = word.toLowerCase();
  const prefix = [];
  const infix = [];
  for (const c of candidates) {
    const l = c.text.toLowerCase();
    if (l === w) continue;
    if (l.startsWith(w)) prefix.push(c);
    else if (infix.length < limit && l.includes(w)) infix.push(c);
  }
  prefix.sort((a, b) => a.text.length - b.text.length || (a.text < b.text ? -1 : 1));
  return prefix.concat(infix).slice(0, limit);
}
