/**
 * @module plugins/prometheus/dashboard.test
 * The Grafana dashboard in docs/grafana/gatehouse.json cannot drift from the metrics: it is a valid importable
 * dashboard (schema version, a DS_PROMETHEUS datasource input used by every panel and query), it has the panels
 * the docs promise, every metric its queries name is on a real gateway's /metrics after traffic through the
 * prometheus plugin, every label it filters, groups or labels by is on those metrics, and every query is valid
 * PromQL (`promtool check rules`, with Grafana's variables filled in).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { harness } from '../../../test/helpers/harness.js';
import { node } from '../../../test/helpers/upstream.js';
import { send } from '../../../test/helpers/http.js';
import { get, parsePrometheus, type Sample } from '../../../test/helpers/cli.js';
import { skipUnlessPresent } from '../../../test/helpers/required.js';

const { upstream, gateway, defer } = harness();

interface Target {
  datasource?: { type?: string; uid?: string };
  expr: string;
  legendFormat?: string;
  refId: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  schemaVersion: number;
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; datasource?: { uid?: string }; definition?: string; query?: { query?: string } | string }> };
}

const dashboard = JSON.parse(readFileSync(new URL('../../../../docs/grafana/gatehouse.json', import.meta.url), 'utf8')) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = panels.filter((p) => p.type !== 'row');
const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr, legend: t.legendFormat ?? '' })));
const variableQueries = dashboard.templating.list.filter((v) => v.type === 'query').map((v) => (typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '')));

const METRIC = /\bgatehouse_[a-z0-9_]+/g;
/** Labels Prometheus adds at scrape time, and the histogram bucket bound. */
const SCRAPE_LABELS = new Set(['job', 'instance', 'le']);

describe('Grafana dashboard (docs/grafana/gatehouse.json)', () => {
  let text: string;
  let samples: Sample[];

  before(async () => {
    // A plugin whose log hook always throws, so gatehouse_plugin_errors_total has a sample with its labels.
    const dir = mkdtempSync(join(tmpdir(), 'gh-dashboard-plugins-'));
    defer(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, 'log-fails.mjs'),
      "export default { name: 'log-fails', version: '1.0.0', priority: 7, description: 'Fails in the log phase.', schema: { type: 'object', description: 'none' }, create: () => ({ log() { throw new Error('boom'); } }) };\n",
    );
    const up = await upstream();
    const gw = await gateway(
      {
        upstreams: [{ id: 'app', nodes: [node(up.port)] }],
        consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } }],
        routes: [{ id: 'orders', paths: ['/orders/*'], upstreamId: 'app', plugins: { 'key-auth': {}, prometheus: {}, 'log-fails': {} } }],
      },
      { 'plugins.directory': dir },
      { statusServer: true },
    );
    for (let i = 0; i < 3; i++) assert.equal((await send(gw.http, '/orders/1', { headers: { apikey: 'alice-secret-key' } })).status, 200);
    assert.equal((await send(gw.http, '/orders/1')).status, 401);
    const end = Date.now() + 5000;
    for (;;) {
      text = (await get(gw.status!, '/metrics')).body;
      samples = parsePrometheus(text);
      const count = (name: string) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);
      const done = count('gatehouse_route_requests_total') === 4 && count('gatehouse_plugin_errors_total') === 4;
      if (done || Date.now() > end) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('is an importable dashboard with a DS_PROMETHEUS input used by every panel and query', () => {
    assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
    assert.deepEqual(
      dashboard.__inputs.map((i) => [i.name, i.type, i.pluginId]),
      [['DS_PROMETHEUS', 'datasource', 'prometheus']],
    );
    assert.ok(dashboard.title && dashboard.uid);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of queryPanels) {
      assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', p.title);
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has queries`);
      for (const t of p.targets!) {
        assert.equal(t.datasource?.uid, '${DS_PROMETHEUS}', p.title);
        assert.ok(t.expr.trim() !== '', p.title);
      }
    }
    for (const v of dashboard.templating.list) if (v.type === 'query') assert.equal(v.datasource?.uid, '${DS_PROMETHEUS}', v.name);
  });

  it('has the panels the docs promise', () => {
    const titles = queryPanels.map((p) => p.title);
    for (const t of [
      'Request rate by route',
      'Error ratio (5xx) by route',
      'Latency p50 / p95 / p99',
      'Upstream latency p95 by route',
      'Upstream latency p95 by node',
      'Bandwidth by route',
      'Requests by consumer',
      'Upstream node health',
      'Config reloads and refused changes',
      'Plugin errors',
    ]) {
      assert.ok(titles.includes(t), `panel "${t}" is missing: ${titles.join(', ')}`);
    }
    const quantiles = exprs.filter((e) => e.panel === 'Latency p50 / p95 / p99').map((e) => /histogram_quantile\((0\.\d+)/.exec(e.expr)?.[1]);
    assert.deepEqual(quantiles, ['0.5', '0.95', '0.99']);
  });

  it('every metric its queries name is on /metrics of a gateway with the prometheus plugin', () => {
    const exported = new Set(samples.map((s) => s.name));
    for (const m of text.matchAll(/^# TYPE (\S+) (counter|gauge)$/gm)) exported.add(m[1]!);
    const used = new Set([...exprs.map((e) => e.expr), ...variableQueries].flatMap((q) => q.match(METRIC) ?? []));
    assert.ok(used.size >= 10, [...used].join(', '));
    for (const name of used) assert.ok(exported.has(name), `the dashboard queries ${name}, which /metrics does not have:\n${text}`);
    // and the other way round: every family of the plugin is on the dashboard
    for (const family of ['gatehouse_route_requests_total', 'gatehouse_route_bandwidth_bytes_total', 'gatehouse_route_request_duration_seconds_bucket', 'gatehouse_upstream_node_response_seconds_bucket']) {
      assert.ok(used.has(family), `${family} is not on the dashboard`);
    }
  });

  it('every label it matches, groups or names in a legend is on the metrics of that query', () => {
    const labelsOf = new Map<string, Set<string>>();
    for (const s of samples) {
      const set = labelsOf.get(s.name) ?? new Set<string>();
      for (const k of Object.keys(s.labels)) set.add(k);
      labelsOf.set(s.name, set);
    }
    for (const { panel, expr, legend } of exprs) {
      const metrics = expr.match(METRIC) ?? [];
      const have = new Set(metrics.flatMap((m) => [...(labelsOf.get(m) ?? [])]));
      const used = new Set<string>();
      for (const sel of expr.matchAll(/\{([^}]*)\}/g)) for (const l of sel[1]!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)\s*"/g)) used.add(l[1]!);
      for (const by of expr.matchAll(/\bby \(([^)]*)\)/g)) for (const l of by[1]!.split(',')) used.add(l.trim());
      for (const l of legend.matchAll(/\{\{(\w+)\}\}/g)) used.add(l[1]!);
      for (const l of used) {
        if (SCRAPE_LABELS.has(l)) continue;
        assert.ok(have.has(l), `"${panel}" uses label ${l}, which ${metrics.join(', ')} do not have`);
      }
    }
  });

  it('every query is valid PromQL (promtool check rules)', (t) => {
    const why = skipUnlessPresent(spawnSync('promtool', ['--version']).status === 0 ? null : 'promtool is not installed (Debian package prometheus)');
    if (why) return t.skip(why);
    // Grafana's variables, filled in as Grafana would for "All" and a 1-minute step.
    const fill = (q: string) => q.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*').replaceAll('$route', '.*');
    const rules = exprs.map((e, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(fill(e.expr))}`).join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'gh-dashboard-'));
    try {
      const file = join(dir, 'rules.yml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
      // Not vacuous: a broken query is refused.
      writeFileSync(file, 'groups:\n  - name: dashboard\n    rules:\n      - record: dashboard:broken\n        expr: "sum by (route (rate(x[1m]))"\n');
      assert.notEqual(spawnSync('promtool', ['check', 'rules', file]).status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
