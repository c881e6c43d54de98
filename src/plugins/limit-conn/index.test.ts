/**
 * @module plugins/limit-conn/index.test
 * limit-conn: schema with field paths; traffic through an in-process gateway: at most `max` in flight per key,
 * refusals with Retry-After, slots given back when responses end, when clients leave and when a WebSocket
 * closes. Sharing across workers is in test/limits-cluster.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { harness } from '../../../test/helpers/harness.js';
import { node } from '../../../test/helpers/upstream.js';
import { json, send } from '../../../test/helpers/http.js';
import { sleep } from '../../../test/helpers/cli.js';
import { WebSocket, WebSocketServer, type WsSocket } from '../../../test/helpers/ws.js';

const { upstream, gateway } = harness();
const P = 'routes[0].plugins.limit-conn';

function problemsOf(plugin: unknown): string[] {
  const r = validateDeclarative(
    { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'limit-conn': plugin } }] },
    builtinRegistry(),
  );
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** An upstream that holds each request until released. */
async function holdingUpstream() {
  const held: Array<() => void> = [];
  const up = await upstream((_req, res) => {
    held.push(() => res.end('done'));
  });
  return { up, held, releaseAll: () => held.splice(0).forEach((f) => f()) };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('limit-conn schema', () => {
  it('accepts max and keys; refuses bad values with the path', () => {
    assert.deepEqual(problemsOf({ max: 1 }), []);
    assert.deepEqual(problemsOf({ max: 10, key: ['consumer'], retryAfter: 0, rejectedStatus: 503 }), []);
    assert.deepEqual(problemsOf({}), [`${P}.max: is required`]);
    assert.ok(problemsOf({ max: 0 }).some((p) => p.startsWith(`${P}.max`)));
  });
});

describe('limit-conn traffic', () => {
  it('at most max in flight; the others are refused; slots come back when responses end', async () => {
    const { up, held, releaseAll } = await holdingUpstream();
    const gw = await gateway({ upstreams: [{ id: 'u', nodes: [node(up.port)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'limit-conn': { max: 2 } } }] });
    const first = [send(gw.http, '/1'), send(gw.http, '/2')];
    await until(() => held.length === 2, 'two requests at the upstream');
    const refused = await send(gw.http, '/3');
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(json<{ error: { code: string } }>(refused).error.code, 'GH_ERR_RATE_LIMITED');
    releaseAll();
    assert.deepEqual((await Promise.all(first)).map((r) => r.status), [200, 200]);
    const again = [send(gw.http, '/4'), send(gw.http, '/5')];
    await until(() => held.length === 2, 'slots free again');
    releaseAll();
    await Promise.all(again);
  });

  it('a client that leaves gives its slot back', async () => {
    const { up, held, releaseAll } = await holdingUpstream();
    const gw = await gateway({ upstreams: [{ id: 'u', nodes: [node(up.port)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'limit-conn': { max: 1 } } }] });
    const req = request({ host: '127.0.0.1', port: gw.http, path: '/leaving', agent: false });
    req.on('error', () => {});
    req.end();
    await until(() => held.length === 1, 'the request at the upstream');
    req.destroy();
    await sleep(100);
    const next = send(gw.http, '/next');
    await until(() => held.length === 2, 'the next request let through');
    releaseAll();
    assert.equal((await next).status, 200);
  });

  it('keys by header count apart', async () => {
    const { up, held, releaseAll } = await holdingUpstream();
    const gw = await gateway({
      upstreams: [{ id: 'u', nodes: [node(up.port)] }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'limit-conn': { max: 1, key: ['header:X-User'], retryAfter: 0 } } }],
    });
    const a = send(gw.http, '/a', { headers: { 'x-user': 'a' } });
    await until(() => held.length === 1, 'a in flight');
    const a2 = await send(gw.http, '/a2', { headers: { 'x-user': 'a' } });
    assert.equal(a2.status, 429);
    assert.equal(a2.headers['retry-after'], undefined);
    const b = send(gw.http, '/b', { headers: { 'x-user': 'b' } });
    await until(() => held.length === 2, 'b in flight beside a');
    releaseAll();
    await Promise.all([a, b]);
  });

  it('a WebSocket holds its slot until it closes', async (t) => {
    const wsUp = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wsUp.once('listening', r));
    t.after(() => new Promise<void>((r) => wsUp.close(() => r())));
    const port = (wsUp.address() as { port: number }).port;
    const gw = await gateway({
      upstreams: [{ id: 'u', nodes: [node(port)] }],
      routes: [{ id: 'r', paths: ['/ws'], upstreamId: 'u', websocket: true, plugins: { 'limit-conn': { max: 1 } } }],
    });
    const open = (): Promise<{ ws: WsSocket; status: number }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${gw.http}/ws`);
        ws.once('open', () => resolve({ ws, status: 101 }));
        ws.once('unexpected-response', (_req: unknown, res: { statusCode: number }) => resolve({ ws, status: res.statusCode }));
        ws.once('error', reject);
      });
    const first = await open();
    assert.equal(first.status, 101);
    const second = await open();
    assert.equal(second.status, 429, 'the open WebSocket holds the only slot');
    second.ws.terminate();
    first.ws.close();
    await new Promise((r) => first.ws.once('close', r));
    await sleep(100);
    const third = await open();
    assert.equal(third.status, 101, 'the slot came back when the WebSocket closed');
    third.ws.close();
  });
});
