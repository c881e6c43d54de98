/**
 * @module etcd/client.test
 * The etcd client against a real etcd through its JSON gateway: reads and writes with and without a prefix,
 * one-revision batches, leases, watches (order, transactions, compaction, a killed member, a member that goes
 * quiet), endpoint failover and timeouts, and authentication with tokens that etcd stops accepting. A fake
 * gateway checks that a watch stream split at any byte is read correctly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, connect, type Socket } from 'node:net';
import { EtcdClient, EtcdError, type WatchEvent } from './client.js';
import { etcdSkip, etcdTestCerts, TestEtcd } from '../../test/helpers/etcd.js';
import { freePort, sleep, waitUntil } from '../../test/helpers/cli.js';

interface Batch {
  events: WatchEvent[];
  revision: number;
}

/** A watch whose batches and error are collected for assertions. */
function collect(client: EtcdClient, prefix: string, from: number) {
  const batches: Batch[] = [];
  const errors: EtcdError[] = [];
  const w = client.watch(prefix, from, (events, revision) => batches.push({ events, revision }), (err) => errors.push(err));
  const flat = () => batches.flatMap((b) => b.events.map((e) => `${e.type} ${e.kv.key}${e.type === 'put' ? `=${e.kv.value}` : ''}`));
  return { batches, errors, flat, cancel: () => w.cancel() };
}

async function rejectsWith(p: Promise<unknown>, code: EtcdError['code']): Promise<EtcdError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof EtcdError, `an EtcdError, got ${String(e)}`);
    assert.equal(e.code, code, `code ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected an EtcdError ${code}, but it resolved`);
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

/** A TCP proxy to `port` that can freeze: stop forwarding and answering without closing anything. */
async function freezableProxy(port: number) {
  let frozen = false;
  const sockets = new Set<Socket>();
  const server = createNetServer((down) => {
    sockets.add(down);
    down.on('close', () => sockets.delete(down));
    down.on('error', () => {});
    if (frozen) return; // accept and hold: a member that no longer answers
    const up = connect(port, '127.0.0.1');
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    down.on('data', (d) => {
      if (!frozen) up.write(d);
    });
    up.on('data', (d) => {
      if (!frozen) down.write(d);
    });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    freeze: () => {
      frozen = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('etcd client (real etcd)', { skip: etcdSkip() }, () => {
  let etcd: TestEtcd;
  let client: EtcdClient;
  before(async () => {
    etcd = await TestEtcd.start();
    client = new EtcdClient({ endpoints: [etcd.endpoint] });
  });
  after(async () => {
    await client?.close();
    await etcd?.stop();
  });

  it('puts, reads and deletes one key or every key with a prefix', async () => {
    const first = await client.put('/kv/a', 'one');
    assert.equal(typeof first.revision, 'number');
    await client.put('/kv/b', 'zwei ü €');
    await client.put('/kv/a', 'one again');
    await client.put('/kv-not-under-the-prefix', 'x');
    await client.put('/kv/ünï/c', 'three');

    const one = await client.range('/kv/a');
    assert.equal(one.kvs.length, 1);
    assert.deepEqual({ ...one.kvs[0], createRevision: 0, modRevision: 0 }, { key: '/kv/a', value: 'one again', createRevision: 0, modRevision: 0, version: 2, lease: '0' });
    assert.equal(one.kvs[0]!.createRevision, first.revision);
    assert.ok(one.kvs[0]!.modRevision > first.revision);
    assert.ok(one.revision >= one.kvs[0]!.modRevision, 'the revision of the read is the store revision');

    const all = await client.range('/kv/', { prefix: true });
    assert.deepEqual(all.kvs.map((kv) => [kv.key, kv.value]), [['/kv/a', 'one again'], ['/kv/b', 'zwei ü €'], ['/kv/ünï/c', 'three']]);
    const keys = await client.range('/kv/', { prefix: true, keysOnly: true });
    assert.deepEqual(keys.kvs.map((kv) => [kv.key, kv.value]), [['/kv/a', ''], ['/kv/b', ''], ['/kv/ünï/c', '']]);
    const old = await client.range('/kv/a', { revision: first.revision });
    assert.equal(old.kvs[0]!.value, 'one', 'a read at an earlier revision sees the value of then');
    assert.deepEqual((await client.range('/kv/none')).kvs, []);
    await rejectsWith(client.range('/kv/a', { revision: all.revision + 1000 }), 'protocol');

    const d1 = await client.delete('/kv/a');
    assert.equal(d1.deleted, 1);
    assert.ok(d1.revision > all.revision);
    assert.equal((await client.delete('/kv/a')).deleted, 0);
    const d2 = await client.delete('/kv/', { prefix: true });
    assert.equal(d2.deleted, 2);
    assert.deepEqual((await client.range('/kv/', { prefix: true })).kvs, []);
    assert.equal((await client.range('/kv-not-under-the-prefix')).kvs.length, 1, 'a prefix delete stays within the prefix');
  });

  it('applies a batch of puts and deletes at one revision, or nothing', async () => {
    await client.put('/batch/old1', 'x');
    await client.put('/batch/old2', 'x');
    const { revision } = await client.batch(
      [{ key: '/batch/n1', value: '1' }, { key: '/batch/n2', value: '2' }],
      ['/batch/old1', '/batch/old2'],
    );
    const r = await client.range('/batch/', { prefix: true });
    assert.deepEqual(r.kvs.map((kv) => [kv.key, kv.value, kv.modRevision]), [['/batch/n1', '1', revision], ['/batch/n2', '2', revision]]);

    // etcd refuses a transaction that names a key twice: nothing of it is applied.
    await rejectsWith(client.batch([{ key: '/batch/n3', value: '3' }, { key: '/batch/n1', value: 'changed' }], ['/batch/n1']), 'protocol');
    const after = await client.range('/batch/', { prefix: true });
    assert.deepEqual(after.kvs.map((kv) => [kv.key, kv.value]), [['/batch/n1', '1'], ['/batch/n2', '2']]);
  });

  it('grants leases, keeps them alive, and drops their keys on expiry or revocation', async () => {
    const lease = await client.grantLease(2);
    assert.match(lease.id, /^\d+$/, 'lease ids stay decimal strings (int64)');
    assert.equal(lease.ttl, 2);
    await client.put('/lease/kept', 'v', { lease: lease.id });
    assert.equal((await client.range('/lease/kept')).kvs[0]!.lease, lease.id);

    // Kept alive for longer than its TTL: the key is still there.
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      const ttl = await client.keepAlive(lease.id);
      assert.ok(ttl > 0 && ttl <= 2, `remaining ttl ${ttl}`);
      await sleep(400);
    }
    assert.equal((await client.range('/lease/kept')).kvs.length, 1, 'keep-alives hold the key past the TTL');

    // No more keep-alives: the lease expires and takes its key with it.
    await waitUntil('the lease to expire', 10_000, async () => ((await client.range('/lease/kept')).kvs.length === 0 ? true : undefined), 100);
    assert.equal(await client.keepAlive(lease.id), 0, 'a keep-alive on an expired lease says it is gone');

    const revoked = await client.grantLease(60);
    await client.batch([{ key: '/lease/r1', value: '1', lease: revoked.id }, { key: '/lease/r2', value: '2', lease: revoked.id }], []);
    assert.equal((await client.range('/lease/r', { prefix: true })).kvs.length, 2);
    await client.revokeLease(revoked.id);
    assert.deepEqual((await client.range('/lease/r', { prefix: true })).kvs, []);
    await client.revokeLease(revoked.id); // already gone: nothing to do
  });

  it('watches a prefix from a revision: puts and deletes in order, a batch in one call', async () => {
    const { revision: start } = await client.put('/watch/a', '1');
    await client.put('/watch/b', '2');
    const w = collect(client, '/watch/', start);
    await waitUntil('the backlog', 5000, () => (w.flat().length >= 2 ? true : undefined));
    await client.put('/watchless', 'not under the prefix');
    await client.delete('/watch/a');
    const { revision: batchRev } = await client.batch([{ key: '/watch/c', value: '3' }, { key: '/watch/d', value: '4' }], ['/watch/b']);
    await client.put('/watch/c', '3b');
    await waitUntil('every event', 5000, () => (w.flat().length >= 7 ? true : undefined));
    w.cancel();
    assert.deepEqual(w.flat(), ['put /watch/a=1', 'put /watch/b=2', 'delete /watch/a', 'put /watch/c=3', 'put /watch/d=4', 'delete /watch/b', 'put /watch/c=3b']);
    const batch = w.batches.find((b) => b.revision === batchRev);
    assert.ok(batch, 'a call at the batch revision');
    assert.equal(batch.events.length, 3, 'the whole batch arrives in one call');
    assert.ok(batch.events.every((e) => e.kv.modRevision === batchRev));
    assert.equal(w.batches.at(-1)!.revision, batchRev + 1);
    assert.deepEqual(w.errors, []);

    // Cancelled: nothing more arrives, and no error is reported.
    const n = w.batches.length;
    await client.put('/watch/e', '5');
    await sleep(200);
    assert.equal(w.batches.length, n);
    assert.deepEqual(w.errors, []);
  });

  it('reports a watch from a compacted revision as compacted, with the compact revision', async () => {
    const { revision: r1 } = await client.put('/compact/a', '1');
    await client.put('/compact/a', '2');
    const { revision: r3 } = await client.put('/compact/a', '3');
    await etcd.compact(r3);
    const w = collect(client, '/compact/', r1);
    await waitUntil('the watch error', 5000, () => w.errors[0]);
    assert.equal(w.errors.length, 1);
    assert.equal(w.errors[0]!.code, 'compacted');
    assert.equal(w.errors[0]!.compactRevision, r3);
    assert.deepEqual(w.batches, []);
    const e = await rejectsWith(client.range('/compact/a', { revision: r1 }), 'compacted');
    assert.match(e.message, /compacted/);
    // From the compact revision on, the watch works.
    const ok = collect(client, '/compact/', r3);
    await waitUntil('the event at the compact revision', 5000, () => (ok.flat().length === 1 ? true : undefined));
    ok.cancel();
    assert.deepEqual(ok.flat(), ['put /compact/a=3']);
  });

  it('needs no token from a cluster that has auth disabled, even with credentials configured', async () => {
    const c = new EtcdClient({ endpoints: [etcd.endpoint], username: 'someone', password: 'something' });
    try {
      await c.put('/noauth/a', '1');
      assert.equal((await c.range('/noauth/a')).kvs[0]!.value, '1');
    } finally {
      await c.close();
    }
  });

  it('fails over to the next endpoint when one refuses connections', async () => {
    const { revision: from } = await client.put('/failover/a', '0');
    const c = new EtcdClient({ endpoints: [await closedPort(), etcd.endpoint], timeout: 1000 });
    try {
      // The watch first, so it is the first request to try the closed endpoint.
      const w = collect(c, '/failover/', from);
      await waitUntil('the event through the second endpoint', 5000, () => (w.flat().length === 1 ? true : undefined));
      w.cancel();
      const { revision } = await c.put('/failover/a', '1');
      assert.equal((await c.range('/failover/a')).kvs[0]!.modRevision, revision);
      assert.ok((await c.status()).revision >= revision);
      const d = new EtcdClient({ endpoints: [await closedPort(), etcd.endpoint], timeout: 1000 });
      assert.equal((await d.range('/failover/a')).kvs[0]!.value, '1');
      await d.close();
    } finally {
      await c.close();
    }
  });

  it('reports unavailable, not a timeout, when every endpoint refuses connections', async () => {
    const c = new EtcdClient({ endpoints: [await closedPort(), await closedPort()], timeout: 5000 });
    try {
      const started = Date.now();
      const e = await rejectsWith(c.range('/x'), 'unavailable');
      assert.ok(Date.now() - started < 5000, 'within the timeout');
      assert.match(e.message, /ECONNREFUSED/);
      await rejectsWith(c.status(), 'unavailable');
      const w = collect(c, '/x', 1);
      await waitUntil('the watch error', 5000, () => w.errors[0]);
      assert.equal(w.errors[0]!.code, 'unavailable');
    } finally {
      await c.close();
    }
  });

  it('times out on an endpoint that never answers, and starts the next call with the next endpoint', async () => {
    const held: Socket[] = [];
    const silent = createNetServer((s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const c = new EtcdClient({ endpoints: [`http://127.0.0.1:${(silent.address() as { port: number }).port}`, etcd.endpoint], timeout: 300 });
    try {
      await rejectsWith(c.put('/hang/a', '1'), 'timeout');
      await c.put('/hang/a', '2');
      assert.equal((await c.range('/hang/a')).kvs[0]!.value, '2');
    } finally {
      await c.close();
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  it('ends a quiet watch with unavailable when its member stops answering', async () => {
    const proxy = await freezableProxy(etcd.clientPort);
    const c = new EtcdClient({ endpoints: [proxy.endpoint], timeout: 300 });
    try {
      const { revision } = await client.put('/quiet/a', '1');
      const w = collect(c, '/quiet/', revision);
      await waitUntil('the first event', 5000, () => (w.flat().length === 1 ? true : undefined));
      // Nothing closes: the connection just stops delivering, as with a crashed host or a partition.
      proxy.freeze();
      await client.put('/quiet/b', '2');
      const err = await waitUntil('the watch error', 10_000, () => w.errors[0]);
      assert.equal(err.code, 'unavailable');
      assert.deepEqual(w.flat(), ['put /quiet/a=1']);
    } finally {
      await c.close();
      await proxy.close();
    }
  });
});

describe('etcd client: a member killed and restarted', { skip: etcdSkip() }, () => {
  it('reports unavailable to a watch when etcd dies; a new watch after the restart sees what changed', async (t) => {
    const etcd = await TestEtcd.start();
    t.after(() => etcd.stop());
    const client = new EtcdClient({ endpoints: [etcd.endpoint], timeout: 1000 });
    t.after(() => client.close());
    const { revision } = await client.put('/kill/a', '1');
    const w = collect(client, '/kill/', revision + 1);
    await client.put('/kill/b', '2');
    await waitUntil('the first event', 5000, () => (w.batches.length === 1 ? true : undefined));
    const last = w.batches.at(-1)!.revision;

    await etcd.stop();
    const err = await waitUntil('the watch error', 5000, () => w.errors[0]);
    assert.equal(err.code, 'unavailable');
    assert.equal(w.errors.length, 1);
    await rejectsWith(client.put('/kill/c', '3'), 'unavailable');
    await rejectsWith(client.status(), 'unavailable');

    await etcd.start();
    await client.put('/kill/c', '3');
    await client.delete('/kill/a');
    const again = collect(client, '/kill/', last + 1);
    await waitUntil('the changes since', 5000, () => (again.flat().length >= 2 ? true : undefined));
    again.cancel();
    assert.deepEqual(again.flat(), ['put /kill/c=3', 'delete /kill/a']);
    assert.deepEqual(w.flat(), ['put /kill/b=2'], 'the ended watch got nothing more');
    assert.equal(w.errors.length, 1, 'onError is called once');
  });
});

describe('etcd client: authentication', { skip: etcdSkip() }, () => {
  const user = 'gatehouse';
  const password = 'pw-Secret-4711';
  let etcd: TestEtcd;
  before(async () => {
    etcd = await TestEtcd.start();
    await etcd.enableAuth({ user, password, prefix: '/auth/' });
  });
  after(() => etcd?.stop());

  it('refuses a wrong password or no credentials with auth, never showing the password', async () => {
    const wrong = 'wrong-Secret-0815';
    const c = new EtcdClient({ endpoints: [etcd.endpoint], username: user, password: wrong });
    try {
      const e = await rejectsWith(c.range('/auth/a'), 'auth');
      assert.ok(!e.message.includes(wrong) && !e.message.includes(password), e.message);
      assert.ok(!JSON.stringify(e).includes(wrong));
      const w = collect(c, '/auth/', 1);
      await waitUntil('the watch error', 5000, () => w.errors[0]);
      assert.equal(w.errors[0]!.code, 'auth');
      assert.ok(!w.errors[0]!.message.includes(wrong));
    } finally {
      await c.close();
    }
    const anonymous = new EtcdClient({ endpoints: [etcd.endpoint] });
    try {
      await rejectsWith(anonymous.put('/auth/a', '1'), 'auth');
    } finally {
      await anonymous.close();
    }
  });

  it('works with the right password within its permissions, and authenticates again when etcd drops the token', async () => {
    const c = new EtcdClient({ endpoints: [etcd.endpoint], username: user, password, timeout: 3000 });
    try {
      const { revision } = await c.put('/auth/a', '1');
      assert.equal((await c.range('/auth/', { prefix: true })).kvs.length, 1);
      await rejectsWith(c.put('/elsewhere', 'x'), 'auth');
      const denied = collect(c, '/elsewhere/', 1);
      const deniedErr = await waitUntil('the refused watch', 5000, () => denied.errors[0]);
      assert.equal(deniedErr.code, 'auth');
      assert.match(deniedErr.message, /permission denied/);
      assert.ok((await c.status()).revision >= revision);

      // etcd forgets its tokens (as when one expires, or on another member): the client's next call gets
      // "invalid auth token", authenticates again, and goes through.
      const before = await etcd.authenticate(user, password);
      await etcd.invalidateTokens();
      await assert.rejects(etcd.post('/v3/kv/range', { key: Buffer.from('/auth/a').toString('base64') }, before), /invalid auth token/);
      assert.equal((await c.range('/auth/a')).kvs[0]!.value, '1');

      // The same for a watch opened with a refused token.
      await etcd.invalidateTokens();
      const w = collect(c, '/auth/', revision);
      await waitUntil('the watched event', 5000, () => (w.flat().length === 1 ? true : undefined));
      await c.put('/auth/b', '2');
      await waitUntil('the next event', 5000, () => (w.flat().length === 2 ? true : undefined));
      assert.deepEqual(w.flat(), ['put /auth/a=1', 'put /auth/b=2']);
      assert.deepEqual(w.errors, []);
      w.cancel();

      // Leases need no more than the permission on their keys.
      const lease = await c.grantLease(60);
      await c.put('/auth/leased', 'x', { lease: lease.id });
      assert.ok((await c.keepAlive(lease.id)) > 0);
      await c.revokeLease(lease.id);
      assert.deepEqual((await c.range('/auth/leased')).kvs, []);

      // After a restart (simple tokens live in the member; it may replay them from its log or not).
      await etcd.stop();
      await etcd.start();
      await c.put('/auth/c', '3');
      const after = collect(c, '/auth/c', 1);
      await waitUntil('the event after the restart', 5000, () => (after.flat().length === 1 ? true : undefined));
      after.cancel();
      assert.deepEqual(after.errors, []);
    } finally {
      await c.close();
    }
  });
});

describe('etcd client: TLS', { skip: etcdSkip() }, () => {
  it('verifies the member against the CA and presents a client certificate', async (t) => {
    const certs = etcdTestCerts();
    const etcd = await TestEtcd.start({ tls: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.ca, clientCert: certs.clientCert, clientKey: certs.clientKey } });
    t.after(() => etcd.stop());
    assert.match(etcd.endpoint, /^https:/);
    const tls = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };

    const c = new EtcdClient({ endpoints: [etcd.endpoint], tls });
    t.after(() => c.close());
    const { revision } = await c.put('/tls/a', '1');
    const w = collect(c, '/tls/', revision);
    await waitUntil('the event over TLS', 5000, () => (w.flat().length === 1 ? true : undefined));
    w.cancel();
    assert.equal((await c.range('/tls/a')).kvs[0]!.value, '1');

    // A member whose certificate is not signed by a trusted CA is refused, unless verification is off.
    const untrusting = new EtcdClient({ endpoints: [etcd.endpoint], tls: { cert: certs.clientCert, key: certs.clientKey } });
    t.after(() => untrusting.close());
    const e = await rejectsWith(untrusting.range('/tls/a'), 'unavailable');
    assert.match(e.message, /certificate/);
    const unverified = new EtcdClient({ endpoints: [etcd.endpoint], tls: { cert: certs.clientCert, key: certs.clientKey, rejectUnauthorized: false } });
    t.after(() => unverified.close());
    assert.equal((await unverified.range('/tls/a')).kvs.length, 1);

    // Without a client certificate etcd refuses the connection.
    const anonymous = new EtcdClient({ endpoints: [etcd.endpoint], tls: { ca: certs.ca } });
    t.after(() => anonymous.close());
    await rejectsWith(anonymous.range('/tls/a'), 'unavailable');
  });
});

describe('etcd client: watch streams split anywhere', () => {
  let server: Server;
  let port: number;
  const kv = (key: string, value: string, rev: number) =>
    ({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64'), create_revision: String(rev), mod_revision: String(rev), version: '1' });
  const header = (rev: number) => ({ cluster_id: '1', member_id: '2', revision: String(rev), raft_term: '2' });
  before(async () => {
    server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      res.writeHead(200, { 'content-type': 'application/json' });
      const key = Buffer.from((JSON.parse(body) as { create_request: { key: string } }).create_request.key, 'base64').toString();
      if (key === '/bad/') {
        res.write(`${JSON.stringify({ result: { header: header(20), created: true } })}\n<html>`);
        return; // left open: the client must give up on its own
      }
      const text = [
        { result: { header: header(20), created: true, note: 'a "}{" string \\" with braces ü' } },
        // A backlog split over two responses, each stamped with the store's current revision.
        { result: { header: header(20), events: [{ kv: kv('/s/a', 'one', 6) }] } },
        { result: { header: header(20), events: [{ kv: kv('/s/b', 'two', 7) }, { type: 'DELETE', kv: { key: Buffer.from('/s/a').toString('base64'), mod_revision: '7' } }] } },
        { result: { header: header(20) } }, // a progress notification
        { result: { header: header(21), events: [{ kv: kv('/s/c', 'three', 21) }] } },
      ].map((m) => JSON.stringify(m)).join('\n') + '\n';
      const bytes = Buffer.from(text);
      // Cuts inside a string, inside a multi-byte character, between objects, and several objects at once.
      const cuts = [3, bytes.indexOf('}{') + 1, bytes.indexOf(0xc3) + 1, bytes.indexOf('"events"') + 2, bytes.length - 40, bytes.length].sort((a, b) => a - b);
      let at = 0;
      for (const cut of cuts) {
        res.write(bytes.subarray(at, cut));
        at = cut;
        await sleep(30);
      }
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  it('reads every message whole, skips progress notifications, reports the revision delivered, and reports the end of the stream', async () => {
    const c = new EtcdClient({ endpoints: [`http://127.0.0.1:${port}`] });
    try {
      const w = collect(c, '/s/', 1);
      const err = await waitUntil('the end of the stream', 5000, () => w.errors[0]);
      assert.equal(err.code, 'unavailable');
      assert.deepEqual(w.flat(), ['put /s/a=one', 'put /s/b=two', 'delete /s/a', 'put /s/c=three']);
      // Each call's revision is one up to which everything has been delivered: resuming from the backlog's
      // header revision (20) after the first response would skip revision 7.
      assert.deepEqual(w.batches.map((b) => [b.revision, b.events.length]), [[6, 1], [7, 2], [21, 1]]);
      assert.equal(w.batches[1]!.events[1]!.kv.modRevision, 7);
    } finally {
      await c.close();
    }
  });

  it('ends the watch with protocol when the stream is not JSON', async () => {
    const c = new EtcdClient({ endpoints: [`http://127.0.0.1:${port}`] });
    try {
      const w = collect(c, '/bad/', 1);
      const err = await waitUntil('the watch error', 5000, () => w.errors[0]);
      assert.equal(err.code, 'protocol');
      assert.deepEqual(w.batches, []);
    } finally {
      await c.close();
    }
  });
});
