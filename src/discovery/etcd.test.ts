/**
 * @module discovery/etcd.test
 * The etcd backend against a real etcd: the documented key layout (<prefix>/<service>/<instance id> = JSON),
 * changes seen as they are written, leases that take a dead instance out, malformed keys ignored, tags, and an
 * outage reported as errors until etcd is back. Also the instance parser and the endpoint default.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadSettings } from '../config/settings.js';
import { createLogger } from '../core/logger.js';
import { EtcdClient } from '../etcd/client.js';
import { DiscoveryBackends, resolveDiscoverySettings } from './index.js';
import { instanceKey, parseInstance } from './etcd.js';
import type { DiscoverySpec, DiscoveryWatch } from './types.js';
import { etcdSkip, TestEtcd } from '../../test/helpers/etcd.js';
import { waitUntil } from '../../test/helpers/cli.js';
import { addrs, Recorder } from '../../test/helpers/discovery.js';

const skip = etcdSkip();

it('parses an instance value: host and port required, weight defaults to 1, other fields join the metadata', () => {
  assert.deepEqual(parseInstance('{"host":"10.0.0.5","port":8080}'), { host: '10.0.0.5', port: 8080, weight: 1 });
  assert.deepEqual(parseInstance('{"host":"h","port":1,"weight":0,"zone":"a","metadata":{"version":"2","zone":"b"}}'), {
    host: 'h',
    port: 1,
    weight: 0,
    metadata: { zone: 'b', version: '2' },
  });
  assert.equal(parseInstance('not json'), 'is not JSON');
  assert.equal(parseInstance('[1]'), 'is not a JSON object');
  assert.match(parseInstance('{"port":80}') as string, /host/);
  assert.match(parseInstance('{"host":"h","port":70000}') as string, /port/);
  assert.match(parseInstance('{"host":"h","port":80,"weight":-1}') as string, /weight/);
  assert.match(parseInstance('{"host":"h","port":80,"metadata":[]}') as string, /metadata/);
});

it('reads the etcd of configProvider when discovery.etcd names no endpoints', () => {
  const { settings } = loadSettings({
    env: { GATEHOUSE_CONFIG_PROVIDER_PASSWORD: 'pw' },
    overrides: { 'configProvider.type': 'etcd', 'configProvider.endpoints': ['http://127.0.0.1:2379'], 'configProvider.username': 'gw' },
  });
  const d = resolveDiscoverySettings(settings);
  assert.deepEqual(d.etcd.endpoints, ['http://127.0.0.1:2379']);
  assert.equal(d.etcd.username, 'gw');
  assert.equal(d.etcd.password, 'pw');
  assert.equal(d.etcd.prefix, '/gatehouse/registry');
  const own = resolveDiscoverySettings(
    loadSettings({ env: {}, overrides: { 'configProvider.type': 'etcd', 'configProvider.endpoints': ['http://a:1'], 'discovery.etcd.endpoints': ['http://b:2'] } }).settings,
  );
  assert.deepEqual(own.etcd.endpoints, ['http://b:2']);
  assert.equal(own.etcd.username, undefined);
  const none = new DiscoveryBackends(resolveDiscoverySettings(loadSettings({ env: {} }).settings), createLogger({ level: 'silent' }));
  assert.throws(() => none.get('etcd'), /discovery\.etcd\.endpoints is not set/);
});

describe('etcd discovery backend', { skip }, () => {
  let etcd: TestEtcd;
  let client: EtcdClient;
  let backends: DiscoveryBackends;
  const watches: DiscoveryWatch[] = [];
  const warnings: Array<Record<string, unknown>> = [];
  const prefix = '/test/registry';
  const put = (service: string, id: string, value: unknown, lease?: string) =>
    client.put(instanceKey(prefix, service, id), typeof value === 'string' ? value : JSON.stringify(value), lease ? { lease } : {});

  before(async () => {
    etcd = await TestEtcd.start();
    client = new EtcdClient({ endpoints: [etcd.endpoint] });
    const { settings } = loadSettings({ env: {}, overrides: { 'discovery.etcd.endpoints': [etcd.endpoint], 'discovery.etcd.prefix': `${prefix}/` } });
    const log = {
      info: () => {},
      debug: () => {},
      error: () => {},
      warn: (o: object) => warnings.push(o as Record<string, unknown>),
    };
    backends = new DiscoveryBackends(resolveDiscoverySettings(settings), log);
  });
  after(async () => {
    for (const w of watches) w.close();
    await backends?.close();
    await client?.close();
    await etcd?.stop();
  });

  const start = (spec: Omit<DiscoverySpec, 'type'>): Recorder => {
    const r = new Recorder();
    r.watch = backends.get('etcd').watch({ type: 'etcd', ...spec }, r.handlers);
    watches.push(r.watch);
    return r;
  };

  it('reads the instances under <prefix>/<service>/ and follows puts and deletes', async () => {
    await put('users', 'i-1', { host: '10.0.0.1', port: 8080, metadata: { zone: 'a', version: '1.2.0' } });
    await put('users', 'i-2', { host: '10.0.0.2', port: 8080, weight: 3 });
    await put('users-other', 'x', { host: '10.9.9.9', port: 1 });
    await put('users', 'i-3/extra', { host: '10.0.0.99', port: 1 });
    const r = start({ service: 'users' });
    const first = await r.until('first read', () => true);
    assert.deepEqual(first, [
      { host: '10.0.0.1', port: 8080, weight: 1, metadata: { zone: 'a', version: '1.2.0' } },
      { host: '10.0.0.2', port: 8080, weight: 3 },
    ]);
    await put('users', 'i-3', { host: '10.0.0.3', port: 9090, env: 'prod' });
    const added = await r.until('the added instance', (n) => n.length === 3);
    assert.deepEqual(added[2], { host: '10.0.0.3', port: 9090, weight: 1, metadata: { env: 'prod' } });
    await client.delete(instanceKey(prefix, 'users', 'i-1'));
    assert.deepEqual(addrs(await r.until('the removal', (n) => n.length === 2)), ['10.0.0.2:8080', '10.0.0.3:9090']);
    await put('users', 'i-2', { host: '10.0.0.2', port: 8080, weight: 5 });
    assert.equal((await r.until('the new weight', (n) => n[0]!.weight === 5))[0]!.host, '10.0.0.2');
    assert.equal(r.errors.length, 0);
  });

  it('ignores a malformed value (logged once) and keeps following', async () => {
    await put('orders', 'good', { host: '10.1.0.1', port: 80 });
    await put('orders', 'bad', '{"host": "10.1.0.2"}');
    const r = start({ service: 'orders' });
    assert.deepEqual(addrs(await r.until('first read', () => true)), ['10.1.0.1:80']);
    await waitUntil('the warning', 2000, () => (warnings.some((w) => w.key === instanceKey(prefix, 'orders', 'bad')) ? true : undefined));
    const warning = warnings.find((w) => w.key === instanceKey(prefix, 'orders', 'bad'))!;
    assert.match(String(warning.problem), /port/);
    await put('orders', 'bad', { host: '10.1.0.2', port: 80 });
    assert.deepEqual(addrs(await r.until('the fixed instance', (n) => n.length === 2)), ['10.1.0.1:80', '10.1.0.2:80']);
  });

  it('keeps only instances carrying every tag of the spec (metadata.tags)', async () => {
    await put('tagged', 'a', { host: '10.2.0.1', port: 80, metadata: { tags: ['blue', 'v2'] } });
    await put('tagged', 'b', { host: '10.2.0.2', port: 80, metadata: { tags: ['green', 'v2'] } });
    await put('tagged', 'c', { host: '10.2.0.3', port: 80 });
    const r = start({ service: 'tagged', tags: ['v2', 'blue'] });
    assert.deepEqual(addrs(await r.until('first read', () => true)), ['10.2.0.1:80']);
  });

  it('drops an instance whose lease expires (an instance that died)', async () => {
    const lease = await client.grantLease(2);
    await put('leased', 'short-lived', { host: '10.3.0.1', port: 80 }, lease.id);
    await put('leased', 'stays', { host: '10.3.0.2', port: 80 });
    const r = start({ service: 'leased' });
    assert.equal((await r.until('first read', () => true)).length, 2);
    assert.deepEqual(addrs(await r.until('the expired lease', (n) => n.length === 1, 8000)), ['10.3.0.2:80']);
  });

  it('reports an outage as errors and reads everything again once etcd is back', async () => {
    await put('outage', 'a', { host: '10.4.0.1', port: 80 });
    const r = start({ service: 'outage' });
    assert.equal((await r.until('first read', () => true)).length, 1);
    const reports = r.nodes.length;
    await etcd.stop();
    try {
      await waitUntil('a reported failure', 15_000, () => (r.errors.length > 0 ? true : undefined));
      assert.match(r.errors[0]!.message, /etcd registry \/test\/registry\/outage\/: unavailable/);
      assert.equal(r.nodes.length, reports, 'an outage reports no node list');
    } finally {
      await etcd.start();
    }
    await put('outage', 'b', { host: '10.4.0.2', port: 80 });
    assert.deepEqual(addrs(await r.until('the instance added after the outage', (n) => n.length === 2, 15_000)), ['10.4.0.1:80', '10.4.0.2:80']);
  });
});
