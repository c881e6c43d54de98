/**
 * @module discovery/manager.test
 * The manager's rules, against a real etcd registry: one watch per spec key, first answers awaited before a
 * config is applied, last known nodes kept through an outage (one log line, errors counted, source down),
 * an empty answer honoured only after the grace period (the upstream's own or the settings'), watches stopped
 * when no upstream uses them; and the nodes view the control plane shows.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadSettings } from '../config/settings.js';
import { EtcdClient } from '../etcd/client.js';
import { DiscoveryManager } from './manager.js';
import { resolveDiscoverySettings } from './index.js';
import { instanceKey } from './etcd.js';
import { discoveryKeyOf, discoverySpecs } from './spec.js';
import { upstreamNodes } from './view.js';
import type { DiscoveredNode, DiscoveryLogger } from './types.js';
import type { UpstreamBody } from '../model/upstream.js';
import { etcdSkip, TestEtcd } from '../../test/helpers/etcd.js';
import { sleep, waitUntil } from '../../test/helpers/cli.js';

const skip = etcdSkip();
const prefix = '/mgr/registry';

interface Line {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function recordingLog(lines: Line[]): DiscoveryLogger {
  const at = (level: string) => (fields: object, msg?: string) => lines.push({ level, msg: msg ?? '', fields: fields as Record<string, unknown> });
  return { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') };
}

/** A config with named upstreams (the shape the manager reads). */
function config(upstreams: Array<Partial<UpstreamBody> & { id: string }>) {
  return { upstreams, services: [], routes: [] } as unknown as Parameters<DiscoveryManager['prepare']>[0];
}

const etcdUpstream = (id: string, service: string, extra: Partial<UpstreamBody> = {}) => ({ id, nodes: [], discovery: { type: 'etcd' as const, service }, ...extra });

describe('discovery manager', { skip }, () => {
  let etcd: TestEtcd;
  let client: EtcdClient;
  const managers: DiscoveryManager[] = [];
  const put = (service: string, id: string, host: string) => client.put(instanceKey(prefix, service, id), JSON.stringify({ host, port: 80 }));
  const del = (service: string, id: string) => client.delete(instanceKey(prefix, service, id));

  const manager = (lines: Line[], overrides: Record<string, unknown> = {}) => {
    const { settings } = loadSettings({ env: {}, overrides: { 'discovery.etcd.endpoints': [etcd.endpoint], 'discovery.etcd.prefix': prefix, ...overrides } });
    const m = new DiscoveryManager({ settings: resolveDiscoverySettings(settings), log: recordingLog(lines) });
    managers.push(m);
    return m;
  };

  before(async () => {
    etcd = await TestEtcd.start();
    client = new EtcdClient({ endpoints: [etcd.endpoint] });
  });
  after(async () => {
    for (const m of managers) await m.close();
    await client?.close();
    await etcd?.stop();
  });

  it('runs one watch per spec key, waits for first answers, and stops watches no upstream uses', async () => {
    await put('shared', 'a', '10.0.0.1');
    const lines: Line[] = [];
    const m = manager(lines);
    const forgotten: string[] = [];
    m.on('forget', (k) => forgotten.push(k));
    const cfg = config([etcdUpstream('u1', 'shared'), etcdUpstream('u2', 'shared', { scheme: 'https' }), etcdUpstream('u3', 'shared', { discovery: { type: 'etcd', service: 'shared', emptyGracePeriod: 5 } })]);
    assert.equal(discoverySpecs(cfg).size, 2, 'the same source is one key; an own grace period is another');
    await m.prepare(cfg);
    const key = discoveryKeyOf(etcdUpstream('x', 'shared'))!;
    assert.equal(key, 'etcd//shared');
    // prepare() resolved after the first answer: the nodes are there before any config uses them.
    assert.deepEqual(m.nodes(key)?.map((n) => n.host), ['10.0.0.1']);
    assert.equal(m.states().length, 2);
    m.retain(config([etcdUpstream('u1', 'shared')]));
    assert.deepEqual(forgotten, ['etcd//shared?emptyGracePeriod=5']);
    assert.equal(m.states().length, 1);
    m.retain(config([]));
    assert.deepEqual(m.states(), []);
    assert.equal(m.nodes(key), undefined);
  });

  it('keeps the last known nodes while the source is down: one error line, errors counted, source down', async () => {
    await put('steady', 'a', '10.1.0.1');
    await put('steady', 'b', '10.1.0.2');
    const lines: Line[] = [];
    const m = manager(lines);
    const events: DiscoveredNode[][] = [];
    m.on('nodes', (_k, n) => events.push(n));
    const cfg = config([etcdUpstream('u', 'steady')]);
    await m.prepare(cfg);
    const key = 'etcd//steady';
    assert.equal(m.nodes(key)?.length, 2);
    assert.deepEqual(m.metrics(), [{ key, source: 'etcd', service: 'steady', cluster: '', nodes: 2, up: true, errors: 0 }]);
    await etcd.stop();
    try {
      await waitUntil('the outage to be seen', 15_000, () => (m.state(key)?.up === false ? true : undefined));
      await waitUntil('a retry', 10_000, () => ((m.state(key)?.errors ?? 0) >= 2 ? true : undefined));
      assert.equal(m.nodes(key)?.length, 2, 'the last known nodes stay');
      assert.equal(events.length, 1, 'no node list is emitted during the outage');
      const state = m.state(key)!;
      assert.match(state.error!, /unavailable/);
      assert.ok(state.downSince);
      const metric = m.metrics()[0]!;
      assert.equal(metric.up, false);
      assert.equal(metric.nodes, 2);
      assert.ok(metric.errors >= 2);
      assert.deepEqual(m.health().ok, false);
      const errorLines = lines.filter((l) => l.level === 'error');
      assert.equal(errorLines.length, 1, 'one error line per outage, not one per retry');
      assert.equal(errorLines[0]!.msg, 'discovery source unreachable: keeping the last known nodes');
      assert.equal(errorLines[0]!.fields.kept, 2);
    } finally {
      await etcd.start();
    }
    await waitUntil('the source to be back', 15_000, () => (m.state(key)?.up === true ? true : undefined));
    assert.ok(lines.some((l) => l.level === 'info' && l.msg === 'discovery source reachable again'));
    assert.equal(m.health().ok, true);
  });

  it('honours an empty answer only after the grace period', async () => {
    await put('fading', 'a', '10.2.0.1');
    const lines: Line[] = [];
    const m = manager(lines, { 'discovery.emptyGracePeriod': 1500 });
    const key = 'etcd//fading';
    const events: Array<{ at: number; nodes: DiscoveredNode[] }> = [];
    m.on('nodes', (k, n) => {
      if (k === key) events.push({ at: Date.now(), nodes: n });
    });
    await m.prepare(config([etcdUpstream('u', 'fading')]));
    assert.equal(m.nodes(key)?.length, 1);

    // Empty for less than the grace period, then back: nothing changes for the upstream.
    await del('fading', 'a');
    await waitUntil('the grace period to start', 3000, () => (m.state(key)?.emptySince ? true : undefined));
    assert.equal(m.nodes(key)?.length, 1);
    await sleep(300);
    await put('fading', 'a', '10.2.0.1');
    await waitUntil('the grace period to end', 3000, () => (m.state(key)?.emptySince === undefined ? true : undefined));
    assert.equal(events.length, 1, 'an empty answer that did not last changed nothing');
    assert.ok(lines.some((l) => l.level === 'warn' && l.msg === 'discovery source answered with no nodes: keeping the last known nodes for the grace period'));

    // Empty for good: kept for the grace period, then dropped.
    const emptiedAt = Date.now();
    await del('fading', 'a');
    await waitUntil('the grace period to start', 3000, () => (m.state(key)?.emptySince ? true : undefined));
    await sleep(700);
    assert.equal(m.nodes(key)?.length, 1, 'still kept inside the grace period');
    await waitUntil('the empty list', 5000, () => (m.nodes(key)?.length === 0 ? true : undefined));
    const dropped = events[events.length - 1]!;
    assert.deepEqual(dropped.nodes, []);
    assert.ok(dropped.at - emptiedAt >= 1400, `dropped after ${dropped.at - emptiedAt} ms, before the 1500 ms grace period`);
    assert.ok(lines.some((l) => l.level === 'warn' && l.msg === 'discovery source still has no nodes after the grace period: the upstream has no discovered nodes now'));

    // An upstream's own grace period of 0: an empty answer applies at once.
    await put('instant', 'a', '10.3.0.1');
    const instant = { id: 'i', nodes: [], discovery: { type: 'etcd' as const, service: 'instant', emptyGracePeriod: 0 } };
    await m.prepare(config([instant]));
    const ikey = discoveryKeyOf(instant)!;
    assert.equal(m.nodes(ikey)?.length, 1);
    await del('instant', 'a');
    await waitUntil('the empty list', 3000, () => (m.nodes(ikey)?.length === 0 ? true : undefined));
  });

  it('reports a source that cannot be followed at all without holding up the config', async () => {
    const lines: Line[] = [];
    const m = manager(lines, { 'discovery.startWait': 10_000 });
    const started = Date.now();
    const up = { id: 'c', nodes: [], discovery: { type: 'consul' as const, service: 'x', cluster: 'nowhere' } };
    await m.prepare(config([up]));
    assert.ok(Date.now() - started < 2000, 'a watch that failed at once does not wait for startWait');
    const state = m.state(discoveryKeyOf(up)!)!;
    assert.equal(state.up, false);
    assert.equal(state.nodes, null);
    assert.ok(state.error);
    assert.equal(lines.filter((l) => l.level === 'error').length, 1);
    assert.equal(lines[0]!.msg, 'discovery source unreachable: no nodes known for it yet');
  });

  it('shows an upstream\'s nodes with their source, from the manager or a one-off lookup', async () => {
    await put('viewed', 'a', '10.5.0.1');
    const lines: Line[] = [];
    const m = manager(lines);
    const content = { nodes: [{ host: '10.5.0.9', port: 80, weight: 2 }, { host: '10.5.0.1', port: 80, weight: 1 }], discovery: { type: 'etcd' as const, service: 'viewed' } };
    await put('viewed', 'b', '10.5.0.2');
    // Not watched by the manager yet (a draft, or a control plane without gateways): a one-off lookup.
    const once = await upstreamNodes(content, { manager: m, log: recordingLog(lines) });
    assert.deepEqual(
      once.nodes.map((n) => [n.host, n.source, n.weight]),
      [
        ['10.5.0.9', 'static', 2],
        ['10.5.0.1', 'static', 1],
        ['10.5.0.2', 'etcd', 1],
      ],
    );
    assert.equal(once.discovery?.up, true);
    assert.equal(m.states().length, 0, 'the one-off lookup leaves the manager alone');
    await m.prepare(config([{ id: 'v', ...content }]));
    await put('viewed', 'c', '10.5.0.3');
    await waitUntil('the manager to see the new instance', 3000, () => (m.nodes('etcd//viewed')?.length === 3 ? true : undefined));
    const watched = await upstreamNodes(content, { manager: m, log: recordingLog(lines) });
    assert.deepEqual(watched.nodes.filter((n) => n.source === 'etcd').map((n) => n.host), ['10.5.0.2', '10.5.0.3']);
    assert.equal(watched.discovery?.key, 'etcd//viewed');
    const plain = await upstreamNodes({ nodes: [{ host: 'h', port: 1 }] }, { log: recordingLog(lines) });
    assert.deepEqual(plain, { nodes: [{ host: 'h', port: 1, weight: 1, source: 'static' }], discovery: null });
  });
});
