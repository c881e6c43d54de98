/**
 * @module test/discovery-consul.test
 * The consul and consul-kv discovery sources against the Consul stand-in (test/helpers/consul.ts, written
 * from Consul's published HTTP API docs, since no Consul server can be installed where tests run): the
 * stand-in's own protocol first (so the backends are tested against something checked), then each backend:
 * the first list, changes delivered by blocking queries, no polling storm while idle, passing instances only,
 * tags, metadata, ACL tokens (missing, wrong, revoked), two clusters with their own tokens and TLS at once,
 * an outage and the recovery, an index that goes backwards, malformed KV entries, and upsync's `down`.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConsulBackend, createConsulKvBackend, type ConsulClusterConfig } from '../src/discovery/consul/index.js';
import type { DiscoveredNode, DiscoveryBackend, DiscoveryLogger, DiscoverySpec } from '../src/discovery/types.js';
import { ConsulStandIn, consulToken } from './helpers/consul.js';
import { etcdTestCerts } from './helpers/etcd.js';
import { sleep, waitUntil } from './helpers/cli.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers

interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function testLog(): { log: DiscoveryLogger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { log: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') }, lines };
}

const addrs = (nodes: readonly DiscoveredNode[] | undefined) => (nodes ?? []).map((n) => `${n.host}:${n.port}`).sort();

/** A watch whose reports are collected. */
function follow(backend: DiscoveryBackend, spec: Omit<DiscoverySpec, 'type'> & { type?: DiscoverySpec['type'] }) {
  const lists: DiscoveredNode[][] = [];
  const errors: Error[] = [];
  const watch = backend.watch({ type: backend.type, ...spec } as DiscoverySpec, {
    onNodes: (nodes) => void lists.push(nodes),
    onError: (err) => void errors.push(err),
  });
  return {
    lists,
    errors,
    watch,
    last: () => lists[lists.length - 1],
    /** Resolves once the last reported list has exactly these addresses. */
    until: (want: string[], what = `nodes ${want.join(', ') || '(none)'}`, ms = 5000) =>
      waitUntil(what, ms, () => (lists.length > 0 && JSON.stringify(addrs(lists[lists.length - 1])) === JSON.stringify([...want].sort()) ? true : undefined)),
    /** Resolves with the first error (after `from` errors) matching `re`. */
    error: (re: RegExp, from = 0, ms = 8000) => waitUntil(`an error matching ${re}`, ms, () => errors.slice(from).find((e) => re.test(e.message))),
  };
}

function cluster(c: ConsulStandIn, name: string, extra: Partial<ConsulClusterConfig> = {}): ConsulClusterConfig {
  return { name, address: c.address, wait: 30_000, timeout: 2000, kvPrefix: 'upstreams', ...extra };
}

interface Instance {
  node: string;
  address: string;
  id: string;
  service?: string;
  port: number;
  tags?: string[];
  meta?: Record<string, string>;
  serviceAddress?: string;
  weights?: { Passing: number; Warning: number };
  status?: 'passing' | 'warning' | 'critical';
}

/** Register an instance with one service check, as a registration tool would through the catalog API. */
async function registerInstance(c: ConsulStandIn, i: Instance): Promise<void> {
  await c.register({
    Node: i.node,
    Address: i.address,
    Service: {
      ID: i.id,
      Service: i.service ?? 'web',
      Tags: i.tags ?? [],
      Address: i.serviceAddress ?? '',
      Meta: i.meta ?? {},
      Port: i.port,
      ...(i.weights ? { Weights: i.weights } : {}),
    },
    Checks: [{ CheckID: `service:${i.id}`, Name: 'http probe', ServiceID: i.id, Status: i.status ?? 'passing' }],
  });
}

async function setCheck(c: ConsulStandIn, node: string, id: string, status: 'passing' | 'warning' | 'critical'): Promise<void> {
  await c.register({ Node: node, SkipNodeUpdate: true, Check: { CheckID: `service:${id}`, Name: 'http probe', ServiceID: id, Status: status } });
}

const standIns: ConsulStandIn[] = [];
const backends: DiscoveryBackend[] = [];
async function standIn(opts: Parameters<typeof ConsulStandIn.start>[0] = {}): Promise<ConsulStandIn> {
  const c = await ConsulStandIn.start(opts);
  standIns.push(c);
  return c;
}
function keep<T extends DiscoveryBackend>(b: T): T {
  backends.push(b);
  return b;
}
after(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(standIns.map((c) => c.close()));
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

// ---------------------------------------------------------------------------------------------------------

describe('the Consul stand-in speaks the documented API', () => {
  it('health: passing and repeated tag filters, blocking on index with wait, the index headers', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80, tags: ['a', 'b'] });
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 80, tags: ['a'] });
    await registerInstance(c, { node: 'n3', address: '10.0.0.3', id: 'web-3', port: 80, tags: ['a', 'b'], status: 'warning' });
    const all = await c.api('GET', '/v1/health/service/web');
    assert.equal(all.status, 200);
    assert.equal(all.headers['x-consul-knownleader'], 'true');
    assert.equal(all.headers['x-consul-lastcontact'], '0');
    assert.equal(JSON.parse(all.body).length, 3);
    const index = Number(all.headers['x-consul-index']);
    assert.ok(index >= 1);
    const passing = JSON.parse((await c.api('GET', '/v1/health/service/web?passing=true')).body) as Array<{ Service: { ID: string } }>;
    assert.deepEqual(passing.map((e) => e.Service.ID), ['web-1', 'web-2']);
    const both = JSON.parse((await c.api('GET', '/v1/health/service/web?tag=a&tag=b')).body) as Array<{ Service: { ID: string } }>;
    assert.deepEqual(both.map((e) => e.Service.ID), ['web-1', 'web-3']);
    // A write to another service does not wake a query on this one; the wait ends it with the same index.
    const t0 = Date.now();
    const pending = c.api('GET', `/v1/health/service/web?index=${index}&wait=300ms`);
    await sleep(50);
    await registerInstance(c, { node: 'n9', address: '10.0.0.9', id: 'api-1', service: 'api', port: 81 });
    const timedOut = await pending;
    assert.ok(Date.now() - t0 >= 300, 'held for the wait');
    assert.equal(Number(timedOut.headers['x-consul-index']), index);
    // A change to this one does.
    const woken = c.api('GET', `/v1/health/service/web?index=${index}&wait=1m`);
    await sleep(50);
    await setCheck(c, 'n3', 'web-3', 'passing');
    const r = await woken;
    assert.ok(Number(r.headers['x-consul-index']) > index);
    assert.equal((await c.api('GET', '/v1/health/service/web?wait=5x&index=1')).status, 400);
    assert.equal((await c.api('GET', '/v1/health/service/web?passing=maybe')).body, 'Invalid value for ?passing');
    assert.equal((await c.api('GET', '/v1/health/service/web?dc=elsewhere')).body, 'No path to datacenter');
    assert.equal((await c.api('GET', '/v1/health/service/web?filter=Service.Port==80')).status, 400);
  });

  it('kv: base64 values with their indexes, recurse, 404 with X-Consul-Index, tombstones, cas', async () => {
    const c = await standIn();
    const empty = await c.api('GET', '/v1/kv/upstreams/web/?recurse');
    assert.equal(empty.status, 404);
    assert.equal(empty.headers['x-consul-index'], '1');
    await c.kvPut('upstreams/web/10.0.0.1:80', '{"weight":2}');
    await c.kvPut('upstreams/web/10.0.0.2:80');
    const list = await c.api('GET', '/v1/kv/upstreams/web/?recurse=true');
    const entries = JSON.parse(list.body) as Array<Record<string, unknown>>;
    assert.deepEqual(Object.keys(entries[0]!), ['LockIndex', 'Key', 'Flags', 'Value', 'CreateIndex', 'ModifyIndex']);
    assert.equal(entries[0]!.Value, b64('{"weight":2}'));
    assert.equal(entries[1]!.Value, null);
    assert.equal(Number(list.headers['x-consul-index']), entries[1]!.ModifyIndex);
    await c.kvDelete('upstreams/web/10.0.0.2:80');
    const afterDelete = await c.api('GET', '/v1/kv/upstreams/web/?recurse');
    assert.equal(Number(afterDelete.headers['x-consul-index']), c.index, 'the tombstone keeps the prefix index moving forward');
    const cas0 = await c.api('PUT', '/v1/kv/upstreams/web/10.0.0.1:80?cas=0', 'x');
    assert.equal(cas0.body, 'false');
    assert.equal((await c.api('GET', '/v1/kv/upstreams/web/10.0.0.1:80?raw')).body, '{"weight":2}');
  });

  it('acl: unknown token 403 "ACL not found", anonymous sees nothing, a limited token is told results were filtered', async () => {
    const limited = consulToken();
    const c = await standIn({ acl: { tokens: { [limited]: { service: ['web'] } } } });
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const unknown = await c.api('GET', '/v1/health/service/web', undefined, consulToken());
    assert.equal(unknown.status, 403);
    assert.equal(unknown.body, 'ACL not found');
    const anonymous = await c.api('GET', '/v1/health/service/web', undefined, null);
    assert.equal(anonymous.status, 200);
    assert.equal(anonymous.body, '[]');
    assert.equal(anonymous.headers['x-consul-results-filtered-by-acls'], undefined);
    assert.equal(anonymous.headers['x-consul-default-acl-policy'], 'deny');
    const partial = await c.api('GET', '/v1/health/service/web', undefined, limited);
    assert.equal(partial.body, '[]', 'service:read without node:read');
    assert.equal(partial.headers['x-consul-results-filtered-by-acls'], 'true');
    const denied = await c.api('PUT', '/v1/kv/x', 'v', limited);
    assert.equal(denied.status, 403);
    assert.match(denied.body, /^Permission denied/);
  });
});

describe('consul discovery', () => {
  it('reports the passing instances with their address, weight and metadata', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 8080, tags: ['v2'], meta: { zone: 'eu-1', version: '2.1' }, weights: { Passing: 5, Warning: 1 } });
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 8081, serviceAddress: '10.9.0.2' });
    await registerInstance(c, { node: 'n3', address: '10.0.0.3', id: 'web-3', port: 8082, status: 'critical' });
    await registerInstance(c, { node: 'n4', address: '10.0.0.4', id: 'web-4', port: 8083, status: 'warning' });
    const b = keep(createConsulBackend([cluster(c, 'dc1')], testLog().log));
    const f = follow(b, { service: 'web' });
    await f.until(['10.0.0.1:8080', '10.9.0.2:8081']);
    const one = f.last()!.find((n) => n.port === 8080)!;
    assert.equal(one.weight, 5);
    assert.deepEqual(one.metadata, { zone: 'eu-1', version: '2.1', tags: ['v2'], node: 'n1', datacenter: 'dc1', serviceId: 'web-1' });
    assert.equal(f.last()!.find((n) => n.port === 8081)!.weight, 1);
    assert.deepEqual(f.errors, []);
    const first = c.requestsTo('GET', '/v1/health/service/web')[0]!;
    assert.equal(first.query.get('passing'), 'true');
    assert.equal(first.query.has('index'), false, 'the first read does not block');
  });

  it('delivers changes through blocking queries, long before the wait is over', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const b = keep(createConsulBackend([cluster(c, 'dc1', { wait: 30_000 })], testLog().log));
    const f = follow(b, { service: 'web' });
    await f.until(['10.0.0.1:80']);
    await waitUntil('a blocked query', 3000, () => (c.blockedQueries === 1 ? true : undefined));
    // With a 30 s wait, only a blocking query woken by the change gets it this soon.
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 80 });
    await f.until(['10.0.0.1:80', '10.0.0.2:80'], 'the new instance', 3000);
    await setCheck(c, 'n1', 'web-1', 'critical');
    await f.until(['10.0.0.2:80'], 'the failing instance gone', 3000);
    await setCheck(c, 'n1', 'web-1', 'passing');
    await f.until(['10.0.0.1:80', '10.0.0.2:80'], 'the instance back', 3000);
    await c.deregister({ Node: 'n2', ServiceID: 'web-2' });
    await f.until(['10.0.0.1:80'], 'the deregistered instance gone', 3000);
    const blocking = c.requestsTo('GET', '/v1/health/service/web').filter((r) => r.query.has('index'));
    assert.ok(blocking.length >= 4);
    for (const r of blocking) {
      const wait = /^(\d+)ms$/.exec(r.query.get('wait') ?? '');
      assert.ok(wait && Number(wait[1]) <= 30_000 && Number(wait[1]) >= 30_000 - 30_000 / 16, `wait ${r.query.get('wait')}`);
      assert.ok(Number(r.query.get('index')) >= 1);
    }
    assert.deepEqual(f.errors, []);
  });

  it('sees a service registered after the watch started, and one whose last instance left', async () => {
    const c = await standIn();
    const b = keep(createConsulBackend([cluster(c, 'dc1', { wait: 30_000 })], testLog().log));
    const f = follow(b, { service: 'api' });
    await f.until([]);
    await waitUntil('a blocked query', 3000, () => (c.blockedQueries === 1 ? true : undefined));
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'api-1', service: 'api', port: 80 });
    await f.until(['10.0.0.1:80'], 'the first instance', 3000);
    await c.deregister({ Node: 'n1' });
    await f.until([], 'no instance', 3000);
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'api-2', service: 'api', port: 80 });
    await f.until(['10.0.0.2:80'], 'an instance again', 3000);
    assert.deepEqual(f.errors, []);
  });

  it('sends about one request per wait while nothing changes (no polling storm)', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const b = keep(createConsulBackend([cluster(c, 'dc1', { wait: 1000 })], testLog().log));
    const f = follow(b, { service: 'web' });
    await f.until(['10.0.0.1:80']);
    const since = Date.now();
    await sleep(4000);
    const n = c.requestsTo('GET', '/v1/health/service/web', since).length;
    // A 1 s wait (less up to 1/16 on our side, plus up to 1/16 of Consul's jitter): about 4 in 4 s.
    assert.ok(n >= 2 && n <= 6, `${n} requests in 4 s of a 1 s wait`);
    assert.equal(f.lists.length, 1, 'an unchanged list is not reported again');
  });

  it('follows only the instances carrying every tag asked for', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80, tags: ['prod', 'eu'] });
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 80, tags: ['prod'] });
    await registerInstance(c, { node: 'n3', address: '10.0.0.3', id: 'web-3', port: 80, tags: ['eu'] });
    const b = keep(createConsulBackend([cluster(c, 'dc1')], testLog().log));
    const f = follow(b, { service: 'web', tags: ['eu', 'prod'] });
    await f.until(['10.0.0.1:80']);
    assert.deepEqual(c.requestsTo('GET', '/v1/health/service/web')[0]!.query.getAll('tag'), ['eu', 'prod']);
    await registerInstance(c, { node: 'n3', address: '10.0.0.3', id: 'web-3', port: 80, tags: ['eu', 'prod', 'canary'] });
    await f.until(['10.0.0.1:80', '10.0.0.3:80'], 'the instance that gained the tag', 3000);
  });

  it('ACL tokens: a missing or wrong token is an error, never an empty list; a revoked one keeps the nodes', async () => {
    const good = consulToken();
    const limited = consulToken();
    const c = await standIn({ acl: { tokens: { [good]: 'management', [limited]: { service: ['web'] } } } });
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const wrongToken = consulToken();
    const { log, lines } = testLog();
    const b = keep(
      createConsulBackend(
        [cluster(c, 'good', { token: good }), cluster(c, 'wrong', { token: wrongToken }), cluster(c, 'none'), cluster(c, 'limited', { token: limited })],
        log,
      ),
    );
    const ok = follow(b, { service: 'web', cluster: 'good' });
    const wrong = follow(b, { service: 'web', cluster: 'wrong' });
    const none = follow(b, { service: 'web', cluster: 'none' });
    const part = follow(b, { service: 'web', cluster: 'limited' });
    await ok.until(['10.0.0.1:80']);
    assert.match((await wrong.error(/HTTP 403: ACL not found/)).message, /consul cluster "wrong" \(http:\/\/127\.0\.0\.1:\d+\)/);
    await none.error(/no token is configured and Consul denies by default/);
    await part.error(/left out by ACLs.*node:read/);
    for (const f of [wrong, none, part]) assert.deepEqual(f.lists, [], 'no list reported from a refused read');
    // Each cluster's reads carry its own token in X-Consul-Token, and the one without a token sends none.
    const sent = new Set(c.requestsTo('GET', '/v1/health/service/web').map((r) => r.token ?? '(none)'));
    assert.deepEqual([...sent].sort(), [good, wrongToken, '(none)', limited].sort());
    // The token is revoked while the watch runs: errors, and no empty list that would drop the nodes.
    const reported = ok.lists.length;
    c.deleteToken(good);
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 80 }); // wakes the blocked query
    await ok.error(/HTTP 403: ACL not found/);
    assert.equal(ok.lists.length, reported);
    c.setToken(good, 'management');
    await ok.until(['10.0.0.1:80', '10.0.0.2:80'], 'nodes again once the token is back');
    assert.ok(!lines.some((l) => JSON.stringify(l).includes(good)), 'the token is never logged');
  });

  it('follows two clusters at once, each with its own token, one over TLS in another datacenter', async () => {
    const certs = etcdTestCerts();
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-consul-tls-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, certs.ca);
    const eastToken = consulToken();
    const westToken = consulToken();
    const east = await standIn({ acl: { tokens: { [eastToken]: 'management' } } });
    const west = await standIn({ datacenter: 'dc2', tls: { cert: certs.serverCert, key: certs.serverKey }, acl: { tokens: { [westToken]: 'management' } } });
    await registerInstance(east, { node: 'e1', address: '10.1.0.1', id: 'web-1', port: 80 });
    await registerInstance(west, { node: 'w1', address: '10.2.0.1', id: 'web-1', port: 80 });
    await registerInstance(west, { node: 'w2', address: '10.2.0.2', id: 'web-2', port: 80 });
    assert.ok(west.address.startsWith('https://'));
    const b = keep(
      createConsulBackend(
        {
          consul: [
            cluster(east, 'east', { token: eastToken }),
            cluster(west, 'west', { token: westToken, datacenter: 'dc2', tls: { ca: caFile, rejectUnauthorized: true } }),
            cluster(west, 'unverified', { token: westToken, datacenter: 'dc2' }),
            cluster(west, 'wrong-dc', { token: westToken, datacenter: 'dc3', tls: { ca: caFile, rejectUnauthorized: true } }),
          ],
        },
        testLog().log,
      ),
    );
    const e = follow(b, { service: 'web' }); // no cluster named: the first one
    const w = follow(b, { service: 'web', cluster: 'west' });
    const u = follow(b, { service: 'web', cluster: 'unverified' });
    const d = follow(b, { service: 'web', cluster: 'wrong-dc' });
    await e.until(['10.1.0.1:80']);
    await w.until(['10.2.0.1:80', '10.2.0.2:80']);
    assert.equal(w.last()![0]!.metadata!.datacenter, 'dc2');
    await u.error(/certificate/);
    await d.error(/HTTP 500: No path to datacenter/);
    assert.ok(east.requestsTo('GET', '/v1/health/').every((r) => r.token === eastToken && !r.query.has('dc')));
    assert.ok(west.requestsTo('GET', '/v1/health/').filter((r) => r.query.get('dc') === 'dc2').every((r) => r.token === westToken));
    await registerInstance(west, { node: 'w3', address: '10.2.0.3', id: 'web-3', port: 80 });
    await w.until(['10.2.0.1:80', '10.2.0.2:80', '10.2.0.3:80'], 'a change in the second cluster', 3000);
    assert.deepEqual(addrs(e.last()), ['10.1.0.1:80']);
  });

  it('an outage is an error that keeps the nodes; the nodes are reported again once Consul is back', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const { log, lines } = testLog();
    const b = keep(createConsulBackend([cluster(c, 'dc1')], log));
    const f = follow(b, { service: 'web' });
    await f.until(['10.0.0.1:80']);
    const reported = f.lists.length;
    await c.stop();
    await f.error(/consul cluster "dc1"/);
    await waitUntil('a few failed retries', 8000, () => (f.errors.length >= 2 ? true : undefined));
    assert.equal(f.lists.length, reported, 'nothing reported while Consul is down');
    await c.start();
    await waitUntil('the nodes again', 10_000, () => (f.lists.length > reported ? true : undefined));
    assert.deepEqual(addrs(f.last()), ['10.0.0.1:80']);
    assert.ok(lines.some((l) => l.msg === 'consul answers again'));
    // And it blocks again: a change arrives at once.
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 80 });
    await f.until(['10.0.0.1:80', '10.0.0.2:80'], 'a change after the outage', 3000);
  });

  it('restarts its blocking loop from index 0 when the index goes backwards (a restored snapshot)', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const snap = c.snapshot();
    const { log, lines } = testLog();
    const b = keep(createConsulBackend([cluster(c, 'dc1')], log));
    const f = follow(b, { service: 'web' });
    await f.until(['10.0.0.1:80']);
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 80 });
    await registerInstance(c, { node: 'n3', address: '10.0.0.3', id: 'web-3', port: 80 });
    await f.until(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
    await waitUntil('a blocked query', 3000, () => (c.blockedQueries === 1 ? true : undefined));
    const highest = Math.max(...c.requestsTo('GET', '/v1/health/service/web').map((r) => Number(r.query.get('index') ?? 0)));
    const since = Date.now();
    c.restore(snap); // the blocked query answers at once, with the older (lower) index
    await f.until(['10.0.0.1:80'], 'the restored list', 3000);
    assert.ok(c.index < highest);
    await waitUntil('a read without index after the restore', 3000, () => (c.requestsTo('GET', '/v1/health/service/web', since).some((r) => !r.query.has('index')) ? true : undefined));
    assert.ok(lines.some((l) => /index went backwards/.test(l.msg ?? '')));
    // New writes carry indexes below the one the client had: it must follow them all the same, at once.
    await registerInstance(c, { node: 'n4', address: '10.0.0.4', id: 'web-4', port: 80 });
    assert.ok(c.index < highest);
    await f.until(['10.0.0.1:80', '10.0.0.4:80'], 'a change after the restore', 3000);
    assert.deepEqual(f.errors, []);
  });

  it('after a restart with a lower index, reads the restored state at once and follows it', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const snap = c.snapshot();
    const b = keep(createConsulBackend([cluster(c, 'dc1')], testLog().log));
    const f = follow(b, { service: 'web' });
    for (let i = 2; i <= 4; i++) await registerInstance(c, { node: `n${i}`, address: `10.0.0.${i}`, id: `web-${i}`, port: 80 });
    await f.until(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80']);
    // The restart cuts the blocked query: the next read starts over from index 0 and sees the older state.
    await waitUntil('a blocked query', 3000, () => (c.blockedQueries === 1 ? true : undefined));
    await c.stop();
    c.restore(snap);
    await c.start();
    await f.until(['10.0.0.1:80'], 'the restored list', 10_000);
    await registerInstance(c, { node: 'n5', address: '10.0.0.5', id: 'web-5', port: 80 });
    await f.until(['10.0.0.1:80', '10.0.0.5:80'], 'a change after the restart', 3000);
  });

  it('refuses a spec naming an unknown cluster, or any spec without clusters, with a clear message', async () => {
    const c = await standIn();
    const b = keep(createConsulBackend([cluster(c, 'east'), cluster(c, 'west')], testLog().log));
    assert.throws(() => b.watch({ type: 'consul', service: 'web', cluster: 'north' }, { onNodes() {}, onError() {} }), /no Consul cluster named "north" in discovery\.consul \(known: "east", "west"\)/);
    assert.throws(() => b.watch({ type: 'consul-kv', service: 'web' }, { onNodes() {}, onError() {} }), /cannot follow a consul-kv source/);
    const none = keep(createConsulBackend({ consul: [] }, testLog().log));
    assert.throws(() => none.watch({ type: 'consul', service: 'web' }, { onNodes() {}, onError() {} }), /no Consul cluster is configured \(settings: discovery\.consul\)/);
    const badTls = keep(createConsulBackend([cluster(c, 'x', { address: 'https://127.0.0.1:1', tls: { ca: join(tmpdir(), 'no-such-ca.pem'), rejectUnauthorized: true } })], testLog().log));
    assert.throws(() => badTls.watch({ type: 'consul', service: 'web' }, { onNodes() {}, onError() {} }), /discovery\.consul "x": tls\.ca: cannot read .*ENOENT/);
  });

  it('close() ends every watch and its connections; no handler is called after', async () => {
    const c = await standIn();
    await registerInstance(c, { node: 'n1', address: '10.0.0.1', id: 'web-1', port: 80 });
    const b = createConsulBackend([cluster(c, 'dc1')], testLog().log);
    const f1 = follow(b, { service: 'web' });
    const f2 = follow(b, { service: 'web', tags: ['x'] });
    await f1.until(['10.0.0.1:80']);
    await f2.until([]);
    await waitUntil('two blocked queries', 3000, () => (c.blockedQueries === 2 ? true : undefined));
    f2.watch.close();
    await waitUntil('one blocked query', 3000, () => (c.blockedQueries === 1 ? true : undefined));
    await b.close();
    await waitUntil('no blocked query', 3000, () => (c.blockedQueries === 0 ? true : undefined));
    const seen = f1.lists.length + f1.errors.length;
    await registerInstance(c, { node: 'n2', address: '10.0.0.2', id: 'web-2', port: 80 });
    await sleep(300);
    assert.equal(f1.lists.length + f1.errors.length, seen);
    assert.throws(() => b.watch({ type: 'consul', service: 'web' }, { onNodes() {}, onError() {} }), /closed/);
  });
});

describe('consul-kv discovery', () => {
  it('reads upsync-style entries: defaults for an empty value, weights, down nodes out of rotation', async () => {
    const c = await standIn();
    await c.kvPut('upstreams/web/', ''); // a folder key, as the Consul UI makes
    await c.kvPut('upstreams/web/10.0.0.1:80', '');
    await c.kvPut('upstreams/web/10.0.0.2:80', '{"weight":3,"max_fails":1,"fail_timeout":5,"zone":"eu-1"}');
    await c.kvPut('upstreams/web/10.0.0.3:80', '{"weight":2,"down":1}');
    await c.kvPut('upstreams/web-2/10.0.0.9:80', ''); // a sibling folder sharing the name's start
    const b = keep(createConsulKvBackend([cluster(c, 'dc1')], testLog().log));
    const f = follow(b, { service: 'web' });
    await f.until(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
    const byPort = new Map(f.last()!.map((n) => [n.host, n]));
    assert.deepEqual(byPort.get('10.0.0.1'), {
      host: '10.0.0.1',
      port: 80,
      weight: 1,
      metadata: { key: 'upstreams/web/10.0.0.1:80', max_fails: 2, fail_timeout: 10, down: false, backup: false },
    });
    assert.deepEqual(byPort.get('10.0.0.2')!.metadata, { zone: 'eu-1', key: 'upstreams/web/10.0.0.2:80', max_fails: 1, fail_timeout: 5, down: false, backup: false });
    assert.equal(byPort.get('10.0.0.2')!.weight, 3);
    assert.equal(byPort.get('10.0.0.3')!.weight, 0);
    assert.equal(byPort.get('10.0.0.3')!.metadata!.down, true);
    const first = c.requestsTo('GET', '/v1/kv/')[0]!;
    assert.equal(first.path, '/v1/kv/upstreams/web/');
    assert.equal(first.query.get('recurse'), 'true');
    assert.deepEqual(f.errors, []);
  });

  it('follows puts and deletes through blocking queries, down to an empty folder', async () => {
    const c = await standIn();
    await c.kvPut('upstreams/web/10.0.0.1:80', '{"weight":1}');
    const b = keep(createConsulKvBackend([cluster(c, 'dc1', { wait: 30_000 })], testLog().log));
    const f = follow(b, { service: 'web' });
    const g = follow(b, { service: 'later' });
    await f.until(['10.0.0.1:80']);
    await g.until([]);
    await waitUntil('two blocked queries', 3000, () => (c.blockedQueries === 2 ? true : undefined));
    await c.kvPut('upstreams/later/10.0.0.9:80');
    await g.until(['10.0.0.9:80'], 'a node in a folder that did not exist', 3000);
    await waitUntil('two blocked queries', 3000, () => (c.blockedQueries === 2 ? true : undefined));
    await c.kvPut('upstreams/web/10.0.0.2:80', '{"weight":5}');
    await f.until(['10.0.0.1:80', '10.0.0.2:80'], 'the new node', 3000);
    await c.kvPut('upstreams/web/10.0.0.2:80', '{"weight":5,"down":1}');
    await waitUntil('the node marked down', 3000, () => (f.last()!.find((n) => n.host === '10.0.0.2')?.weight === 0 ? true : undefined));
    await c.kvDelete('upstreams/web/10.0.0.1:80');
    await f.until(['10.0.0.2:80'], 'the deleted node gone', 3000);
    await c.kvDelete('upstreams/web/', { recurse: true });
    await f.until([], 'an empty folder (404) reported as no nodes', 3000);
    await c.kvPut('upstreams/web/10.0.0.7:80');
    await f.until(['10.0.0.7:80'], 'a node in the folder again', 3000);
    assert.deepEqual(f.errors, []);
  });

  it('skips malformed entries with one warning each and keeps the rest of the list', async () => {
    const c = await standIn();
    await c.kvPut('upstreams/web/10.0.0.1:80', '{"weight":2}');
    await c.kvPut('upstreams/web/not-a-node', '{"weight":2}');
    await c.kvPut('upstreams/web/10.0.0.2:80', '{"weight": 2');
    await c.kvPut('upstreams/web/10.0.0.3:80', '{"weight":"heavy"}');
    await c.kvPut('upstreams/web/10.0.0.4:80', '{"down":"yes"}');
    await c.kvPut('upstreams/web/10.0.0.5:70000', '');
    const { log, lines } = testLog();
    const b = keep(createConsulKvBackend([cluster(c, 'dc1', { wait: 1000 })], log));
    const f = follow(b, { service: 'web' });
    await f.until(['10.0.0.1:80']);
    await sleep(2500); // a few more answers with the same entries
    const warned = lines.filter((l) => l.level === 'warn' && l.msg === 'consul KV entry left out');
    assert.equal(warned.length, 5, JSON.stringify(warned.map((l) => l.obj.problem)));
    assert.ok(warned.some((l) => /10\.0\.0\.3:80.*"weight"/.test(String(l.obj.problem))));
    assert.deepEqual(f.errors, []);
    await c.kvPut('upstreams/web/10.0.0.3:80', '{"weight":4}');
    await f.until(['10.0.0.1:80', '10.0.0.3:80'], 'the corrected entry', 3000);
  });

  it('uses the cluster kvPrefix and token; a token that may not read the folder is an error', async () => {
    const good = consulToken();
    const other = consulToken();
    const c = await standIn({ acl: { tokens: { [good]: { key: ['lb/'] }, [other]: { key: ['elsewhere/'] } } } });
    await c.kvPut('lb/web/10.0.0.1:80', '');
    const b = keep(createConsulKvBackend([cluster(c, 'a', { token: good, kvPrefix: 'lb' }), cluster(c, 'b', { token: other, kvPrefix: 'lb' })], testLog().log));
    const ok = follow(b, { service: 'web', cluster: 'a' });
    const denied = follow(b, { service: 'web', cluster: 'b' });
    await ok.until(['10.0.0.1:80']);
    await denied.error(/left out by ACLs.*key:read on "lb\/web\/"/);
    assert.deepEqual(denied.lists, []);
  });

  it('never spins on an index of 0 from a server that answers one (versions before the index sanity fix)', async () => {
    const c = await standIn({ legacyZeroIndex: true });
    const b = keep(createConsulKvBackend([cluster(c, 'dc1', { wait: 2000 })], testLog().log));
    const f = follow(b, { service: 'web' });
    await f.until([]);
    const start = c.requestsTo('GET', '/v1/kv/')[0]!.at;
    assert.equal(c.requestsTo('GET', '/v1/kv/')[0]!.query.has('index'), false);
    await sleep(3000);
    const reads = c.requestsTo('GET', '/v1/kv/').filter((r) => r.at < start + 3000);
    assert.ok(reads.length <= 3, `${reads.length} reads in 3 s with a 2 s wait`);
    assert.ok(reads.slice(1).every((r) => r.query.get('index') === '1'), 'blocks on index 1, never sends 0');
    await c.kvPut('upstreams/web/10.0.0.1:80');
    await f.until(['10.0.0.1:80'], 'the first node', 3000);
  });
});
