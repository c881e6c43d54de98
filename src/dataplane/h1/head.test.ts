import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { parseHead } from './head.js';

/** What node's own HTTP server makes of a head: the reference the reader must match field for field. */
let server: Server;
let port = 0;
before(async () => {
  server = createServer({ requireHostHeader: false }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, headers: req.headers }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

function nodeReads(head: string): Promise<{ method: string; url: string; rawHeaders: string[]; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end(Buffer.from(`${head}\r\n\r\n`, 'latin1')));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      try {
        resolve(JSON.parse(body));
      } catch {
        reject(new Error(`node did not answer 200: ${raw.slice(0, 80)}`));
      }
    });
  });
}

const H = 'Host: example.test';

/** Heads the reader takes: its result must equal node's. */
const taken: Array<[string, string]> = [
  ['a plain GET', `GET /a/b?c=d HTTP/1.1\r\n${H}\r\nUser-Agent: t\r\nAccept: */*`],
  ['no header at all', 'GET / HTTP/1.1'],
  ['names in any case, values trimmed of spaces and tabs', `DELETE /x HTTP/1.1\r\nHOST: a\r\nx-MiXeD:  \t v a l \t \r\nX-Empty:\r\nX-Tight:v`],
  ['repeated fields joined with a comma', `GET / HTTP/1.1\r\n${H}\r\nAccept: a\r\naccept: b\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2`],
  ['repeated cookies joined with a semicolon', `GET / HTTP/1.1\r\n${H}\r\nCookie: a=1\r\nCookie: b=2`],
  ['set-cookie collected into an array', `GET / HTTP/1.1\r\n${H}\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2`],
  [
    'first value wins for single-valued fields',
    `GET / HTTP/1.1\r\n${H}\r\nHost: second\r\nAuthorization: Bearer one\r\nAuthorization: Bearer two\r\nUser-Agent: a\r\nUser-Agent: b\r\nContent-Type: x/1\r\nContent-Type: x/2\r\nReferer: r1\r\nReferer: r2`,
  ],
  ['names that are properties of every object', `GET / HTTP/1.1\r\n${H}\r\nconstructor: a\r\nconstructor: b\r\n__proto__: c\r\ntoString: d\r\nhasOwnProperty: e`],
  ['an announced empty body', `POST /form HTTP/1.1\r\n${H}\r\nContent-Length: 0`],
  ['Connection: close and keep-alive tokens', `GET / HTTP/1.1\r\n${H}\r\nConnection: keep-alive, close`],
  ['an absolute-form target', `OPTIONS http://example.test:8080/p?q HTTP/1.1\r\n${H}`],
  ['percent-encoded and sub-delimiter characters in the target', `GET /a%20b/~c!$&'()*+,;=:@?x=%2F#frag HTTP/1.1\r\n${H}`],
  ['an extension method', `PURGE /cache HTTP/1.1\r\n${H}`],
  ['token characters in names', `GET / HTTP/1.1\r\n${H}\r\nX-!#$%&'*+.^_\`|~: v`],
];

/** Heads it leaves to node's server (null), valid or not. */
const leftToNode: Array<[string, string]> = [
  ['a body with Content-Length', `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 5`],
  ['Content-Length other than a plain 0', `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 00`],
  ['two Content-Length fields', `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 0\r\nContent-Length: 0`],
  ['Transfer-Encoding', `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked`],
  ['Transfer-Encoding in another case', `POST / HTTP/1.1\r\n${H}\r\ntransfer-ENCODING: chunked`],
  ['Expect', `POST / HTTP/1.1\r\n${H}\r\nExpect: 100-continue`],
  ['an upgrade', `GET /ws HTTP/1.1\r\n${H}\r\nConnection: Upgrade\r\nUpgrade: websocket`],
  ['Connection: upgrade alone', `GET / HTTP/1.1\r\n${H}\r\nConnection: keep-alive, upgrade`],
  ['HTTP2-Settings', `GET / HTTP/1.1\r\n${H}\r\nHTTP2-Settings: AAMAAABkAAQAAP__`],
  ['CONNECT', `CONNECT example.test:443 HTTP/1.1\r\n${H}`],
  ['HTTP/1.0', `GET / HTTP/1.0\r\n${H}`],
  ['HTTP/2 preface', 'PRI * HTTP/2.0'],
  ['obsolete line folding', `GET / HTTP/1.1\r\n${H}\r\nX-A: one\r\n two`],
  ['a bare LF', `GET / HTTP/1.1\r\n${H}\nX-A: b`],
  ['a bare CR', `GET / HTTP/1.1\r\n${H}\rX-A: b`],
  ['space before the colon', `GET / HTTP/1.1\r\n${H}\r\nX-A : b`],
  ['a line without a colon', `GET / HTTP/1.1\r\n${H}\r\nnocolon`],
  ['an empty field name', `GET / HTTP/1.1\r\n${H}\r\n: b`],
  ['NUL in a value', `GET / HTTP/1.1\r\n${H}\r\nX-A: a\x00b`],
  ['a control character in a value', `GET / HTTP/1.1\r\n${H}\r\nX-A: a\x01b`],
  ['DEL in a value', `GET / HTTP/1.1\r\n${H}\r\nX-A: a\x7fb`],
  ['obs-text in a value', `GET / HTTP/1.1\r\n${H}\r\nX-A: caf\xe9`],
  ['a raw byte above 0x7e in the target', `GET /caf\xe9 HTTP/1.1\r\n${H}`],
  ['two spaces in the request line', `GET  / HTTP/1.1\r\n${H}`],
  ['a tab in the request line', `GET\t/ HTTP/1.1\r\n${H}`],
  ['a space in the target', `GET /a b HTTP/1.1\r\n${H}`],
  ['a lower-case version', `GET / http/1.1\r\n${H}`],
  ['a leading empty line', `\r\nGET / HTTP/1.1\r\n${H}`],
  ['a method with a non-token character', `G@T / HTTP/1.1\r\n${H}`],
  ['more than 200 fields', `GET / HTTP/1.1\r\n${H}\r\n${Array.from({ length: 201 }, (_, i) => `X-${i}: v`).join('\r\n')}`],
];

describe('the plain-request reader', () => {
  for (const [name, head] of taken) {
    test(`reads ${name} as node does`, async () => {
      const mine = parseHead(head);
      assert.ok(mine !== null, 'the reader should take this head');
      const theirs = await nodeReads(head);
      assert.equal(mine.method, theirs.method);
      assert.equal(mine.url, theirs.url);
      assert.deepEqual(mine.rawHeaders, theirs.rawHeaders);
      assert.deepEqual({ ...mine.headers }, theirs.headers);
    });
  }

  for (const [name, head] of leftToNode) {
    test(`leaves ${name} to node's server`, () => {
      assert.equal(parseHead(head), null);
    });
  }

  test('says when the client asked to close', () => {
    assert.equal(parseHead(`GET / HTTP/1.1\r\n${H}\r\nConnection: keep-alive, Close`)!.close, true);
    assert.equal(parseHead(`GET / HTTP/1.1\r\n${H}\r\nConnection: keep-alive`)!.close, false);
    assert.equal(parseHead(`GET / HTTP/1.1\r\n${H}`)!.close, false);
  });
});
