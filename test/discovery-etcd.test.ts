/**
 * @module test/discovery-etcd.test
 * An upstream whose nodes come from an etcd registry, through a real multi-worker `gatehouse gateway`: the
 * primary watches etcd and hands node lists to every worker. Under a bounded load, an instance written to
 * etcd gets traffic from every worker within seconds and a deleted one gets none, with no failed request; a
 * worker that is replaced starts with the current nodes; a config reload keeps them; the primary's health
 * checks probe discovered nodes; an etcd outage keeps the last nodes; an emptied service is honoured only
 * after the grace period.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { EtcdClient } from '../src/etcd/client.js';
import { instanceKey } from '../src/discovery/etcd.js';
import { etcdSkip, TestEtcd } from './helpers/etcd.js';
import { childPids, Gatehouse, metricValue, sleep, waitUntil, type LogLine } from './helpers/cli.js';
import { closedPort, startUpstream, type TestUpstream } from './helpers/upstream.js';

const skip = etcdSkip();
const PREFIX = '/it/registry';

interface Result {
  status: number;
  body: string;
}

/** One GET on a new connection, so requests spread over the workers. */
function get(port: number, path: string): Promise<Result> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e) => resolve({ status: -1, body: e.message }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', (e) => resolve({ status: -1, body: e.message }));
    req.end();
  });
}

/** Bounded load: `concurrency` loops of sequential requests until stop(), `max` requests or `maxMs`. */
function startLoad(port: number, path: string, opts: { concurrency: number; max: number; maxMs: number }) {
  const results: Result[] = [];
  let stopped = false;
  const deadline = Date.now() + opts.maxMs;
  const loop = async () => {
    while (!stopped && results.length < opts.max && Date.now() < deadline) results.push(await get(port, path));
  };
  const done = Promise.all(Array.from({ length: opts.concurrency }, loop));
  return {
    results,
    async stop(): Promise<Result[]> {
      stopped = true;
      await done;
      return results;
    },
  };
}

function assertNoFailures(results: Result[], min: number): void {
  const failed = results.filter((r) => r.status !== 200);
  assert.equal(failed.length, 0, `${failed.length} of ${results.length} requests failed: ${JSON.stringify(failed.slice(0, 3))}`);
  assert.ok(results.length >= min, `only ${results.length} requests were made`);
}

const named = (name: string) => startUpstream((req, res) => {
  req.resume();
  res.end(name);
});

describe('etcd discovery through a multi-worker gateway', { skip }, () => {
  let etcd: TestEtcd;
  let client: EtcdClient;
  let gw: Gatehouse;
  const ups: Record<string, TestUpstream> = {};
  const count = (name: string) => ups[name]!.seen.length;
  const nodeKey = (name: string) => `127.0.0.1:${ups[name]!.port}`;
  const register = (service: string, id: string, port: number, extra: Record<string, unknown> = {}) =>
    client.put(instanceKey(PREFIX, service, id), JSON.stringify({ host: '127.0.0.1', port, ...extra }));
  const deregister = (service: string, id: string) => client.delete(instanceKey(PREFIX, service, id));
  const accessLines = (since: number, pred: (l: LogLine) => boolean) => gw.logs.slice(since).filter((l) => l.type === 'access' && pred(l));

  const yaml = (extraRoute = '') => `
upstreams:
  - id: api
    retries: 0
    discovery: { type: etcd, service: api }
  - id: probed
    discovery: { type: etcd, service: probed }
    healthCheck:
      active: { type: tcp, interval: 200, timeout: 500, unhealthyThreshold: 1, healthyThreshold: 1 }
routes:
  - { id: api, paths: ["/api/*"], upstreamId: api }
  - { id: probed, paths: ["/probed"], upstreamId: probed }
${extraRoute}`;

  before(async () => {
    for (const name of ['a', 'b', 'c', 'p']) ups[name] = await named(name);
    etcd = await TestEtcd.start();
    client = new EtcdClient({ endpoints: [etcd.endpoint] });
    await register('api', 'a', ups.a!.port, { metadata: { zone: 'z1' } });
    await register('api', 'b', ups.b!.port);
  });
  after(async () => {
    await gw?.stop();
    await client?.close();
    await etcd?.stop();
    for (const u of Object.values(ups)) await u.close();
  });

  const start = async (t: TestContext) => {
    gw = await Gatehouse.start(t, yaml(), {
      workers: 2,
      env: {
        GATEHOUSE_DISCOVERY_ETCD_ENDPOINTS: etcd.endpoint,
        GATEHOUSE_DISCOVERY_ETCD_PREFIX: PREFIX,
        GATEHOUSE_DISCOVERY_EMPTY_GRACE_PERIOD: '3000',
      },
    });
  };

  it('runs the scenario on one gateway', async (t) => {
    await start(t);
    await t.test('hands node changes to every worker: new nodes get traffic within seconds, removed ones none, no request fails', async () => {
      // The first config waited for etcd's first answer: requests succeed from the first one on.
      for (let i = 0; i < 10; i++) assert.equal((await get(gw.proxyPort, '/api/x')).status, 200);
      const mark = gw.mark();
      const load = startLoad(gw.proxyPort, '/api/x', { concurrency: 4, max: 30_000, maxMs: 45_000 });
      try {
        await waitUntil('traffic on a and b', 5000, () => (count('a') > 20 && count('b') > 20 ? true : undefined));
        await register('api', 'c', ups.c!.port);
        const added = Date.now();
        await waitUntil('traffic on c from both workers', 8000, () => {
          const workers = new Set(accessLines(mark, (l) => l.upstream === nodeKey('c')).map((l) => l.worker));
          return workers.size === 2 ? true : undefined;
        });
        assert.ok(Date.now() - added < 5000, `c got traffic from both workers ${Date.now() - added} ms after it registered`);

        await deregister('api', 'a');
        const { line } = await gw.waitLog('the primary sees a leave', (l) => l.msg === 'discovered nodes changed' && Array.isArray(l.removed) && (l.removed as string[]).includes(nodeKey('a')), { since: mark });
        assert.equal(line.watch, 'etcd//api');
        // The workers get the list over IPC right after the primary logs it.
        await sleep(300);
        const countAtRemoval = count('a');
        const before = load.results.length;
        await waitUntil('more traffic after the removal', 15_000, () => (load.results.length > before + 300 ? true : undefined));
        assert.equal(count('a'), countAtRemoval, 'a got requests after it left the registry');
      } finally {
        await load.stop();
      }
      assertNoFailures(load.results, 300);
    });

    await t.test('gives a replaced worker the current nodes before its first config', async () => {
      const workers = await childPids(gw.pid);
      assert.equal(workers.length, 2);
      const mark = gw.mark();
      process.kill(workers[0]!, 'SIGKILL');
      const { line } = await gw.waitLog('the new worker listening', (l) => l.msg === 'gateway worker listening', { since: mark, timeoutMs: 15_000 });
      const results: Result[] = [];
      for (let i = 0; i < 1000 && accessLines(mark, (l) => l.worker === line.worker).length < 20; i++) results.push(await get(gw.proxyPort, '/api/x'));
      const served = accessLines(mark, (l) => l.worker === line.worker);
      assert.ok(served.length >= 20, `the new worker served ${served.length} requests`);
      assert.ok(served.every((l) => l.status === 200 && (l.upstream === nodeKey('b') || l.upstream === nodeKey('c'))), JSON.stringify(served.slice(0, 3)));
      assertNoFailures(results, 20);
    });

    await t.test('keeps the discovered nodes through a config reload', async () => {
      const mark = gw.mark();
      const load = startLoad(gw.proxyPort, '/api/x', { concurrency: 4, max: 10_000, maxMs: 20_000 });
      try {
        await sleep(200);
        await gw.replaceFile(yaml('  - { id: other, paths: ["/other"], upstreamId: api }'));
        await gw.waitLog('the reload', (l) => l.msg === 'config reloaded', { since: mark });
        await waitUntil('/other served', 5000, async () => ((await get(gw.proxyPort, '/other')).status === 200 ? true : undefined));
        await sleep(300);
      } finally {
        await load.stop();
      }
      assertNoFailures(load.results, 100);
    });

    await t.test('probes discovered nodes with the health checks', async () => {
      const dead = await closedPort();
      await register('probed', 'live', ups.p!.port);
      await register('probed', 'dead', dead);
      const gauge = async (node: string) => metricValue((await gw.metrics()).samples, 'gatehouse_upstream_node_healthy', { upstream: 'upstream:probed', node });
      await waitUntil('the dead node to be marked down', 8000, async () => ((await gauge(`127.0.0.1:${dead}`)) === 0 ? true : undefined));
      assert.equal(await gauge(nodeKey('p')), 1);
      const before = count('p');
      for (let i = 0; i < 20; i++) assert.equal((await get(gw.proxyPort, '/probed')).status, 200);
      assert.equal(count('p') - before, 20, 'every request went to the healthy node');
    });

    await t.test('keeps the last nodes through an etcd outage, with a log line and the metrics saying so', async () => {
      const mark = gw.mark();
      const labels = { source: 'etcd', cluster: '', service: 'api', watch: 'etcd//api' };
      await etcd.stop();
      try {
        await gw.waitLog('the outage', (l) => l.msg === 'discovery source unreachable: keeping the last known nodes' && l.watch === 'etcd//api', { since: mark, timeoutMs: 20_000 });
        const results: Result[] = [];
        for (let i = 0; i < 40; i++) results.push(await get(gw.proxyPort, '/api/x'));
        assertNoFailures(results, 40);
        const { samples } = await gw.metrics();
        assert.equal(metricValue(samples, 'gatehouse_discovery_source_up', labels), 0);
        assert.equal(metricValue(samples, 'gatehouse_discovery_nodes', labels), 2);
        assert.ok((metricValue(samples, 'gatehouse_discovery_errors_total', labels) ?? 0) >= 1);
        const ready = await gw.readyz();
        assert.equal(ready.status, 200, 'a discovery outage does not make the gateway unready');
        assert.equal(ready.body.status, 'degraded');
        assert.equal((ready.body.discovery as { ok: boolean }).ok, false);
      } finally {
        await etcd.start();
      }
      await waitUntil('the source to be back', 20_000, async () => (metricValue((await gw.metrics()).samples, 'gatehouse_discovery_source_up', labels) === 1 ? true : undefined));
    });

    await t.test('honours an emptied service only after the grace period', async () => {
      const mark = gw.mark();
      await deregister('api', 'b');
      await deregister('api', 'c');
      const { index } = await gw.waitLog('the grace period', (l) => l.msg === 'discovery source answered with no nodes: keeping the last known nodes for the grace period', { since: mark });
      const startedAt = Date.now();
      while (Date.now() - startedAt < 1500) assert.equal((await get(gw.proxyPort, '/api/x')).status, 200);
      await gw.waitLog('the nodes dropped', (l) => l.msg === 'discovery source still has no nodes after the grace period: the upstream has no discovered nodes now', { since: index, timeoutMs: 5000 });
      await waitUntil('503 from every worker', 5000, async () => {
        for (let i = 0; i < 10; i++) if ((await get(gw.proxyPort, '/api/x')).status !== 503) return undefined;
        return true;
      });
      await register('api', 'b', ups.b!.port);
      await waitUntil('service again', 5000, async () => {
        for (let i = 0; i < 10; i++) if ((await get(gw.proxyPort, '/api/x')).status !== 200) return undefined;
        return true;
      });
    });
  });
});
