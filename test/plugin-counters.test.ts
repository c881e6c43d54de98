/**
 * @module test/plugin-counters
 * Plugins' own counters on /metrics (gatehouse_plugin_events_total): read from plugin state when metrics are
 * collected, summed across workers, and valid Prometheus text (promtool, where installed; always under CI).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { harness } from './helpers/harness.js';
import { node } from './helpers/upstream.js';
import { send } from './helpers/http.js';
import { get, metricValue, parsePrometheus } from './helpers/cli.js';
import { mergeDumps, renderPrometheus, type MetricsDump } from '../src/status/metrics.js';

const { upstream, gateway } = harness();

it('proxy-cache hits and misses and api-breaker openings appear as plugin events', async () => {
  const up = await upstream((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
    res.end('cached body');
  });
  const gw = await gateway(
    {
      upstreams: [{ id: 'u', nodes: [node(up.port)] }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'proxy-cache': {}, 'api-breaker': { consecutiveFailures: 3 } } }],
    },
    {},
    { statusServer: true },
  );
  assert.equal((await send(gw.http, '/a')).headers['x-cache-status'], 'MISS');
  assert.equal((await send(gw.http, '/a')).headers['x-cache-status'], 'HIT');
  assert.equal((await send(gw.http, '/a')).headers['x-cache-status'], 'HIT');
  assert.equal((await send(gw.http, '/b', { headers: { 'cache-control': 'no-cache' } })).headers['x-cache-status'], 'BYPASS');
  const m = await get(gw.status!, '/metrics');
  const samples = parsePrometheus(m.body);
  const ev = (event: string) => metricValue(samples, 'gatehouse_plugin_events_total', { plugin: 'proxy-cache', event, scope: 'route:r' });
  assert.deepEqual([ev('hit'), ev('miss'), ev('bypass'), ev('expired')], [2, 1, 1, 0]);
  assert.equal(metricValue(samples, 'gatehouse_plugin_events_total', { plugin: 'api-breaker', event: 'circuits_opened', route: 'r' }), 0);
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: m.body });
  if (promtool.error) {
    assert.notEqual(process.env.CI, 'true', 'promtool is required under CI');
  } else {
    assert.equal(promtool.status, 0, `promtool: ${promtool.stdout}${promtool.stderr}`);
  }
});

it('plugin counters add up across worker dumps, label sets apart', () => {
  const dump = (hits: number, scope: string): MetricsDump => ({
    routes: [],
    connections: 0,
    configReloads: 0,
    configErrors: 0,
    pluginCounters: [['proxy-cache', 'hit', JSON.stringify([['scope', scope]]), hits]],
  });
  const merged = mergeDumps([dump(2, 'route:a'), dump(3, 'route:a'), dump(7, 'route:b')]);
  assert.deepEqual(merged.pluginCounters, [
    ['proxy-cache', 'hit', '[["scope","route:a"]]', 5],
    ['proxy-cache', 'hit', '[["scope","route:b"]]', 7],
  ]);
  const text = renderPrometheus([merged]);
  assert.match(text, /gatehouse_plugin_events_total\{plugin="proxy-cache",event="hit",scope="route:a"\} 5/);
});
