/**
 * @module plugins/proxy-mirror/index.test
 * proxy-mirror: config checks (unknown upstream refused with its path, defaults), the body tap leaving the
 * stream's flow to its reader, then real traffic through an in-process gateway to real upstreams: copies with
 * method, path, query and body; dead and slow mirrors never delaying or changing the main response; sampling;
 * bodies over maxBodySize not mirrored while the main upstream still gets them whole.
 */
import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { pino } from 'pino';
import proxyMirror, { mirrorCounters, resetMirrorCounters } from './index.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import type { PluginContext } from '../../dataplane/plugins/types.js';
import { harness } from '../../../test/helpers/harness.js';
import { closedPort, node, type TestUpstream } from '../../../test/helpers/upstream.js';
import { send, json } from '../../../test/helpers/http.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const { upstream, gateway } = harness();
const P = 'routes[0].plugins.proxy-mirror';

function validate(plugin: unknown) {
  return validateDeclarative(
    {
      upstreams: [{ id: 'main', nodes: [node(1)] }, { id: 'shadow', nodes: [node(2)] }],
      routes: [{ id: 'r', paths: ['/'], upstreamId: 'main', plugins: { 'proxy-mirror': plugin } }],
    },
    builtinRegistry(),
  );
}

function problemsOf(plugin: unknown): string[] {
  const r = validate(plugin);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** Poll `cond` every 10 ms for at most `ms`. */
async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

interface Got {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** An upstream that records every request with its whole body and answers `answer` after `delayMs`. */
async function recorder(answer: string, delayMs = 0): Promise<{ up: TestUpstream; got: Got[] }> {
  const got: Got[] = [];
  const up = await upstream(
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        got.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        const out = JSON.stringify({ answer, bytes: body.length, mirrorHeader: req.headers['x-gatehouse-mirror'] ?? null });
        const reply = () => {
          if (res.destroyed) return;
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
          res.end(out);
        };
        if (delayMs > 0) setTimeout(reply, delayMs).unref();
        else reply();
      });
    },
    { readBody: false },
  );
  return { up, got };
}

async function setup(mirrorPort: number, plugin: Record<string, unknown> = {}) {
  const main = await recorder('main');
  const gw = await gateway({
    upstreams: [
      { id: 'main', nodes: [node(main.up.port)] },
      { id: 'shadow', nodes: [node(mirrorPort)] },
    ],
    routes: [{ id: 'r', paths: ['/*'], upstreamId: 'main', plugins: { 'proxy-mirror': { upstreamId: 'shadow', ...plugin } } }],
  });
  return { main, port: gw.http };
}

describe('proxy-mirror config', () => {
  it('refuses an upstream id the config does not have, with its path', () => {
    assert.deepEqual(problemsOf({ upstreamId: 'nope' }), [`${P}.upstreamId: names upstream "nope", which does not exist`]);
    assert.deepEqual(problemsOf({ upstreamId: 'shadow' }), []);
  });

  it('fills defaults and refuses out-of-range values', () => {
    const r = validate({ upstreamId: 'shadow' });
    assert.ok(r.ok);
    const conf = (r.value.routes[0] as { plugins: Record<string, unknown> }).plugins['proxy-mirror'];
    assert.deepEqual(conf, { upstreamId: 'shadow', sampleRatio: 1, timeout: 3000, maxBodySize: 65536 });
    assert.ok(problemsOf({ upstreamId: 'shadow', sampleRatio: 1.5 }).some((p) => p.startsWith(`${P}.sampleRatio`)));
    assert.ok(problemsOf({ upstreamId: 'shadow', path: 'no-slash' }).some((p) => p.startsWith(`${P}.path`)));
    assert.ok(problemsOf({ upstreamId: 'shadow', extra: 1 }).length > 0);
  });

  it('the example in docs/plugins/proxy-mirror.md is valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/proxy-mirror.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const r = validateDeclarative(parse(yaml), builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    const conf = (r.value.routes[0] as { plugins: Record<string, unknown> }).plugins['proxy-mirror'];
    assert.deepEqual(conf, { upstreamId: 'orders-next', sampleRatio: 0.1, timeout: 2000, maxBodySize: 65536 });
  });
});

describe('proxy-mirror body tap', () => {
  it('does not start the flow of the body: bytes wait for the real reader and all reach it', async () => {
    const req = new PassThrough();
    Object.assign(req, { rawHeaders: ['Content-Length', '10'], headers: { 'content-length': '10' } });
    req.write(Buffer.from('0123456789'));
    req.end();
    const shadow = { pick: () => null } as unknown;
    const ctx = {
      req,
      h2: false,
      method: 'POST',
      path: '/x',
      query: '',
      headers: { 'content-length': '10' },
      fwd: { peer: '127.0.0.1', proto: 'http', host: 'h', port: '80', clientIp: '127.0.0.1' },
      trustedPeer: false,
      bufferedBody: null,
      upstreams: new Map([['upstream:shadow', shadow]]),
      editUpstreamHeaders: (list: string[]) => list,
    } as unknown as PluginContext;
    const inst = proxyMirror.create({ upstreamId: 'shadow', sampleRatio: 1, timeout: 1000, maxBodySize: 100 }, pluginEnv());
    inst.beforeUpstream!(ctx);
    // Several turns of the event loop with no reader: a listener that started the flow would lose the bytes.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.notEqual(req.readableFlowing, true);
    const seen: Buffer[] = [];
    req.on('data', (c: Buffer) => seen.push(c));
    req.resume();
    await new Promise((r) => req.once('end', r));
    assert.equal(Buffer.concat(seen).toString(), '0123456789');
  });
});

describe('proxy-mirror traffic', () => {
  beforeEach(() => resetMirrorCounters());

  it('mirrors method, path and query of a request without a body; the client gets the main response', async () => {
    const mirror = await recorder('mirror');
    const { main, port } = await setup(mirror.up.port);
    const r = await send(port, '/orders/42?a=1&b=2', { headers: { 'x-custom': 'yes' }, timeout: 5000 });
    assert.equal(r.status, 200);
    assert.equal(json(r).answer, 'main');
    assert.equal(json(r).mirrorHeader, null, 'the main request is not marked');
    assert.ok(await until(() => mirror.got.length === 1), 'mirror got the copy');
    const m = mirror.got[0]!;
    assert.equal(m.method, 'GET');
    assert.equal(m.url, '/orders/42?a=1&b=2');
    assert.equal(m.headers['x-gatehouse-mirror'], '1');
    assert.equal(m.headers['x-custom'], 'yes');
    assert.equal(m.headers.host, `127.0.0.1:${mirror.up.port}`);
    assert.equal(main.got.length, 1);
    assert.equal(main.got[0]!.headers['x-gatehouse-mirror'], undefined);
  });

  it('mirrors the body (with and without Content-Length) and sends to the configured path', async () => {
    const mirror = await recorder('mirror');
    const { main, port } = await setup(mirror.up.port, { path: '/shadow' });
    const body = Buffer.alloc(20000, 'a');
    const r1 = await send(port, '/items?x=1', { method: 'POST', headers: { 'content-type': 'text/plain' }, body, timeout: 5000 });
    assert.equal(json(r1).bytes, body.length);
    const r2 = await send(port, '/items', { method: 'PUT', headers: { 'transfer-encoding': 'chunked' }, body: 'chunked-body', timeout: 5000 });
    assert.equal(json(r2).bytes, 12);
    assert.ok(await until(() => mirror.got.length === 2), `mirror got ${mirror.got.length} copies`);
    const byMethod = new Map(mirror.got.map((g) => [g.method, g]));
    assert.equal(byMethod.get('POST')!.url, '/shadow?x=1');
    assert.ok(byMethod.get('POST')!.body.equals(body));
    assert.equal(byMethod.get('POST')!.headers['content-type'], 'text/plain');
    assert.equal(byMethod.get('PUT')!.url, '/shadow');
    assert.equal(byMethod.get('PUT')!.body.toString(), 'chunked-body');
    assert.deepEqual(main.got.map((g) => g.url), ['/items?x=1', '/items']);
  });

  it('credentials an auth plugin hides never reach the mirror', async () => {
    const mirror = await recorder('mirror');
    const main = await recorder('main');
    const gw = await gateway({
      upstreams: [
        { id: 'main', nodes: [node(main.up.port)] },
        { id: 'shadow', nodes: [node(mirror.up.port)] },
      ],
      consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-mirror-key' } } }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'main', plugins: { 'key-auth': {}, 'proxy-mirror': { upstreamId: 'shadow' } } }],
    });
    assert.equal((await send(gw.http, '/k?apikey=alice-mirror-key&x=1', { timeout: 5000 })).status, 200);
    assert.equal((await send(gw.http, '/h', { headers: { apikey: 'alice-mirror-key' }, timeout: 5000 })).status, 200);
    assert.ok(await until(() => mirror.got.length === 2), `mirror got ${mirror.got.length} copies`);
    for (const m of mirror.got) {
      assert.equal(m.headers.apikey, undefined);
      assert.ok(!m.url.includes('alice-mirror-key'), m.url);
      assert.equal(m.headers['x-consumer-username'], 'alice');
    }
  });

  it('a dead mirror never delays or changes the main response; the failure is counted', async () => {
    const { port } = await setup(await closedPort());
    const t0 = performance.now();
    const r = await send(port, '/a', { timeout: 5000 });
    const r2 = await send(port, '/b', { method: 'POST', body: 'hello', timeout: 5000 });
    assert.ok(performance.now() - t0 < 1500, 'well before the 3 s mirror timeout');
    assert.equal(r.status, 200);
    assert.equal(json(r).answer, 'main');
    assert.equal(json(r2).bytes, 5);
    assert.ok(await until(() => mirrorCounters.failed === 2), `failed: ${mirrorCounters.failed}`);
  });

  it('a slow mirror (5 s) never delays the main response, and is abandoned at its timeout', async () => {
    const slow = await recorder('slow', 5000);
    const { port } = await setup(slow.up.port, { timeout: 3000 });
    const t0 = performance.now();
    const r = await send(port, '/a', { timeout: 5000 });
    const r2 = await send(port, '/b', { method: 'POST', body: 'hello', timeout: 5000 });
    const took = performance.now() - t0;
    assert.ok(took < 1500, `main responses took ${took} ms, the mirror timeout is 3000`);
    assert.equal(json(r).answer, 'main');
    assert.equal(json(r2).bytes, 5);
    assert.ok(await until(() => slow.got.length === 2), 'the slow mirror did get the copies');
    assert.equal(mirrorCounters.answered, 0);

    // A short timeout: the copy is given up (and counted) long before the mirror would answer.
    const slow2 = await recorder('slow', 5000);
    const g2 = await setup(slow2.up.port, { timeout: 200 });
    resetMirrorCounters();
    assert.equal(json(await send(g2.port, '/c', { timeout: 5000 })).answer, 'main');
    assert.ok(await until(() => mirrorCounters.failed === 1, 3000), `failed: ${mirrorCounters.failed}`);
  });

  it('sampleRatio 0 never mirrors', async () => {
    const mirror = await recorder('mirror');
    const { main, port } = await setup(mirror.up.port, { sampleRatio: 0 });
    for (let i = 0; i < 20; i++) await send(port, `/s${i}`, { method: i % 2 ? 'POST' : 'GET', body: i % 2 ? 'x' : undefined, timeout: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(main.got.length, 20);
    assert.equal(mirror.got.length, 0);
    assert.equal(mirrorCounters.sent, 0);
  });

  it('bodies over maxBodySize are not mirrored; the main request still gets the whole body', async () => {
    const mirror = await recorder('mirror');
    const { main, port } = await setup(mirror.up.port, { maxBodySize: 1024 });
    const big = Buffer.alloc(4096, 'b');
    const r1 = await send(port, '/big-cl', { method: 'POST', body: big, timeout: 5000 });
    assert.equal(json(r1).bytes, 4096);
    const r2 = await send(port, '/big-chunked', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: big, timeout: 5000 });
    assert.equal(json(r2).bytes, 4096);
    // A small body after them is mirrored: the mirror works, so the big ones' absence means something.
    await send(port, '/small', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: Buffer.alloc(1024, 's'), timeout: 5000 });
    assert.ok(await until(() => mirror.got.length === 1));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(mirror.got.map((g) => [g.url, g.body.length]), [['/small', 1024]]);
    assert.deepEqual(main.got.map((g) => [g.url, g.body.length]), [['/big-cl', 4096], ['/big-chunked', 4096], ['/small', 1024]]);
    assert.equal(mirrorCounters.tooLarge, 2);
  });
});
