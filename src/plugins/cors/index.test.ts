/**
 * @module plugins/cors/index.test
 * cors: config refused or accepted with field paths, then real traffic through an in-process gateway to a real
 * upstream: preflights answered at the gateway, origin matching, Vary merging, headers on gateway-made 401s.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { parse } from 'yaml';
import { startInProcessGateway, type InProcessGateway } from '../../process/in-process.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { echo, node, startUpstream, type TestUpstream } from '../../../test/helpers/upstream.js';
import { harness } from '../../../test/helpers/harness.js';

const { gateway, defer } = harness();

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** Names and values as sent, to see repeated headers. */
  raw: string[];
  body: string;
}

function call(port: number, path: string, opts: { method?: string; headers?: OutgoingHttpHeaders } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, raw: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('test client timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Every value of one header, as separate lines on the wire. */
function all(a: Answer, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < a.raw.length; i += 2) if (a.raw[i]!.toLowerCase() === name) out.push(a.raw[i + 1]!);
  return out;
}

function preflight(port: number, path: string, origin: string, extra: OutgoingHttpHeaders = {}): Promise<Answer> {
  return call(port, path, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type', ...extra } });
}

/** An upstream that echoes, and on some paths sends its own Vary or CORS headers. */
async function upstream(): Promise<TestUpstream> {
  const u = await startUpstream((req, res, seen) => {
    if (req.url?.startsWith('/vary-accept')) res.setHeader('Vary', 'Accept-Encoding');
    if (req.url?.startsWith('/vary-origin')) res.setHeader('Vary', 'accept, origin');
    if (req.url?.startsWith('/vary-star')) res.setHeader('Vary', '*');
    if (req.url?.startsWith('/own-cors')) {
      res.setHeader('Access-Control-Allow-Origin', 'https://evil.example.net');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    echo(req, res, seen);
  });
  defer(() => u.close());
  return u;
}

function problems(plugins: Record<string, unknown>, scope: 'route' | 'consumer' = 'route'): string[] {
  const cfg =
    scope === 'route'
      ? { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins }] }
      : { consumers: [{ username: 'c', plugins }] };
  const r = validateDeclarative(cfg, builtinRegistry());
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('cors config', () => {
  it('accepts exact, wildcard, regex and "*" origins, and fills in the defaults', () => {
    const cfg = { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { cors: { allowOrigins: ['https://app.example.com', 'https://*.example.com:8443', 'http://[::1]:3000', 'http://*.localhost:3000'], allowOriginsByRegex: ['https://[a-z]+\\.test\\.dev'] } } }] };
    const r = validateDeclarative(cfg, builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    const cors = r.value.routes[0]!.plugins!.cors as Record<string, unknown>;
    assert.deepEqual(cors.allowMethods, ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
    assert.equal(cors.allowCredentials, false);
    assert.equal(cors.maxAge, 600);
    assert.deepEqual(problems({ cors: { allowOrigins: ['*'], allowHeaders: ['*'], exposeHeaders: ['*'] } }), []);
    assert.deepEqual(problems({ cors: { allowOrigins: ['https://a.example.com'], allowCredentials: true, allowHeaders: ['Authorization', 'Content-Type'] } }), []);
  });

  it('refuses bad configs with the path of the field', () => {
    const at = 'routes[0].plugins.cors';
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ allowOrigins: ['*'], allowCredentials: true }, `${at}.allowOrigins[0]: "*" cannot be used with allowCredentials`],
      [{ allowOrigins: ['*', 'https://a.example.com'] }, `${at}.allowOrigins[0]: "*" allows every origin`],
      [{ allowOrigins: ['null'] }, `${at}.allowOrigins[0]: must not be "null"`],
      [{ allowOrigins: ['https://a.example.com', 'https://a.example.com/'] }, `${at}.allowOrigins[1]: must be "*" or an origin`],
      [{ allowOrigins: ['a.example.com'] }, `${at}.allowOrigins[0]: must be "*" or an origin`],
      [{ allowOrigins: ['https://a.*.example.com'] }, `${at}.allowOrigins[0]: must be "*" or an origin`],
      [{ allowOrigins: ['https://a.example.com:99999'] }, `${at}.allowOrigins[0]: must be "*" or an origin`],
      [{ allowOrigins: ['https://*.com'] }, `${at}.allowOrigins[0]: a wildcard needs at least two labels after it`],
      [{ allowOriginsByRegex: ['https://(a'] }, `${at}.allowOriginsByRegex[0]: is not a valid regular expression`],
      [{}, `${at}.allowOrigins: needs at least one origin`],
      [{ allowOrigins: ['https://a.example.com'], allowCredentials: true, allowHeaders: ['x-a', '*'] }, `${at}.allowHeaders[1]: "*" is not a wildcard for credentialed requests`],
      [{ allowOrigins: ['https://a.example.com'], allowCredentials: true, allowMethods: ['*'] }, `${at}.allowMethods[0]: "*" is not a wildcard`],
      [{ allowOrigins: ['https://a.example.com'], allowCredentials: true, exposeHeaders: ['*'] }, `${at}.exposeHeaders[0]: "*" is not a wildcard`],
      [{ allowOrigins: ['https://a.example.com'], allowHeaders: ['bad header'] }, `${at}.allowHeaders[0]: must match pattern`],
      [{ allowOrigins: ['https://a.example.com'], maxAge: -1 }, `${at}.maxAge: must be >= 0`],
      [{ allowOrigins: ['https://a.example.com'], allowOrigin: ['x'] }, `${at}.allowOrigin: is not a known field`],
    ];
    for (const [conf, expected] of cases) {
      const found = problems({ cors: conf });
      assert.ok(found.some((p) => p.startsWith(expected)), `${JSON.stringify(conf)}\nexpected ${expected}\ngot ${found.join('\n')}`);
    }
    assert.ok(problems({ cors: { allowOrigins: ['*'] } }, 'consumer').some((p) => p.includes('cannot be configured on a consumer')));
  });
});

describe('cors traffic', () => {
  it('answers an allowed preflight at the gateway with the allow headers; nothing reaches the upstream', async () => {
    const up = await upstream();
    const gw = await gateway({
      routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOrigins: ['https://app.example.com'], allowHeaders: ['Content-Type', 'X-Trace'], exposeHeaders: ['X-Total'], maxAge: 120 } } }],
    });
    const r = await preflight(gw.http, '/items', 'https://app.example.com');
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(r.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE');
    assert.equal(r.headers['access-control-allow-headers'], 'Content-Type, X-Trace');
    assert.equal(r.headers['access-control-max-age'], '120');
    assert.equal(r.headers['access-control-allow-credentials'], undefined);
    assert.equal(r.headers['access-control-expose-headers'], undefined, 'expose headers belong on actual responses');
    assert.deepEqual(all(r, 'vary'), ['Origin']);
    assert.equal(r.body, '');
    assert.equal(up.seen.length, 0, 'a preflight is never proxied');

    // OPTIONS without Access-Control-Request-Method is not a preflight: proxied like any request.
    const plain = await call(gw.http, '/items', { method: 'OPTIONS', headers: { origin: 'https://app.example.com' } });
    assert.equal(plain.status, 200);
    assert.equal(up.seen.length, 1);
    assert.equal(plain.headers['access-control-allow-origin'], 'https://app.example.com');
  });

  it('a disallowed preflight gets 204 without allow headers, and is not proxied', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOrigins: ['https://app.example.com'], allowHeaders: ['Content-Type'] } } }] });
    for (const origin of ['https://evil.example.net', 'https://app.example.com.evil.net', 'http://app.example.com', 'null']) {
      const r = await preflight(gw.http, '/items', origin);
      assert.equal(r.status, 204, origin);
      for (const h of ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age', 'access-control-allow-credentials']) {
        assert.equal(r.headers[h], undefined, `${origin}: ${h}`);
      }
      assert.deepEqual(all(r, 'vary'), ['Origin']);
    }
    assert.equal(up.seen.length, 0);
  });

  it('wildcard subdomains match one or more labels of that scheme and port only', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOrigins: ['https://*.Example.com', 'http://*.local.test:8080'] } } }] });
    const allowed = ['https://a.example.com', 'https://a.b.example.com', 'https://x-1.example.com', 'http://dev.local.test:8080'];
    const refused = ['https://example.com', 'https://.example.com', 'https://evil-example.com', 'https://a.example.com.evil.net', 'http://a.example.com', 'https://a.example.com:8443', 'http://dev.local.test', 'https://a@b.example.com', 'https://a.example.com/x'];
    for (const origin of allowed) assert.equal((await preflight(gw.http, '/', origin)).headers['access-control-allow-origin'], origin, origin);
    for (const origin of refused) assert.equal((await preflight(gw.http, '/', origin)).headers['access-control-allow-origin'], undefined, origin);
  });

  it('regex origins are anchored: they must match the whole origin', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOriginsByRegex: ['https://[a-z]+\\.test\\.dev', 'https://pr-\\d+\\.preview\\.example\\.org'] } } }] });
    for (const origin of ['https://app.test.dev', 'https://pr-42.preview.example.org']) {
      assert.equal((await preflight(gw.http, '/', origin)).headers['access-control-allow-origin'], origin, origin);
      assert.equal((await call(gw.http, '/', { headers: { origin } })).headers['access-control-allow-origin'], origin, origin);
    }
    for (const origin of ['https://app.test.dev.evil.net', 'xhttps://app.test.dev', 'https://pr-x.preview.example.org']) {
      assert.equal((await preflight(gw.http, '/', origin)).headers['access-control-allow-origin'], undefined, origin);
    }
  });

  it('credentials: Allow-Credentials on preflights and actual responses, always with the exact origin', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOrigins: ['https://app.example.com'], allowCredentials: true, allowHeaders: ['Authorization'] } } }] });
    const pre = await preflight(gw.http, '/', 'https://app.example.com');
    assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(pre.headers['access-control-allow-credentials'], 'true');
    assert.equal(pre.headers['access-control-allow-headers'], 'Authorization');
    const actual = await call(gw.http, '/', { headers: { origin: 'https://app.example.com', cookie: 'session=1' } });
    assert.equal(actual.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(actual.headers['access-control-allow-credentials'], 'true');
    const other = await call(gw.http, '/', { headers: { origin: 'https://evil.example.net', cookie: 'session=1' } });
    assert.equal(other.status, 200);
    assert.equal(other.headers['access-control-allow-origin'], undefined, 'an unmatched origin is never reflected');
    assert.equal(other.headers['access-control-allow-credentials'], undefined);
  });

  it('simple requests are proxied; matching origins get the headers, others none; upstream CORS headers are replaced', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOrigins: ['https://app.example.com'], exposeHeaders: ['X-Total', 'X-Page'] } } }] });
    const ok = await call(gw.http, '/items', { headers: { origin: 'https://app.example.com' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(ok.headers['access-control-expose-headers'], 'X-Total, X-Page');
    assert.equal(ok.headers['access-control-allow-methods'], undefined);
    assert.deepEqual(all(ok, 'vary'), ['Origin']);

    const refused = await call(gw.http, '/items', { headers: { origin: 'https://evil.example.net' } });
    assert.equal(refused.status, 200, 'the request is still proxied: the browser blocks the read');
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
    assert.equal(refused.headers['access-control-expose-headers'], undefined);
    assert.deepEqual(all(refused, 'vary'), ['Origin']);

    const none = await call(gw.http, '/items');
    assert.equal(none.headers['access-control-allow-origin'], undefined);
    assert.deepEqual(all(none, 'vary'), ['Origin'], 'the answer depends on Origin even when it is absent');
    assert.equal(up.seen.length, 3);

    const own = await call(gw.http, '/own-cors', { headers: { origin: 'https://evil.example.net' } });
    assert.equal(own.headers['access-control-allow-origin'], undefined, "the upstream's own CORS headers do not override the route's config");
    assert.equal(own.headers['access-control-allow-credentials'], undefined);
    const ownOk = await call(gw.http, '/own-cors', { headers: { origin: 'https://app.example.com' } });
    assert.deepEqual(all(ownOk, 'access-control-allow-origin'), ['https://app.example.com']);
  });

  it('merges Origin into an upstream Vary instead of sending a second one, and never duplicates it', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOrigins: ['https://app.example.com'] } } }] });
    const origin = { origin: 'https://app.example.com' };
    assert.deepEqual(all(await call(gw.http, '/vary-accept', { headers: origin }), 'vary'), ['Accept-Encoding, Origin']);
    assert.deepEqual(all(await call(gw.http, '/vary-origin', { headers: origin }), 'vary'), ['accept, origin']);
    assert.deepEqual(all(await call(gw.http, '/vary-star', { headers: origin }), 'vary'), ['*']);
    assert.deepEqual(all(await call(gw.http, '/vary-accept'), 'vary'), ['Accept-Encoding, Origin']);
  });

  it('"*" allows every origin with a constant answer and no Vary', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { cors: { allowOrigins: ['*'], exposeHeaders: ['X-Total'] } } }] });
    const pre = await preflight(gw.http, '/', 'https://anything.example');
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
    assert.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE');
    const actual = await call(gw.http, '/vary-accept', { headers: { origin: 'https://anything.example' } });
    assert.equal(actual.headers['access-control-allow-origin'], '*');
    assert.equal(actual.headers['access-control-expose-headers'], 'X-Total');
    assert.deepEqual(all(actual, 'vary'), ['Accept-Encoding']);
    assert.equal(up.seen.length, 1);
  });

  it('adds the headers to a 401 from key-auth on the same route; a preflight there is answered before auth', async () => {
    const up = await upstream();
    const gw = await gateway({
      consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } }],
      routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'key-auth': {}, cors: { allowOrigins: ['https://app.example.com'], allowHeaders: ['apikey'], exposeHeaders: ['X-Total'] } } }],
    });
    const denied = await call(gw.http, '/orders', { headers: { origin: 'https://app.example.com' } });
    assert.equal(denied.status, 401);
    assert.equal((JSON.parse(denied.body) as { error: { code: string } }).error.code, 'GH_ERR_AUTH_REQUIRED');
    assert.equal(denied.headers['access-control-allow-origin'], 'https://app.example.com', 'the script can read the 401');
    assert.equal(denied.headers['access-control-expose-headers'], 'X-Total');
    assert.deepEqual(all(denied, 'vary'), ['Origin']);
    const pre = await preflight(gw.http, '/orders', 'https://app.example.com', { 'access-control-request-headers': 'apikey' });
    assert.equal(pre.status, 204, 'preflights carry no credentials: never a 401');
    assert.equal(pre.headers['access-control-allow-headers'], 'apikey');
    const ok = await call(gw.http, '/orders', { headers: { origin: 'https://app.example.com', apikey: 'alice-secret-key' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(up.seen.length, 1, 'only the authenticated request was proxied');
  });
});

describe('cors docs', () => {
  it('the example in docs/plugins/cors.md is valid and answers as the page shows', async () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/cors.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc);
    assert.ok(yaml, 'the page has a config example');
    const { routes } = parse(yaml[1]!) as { routes: Array<Record<string, unknown>> };
    const up = await upstream();
    const gw = await gateway({ upstreams: [{ id: 'orders', nodes: [node(up.port)] }], routes });
    const pre = await preflight(gw.http, '/orders/1', 'https://app.example.com');
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-headers'], 'Content-Type, Authorization');
    assert.equal(pre.headers['access-control-allow-credentials'], 'true');
    assert.equal(pre.headers['access-control-max-age'], '600');
    assert.equal((await preflight(gw.http, '/orders/1', 'https://pr-7.preview.example.org')).headers['access-control-allow-origin'], 'https://pr-7.preview.example.org');
    assert.equal((await preflight(gw.http, '/orders/1', 'https://evil.example.net')).headers['access-control-allow-methods'], undefined);
    const denied = await call(gw.http, '/orders/1', { headers: { origin: 'https://app.example.com' } });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['access-control-expose-headers'], 'X-Total-Count');
    assert.equal(up.seen.length, 0);
  });
});
