/**
 * @module test/tls-http2-websocket
 * The HTTPS port end to end: SNI certificate selection (exact and wildcard), HTTP/2 and HTTP/1.1 by ALPN on the
 * same port to an HTTP/1.1 upstream, and WebSocket proxying, all against real servers on loopback.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { startInProcessGateway, type InProcessGateway } from '../src/process/in-process.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { closedPort, node, startUpstream, type Handler, type TestUpstream } from './helpers/upstream.js';
import { certDir, type CertDir, type TestCert } from './helpers/certs.js';
import { WebSocket, WebSocketServer, type WsServer, type WsSocket } from './helpers/ws.js';
import { waitFor } from './helpers/raw.js';

const A = 'a.example.test';
const B_WILDCARD = '*.b.example.test';

/** Reads the whole body and answers with what arrived, body included. */
const bodyEcho: Handler = (req, res, seen) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    seen.bodyBytes = body.length;
    const out = JSON.stringify({ method: seen.method, url: seen.url, headers: seen.headers, rawHeaders: seen.rawHeaders, body: body.toString('utf8') });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out), 'x-upstream': 'yes' });
    res.end(out);
  });
};

interface Echoed {
  method: string;
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  body: string;
}

let certs: CertDir;
let certA: TestCert;
let certB: TestCert;
let up: TestUpstream;
let gw: InProcessGateway;
let baseConfig: Record<string, unknown>;

before(async () => {
  certs = certDir();
  certA = certs.make(A);
  certB = certs.make(B_WILDCARD);
  up = await startUpstream(bodyEcho, { readBody: false });
  baseConfig = {
    upstreams: [{ id: 'web', nodes: [node(up.port)], retries: 0 }],
    routes: [{ id: 'all', paths: ['/*'], upstreamId: 'web' }],
    certificates: [
      { id: 'a', snis: [A], cert: certA.cert, key: certA.key },
      { id: 'b', snis: [B_WILDCARD], cert: certB.cert, key: certB.key },
    ],
  };
  gw = await startInProcessGateway({ settings: { 'proxy.https': 0 }, config: baseConfig });
  assert.ok(gw.https !== null && gw.https > 0);
});

after(async () => {
  await gw?.close();
  await up?.close();
  certs?.remove();
});

type Handshake = { ok: true; cert: PeerCertificate; authorized: boolean; alpn: string | false | null } | { ok: false; error: string };

/** A TLS handshake with this SNI name (none when undefined), trusting only `ca` when given. */
function handshake(servername: string | undefined, ca?: string, alpn?: string[]): Promise<Handshake> {
  return new Promise((resolve) => {
    const sock = tlsConnect({
      host: '127.0.0.1',
      port: gw.https!,
      ...(servername !== undefined ? { servername } : {}),
      ...(ca ? { ca } : { rejectUnauthorized: false }),
      ...(alpn ? { ALPNProtocols: alpn } : {}),
    });
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), 5000);
    const done = (h: Handshake) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(h);
    };
    sock.once('secureConnect', () => done({ ok: true, cert: sock.getPeerCertificate(), authorized: sock.authorized, alpn: sock.alpnProtocol }));
    sock.once('error', (e) => done({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message }));
    sock.once('close', () => done({ ok: false, error: 'closed' }));
  });
}

describe('TLS with SNI certificates', () => {
  test('an exact SNI name gets its certificate, which verifies for that name', async () => {
    const h = await handshake(A, certA.cert);
    assert.ok(h.ok, `handshake failed: ${!h.ok && h.error}`);
    assert.equal(h.cert.subject.CN, A);
    assert.equal(h.authorized, true);
  });

  test('SNI names are matched case-insensitively', async () => {
    const h = await handshake('A.Example.TEST', certA.cert);
    assert.ok(h.ok, `handshake failed: ${!h.ok && h.error}`);
    assert.equal(h.cert.subject.CN, A);
  });

  test('a name one label under a wildcard gets the wildcard certificate', async () => {
    for (const name of ['x.b.example.test', 'other-1.b.example.test']) {
      const h = await handshake(name, certB.cert);
      assert.ok(h.ok, `handshake for ${name} failed: ${!h.ok && h.error}`);
      assert.equal(h.cert.subject.CN, B_WILDCARD);
      assert.equal(h.authorized, true);
    }
  });

  test('an unknown SNI name fails the handshake', async () => {
    for (const name of ['unknown.example.test', 'b.example.test', 'deep.x.b.example.test', 'example.test']) {
      const h = await handshake(name);
      assert.equal(h.ok, false, `handshake for ${name} must fail`);
    }
  });

  test('no SNI at all fails the handshake (there is no default certificate)', async () => {
    const h = await handshake(undefined);
    assert.equal(h.ok, false);
  });

  test('a config change swaps the certificate table', async () => {
    const certC = certs.make('c.example.test');
    assert.equal((await handshake('c.example.test')).ok, false);
    gw.apply({ ...baseConfig, certificates: [{ id: 'c', snis: ['c.example.test'], cert: certC.cert, key: certC.key }] });
    try {
      const h = await handshake('c.example.test', certC.cert);
      assert.ok(h.ok, `handshake failed: ${!h.ok && h.error}`);
      assert.equal(h.cert.subject.CN, 'c.example.test');
      assert.equal((await handshake(A)).ok, false, 'a certificate no longer configured must not be served');
    } finally {
      gw.apply(baseConfig);
    }
    assert.equal((await handshake(A, certA.cert)).ok, true);
  });

  test('HTTPS to a plain HTTP upstream: 200 with X-Forwarded-Proto: https', async () => {
    const res = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: gw.https!,
          servername: A,
          ca: certA.cert,
          path: '/secure/path?x=1',
          // A client may claim anything here: from an untrusted peer it must be overwritten, not passed on.
          headers: { host: A, 'x-forwarded-proto': 'http' },
          agent: false,
        },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () =>
            resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks).toString() }),
          );
        },
      );
      req.setTimeout(5000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-upstream'], 'yes');
    const seen = JSON.parse(res.body) as Echoed;
    assert.equal(seen.url, '/secure/path?x=1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-port'], String(gw.https));
    assert.equal(seen.headers.host, A);
  });
});

describe('HTTP/2 by ALPN on the HTTPS port', () => {
  let session: ClientHttp2Session;

  before(async () => {
    session = h2connect(`https://127.0.0.1:${gw.https}`, { servername: A, ca: certA.cert });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('h2 connect timeout')), 5000);
      session.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      session.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  });

  after(() => {
    session?.close();
    session?.destroy();
  });

  function h2request(headers: Record<string, string>, body?: Buffer | string): Promise<{ headers: H2Headers; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const stream = session.request(headers, { endStream: body === undefined });
      const timer = setTimeout(() => stream.close(), 10000);
      let resHeaders: H2Headers = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        resHeaders = h;
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        clearTimeout(timer);
        resolve({ headers: resHeaders, body: Buffer.concat(chunks) });
      });
      stream.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      if (body !== undefined) stream.end(body);
    });
  }

  test('ALPN selects h2', () => {
    assert.equal(session.alpnProtocol, 'h2');
  });

  test('GET through the gateway to an HTTP/1.1 upstream', async () => {
    const res = await h2request({ ':method': 'GET', ':path': '/h2/get?q=1', ':authority': A, 'x-custom': 'v' });
    assert.equal(res.headers[':status'], 200);
    assert.equal(res.headers['x-upstream'], 'yes');
    const seen = JSON.parse(res.body.toString()) as Echoed;
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/h2/get?q=1');
    assert.equal(seen.headers.host, A, 'the upstream must get :authority as Host');
    assert.equal(seen.headers['x-custom'], 'v');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0);
    assert.deepEqual(names.filter((n) => n.startsWith(':')), [], 'no pseudo-header may reach an HTTP/1.1 upstream');
    assert.equal(names.filter((n) => n.toLowerCase() === 'host').length, 1);
    assert.equal(seen.body, '');
  });

  test('POST with a body', async () => {
    const res = await h2request({ ':method': 'POST', ':path': '/h2/post', ':authority': A, 'content-type': 'text/plain' }, 'hello over h2');
    assert.equal(res.headers[':status'], 200);
    const seen = JSON.parse(res.body.toString()) as Echoed;
    assert.equal(seen.method, 'POST');
    assert.equal(seen.body, 'hello over h2');
    assert.equal(seen.headers['content-type'], 'text/plain');
    assert.equal(seen.headers.host, A);
    assert.deepEqual(seen.rawHeaders.filter((n, i) => i % 2 === 0 && n.startsWith(':')), []);
  });

  test('POST with a 1 MiB body streams through whole', async () => {
    const body = randomBytes(1024 * 1024).toString('base64').slice(0, 1024 * 1024);
    const res = await h2request({ ':method': 'POST', ':path': '/h2/big', ':authority': A, 'content-length': String(body.length) }, body);
    assert.equal(res.headers[':status'], 200);
    const seen = JSON.parse(res.body.toString()) as Echoed;
    assert.equal(seen.body.length, body.length);
    assert.equal(seen.body, body);
  });

  test('several streams at once on one session', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => h2request({ ':method': 'GET', ':path': `/h2/multi/${i}`, ':authority': A })));
    assert.deepEqual(
      results.map((r) => (JSON.parse(r.body.toString()) as Echoed).url),
      Array.from({ length: 8 }, (_, i) => `/h2/multi/${i}`),
    );
  });

  test('HTTP/1.1 on the same port still works (ALPN fallback)', async () => {
    for (const alpn of [['http/1.1'], undefined]) {
      const res = await new Promise<{ status: number; body: string; alpn: string | false | undefined }>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: gw.https!, servername: A, ca: certA.cert, path: '/h1/fallback', method: 'POST', headers: { host: A }, agent: false, ...(alpn ? { ALPNProtocols: alpn } : {}) },
          (r) => {
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString(), alpn: (r.socket as unknown as { alpnProtocol?: string | false }).alpnProtocol }));
          },
        );
        req.setTimeout(5000, () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end('h1 body');
      });
      assert.equal(res.status, 200, res.body);
      if (alpn) assert.equal(res.alpn, 'http/1.1');
      const seen = JSON.parse(res.body) as Echoed;
      assert.equal(seen.url, '/h1/fallback');
      assert.equal(seen.body, 'h1 body');
      assert.equal(seen.headers['x-forwarded-proto'], 'https');
    }
  });
});

describe('WebSocket', () => {
  let wsUp: WsServer;
  let wsUpPort: number;
  let wsGw: InProcessGateway;
  /** An HTTP server that refuses upgrades on /deny/* and never answers them on /hang/*. */
  let oddUp: Server;
  const hanging: Socket[] = [];
  let deadPort: number;
  /** Upgrade requests the echo upstream accepted. */
  const upgrades: Array<{ url: string; headers: Record<string, string | string[] | undefined> }> = [];
  /** Raw TCP connections made to the echo upstream. */
  let wsUpConnections = 0;
  /** The upstream's side of each accepted WebSocket, by request URL. */
  const serverSides = new Map<string, WsSocket>();

  async function serverSide(url: string): Promise<WsSocket> {
    assert.ok(await waitFor(() => serverSides.has(url), 5000), `the upstream never accepted ${url}`);
    return serverSides.get(url)!;
  }

  before(async () => {
    wsUp = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wsUp.once('listening', () => resolve()));
    wsUpPort = (wsUp.address() as { port: number }).port;
    (wsUp as unknown as { _server: import('node:net').Server })._server.on('connection', () => wsUpConnections++);
    wsUp.on('connection', (sock: WsSocket, req: IncomingMessage) => {
      upgrades.push({ url: req.url ?? '', headers: req.headers });
      serverSides.set(req.url ?? '', sock);
      sock.on('message', (data: Buffer, isBinary: boolean) => {
        const text = isBinary ? '' : data.toString();
        if (text === 'close-me') sock.close(4000, 'bye from upstream');
        else if (text === 'push') sock.send('pushed by upstream');
        else sock.send(data, { binary: isBinary });
      });
    });
    oddUp = createServer((_req, res) => res.end());
    oddUp.on('upgrade', (req: IncomingMessage, sock: Socket) => {
      sock.on('error', () => {});
      if ((req.url ?? '').startsWith('/hang')) {
        hanging.push(sock);
        // Read, so that the gateway letting go (FIN or RST) is noticed.
        sock.resume();
        return;
      }
      const body = '{"denied":"by the node"}';
      sock.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nx-node: odd\r\n\r\n${body}`);
    });
    await new Promise<void>((resolve) => oddUp.listen(0, '127.0.0.1', resolve));
    deadPort = await closedPort();
    wsGw = await startInProcessGateway({
      settings: { 'proxy.https': 0 },
      config: {
        upstreams: [{ id: 'ws', nodes: [node(wsUpPort)], retries: 0 }],
        routes: [
          { id: 'ws', paths: ['/ws', '/ws/*'], upstreamId: 'ws', websocket: true },
          { id: 'plain', paths: ['/plain'], upstreamId: 'ws' },
          { id: 'odd', paths: ['/deny/*', '/hang/*'], upstream: { nodes: [node((oddUp.address() as AddressInfo).port)], retries: 0, timeout: { connect: 2000, send: 2000, read: 1000 } }, websocket: true },
          { id: 'dead', paths: ['/dead'], upstream: { nodes: [node(deadPort)], retries: 0 }, websocket: true },
        ],
        certificates: [{ id: 'a', snis: [A], cert: certA.cert, key: certA.key }],
      },
    });
  });

  after(async () => {
    await wsGw?.close();
    for (const s of hanging) s.destroy();
    await new Promise<void>((resolve) => (oddUp ? oddUp.close(() => resolve()) : resolve()));
    for (const c of wsUp?.clients ?? []) c.terminate();
    await new Promise<void>((resolve) => (wsUp ? wsUp.close(() => resolve()) : resolve()));
  });

  /** Open a client; resolves once open, rejects on error or after 5 s. */
  function open(url: string, opts: Record<string, unknown> = {}): Promise<WsSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('websocket open timeout'));
      }, 5000);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(ws);
      });
      ws.once('error', (e: Error) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  function nextMessage(ws: WsSocket): Promise<{ data: Buffer; isBinary: boolean }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message within 5 s')), 5000);
      ws.once('message', (data: Buffer, isBinary: boolean) => {
        clearTimeout(timer);
        resolve({ data, isBinary });
      });
    });
  }

  function closed(ws: WsSocket): Promise<{ code: number; reason: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('not closed within 5 s')), 5000);
      ws.once('close', (code: number, reason: Buffer) => {
        clearTimeout(timer);
        resolve({ code, reason: reason.toString() });
      });
    });
  }

  test('echoes text and a 256 KiB binary message both ways', async () => {
    const ws = await open(`ws://127.0.0.1:${wsGw.http}/ws/echo?room=1`);
    try {
      const seen = upgrades.at(-1)!;
      assert.equal(seen.url, '/ws/echo?room=1');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');

      let reply = nextMessage(ws);
      ws.send('hello through the gateway');
      let got = await reply;
      assert.equal(got.isBinary, false);
      assert.equal(got.data.toString(), 'hello through the gateway');

      const big = randomBytes(256 * 1024);
      reply = nextMessage(ws);
      ws.send(big, { binary: true });
      got = await reply;
      assert.equal(got.isBinary, true);
      assert.equal(got.data.length, big.length);
      assert.ok(got.data.equals(big), 'the binary message must come back byte for byte');

      // Upstream-initiated message.
      reply = nextMessage(ws);
      ws.send('push');
      assert.equal((await reply).data.toString(), 'pushed by upstream');
    } finally {
      ws.terminate();
    }
  });

  test('wss on the HTTPS port', async () => {
    const ws = await open(`wss://127.0.0.1:${wsGw.https}/ws`, { servername: A, ca: certA.cert });
    try {
      assert.equal(upgrades.at(-1)!.headers['x-forwarded-proto'], 'https');
      const reply = nextMessage(ws);
      ws.send('secure hello');
      assert.equal((await reply).data.toString(), 'secure hello');
    } finally {
      ws.terminate();
    }
  });

  test('a route without websocket: true refuses the upgrade with a JSON error, the upstream sees nothing', async () => {
    const before = { connections: wsUpConnections, upgrades: upgrades.length };
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${wsGw.http}/plain`);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('no answer within 5 s'));
      }, 5000);
      ws.once('open', () => {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error('the upgrade must be refused'));
      });
      ws.once('unexpected-response', (_req: unknown, r: IncomingMessage) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          clearTimeout(timer);
          resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
        });
      });
      ws.once('error', () => {});
    });
    assert.notEqual(res.status, 101);
    assert.equal(res.status, 400);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_WEBSOCKET_DISABLED');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(wsUpConnections, before.connections);
    assert.equal(upgrades.length, before.upgrades);
  });

  /** Attempt an upgrade that must be refused; resolves with the refusal. */
  function refusal(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('no answer within 5 s'));
      }, 5000);
      ws.once('unexpected-response', (_req: unknown, r: IncomingMessage) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          clearTimeout(timer);
          resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks).toString() });
        });
      });
      ws.once('open', () => {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error('the upgrade must be refused'));
      });
      ws.once('error', () => {});
    });
  }

  test('an upgrade to a path with no route gets a JSON 404', async () => {
    const res = await refusal(`ws://127.0.0.1:${wsGw.http}/nowhere`);
    assert.equal(res.status, 404);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_ROUTE_NOT_FOUND');
  });

  test('a node that refuses the upgrade has its answer relayed, not turned into a 502', async () => {
    const res = await refusal(`ws://127.0.0.1:${wsGw.http}/deny/me`);
    assert.equal(res.status, 403);
    assert.equal(res.headers['x-node'], 'odd');
    assert.equal(res.body, '{"denied":"by the node"}');
  });

  test('a node that is down: JSON 502', async () => {
    const res = await refusal(`ws://127.0.0.1:${wsGw.http}/dead`);
    assert.equal(res.status, 502);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_UPSTREAM_UNAVAILABLE');
  });

  test('a client that resets while the node is being asked: the gateway survives and lets go of the node', async () => {
    const before = hanging.length;
    const sock = netConnect({ host: '127.0.0.1', port: wsGw.http });
    sock.on('error', () => {});
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.write(
      'GET /hang/1 HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    assert.ok(await waitFor(() => hanging.length > before, 5000), 'the upgrade never reached the node');
    const nodeSide = hanging.at(-1)!;
    const nodeSideClosed = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      const gone = () => {
        clearTimeout(timer);
        resolve(true);
      };
      nodeSide.once('end', gone);
      nodeSide.once('close', gone);
    });
    // An RST, not a FIN: node reports it as an 'error' on the handed-over socket.
    sock.resetAndDestroy();
    assert.equal(await nodeSideClosed, true, 'the pending upstream upgrade must be aborted');
    // Still serving.
    const ws = await open(`ws://127.0.0.1:${wsGw.http}/ws/after-reset`);
    const reply = nextMessage(ws);
    ws.send('still here');
    assert.equal((await reply).data.toString(), 'still here');
    ws.terminate();
  });

  test('a node that never answers the upgrade: 504 after the read timeout', async () => {
    const res = await refusal(`ws://127.0.0.1:${wsGw.http}/hang/2`);
    assert.equal(res.status, 504);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'GH_ERR_UPSTREAM_TIMEOUT');
  });

  test('the upstream closing the WebSocket closes the client, with its close code', async () => {
    const ws = await open(`ws://127.0.0.1:${wsGw.http}/ws`);
    const done = closed(ws);
    ws.send('close-me');
    const { code, reason } = await done;
    assert.equal(code, 4000);
    assert.equal(reason, 'bye from upstream');
  });

  test('the upstream dropping the connection closes the client', async () => {
    const ws = await open(`ws://127.0.0.1:${wsGw.http}/ws/drop`);
    const done = closed(ws);
    // Kill the upstream side of this connection without a close frame.
    (await serverSide('/ws/drop')).terminate();
    const { code } = await done;
    assert.equal(code, 1006);
  });

  test('the client closing closes the upstream side', async () => {
    const ws = await open(`ws://127.0.0.1:${wsGw.http}/ws/client-close`);
    const upstreamSide = await serverSide('/ws/client-close');
    const upstreamClosed = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('upstream side not closed within 5 s')), 5000);
      upstreamSide.once('close', (code: number) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    ws.close(1000, 'client done');
    assert.equal(await upstreamClosed, 1000);
  });
});
