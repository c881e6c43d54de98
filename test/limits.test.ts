/**
 * @module test/limits
 * Request limits end to end: per-route body size (declared and streamed, HTTP/1.1 and HTTP/2), URL length,
 * header size, and clients too slow to send their request. Nothing over a limit may reach the upstream whole.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { startInProcessGateway, type InProcessGateway } from '../src/process/in-process.js';
import { node, startUpstream, type TestUpstream } from './helpers/upstream.js';
import { rawExchange, recordTraffic, trackRequests, waitFor, type RawOptions, type RawResult, type RequestFate, type UpstreamTraffic } from './helpers/raw.js';
import { certDir, type CertDir } from './helpers/certs.js';

const HOST = 'limits.test';
const H = `Host: ${HOST}\r\n`;
const LIMIT = 1024;
const MAX_URL = 256;
const MAX_HEADER = 2048;

let up: TestUpstream;
let traffic: { snapshot(): UpstreamTraffic };
let fates: RequestFate[];
let gw: InProcessGateway;
let certs: CertDir;
let caPem: string;

before(async () => {
  up = await startUpstream();
  traffic = recordTraffic(up);
  fates = trackRequests(up);
  certs = certDir();
  const cert = certs.make(HOST);
  caPem = cert.cert;
  gw = await startInProcessGateway({
    settings: {
      'proxy.https': 0,
      'proxy.maxUrlLength': MAX_URL,
      'proxy.maxHeaderSize': MAX_HEADER,
      'proxy.headersTimeout': 500,
      'proxy.requestTimeout': 1000,
    },
    config: {
      upstreams: [{ id: 'main', nodes: [node(up.port)], retries: 0 }],
      routes: [
        { id: 'small', paths: ['/small', '/small/*'], upstreamId: 'main', maxBodySize: LIMIT },
        { id: 'slow-send', paths: ['/slow-send'], upstreamId: 'main', timeout: { connect: 2000, send: 500, read: 5000 } },
        { id: 'default', paths: ['/*'], upstreamId: 'main' },
      ],
      certificates: [{ id: 'limits', snis: [HOST], cert: cert.cert, key: cert.key }],
    },
  });
});

after(async () => {
  await gw?.close();
  await up?.close();
  certs?.remove();
});

function diff(a: UpstreamTraffic, b: UpstreamTraffic): UpstreamTraffic {
  return { connections: a.connections - b.connections, requests: a.requests - b.requests, bytes: a.bytes - b.bytes };
}

const NOTHING: UpstreamTraffic = { connections: 0, requests: 0, bytes: 0 };

async function exchange(payload: string, opts: RawOptions = {}, port = gw.http) {
  const before = traffic.snapshot();
  const r = await rawExchange(port, payload, { idleMs: 1500, ...opts });
  await new Promise((res) => setTimeout(res, 150));
  return { r, upstream: diff(traffic.snapshot(), before) };
}

function show(r: RawResult): string {
  return JSON.stringify(r.raw.toString('latin1').slice(0, 300));
}

function assertGatewayError(r: RawResult, status: number, code: string): void {
  assert.equal(r.responses.length, 1, `expected exactly one response, got ${show(r)}`);
  const res = r.responses[0]!;
  assert.equal(res.status, status, show(r));
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, code);
}

/** A 408 with the JSON error, or (where node cut the connection itself) a closed connection and nothing else. */
function assertTimedOut(r: RawResult): void {
  if (r.responses.length > 0) assertGatewayError(r, 408, 'GH_ERR_REQUEST_TIMEOUT');
  else assert.equal(r.raw.length, 0, show(r));
  assert.equal(r.closed, true, 'the gateway must close the connection of a client that timed out');
}

/** The upstream requests for `url` since `from` were all aborted and none completed. */
async function assertAbortedUpstream(from: number, url: string): Promise<void> {
  const mine = () => fates.slice(from).filter((f) => f.url === url);
  assert.ok(await waitFor(() => mine().every((f) => f.aborted), 5000), `the upstream request for ${url} must be aborted`);
  assert.ok(mine().every((f) => !f.completed), `the upstream must never see the whole request for ${url}`);
}

function chunk(size: number, fill = 'x'): string {
  return `${size.toString(16)}\r\n${fill.repeat(size)}\r\n`;
}

describe('body size limit per route (HTTP/1.1)', () => {
  test('Content-Length above the limit: 413 at once, nothing sent upstream', async () => {
    const { r, upstream } = await exchange(`POST /small/cl HTTP/1.1\r\n${H}Content-Length: ${LIMIT + 1}\r\n\r\n${'x'.repeat(LIMIT + 1)}`);
    assertGatewayError(r, 413, 'GH_ERR_BODY_TOO_LARGE');
    assert.equal(r.closed, true);
    assert.deepEqual(upstream, NOTHING);
  });

  test('Content-Length above the limit: the 413 comes before the body is sent', async () => {
    // Only the head is written: the gateway must answer from the declared length, not wait for the bytes.
    const { r, upstream } = await exchange(`POST /small/cl-head HTTP/1.1\r\n${H}Content-Length: 1000000\r\n\r\n`);
    assertGatewayError(r, 413, 'GH_ERR_BODY_TOO_LARGE');
    assert.deepEqual(upstream, NOTHING);
  });

  test('a body at and under the limit passes', async () => {
    for (const size of [LIMIT, LIMIT - 24, 0]) {
      const seenBefore = up.seen.length;
      const { r } = await exchange(`POST /small/ok HTTP/1.1\r\n${H}Content-Length: ${size}\r\nConnection: close\r\n\r\n${'y'.repeat(size)}`);
      assert.equal(r.status, 200, show(r));
      assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.bodyBytes), [size]);
    }
  });

  test('a chunked body under the limit passes whole', async () => {
    const seenBefore = up.seen.length;
    const { r } = await exchange('', {
      pieces: [`POST /small/chunked-ok HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n`, chunk(500), chunk(500), '0\r\n\r\n'],
      pauseMs: 50,
    });
    assert.equal(r.status, 200, show(r));
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.bodyBytes), [1000]);
  });

  test('a chunked body crossing the limit mid-stream: 413 or a closed connection; the upstream request is aborted', async () => {
    const fatesBefore = fates.length;
    const { r } = await exchange('', {
      pieces: [`POST /small/chunked-big HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, chunk(600), chunk(600), chunk(600), '0\r\n\r\n'],
      pauseMs: 100,
    });
    if (r.responses.length > 0) assertGatewayError(r, 413, 'GH_ERR_BODY_TOO_LARGE');
    assert.equal(r.closed, true, show(r));
    await assertAbortedUpstream(fatesBefore, '/small/chunked-big');
    assert.ok(up.seen.filter((s) => s.url === '/small/chunked-big').every((s) => s.bodyBytes <= LIMIT), 'no more than the limit may reach the upstream');
  });

  test('a chunked body over the limit in one segment: 413 or closed; no complete request upstream', async () => {
    const fatesBefore = fates.length;
    const { r } = await exchange(`POST /small/chunked-burst HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunk(LIMIT + 1)}0\r\n\r\n`);
    if (r.responses.length > 0) assertGatewayError(r, 413, 'GH_ERR_BODY_TOO_LARGE');
    assert.equal(r.closed, true, show(r));
    await assertAbortedUpstream(fatesBefore, '/small/chunked-burst');
  });

  test('routes without their own limit use proxy.maxBodySize (16 MiB by default): 1 MiB passes', async () => {
    const size = 1024 * 1024;
    const seenBefore = up.seen.length;
    const { r } = await exchange(`POST /big HTTP/1.1\r\n${H}Content-Length: ${size}\r\nConnection: close\r\n\r\n${'z'.repeat(size)}`, { idleMs: 3000 });
    assert.equal(r.status, 200, show(r));
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.bodyBytes), [size]);
  });
});

describe('body size limit per route (HTTP/2)', () => {
  let session: ClientHttp2Session;

  before(async () => {
    session = h2connect(`https://127.0.0.1:${gw.https}`, { servername: HOST, ca: caPem });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('h2 connect timeout')), 5000);
      session.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      session.once('error', reject);
    });
  });

  after(() => {
    session?.destroy();
  });

  /** Send a body in pieces; resolves with the status (0 when the stream was reset) and body. */
  function h2post(path: string, pieces: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve) => {
      const stream = session.request({ ':method': 'POST', ':path': path, ':authority': HOST, ...headers });
      let status = 0;
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => finish(), 8000);
      const finish = () => {
        clearTimeout(timer);
        stream.destroy();
        resolve({ status, body: Buffer.concat(chunks).toString() });
      };
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', finish);
      stream.on('close', finish);
      stream.on('error', () => finish());
      void (async () => {
        for (const p of pieces) {
          if (stream.destroyed || stream.closed) return;
          stream.write(p);
          await new Promise((r) => setTimeout(r, 50));
        }
        if (!stream.destroyed) stream.end();
      })();
    });
  }

  test('content-length above the limit: 413, nothing sent upstream', async () => {
    const before = traffic.snapshot();
    const res = await h2post('/small/h2-cl', [Buffer.alloc(LIMIT + 10, 'a')], { 'content-length': String(LIMIT + 10) });
    assert.equal(res.status, 413);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_BODY_TOO_LARGE');
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(diff(traffic.snapshot(), before), NOTHING);
  });

  test('a streamed body crossing the limit: 413 or a reset stream; the upstream request is aborted', async () => {
    const fatesBefore = fates.length;
    const res = await h2post('/small/h2-stream', [Buffer.alloc(600, 'a'), Buffer.alloc(600, 'b'), Buffer.alloc(600, 'c')]);
    assert.ok(res.status === 413 || res.status === 0, `status ${res.status}`);
    if (res.status === 413) assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_BODY_TOO_LARGE');
    await assertAbortedUpstream(fatesBefore, '/small/h2-stream');
  });

  /** A bodiless request; resolves with the status and body. */
  function h2get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve) => {
      const stream = session.request({ ':method': 'GET', ':path': path, ':authority': HOST, ...headers });
      let status = 0;
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => finish(), 5000);
      const finish = () => {
        clearTimeout(timer);
        stream.destroy();
        resolve({ status, body: Buffer.concat(chunks).toString() });
      };
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', finish);
      stream.on('close', finish);
      stream.on('error', () => finish());
    });
  }

  test(`URL longer than proxy.maxUrlLength: 414, nothing upstream`, async () => {
    const before = traffic.snapshot();
    const res = await h2get(`/${'u'.repeat(MAX_URL)}`);
    assert.equal(res.status, 414);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_URI_TOO_LONG');
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(diff(traffic.snapshot(), before), NOTHING);
  });

  test(
    'a header block larger than proxy.maxHeaderSize: 431, nothing upstream',
    async () => {
      const before = traffic.snapshot();
      const res = await h2get('/h2-big-head', { 'x-big': 'h'.repeat(MAX_HEADER + 100) });
      assert.equal(res.status, 431);
      assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_HEADERS_TOO_LARGE');
      await new Promise((r) => setTimeout(r, 150));
      assert.deepEqual(diff(traffic.snapshot(), before), NOTHING);
    },
  );

  test('a streamed body under the limit passes whole', async () => {
    const seenBefore = up.seen.length;
    const res = await h2post('/small/h2-ok', [Buffer.alloc(500, 'a'), Buffer.alloc(500, 'b')]);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.bodyBytes), [1000]);
  });
});

describe('URL length and header size', () => {
  test(`URL longer than proxy.maxUrlLength (${MAX_URL}): 414, nothing upstream`, async () => {
    const { r, upstream } = await exchange(`GET /${'u'.repeat(MAX_URL)} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assertGatewayError(r, 414, 'GH_ERR_URI_TOO_LONG');
    assert.deepEqual(upstream, NOTHING);
  });

  test('URL at the limit passes', async () => {
    const path = `/${'u'.repeat(MAX_URL - 1)}`;
    const seenBefore = up.seen.length;
    const { r } = await exchange(`GET ${path} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.equal(r.status, 200, show(r));
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.url), [path]);
  });

  test(`head larger than proxy.maxHeaderSize (${MAX_HEADER}): 431, nothing upstream`, async () => {
    const { r, upstream } = await exchange(`GET /h HTTP/1.1\r\n${H}X-Big: ${'h'.repeat(MAX_HEADER + 100)}\r\n\r\n`);
    assertGatewayError(r, 431, 'GH_ERR_HEADERS_TOO_LARGE');
    assert.equal(r.closed, true);
    assert.deepEqual(upstream, NOTHING);
  });

  test('a head well under the limit passes', async () => {
    const seenBefore = up.seen.length;
    const { r } = await exchange(`GET /h-ok HTTP/1.1\r\n${H}X-Big: ${'h'.repeat(MAX_HEADER / 2)}\r\nConnection: close\r\n\r\n`);
    assert.equal(r.status, 200, show(r));
    assert.equal(up.seen.slice(seenBefore)[0]!.headers['x-big'], 'h'.repeat(MAX_HEADER / 2));
  });

  test('the same limits hold for HTTP/1.1 over TLS', async () => {
    let res = await exchange(`GET /${'u'.repeat(MAX_URL)} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { tlsServername: HOST }, gw.https!);
    assertGatewayError(res.r, 414, 'GH_ERR_URI_TOO_LONG');
    assert.deepEqual(res.upstream, NOTHING);
    res = await exchange(`GET /h HTTP/1.1\r\n${H}X-Big: ${'h'.repeat(MAX_HEADER + 100)}\r\n\r\n`, { tlsServername: HOST }, gw.https!);
    assertGatewayError(res.r, 431, 'GH_ERR_HEADERS_TOO_LARGE');
    assert.deepEqual(res.upstream, NOTHING);
  });
});

describe('slow clients (proxy.headersTimeout 500 ms, proxy.requestTimeout 1000 ms)', () => {
  // Each waits at most a few seconds: the timeouts are 0.5 s and 1 s, so a 408 that has not come by then is a bug.
  const bounded: RawOptions = { idleMs: 6000, totalMs: 6000 };

  test('TLS: a head that never ends gets 408 or a closed connection; nothing upstream', async () => {
    const { r, upstream } = await exchange(`GET /slow-head HTTP/1.1\r\n${H}X-Partial: yes\r\n`, { ...bounded, tlsServername: HOST }, gw.https!);
    assertTimedOut(r);
    assert.deepEqual(upstream, NOTHING);
  });

  test('TLS: a body that stalls gets 408 or a closed connection; the upstream request is aborted', async () => {
    const fatesBefore = fates.length;
    const { r } = await exchange(`POST /slow-body-tls HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nonly some`, { ...bounded, tlsServername: HOST }, gw.https!);
    assertTimedOut(r);
    await assertAbortedUpstream(fatesBefore, '/slow-body-tls');
  });

  test('route timeout.send: a request body that stalls gets 408 and the upstream request is aborted', async () => {
    const fatesBefore = fates.length;
    const { r } = await exchange(`POST /slow-send HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nonly some`, bounded);
    assertTimedOut(r);
    await assertAbortedUpstream(fatesBefore, '/slow-send');
  });

  test(
    'HTTP: a head that never ends gets 408 or a closed connection; nothing upstream',
    async () => {
      const { r, upstream } = await exchange(`GET /slow-head HTTP/1.1\r\n${H}X-Partial: yes\r\n`, bounded);
      assertTimedOut(r);
      assert.deepEqual(upstream, NOTHING);
    },
  );

  test(
    'HTTP: a body that stalls (no route send timeout) gets 408 or a closed connection; the upstream request is aborted',
    async () => {
      const fatesBefore = fates.length;
      const { r } = await exchange(`POST /slow-body HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nonly some`, bounded);
      assertTimedOut(r);
      await assertAbortedUpstream(fatesBefore, '/slow-body');
    },
  );

  test('a client that sends its request in time is not cut off', async () => {
    const seenBefore = up.seen.length;
    const { r } = await exchange('', { pieces: [`POST /in-time HTTP/1.1\r\n${H}`, `Content-Length: 4\r\nConnection: close\r\n\r\n`, 'da', 'ta'], pauseMs: 50 });
    assert.equal(r.status, 200, show(r));
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.bodyBytes), [4]);
  });
});
