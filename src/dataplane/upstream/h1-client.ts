/**
 * @module dataplane/upstream/h1-client
 * The HTTP/1.1 client of the request path: keep-alive connection pools to upstream nodes, written for this one
 * job. A general-purpose client (undici, which the gateway still uses for WebSocket upgrades, mirrored copies,
 * health probes and plugin calls) spent about a third of the gateway's CPU per proxied request in its own
 * machinery: a request object and a dispatcher chain per request, a callback from its WebAssembly parser per
 * header field and value. This client writes the request head as one string, finds the end of the response
 * head with one search, parses it in one pass and relays the body as slices of the socket's own buffers.
 *
 * It is strict about framing, because a gateway that misreads where one response ends relays the next one
 * to the wrong client: a response with both Content-Length and Transfer-Encoding, a transfer coding other
 * than chunked, differing Content-Length values, obsolete line folding, bare CR or LF, a malformed chunk or
 * an oversized head is a protocol error (the exchange fails, the connection is closed, never reused).
 *
 * Connections are kept per pool (one pool per node and connection settings) with a bound on their number;
 * requests beyond it wait in order. An idle connection is closed before the node's own keep-alive timeout
 * (its Keep-Alive hint less a second, else 4 s, at most the configured idle timeout). A request that finds
 * its reused connection closed by the node before any byte of the answer is sent again once, on a new
 * connection, when that is safe: an idempotent method and no body or a body held in memory.
 *
 * Timeouts (connect, response head, gaps in the response body) are checked by one coarse clock (100 ms)
 * for every connection instead of a timer per request.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
import { BAD_VALUE, CRLFCRLF, FIELD_CHARS, TOKEN, TOKEN_CHARS, trimmedSlice } from '../http-syntax.js';

/** Error codes of this client (`err.code`); system errors while connecting keep theirs (ECONNREFUSED...). */
export const UPSTREAM_ERR = {
  /** The connection was not established within the connect timeout. */
  connectTimeout: 'GH_UPSTREAM_CONNECT_TIMEOUT',
  /** No complete response head within the read timeout. */
  headersTimeout: 'GH_UPSTREAM_HEADERS_TIMEOUT',
  /** The response body stalled longer than the read timeout. */
  bodyTimeout: 'GH_UPSTREAM_BODY_TIMEOUT',
  /** The connection closed or failed during the exchange. */
  socket: 'GH_UPSTREAM_SOCKET',
  /** The node's response broke HTTP/1.1 framing or syntax. */
  protocol: 'GH_UPSTREAM_PROTOCOL',
  /** A header name or value, or the path, cannot be sent (it would change the request's framing). */
  invalidRequest: 'GH_UPSTREAM_INVALID_REQUEST',
} as const;

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/** What one exchange is told, in order: onConnect, onHeaders, onData*, then onComplete or onError (once). */
export interface UpstreamHandler {
  /** The request has a connection and is being written; `abort` cancels it (onError follows). */
  onConnect(abort: (err?: Error) => void): void;
  /**
   * The response head. `headers` is the flat [name, value, ...] list as received. Return false to pause
   * the body until `resume` is called.
   */
  onHeaders(status: number, headers: string[], resume: () => void, statusText: string): boolean;
  /**
   * A piece of the response body; `last` when it is known to end the body (onComplete follows at once).
   * Return false to pause until `resume` is called.
   */
  onData(chunk: Buffer, last: boolean): boolean;
  /** The response ended; trailer fields of a chunked response, if any. */
  onComplete(trailers: string[] | null): void;
  onError(err: Error): void;
}

export interface UpstreamRequest {
  method: string;
  /** Origin-form target (path and query). */
  path: string;
  /** Flat [name, value, ...] list; no hop-by-hop fields. Content-Length is kept for a streamed body. */
  headers: string[];
  /** A stream is sent as it is read (chunked unless headers carry Content-Length); a Buffer with its length. */
  body: Readable | Buffer | null;
  /** Milliseconds from the last byte of the request to the response head. */
  headersTimeout: number;
  /** Milliseconds the response body may stall. */
  bodyTimeout: number;
}

export interface H1PoolOptions {
  host: string;
  port: number;
  scheme: 'http' | 'https';
  connectTimeout: number;
  /** Connections at most (open or being opened). */
  connections: number;
  /** Longest time an idle connection is kept (the node's Keep-Alive hint may make it shorter). */
  idleTimeout: number;
  tls?: { verify: boolean; serverName?: string; ca?: string } | undefined;
}

/** Response heads larger than this are refused (nginx's largest default buffer is 8 KiB; node's limit 16). */
export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 4096;
const TICK_MS = 100;
const DEFAULT_KEEPALIVE_MS = 4000;
const KEEPALIVE_MARGIN_MS = 1000;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Methods whose requests are expected to carry content: without a body they announce a zero length. */
const EXPECTS_CONTENT = new Set(['POST', 'PUT', 'PATCH', 'QUERY']);

/** What node's own client refuses in a request target. */
const BAD_PATH = /[^\u0021-\u00ff]/;
const DIGITS = /^\d{1,15}$/;
/**
 * A whole header section as received (lines joined by CRLF, without the final one), every line a token, a
 * colon and field characters: one sticky test from the first header line instead of two per field. Only a
 * head that fails it is checked line by line, to say what is wrong.
 */
const HEADER_LINE = `[${TOKEN_CHARS}]+:[${FIELD_CHARS}]*`;
const HEADER_SECTION = new RegExp(`${HEADER_LINE}(?:\\r\\n${HEADER_LINE})*$`, 'y');
const CHUNKED_END = Buffer.from('0\r\n\r\n', 'latin1');
const CRLF = '\r\n';

const enum Framing {
  None,
  Length,
  Chunked,
  Close,
}

const enum Chunk {
  Size,
  Data,
  DataEnd,
  Trailers,
}

const enum State {
  Connecting,
  Idle,
  /** Waiting for (the rest of) a response head. */
  Head,
  Body,
  Closed,
}

function protocolError(message: string): UpstreamError {
  return new UpstreamError(`invalid response from upstream: ${message}`, UPSTREAM_ERR.protocol);
}

/** One request on its way through a pool. */
class Pending {
  conn: Conn | null = null;
  settled = false;
  /** Sent again once on a new connection after its reused one turned out closed. */
  replayed = false;
  readonly abort: (err?: Error) => void;
  /** Resumes the response body of this exchange only (a late call for a finished one does nothing). */
  readonly resume = (): void => {
    const c = this.conn;
    if (c !== null && c.p === this) c.onResume();
  };
  constructor(
    readonly pool: H1Pool,
    readonly req: UpstreamRequest,
    readonly handler: UpstreamHandler,
  ) {
    this.abort = (err?: Error) => pool.abort(this, err ?? new UpstreamError('request aborted', 'GH_UPSTREAM_ABORTED'));
  }

  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.handler.onError(err);
  }
}

/** Every open connection, for the one clock that enforces timeouts and idle limits. */
const live = new Set<Conn>();
let clock: NodeJS.Timeout | null = null;

function tick(): void {
  const now = performance.now();
  for (const c of live) {
    if (c.deadline > 0 && now >= c.deadline) c.timedOut();
  }
  if (live.size === 0 && clock !== null) {
    clearInterval(clock);
    clock = null;
  }
}

function track(c: Conn): void {
  live.add(c);
  if (clock === null) {
    clock = setInterval(tick, TICK_MS);
    clock.unref();
  }
}

class Conn {
  readonly socket: net.Socket;
  state = State.Connecting;
  p: Pending | null = null;
  /** performance.now() after which the clock acts (see timedOut); 0 for none. */
  deadline = 0;
  /** The connection carried at least one complete exchange. */
  reused = false;
  /** Keep-alive time granted by the node's last response. */
  private keepAliveMs = DEFAULT_KEEPALIVE_MS;
  // Request side.
  private body: Readable | null = null;
  private chunkedBody = false;
  private bodyDone = true;
  /** The head of a request with a streamed body, held until the body's first bytes (see start). */
  private pendingHead: string | null = null;
  // Response side.
  private head: Buffer | null = null;
  private gotBytes = false;
  private framing = Framing.None;
  private remaining = 0;
  private chunk = Chunk.Size;
  private line = '';
  private trailers: string[] | null = null;
  private keepAlive = true;
  private paused = false;
  private error: Error | null = null;

  constructor(
    readonly pool: H1Pool,
    first: Pending,
  ) {
    const o = pool.options;
    this.p = first;
    first.conn = this;
    if (o.scheme === 'https') {
      const servername = o.tls?.serverName ?? (net.isIP(o.host) === 0 ? o.host : undefined);
      this.socket = tls.connect({
        host: o.host,
        port: o.port,
        ...(servername !== undefined ? { servername } : {}),
        rejectUnauthorized: o.tls?.verify ?? true,
        ...(o.tls?.ca ? { ca: o.tls.ca } : {}),
        ALPNProtocols: ['http/1.1'],
        ...(pool.tlsSession !== null ? { session: pool.tlsSession } : {}),
      });
      this.socket.on('session', (s: Buffer) => {
        pool.tlsSession = s;
      });
      this.socket.once('secureConnect', this.onConnected);
    } else {
      this.socket = net.connect({ host: o.host, port: o.port });
      this.socket.once('connect', this.onConnected);
    }
    this.socket.setNoDelay(true);
    this.deadline = performance.now() + o.connectTimeout;
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.on('error', this.onSocketError);
    this.socket.on('close', this.onClose);
    this.socket.on('drain', this.onDrain);
    track(this);
  }

  private readonly onConnected = (): void => {
    this.deadline = 0;
    const p = this.p;
    this.p = null;
    if (p === null || p.settled) {
      // The request that opened this connection went away meanwhile: another can use it.
      this.pool.release(this);
      return;
    }
    this.start(p);
  };

  /** Write a request on this (connected, idle) connection. */
  start(p: Pending): void {
    this.p = p;
    p.conn = this;
    this.state = State.Head;
    this.gotBytes = false;
    this.head = null;
    this.trailers = null;
    this.keepAlive = true;
    p.handler.onConnect(p.abort);
    if (p.settled) return;
    const req = p.req;
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    let bad = BAD_PATH.test(req.path) ? 'path' : null;
    let hasLength = false;
    const h = req.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!;
      const value = h[i + 1]!;
      if (!TOKEN.test(name)) bad = `header name "${name.slice(0, 64)}"`;
      else if (BAD_VALUE.test(value)) bad = `value of header ${name}`;
      if (name.length === 14 && name.toLowerCase() === 'content-length') {
        if (req.body === null || !Buffer.isBuffer(req.body)) hasLength = true;
        else continue; // a body in memory is sent with its own length
      }
      head += `${name}: ${value}\r\n`;
    }
    if (bad !== null) {
      // Nothing was written: the connection stays good.
      this.p = null;
      p.conn = null;
      this.state = State.Idle;
      this.pool.release(this);
      p.fail(new UpstreamError(`cannot send the request upstream: invalid ${bad}`, UPSTREAM_ERR.invalidRequest));
      return;
    }
    const body = req.body;
    const socket = this.socket;
    this.deadline = performance.now() + req.headersTimeout;
    if (body === null) {
      if (!hasLength && EXPECTS_CONTENT.has(req.method)) head += 'content-length: 0\r\n';
      this.bodyDone = true;
      socket.write(head + CRLF, 'latin1');
    } else if (Buffer.isBuffer(body)) {
      this.bodyDone = true;
      socket.cork();
      socket.write(`${head}content-length: ${body.length}\r\n\r\n`, 'latin1');
      if (body.length > 0) socket.write(body);
      socket.uncork();
    } else if (body.destroyed || body.errored !== null) {
      // The body failed before its turn came (over the size limit, client gone): nothing was written.
      this.p = null;
      p.conn = null;
      this.pool.release(this);
      p.fail(body.errored ?? new UpstreamError('the request body ended before it could be sent', UPSTREAM_ERR.socket));
    } else {
      this.chunkedBody = !hasLength;
      if (this.chunkedBody) head += 'transfer-encoding: chunked\r\n';
      this.bodyDone = false;
      this.body = body;
      // The head goes out with the first body bytes: a body that turns out broken before any valid byte
      // (a malformed first chunk, a client that vanishes) sends nothing at all to the node.
      this.pendingHead = head + CRLF;
      this.deadline = 0;
      body.on('data', this.onBodyData);
      body.once('end', this.onBodyEnd);
      body.once('error', this.onBodyError);
      body.resume();
    }
  }

  private readonly onBodyData = (chunk: Buffer): void => {
    const socket = this.socket;
    let ok: boolean;
    if (chunk.length === 0) return;
    socket.cork();
    if (this.pendingHead !== null) {
      socket.write(this.pendingHead, 'latin1');
      this.pendingHead = null;
    }
    if (this.chunkedBody) {
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write(CRLF, 'latin1');
    } else {
      ok = socket.write(chunk);
    }
    socket.uncork();
    // Progress on the request counts as activity: the response is awaited from the request's last byte.
    if (this.state === State.Head) this.deadline = performance.now() + this.p!.req.headersTimeout;
    if (!ok) this.body!.pause();
  };

  private readonly onDrain = (): void => {
    if (this.body !== null && !this.bodyDone) this.body.resume();
  };

  private readonly onBodyEnd = (): void => {
    if (this.pendingHead !== null) {
      this.socket.write(this.pendingHead, 'latin1');
      this.pendingHead = null;
    }
    if (this.chunkedBody) this.socket.write(CHUNKED_END);
    this.detachBody();
    this.bodyDone = true;
    if (this.state === State.Head && this.p !== null) this.deadline = performance.now() + this.p.req.headersTimeout;
  };

  private readonly onBodyError = (err: Error): void => {
    this.detachBody();
    if (this.p !== null) this.fail(this.p, err);
  };

  private detachBody(): void {
    this.pendingHead = null;
    const body = this.body;
    if (body === null) return;
    this.body = null;
    body.off('data', this.onBodyData);
    body.off('end', this.onBodyEnd);
    body.off('error', this.onBodyError);
  }

  private readonly onData = (data: Buffer): void => {
    const p = this.p;
    if (p === null) {
      // Bytes nobody asked for: whatever the node means, this connection cannot carry another exchange.
      this.destroy();
      return;
    }
    this.gotBytes = true;
    if (this.state === State.Head) this.parseHead(p, data);
    else if (this.state === State.Body) this.parseBody(p, data, 0);
  };

  private parseHead(p: Pending, data: Buffer): void {
    let buf = data;
    let from = 0;
    if (this.head !== null) {
      from = Math.max(0, this.head.length - 3);
      buf = Buffer.concat([this.head, data]);
      this.head = null;
    }
    for (;;) {
      const end = buf.indexOf(CRLFCRLF, from);
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES) return this.fail(p, protocolError(`response head larger than ${MAX_HEAD_BYTES} bytes`));
        this.head = buf;
        return;
      }
      if (end > MAX_HEAD_BYTES) return this.fail(p, protocolError(`response head larger than ${MAX_HEAD_BYTES} bytes`));
      const status = this.onHead(p, buf.toString('latin1', 0, end));
      if (status < 0) return; // failed, or the handler gave up on the exchange
      if (status > 0) {
        // An interim (1xx) response: the final one follows.
        buf = buf.subarray(end + 4);
        from = 0;
        if (buf.length === 0) return;
        continue;
      }
      this.state = State.Body;
      if (this.framing === Framing.None || (this.framing === Framing.Length && this.remaining === 0)) {
        if (end + 4 < buf.length) this.keepAlive = false; // the node sent more than it announced
        this.complete(p);
        return;
      }
      if (end + 4 < buf.length) this.parseBody(p, buf, end + 4);
      else this.deadline = performance.now() + p.req.bodyTimeout;
      return;
    }
  }

  /**
   * One response head. Returns 0 for a final response (handler told), 1 for an interim one to skip, -1 when
   * the exchange ended (protocol error, or the handler aborted).
   */
  private onHead(p: Pending, text: string): number {
    let eol = text.indexOf(CRLF);
    if (eol < 0) eol = text.length;
    // HTTP/1.x SP 3DIGIT [SP reason]
    const status = statusOf(text, eol);
    const reason = eol > 13 ? text.slice(13, eol) : '';
    if (status < 0 || BAD_VALUE.test(reason)) {
      this.fail(p, protocolError('malformed status line'));
      return -1;
    }
    const headers: string[] = [];
    let contentLength = -1;
    let te: string | null = null;
    let connection: string | null = null;
    let keepAliveHint: string | null = null;
    const end = text.length;
    let wellFormed = false;
    if (eol + 2 < end) {
      HEADER_SECTION.lastIndex = eol + 2;
      wellFormed = HEADER_SECTION.test(text);
    }
    for (let start = eol + 2; start < end; start = eol + 2) {
      eol = text.indexOf(CRLF, start);
      if (eol < 0) eol = end;
      const colon = text.indexOf(':', start);
      if (colon <= start || colon > eol) {
        const c = text.charCodeAt(start);
        this.fail(p, protocolError(c === 32 || c === 9 ? 'obsolete line folding' : 'malformed header line'));
        return -1;
      }
      const name = text.slice(start, colon);
      // OWS around the value; no whitespace between name and colon (RFC 9112 5.1).
      const value = trimmedSlice(text, colon + 1, eol);
      // A bare CR or LF, NUL or another control character lands in a name or value and is refused there.
      if (!wellFormed && (!TOKEN.test(name) || BAD_VALUE.test(value))) {
        this.fail(p, protocolError(`malformed header ${TOKEN.test(name) ? name : 'name'}`));
        return -1;
      }
      headers.push(name, value);
      // Only the framing fields are looked at; their names have these lengths.
      const n = name.length;
      if (n === 14 || n === 17 || n === 10) {
        const lower = name.toLowerCase();
        if (lower === 'content-length') {
          for (const part of value.includes(',') ? value.split(',') : [value]) {
            const v = part.trim();
            if (!DIGITS.test(v)) {
              this.fail(p, protocolError('malformed Content-Length'));
              return -1;
            }
            const len = Number(v);
            if (contentLength >= 0 && len !== contentLength) {
              this.fail(p, protocolError('conflicting Content-Length values'));
              return -1;
            }
            contentLength = len;
          }
        } else if (lower === 'transfer-encoding') te = te === null ? value : `${te},${value}`;
        else if (lower === 'connection') connection = connection === null ? value : `${connection},${value}`;
        else if (lower === 'keep-alive') keepAliveHint = value;
      }
    }
    if (status < 200) {
      if (status === 101) {
        this.fail(p, protocolError('101 Switching Protocols to a request that asked for no upgrade'));
        return -1;
      }
      return 1;
    }
    const http10 = text.charCodeAt(7) === 48;
    let close = http10;
    if (connection === 'keep-alive' || connection === 'Keep-Alive') close = false;
    else if (connection !== null) {
      for (const t of connection.toLowerCase().split(',')) {
        const token = t.trim();
        if (token === 'close') close = true;
        else if (token === 'keep-alive' && http10) close = false;
      }
    }
    this.keepAlive = !close;
    if (keepAliveHint !== null) {
      const t = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(keepAliveHint);
      if (t !== null) this.keepAliveMs = Number(t[1]) * 1000 - KEEPALIVE_MARGIN_MS;
    }
    if (p.req.method === 'HEAD' || status === 204 || status === 304) {
      this.framing = Framing.None;
    } else if (te !== null) {
      if (contentLength >= 0) {
        this.fail(p, protocolError('both Content-Length and Transfer-Encoding'));
        return -1;
      }
      if (te.trim().toLowerCase() !== 'chunked') {
        this.fail(p, protocolError(`unsupported Transfer-Encoding "${te.slice(0, 64)}"`));
        return -1;
      }
      this.framing = Framing.Chunked;
      this.chunk = Chunk.Size;
      this.line = '';
    } else if (contentLength >= 0) {
      this.framing = Framing.Length;
      this.remaining = contentLength;
    } else {
      // Delimited by the connection's close (RFC 9112 6.3, rule 8).
      this.framing = Framing.Close;
      this.keepAlive = false;
    }
    this.deadline = 0;
    if (!p.handler.onHeaders(status, headers, p.resume, reason)) this.pause();
    return this.p === p && !p.settled ? 0 : -1;
  }

  private parseBody(p: Pending, buf: Buffer, at: number): void {
    const len = buf.length;
    while (at < len) {
      if (this.framing === Framing.Length) {
        const n = Math.min(this.remaining, len - at);
        this.remaining -= n;
        const piece = at === 0 && n === len ? buf : buf.subarray(at, at + n);
        at += n;
        if (!this.deliver(p, piece, this.remaining === 0)) return;
        if (this.remaining === 0) {
          if (at < len) this.keepAlive = false; // more than announced
          this.complete(p);
          return;
        }
      } else if (this.framing === Framing.Close) {
        if (!this.deliver(p, at === 0 ? buf : buf.subarray(at), false)) return;
        at = len;
      } else {
        at = this.parseChunked(p, buf, at);
        if (at < 0) return;
      }
    }
    if (this.p === p) this.deadline = this.paused ? 0 : performance.now() + p.req.bodyTimeout;
  }

  /** Chunked transfer coding (RFC 9112 7.1). Returns where it stopped, or -1 when the exchange ended. */
  private parseChunked(p: Pending, buf: Buffer, at: number): number {
    const len = buf.length;
    while (at < len) {
      switch (this.chunk) {
        case Chunk.Size:
        case Chunk.DataEnd:
        case Chunk.Trailers: {
          const nl = buf.indexOf(10, at);
          const stop = nl < 0 ? len : nl + 1;
          this.line += buf.toString('latin1', at, stop);
          at = stop;
          if (nl < 0) {
            if (this.line.length > (this.chunk === Chunk.Trailers ? MAX_HEAD_BYTES : MAX_CHUNK_LINE)) {
              this.fail(p, protocolError('chunk line too long'));
              return -1;
            }
            return at;
          }
          const line = this.line;
          this.line = '';
          if (line.length < 2 || line.charCodeAt(line.length - 2) !== 13) {
            this.fail(p, protocolError('bare LF in chunked body'));
            return -1;
          }
          const text = line.slice(0, -2);
          if (this.chunk === Chunk.DataEnd) {
            if (text.length !== 0) {
              this.fail(p, protocolError('chunk data longer than its size'));
              return -1;
            }
            this.chunk = Chunk.Size;
          } else if (this.chunk === Chunk.Size) {
            const size = chunkSize(text);
            if (size < 0) {
              this.fail(p, protocolError('malformed chunk size'));
              return -1;
            }
            if (size === 0) this.chunk = Chunk.Trailers;
            else {
              this.remaining = size;
              this.chunk = Chunk.Data;
            }
          } else if (text.length === 0) {
            if (at < len) this.keepAlive = false; // more than the response
            this.complete(p);
            return -1;
          } else {
            const colon = text.indexOf(':');
            const name = colon > 0 ? text.slice(0, colon) : '';
            const value = text.slice(colon + 1).trim();
            if (!TOKEN.test(name) || BAD_VALUE.test(value)) {
              this.fail(p, protocolError('malformed trailer field'));
              return -1;
            }
            (this.trailers ??= []).push(name, value);
          }
          break;
        }
        case Chunk.Data: {
          const n = Math.min(this.remaining, len - at);
          this.remaining -= n;
          const piece = buf.subarray(at, at + n);
          at += n;
          if (this.remaining === 0) this.chunk = Chunk.DataEnd;
          if (!this.deliver(p, piece, false)) return -1;
          break;
        }
      }
    }
    return at;
  }

  /** Hand a body piece over; false when the exchange ended meanwhile (aborted by the handler). */
  private deliver(p: Pending, piece: Buffer, last: boolean): boolean {
    if (!p.handler.onData(piece, last)) this.pause();
    return this.p === p && !p.settled;
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    // The reader is slow, not the node: no body timeout while paused.
    this.deadline = 0;
    this.socket.pause();
  }

  onResume(): void {
    if (!this.paused || this.state === State.Closed) return;
    this.paused = false;
    if (this.p !== null && this.state === State.Body) this.deadline = performance.now() + this.p.req.bodyTimeout;
    this.socket.resume();
  }

  private complete(p: Pending): void {
    const trailers = this.trailers;
    this.p = null;
    p.conn = null;
    this.deadline = 0;
    this.trailers = null;
    this.reused = true;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    p.settled = true;
    if (this.keepAlive && this.bodyDone && this.keepAliveMs > 0) {
      this.state = State.Idle;
      this.pool.release(this);
    } else {
      this.detachBody();
      this.destroy();
    }
    p.handler.onComplete(trailers);
  }

  /** End the exchange with an error and close the connection (it may hold half a message). */
  fail(p: Pending, err: Error): void {
    if (this.p === p) {
      this.p = null;
      p.conn = null;
    }
    this.detachBody();
    this.destroy();
    p.fail(err);
  }

  /** Idle connections expire here too: the deadline is the keep-alive limit then. */
  timedOut(): void {
    const p = this.p;
    if (this.state === State.Idle || p === null) {
      this.destroy();
      return;
    }
    if (this.state === State.Connecting) this.fail(p, new UpstreamError(`connect timeout after ${this.pool.options.connectTimeout} ms`, UPSTREAM_ERR.connectTimeout));
    else if (this.state === State.Head) this.fail(p, new UpstreamError(`no response head within ${p.req.headersTimeout} ms`, UPSTREAM_ERR.headersTimeout));
    else this.fail(p, new UpstreamError(`response body stalled for ${p.req.bodyTimeout} ms`, UPSTREAM_ERR.bodyTimeout));
  }

  /** Make an idle connection wait for its next request (or expire). */
  idle(): void {
    this.state = State.Idle;
    this.deadline = performance.now() + Math.min(this.keepAliveMs, this.pool.options.idleTimeout);
  }

  private readonly onEnd = (): void => {
    const p = this.p;
    if (p !== null && this.state === State.Body && this.framing === Framing.Close) {
      this.keepAlive = false;
      this.complete(p);
      return;
    }
    this.closed(null);
  };

  private readonly onSocketError = (err: Error): void => {
    this.error = err;
  };

  private readonly onClose = (): void => {
    this.closed(this.error);
  };

  /** The socket is gone: take it out of the pool and fail (or replay) the exchange it carried. */
  private closed(err: Error | null): void {
    if (this.state === State.Closed) return;
    const connecting = this.state === State.Connecting;
    this.state = State.Closed;
    this.deadline = 0;
    live.delete(this);
    this.pool.removed(this);
    this.socket.destroy();
    const p = this.p;
    if (p === null || p.settled) return;
    this.p = null;
    p.conn = null;
    this.detachBody();
    if (connecting) {
      p.fail(err ?? new UpstreamError('connection closed while connecting', UPSTREAM_ERR.socket));
      return;
    }
    // A kept-alive connection the node closed before answering: the request most likely never reached it.
    const body = p.req.body;
    if (this.reused && !this.gotBytes && !p.replayed && IDEMPOTENT.has(p.req.method) && (body === null || Buffer.isBuffer(body))) {
      p.replayed = true;
      this.pool.replay(p);
      return;
    }
    const e = new UpstreamError(err ? `upstream connection failed: ${err.message}` : 'upstream closed the connection', UPSTREAM_ERR.socket);
    if (err) e.cause = err;
    p.fail(e);
  }

  destroy(): void {
    if (this.state === State.Closed) return;
    this.closed(null);
  }
}

/** The status code of a status line `text[0, eol)` ("HTTP/1.1 200 OK"), or -1 when malformed. */
function statusOf(text: string, eol: number): number {
  if (eol < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 32 || (eol > 12 && text.charCodeAt(12) !== 32)) return -1;
  const v = text.charCodeAt(7);
  if (v !== 48 && v !== 49) return -1;
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    status = status * 10 + d;
  }
  return status < 100 ? -1 : status;
}

/** Parse a chunk-size line (hex digits, then optional extensions); -1 when malformed. */
function chunkSize(text: string): number {
  let i = 0;
  let size = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else break;
    size = size * 16 + d;
    if (size > Number.MAX_SAFE_INTEGER) return -1;
    i++;
  }
  if (i === 0) return -1;
  if (i === n) return size;
  // chunk-ext: BWS ";" ...; its content is ignored, but it may hold no control characters.
  let j = i;
  while (j < n && (text.charCodeAt(j) === 32 || text.charCodeAt(j) === 9)) j++;
  if (j === n || text.charCodeAt(j) !== 59 /* ; */ || BAD_VALUE.test(text)) return -1;
  return size;
}

/** The connections to one node (with one set of connection settings). */
export class H1Pool {
  /** Idle connections, most recently used last. */
  private idle: Conn[] = [];
  private queue: Pending[] = [];
  private queueHead = 0;
  /** Connections open or being opened. */
  private count = 0;
  private closing = false;
  private onEmpty: (() => void) | null = null;
  /** The last TLS session the node gave, to resume on the next connection. */
  tlsSession: Buffer | null = null;

  constructor(readonly options: H1PoolOptions) {}

  /** Send a request. Returns the function that aborts it (onError follows), usable at once. */
  dispatch(req: UpstreamRequest, handler: UpstreamHandler): (err?: Error) => void {
    const p = new Pending(this, req, handler);
    this.assign(p);
    return p.abort;
  }

  private assign(p: Pending): void {
    const c = this.idle.pop();
    if (c !== undefined) {
      c.deadline = 0;
      c.start(p);
    } else if (this.count < this.options.connections) {
      this.open(p);
    } else {
      this.queue.push(p);
    }
  }

  /** A new connection for `p` (counted from now on). */
  private open(p: Pending): void {
    this.count++;
    try {
      new Conn(this, p);
    } catch (err) {
      // A connection that cannot even be attempted (an unusable address): nothing was opened.
      this.count--;
      p.fail(err as Error);
    }
  }

  /** The next request still waiting, or null; the queue is compacted as it is consumed. */
  private dequeue(): Pending | null {
    while (this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Pending;
      if (this.queueHead === this.queue.length) {
        this.queue = [];
        this.queueHead = 0;
      } else if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) {
        // Under lasting overload the queue never empties: drop the consumed front now and then.
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      if (!next.settled) return next;
    }
    return null;
  }

  /** Send a request again on a new connection (its reused one was closed under it). */
  replay(p: Pending): void {
    if (this.count < this.options.connections) {
      this.open(p);
    } else {
      // Ahead of the waiting requests: it was sent before them.
      this.queue.splice(this.queueHead, 0, p);
    }
  }

  /** A connection finished an exchange and can carry another. */
  release(c: Conn): void {
    const next = this.dequeue();
    if (next !== null) {
      c.start(next);
      return;
    }
    if (this.closing) {
      c.destroy();
      return;
    }
    c.idle();
    this.idle.push(c);
  }

  /** A connection closed. */
  removed(c: Conn): void {
    this.count--;
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    // A request waiting for a connection gets a new one.
    while (this.count < this.options.connections) {
      const next = this.dequeue();
      if (next === null) break;
      this.open(next);
    }
    if (this.count === 0 && this.onEmpty !== null) {
      const done = this.onEmpty;
      this.onEmpty = null;
      done();
    }
  }

  abort(p: Pending, err: Error): void {
    if (p.settled) return;
    if (p.conn !== null && p.conn.p === p) {
      p.conn.fail(p, err);
      return;
    }
    // Waiting in the queue or for its connection: it is skipped when its turn comes.
    p.fail(err);
  }

  /** Connections open or being opened. */
  get size(): number {
    return this.count;
  }

  /**
   * Close gracefully: idle connections now, busy ones after their exchange; requests still arriving (a retry
   * started before a config swap) are served. Resolves when every connection is closed.
   */
  close(): Promise<void> {
    this.closing = true;
    for (const c of this.idle.splice(0)) c.destroy();
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onEmpty = resolve;
    });
  }

  /** Close every connection now; exchanges in flight fail. */
  destroy(): void {
    this.closing = true;
    for (const c of [...live]) if (c.pool === this) c.destroy();
  }
}
