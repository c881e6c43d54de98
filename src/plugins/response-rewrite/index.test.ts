/**
 * @module plugins/response-rewrite/index.test
 * response-rewrite: config refused or accepted with field paths, then real traffic through an in-process gateway
 * to a real upstream: status, header and body rewrites with and without onStatus, chunked upstream bodies, HEAD,
 * untouched streaming (and Content-Length) without a body, and gateway answers left alone.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { node } from '../../../test/helpers/upstream.js';
import { harness } from '../../../test/helpers/harness.js';
import { send, json } from '../../../test/helpers/http.js';

const { gateway, upstream } = harness();

function problems(plugins: Record<string, unknown>): string[] {
  const cfg = { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins }] };
  const r = validateDeclarative(cfg, builtinRegistry());
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('response-rewrite config', () => {
  it('accepts status, headers, body and conditions, and fills in the defaults', () => {
    const good: Array<Record<string, unknown>> = [
      { status: 200 },
      { body: 'hello', headers: { set: { 'Content-Type': 'text/plain' } } },
      { bodyBase64: 'aGVsbG8=', onStatus: [500, 502] },
      { headers: { add: { 'X-A': '1' }, remove: ['Server'] } },
      { status: 204, headers: { remove: ['X-A'] } },
    ];
    for (const conf of good) assert.deepEqual(problems({ 'response-rewrite': conf }), [], JSON.stringify(conf));
    const r = validateDeclarative({ upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'response-rewrite': { status: 203 } } }] }, builtinRegistry());
    assert.ok(r.ok);
    assert.deepEqual(r.value.routes[0]!.plugins!['response-rewrite'], { status: 203, headers: { set: {}, add: {}, remove: [] } });
  });

  it('refuses bad configs with the path of the field', () => {
    const at = 'routes[0].plugins.response-rewrite';
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, `${at}: changes nothing`],
      [{ status: 99 }, `${at}.status: must be >= 200`],
      [{ status: 600 }, `${at}.status: must be <= 599`],
      [{ body: 'a', bodyBase64: 'YQ==' }, `${at}.bodyBase64: cannot be used with body`],
      [{ bodyBase64: 'not base64!' }, `${at}.bodyBase64: must match pattern`],
      [{ status: 304, body: 'a' }, `${at}.status: 304 responses have no body`],
      [{ status: 200, onStatus: [] }, `${at}.onStatus: must NOT have fewer than 1 items`],
      [{ status: 200, onStatus: [404, 404] }, `${at}.onStatus: must NOT have duplicate items`],
      [{ status: 200, onStatus: [42] }, `${at}.onStatus[0]: must be >= 100`],
      [{ headers: { set: { 'Content-Length': '1' } } }, `${at}.headers.set.Content-Length: is a framing header`],
      [{ headers: { remove: ['Transfer-Encoding'] } }, `${at}.headers.remove[0]: is a framing header`],
      [{ headers: { set: { 'X-A': 'a\nb' } } }, `${at}.headers.set.X-A: must match pattern`],
      [{ headers: { set: { 'bad name': 'a' } } }, `${at}.headers.set.bad name: is not a known field`],
      [{ stat: 200 }, `${at}.stat: is not a known field`],
    ];
    for (const [conf, expected] of cases) {
      const found = problems({ 'response-rewrite': conf });
      assert.ok(found.some((p) => p.startsWith(expected)), `${JSON.stringify(conf)}\nexpected ${expected}\ngot ${found.join('\n')}`);
    }
  });
});

describe('response-rewrite traffic', async () => {
  const up = await upstream((req, res) => {
    const url = req.url ?? '';
    if (url.endsWith('/missing')) {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 8, etag: '"m"' });
      res.end('not here');
    } else if (url.endsWith('/chunked')) {
      // No Content-Length: a chunked body in two writes, so the filter sees more than one chunk.
      res.writeHead(200, { 'content-type': 'text/plain', 'x-up': '1' });
      res.write('part one, ');
      setTimeout(() => res.end('part two'), 20);
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 8, 'x-up': '1', etag: '"o"', 'content-encoding': 'identity' });
      res.end('original');
    }
  });
  const route = (id: string, conf: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    id,
    paths: [`/${id}/*`],
    upstream: { nodes: [node(up.port)] },
    plugins: { 'response-rewrite': conf, ...extra },
  });
  const gw = await gateway({
    consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } }],
    routes: [
      route('all', { status: 201, headers: { set: { 'Content-Type': 'application/json' }, add: { 'X-Added': '1' }, remove: ['X-Up'] }, body: '{"replaced":true}' }),
      route('cond', { onStatus: [404], status: 200, headers: { set: { 'X-Rewritten': 'yes' } }, body: 'friendly' }),
      route('headers', { status: 299, headers: { set: { 'X-H': '1' }, remove: ['X-Up'] } }),
      route('b64', { bodyBase64: Buffer.from('héllo ✓').toString('base64'), headers: { set: { 'Content-Type': 'text/plain; charset=utf-8' } } }),
      route('auth', { status: 200, body: 'would hide the 401' }, { 'key-auth': {} }),
    ],
  });

  it('rewrites status, headers and body of a response with Content-Length', async () => {
    const r = await send(gw.http, '/all/ok');
    assert.equal(r.status, 201);
    assert.deepEqual(json(r), { replaced: true });
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-added'], '1');
    assert.equal(r.headers['x-up'], undefined);
    // Validators and the coding described the upstream's bytes, not these.
    assert.equal(r.headers.etag, undefined);
    assert.equal(r.headers['content-encoding'], undefined);
  });

  it('replaces a chunked upstream body, dropping every chunk', async () => {
    const r = await send(gw.http, '/all/chunked');
    assert.equal(r.status, 201);
    assert.equal(r.body, '{"replaced":true}');
  });

  it('sends no body for HEAD, with the rewritten status and headers', async () => {
    const r = await send(gw.http, '/all/ok', { method: 'HEAD' });
    assert.equal(r.status, 201);
    assert.equal(r.body, '');
    assert.equal(r.headers['x-added'], '1');
  });

  it('rewrites only the statuses listed in onStatus', async () => {
    const hit = await send(gw.http, '/cond/missing');
    assert.equal(hit.status, 200);
    assert.equal(hit.body, 'friendly');
    assert.equal(hit.headers['x-rewritten'], 'yes');
    const miss = await send(gw.http, '/cond/ok');
    assert.equal(miss.status, 200);
    assert.equal(miss.body, 'original');
    assert.equal(miss.headers['x-rewritten'], undefined);
    assert.equal(miss.headers.etag, '"o"');
    const chunked = await send(gw.http, '/cond/chunked');
    assert.equal(chunked.body, 'part one, part two');
  });

  it('keeps streaming and Content-Length when no body is configured', async () => {
    const r = await send(gw.http, '/headers/ok');
    assert.equal(r.status, 299);
    assert.equal(r.body, 'original');
    assert.equal(r.headers['content-length'], '8');
    assert.equal(r.headers['x-h'], '1');
    assert.equal(r.headers['x-up'], undefined);
  });

  it('sends the bytes of bodyBase64', async () => {
    const r = await send(gw.http, '/b64/ok');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'héllo ✓');
  });

  it('leaves the gateway\'s own answers alone', async () => {
    const before = up.seen.length;
    const denied = await send(gw.http, '/auth/ok');
    assert.equal(denied.status, 401);
    assert.equal(json<{ error: { code: string } }>(denied).error.code, 'GH_ERR_AUTH_REQUIRED');
    assert.equal(up.seen.length, before);
    const ok = await send(gw.http, '/auth/ok', { headers: { apikey: 'alice-secret-key' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'would hide the 401');
  });
});
