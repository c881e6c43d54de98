/**
 * @module plugins/opentelemetry/index.test
 * opentelemetry: schema and checks with field paths, the docs example; the OTLP/HTTP exporter against a stand-in
 * collector (batching, flush interval, retries with backoff, final failures, timeouts, the bounded queue, gzip,
 * partial success, secret headers kept out of logs); then real traffic through an in-process gateway to real
 * upstreams: the traceparent the upstream gets matches the exported spans, parent links, timing order, span
 * fields, trace restarts, parent-based and ratio sampling, errors, clients leaving, reloads keeping the exporter,
 * and dead or hung collectors never touching requests.
 *
 * No real OpenTelemetry Collector runs in these tests: the "collector" is a plain node HTTP server that decodes
 * the OTLP/JSON ExportTraceServiceRequest bodies it is sent and answers as each test tells it to.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { pino } from 'pino';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { startInProcessGateway } from '../../process/in-process.js';
import { harness } from '../../../test/helpers/harness.js';
import { closedPort, node } from '../../../test/helpers/upstream.js';
import { json, send } from '../../../test/helpers/http.js';
import { tracesUrl, type OpenTelemetryStats } from './index.js';
import { encodeRequest, OtlpExporter, retryAfterMs, type ExporterOptions } from './exporter.js';

const { upstream, gateway, defer } = harness();
const P = 'routes[0].plugins.opentelemetry';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

// ---------------------------------------------------------------------------------------------------------------
// Helpers

interface Attr {
  key: string;
  value: { stringValue?: string; intValue?: string; boolValue?: boolean; doubleValue?: number };
}
interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Attr[];
  status: { code: number; message?: string };
}
interface ExportRequest {
  resourceSpans: Array<{ resource: { attributes: Attr[] }; scopeSpans: Array<{ scope: { name: string; version: string }; spans: Span[] }> }>;
}
interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: ExportRequest;
  /** The status the collector answered (0: it never answered). */
  answered: number;
}
type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

/** A stand-in OTLP/HTTP collector: decodes every export (gzip too) and answers with `answer(n)` for the n-th. */
async function collector(answer: (n: number) => Answer = () => ({ status: 200 })) {
  const got: Received[] = [];
  let n = 0;
  const up = await upstream(
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let raw = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
        const a = answer(n++);
        const rec: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: JSON.parse(raw.toString('utf8')) as ExportRequest, answered: 0 };
        got.push(rec);
        if (a === 'hang') return;
        rec.answered = a.status;
        res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
        res.end(a.body ?? '{}');
      });
    },
    { readBody: false },
  );
  return {
    port: up.port,
    endpoint: `http://127.0.0.1:${up.port}`,
    got,
    /** Spans of the exports the collector accepted. */
    spans: (): Span[] => got.filter((g) => g.answered >= 200 && g.answered < 300).flatMap((g) => g.body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans))),
  };
}

function attr(span: Span, key: string): string | boolean | number | undefined {
  const v = span.attributes.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  return v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;
}

/** Poll `cond` every 10 ms for at most `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function problemsOf(plugin: unknown, where: 'route' | 'consumer' = 'route'): string[] {
  const cfg =
    where === 'route'
      ? { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { opentelemetry: plugin } }] }
      : { upstreams: [{ id: 'u', nodes: [node(1)] }], consumers: [{ username: 'alice', plugins: { opentelemetry: plugin } }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u' }] };
  const r = validateDeclarative(cfg, builtinRegistry());
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** A gateway with one route (two paths) to `upPort`, tracing to `endpoint`. */
function routeConfig(upPort: number, endpoint: string, plugin: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    upstreams: [{ id: 'u', nodes: [node(upPort)] }],
    routes: [{ id: 'orders', paths: ['/orders', '/orders/:id'], upstreamId: 'u', plugins: { opentelemetry: { endpoint, flushInterval: 20, ...plugin } }, ...extra }],
  };
}

async function stats(statusPort: number): Promise<OpenTelemetryStats[]> {
  const r = await send(statusPort, '/plugins/opentelemetry/stats', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(r.status, 200, r.body);
  return json<{ workers: OpenTelemetryStats[][] }>(r).workers[0]!;
}

/** Ask for the stats every 20 ms until `cond` holds (at most 6 s); the last answer either way. */
async function statsWhen(statusPort: number, cond: (s: OpenTelemetryStats[]) => boolean): Promise<OpenTelemetryStats[]> {
  let s: OpenTelemetryStats[] = [];
  const end = Date.now() + 6000;
  do {
    s = await stats(statusPort);
    if (cond(s)) return s;
    await sleep(20);
  } while (Date.now() < end);
  return s;
}

/** The traceparent the upstream got on its n-th request. */
function sentTraceparent(up: { seen: Array<{ headers: IncomingHttpHeaders }> }, n: number): string {
  const tp = up.seen[n]?.headers.traceparent;
  assert.equal(typeof tp, 'string', `request ${n} reached the upstream with a traceparent`);
  return tp as string;
}

/** Log lines written by a pino logger, for checking what is (not) logged. */
function logSink() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, logger: pino({ level: 'debug' }, stream) };
}

function exporterOptions(over: Partial<ExporterOptions> & { url: string }): ExporterOptions {
  return { headers: {}, compression: 'none', timeout: 5000, batchMaxSize: 100, flushInterval: 20, maxQueue: 1000, retries: 0, retryDelay: 10, ...over };
}

const silent = pino({ level: 'silent' });
const RES = '{"attributes":[{"key":"service.name","value":{"stringValue":"t"}}]}';
const span = (i: number) => JSON.stringify({ traceId: TRACE, spanId: `${'0'.repeat(15)}${(i % 15) + 1}`.slice(-16), name: `s${i}`, kind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2', attributes: [], status: { code: 0 } });

// ---------------------------------------------------------------------------------------------------------------

describe('opentelemetry schema', () => {
  it('fills defaults', () => {
    const r = validateDeclarative(
      { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { opentelemetry: {} } }] },
      builtinRegistry(),
    );
    assert.ok(r.ok);
    assert.deepEqual((r.value.routes[0] as { plugins: Record<string, unknown> }).plugins.opentelemetry, {
      endpoint: 'http://127.0.0.1:4318',
      sampleRatio: 1,
      parentBased: true,
      headers: {},
      resource: {},
      compression: 'none',
      timeout: 10000,
      batchMaxSize: 512,
      flushInterval: 5000,
      maxQueue: 2048,
      retries: 3,
      retryDelay: 1000,
    });
  });

  it('accepts full configs', () => {
    assert.deepEqual(
      problemsOf({
        endpoint: 'https://otel.example.com/otlp/',
        sampleRatio: 0.25,
        parentBased: false,
        headers: { Authorization: 'Bearer x', 'X-Scope-OrgID': 'acme' },
        resource: { 'service.name': 'edge', 'deployment.environment.name': 'prod', 'service.instance.port': 9080, sampled: true, weight: 0.5 },
        compression: 'gzip',
        timeout: 2000,
        batchMaxSize: 100,
        flushInterval: 1000,
        maxQueue: 100,
        retries: 0,
        retryDelay: 5,
      }),
      [],
    );
    assert.deepEqual(problemsOf({ sampleRatio: 0 }), []);
  });

  it('refuses bad values with their field paths', () => {
    const has = (plugin: unknown, path: string, message?: string) => {
      const problems = problemsOf(plugin);
      assert.ok(
        problems.some((p) => p.startsWith(`${P}${path}:`) && (message === undefined || p.includes(message))),
        `${JSON.stringify(plugin)} -> ${problems.join(' | ')}`,
      );
    };
    has({ sampleRatio: 1.5 }, '.sampleRatio');
    has({ sampleRatio: -0.1 }, '.sampleRatio');
    has({ endpoint: 'ftp://collector:4318' }, '.endpoint');
    has({ endpoint: 'collector:4318' }, '.endpoint');
    has({ endpoint: 'http://user:secret@collector:4318' }, '.endpoint', 'must not hold credentials');
    has({ endpoint: 'http://collector:4318/?token=x' }, '.endpoint', 'must not have a query');
    has({ endpoint: 'http://collector:4318/#x' }, '.endpoint', 'must not have a query or fragment');
    has({ headers: { 'Content-Type': 'text/plain' } }, '.headers.Content-Type', 'is set by the exporter');
    has({ headers: { host: 'x' } }, '.headers.host', 'is set by the exporter');
    has({ headers: { 'bad name': 'x' } }, '.headers.bad name', 'is not a known field');
    has({ headers: { 'X-Key': 'a\r\nb' } }, '.headers.X-Key', 'must match pattern');
    has({ batchMaxSize: 100, maxQueue: 10 }, '.maxQueue', 'must be at least batchMaxSize');
    has({ batchMaxSize: 0 }, '.batchMaxSize');
    has({ timeout: 0 }, '.timeout');
    has({ retries: 21 }, '.retries');
    has({ compression: 'br' }, '.compression');
    has({ resource: { 'service.name': { nested: true } } }, '.resource.service.name', 'must be string');
    has({ resource: { 'has space': 'x' } }, '.resource.has space', 'is not a known field');
    has({ parentBased: 'yes' }, '.parentBased');
    has({ extra: 1 }, '.extra', 'is not a known field');
    // A credential in the endpoint is never repeated in the message.
    assert.ok(problemsOf({ endpoint: 'http://user:secret@collector:4318' }).every((p) => !p.includes('secret')));
  });

  it('cannot be configured on a consumer: the trace is decided before any consumer is known', () => {
    assert.deepEqual(problemsOf({}, 'consumer'), ['consumers[0].plugins.opentelemetry: "opentelemetry" cannot be configured on a consumer (only on: global, service, route)']);
  });

  it('the example in docs/plugins/opentelemetry.md is valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/opentelemetry.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const r = validateDeclarative(parse(yaml), builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    const conf = r.value.globalPlugins?.opentelemetry as Record<string, unknown>;
    assert.equal(conf.endpoint, 'http://otel-collector.internal:4318');
    assert.equal(conf.sampleRatio, 0.1);
  });

  it('posts to <endpoint>/v1/traces, keeping a path prefix', () => {
    assert.equal(tracesUrl('http://127.0.0.1:4318'), 'http://127.0.0.1:4318/v1/traces');
    assert.equal(tracesUrl('http://127.0.0.1:4318/'), 'http://127.0.0.1:4318/v1/traces');
    assert.equal(tracesUrl('https://otel.example.com/otlp//'), 'https://otel.example.com/otlp/v1/traces');
  });
});

describe('opentelemetry OTLP/HTTP exporter', () => {
  it('encodes an ExportTraceServiceRequest, grouping spans by resource', () => {
    const one = JSON.parse(encodeRequest([RES, RES], [span(1), span(2)])) as ExportRequest;
    assert.equal(one.resourceSpans.length, 1);
    assert.deepEqual(one.resourceSpans[0]!.scopeSpans[0]!.scope, { name: 'gatehouse.opentelemetry', version: '1.0.0' });
    assert.deepEqual(one.resourceSpans[0]!.scopeSpans[0]!.spans.map((s) => s.name), ['s1', 's2']);
    const other = '{"attributes":[]}';
    const two = JSON.parse(encodeRequest([RES, other, RES], [span(1), span(2), span(3)])) as ExportRequest;
    assert.equal(two.resourceSpans.length, 2);
    assert.deepEqual(two.resourceSpans.map((rs) => rs.scopeSpans[0]!.spans.map((s) => s.name)), [['s1', 's3'], ['s2']]);
  });

  it('reads Retry-After as seconds or a date', () => {
    assert.equal(retryAfterMs('3'), 3000);
    assert.equal(retryAfterMs(undefined), -1);
    assert.equal(retryAfterMs('soon'), -1);
    assert.equal(retryAfterMs(new Date(10000).toUTCString(), 4000), 6000);
  });

  it('sends a full batch at once and a partial one after flushInterval; POST, JSON, headers, path', async () => {
    const c = await collector();
    const e = new OtlpExporter(exporterOptions({ url: tracesUrl(`${c.endpoint}/prefix`), batchMaxSize: 3, flushInterval: 60000, headers: { Authorization: 'Bearer s3cret' } }), silent);
    defer(() => e.close());
    for (let i = 0; i < 3; i++) assert.equal(e.enqueue(RES, span(i)), true);
    assert.ok(await until(() => c.got.length === 1));
    const g = c.got[0]!;
    assert.equal(g.method, 'POST');
    assert.equal(g.url, '/prefix/v1/traces');
    assert.equal(g.headers['content-type'], 'application/json');
    assert.equal(g.headers.authorization, 'Bearer s3cret');
    assert.equal(g.headers['content-encoding'], undefined);
    assert.deepEqual(c.spans().map((s) => s.name), ['s0', 's1', 's2']);
    // Two more wait for the (long) interval; closing sends them.
    e.enqueue(RES, span(3));
    e.enqueue(RES, span(4));
    await sleep(200);
    assert.equal(c.got.length, 1);
    assert.equal(e.queued, 2);
    e.close();
    assert.ok(await until(() => c.got.length === 2));
    assert.deepEqual(c.spans().map((s) => s.name), ['s0', 's1', 's2', 's3', 's4']);
    assert.equal(e.stats.exported, 5);
    assert.equal(e.enqueue(RES, span(5)), false, 'a closed exporter takes nothing');
    assert.equal(e.stats.dropped, 1);

    const c2 = await collector();
    const e2 = new OtlpExporter(exporterOptions({ url: tracesUrl(c2.endpoint), batchMaxSize: 100, flushInterval: 30 }), silent);
    defer(() => e2.close());
    e2.enqueue(RES, span(9));
    assert.ok(await until(() => c2.got.length === 1), 'the interval sent the partial batch');
    assert.deepEqual(c2.spans().map((s) => s.name), ['s9']);
  });

  it('compresses with gzip when asked', async () => {
    const c = await collector();
    const e = new OtlpExporter(exporterOptions({ url: tracesUrl(c.endpoint), compression: 'gzip', batchMaxSize: 2 }), silent);
    defer(() => e.close());
    e.enqueue(RES, span(1));
    e.enqueue(RES, span(2));
    assert.ok(await until(() => c.got.length === 1));
    assert.equal(c.got[0]!.headers['content-encoding'], 'gzip');
    assert.deepEqual(c.spans().map((s) => s.name), ['s1', 's2']);
  });

  it('retries 429/502/503/504 with backoff (honouring Retry-After), then succeeds', async () => {
    const seq: Answer[] = [{ status: 503 }, { status: 429, headers: { 'retry-after': '0' } }, { status: 502 }, { status: 504 }, { status: 200 }];
    const c = await collector((n) => seq[n] ?? { status: 200 });
    const e = new OtlpExporter(exporterOptions({ url: tracesUrl(c.endpoint), batchMaxSize: 1, retries: 4, retryDelay: 5 }), silent);
    defer(() => e.close());
    e.enqueue(RES, span(1));
    assert.ok(await until(() => e.stats.exported === 1), JSON.stringify(e.stats));
    assert.equal(c.got.length, 5);
    assert.equal(e.stats.retries, 4);
    assert.equal(e.stats.failed, 0);
    assert.deepEqual(c.spans().map((s) => s.name), ['s1']);
  });

  it('gives a batch up when out of retries, and at once on a status that is not retryable', async () => {
    const c = await collector(() => ({ status: 503 }));
    const e = new OtlpExporter(exporterOptions({ url: tracesUrl(c.endpoint), batchMaxSize: 2, retries: 2, retryDelay: 5 }), silent);
    defer(() => e.close());
    e.enqueue(RES, span(1));
    e.enqueue(RES, span(2));
    assert.ok(await until(() => e.stats.failed === 2), JSON.stringify(e.stats));
    assert.equal(c.got.length, 3);
    assert.equal(e.stats.retries, 2);

    const bad = await collector(() => ({ status: 400, body: '{"error":"bad"}' }));
    const e2 = new OtlpExporter(exporterOptions({ url: tracesUrl(bad.endpoint), batchMaxSize: 1, retries: 5, retryDelay: 5 }), silent);
    defer(() => e2.close());
    e2.enqueue(RES, span(1));
    assert.ok(await until(() => e2.stats.failed === 1));
    await sleep(100);
    assert.equal(bad.got.length, 1, '400 is final');
    assert.equal(e2.stats.retries, 0);
  });

  it('counts spans the collector rejects in a partial success', async () => {
    const c = await collector(() => ({ status: 200, body: '{"partialSuccess":{"rejectedSpans":"1","errorMessage":"too old"}}' }));
    const e = new OtlpExporter(exporterOptions({ url: tracesUrl(c.endpoint), batchMaxSize: 3 }), silent);
    defer(() => e.close());
    for (let i = 0; i < 3; i++) e.enqueue(RES, span(i));
    assert.ok(await until(() => e.stats.exported === 2));
    assert.equal(e.stats.rejected, 1);
  });

  it('a dead collector: retried, then counted as failed; the log names its origin only, never headers or path', async () => {
    const port = await closedPort();
    const { lines, logger } = logSink();
    const e = new OtlpExporter(
      exporterOptions({ url: tracesUrl(`http://127.0.0.1:${port}/tenant-token-123`), batchMaxSize: 1, retries: 2, retryDelay: 5, headers: { Authorization: 'Bearer s3cret-value', 'X-Api-Key': 'k3y-value' } }),
      logger,
    );
    defer(() => e.close());
    e.enqueue(RES, span(1));
    assert.ok(await until(() => e.stats.failed === 1), JSON.stringify(e.stats));
    assert.equal(e.stats.retries, 2);
    assert.equal(lines.length, 1, 'one warning');
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(line.collector, `http://127.0.0.1:${port}`);
    assert.match(String(line.reason), /could not be reached \(ECONNREFUSED\)/);
    for (const secret of ['s3cret-value', 'k3y-value', 'tenant-token-123']) assert.ok(!lines[0]!.includes(secret), secret);
    // Further failures within the minute are counted, not logged.
    e.enqueue(RES, span(2));
    assert.ok(await until(() => e.stats.failed === 2));
    assert.equal(lines.length, 1);
  });

  it('an attempt that takes longer than timeout is abandoned', async () => {
    const c = await collector(() => 'hang');
    const e = new OtlpExporter(exporterOptions({ url: tracesUrl(c.endpoint), batchMaxSize: 1, timeout: 150, retries: 1, retryDelay: 5 }), silent);
    defer(() => e.close());
    e.enqueue(RES, span(1));
    assert.ok(await until(() => e.stats.failed === 1), JSON.stringify(e.stats));
    assert.equal(e.stats.retries, 1, 'a timeout is retryable');
    assert.equal(c.got.length, 2);
  });

  it('the queue is bounded: while the collector hangs, spans past maxQueue are dropped and counted', async () => {
    const c = await collector(() => 'hang');
    const e = new OtlpExporter(exporterOptions({ url: tracesUrl(c.endpoint), batchMaxSize: 1, maxQueue: 2, timeout: 60000 }), silent);
    defer(() => e.close());
    const taken = Array.from({ length: 10 }, (_, i) => e.enqueue(RES, span(i)));
    // The first went out at once (and hangs), two wait, seven are dropped.
    assert.deepEqual(taken, [true, true, true, false, false, false, false, false, false, false]);
    assert.equal(e.stats.dropped, 7);
    assert.equal(e.queued, 2);
    assert.ok(await until(() => c.got.length === 1));
  });
});

describe('opentelemetry traffic', () => {
  it('the upstream gets a traceparent whose trace id matches the exported spans; parent links, fields, timing order', async () => {
    const c = await collector();
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, c.endpoint, { resource: { 'deployment.environment.name': 'test' } }));
    const t0 = BigInt(Date.now()) * 1000000n;
    const r = await send(gw.http, '/orders/42?secret=q', { headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=abc,other=1', 'user-agent': 'otel-test/1' } });
    const t1 = BigInt(Date.now()) * 1000000n;
    assert.equal(r.status, 200);

    const tp = sentTraceparent(up, 0);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(tp);
    assert.ok(m, tp);
    assert.equal(m[1], TRACE, 'the caller\'s trace goes on');
    assert.notEqual(m[2], PARENT, 'with the gateway\'s own span as parent');
    assert.equal(up.seen[0]!.headers.tracestate, 'vendor=abc,other=1', 'tracestate passes through');

    assert.ok(await until(() => c.spans().length === 2), `${c.spans().length} spans`);
    const g = c.got[0]!;
    assert.equal(g.url, '/v1/traces');
    assert.equal(g.headers['content-type'], 'application/json');
    const rs = g.body.resourceSpans[0]!;
    const resource = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, a.value.stringValue]));
    assert.equal(resource['service.name'], 'gatehouse');
    assert.equal(resource['deployment.environment.name'], 'test');
    assert.equal(rs.scopeSpans[0]!.scope.name, 'gatehouse.opentelemetry');

    const server = c.spans().find((s) => s.kind === 2)!;
    const client = c.spans().find((s) => s.kind === 3)!;
    assert.ok(server && client);
    // Links: caller -> server span -> client span -> the upstream's parent.
    assert.equal(server.traceId, TRACE);
    assert.equal(client.traceId, TRACE);
    assert.equal(server.parentSpanId, PARENT);
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(client.spanId, m[2]);
    assert.equal(server.traceState, 'vendor=abc,other=1');

    assert.equal(server.name, 'GET /orders/:id');
    assert.deepEqual(server.status, { code: 0 });
    assert.equal(attr(server, 'http.request.method'), 'GET');
    assert.equal(attr(server, 'url.path'), '/orders/42');
    assert.equal(attr(server, 'url.scheme'), 'http');
    assert.equal(attr(server, 'http.route'), '/orders/:id');
    assert.equal(attr(server, 'http.response.status_code'), '200');
    assert.equal(attr(server, 'server.address'), '127.0.0.1');
    assert.equal(attr(server, 'server.port'), String(gw.http));
    assert.equal(attr(server, 'client.address'), '127.0.0.1');
    assert.equal(attr(server, 'network.peer.address'), '127.0.0.1');
    assert.equal(attr(server, 'network.protocol.version'), '1.1');
    assert.equal(attr(server, 'user_agent.original'), 'otel-test/1');
    assert.equal(attr(server, 'http.response.body.size'), String(Buffer.byteLength(r.body)));
    assert.equal(attr(server, 'gatehouse.route.id'), 'orders');
    assert.ok(!JSON.stringify(c.got.map((x) => x.body)).includes('secret=q'), 'the query is never exported');

    assert.equal(client.name, 'GET');
    assert.deepEqual(client.status, { code: 0 });
    assert.equal(attr(client, 'http.request.method'), 'GET');
    assert.equal(attr(client, 'server.address'), '127.0.0.1');
    assert.equal(attr(client, 'server.port'), String(up.port));
    assert.equal(attr(client, 'network.peer.address'), '127.0.0.1');
    assert.equal(attr(client, 'url.full'), `http://127.0.0.1:${up.port}/orders/42`);
    assert.equal(attr(client, 'http.response.status_code'), '200');
    assert.equal(attr(client, 'gatehouse.upstream'), 'upstream:u');

    // Timing: server start <= client start <= client end <= server end, all within the request's wall time.
    const [ss, cs, ce, se] = [server.startTimeUnixNano, client.startTimeUnixNano, client.endTimeUnixNano, server.endTimeUnixNano].map(BigInt) as [bigint, bigint, bigint, bigint];
    assert.ok(ss <= cs && cs <= ce && ce <= se, `${ss} ${cs} ${ce} ${se}`);
    const slack = 50000000n; // clock resolution differences, generous
    assert.ok(ss >= t0 - slack && se <= t1 + slack, `${ss}..${se} outside ${t0}..${t1}`);
  });

  it('starts a new trace without a (valid) traceparent, drops an orphan tracestate, answers higher versions with 00', async () => {
    const c = await collector();
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, c.endpoint));
    await send(gw.http, '/orders', { headers: { tracestate: 'vendor=orphan' } });
    await send(gw.http, '/orders/1', { headers: { traceparent: `00-${TRACE.toUpperCase()}-${PARENT}-01`, tracestate: 'vendor=orphan' } });
    await send(gw.http, '/orders/2', { headers: { traceparent: `cc-${TRACE}-${PARENT}-01-future-field`, tracestate: 'vendor=kept' } });
    await send(gw.http, '/orders/3', { headers: { traceparent: `00-${'0'.repeat(32)}-${PARENT}-01` } });

    const fresh = [0, 1, 3].map((i) => /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(sentTraceparent(up, i))?.[1]);
    for (const id of fresh) {
      assert.ok(id !== undefined && id !== TRACE && id !== '0'.repeat(32), String(id));
    }
    assert.equal(new Set(fresh).size, 3, 'a new trace each');
    assert.equal(up.seen[0]!.headers.tracestate, undefined, 'a tracestate without traceparent is not passed on');
    assert.equal(up.seen[1]!.headers.tracestate, undefined, 'nor with an invalid one');
    assert.match(sentTraceparent(up, 2), new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    assert.equal(up.seen[2]!.headers.tracestate, 'vendor=kept');

    assert.ok(await until(() => c.spans().length === 8), `${c.spans().length} spans`);
    const servers = c.spans().filter((s) => s.kind === 2);
    for (const id of fresh) {
      const s = servers.find((x) => x.traceId === id);
      assert.ok(s, `server span of ${id}`);
      assert.equal(s.parentSpanId, undefined, 'a root span');
      assert.equal(s.traceState, undefined);
    }
    assert.equal(servers.find((x) => x.traceId === TRACE)?.parentSpanId, PARENT);
    assert.equal(servers.find((x) => x.traceId === fresh[0])?.name, 'GET /orders');
  });

  it('parent-based sampling: an incoming flag decides; ratio 0 records no new trace but still propagates flag 00', async () => {
    const c = await collector();
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, c.endpoint, { sampleRatio: 0 }));
    await send(gw.http, '/orders/1');
    await send(gw.http, '/orders/2', { headers: { traceparent: `00-${'1'.repeat(32)}-${PARENT}-00` } });
    await send(gw.http, '/orders/3', { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    assert.match(sentTraceparent(up, 0), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    assert.match(sentTraceparent(up, 1), new RegExp(`^00-${'1'.repeat(32)}-[0-9a-f]{16}-00$`));
    assert.match(sentTraceparent(up, 2), new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    // The sampled request came last: once its spans are in, the others would have been too.
    assert.ok(await until(() => c.spans().length >= 2));
    await sleep(100);
    assert.deepEqual(new Set(c.spans().map((s) => s.traceId)), new Set([TRACE]));
    assert.equal(c.spans().length, 2);
  });

  it('parentBased: false lets the ratio decide for continued traces too (clients cannot force recording)', async () => {
    const c = await collector();
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, c.endpoint, { sampleRatio: 0.5, parentBased: false }));
    // Randomness (rightmost 56 bits) 0 is below the threshold 2^55, all ones above it.
    const low = `${'a'.repeat(18)}${'0'.repeat(14)}`;
    const high = `${'b'.repeat(18)}${'f'.repeat(14)}`;
    await send(gw.http, '/orders/1', { headers: { traceparent: `00-${low}-${PARENT}-01` } });
    await send(gw.http, '/orders/2', { headers: { traceparent: `00-${high}-${PARENT}-00` } });
    assert.match(sentTraceparent(up, 0), new RegExp(`^00-${low}-[0-9a-f]{16}-00$`));
    assert.match(sentTraceparent(up, 1), new RegExp(`^00-${high}-[0-9a-f]{16}-01$`));
    assert.ok(await until(() => c.spans().length >= 2));
    await sleep(100);
    assert.deepEqual([...new Set(c.spans().map((s) => s.traceId))], [high]);
  });

  it('ratio sampling over traffic: about the share asked for, and exactly the traces flagged upstream are exported', async () => {
    const c = await collector();
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, c.endpoint, { sampleRatio: 0.5 }));
    const n = 100;
    for (let i = 0; i < n; i++) await send(gw.http, `/orders/${i}`);
    const flagged = new Set<string>();
    for (let i = 0; i < n; i++) {
      const [, trace, , flags] = sentTraceparent(up, i).split('-');
      if (flags === '01') flagged.add(trace!);
    }
    // Binomial(100, 0.5): standard deviation 5; 25..75 is five of them each way.
    assert.ok(flagged.size >= 25 && flagged.size <= 75, `${flagged.size} of ${n} sampled`);
    assert.ok(await until(() => c.spans().length === 2 * flagged.size), `${c.spans().length} spans for ${flagged.size} sampled`);
    await sleep(100);
    assert.deepEqual(new Set(c.spans().filter((s) => s.kind === 2).map((s) => s.traceId)), flagged);
    assert.equal(c.spans().length, 2 * flagged.size);
  });

  it('upstream and gateway errors: ERROR status on 5xx and failed calls; 4xx leaves the server span unset', async () => {
    const c = await collector();
    const up = await upstream((req, res) => {
      const status = req.url === '/orders/404' ? 404 : req.url === '/orders/503' ? 503 : 200;
      res.writeHead(status, { 'content-length': '2' });
      res.end('no');
    });
    const dead = await closedPort();
    const gw = await gateway({
      consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-otel-key' } } }],
      upstreams: [{ id: 'u', nodes: [node(up.port)] }, { id: 'dead', nodes: [node(dead)] }],
      routes: [
        { id: 'orders', paths: ['/orders/:id'], upstreamId: 'u', plugins: { opentelemetry: { endpoint: c.endpoint, flushInterval: 20 } } },
        { id: 'down', paths: ['/down'], upstreamId: 'dead', plugins: { opentelemetry: { endpoint: c.endpoint, flushInterval: 20 } } },
        { id: 'private', paths: ['/private'], upstreamId: 'u', plugins: { 'key-auth': {}, opentelemetry: { endpoint: c.endpoint, flushInterval: 20 } } },
      ],
    });
    const traceOf = (i: number) => `${String(i).repeat(32)}`;
    const call = (path: string, i: number, headers: Record<string, string> = {}) => send(gw.http, path, { headers: { traceparent: `00-${traceOf(i)}-${PARENT}-01`, ...headers } });
    assert.equal((await call('/orders/404', 1)).status, 404);
    assert.equal((await call('/orders/503', 2)).status, 503);
    assert.equal((await call('/down', 3)).status, 502);
    assert.equal((await call('/private', 4)).status, 401);
    assert.equal((await call('/private', 5, { apikey: 'alice-otel-key' })).status, 200);
    assert.ok(await until(() => c.spans().some((s) => s.traceId === traceOf(5) && s.kind === 3)));
    await sleep(100);
    const spans = (i: number, kind: number) => c.spans().filter((s) => s.traceId === traceOf(i) && s.kind === kind);
    const one = (i: number, kind: number) => {
      const list = spans(i, kind);
      assert.equal(list.length, 1, `trace ${i} kind ${kind}`);
      return list[0]!;
    };

    // 404 from the upstream: the server answered as asked (unset), the client call failed (ERROR).
    assert.deepEqual(one(1, 2).status, { code: 0 });
    assert.equal(attr(one(1, 2), 'http.response.status_code'), '404');
    assert.equal(one(1, 3).status.code, 2);
    assert.equal(attr(one(1, 3), 'error.type'), '404');
    // 503 from the upstream: both ERROR.
    assert.equal(one(2, 2).status.code, 2);
    assert.equal(attr(one(2, 2), 'error.type'), '503');
    assert.equal(one(2, 3).status.code, 2);
    // A dead upstream: 502 from the gateway, the client span failed without a status.
    assert.deepEqual(one(3, 2).status, { code: 2, message: 'GH_ERR_UPSTREAM_UNAVAILABLE' });
    assert.equal(attr(one(3, 2), 'gatehouse.error.code'), 'GH_ERR_UPSTREAM_UNAVAILABLE');
    assert.deepEqual(one(3, 3).status, { code: 2, message: 'GH_ERR_UPSTREAM_UNAVAILABLE' });
    assert.equal(attr(one(3, 3), 'http.response.status_code'), undefined);
    assert.equal(attr(one(3, 3), 'server.port'), String(dead));
    // Refused by key-auth: a server span only, unset, with the gateway's code; no upstream call.
    assert.deepEqual(one(4, 2).status, { code: 0 });
    assert.equal(attr(one(4, 2), 'http.response.status_code'), '401');
    assert.equal(attr(one(4, 2), 'gatehouse.error.code'), 'GH_ERR_AUTH_REQUIRED');
    assert.equal(spans(4, 3).length, 0);
    // Authenticated: the consumer is recorded; the key is not.
    assert.equal(attr(one(5, 2), 'gatehouse.consumer'), 'alice');
    assert.ok(!JSON.stringify(c.got.map((g) => g.body)).includes('alice-otel-key'));
  });

  it('a client that leaves before the answer: both spans end in ERROR', async () => {
    const c = await collector();
    // The upstream never answers; the client leaves once the request has reached it.
    const up = await upstream(() => {});
    const gw = await gateway(routeConfig(up.port, c.endpoint));
    const req = request({ host: '127.0.0.1', port: gw.http, path: '/orders/9', headers: { traceparent: `00-${TRACE}-${PARENT}-01` }, agent: false });
    req.on('error', () => {});
    req.end();
    assert.ok(await until(() => up.seen.length === 1));
    req.destroy();
    assert.ok(await until(() => c.spans().length === 2));
    const server = c.spans().find((s) => s.kind === 2)!;
    const client = c.spans().find((s) => s.kind === 3)!;
    assert.equal(server.status.code, 2);
    assert.equal(attr(server, 'error.type'), 'client_closed');
    assert.equal(client.status.code, 2);
    assert.ok(BigInt(client.endTimeUnixNano) <= BigInt(server.endTimeUnixNano));
    assert.ok(BigInt(client.startTimeUnixNano) <= BigInt(client.endTimeUnixNano));
  });

  it('a dead collector never affects requests: all answered, failures counted, the secret header never logged', async () => {
    const up = await upstream();
    const dead = await closedPort();
    const { lines, logger } = logSink();
    const gw = await startInProcessGateway({
      config: routeConfig(up.port, `http://127.0.0.1:${dead}`, { retries: 1, retryDelay: 5, batchMaxSize: 2, maxQueue: 10, headers: { Authorization: 'Bearer gw-s3cret' } }),
      logger,
      statusServer: true,
    });
    defer(() => gw.close());
    for (let i = 0; i < 20; i++) {
      const r = await send(gw.http, `/orders/${i}`, { timeout: 5000 });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /json/);
    }
    assert.equal(up.seen.length, 20);
    // Every span is accounted for: given up after its retry, or dropped while the queue was full.
    const s = await statsWhen(gw.status!, (x) => x[0] !== undefined && x[0].queued === 0 && x[0].failed + x[0].dropped === 40);
    assert.ok(s[0] !== undefined && s[0].failed + s[0].dropped === 40, JSON.stringify(s));
    assert.equal(s.length, 1);
    assert.equal(s[0]!.collector, `http://127.0.0.1:${dead}`);
    assert.equal(s[0]!.exported, 0);
    assert.ok(s[0]!.failed > 0 && s[0]!.retries > 0, JSON.stringify(s[0]));
    const text = lines.join('');
    assert.match(text, /spans could not all be exported/);
    assert.ok(!text.includes('gw-s3cret'), 'the header value is never logged');
  });

  it('a hung collector: the queue stays bounded, spans are dropped and counted, requests are unaffected', async () => {
    const c = await collector(() => 'hang');
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, c.endpoint, { batchMaxSize: 1, maxQueue: 3, timeout: 60000 }), {}, { statusServer: true });
    for (let i = 0; i < 10; i++) assert.equal((await send(gw.http, `/orders/${i}`, { timeout: 5000 })).status, 200);
    assert.ok(await until(() => c.got.length === 1));
    const s = await stats(gw.status!);
    // 20 spans: one in flight, three queued, the rest dropped.
    assert.deepEqual({ queued: s[0]!.queued, dropped: s[0]!.dropped, exported: s[0]!.exported }, { queued: 3, dropped: 16, exported: 0 });
  });

  it('reloads keep the exporter (its queue, connection and counters); a new endpoint gets a new one and the old is closed', async () => {
    const c1 = await collector();
    const c2 = await collector();
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, c1.endpoint), {}, { statusServer: true });
    await send(gw.http, '/orders/1');
    assert.ok(await until(() => c1.spans().length === 2));
    // Same exporter options, another sample ratio: the same exporter goes on counting.
    gw.apply(routeConfig(up.port, c1.endpoint, { sampleRatio: 0.999999 }));
    await send(gw.http, '/orders/2', { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    assert.ok(await until(() => c1.spans().length === 4));
    let s = await statsWhen(gw.status!, (x) => x[0]?.exported === 4);
    assert.equal(s.length, 1);
    assert.equal(s[0]!.exported, 4, JSON.stringify(s));
    // Another endpoint: a second exporter; the first stays until two loads have not asked for it.
    gw.apply(routeConfig(up.port, c2.endpoint));
    await send(gw.http, '/orders/3');
    assert.ok(await until(() => c2.spans().length === 2));
    assert.equal(c1.spans().length, 4);
    s = await stats(gw.status!);
    assert.deepEqual(s.map((x) => x.collector).sort(), [c1.endpoint, c2.endpoint].sort());
    gw.apply(routeConfig(up.port, c2.endpoint));
    s = await statsWhen(gw.status!, (x) => x[0]?.exported === 2);
    assert.deepEqual(s.map((x) => x.collector), [c2.endpoint]);
    assert.equal(s[0]!.exported, 2);
  });

  it('a global config traces every route; a route config replaces it', async () => {
    const c = await collector();
    const other = await collector();
    const up = await upstream();
    const gw = await gateway({
      globalPlugins: { opentelemetry: { endpoint: c.endpoint, flushInterval: 20, resource: { 'service.name': 'edge' } } },
      upstreams: [{ id: 'u', nodes: [node(up.port)] }],
      routes: [
        { id: 'a', paths: ['/a/*'], upstreamId: 'u' },
        { id: 'b', paths: ['/b'], upstreamId: 'u', plugins: { opentelemetry: { endpoint: other.endpoint, flushInterval: 20 } } },
      ],
    });
    await send(gw.http, '/a/x');
    await send(gw.http, '/b');
    assert.ok(await until(() => c.spans().length === 2 && other.spans().length === 2));
    assert.equal(c.spans().find((s) => s.kind === 2)!.name, 'GET /a/*');
    assert.equal(c.got[0]!.body.resourceSpans[0]!.resource.attributes.find((a) => a.key === 'service.name')!.value.stringValue, 'edge');
    assert.equal(attr(other.spans().find((s) => s.kind === 2)!, 'gatehouse.route.id'), 'b');
  });
});
