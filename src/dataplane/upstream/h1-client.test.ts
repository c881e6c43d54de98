/**
 * The request path's HTTP/1.1 client against real sockets: scripted raw TCP servers for framing, errors and
 * connection reuse, node:http servers for request framing, and a TLS server.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { PassThrough } from 'node:stream';
import { H1Pool, UPSTREAM_ERR, type H1PoolOptions, type UpstreamHandler, type UpstreamRequest } from './h1-client.js';
import { certDir } from '../../../test/helpers/certs.js';

interface Result {
  status: number;
  statusText: string;
  headers: string[];
  body: Buffer;
  trailers: string[] | null;
}

interface Outcome {
  result: Promise<Result>;
  abort: (err?: Error) => void;
  handler: Recorder;
}

class Recorder implements UpstreamHandler {
  status = 0;
  statusText = '';
  headers: string[] = [];
  chunks: Buffer[] = [];
  connects = 0;
  headerCalls = 0;
  resumeFn: (() => void) | null = null;
  /** Return false from onData (to test backpressure). */
  pauseOnData = false;
  resolve!: (r: Result) => void;
  reject!: (e: Error) => void;
  readonly done = new Promise<Result>((res, rej) => {
    this.resolve = res;
    this.reject = rej;
  });
  onConnect(): void {
    this.connects++;
  }
  onHeaders(status: number, headers: string[], resume: () => void, statusText: string): boolean {
    this.headerCalls++;
    this.status = status;
    this.statusText = statusText;
    this.headers = headers;
    this.resumeFn = resume;
    return true;
  }
  onData(chunk: Buffer): boolean {
    this.chunks.push(Buffer.from(chunk));
    return !this.pauseOnData;
  }
  onComplete(trailers: string[] | null): void {
    this.resolve({ status: this.status, statusText: this.statusText, headers: this.headers, body: Buffer.concat(this.chunks), trailers });
  }
  onError(err: Error): void {
    this.reject(err);
  }
}

function send(pool: H1Pool, req: Partial<UpstreamRequest> = {}, handler = new Recorder()): Outcome {
  const full: UpstreamRequest = { method: 'GET', path: '/', headers: ['host', 'test'], body: null, headersTimeout: 5000, bodyTimeout: 5000, ...req };
  const abort = pool.dispatch(full, handler);
  return { result: handler.done, abort, handler };
}

const pools: H1Pool[] = [];
const servers: net.Server[] = [];
after(() => {
  for (const p of pools) p.destroy();
  for (const s of servers) s.close();
});

function poolFor(port: number, o: Partial<H1PoolOptions> = {}): H1Pool {
  const p = new H1Pool({ host: '127.0.0.1', port, scheme: 'http', connectTimeout: 2000, connections: 8, idleTimeout: 60000, ...o });
  pools.push(p);
  return p;
}

/**
 * A raw TCP server: `respond` gets each complete request head (text up to the blank line) with the socket and
 * writes whatever it wants. Requests here carry no body.
 */
async function rawServer(respond: (head: string, socket: net.Socket, n: number) => void): Promise<{ port: number; connections: () => number; heads: string[] }> {
  let connections = 0;
  const heads: string[] = [];
  const server = net.createServer((socket) => {
    connections++;
    let buf = '';
    socket.on('error', () => {});
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        heads.push(head);
        respond(head, socket, heads.length);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as AddressInfo).port, connections: () => connections, heads };
}

async function rejects(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, code, (err as Error).message);
    return err as Error;
  }
  assert.fail(`expected an error with code ${code}`);
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

describe('response framing', () => {
  test('Content-Length: body relayed, connection reused for the next request', async () => {
    const srv = await rawServer((_h, s, n) => s.write(ok(`hello ${n}`, 'X-Thing:  spaced value \r\n')));
    const pool = poolFor(srv.port);
    const a = await send(pool).result;
    assert.equal(a.status, 200);
    assert.equal(a.statusText, 'OK');
    assert.equal(a.body.toString(), 'hello 1');
    assert.deepEqual(a.headers, ['Content-Length', '7', 'X-Thing', 'spaced value']);
    const b = await send(pool).result;
    assert.equal(b.body.toString(), 'hello 2');
    assert.equal(srv.connections(), 1);
  });

  test('head and body split over many segments, byte by byte', async () => {
    const text = ok('abcdefghij', 'Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n');
    const srv = await rawServer((_h, s) => {
      let i = 0;
      const next = (): void => {
        if (i >= text.length) return;
        s.write(text[i++]!);
        setImmediate(next);
      };
      next();
    });
    const r = await send(poolFor(srv.port)).result;
    assert.equal(r.body.toString(), 'abcdefghij');
    assert.deepEqual(r.headers.filter((_, i) => i % 2 === 0), ['Content-Length', 'Set-Cookie', 'Set-Cookie']);
  });

  test('chunked: extensions ignored, trailers passed on, connection reused', async () => {
    const srv = await rawServer((_h, s) =>
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1 ; x\r\n \r\nA\r\n0123456789\r\n0\r\nX-Checksum: abc\r\n\r\n'),
    );
    const pool = poolFor(srv.port);
    const r = await send(pool).result;
    assert.equal(r.body.toString(), 'hello 0123456789');
    assert.deepEqual(r.trailers, ['X-Checksum', 'abc']);
    await send(pool).result;
    assert.equal(srv.connections(), 1);
  });

  test('a body delimited by the connection closing; the connection is not reused', async () => {
    const srv = await rawServer((_h, s) => {
      s.write('HTTP/1.1 200 OK\r\n\r\npart one, ');
      setTimeout(() => s.end('part two'), 20);
    });
    const pool = poolFor(srv.port);
    assert.equal((await send(pool).result).body.toString(), 'part one, part two');
    assert.equal((await send(pool).result).body.toString(), 'part one, part two');
    assert.equal(srv.connections(), 2);
  });

  test('HEAD, 204 and 304 have no body whatever their headers say', async () => {
    const srv = await rawServer((head, s) => {
      if (head.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
      else if (head.includes('/204')) s.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n');
      else s.write('HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n');
    });
    const pool = poolFor(srv.port);
    assert.equal((await send(pool, { method: 'HEAD' }).result).body.length, 0);
    assert.equal((await send(pool, { path: '/204' }).result).status, 204);
    assert.equal((await send(pool, { path: '/304' }).result).status, 304);
    assert.equal(srv.connections(), 1);
  });

  test('interim 1xx responses are skipped; the final one is reported once', async () => {
    const srv = await rawServer((_h, s) => s.write(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n${ok('done')}`));
    const h = new Recorder();
    const r = await send(poolFor(srv.port), {}, h).result;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'done');
    assert.equal(h.headerCalls, 1);
  });

  test('status lines without a reason; HTTP/1.0 answers are reused only with Connection: keep-alive', async () => {
    const srv = await rawServer((head, s) => {
      if (head.includes('/bare')) s.write('HTTP/1.1 201\r\nContent-Length: 1\r\n\r\na');
      else if (head.includes('/old-ka')) s.write('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nb');
      else s.write('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nc');
    });
    const pool = poolFor(srv.port);
    const bare = await send(pool, { path: '/bare' }).result;
    assert.equal(bare.status, 201);
    assert.equal(bare.statusText, '');
    assert.equal((await send(pool, { path: '/old-ka' }).result).body.toString(), 'b');
    assert.equal((await send(pool, { path: '/old' }).result).body.toString(), 'c');
    assert.equal(srv.connections(), 1);
    await send(pool, { path: '/old' }).result;
    assert.equal(srv.connections(), 2);
  });

  test('bytes beyond the announced length: the response ends there and the connection is dropped', async () => {
    const srv = await rawServer((_h, s) => s.write(`${ok('abc')}HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsmuggl`));
    const pool = poolFor(srv.port);
    assert.equal((await send(pool).result).body.toString(), 'abc');
    assert.equal((await send(pool).result).body.toString(), 'abc');
    assert.equal(srv.connections(), 2);
  });

  test('Connection: close and a short Keep-Alive hint end the connection; a longer hint keeps it', async () => {
    const srv = await rawServer((head, s) => {
      if (head.includes('/close')) s.write(ok('x', 'Connection: close\r\n'));
      else if (head.includes('/short')) s.write(ok('x', 'Keep-Alive: timeout=1\r\n'));
      else s.write(ok('x', 'Keep-Alive: timeout=5, max=100\r\n'));
    });
    const pool = poolFor(srv.port);
    await send(pool, { path: '/close' }).result;
    await send(pool, { path: '/short' }).result;
    await send(pool, { path: '/long' }).result;
    await send(pool, { path: '/long' }).result;
    assert.equal(srv.connections(), 3);
  });
});

describe('malformed responses fail the exchange (never relayed, never reused)', () => {
  const cases: Array<[string, string]> = [
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['a transfer coding other than chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['conflicting Content-Length values', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['a Content-Length list that disagrees', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd'],
    ['a non-numeric Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc'],
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n'],
    ['whitespace between name and colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n'],
    ['a bare LF inside the head', 'HTTP/1.1 200 OK\r\nX-A: one\nContent-Length: 0\r\n\r\n'],
    ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n'],
    ['a malformed status line', 'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n'],
    ['another protocol', 'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['an unsolicited 101', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'],
    ['a malformed chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n'],
    ['a bare LF after a chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n'],
  ];
  for (const [name, text] of cases) {
    test(name, async () => {
      const srv = await rawServer((_h, s) => s.write(text));
      const pool = poolFor(srv.port);
      const h = new Recorder();
      await rejects(send(pool, {}, h).result, UPSTREAM_ERR.protocol);
      assert.equal(pool.size, 0, 'the connection is closed');
    });
  }

  test('a head larger than the limit', async () => {
    const srv = await rawServer((_h, s) => s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\nContent-Length: 0\r\n\r\n`));
    await rejects(send(poolFor(srv.port)).result, UPSTREAM_ERR.protocol);
  });

  test('a connection closed in the middle of a Content-Length body', async () => {
    const srv = await rawServer((_h, s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const h = new Recorder();
    await rejects(send(poolFor(srv.port), {}, h).result, UPSTREAM_ERR.socket);
    assert.equal(h.status, 200, 'the head had been reported');
  });

  test('a connection closed before the last chunk', async () => {
    const srv = await rawServer((_h, s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n'));
    await rejects(send(poolFor(srv.port)).result, UPSTREAM_ERR.socket);
  });
});

describe('connections', () => {
  test('a reused connection the node closed before answering: idempotent requests are sent again once', async () => {
    // The node answers the first request of each connection and drops the connection at the second.
    const srv = await rawServer((_h, s, n) => {
      if (n === 2 || n === 4) s.destroy();
      else s.write(ok(`answer ${n}`));
    });
    const pool = poolFor(srv.port);
    assert.equal((await send(pool).result).body.toString(), 'answer 1');
    assert.equal((await send(pool).result).body.toString(), 'answer 3');
    assert.equal(srv.connections(), 2);
    // Not for POST: the node may have acted on it.
    await rejects(send(pool, { method: 'POST', body: Buffer.from('x') }).result, UPSTREAM_ERR.socket);
  });

  test('at most `connections` at once; the others wait their turn and all complete', async () => {
    let open = 0;
    let most = 0;
    const server = http.createServer((req, res) => {
      open++;
      most = Math.max(most, open);
      setTimeout(() => {
        open--;
        res.end(req.url);
      }, 30);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const pool = poolFor((server.address() as AddressInfo).port, { connections: 2 });
    const all = await Promise.all(Array.from({ length: 7 }, (_, i) => send(pool, { path: `/${i}` }).result));
    assert.deepEqual(all.map((r) => r.body.toString()), Array.from({ length: 7 }, (_, i) => `/${i}`));
    assert.equal(most, 2);
    assert.ok(pool.size <= 2);
  });

  test('connection refused keeps the system error code', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    await rejects(send(poolFor(port)).result, 'ECONNREFUSED');
  });

  test('an address that cannot be connected to at all fails the request, and the pool stays usable', async () => {
    const pool = poolFor(65536);
    await assert.rejects(send(pool).result, (err: NodeJS.ErrnoException) => err.code === 'ERR_SOCKET_BAD_PORT');
    assert.equal(pool.size, 0);
  });

  test('a long queue is served in order as connections free up', async () => {
    const order: string[] = [];
    const server = http.createServer((req, res) => {
      order.push(req.url!);
      res.end(req.url);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const pool = poolFor((server.address() as AddressInfo).port, { connections: 1 });
    const n = 3000;
    const all = await Promise.all(Array.from({ length: n }, (_, i) => send(pool, { path: `/${i}` }).result));
    assert.equal(all.length, n);
    assert.deepEqual(order, Array.from({ length: n }, (_, i) => `/${i}`));
  });

  test('abort while waiting for a connection: the request is never sent', async () => {
    const srv = await rawServer((_h, s, n) => setTimeout(() => s.write(ok(String(n))), 50));
    const pool = poolFor(srv.port, { connections: 1 });
    const first = send(pool, { path: '/first' });
    const second = send(pool, { path: '/second' });
    second.abort(new Error('client went away'));
    await assert.rejects(second.result, /client went away/);
    assert.equal((await first.result).body.toString(), '1');
    assert.equal((await send(pool, { path: '/third' }).result).body.toString(), '2');
    assert.deepEqual(srv.heads.map((h) => h.split(' ')[1]), ['/first', '/third']);
  });

  test('abort in the middle of the body closes the connection', async () => {
    const srv = await rawServer((_h, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc'));
    const pool = poolFor(srv.port);
    const h = new Recorder();
    const o = send(pool, {}, h);
    while (h.chunks.length === 0) await new Promise((r) => setTimeout(r, 5));
    o.abort(new Error('stop'));
    await assert.rejects(o.result, /stop/);
    assert.equal(pool.size, 0);
  });

  test('closing the pool lets the exchange in flight finish, then closes its connection', async () => {
    const srv = await rawServer((_h, s) => setTimeout(() => s.write(ok('late')), 50));
    const pool = poolFor(srv.port);
    const o = send(pool);
    await new Promise((r) => setTimeout(r, 10));
    const closed = pool.close();
    assert.equal((await o.result).body.toString(), 'late');
    await closed;
    assert.equal(pool.size, 0);
  });
});

describe('timeouts and backpressure', () => {
  test('no response head within headersTimeout', async () => {
    const srv = await rawServer(() => {});
    const started = Date.now();
    await rejects(send(poolFor(srv.port), { headersTimeout: 300 }).result, UPSTREAM_ERR.headersTimeout);
    assert.ok(Date.now() - started >= 290);
  });

  test('a body that stalls longer than bodyTimeout', async () => {
    const srv = await rawServer((_h, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const h = new Recorder();
    await rejects(send(poolFor(srv.port), { bodyTimeout: 300 }, h).result, UPSTREAM_ERR.bodyTimeout);
    assert.equal(Buffer.concat(h.chunks).toString(), 'abc');
  });

  test('a paused reader gets no more data until it resumes, and no body timeout meanwhile', async () => {
    const srv = await rawServer((_h, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc');
      setTimeout(() => s.write('def'), 30);
    });
    const h = new Recorder();
    h.pauseOnData = true;
    const o = send(poolFor(srv.port), { bodyTimeout: 200 }, h);
    while (h.chunks.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(h.chunks.length, 1, 'nothing delivered while paused');
    h.pauseOnData = false;
    h.resumeFn!();
    assert.equal((await o.result).body.toString(), 'abcdef');
  });
});

describe('request framing', () => {
  async function echoServer(): Promise<{ port: number; seen: Array<{ method: string; headers: http.IncomingHttpHeaders; body: string }> }> {
    const seen: Array<{ method: string; headers: http.IncomingHttpHeaders; body: string }> = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method!, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.end('ok');
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return { port: (server.address() as AddressInfo).port, seen };
  }

  test('a Buffer body is sent with its length (replacing any other)', async () => {
    const srv = await echoServer();
    await send(poolFor(srv.port), { method: 'POST', headers: ['host', 'h', 'content-length', '999'], body: Buffer.from('twelve bytes') }).result;
    assert.equal(srv.seen[0]!.headers['content-length'], '12');
    assert.equal(srv.seen[0]!.body, 'twelve bytes');
  });

  test('a stream without a length is sent chunked; with one, as it is', async () => {
    const srv = await echoServer();
    const pool = poolFor(srv.port);
    const body = new PassThrough();
    const o = send(pool, { method: 'POST', body });
    body.write('first,');
    setTimeout(() => body.end('second'), 20);
    await o.result;
    assert.equal(srv.seen[0]!.headers['transfer-encoding'], 'chunked');
    assert.equal(srv.seen[0]!.body, 'first,second');
    const fixed = new PassThrough();
    const o2 = send(pool, { method: 'PUT', headers: ['host', 'h', 'Content-Length', '5'], body: fixed });
    fixed.end('12345');
    await o2.result;
    assert.equal(srv.seen[1]!.headers['content-length'], '5');
    assert.equal(srv.seen[1]!.headers['transfer-encoding'], undefined);
    assert.equal(srv.seen[1]!.body, '12345');
  });

  test('POST without a body announces a zero length; GET announces nothing', async () => {
    const srv = await echoServer();
    const pool = poolFor(srv.port);
    await send(pool, { method: 'POST' }).result;
    await send(pool, { method: 'GET' }).result;
    assert.equal(srv.seen[0]!.headers['content-length'], '0');
    assert.equal(srv.seen[1]!.headers['content-length'], undefined);
  });

  test('the head of a streamed request waits for its first body bytes; a body failing first sends nothing', async () => {
    const srv = await rawServer((_h, s) => s.write(ok('x')));
    const pool = poolFor(srv.port);
    const body = new PassThrough();
    const o = send(pool, { method: 'POST', body });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.heads.length, 0);
    body.destroy(new Error('broken body'));
    await assert.rejects(o.result, /broken body/);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(srv.heads.length, 0);
  });

  test('header values that would break the framing are refused before anything is sent', async () => {
    const srv = await rawServer((_h, s) => s.write(ok('x')));
    const pool = poolFor(srv.port);
    await rejects(send(pool, { headers: ['host', 'h', 'x-injected', 'a\r\nX-Evil: 1'] }).result, UPSTREAM_ERR.invalidRequest);
    await rejects(send(pool, { headers: ['host', 'h', 'bad name', 'v'] }).result, UPSTREAM_ERR.invalidRequest);
    await rejects(send(pool, { path: '/a b' }).result, UPSTREAM_ERR.invalidRequest);
    assert.equal(srv.heads.length, 0);
    assert.equal((await send(pool).result).status, 200);
  });

  test('an early answer while the body is still being sent ends the exchange; the connection is not reused', async () => {
    const srv = await rawServer((_h, s) => s.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n'));
    const pool = poolFor(srv.port);
    const body = new PassThrough();
    const o = send(pool, { method: 'POST', body });
    body.write('start of a long body');
    const r = await o.result;
    assert.equal(r.status, 413);
    assert.equal(pool.size, 0);
    body.end();
  });
});

test('HTTPS node: certificate checked against the given CA and server name', async () => {
  const certs = certDir();
  try {
    const cert = certs.make('upstream.test');
    const server = https.createServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.end('secure'));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const good = poolFor(port, { scheme: 'https', tls: { verify: true, serverName: 'upstream.test', ca: cert.cert } });
    assert.equal((await send(good).result).body.toString(), 'secure');
    assert.equal((await send(good).result).body.toString(), 'secure');
    const wrongName = poolFor(port, { scheme: 'https', tls: { verify: true, serverName: 'other.test', ca: cert.cert } });
    await rejects(send(wrongName).result, 'ERR_TLS_CERT_ALTNAME_INVALID');
    const untrusted = poolFor(port, { scheme: 'https', tls: { verify: true, serverName: 'upstream.test' } });
    await assert.rejects(send(untrusted).result);
  } finally {
    certs.remove();
  }
});
