/**
 * @module test/malformed
 * A raw-socket corpus of malformed and ambiguous HTTP/1.1 requests (request smuggling, header and framing
 * errors, path tricks) against a real gateway and a real upstream. Each rejected request must get the right
 * status with a JSON error from the gateway, and the upstream must receive nothing: no connection, no request,
 * not one byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startInProcessGateway, type InProcessGateway } from '../src/process/in-process.js';
import { node, startUpstream, type TestUpstream } from './helpers/upstream.js';
import { rawExchange, recordTraffic, trackRequests, waitFor, type RawOptions, type RawResult, type RequestFate, type UpstreamTraffic } from './helpers/raw.js';
import { certDir, type CertDir } from './helpers/certs.js';

const HOST = 'gw.test';
const H = `Host: ${HOST}\r\n`;
/** A complete request hidden where a desynchronised parser would read it as the next request. */
const SMUGGLED = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;

let up: TestUpstream;
let decoy: TestUpstream;
let gw: InProcessGateway;
let certs: CertDir;
let traffic: { snapshot(): UpstreamTraffic };
let decoyTraffic: { snapshot(): UpstreamTraffic };
let fates: RequestFate[];

before(async () => {
  up = await startUpstream();
  traffic = recordTraffic(up);
  fates = trackRequests(up);
  // A server the absolute-form tests name as their target: the gateway must never contact it.
  decoy = await startUpstream();
  decoyTraffic = recordTraffic(decoy);
  certs = certDir();
  const cert = certs.make(HOST);
  gw = await startInProcessGateway({
    settings: { 'proxy.https': 0 },
    config: {
      upstreams: [{ id: 'main', nodes: [node(up.port)], retries: 0 }],
      routes: [
        { id: 'all', hosts: [HOST], paths: ['/*'], upstreamId: 'main' },
        { id: 'public', hosts: ['norm.test'], paths: ['/public/*'], upstreamId: 'main' },
        // The decoy's address as a route host: absolute-form targets naming it must still go to our node.
        { id: 'by-ip', hosts: ['127.0.0.1'], paths: ['/*'], upstreamId: 'main' },
        { id: 'any-host', paths: ['/anyhost/*'], upstreamId: 'main' },
      ],
      certificates: [{ id: 'gw', snis: [HOST], cert: cert.cert, key: cert.key }],
    },
  });
});

after(async () => {
  await gw?.close();
  await up?.close();
  await decoy?.close();
  certs?.remove();
});

function diff(a: UpstreamTraffic, b: UpstreamTraffic): UpstreamTraffic {
  return { connections: a.connections - b.connections, requests: a.requests - b.requests, bytes: a.bytes - b.bytes };
}

const NOTHING: UpstreamTraffic = { connections: 0, requests: 0, bytes: 0 };

/** Send raw bytes; report what came back and what reached the upstream and the decoy meanwhile. */
async function exchange(payload: string, opts: RawOptions & { tls?: boolean } = {}) {
  const before = traffic.snapshot();
  const beforeDecoy = decoyTraffic.snapshot();
  const r = await rawExchange(opts.tls ? gw.https! : gw.http, payload, { idleMs: 1500, ...opts, ...(opts.tls ? { tlsServername: HOST } : {}) });
  // Grace period for anything the gateway might still be sending upstream after answering.
  await new Promise((res) => setTimeout(res, 150));
  return { r, upstream: diff(traffic.snapshot(), before), decoy: diff(decoyTraffic.snapshot(), beforeDecoy) };
}

function show(r: RawResult): string {
  return JSON.stringify(r.raw.toString('latin1').slice(0, 400));
}

/** Exactly one response, with this status and a JSON error body carrying this code. */
function assertGatewayError(r: RawResult, status: number, code: string): void {
  assert.equal(r.responses.length, 1, `expected exactly one response, got ${show(r)}`);
  const res = r.responses[0]!;
  assert.equal(res.status, status, show(r));
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, show(r));
  const body = JSON.parse(res.body) as { error: { code: string; message: string } };
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
}

function assertNoSmuggledRequest(): void {
  assert.deepEqual(
    up.seen.filter((s) => s.url.includes('smuggled')).map((s) => s.url),
    [],
    'a request hidden in another one reached the upstream',
  );
}

interface RejectCase {
  name: string;
  payload: string;
  status: number;
  code: string;
  /**
   * Node's parser refuses this only after handing the (valid-looking) head to the gateway, which has then begun
   * the exchange: no request byte goes upstream, but the pool may already be opening a TCP connection.
   */
  afterHead?: true;
}

/** Requests whose head node's parser refuses: 400 (or 431) from the gateway, nothing upstream, connection closed. */
const headCorpus: RejectCase[] = [
  // Request smuggling: framing that two parsers could read two ways (RFC 9112 6.1, 6.3).
  { name: 'Content-Length with Transfer-Encoding (CL.TE)', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Transfer-Encoding with Content-Length (TE.CL)', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${SMUGGLED}\r\n0\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Transfer-Encoding: xchunked', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST', afterHead: true },
  { name: 'Transfer-Encoding: chunked, identity (chunked not last)', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'two Transfer-Encoding headers (chunked, then identity)', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'two Transfer-Encoding: chunked headers (chunked applied twice)', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Transfer-Encoding folded onto a continuation line (obs-fold)', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Transfer-Encoding line starting with a space (obs-fold of the previous field)', payload: `POST /x HTTP/1.1\r\n${H} Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Transfer-Encoding line starting with a tab', payload: `POST /x HTTP/1.1\r\n${H}\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'whitespace before the first header line', payload: `POST /x HTTP/1.1\r\n Transfer-Encoding: chunked\r\n${H}\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Transfer-Encoding value led by a vertical tab', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'space before the colon of Transfer-Encoding', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'tab before the colon of Transfer-Encoding', payload: `POST /x HTTP/1.1\r\n${H}Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  // Line endings (RFC 9112 2.2: a bare CR must be rejected; a bare LF may be, and node does).
  { name: 'bare LF line endings throughout', payload: `GET /x HTTP/1.1\nHost: ${HOST}\n\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'bare LF ending one header line', payload: `GET /x HTTP/1.1\r\nHost: ${HOST}\nX-Other: y\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'bare CR inside the head', payload: `GET /x HTTP/1.1\r\nHost: ${HOST}\rX-Other: y\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  // Content-Length (RFC 9112 6.3: an invalid length is an unrecoverable framing error).
  { name: 'non-numeric Content-Length', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'negative Content-Length', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n${SMUGGLED}`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Content-Length with a plus sign', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: +1\r\n\r\nx`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'hexadecimal Content-Length', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: 0x1\r\n\r\nx`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'two different Content-Length headers', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Content-Length: 1, 2', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: 1, 2\r\n\r\nxx`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'Content-Length with a space inside the number', payload: `POST /x HTTP/1.1\r\n${H}Content-Length: 1 0\r\n\r\n0123456789`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  // Field syntax (RFC 9112 5.1, RFC 9110 5.5).
  { name: 'header line without a colon', payload: `GET /x HTTP/1.1\r\n${H}NoColonHere\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'space between a field name and the colon', payload: `GET /x HTTP/1.1\r\n${H}X-Foo : bar\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'NUL in a header value', payload: `GET /x HTTP/1.1\r\n${H}X-Foo: a\x00b\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'NUL in a header name', payload: `GET /x HTTP/1.1\r\n${H}X-F\x00oo: ab\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'control character in a header value', payload: `GET /x HTTP/1.1\r\n${H}X-Foo: a\x01b\r\n\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  // Request line.
  { name: 'invalid character in the method', payload: `G@T /x HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'unknown HTTP version', payload: `GET /x HTTP/1.2\r\n${H}\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'space inside the request target', payload: `GET /a b HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'raw non-ASCII byte in the request target', payload: `GET /a\xffb HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'GH_ERR_BAD_REQUEST' },
  { name: 'HTTP/2 preface on the HTTP/1.1 port', payload: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400, code: 'GH_ERR_BAD_REQUEST' },
  // Limits: settings.proxy.maxHeaderSize is 16 KiB by default.
  { name: 'too large header', payload: `GET /x HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(20000)}\r\n\r\n`, status: 431, code: 'GH_ERR_HEADERS_TOO_LARGE' },
  { name: 'too many headers', payload: `GET /x HTTP/1.1\r\n${H}${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`, status: 431, code: 'GH_ERR_HEADERS_TOO_LARGE' },
];

describe('malformed request heads are refused before anything reaches the upstream', () => {
  test('control: a well-formed request is proxied (so the zero counts below mean something)', async () => {
    const { r, upstream } = await exchange(`GET /control HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.equal(r.status, 200, show(r));
    assert.equal(upstream.requests, 1);
    assert.ok(upstream.bytes > 0);
    assert.equal(up.seen.at(-1)!.url, '/control');
  });

  for (const c of headCorpus) {
    test(c.name, async () => {
      const { r, upstream } = await exchange(c.payload);
      assertGatewayError(r, c.status, c.code);
      assert.equal(r.closed, true, 'the connection must be closed after a framing error');
      if (c.afterHead) assert.deepEqual({ ...upstream, connections: 0 }, NOTHING);
      else assert.deepEqual(upstream, NOTHING);
      assertNoSmuggledRequest();
    });
  }
});

describe('framing variants that are valid are read one way only', () => {
  // Optional whitespace around a field value is not part of it (RFC 9110 5.5) and transfer-coding names are
  // case-insensitive, so these are plain chunked requests: the body is "hello" and the bytes after the last chunk
  // are a second, pipelined request, not part of the first.
  const variants: Array<[string, string]> = [
    ['two spaces before chunked', 'Transfer-Encoding:  chunked'],
    ['a tab before chunked', 'Transfer-Encoding:\tchunked'],
    ['trailing space after chunked', 'Transfer-Encoding: chunked '],
    ['upper-case CHUNKED', 'Transfer-Encoding: CHUNKED'],
  ];
  for (const [name, header] of variants) {
    test(name, async () => {
      const seenBefore = up.seen.length;
      const { r, upstream } = await exchange(`POST /ows HTTP/1.1\r\n${H}${header}\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /ows-next HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
      assert.deepEqual(r.responses.map((x) => x.status), [200, 200], show(r));
      assert.equal(upstream.requests, 2);
      // Pipelined requests are both sent on at once, so the upstream may see them in either order.
      const seen = up.seen.slice(seenBefore);
      assert.deepEqual(seen.map((s) => s.url).sort(), ['/ows', '/ows-next']);
      assert.equal(seen.find((s) => s.url === '/ows')!.bodyBytes, 5);
      assert.equal(seen.find((s) => s.url === '/ows-next')!.bodyBytes, 0);
    });
  }

  test('trailing tab after chunked or a length is refused, or else read the same way', async () => {
    // Also optional whitespace, but node's parser refuses a trailing HTAB in Transfer-Encoding and Content-Length
    // (it accepts one after other fields). Refusing a valid request is safe; reading it two ways would not be.
    for (const [header, body] of [['Transfer-Encoding: chunked\t', '5\r\nhello\r\n0\r\n\r\n'], ['Content-Length: 5\t', 'hello']] as const) {
      const seenBefore = up.seen.length;
      const { r, upstream } = await exchange(`POST /ows-tab HTTP/1.1\r\n${H}${header}\r\nConnection: close\r\n\r\n${body}${SMUGGLED}`);
      if (r.status === 400) {
        assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
        assert.equal(upstream.requests, 0);
        assert.equal(upstream.bytes, 0);
      } else {
        assert.equal(r.status, 200, show(r));
        assert.deepEqual(up.seen.slice(seenBefore).map((x) => [x.url, x.bodyBytes]), [['/ows-tab', 5]]);
      }
      assertNoSmuggledRequest();
    }
  });

  test('a pipelined request after a Content-Length: 0 body is a separate request, answered in order', async () => {
    const seenBefore = up.seen.length;
    const { r } = await exchange(`POST /first HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\nGET /second HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.deepEqual(r.responses.map((x) => x.status), [200, 200], show(r));
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.url), ['/first', '/second']);
    assert.deepEqual(r.responses.map((x) => (JSON.parse(x.body) as { url: string }).url), ['/first', '/second']);
  });

  test('identical repeated Content-Length is refused, or else read as one length', async () => {
    // RFC 9112 6.3 lets a recipient either reject "1, 1" or take it as 1; node rejects. Either way, no desync.
    for (const cl of ['Content-Length: 1\r\nContent-Length: 1', 'Content-Length: 1, 1']) {
      const seenBefore = up.seen.length;
      const { r, upstream } = await exchange(`POST /dup-cl HTTP/1.1\r\n${H}${cl}\r\n\r\nx${SMUGGLED}`);
      if (r.status === 400) {
        assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
        assert.deepEqual(upstream, NOTHING);
      } else {
        assert.equal(r.status, 200, show(r));
        assert.equal(up.seen[seenBefore]!.bodyBytes, 1);
      }
      assertNoSmuggledRequest();
    }
  });
});

describe('malformed chunked bodies', () => {
  // The head of these requests is valid, so the gateway has already matched a route and begun the exchange when
  // the body turns out broken. The upstream request is written together with the first body bytes, so when the
  // very first chunk is broken nothing is sent at all (the pool may already have opened a TCP connection: no
  // request bytes go over it). When a valid chunk came first, it has been streamed: then the upstream request
  // must be aborted, never completed.
  const firstChunkBroken: Array<[string, string]> = [
    ['invalid chunk size', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['chunk size overflowing 64 bits', 'FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n'],
    ['space after the chunk size', '5 \r\nhello\r\n0\r\n\r\n'],
    ['bare LF after the chunk size', '5\nhello\n0\n\n'],
    ['NUL in a chunk extension', '5;\x00\r\nhello\r\n0\r\n\r\n'],
  ];
  for (const [name, body] of firstChunkBroken) {
    test(`${name}: 400, no request bytes upstream`, async () => {
      const { r, upstream } = await exchange(`POST /chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}${SMUGGLED}`);
      assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
      assert.equal(r.closed, true);
      assert.equal(upstream.requests, 0);
      assert.equal(upstream.bytes, 0);
      assertNoSmuggledRequest();
    });
  }

  test('invalid chunk size arriving after the head (separate segment): 400, nothing upstream', async () => {
    const { r, upstream } = await exchange('', {
      pieces: [`POST /chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, `zz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`],
      pauseMs: 150,
    });
    assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
    assert.equal(upstream.requests, 0);
    assert.equal(upstream.bytes, 0);
  });

  const laterChunkBroken: Array<[string, string[]]> = [
    ['invalid size after a valid chunk', ['5\r\nhello\r\n', `zz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`]],
    ['chunk data not followed by CRLF', [`5\r\nhelloXX0\r\n\r\n${SMUGGLED}`]],
  ];
  for (const [name, pieces] of laterChunkBroken) {
    test(`${name}: 400, the upstream request is aborted, never completed`, async () => {
      const fatesBefore = fates.length;
      const { r } = await exchange('', { pieces: [`POST /chunk-late HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, ...pieces], pauseMs: 150 });
      assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
      const mine = () => fates.slice(fatesBefore).filter((f) => f.url === '/chunk-late');
      assert.ok(await waitFor(() => mine().every((f) => f.aborted), 5000), 'the upstream request must be aborted');
      assert.ok(mine().every((f) => !f.completed), 'the upstream must never see a complete request');
      assertNoSmuggledRequest();
    });
  }
});

describe('pipelining and errors', () => {
  test('a malformed request after a valid pipelined one: the valid one is answered first, then 400', async () => {
    const seenBefore = up.seen.length;
    const { r } = await exchange(`GET /before-bad HTTP/1.1\r\n${H}\r\nGET /bad HTTP/1.1\r\n${H}X-Foo: a\x00b\r\n\r\n`);
    assert.deepEqual(r.responses.map((x) => x.status), [200, 400], show(r));
    assert.equal((JSON.parse(r.responses[0]!.body) as { url: string }).url, '/before-bad');
    assert.equal((JSON.parse(r.responses[1]!.body) as { error: { code: string } }).error.code, 'GH_ERR_BAD_REQUEST');
    assert.equal(r.closed, true);
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.url), ['/before-bad']);
  });
});

describe('answered requests', () => {
  test('a request answered before its body came (404) gets no second response when that body is malformed', async () => {
    const { r, upstream } = await exchange(`POST /nothing-here HTTP/1.1\r\nHost: norm.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`);
    assertGatewayError(r, 404, 'GH_ERR_ROUTE_NOT_FOUND');
    assert.equal(r.closed, true);
    assert.deepEqual(upstream, NOTHING);
  });
});

describe('request targets', () => {
  test('absolute-form naming another host is routed by our route to our node, never to that host', async () => {
    // RFC 9112 3.2.2: the target's authority (127.0.0.1:<decoy port>) is the request's host, and the route for
    // 127.0.0.1 sends it to our node. The decoy listening on that very address must get nothing.
    for (const scheme of ['http', 'https']) {
      const seenBefore = up.seen.length;
      const { r, decoy: decoyDelta } = await exchange(`GET ${scheme}://127.0.0.1:${decoy.port}/abs?q=1 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
      assert.equal(r.status, 200, show(r));
      assert.deepEqual(decoyDelta, NOTHING);
      const seen = up.seen.slice(seenBefore);
      assert.equal(seen.length, 1);
      // Only origin-form goes upstream.
      assert.equal(seen[0]!.url, '/abs?q=1');
    }
  });

  test('absolute-form is routed by its authority, not by the Host header', async () => {
    const { r, upstream, decoy: decoyDelta } = await exchange(`GET http://nowhere.test/abs HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assertGatewayError(r, 404, 'GH_ERR_ROUTE_NOT_FOUND');
    assert.deepEqual(upstream, NOTHING);
    assert.deepEqual(decoyDelta, NOTHING);
  });

  test(
    'absolute-form: the upstream gets the host that was routed on',
    async () => {
    const seenBefore = up.seen.length;
    const { r } = await exchange(`GET http://127.0.0.1:${decoy.port}/abs-host HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n`);
    assert.equal(r.status, 200, show(r));
    // The route was chosen for 127.0.0.1, so Host: other.test must not be what the upstream acts on.
    assert.equal(up.seen.slice(seenBefore)[0]!.headers.host, `127.0.0.1:${decoy.port}`);
  },
  );

  test('too long URL: 414, nothing upstream, the connection stays usable', async () => {
    const { r, upstream } = await exchange(`GET /${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\nGET /after-414 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assert.deepEqual(r.responses.map((x) => x.status), [414, 200], show(r));
    assert.equal((JSON.parse(r.responses[0]!.body) as { error: { code: string } }).error.code, 'GH_ERR_URI_TOO_LONG');
    assert.equal(upstream.requests, 1);
    assert.equal(up.seen.at(-1)!.url, '/after-414');
  });

  test('request line longer than the header limit: 431, nothing upstream', async () => {
    const { r, upstream } = await exchange(`GET /${'a'.repeat(20000)} HTTP/1.1\r\n${H}\r\n`);
    assertGatewayError(r, 431, 'GH_ERR_HEADERS_TOO_LARGE');
    assert.deepEqual(upstream, NOTHING);
  });

  test('OPTIONS * is not a path: 400', async () => {
    const { r, upstream } = await exchange(`OPTIONS * HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    assertGatewayError(r, 400, 'GH_ERR_PATH_INVALID');
    assert.deepEqual(upstream, NOTHING);
  });

  test('CONNECT is never tunnelled: nothing reaches the upstream or the named host, the connection is closed', async () => {
    const { r, upstream, decoy: decoyDelta } = await exchange(`CONNECT 127.0.0.1:${decoy.port} HTTP/1.1\r\nHost: 127.0.0.1:${decoy.port}\r\n\r\n`);
    assert.deepEqual(upstream, NOTHING);
    assert.deepEqual(decoyDelta, NOTHING);
    assert.equal(r.closed, true);
    assert.notEqual(r.status, 200);
  });

  test(
    'CONNECT gets a JSON 405',
    async () => {
      const { r } = await exchange(`CONNECT 127.0.0.1:${decoy.port} HTTP/1.1\r\nHost: 127.0.0.1:${decoy.port}\r\n\r\n`);
      assertGatewayError(r, 405, 'GH_ERR_METHOD_NOT_ALLOWED');
    },
  );
});

describe('path normalisation (src/dataplane/router/normalize.ts)', () => {
  const invalid: Array<[string, string]> = [
    ['dot segments climbing above the root', '/a/../../etc/passwd'],
    ['percent-encoded dot segments above the root', '/%2e%2e/'],
    ['mixed-case encoded dot segments above the root', '/%2E./x'],
    ['encoded NUL', '/a%00b'],
    ['backslash', '/a\\b'],
    ['fragment in the target', '/a#b'],
    ['truncated percent escape', '/a%2'],
    ['invalid percent escape', '/a%zzb'],
  ];
  for (const [name, path] of invalid) {
    test(`${name} (${path}): 400, nothing upstream`, async () => {
      const { r, upstream } = await exchange(`GET ${path} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
      assertGatewayError(r, 400, 'GH_ERR_PATH_INVALID');
      assert.deepEqual(upstream, NOTHING);
    });
  }

  // Host norm.test only routes /public/*: a path that climbs out of it must not reach the upstream through it.
  const escapes = ['/public/../admin/x', '/public/%2e%2e/admin', '/public/.%2E/admin', '/public/x/../../admin', '/public/%2e%2e'];
  for (const path of escapes) {
    test(`${path} is routed as what it normalises to (no route): 404, nothing upstream`, async () => {
      const { r, upstream } = await exchange(`GET ${path} HTTP/1.1\r\nHost: norm.test\r\nConnection: close\r\n\r\n`);
      assertGatewayError(r, 404, 'GH_ERR_ROUTE_NOT_FOUND');
      assert.deepEqual(upstream, NOTHING);
    });
  }

  const normalised: Array<[string, string]> = [
    ['/public/./a//b', '/public/a/b'],
    ['/public/a/../b?x=1', '/public/b?x=1'],
    ['/public/%7Euser/%61', '/public/~user/a'],
    ['/public/a%2Eb/%2e', '/public/a.b/'],
    ['/public/a"b', '/public/a%22b'],
  ];
  test('an encoded "/" is refused by default (proxy.ambiguousPaths: reject): 400, nothing upstream', async () => {
    const { r, upstream } = await exchange(`GET /public/a%2fb HTTP/1.1\r\nHost: norm.test\r\nConnection: close\r\n\r\n`);
    assertGatewayError(r, 400, 'GH_ERR_PATH_INVALID');
    assert.deepEqual(upstream, NOTHING);
  });

  for (const [path, forwarded] of normalised) {
    test(`${path} is forwarded as ${forwarded}`, async () => {
      const seenBefore = up.seen.length;
      const { r } = await exchange(`GET ${path} HTTP/1.1\r\nHost: norm.test\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 200, show(r));
      assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.url), [forwarded]);
    });
  }
});

describe('Host header', () => {
  test('missing Host on HTTP/1.1: 400, nothing upstream', async () => {
    const { r, upstream } = await exchange('GET /x HTTP/1.1\r\n\r\n');
    assert.equal(r.status, 400, show(r));
    assert.deepEqual(upstream, NOTHING);
  });

  test(
    'missing Host on HTTP/1.1: the 400 has a JSON error body',
    async () => {
      const { r } = await exchange('GET /x HTTP/1.1\r\n\r\n');
      assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
    },
  );

  test('two Host headers never reach the upstream as two, nor as a host other than the routed one', async () => {
    const seenBefore = up.seen.length;
    const { r } = await exchange(`GET /two-hosts HTTP/1.1\r\n${H}Host: other.test\r\nConnection: close\r\n\r\n`);
    const seen = up.seen.slice(seenBefore);
    if (r.status === 200) {
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.rawHeaders.filter((_, i) => i % 2 === 0 && seen[0]!.rawHeaders[i]!.toLowerCase() === 'host').length, 1);
      assert.equal(seen[0]!.headers.host, HOST);
    } else {
      assert.equal(r.status, 400, show(r));
      assert.equal(seen.length, 0);
    }
  });

  test(
    'two Host headers: 400 (RFC 9112 3.2: MUST)',
    async () => {
      const { r, upstream } = await exchange(`GET /two-hosts HTTP/1.1\r\n${H}Host: other.test\r\nConnection: close\r\n\r\n`);
      assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
      assert.deepEqual(upstream, NOTHING);
    },
  );

  test(
    'Host with characters no host name has: 400 (RFC 9112 3.2: MUST)',
    async () => {
      for (const bad of ['a/b', 'a b', 'user@evil.test', 'a\\b']) {
        const { r, upstream } = await exchange(`GET /anyhost/x HTTP/1.1\r\nHost: ${bad}\r\nConnection: close\r\n\r\n`);
        assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
        assert.deepEqual(upstream, NOTHING);
      }
    },
  );
});

describe('transfer codings the gateway cannot relay', () => {
  test(
    'Transfer-Encoding: gzip, chunked is refused (the gzip coding would be stripped, not decoded)',
    async () => {
      for (const te of ['gzip, chunked', 'identity, chunked']) {
        const { r, upstream } = await exchange(`POST /x HTTP/1.1\r\n${H}Transfer-Encoding: ${te}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
        assert.ok(r.status === 501 || r.status === 400, show(r));
        assert.deepEqual(upstream, NOTHING);
      }
    },
  );
});

test(
  'no upstream connection is opened for a request refused right after its head',
  async () => {
    for (const payload of [
      `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
      `POST /chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
    ]) {
      const { r, upstream } = await exchange(payload);
      assertGatewayError(r, 400, 'GH_ERR_BAD_REQUEST');
      assert.deepEqual(upstream, NOTHING);
    }
  },
);

describe('over TLS (HTTP/1.1 by ALPN on the HTTPS port)', () => {
  const overTls: RejectCase[] = [
    headCorpus.find((c) => c.name.startsWith('Content-Length with Transfer-Encoding'))!,
    headCorpus.find((c) => c.name === 'NUL in a header value')!,
    headCorpus.find((c) => c.name === 'bare CR inside the head')!,
    headCorpus.find((c) => c.name === 'too large header')!,
  ];
  test('control: a well-formed request is proxied', async () => {
    const { r, upstream } = await exchange(`GET /tls-control HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { tls: true });
    assert.equal(r.status, 200, show(r));
    assert.equal(upstream.requests, 1);
  });
  for (const c of overTls) {
    test(c.name, async () => {
      const { r, upstream } = await exchange(c.payload, { tls: true });
      assertGatewayError(r, c.status, c.code);
      assert.deepEqual(upstream, NOTHING);
    });
  }
  test('missing Host on HTTP/1.1 over TLS: 400, nothing upstream', async () => {
    const { r, upstream } = await exchange('GET /x HTTP/1.1\r\n\r\n', { tls: true });
    assert.equal(r.status, 400, show(r));
    assert.deepEqual(upstream, NOTHING);
  });
});

test('no request hidden inside another ever reached the upstream', () => {
  assertNoSmuggledRequest();
});
