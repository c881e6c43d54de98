/**
 * @module plugins/request-validation/index.test
 * request-validation: user schemas checked when config loads, the strict JSON scanner on its own, then real
 * traffic through an in-process gateway to a real upstream that records the exact bytes it receives.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request, type OutgoingHttpHeaders } from 'node:http';
import { parse } from 'yaml';
import { createLogger } from '../../core/logger.js';
import { startInProcessGateway, type InProcessGateway } from '../../process/in-process.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { node, startUpstream, type TestUpstream } from '../../../test/helpers/upstream.js';
import { json, send, type Reply } from '../../../test/helpers/http.js';
import plugin, { scanJson } from './index.js';
import { harness } from '../../../test/helpers/harness.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const { gateway, defer } = harness();

/** An upstream that keeps every body it receives, byte for byte, and answers with its length. */
async function recorder(): Promise<TestUpstream & { bodies: Buffer[] }> {
  const bodies: Buffer[] = [];
  const u = await startUpstream(
    (req, res, seen) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        bodies.push(body);
        seen.bodyBytes = body.length;
        const out = JSON.stringify({ url: seen.url, bytes: body.length, headers: seen.headers });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
        res.end(out);
      });
    },
    { readBody: false },
  );
  defer(() => u.close());
  return Object.assign(u, { bodies });
}

function problems(conf: unknown): string[] {
  const r = validateDeclarative({ upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'request-validation': conf } }] }, builtinRegistry());
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

const JSON_HEADERS = { 'content-type': 'application/json' };

function post(port: number, path: string, body: string | Buffer, headers: OutgoingHttpHeaders = JSON_HEADERS): Promise<Reply> {
  return send(port, path, { method: 'POST', body, headers });
}

/** A request whose body goes out chunked (no Content-Length), one write per piece with a pause between. */
function postChunked(port: number, path: string, pieces: string[], headers: OutgoingHttpHeaders = JSON_HEADERS): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('test client timeout')));
    // The gateway may answer (413) and close before every piece is written.
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e)));
    let i = 0;
    const next = () => {
      if (i === pieces.length) return req.end();
      req.write(pieces[i++]!);
      setTimeout(next, 10);
    };
    next();
  });
}

interface Refusal {
  error: { code: string; message: string; details: Array<{ in: string; path: string; message: string }> };
}

function refusal(r: Reply): Refusal['error'] {
  return json<Refusal>(r).error;
}

const ORDER = {
  type: 'object',
  required: ['customer', 'items'],
  additionalProperties: false,
  properties: {
    customer: { type: 'string', minLength: 1 },
    note: { type: 'string', maxLength: 10 },
    email: { type: 'string', format: 'email' },
    items: {
      type: 'array',
      minItems: 1,
      items: { type: 'object', required: ['sku', 'qty'], properties: { sku: { type: 'string', pattern: '^[A-Z]{3}-\\d+$' }, qty: { type: 'integer', minimum: 1 } } },
    },
  },
};

describe('request-validation config', () => {
  it('accepts schemas for body, query and headers and fills in the defaults', () => {
    const conf = { body: ORDER, query: { type: 'object', properties: { page: { type: 'integer' } } }, headers: { properties: { 'x-tenant': { type: 'string' } }, required: ['x-tenant'] } };
    const r = validateDeclarative({ upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'request-validation': conf } }] }, builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    const filled = r.value.routes[0]!.plugins!['request-validation'] as Record<string, unknown>;
    assert.equal(filled.rejectedCode, 400);
    assert.equal(filled.maxDepth, 64);
    // Two routes may use schemas with the same $id: each is compiled on its own.
    assert.deepEqual(problems({ body: { $id: 'https://example.com/order', type: 'object' } }), []);
    assert.deepEqual(problems({ body: { $id: 'https://example.com/order', type: 'object' } }), []);
  });

  it('refuses a bad schema with the path of the field inside it', () => {
    const at = 'routes[0].plugins.request-validation';
    const cases: Array<[unknown, string]> = [
      [{}, `${at}: needs at least one of body, query, headers`],
      [{ body: { type: 'object', properties: { qty: { type: 'integer', minimum: 'one' } } } }, `${at}.body.properties.qty.minimum: must be number`],
      [{ body: { type: 'strin' } }, `${at}.body.type: must be equal to one of the allowed values`],
      [{ body: { type: 'string', pattern: '(' } }, `${at}.body: cannot be compiled: Invalid regular expression`],
      [{ body: { $ref: 'https://example.com/elsewhere.json' } }, `${at}.body: cannot be compiled: can't resolve reference`],
      [{ body: { type: 'string', format: 'emial' } }, `${at}.body: unknown format "emial"`],
      [{ body: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object' } }, `${at}.body: cannot be checked`],
      [{ query: { type: 'string' } }, `${at}.query.type: must be "object"`],
      [{ headers: { properties: { 'X-Tenant': { type: 'string' } } } }, `${at}.headers.properties.X-Tenant: header names must be written in lower case`],
      [{ headers: { required: ['X-Tenant'] } }, `${at}.headers.required[0]: header names must be written in lower case`],
      [{ body: true }, `${at}.body: must be object`],
      [{ body: {}, rejectedCode: 500 }, `${at}.rejectedCode: must be <= 499`],
      [{ body: {}, maxDepth: 0 }, `${at}.maxDepth: must be >= 1`],
      [{ body: {}, bodySchema: {} }, `${at}.bodySchema: is not a known field`],
    ];
    for (const [conf, expected] of cases) {
      const found = problems(conf);
      assert.ok(found.some((p) => p.startsWith(expected)), `${JSON.stringify(conf)}\nexpected ${expected}\ngot ${found.join('\n')}`);
    }
  });

  it('asks the gateway for the body only when a body schema is configured', () => {
    const env = pluginEnv({ path: 'routes[0].plugins.request-validation' });
    assert.equal(plugin.create({ body: { type: 'object' }, rejectedCode: 400, maxDepth: 64 }, env).needsBody, true);
    assert.equal(plugin.create({ query: { type: 'object' }, rejectedCode: 400, maxDepth: 64 }, env).needsBody, false);
  });
});

describe('strict JSON scanner', () => {
  it('finds duplicate keys at any depth, compared after unescaping, with a JSON Pointer', () => {
    assert.deepEqual(scanJson('{"a":1,"a":2}', 64), { kind: 'duplicate', path: '/a' });
    assert.deepEqual(scanJson('{"a":{"b":1,"c":[1,{"x":1,"y":2,"x":3}]}}', 64), { kind: 'duplicate', path: '/a/c/1/x' });
    assert.deepEqual(scanJson('{"a":1,"\\u0061":2}', 64), { kind: 'duplicate', path: '/a' });
    assert.deepEqual(scanJson('{"a/b":{"k":1,"k":1}}', 64), { kind: 'duplicate', path: '/a~1b/k' });
    assert.deepEqual(scanJson('[{"a":1},{"a":1},{"b":1,"b":2}]', 64), { kind: 'duplicate', path: '/2/b' });
  });

  it('does not mistake values, nested objects or escaped quotes for keys', () => {
    for (const ok of ['{"a":"a","b":"a"}', '{"a":{"a":1},"b":{"a":1}}', '{"a\\"":1,"a":2}', '{"\\\\":1,"\\\\\\\\":2}', '[["a","a"],{"a":["a"]}]', '{"":1,"x":""}', '"a"', '1']) {
      assert.equal(scanJson(ok, 64), null, ok);
    }
  });

  it('refuses nesting deeper than the limit before anything is parsed', () => {
    assert.equal(scanJson(`${'['.repeat(64)}${']'.repeat(64)}`, 64), null);
    assert.deepEqual(scanJson(`${'['.repeat(65)}${']'.repeat(65)}`, 64), { kind: 'depth' });
    assert.deepEqual(scanJson(`${'{"a":'.repeat(65)}1${'}'.repeat(65)}`, 64), { kind: 'depth' });
    // A huge nesting is refused in one pass, without the memory JSON.parse would take.
    assert.deepEqual(scanJson('['.repeat(5_000_000), 64), { kind: 'depth' });
  });

  it('is linear: a large object with many keys and long escaped strings scans quickly', () => {
    const members: string[] = [];
    for (let i = 0; i < 200_000; i++) members.push(`"k${i}":"${'\\\\'.repeat(5)}v"`);
    const text = `{${members.join(',')}}`;
    const t0 = performance.now();
    assert.equal(scanJson(text, 64), null);
    assert.ok(performance.now() - t0 < 2000, 'scan took too long');
    assert.deepEqual(scanJson(`{${members.join(',')},"k7":1}`, 64), { kind: 'duplicate', path: '/k7' });
  });
});

describe('request-validation traffic', () => {
  it('passes a valid body with its exact bytes; refuses an invalid one with paths and messages, never values', async () => {
    const up = await recorder();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'request-validation': { body: ORDER } } }] });
    // Odd spacing, escapes, key order and number spellings must all arrive untouched.
    const valid = Buffer.from('{ "items" : [ {"qty":1.0e0,"sku":"ABC-1"} ],\n\t"customer":"J\\u00f6rg \u00e9"  }');
    const ok = await post(gw.http, '/orders', valid);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(up.bodies.length, 1);
    assert.ok(up.bodies[0]!.equals(valid), 'the upstream got the exact bytes');
    assert.equal((json(ok).headers as Record<string, string>)['content-length'], String(valid.length));

    const secret = 'sk_live_canary_value_123';
    const bad = await post(gw.http, '/orders', JSON.stringify({ customer: '', note: secret, email: 'not-an-email', items: [{ sku: 'abc', qty: 0 }, { qty: 'x' }], extra: secret }));
    assert.equal(bad.status, 400);
    assert.equal(bad.headers['content-type'], 'application/json');
    const e = refusal(bad);
    assert.equal(e.code, 'GH_ERR_REQUEST_INVALID');
    assert.equal(e.message, 'request does not match the schema');
    const got = e.details.map((d) => `${d.in} ${d.path} ${d.message}`);
    for (const expected of [
      'body /customer must NOT have fewer than 1 characters',
      'body /note must NOT have more than 10 characters',
      'body /email must match format "email"',
      'body /items/0/sku must match pattern "^[A-Z]{3}-\\d+$"',
      'body /items/0/qty must be >= 1',
      'body /items/1/sku is required',
      'body /items/1/qty must be integer',
      'body /extra is not allowed',
    ]) {
      assert.ok(got.includes(expected), `missing "${expected}" in\n${got.join('\n')}`);
    }
    assert.ok(!bad.body.includes(secret) && !bad.body.includes('not-an-email'), 'offending values are never echoed');
    assert.equal(up.bodies.length, 1, 'an invalid request is not proxied');
  });

  it('refuses duplicate keys, top-level and nested, and bodies that are not strict JSON', async () => {
    const up = await recorder();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'request-validation': { body: ORDER, maxDepth: 8 } } }] });
    const cases: Array<[string | Buffer, OutgoingHttpHeaders, string]> = [
      ['{"customer":"a","items":[{"sku":"ABC-1","qty":1}],"customer":"admin"}', JSON_HEADERS, '/customer duplicates a key of its object'],
      ['{"customer":"a","items":[{"sku":"ABC-1","qty":1,"qty":-5}]}', JSON_HEADERS, '/items/0/qty duplicates a key of its object'],
      ['{"customer":"a","\\u0063ustomer":"b","items":[{"sku":"ABC-1","qty":1}]}', JSON_HEADERS, '/customer duplicates a key of its object'],
      ['{"customer":"a","items":[{"sku":"ABC-1","qty":1}]', JSON_HEADERS, ' is not valid JSON'],
      ["{'customer':'a'}", JSON_HEADERS, ' is not valid JSON'],
      [Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), JSON_HEADERS, ' is not valid UTF-8'],
      [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"customer":"a","items":[{"sku":"ABC-1","qty":1}]}')]), JSON_HEADERS, ' is not valid JSON'],
      ['{"customer":"a","items":[{"sku":"ABC-1","qty":1}]}', { 'content-type': 'text/plain' }, ' must be sent as application/json'],
      ['{"customer":"a","items":[{"sku":"ABC-1","qty":1}]}', {}, ' must be sent as application/json'],
      [`{"customer":"a","items":${'['.repeat(10)}${']'.repeat(10)}}`, JSON_HEADERS, ' nests deeper than 8 levels'],
    ];
    for (const [body, headers, expected] of cases) {
      const r = await post(gw.http, '/orders', body, headers);
      assert.equal(r.status, 400, `${String(body)} -> ${r.status}`);
      const got = refusal(r).details.map((d) => `${d.path} ${d.message}`);
      // `${path} ${message}`: the whole body has the empty pointer.
      assert.deepEqual(got, [expected], String(body));
      assert.ok(!r.body.includes('admin'), 'values are not echoed');
    }
    const missing = await send(gw.http, '/orders', { method: 'POST', headers: JSON_HEADERS });
    assert.equal(missing.status, 400);
    assert.deepEqual(refusal(missing).details, [{ in: 'body', path: '', message: 'is required' }]);
    assert.equal(up.bodies.length, 0, 'nothing was proxied');
    const ok = await post(gw.http, '/orders', '{"customer":"a","items":[{"sku":"ABC-1","qty":1}]}', { 'content-type': 'application/merge-patch+json; charset=utf-8' });
    assert.equal(ok.status, 200, 'application/*+json with parameters is JSON');
  });

  it('checks query arguments (arrays only where the schema says so) and headers, all failures at once', async () => {
    const up = await recorder();
    const gw = await gateway({
      routes: [
        {
          id: 'r',
          paths: ['/*'],
          upstream: { nodes: [node(up.port)] },
          plugins: {
            'request-validation': {
              query: {
                type: 'object',
                required: ['page'],
                properties: { page: { type: 'integer', minimum: 1 }, tag: { type: 'array', items: { type: 'string', enum: ['a', 'b'] }, maxItems: 2 }, sort: { enum: ['asc', 'desc'] } },
              },
              headers: { type: 'object', required: ['x-tenant'], properties: { 'x-tenant': { type: 'string', pattern: '^[a-z]+$' }, 'x-limit': { type: 'integer', maximum: 100 } } },
              rejectedCode: 422,
            },
          },
        },
      ],
    });
    const tenant = { 'x-tenant': 'acme' };
    const ok = await send(gw.http, '/list?page=2&tag=a&tag=b&sort=asc&sort=nonsense&other=1', { headers: { ...tenant, 'x-limit': '50' } });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(json(ok).url, '/list?page=2&tag=a&tag=b&sort=asc&sort=nonsense&other=1', 'the query goes upstream unchanged');
    assert.equal((json(ok).headers as Record<string, string>)['x-limit'], '50', 'coercion works on a copy: the header goes upstream as sent');

    const r = await send(gw.http, '/list?page=0&tag=a&tag=c&tag=b', { headers: { 'x-tenant': 'ACME-secret', 'x-limit': 'lots' } });
    assert.equal(r.status, 422);
    const e = refusal(r);
    assert.equal(e.code, 'GH_ERR_REQUEST_INVALID');
    const got = e.details.map((d) => `${d.in} ${d.path} ${d.message}`);
    for (const expected of ['query /page must be >= 1', 'query /tag/1 must be equal to one of the allowed values', 'query /tag must NOT have more than 2 items', 'headers /x-tenant must match pattern "^[a-z]+$"', 'headers /x-limit must be integer']) {
      assert.ok(got.includes(expected), `missing "${expected}" in\n${got.join('\n')}`);
    }
    assert.ok(!r.body.includes('ACME-secret') && !r.body.includes('lots'));

    const missing = await send(gw.http, '/list');
    assert.equal(missing.status, 422);
    assert.deepEqual(refusal(missing).details.map((d) => `${d.in} ${d.path} ${d.message}`), ['headers /x-tenant is required', 'query /page is required']);
    assert.equal(up.bodies.length, 1, 'only the valid request was proxied');
  });

  it('a body over the route maxBodySize is 413, chunked or not; a chunked valid body is forwarded whole', async () => {
    const up = await recorder();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], maxBodySize: 1024, upstream: { nodes: [node(up.port)] }, plugins: { 'request-validation': { body: ORDER } } }] });
    const big = JSON.stringify({ customer: 'x'.repeat(2000), items: [{ sku: 'ABC-1', qty: 1 }] });
    const withLength = await post(gw.http, '/orders', big);
    assert.equal(withLength.status, 413);
    assert.equal((json(withLength).error as { code: string }).code, 'GH_ERR_BODY_TOO_LARGE');
    const chunkedBig = await postChunked(gw.http, '/orders', [big.slice(0, 600), big.slice(600, 1200), big.slice(1200)]);
    assert.equal(chunkedBig.status, 413);
    assert.equal((json(chunkedBig).error as { code: string }).code, 'GH_ERR_BODY_TOO_LARGE');
    assert.equal(up.bodies.length, 0, 'nothing over the limit reached the upstream');

    const items = Array.from({ length: 12 }, (_, i) => ({ sku: `ABC-${i}`, qty: i + 1 }));
    const whole = JSON.stringify({ customer: 'chunky', items });
    assert.ok(whole.length > 300 && whole.length < 1024);
    const pieces = [whole.slice(0, 100), whole.slice(100, 200), whole.slice(200)];
    const ok = await postChunked(gw.http, '/orders', pieces);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(up.bodies.length, 1);
    assert.equal(up.bodies[0]!.toString('utf8'), whole, 'every chunk arrived, in order');
    assert.equal((json(ok).headers as Record<string, string>)['content-length'], String(Buffer.byteLength(whole)), 'sent upstream with its length');

    const badChunked = await postChunked(gw.http, '/orders', ['{"customer":"a",', '"items":[{"sku":"ABC-1","qty":0}]}']);
    assert.equal(badChunked.status, 400);
    assert.deepEqual(refusal(badChunked).details, [{ in: 'body', path: '/items/0/qty', message: 'must be >= 1' }]);
    assert.equal(up.bodies.length, 1);
  });
});

describe('request-validation docs', () => {
  it('the example in docs/plugins/request-validation.md is valid and answers as the page shows', async () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/request-validation.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc);
    assert.ok(yaml, 'the page has a config example');
    const { routes } = parse(yaml[1]!) as { routes: Array<Record<string, unknown>> };
    const up = await recorder();
    const gw = await gateway({ upstreams: [{ id: 'orders', nodes: [node(up.port)] }], routes });
    const headers = { 'x-tenant': 'acme', 'content-type': 'application/json' };
    const sent = '{"customer":"acme","items":[{"sku":"ABC-1","qty":2}]}';
    assert.equal((await post(gw.http, '/orders', sent, headers)).status, 200);
    assert.equal(up.bodies[0]!.toString(), sent);
    const bad = await post(gw.http, '/orders?dryRun=maybe', '{"customer":"acme","items":[{"sku":"ABC-1","qty":0}]}', headers);
    assert.equal(bad.status, 400);
    assert.deepEqual(refusal(bad).details, [
      { in: 'query', path: '/dryRun', message: 'must be boolean' },
      { in: 'body', path: '/items/0/qty', message: 'must be >= 1' },
    ]);
    const dup = await post(gw.http, '/orders', '{"customer":"acme","items":[{"sku":"ABC-1","qty":1}],"customer":"admin"}', headers);
    assert.deepEqual(refusal(dup).details, [{ in: 'body', path: '/customer', message: 'duplicates a key of its object' }]);
    assert.equal(up.bodies.length, 1);
  });
});
