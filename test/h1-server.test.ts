/**
 * @module test/h1-server
 * The gateway's own reader of plain HTTP/1.1 requests (src/dataplane/h1): what it writes, how it keeps
 * connections, and how it gives a connection to node's server mid-way without losing or reordering a byte.
 * The raw-socket corpus (malformed.test.ts) and the proxy tests run through it too; these are its own cases.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { echo, node } from './helpers/upstream.js';
import { harness } from './helpers/harness.js';
import { rawExchange } from './helpers/raw.js';

const { upstream, gateway } = harness();
const H = 'Host: example.test\r\n';

function routes(port: number) {
  return { routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(port)] } }] };
}

/** Responses read off one connection in order, and whether the gateway closed it. */
async function converse(port: number, payload: string, opts: { pieces?: string[]; pauseMs?: number; idleMs?: number } = {}) {
  return rawExchange(port, payload, { idleMs: opts.idleMs ?? 600, ...(opts.pieces ? { pieces: opts.pieces, pauseMs: opts.pauseMs ?? 60 } : {}) });
}

describe('responses written by the plain-request reader', () => {
  it('keeps the connection alive with the keep-alive hint, and adds Date when the upstream sent none', async () => {
    const up = await upstream((_q, res) => {
      res.sendDate = false;
      res.writeHead(200, { 'content-length': 2 });
      res.end('ok');
    });
    const gw = await gateway(routes(up.port), { 'proxy.keepAliveTimeout': 7000 });
    const r = await converse(gw.http, `GET /a HTTP/1.1\r\n${H}\r\n`);
    assert.equal(r.responses.length, 1);
    const res = r.responses[0]!;
    assert.equal(res.status, 200);
    assert.equal(res.body, 'ok');
    assert.equal(res.headers.connection, 'keep-alive');
    assert.equal(res.headers['keep-alive'], 'timeout=7');
    assert.match(res.headers.date ?? '', /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    assert.equal(r.closed, false, 'a keep-alive connection stays open');
  });

  it('keeps the upstream Date, and chunks a body that came without a length', async () => {
    const up = await upstream((_q, res) => {
      res.setHeader('date', 'Tue, 01 Jan 2030 00:00:00 GMT');
      res.write('a'.repeat(10));
      setTimeout(() => res.end('b'.repeat(5)), 20);
    });
    const gw = await gateway(routes(up.port));
    const r = await converse(gw.http, `GET /chunks HTTP/1.1\r\n${H}\r\n`);
    const res = r.responses[0]!;
    assert.equal(res.headers.date, 'Tue, 01 Jan 2030 00:00:00 GMT');
    assert.equal((r.raw.toString('latin1').match(/^date:/gim) ?? []).length, 1, 'one Date header');
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.body, 'a'.repeat(10) + 'b'.repeat(5));
    assert.ok(r.raw.toString('latin1').endsWith('0\r\n\r\n'), 'the chunked body is terminated');
  });

  it('sends no body for HEAD, 204 and 304', async () => {
    const up = await upstream((q, res) => {
      const status = q.url === '/204' ? 204 : q.url === '/304' ? 304 : 200;
      res.writeHead(status, status === 200 ? { 'content-length': 5 } : {});
      res.end(status === 200 && q.method !== 'HEAD' ? 'hello' : undefined);
    });
    const gw = await gateway(routes(up.port));
    const r = await converse(gw.http, `HEAD /h HTTP/1.1\r\n${H}\r\nGET /204 HTTP/1.1\r\n${H}\r\nGET /304 HTTP/1.1\r\n${H}\r\nGET /after HTTP/1.1\r\n${H}\r\n`);
    const text = r.raw.toString('latin1');
    const heads = text.split('\r\n\r\n');
    // Four responses, nothing between their heads but the last one's body: no stray bytes a client would misread.
    assert.equal(heads.length, 5, text);
    assert.match(heads[0]!, /^HTTP\/1\.1 200 /);
    assert.match(heads[0]!, /content-length: 5/i, 'HEAD keeps the length of what GET would send');
    assert.match(heads[1]!, /^HTTP\/1\.1 204 /);
    assert.doesNotMatch(heads[1]!, /transfer-encoding/i);
    assert.match(heads[2]!, /^HTTP\/1\.1 304 /);
    assert.match(heads[3]!, /^HTTP\/1\.1 200 /);
    assert.equal(heads[4], 'hello');
  });

  it('closes the connection after a response when the client asked to', async () => {
    const up = await upstream(echo);
    const gw = await gateway(routes(up.port));
    const r = await converse(gw.http, `GET /bye HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { idleMs: 3000 });
    assert.equal(r.responses.length, 1);
    assert.equal(r.responses[0]!.headers.connection, 'close');
    assert.equal(r.closed, true);
  });
});

describe('connections on the plain-request reader', () => {
  it('answers pipelined requests in order, however long each takes upstream', async () => {
    const up = await upstream((q, res) => {
      const delay = q.url === '/slow' ? 150 : 0;
      setTimeout(() => res.end(q.url), delay);
    });
    const gw = await gateway(routes(up.port));
    const r = await converse(gw.http, `GET /slow HTTP/1.1\r\n${H}\r\nGET /fast HTTP/1.1\r\n${H}\r\nGET /last HTTP/1.1\r\n${H}\r\n`);
    assert.deepEqual(
      r.responses.map((x) => x.body),
      ['/slow', '/fast', '/last'],
    );
  });

  it('reads a head that arrives in pieces', async () => {
    const up = await upstream(echo);
    const gw = await gateway(routes(up.port));
    const r = await converse(gw.http, '', { pieces: ['GET /pie', 'ces HTTP/1.1\r\nHo', 'st: example.test\r\n', '\r\n'] });
    assert.equal(r.responses.length, 1);
    assert.equal(JSON.parse(r.responses[0]!.body).url, '/pieces');
  });

  it('gives the connection to node mid-way for a request with a body, losing and reordering nothing', async () => {
    const up = await upstream(echo);
    const gw = await gateway(routes(up.port));
    const r = await converse(
      gw.http,
      `GET /one HTTP/1.1\r\n${H}\r\nPOST /two HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloPOST /three HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /four HTTP/1.1\r\n${H}\r\n`,
    );
    const bodies = r.responses.map((x) => JSON.parse(x.body) as { url: string; bodyBytes: number });
    assert.deepEqual(
      bodies.map((b) => [b.url, b.bodyBytes]),
      [
        ['/one', 0],
        ['/two', 5],
        ['/three', 3],
        ['/four', 0],
      ],
    );
    assert.equal(r.closed, false);
  });

  it('answers 408 and closes a connection whose head stalls past the headers timeout', async () => {
    const up = await upstream(echo);
    const gw = await gateway(routes(up.port), { 'proxy.headersTimeout': 300 });
    const before = up.seen.length;
    const r = await converse(gw.http, `GET /stall HTTP/1.1\r\n${H}`, { idleMs: 3000 });
    assert.equal(r.status, 408);
    assert.equal((JSON.parse(r.responses[0]!.body) as { error: { code: string } }).error.code, 'GH_ERR_REQUEST_TIMEOUT');
    assert.equal(r.closed, true);
    assert.equal(up.seen.length, before, 'nothing reached the upstream');
  });

  it('answers 408 on a connection that sends nothing within the headers timeout, as node does', async () => {
    const up = await upstream(echo);
    const gw = await gateway(routes(up.port), { 'proxy.headersTimeout': 300, 'proxy.keepAliveTimeout': 0 });
    const opened = Date.now();
    const r = await converse(gw.http, '', { idleMs: 3000 });
    assert.equal(r.status, 408);
    assert.equal(r.closed, true);
    assert.ok(Date.now() - opened >= 250, 'not before the timeout');
  });

  it('closes an idle keep-alive connection after the keep-alive timeout, and not before', async () => {
    const up = await upstream(echo);
    const gw = await gateway(routes(up.port), { 'proxy.keepAliveTimeout': 400 });
    const sock = connect(gw.http, '127.0.0.1');
    await once(sock, 'connect');
    sock.write(`GET /k HTTP/1.1\r\n${H}\r\n`);
    await once(sock, 'data');
    const opened = Date.now();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sock.destroyed || sock.readableEnded, false, 'still open half-way through the timeout');
    sock.resume();
    await once(sock, 'close');
    assert.ok(Date.now() - opened >= 350, 'closed only once the timeout passed');
  });

  it('cancels the upstream request when the client half-closes before its answer, as node does', async () => {
    let cancelled: (v: boolean) => void;
    const result = new Promise<boolean>((r) => (cancelled = r));
    const up = await upstream((_q, res) => {
      const t = setTimeout(() => res.end('late'), 3000);
      res.on('close', () => {
        clearTimeout(t);
        cancelled(!res.writableFinished);
      });
    });
    const gw = await gateway(routes(up.port));
    const sock = connect(gw.http, '127.0.0.1');
    await once(sock, 'connect');
    sock.end(`GET /half HTTP/1.1\r\n${H}\r\n`);
    assert.equal(await result, true);
    sock.destroy();
  });

  it('can be turned off: node answers every request, with the same result', async () => {
    const up = await upstream(echo);
    const gw = await gateway(routes(up.port), { 'proxy.fastHttp1': false });
    const r = await converse(gw.http, `GET /off HTTP/1.1\r\n${H}\r\nGET /off2 HTTP/1.1\r\n${H}\r\n`);
    assert.deepEqual(
      r.responses.map((x) => (JSON.parse(x.body) as { url: string }).url),
      ['/off', '/off2'],
    );
  });
});

describe('shutdown with the plain-request reader', () => {
  it('closes idle connections and answers the request in flight with Connection: close', async () => {
    let release: () => void = () => {};
    const up = await upstream((_q, res) => {
      release = () => res.end('done');
    });
    const gw = await gateway(routes(up.port));
    const idle = connect(gw.http, '127.0.0.1');
    await once(idle, 'connect');
    const busy = connect(gw.http, '127.0.0.1');
    await once(busy, 'connect');
    busy.write(`GET /inflight HTTP/1.1\r\n${H}\r\n`);
    const answer: Buffer[] = [];
    busy.on('data', (c: Buffer) => answer.push(c));
    await new Promise((r) => setTimeout(r, 100));
    const closing = gw.close();
    const idleClosed = once(idle, 'close');
    await new Promise((r) => setTimeout(r, 100));
    release();
    await idleClosed;
    await once(busy, 'close');
    await closing;
    const text = Buffer.concat(answer).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\nConnection: close\r\n/i);
    assert.ok(text.endsWith('done'));
  });
});
