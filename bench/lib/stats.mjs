// Small statistics and formatting helpers.
export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
export function min(xs) { const v = xs.filter(Number.isFinite); return v.length ? Math.min(...v) : null; }
export function max(xs) { const v = xs.filter(Number.isFinite); return v.length ? Math.max(...v) : null; }

export function fmtInt(x) {
  return x === null || x === undefined ? '-' : Math.round(x).toLocaleString('en-US');
}
/** rps rounded to 100 like the baselines, e.g. 20,100. */
export function fmtRps(x) {
  return x === null || x === undefined ? '-' : (Math.round(x / 100) * 100).toLocaleString('en-US');
}
export function fmtMs(us) {
  if (us === null || us === undefined) return '-';
  const ms = us / 1000;
  return `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;
}
export function fmtRatio(x) {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}`;
}
export function fmtUs(x) {
  return x === null || x === undefined ? '-' : `${x < 10 ? x.toFixed(1) : Math.round(x)}`;
}

/** Plain-text table with aligned columns. */
export function textTable(header, rows) {
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => String(c ?? '').padEnd(w[i])).join('  ').trimEnd();
  return [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export function mdTable(header, rows) {
  const esc = (c) => String(c ?? '').replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
