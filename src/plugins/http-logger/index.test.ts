/**
 * @module plugins/http-logger/index.test
 * http-logger: config checks (defaults, refused URIs and headers with their paths, the docs example), then real
 * traffic through an in-process gateway to a real collector: batches (JSON array, NDJSON) with the default fields,
 * query secrets and credential headers redacted, the collector's own headers sent and never logged; a dead
 * collector (connection refused) and one that never answers: requests still answer normally while the queue stays
 * bounded (drops counted, visible through the stats control action), and records queued while the collector was
 * down are delivered when it comes back; reloads keep the queue and its connection; a config that drops the
 * logger sends what was left; consumer-level logging.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { pino } from 'pino';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { startInProcessGateway, type InProcessGateway } from '../../process/in-process.js';
import { harness } from '../../../test/helpers/harness.js';
import { closedPort, node } from '../../../test/helpers/upstream.js';
import { send, json } from '../../../test/helpers/http.js';
import type { HttpLoggerStats } from './index.js';

const h = harness();
const P = 'routes[0].plugins.http-logger';

function validate(plugin: unknown) {
  return validateDeclarative({ upstreams: [{ id: 'up', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'up', plugins: { 'http-logger': plugin } }] }, builtinRegistry());
}

function problemsOf(plugin: unknown): string[] {
  const r = validate(plugin);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

async function until(cond: () => boolean, ms = 10000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

interface Batch {
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  records: Array<Record<string, unknown>>;
}

/** A real log collector on 127.0.0.1 that keeps every batch; `hang` accepts requests and never answers. */
async function collector(opts: { hang?: boolean; status?: number; port?: number } = {}) {
  const batches: Batch[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  let hung = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (opts.hang) {
        hung++;
        return;
      }
      const ndjson = req.headers['content-type'] === 'application/x-ndjson';
      const records = ndjson ? body.trimEnd().split('\n').map((l) => JSON.parse(l)) : (JSON.parse(body) as Batch['records']);
      batches.push({ url: req.url ?? '', headers: req.headers, body, records });
      res.writeHead(opts.status ?? 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  h.defer(close);
  return {
    port: (server.address() as AddressInfo).port,
    batches,
    records: () => batches.flatMap((b) => b.records),
    get connections() {
      return connections;
    },
    get hung() {
      return hung;
    },
    close,
  };
}

/** An upstream answering JSON with a cookie and a custom header. */
function app() {
  return h.upstream((req, res) => {
    const body = JSON.stringify({ ok: true, url: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'sid=upstream-session', 'x-app': 'v1', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

function routeConfig(upPort: number, plugin: Record<string, unknown>) {
  return { upstreams: [{ id: 'up', nodes: [node(upPort)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'up', plugins: { 'http-logger': plugin } }] };
}

/** An in-process gateway with a status port whose log lines are kept. */
async function loggedGateway(config: unknown): Promise<{ gw: InProcessGateway; logs: string[] }> {
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const gw = await startInProcessGateway({ config, statusServer: true, logger: pino({ level: 'info' }, stream) });
  h.defer(() => gw.close());
  return { gw, logs };
}

async function stats(statusPort: number): Promise<HttpLoggerStats[]> {
  const r = await send(statusPort, '/plugins/http-logger/stats', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(r.status, 200);
  return json<{ workers: HttpLoggerStats[][] }>(r).workers[0]!;
}

/** Poll the stats until `cond` holds (at most `ms`); the last stats seen. */
async function statsWhen(statusPort: number, cond: (s: HttpLoggerStats) => boolean, ms = 15000): Promise<HttpLoggerStats> {
  const end = Date.now() + ms;
  for (;;) {
    const s = (await stats(statusPort))[0]!;
    if (cond(s)) return s;
    if (Date.now() > end) assert.fail(`stats never matched: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('http-logger config', () => {
  it('fills defaults', () => {
    const r = validate({ uri: 'http://collector:8080/logs' });
    assert.ok(r.ok);
    assert.deepEqual((r.value.routes[0] as { plugins: Record<string, unknown> }).plugins['http-logger'], {
      uri: 'http://collector:8080/logs',
      headers: {},
      format: 'json',
      batchMaxSize: 100,
      flushInterval: 1000,
      maxQueue: 10000,
      timeout: 5000,
      retries: 3,
      retryDelay: 1000,
      fields: ['time', 'route', 'service', 'consumer', 'method', 'path', 'status', 'latencyMs', 'upstreamLatencyMs', 'upstream', 'clientIp', 'bytesSent', 'bytesReceived', 'userAgent', 'requestId'],
      includeQuery: false,
      redactQueryArgs: [],
      requestHeaders: [],
      responseHeaders: [],
    });
  });

  it('refuses bad URIs without repeating them', () => {
    assert.ok(problemsOf({}).some((p) => p.includes('uri')));
    assert.ok(problemsOf({ uri: 'ftp://collector/logs' }).some((p) => p.startsWith(`${P}.uri`)));
    assert.ok(problemsOf({ uri: 'http://' }).some((p) => p.startsWith(`${P}.uri`)));
    const creds = problemsOf({ uri: 'https://user:hunter2@collector/logs' });
    assert.deepEqual(creds, [`${P}.uri: must not hold credentials: send them in headers (Authorization)`]);
    assert.deepEqual(problemsOf({ uri: 'http://collector/logs#frag' }), [`${P}.uri: must not have a fragment`]);
    assert.deepEqual(problemsOf({ uri: 'HTTPS://collector/logs?token=abc' }), []);
  });

  it('refuses framing headers, bad numbers, fields and formats with their paths', () => {
    const uri = 'http://collector/logs';
    assert.deepEqual(problemsOf({ uri, headers: { 'Content-Length': '1', Authorization: 'Bearer x' } }), [`${P}.headers.Content-Length: is set by the sender and cannot be configured`]);
    assert.deepEqual(problemsOf({ uri, batchMaxSize: 50, maxQueue: 10 }), [`${P}.maxQueue: must be at least batchMaxSize`]);
    assert.ok(problemsOf({ uri, fields: ['status', 'password'] }).some((p) => p.startsWith(`${P}.fields/1`) || p.startsWith(`${P}.fields[1]`)));
    assert.ok(problemsOf({ uri, fields: ['status', 'status'] }).some((p) => p.startsWith(`${P}.fields`)));
    assert.ok(problemsOf({ uri, format: 'xml' }).some((p) => p.startsWith(`${P}.format`)));
    assert.ok(problemsOf({ uri, retries: -1 }).some((p) => p.startsWith(`${P}.retries`)));
    assert.ok(problemsOf({ uri, requestHeaders: ['bad header'] }).some((p) => p.startsWith(`${P}.requestHeaders`)));
    assert.deepEqual(problemsOf({ uri, fields: [] }), [`${P}.fields: is empty and nothing else is logged: records would be empty`]);
    assert.ok(problemsOf({ uri, extra: 1 }).length > 0);
  });

  it('is allowed on consumers', () => {
    const r = validateDeclarative(
      { consumers: [{ username: 'alice', plugins: { 'http-logger': { uri: 'http://c/logs' } } }], upstreams: [], routes: [] },
      builtinRegistry(),
    );
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
  });

  it('the example in docs/plugins/http-logger.md is valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/http-logger.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const r = validateDeclarative(parse(yaml), builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
  });
});

describe('http-logger traffic', () => {
  it('posts batches of records with the default fields, query secrets and credentials redacted', async () => {
    const c = await collector();
    const up = await app();
    const { gw, logs } = await loggedGateway(
      routeConfig(up.port, {
        uri: `http://127.0.0.1:${c.port}/ingest?token=collector-token`,
        headers: { Authorization: 'Bearer collector-secret' },
        batchMaxSize: 3,
        flushInterval: 60000,
        includeQuery: true,
        requestHeaders: ['Authorization', 'X-Tenant', 'Cookie'],
        responseHeaders: ['Content-Type', 'Set-Cookie', 'X-App'],
      }),
    );
    for (let i = 0; i < 6; i++) {
      const r = await send(gw.http, `/orders/${i}?page=${i}&apikey=client-key&access_token=client-token`, {
        headers: { authorization: 'Basic Y2xpZW50OnB3', cookie: 'sid=client-session', 'x-tenant': 'acme', 'user-agent': 'test-agent', 'x-request-id': `req-${i}` },
      });
      assert.equal(r.status, 200);
    }
    assert.ok(await until(() => c.records().length === 6), `collector got ${c.records().length} records`);
    // Six records, batchMaxSize 3 and a long flush interval: exactly two full batches.
    assert.deepEqual(c.batches.map((b) => b.records.length), [3, 3]);
    const b = c.batches[0]!;
    assert.equal(b.url, '/ingest?token=collector-token');
    assert.equal(b.headers.authorization, 'Bearer collector-secret');
    assert.equal(b.headers['content-type'], 'application/json');
    assert.ok(b.body.startsWith('['));
    const rec = c.records()[2]!;
    assert.match(rec.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(rec.route, 'r');
    assert.equal(rec.service, null);
    assert.equal(rec.consumer, null);
    assert.equal(rec.method, 'GET');
    assert.equal(rec.path, '/orders/2');
    assert.equal(rec.status, 200);
    assert.equal(typeof rec.latencyMs, 'number');
    assert.equal(typeof rec.upstreamLatencyMs, 'number');
    assert.equal(rec.upstream, `127.0.0.1:${up.port}`);
    assert.equal(rec.clientIp, '127.0.0.1');
    assert.ok((rec.bytesSent as number) > 0);
    assert.equal(rec.bytesReceived, 0);
    assert.equal(rec.userAgent, 'test-agent');
    assert.equal(rec.requestId, 'req-2');
    assert.equal(rec.query, 'page=2&apikey=[redacted]&access_token=[redacted]');
    assert.deepEqual(rec.requestHeaders, { authorization: '[redacted]', 'x-tenant': 'acme', cookie: '[redacted]' });
    assert.deepEqual(rec.responseHeaders, { 'content-type': 'application/json', 'set-cookie': '[redacted]', 'x-app': 'v1' });
    const all = JSON.stringify(c.batches.map((x) => x.records));
    for (const secret of ['client-key', 'client-token', 'Y2xpZW50OnB3', 'client-session', 'upstream-session']) assert.ok(!all.includes(secret), `${secret} logged`);
    const s = (await stats(gw.status!))[0]!;
    assert.deepEqual({ ...s }, { scope: 'route:r', collector: `http://127.0.0.1:${c.port}`, queued: 0, sent: 6, batches: 2, dropped: 0, failed: 0, retried: 0 });
    assert.equal(c.connections, 1, 'both batches on one kept-alive connection');
    assert.ok(!logs.join('').includes('collector-secret'));
  });

  it('sends NDJSON when asked, only the chosen fields', async () => {
    const c = await collector();
    const up = await app();
    const gw = await h.gateway(routeConfig(up.port, { uri: `http://127.0.0.1:${c.port}/`, format: 'ndjson', batchMaxSize: 2, flushInterval: 60000, fields: ['status', 'method', 'host'] }));
    await send(gw.http, '/a', { headers: { host: 'shop.example' } });
    await send(gw.http, '/b', { method: 'DELETE', headers: { host: 'shop.example' } });
    assert.ok(await until(() => c.batches.length === 1));
    assert.equal(c.batches[0]!.headers['content-type'], 'application/x-ndjson');
    assert.equal(c.batches[0]!.body.split('\n').length, 3, 'two lines and the final newline');
    assert.deepEqual(c.records(), [
      { status: 200, method: 'GET', host: 'shop.example' },
      { status: 200, method: 'DELETE', host: 'shop.example' },
    ]);
  });

  it('sends a partial batch after flushInterval', async () => {
    const c = await collector();
    const up = await app();
    const gw = await h.gateway(routeConfig(up.port, { uri: `http://127.0.0.1:${c.port}/`, batchMaxSize: 100, flushInterval: 50 }));
    await send(gw.http, '/one');
    assert.ok(await until(() => c.records().length === 1));
    assert.equal(c.records()[0]!.path, '/one');
  });

  it('logger with a dead endpoint: requests answer normally, the queue stays bounded, records arrive once the collector is back', async () => {
    const port = await closedPort();
    const up = await app();
    const { gw, logs } = await loggedGateway(
      routeConfig(up.port, {
        uri: `http://127.0.0.1:${port}/ingest?token=collector-token`,
        headers: { Authorization: 'Bearer collector-secret' },
        batchMaxSize: 2,
        flushInterval: 10,
        maxQueue: 5,
        retries: 20,
        retryDelay: 50,
        timeout: 2000,
      }),
    );
    for (let i = 0; i < 12; i++) {
      const r = await send(gw.http, `/dead/${i}`, { timeout: 5000 });
      assert.equal(r.status, 200);
      assert.equal(json(r).url, `/dead/${i}`);
    }
    // Nothing can be delivered: five records held (the batch being retried included), the other seven dropped.
    let s = await statsWhen(gw.status!, (x) => x.queued + x.dropped === 12);
    assert.equal(s.queued, 5);
    assert.equal(s.dropped, 7);
    assert.equal(s.sent, 0);
    assert.ok(await until(() => logs.some((l) => l.includes('log batch failed: will retry'))));
    const retryLine = JSON.parse(logs.find((l) => l.includes('will retry'))!);
    assert.equal(retryLine.reason, 'ECONNREFUSED');
    assert.equal(retryLine.collector, `http://127.0.0.1:${port}`);
    assert.ok(logs.some((l) => l.includes('log queue full')));
    const text = logs.join('');
    assert.ok(!text.includes('collector-secret') && !text.includes('collector-token'), 'the collector\'s secrets never reach the log');

    // The collector comes back on the same port: the retried batch and the rest are delivered.
    const c = await collector({ port });
    assert.ok(await until(() => c.records().length === 5, 20000), `collector got ${c.records().length} records`);
    assert.deepEqual(
      c.records().map((r) => r.path),
      ['/dead/0', '/dead/1', '/dead/2', '/dead/3', '/dead/4'],
    );
    s = (await stats(gw.status!))[0]!;
    assert.equal(s.queued, 0);
    assert.equal(s.sent, 5);
    assert.ok(s.retried > 0);
    // And records made now go straight through.
    await send(gw.http, '/after');
    assert.ok(await until(() => c.records().some((r) => r.path === '/after')));
  });

  it('a collector that never answers: requests answer normally, batches time out and are given up, the queue stays bounded', async () => {
    const c = await collector({ hang: true });
    const up = await app();
    const gw = await h.gateway(
      routeConfig(up.port, { uri: `http://127.0.0.1:${c.port}/`, batchMaxSize: 2, flushInterval: 10, maxQueue: 4, retries: 1, retryDelay: 10, timeout: 150 }),
      {},
      { statusServer: true },
    );
    for (let i = 0; i < 10; i++) {
      const r = await send(gw.http, `/slow/${i}`, { timeout: 5000 });
      assert.equal(r.status, 200);
    }
    let s = (await stats(gw.status!))[0]!;
    assert.ok(s.queued <= 4, `queued ${s.queued}`);
    assert.equal(s.sent, 0);
    assert.ok(await until(() => c.hung >= 1));
    // Each batch is tried twice (timeout 150 ms) and given up: the queue drains into `failed`.
    s = await statsWhen(gw.status!, (x) => x.queued === 0 && x.dropped + x.failed === 10);
    assert.ok(s.failed >= 2);
    assert.equal(s.dropped + s.failed, 10);
    assert.ok(s.retried >= 1);
  });

  it('a reload keeps the queue and its connection, and applies new headers', async () => {
    const c = await collector();
    const up = await app();
    const plugin = { uri: `http://127.0.0.1:${c.port}/`, batchMaxSize: 1, flushInterval: 60000, headers: { 'X-Collector-Key': 'one' } };
    const gw = await h.gateway(routeConfig(up.port, plugin), {}, { statusServer: true });
    await send(gw.http, '/before');
    assert.ok(await until(() => c.batches.length === 1));
    gw.apply(routeConfig(up.port, { ...plugin, headers: { 'X-Collector-Key': 'two' } }));
    gw.apply(routeConfig(up.port, { ...plugin, headers: { 'X-Collector-Key': 'two' } }));
    await send(gw.http, '/after');
    assert.ok(await until(() => c.batches.length === 2));
    assert.equal(c.batches[0]!.headers['x-collector-key'], 'one');
    assert.equal(c.batches[1]!.headers['x-collector-key'], 'two');
    assert.equal(c.connections, 1, 'the same connection after two reloads');
    const s = await stats(gw.status!);
    assert.equal(s.length, 1, 'one queue');
    assert.equal(s[0]!.sent, 2);
  });

  it('records queued when a config stops using the collector are sent, not lost', async () => {
    const c = await collector();
    const up = await app();
    const gw = await h.gateway(routeConfig(up.port, { uri: `http://127.0.0.1:${c.port}/`, batchMaxSize: 100, flushInterval: 600000 }));
    await send(gw.http, '/x1');
    await send(gw.http, '/x2');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.batches.length, 0, 'held for the flush interval');
    const without = { upstreams: [{ id: 'up', nodes: [node(up.port)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'up' }] };
    // The queue is dropped (and closed, sending what it holds) after two loads that do not use it.
    gw.apply(without);
    gw.apply(without);
    assert.ok(await until(() => c.records().length === 2));
    assert.deepEqual(c.records().map((r) => r.path), ['/x1', '/x2']);
  });

  it('works on a service: its routes\' records carry the service id', async () => {
    const c = await collector();
    const up = await app();
    const gw = await h.gateway({
      upstreams: [{ id: 'up', nodes: [node(up.port)] }],
      services: [{ id: 'billing', upstreamId: 'up', plugins: { 'http-logger': { uri: `http://127.0.0.1:${c.port}/`, batchMaxSize: 1, fields: ['route', 'service', 'status'] } } }],
      routes: [
        { id: 'invoices', paths: ['/invoices'], serviceId: 'billing' },
        { id: 'other', paths: ['/other'], upstreamId: 'up' },
      ],
    });
    assert.equal((await send(gw.http, '/other')).status, 200);
    assert.equal((await send(gw.http, '/invoices')).status, 200);
    assert.equal((await send(gw.http, '/nowhere')).status, 404);
    assert.ok(await until(() => c.records().length === 1));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(c.records(), [{ route: 'invoices', service: 'billing', status: 200 }]);
  });

  it('logs a consumer\'s requests when configured on the consumer', async () => {
    const c = await collector();
    const up = await app();
    const gw = await h.gateway({
      consumers: [
        { username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } }, plugins: { 'http-logger': { uri: `http://127.0.0.1:${c.port}/`, batchMaxSize: 1, includeQuery: true } } },
        { username: 'bob', credentials: { 'key-auth': { key: 'bob-secret-key' } } },
      ],
      upstreams: [{ id: 'up', nodes: [node(up.port)] }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'up', plugins: { 'key-auth': { hideCredentials: false } } }],
    });
    assert.equal((await send(gw.http, '/a', { headers: { apikey: 'bob-secret-key' } })).status, 200);
    assert.equal((await send(gw.http, '/b?apikey=alice-secret-key'))!.status, 200);
    assert.equal((await send(gw.http, '/c')).status, 401);
    assert.ok(await until(() => c.records().length === 1));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.records().length, 1, 'only alice\'s request');
    assert.equal(c.records()[0]!.consumer, 'alice');
    assert.equal(c.records()[0]!.query, 'apikey=[redacted]');
  });

  it('a collector refusing batches (400) loses them without retries; requests are unaffected', async () => {
    const c = await collector({ status: 400 });
    const up = await app();
    const gw = await h.gateway(routeConfig(up.port, { uri: `http://127.0.0.1:${c.port}/`, batchMaxSize: 1, retries: 5, retryDelay: 10 }), {}, { statusServer: true });
    assert.equal((await send(gw.http, '/r')).status, 200);
    const s = await statsWhen(gw.status!, (x) => x.failed === 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c.batches.length, 1, 'not retried');
    assert.equal(s.retried, 0);
  });
});
