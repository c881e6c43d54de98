/**
 * @module test/proxy
 * The proxy core against real upstream servers: forwarding headers, passHost, retries, timeouts, health,
 * streaming with backpressure, and aborts in both directions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { startInProcessGateway, type InProcessGateway } from '../src/process/in-process.js';
import { closedPort, echo, node, startUpstream, type TestUpstream } from './helpers/upstream.js';
import { json, send } from './helpers/http.js';
import { harness } from './helpers/harness.js';

const { upstream, gateway, defer } = harness();

function route(id: string, paths: string[], up: unknown, extra: Record<string, unknown> = {}) {
  return typeof up === 'string' ? { id, paths, upstreamId: up, ...extra } : { id, paths, upstream: up, ...extra };
}

describe('forwarding', () => {
  let up: TestUpstream;
  let gw: InProcessGateway;
  before(async () => {
    up = await upstream();
    gw = await gateway({
      upstreams: [{ id: 'u', nodes: [node(up.port)] }],
      routes: [
        route('api', ['/api/*'], 'u'),
        route('node-host', ['/node-host'], { nodes: [node(up.port)], passHost: 'node' }),
        route('rewrite-host', ['/rewrite-host'], { nodes: [node(up.port)], passHost: 'rewrite', upstreamHost: 'internal.svc' }),
      ],
    });
  });

  it('forwards the canonical path and the raw query', async () => {
    const r = await send(gw.http, '/api/%41b/./c/../d?x=1&y=%2F');
    assert.equal(r.status, 200);
    assert.equal(json(r).url, '/api/Ab/d?x=1&y=%2F');
  });

  it('answers 404 with a JSON error when no route matches', async () => {
    const r = await send(gw.http, '/nothing-here');
    assert.equal(r.status, 404);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(json(r), { error: { code: 'GH_ERR_ROUTE_NOT_FOUND', message: 'no route matches the request' } });
  });

  it('answers 400 for a path that climbs above the root', async () => {
    const r = await send(gw.http, '/api/../../etc/passwd');
    assert.equal(r.status, 400);
    assert.equal((json(r).error as { code: string }).code, 'GH_ERR_PATH_INVALID');
    assert.equal(up.seen.filter((s) => s.url.includes('passwd')).length, 0);
  });

  it('sets X-Forwarded-* from the real peer and drops client-sent copies from an untrusted peer', async () => {
    const r = await send(gw.http, '/api/x', { headers: { 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6', 'x-forwarded-proto': 'https', host: 'shop.example' } });
    const h = json(r).headers as Record<string, string>;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-real-ip'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'shop.example');
    assert.equal(h['x-forwarded-port'], String(gw.http));
    assert.equal(h.host, 'shop.example', 'passHost pass keeps the client Host');
  });

  it('strips hop-by-hop headers and those named in Connection, but keeps the ones it adds', async () => {
    const r = await send(gw.http, '/api/x', {
      headers: {
        connection: 'keep-alive, X-Private, X-Forwarded-For',
        'x-private': 'secret',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'x-kept': 'yes',
      },
    });
    const h = json(r).headers as Record<string, string>;
    assert.equal(h['x-private'], undefined);
    assert.equal(h['keep-alive'], undefined);
    assert.equal(h.te, undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.equal(h['x-kept'], 'yes');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
  });

  it('passHost node and rewrite set the Host header sent upstream', async () => {
    assert.equal((json(await send(gw.http, '/node-host')).headers as Record<string, string>).host, `127.0.0.1:${up.port}`);
    assert.equal((json(await send(gw.http, '/rewrite-host')).headers as Record<string, string>).host, 'internal.svc');
  });

  it('relays HEAD without a body', async () => {
    const r = await send(gw.http, '/api/x', { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.body, '');
    assert.ok(Number(r.headers['content-length']) > 0);
  });

  it('streams a chunked request body and honours Expect: 100-continue', async () => {
    const res = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = request({ host: '127.0.0.1', port: gw.http, path: '/api/upload', method: 'POST', agent: false, headers: { expect: '100-continue', 'transfer-encoding': 'chunked' } });
      req.on('continue', () => {
        continued = true;
        req.write('a'.repeat(1000));
        req.end('b'.repeat(500));
      });
      req.on('response', (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body, continued }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(res.continued, true);
    assert.equal(res.status, 200);
    const b = JSON.parse(res.body) as { bodyBytes: number; headers: Record<string, string> };
    assert.equal(b.bodyBytes, 1500);
    assert.equal(b.headers.expect, undefined, 'Expect is answered by the gateway, not relayed');
  });

  it('strips hop-by-hop headers from the response, including those named in Connection', async () => {
    const special = await upstream((_req, res) => {
      res.writeHead(200, { connection: 'X-Up-Private', 'x-up-private': 'y', 'x-up-public': 'z', 'content-length': 2 });
      res.end('ok');
    });
    const g = await gateway({ routes: [route('r', ['/*'], { nodes: [node(special.port)] })] });
    const r = await send(g.http, '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-up-private'], undefined);
    assert.equal(r.headers['x-up-public'], 'z');
  });
});

describe('trusted proxies', () => {
  it('believes X-Forwarded-For only from a configured proxy and appends the peer', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(up.port)] })] }, { 'proxy.trustedProxies': ['127.0.0.0/8'] });
    const h = json(await send(gw.http, '/', { headers: { 'x-forwarded-for': '203.0.113.7, 127.0.0.9', 'x-forwarded-proto': 'https' } })).headers as Record<string, string>;
    assert.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.9, 127.0.0.1');
    assert.equal(h['x-real-ip'], '203.0.113.7');
    assert.equal(h['x-forwarded-proto'], 'https');
  });
});

describe('upstream connections', () => {
  it('reuses one keep-alive connection for sequential requests', async () => {
    const up = await upstream();
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(up.port)] })] });
    for (let i = 0; i < 20; i++) assert.equal((await send(gw.http, `/n${i}`, { method: i % 2 ? 'POST' : 'GET', body: i % 2 ? 'x' : undefined })).status, 200);
    assert.equal(up.connections, 1);
  });

  it('opens no more than keepalive.connections to a node; the other requests wait and all succeed', async () => {
    let open = 0;
    let most = 0;
    const up = await upstream((_req, res) => {
      open++;
      most = Math.max(most, open);
      setTimeout(() => {
        open--;
        res.end('ok');
      }, 40);
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(up.port)], keepalive: { connections: 3, idleTimeout: 60000 } })] });
    const all = await Promise.all(Array.from({ length: 12 }, (_, i) => send(gw.http, `/c${i}`)));
    assert.deepEqual(all.map((r) => r.status), Array(12).fill(200));
    assert.equal(most, 3);
    assert.ok(up.connections <= 3, `${up.connections} connections`);
  });

  it("closes idle connections before the node's announced keep-alive timeout", async () => {
    const up = await upstream();
    // Node's server announces Keep-Alive: timeout=2 and closes idle connections after two seconds; the gateway
    // keeps them one second less.
    up.server.keepAliveTimeout = 2000;
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(up.port)], retries: 0 })] });
    for (let i = 0; i < 3; i++) {
      assert.equal((await send(gw.http, `/k${i}`)).status, 200);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(up.connections, 1);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await send(gw.http, '/after-idle')).status, 200);
    assert.equal(up.connections, 2);
  });

  it('relays a malformed upstream response as 502, never as the answer', async () => {
    const { createServer } = await import('node:net');
    const raw = createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'));
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', () => r()));
    defer(() => new Promise<void>((r) => raw.close(() => r())));
    const port = (raw.address() as import('node:net').AddressInfo).port;
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(port)], retries: 0 })] });
    const r = await send(gw.http, '/bad');
    assert.equal(r.status, 502);
    assert.equal((json(r).error as { code: string }).code, 'GH_ERR_UPSTREAM_UNAVAILABLE');
  });
});

describe('retries', () => {
  it('retries a connection failure on another node, also for POST', async () => {
    const live = await upstream();
    const dead = await closedPort();
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(dead), node(live.port)], retries: 1 })] });
    for (let i = 0; i < 4; i++) {
      assert.equal((await send(gw.http, '/', { method: 'POST', body: 'x' })).status, 200);
    }
  });

  it('answers 502 when no attempt is left', async () => {
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(await closedPort())], retries: 0 })] });
    const r = await send(gw.http, '/');
    assert.equal(r.status, 502);
    assert.equal((json(r).error as { code: string }).code, 'GH_ERR_UPSTREAM_UNAVAILABLE');
  });

  it('retries 502/503/504 only for idempotent methods', async () => {
    const failing = await upstream((_q, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('busy');
    });
    const ok = await upstream();
    const gw = await gateway({ routes: [route('r', ['/*'], { type: 'roundrobin', nodes: [node(failing.port), node(ok.port)], retries: 1 })] });
    for (let i = 0; i < 4; i++) assert.equal((await send(gw.http, '/')).status, 200, 'GET is retried on the other node');
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await send(gw.http, '/', { method: 'POST', body: 'x' })).status);
    assert.ok(statuses.has(503), 'POST is not retried: the 503 reaches the client');
  });

  it('relays the 503 when there is no other node to try', async () => {
    const failing = await upstream((_q, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('busy');
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(failing.port)], retries: 2 })] });
    const r = await send(gw.http, '/');
    assert.equal(r.status, 503);
    assert.equal(r.body, 'busy');
  });
});

describe('timeouts', () => {
  it('answers 504 when the upstream does not answer within the read timeout', async () => {
    const slow = await upstream((_q, res) => {
      const t = setTimeout(() => echo(_q, res, { method: 'GET', url: '/', headers: {}, rawHeaders: [], bodyBytes: 0 }), 3000);
      res.on('close', () => clearTimeout(t));
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(slow.port)], retries: 0, timeout: { connect: 1000, send: 1000, read: 300 } })] });
    const r = await send(gw.http, '/');
    assert.equal(r.status, 504);
    assert.equal((json(r).error as { code: string }).code, 'GH_ERR_UPSTREAM_TIMEOUT');
  });

  it('a route timeout overrides the upstream one', async () => {
    const slow = await upstream((_q, res) => {
      const t = setTimeout(() => res.end('late'), 2000);
      res.on('close', () => clearTimeout(t));
    });
    // Timeouts are enforced with about half a second of resolution (undici's coarse timers), so the times
    // here are far apart.
    const gw = await gateway({
      upstreams: [{ id: 'u', nodes: [node(slow.port)], retries: 0, timeout: { connect: 1000, send: 1000, read: 6000 } }],
      routes: [route('fast', ['/fast'], 'u', { timeout: { connect: 1000, send: 1000, read: 300 } }), route('patient', ['/patient'], 'u')],
    });
    assert.equal((await send(gw.http, '/fast')).status, 504);
    assert.equal((await send(gw.http, '/patient')).status, 200);
  });
});

describe('health', () => {
  it('passive checks take a failing node out; with none healthy the answer is 503', async () => {
    const failing = await upstream((_q, res) => {
      res.writeHead(502);
      res.end();
    });
    const gw = await gateway({
      routes: [route('r', ['/*'], { nodes: [node(failing.port)], retries: 0, healthCheck: { passive: { unhealthyThreshold: 2, cooldown: 60000 } } })],
    });
    assert.equal((await send(gw.http, '/')).status, 502);
    assert.equal((await send(gw.http, '/')).status, 502);
    const r = await send(gw.http, '/');
    assert.equal(r.status, 503);
    assert.equal((json(r).error as { code: string }).code, 'GH_ERR_UPSTREAM_NO_HEALTHY_NODE');
    assert.equal(failing.seen.length, 2, 'the node held out gets no traffic');
  });

  it('active checks move traffic off a node whose probe fails and back when it recovers', async () => {
    let sick = false;
    const a = await upstream((req, res, s) => {
      if (req.url === '/health') {
        res.writeHead(sick ? 500 : 200);
        res.end();
        return;
      }
      echo(req, res, s);
    });
    const b = await upstream();
    const gw = await gateway({
      routes: [
        route('r', ['/*'], {
          nodes: [node(a.port), node(b.port)],
          healthCheck: { active: { path: '/health', interval: 100, timeout: 500, healthyThreshold: 1, unhealthyThreshold: 1 } },
        }),
      ],
    });
    sick = true;
    await once(gw.health, 'change');
    const before = a.seen.filter((s) => s.url !== '/health').length;
    for (let i = 0; i < 10; i++) assert.equal((await send(gw.http, '/x')).status, 200);
    assert.equal(a.seen.filter((s) => s.url !== '/health').length, before, 'unhealthy node gets no traffic');
    sick = false;
    await once(gw.health, 'change');
    for (let i = 0; i < 10; i++) await send(gw.http, '/x');
    assert.ok(a.seen.filter((s) => s.url !== '/health').length > before, 'recovered node gets traffic again');
  });
});

describe('balancing through the proxy', () => {
  it('roundrobin follows the weights', async () => {
    const a = await upstream();
    const b = await upstream();
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(a.port, 3), node(b.port, 1)] })] });
    for (let i = 0; i < 40; i++) await send(gw.http, '/');
    assert.equal(a.seen.length, 30);
    assert.equal(b.seen.length, 10);
  });

  it('chash on a header keeps a key on one node', async () => {
    const a = await upstream();
    const b = await upstream();
    const gw = await gateway({ routes: [route('r', ['/*'], { type: 'chash', hashOn: { type: 'header', key: 'x-user' }, nodes: [node(a.port), node(b.port)] })] });
    for (let i = 0; i < 10; i++) await send(gw.http, '/', { headers: { 'x-user': 'alice' } });
    assert.ok(a.seen.length === 10 || b.seen.length === 10, 'every request of one key went to one node');
  });
});

describe('streaming', () => {
  it('streams a large upload without buffering it (memory stays flat)', async () => {
    let received = 0;
    const sink = await upstream(
      (req, res) => {
        req.on('data', (c: Buffer) => (received += c.length));
        req.on('end', () => res.end('done'));
      },
      { readBody: false },
    );
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(sink.port)] }, { maxBodySize: 0 })] });
    const total = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) return this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.http, path: '/upload', method: 'PUT', agent: false, headers: { 'content-length': total } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      body.pipe(req);
    });
    clearInterval(sampler);
    assert.equal(status, 200);
    assert.equal(received, total);
    assert.ok(peak - base < 96 * 1024 * 1024, `memory grew by ${Math.round((peak - base) / 1048576)} MiB while moving 256 MiB`);
  });

  it('relays response bodies byte for byte at every size, framing and piece count, on one client connection', async () => {
    // Every byte value, at the sizes where the relay changes how it writes: a small whole body goes out as one
    // string with the head, larger ones as buffers written as they arrive, with the last piece ending the response.
    const sizes = [0, 1, 256, 4096, 16 * 1024, 16 * 1024 + 1, 64 * 1024, 64 * 1024 + 300, 1024 * 1024 + 7];
    const bodies = new Map(sizes.map((n) => [n, Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + (i >> 8)) & 0xff))]));
    const source = await upstream((req, res) => {
      const [, mode, size] = /^\/(\w+)\/(\d+)$/.exec(req.url ?? '') ?? [];
      const body = bodies.get(Number(size))!;
      if (mode === 'length') {
        res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
        res.end(body);
        return;
      }
      // Chunked, in pieces written on separate turns of the event loop.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let at = 0;
      const step = () => {
        if (at >= body.length) return void res.end();
        res.write(body.subarray(at, at + 5000));
        at += 5000;
        setImmediate(step);
      };
      step();
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(source.port)] })] });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    defer(() => agent.destroy());
    const get = (path: string, method = 'GET') =>
      new Promise<{ status: number; body: Buffer; socket: unknown }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: gw.http, path, method, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), socket: req.socket }));
        });
        req.on('error', reject);
        req.end();
      });
    const sockets = new Set<unknown>();
    for (const mode of ['length', 'chunked']) {
      for (const size of [...sizes, ...[...sizes].reverse()]) {
        const r = await get(`/${mode}/${size}`);
        assert.equal(r.status, 200);
        assert.ok(r.body.equals(bodies.get(size)!), `${mode} body of ${size} bytes arrived as ${r.body.length} bytes, or changed`);
        sockets.add(r.socket);
      }
      const head = await get(`/${mode}/4096`, 'HEAD');
      assert.equal(head.body.length, 0);
    }
    assert.equal(sockets.size, 1, 'every response was framed right, so the client kept one connection');
  });

  it('applies backpressure to the upstream when the client reads slowly', async () => {
    const total = 64 * 1024 * 1024;
    let written = 0;
    const source = await upstream((_q, res) => {
      res.writeHead(200, { 'content-length': total });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(source.port)] })] });
    const got = await new Promise<{ writtenWhilePaused: number; received: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.http, path: '/', agent: false }, (res) => {
        let received = 0;
        res.pause();
        // While the client reads nothing, the upstream must be held back by the gateway's backpressure.
        setTimeout(() => {
          const writtenWhilePaused = written;
          res.on('data', (c: Buffer) => (received += c.length));
          res.on('end', () => resolve({ writtenWhilePaused, received }));
          res.resume();
        }, 700);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(got.received, total);
    assert.ok(got.writtenWhilePaused < total / 2, `upstream wrote ${got.writtenWhilePaused} bytes while the client was paused`);
  });
});

describe('aborts', () => {
  /** Whether a GET through the gateway ends cleanly or is cut off. */
  function outcome(port: number): Promise<'clean end' | 'aborted'> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve('clean end'));
        res.on('aborted', () => resolve('aborted'));
        res.on('error', () => resolve('aborted'));
      });
      req.on('error', () => resolve('aborted'));
      req.end();
    });
  }

  it('an upstream that resets mid-body aborts the client connection (never a clean short response)', async () => {
    const breaking = await upstream((_q, res) => {
      res.writeHead(200, { 'content-length': 100000 });
      res.write(Buffer.alloc(1000, 1));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(breaking.port)], retries: 0 })] });
    assert.equal(await outcome(gw.http), 'aborted');
  });

  it('the same holds for a chunked upstream response', async () => {
    const breaking = await upstream((_q, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(breaking.port)], retries: 0 })] });
    assert.equal(await outcome(gw.http), 'aborted');
  });

  it('a client that goes away cancels the upstream request', async () => {
    let upstreamClosedEarly: (v: boolean) => void;
    const closed = new Promise<boolean>((r) => (upstreamClosedEarly = r));
    const slow = await upstream((_q, res) => {
      const t = setTimeout(() => res.end('late'), 5000);
      res.on('close', () => {
        clearTimeout(t);
        upstreamClosedEarly(!res.writableFinished);
      });
    });
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(slow.port)] })] });
    const sock = connect(gw.http, '127.0.0.1');
    await once(sock, 'connect');
    sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 200));
    sock.destroy();
    assert.equal(await closed, true);
  });
});

describe('config swaps', () => {
  it('requests in flight finish on the old config while a new one is applied', async () => {
    const slow = await upstream((_q, res) => {
      setTimeout(() => res.end('old'), 300);
    });
    const fresh = await upstream((_q, res) => res.end('new'));
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(slow.port)] })] });
    const inFlight = send(gw.http, '/');
    await new Promise((r) => setTimeout(r, 50));
    gw.apply({ routes: [route('r', ['/*'], { nodes: [node(fresh.port)] })] });
    assert.equal((await inFlight).body, 'old');
    assert.equal((await send(gw.http, '/')).body, 'new');
  });

  it('refuses an invalid config with field paths and keeps serving the old one', async () => {
    const up = await upstream((_q, res) => res.end('still here'));
    const gw = await gateway({ routes: [route('r', ['/*'], { nodes: [node(up.port)] })] });
    assert.throws(() => gw.apply({ routes: [{ id: 'bad', paths: ['no-slash'], upstreamId: 'missing' }] }), /routes\[0\]\.paths\[0\]/);
    assert.equal((await send(gw.http, '/')).body, 'still here');
  });
});

describe('nodes are data', () => {
  it('an upstream takes a new node list while serving, without failing a request', async () => {
    const a = await upstream((_q, res) => res.end('a'));
    const b = await upstream((_q, res) => res.end('b'));
    const gw = await gateway({ upstreams: [{ id: 'u', nodes: [node(a.port)] }], routes: [route('r', ['/*'], 'u')] });
    const runtime = gw.gateway.current!.upstreams.get('upstream:u')!;
    const { Agent, request: undiciRequest } = await import('undici');
    const agent = new Agent({ connections: 8 });
    defer(() => agent.close());
    const bodies = new Map<string, number>();
    let failures = 0;
    let swaps = 0;
    const deadline = Date.now() + 1500;
    const swapper = setInterval(() => {
      runtime.setNodes(swaps++ % 2 === 0 ? [node(b.port)] : [node(a.port), node(b.port)]);
    }, 50);
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (Date.now() < deadline) {
          try {
            const r = await undiciRequest(`http://127.0.0.1:${gw.http}/`, { dispatcher: agent });
            const text = await r.body.text();
            if (r.statusCode !== 200) failures++;
            bodies.set(text, (bodies.get(text) ?? 0) + 1);
          } catch {
            failures++;
          }
        }
      }),
    );
    clearInterval(swapper);
    assert.equal(failures, 0);
    assert.ok(swaps > 10);
    assert.ok((bodies.get('b') ?? 0) > 0, 'the new node got traffic');
  });
});
