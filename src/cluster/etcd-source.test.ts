/**
 * @module cluster/etcd-source.test
 * The etcd config source against a real etcd: load at one revision, watch applying each change whole, a watch
 * whose start revision was compacted resyncing without losing anything, an invalid change refused while the
 * last good config stays, and a start while etcd is down served from the saved config. Also the publisher
 * reconciling etcd with the store.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { EtcdClient } from '../etcd/client.js';
import { builtinRegistry } from '../plugins/index.js';
import type { DeclarativeConfig } from '../model/declarative.js';
import { SqliteStore } from '../store/sqlite.js';
import { EtcdConfigSource, entityKey } from './etcd-source.js';
import { EtcdPublisher } from './publisher.js';
import { etcdSkip, TestEtcd } from '../../test/helpers/etcd.js';
import { waitUntil } from '../../test/helpers/cli.js';

const plugins = builtinRegistry();
const log = pino({ level: 'silent' });
const nodes = [{ host: '127.0.0.1', port: 9001 }];

describe('etcd config source (real etcd)', { skip: etcdSkip() }, () => {
  it('loads at one revision, applies watched changes whole, resyncs after compaction, keeps the last good config', async (t) => {
    const etcd = await TestEtcd.start();
    t.after(() => etcd.stop());
    const dir = mkdtempSync(join(tmpdir(), 'gh-etcd-src-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const client = new EtcdClient({ endpoints: [etcd.endpoint] });
    t.after(() => client.close());
    const p = '/t1';
    await client.put(entityKey(p, 'shop', 'upstreams', 'u'), JSON.stringify({ nodes }));
    await client.put(entityKey(p, 'shop', 'routes', 'r1'), JSON.stringify({ paths: ['/r1'], upstreamId: 'u' }));
    await client.put(`${p}/config/not-a-valid-key`, '{}');

    const src = new EtcdConfigSource(client, p, plugins, join(dir, 'cache.json'), log);
    t.after(() => src.close());
    const first = await src.load();
    assert.ok(first.ok);
    assert.deepEqual(first.config.routes.map((r) => r.id), ['shop.r1']);
    assert.equal(statSync(join(dir, 'cache.json')).mode & 0o777, 0o600, 'the saved config is private');

    // Changes made before the watch starts, then compacted away: the watch from the loaded revision fails
    // with "compacted" and the source reads everything again.
    await client.put(entityKey(p, 'shop', 'routes', 'r2'), JSON.stringify({ paths: ['/r2'], upstreamId: 'u' }));
    const { revision } = await client.put(entityKey(p, 'shop', 'routes', 'r3'), JSON.stringify({ paths: ['/r3'], upstreamId: 'u' }));
    await etcd.compact(revision);
    const configs: DeclarativeConfig[] = [];
    src.on('config', (c) => configs.push(c));
    src.watch();
    await waitUntil('resynced after compaction', 5000, () => (configs.at(-1)?.routes.length === 3 ? true : undefined));
    assert.deepEqual(configs.at(-1)!.routes.map((r) => r.id).sort(), ['shop.r1', 'shop.r2', 'shop.r3']);

    // A transaction arrives as one config.
    const before = configs.length;
    await client.batch([{ key: entityKey(p, 'shop', 'routes', 'r4'), value: JSON.stringify({ paths: ['/r4'], upstreamId: 'u' }) }], [entityKey(p, 'shop', 'routes', 'r1')]);
    await waitUntil('the batch applied', 5000, () => (configs.length > before ? true : undefined));
    assert.equal(configs.length, before + 1, 'one config for the whole batch');
    assert.deepEqual(configs.at(-1)!.routes.map((r) => r.id).sort(), ['shop.r2', 'shop.r3', 'shop.r4']);

    // An invalid change is refused; the last good config stays.
    const problems: unknown[] = [];
    src.on('invalid', (pr) => problems.push(pr));
    await client.put(entityKey(p, 'shop', 'routes', 'bad'), JSON.stringify({ paths: ['/x'], upstreamId: 'missing' }));
    await waitUntil('refused', 5000, () => (problems.length ? true : undefined));
    assert.equal(configs.length, before + 1);
    assert.equal(src.health().ok, true);
  });

  it('started while etcd is down: serves the saved config, reports degraded, catches up when etcd is back', async (t) => {
    const etcd = await TestEtcd.start();
    t.after(() => etcd.stop());
    const dir = mkdtempSync(join(tmpdir(), 'gh-etcd-src-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const client = new EtcdClient({ endpoints: [etcd.endpoint], timeout: 500 });
    t.after(() => client.close());
    const p = '/t2';
    await client.put(entityKey(p, 'shop', 'upstreams', 'u'), JSON.stringify({ nodes }));
    await client.put(entityKey(p, 'shop', 'routes', 'r1'), JSON.stringify({ paths: ['/r1'], upstreamId: 'u' }));
    const cache = join(dir, 'cache.json');
    const a = new EtcdConfigSource(client, p, plugins, cache, log);
    assert.ok((await a.load()).ok);
    a.close();

    await etcd.stop();
    const b = new EtcdConfigSource(client, p, plugins, cache, log);
    t.after(() => b.close());
    const saved = await b.load();
    assert.ok(saved.ok, 'served from the saved config');
    assert.deepEqual(saved.config.routes.map((r) => r.id), ['shop.r1']);
    assert.equal(b.health().ok, false);
    const none = new EtcdConfigSource(client, p, plugins, join(dir, 'none.json'), log);
    const refused = await none.load();
    assert.ok(!refused.ok && /no config was saved/.test(refused.problems[0]!.message));

    const configs: DeclarativeConfig[] = [];
    b.on('config', (c) => configs.push(c));
    b.watch();
    await etcd.start();
    await client.put(entityKey(p, 'shop', 'routes', 'r2'), JSON.stringify({ paths: ['/r2'], upstreamId: 'u' }));
    await waitUntil('caught up', 15_000, () => (configs.at(-1)?.routes.length === 2 ? true : undefined), 50);
    await waitUntil('healthy', 5000, () => (b.health().ok ? true : undefined));
  });

  it('the publisher makes etcd hold exactly the store\'s live entities', async (t) => {
    const etcd = await TestEtcd.start();
    t.after(() => etcd.stop());
    const dir = mkdtempSync(join(tmpdir(), 'gh-etcd-pub-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const client = new EtcdClient({ endpoints: [etcd.endpoint] });
    t.after(() => client.close());
    const store = new SqliteStore(join(dir, 'g.db'));
    await store.init();
    t.after(() => store.close());
    const audit = { actor: 'a', source: 's', tenant: 'shop', kind: 'k', entityId: null, action: 'x', before: null, after: null };
    await store.writeDraft('shop', 'upstreams', 'u', { draft: { nodes }, create: true, actor: 'a', audit });
    await store.publish('shop', 'upstreams', 'u', { actor: 'a', audit });
    await store.writeDraft('shop', 'routes', 'draft-only', { draft: { paths: ['/d'], upstreamId: 'u' }, create: true, actor: 'a', audit });
    const p = '/t3';
    await client.put(entityKey(p, 'shop', 'routes', 'stale'), '{"paths":["/s"]}');
    await client.put(entityKey(p, 'shop', 'upstreams', 'u'), '{"nodes":[]}');
    const pub = new EtcdPublisher(client, p, store, log);
    await pub.reconcile();
    const kvs = (await client.range(`${p}/config/`, { prefix: true })).kvs;
    assert.deepEqual(
      kvs.map((kv) => [kv.key, JSON.parse(kv.value)]),
      [[entityKey(p, 'shop', 'upstreams', 'u'), { nodes }]],
      'the stale key is gone, the changed one rewritten, the draft not published',
    );
    await store.writeDraft('shop', 'routes', 'draft-only', { draft: null, actor: 'a', audit });
    await store.writeDraft('shop', 'routes', 'r', { draft: { paths: ['/r'], upstreamId: 'u' }, create: true, actor: 'a', audit });
    await store.publish('shop', 'routes', 'r', { actor: 'a', audit });
    await pub.published([{ tenant: 'shop', kind: 'routes', id: 'r' }]);
    assert.equal((await client.range(entityKey(p, 'shop', 'routes', 'r'))).kvs.length, 1);
    pub.close();
  });
});
