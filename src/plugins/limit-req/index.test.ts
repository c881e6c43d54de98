/**
 * @module plugins/limit-req/index.test
 * limit-req: schema with field paths; traffic through an in-process gateway: the burst delayed to keep to the
 * rate, nodelay, refusals with Retry-After, keys, maxDelay, and a client leaving while delayed never reaching
 * the upstream. Bucket arithmetic with a fake clock is in dataplane/limits/limits.test.ts; sharing across
 * workers in test/limits-cluster.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { harness } from '../../../test/helpers/harness.js';
import { node } from '../../../test/helpers/upstream.js';
import { json, send } from '../../../test/helpers/http.js';

const { upstream, gateway } = harness();
const P = 'routes[0].plugins.limit-req';

function problemsOf(plugin: unknown): string[] {
  const r = validateDeclarative(
    { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'limit-req': plugin } }] },
    builtinRegistry(),
  );
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

const config = (port: number, plugin: Record<string, unknown>) => ({
  upstreams: [{ id: 'u', nodes: [node(port)] }],
  routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'limit-req': plugin } }],
});

describe('limit-req schema', () => {
  it('accepts rates, bursts and keys; refuses bad values with the path', () => {
    assert.deepEqual(problemsOf({ rate: 0.5 }), []);
    assert.deepEqual(problemsOf({ rate: 100, burst: 50, nodelay: true, key: ['consumer', 'route'], maxDelay: 500 }), []);
    assert.deepEqual(problemsOf({}), [`${P}.rate: is required`]);
    assert.ok(problemsOf({ rate: 0 }).some((p) => p.startsWith(`${P}.rate`)));
    assert.ok(problemsOf({ rate: 1, burst: -1 }).some((p) => p.startsWith(`${P}.burst`)));
    assert.ok(problemsOf({ rate: 1, key: ['nope'] }).some((p) => p.startsWith(`${P}.key[0]`)));
  });
});

describe('limit-req traffic', () => {
  it('nodelay: burst + 1 pass at once, the rest are refused with Retry-After', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { rate: 1, burst: 2, nodelay: true }));
    const got = await Promise.all(Array.from({ length: 6 }, () => send(gw.http, '/x')));
    const codes = got.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 200, 200, 429, 429, 429]);
    const refused = got.find((r) => r.status === 429)!;
    assert.equal(json<{ error: { code: string } }>(refused).error.code, 'GH_ERR_RATE_LIMITED');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.equal(up.seen.length, 3);
  });

  it('without nodelay the burst is delayed to keep to the rate', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { rate: 10, burst: 3 }));
    const t0 = performance.now();
    const got = await Promise.all(Array.from({ length: 4 }, () => send(gw.http, '/x')));
    assert.deepEqual(got.map((r) => r.status), [200, 200, 200, 200]);
    // Four requests at 10 per second: the last goes out about 300 ms after the first (never before).
    assert.ok(performance.now() - t0 >= 280, 'the burst was spread over time');
  });

  it('a request that would wait longer than maxDelay is refused instead', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { rate: 1, burst: 5, maxDelay: 1500 }));
    const got = await Promise.all(Array.from({ length: 4 }, () => send(gw.http, '/x', { timeout: 5000 })));
    // Delays 0, 1 s, 2 s, 3 s: the last two are over 1.5 s.
    assert.deepEqual(got.map((r) => r.status).sort(), [200, 200, 429, 429]);
  });

  it('keys count apart', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { rate: 1, nodelay: true, key: ['header:X-User'] }));
    const a = await Promise.all([send(gw.http, '/x', { headers: { 'x-user': 'a' } }), send(gw.http, '/x', { headers: { 'x-user': 'a' } })]);
    const b = await send(gw.http, '/x', { headers: { 'x-user': 'b' } });
    assert.deepEqual(a.map((r) => r.status).sort(), [200, 429]);
    assert.equal(b.status, 200);
  });

  it('a client that leaves while delayed is never proxied', async () => {
    const up = await upstream();
    const gw = await gateway(config(up.port, { rate: 1, burst: 1 }));
    assert.equal((await send(gw.http, '/first')).status, 200);
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: gw.http, path: '/delayed', agent: false });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    await new Promise((r) => setTimeout(r, 1200));
    assert.deepEqual(up.seen.map((s) => s.url), ['/first'], 'the delayed request was dropped when its client left');
  });
});
