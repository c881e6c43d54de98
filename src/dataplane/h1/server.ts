/**
 * @module dataplane/h1/server
 * The gateway's own reader and writer of plain HTTP/1.1 requests on the proxy port.
 *
 * Node's HTTP server is a sizeable part of the gateway's CPU per proxied request (a C++ parser calling back
 * into JavaScript per request, a Readable for every request, a Writable with its own buffering for every
 * response). Most requests through a gateway are the plain case: an HTTP/1.1 head with no body. Those are read
 * here (see head.ts for exactly what is taken), and answered through a small response object that writes the
 * head together with the first body bytes.
 *
 * Everything else is handed to node's HTTP server with the connection: a head this reader does not take
 * (a request body, Expect, an upgrade, anything unusual or broken), a head larger than the limit. The bytes
 * read so far go back to the socket first, so node reads the connection from where this reader stopped and
 * answers as it always did (its parser, its 400, 431 and 413, bodies, upgrades). A connection handed over stays
 * with node.
 *
 * Requests on one connection are answered in order: a pipelined head is read once the response before it has
 * ended (and the socket stops being read while one is held). Time limits: an incomplete head older than the
 * headers timeout gets 408, an idle keep-alive connection is closed after the keep-alive timeout, both checked by
 * one coarse clock for all connections.
 */
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { BAD_VALUE, CRLFCRLF, TOKEN } from '../http-syntax.js';
import { parseHead } from './head.js';

export interface H1ServerOptions {
  /** Largest request head in bytes; a larger one goes to node's server (which answers 431). */
  maxHeaderSize: number;
  /** Milliseconds a client has for a request head. */
  headersTimeout: number;
  /** Milliseconds an idle keep-alive connection is kept; 0 keeps it. */
  keepAliveTimeout: number;
  /** How often the time limits are checked. */
  checkInterval: number;
}

export interface H1ServerHooks {
  request(req: FastRequest, res: FastResponse): void;
  /** Give the connection to node's HTTP server (the bytes it has not answered are back on the socket). */
  handOff(socket: Socket): void;
  /** A client too slow with its head: answer 408 and close (the same path node's timeouts take). */
  timeout(socket: Socket): void;
}

/** A Connection header value that asks to close. */
const CLOSE_TOKEN = /(?:^|,)[\t ]*close[\t ]*(?:,|$)/i;

/** A LF not preceded by CR. */
function hasBareLf(buf: Buffer): boolean {
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) if (i === 0 || buf[i - 1] !== 13) return true;
  return false;
}

let dateCache = '';
let dateSecond = -1;
/** The Date header's value, made once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateCache = new Date(now).toUTCString();
  }
  return dateCache;
}

function invalid(kind: 'name' | 'value' | 'status' | 'message', what: string): TypeError {
  const err = new TypeError(`invalid response header ${kind} ${JSON.stringify(what.slice(0, 64))}`);
  (err as NodeJS.ErrnoException).code = kind === 'name' ? 'ERR_INVALID_HTTP_TOKEN' : 'ERR_INVALID_CHAR';
  return err;
}

/** A request read by this server: the fields of node's IncomingMessage the gateway uses. It never has a body. */
export class FastRequest extends EventEmitter {
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  /** The whole request has been read (there is no body). */
  readonly complete = true;

  constructor(
    readonly socket: Socket,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    readonly headers: Record<string, string | string[]>,
  ) {
    super();
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }
}

type HeaderInput = readonly string[] | Record<string, string | number | readonly string[]>;

function flatten(headers: Record<string, string | number | readonly string[]>): string[] {
  const list: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (Array.isArray(value)) for (const v of value as readonly string[]) list.push(name, v);
    else list.push(name, String(value));
  }
  return list;
}

/**
 * A response on this server: the part of node's ServerResponse the gateway uses. The head waits until the
 * first body bytes or the end, and leaves with them in one write; without Content-Length the body is chunked.
 * 'finish' and 'close' come after the end on the next tick (as node's do), or 'close' alone if the connection
 * closes first.
 */
export class FastResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  /** Set false before the head is written to close the connection after this response. */
  shouldKeepAlive: boolean;
  /** Set when the response ended or its connection closed. */
  closed = false;
  private head: string | null = null;
  private chunked = false;
  private hasBody: boolean;
  private trailers = '';

  constructor(
    private readonly conn: Connection,
    readonly req: FastRequest,
    keepAlive: boolean,
  ) {
    super();
    this.shouldKeepAlive = keepAlive;
    this.hasBody = req.method !== 'HEAD';
  }

  get writableLength(): number {
    return this.conn.socket.writableLength;
  }

  cork(): void {
    this.conn.socket.cork();
  }

  uncork(): void {
    this.conn.socket.uncork();
  }

  writeHead(status: number, reasonOrHeaders?: string | HeaderInput, maybeHeaders?: HeaderInput): this {
    if (this.headersSent) throw new Error('response head already written');
    if (!Number.isInteger(status) || status < 100 || status > 999) throw invalid('status', String(status));
    let reason: string | undefined;
    let headers: HeaderInput | undefined;
    // As node's: (status, reason, headers), (status, undefined, headers) or (status, headers).
    if (typeof reasonOrHeaders === 'string' || reasonOrHeaders === undefined) {
      reason = reasonOrHeaders;
      headers = maybeHeaders;
    } else headers = reasonOrHeaders;
    if (reason === undefined || reason === '') reason = STATUS_CODES[status] ?? 'unknown';
    else if (BAD_VALUE.test(reason)) throw invalid('message', reason);
    let out = `HTTP/1.1 ${status} ${reason}\r\n`;
    let length = false;
    let date = false;
    // A gateway shutting down tells every client to close, in-flight ones included.
    let keepAlive = this.shouldKeepAlive && !this.conn.server.draining;
    // One flat [name, value, ...] list: what the proxy passes; an object (the gateway's own errors) is flattened.
    const list = headers === undefined ? [] : Array.isArray(headers) ? (headers as readonly string[]) : flatten(headers as Record<string, string | number | readonly string[]>);
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!;
      const value = list[i + 1]!;
      if (!TOKEN.test(name)) throw invalid('name', name);
      if (BAD_VALUE.test(value)) throw invalid('value', name);
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === 'date') date = true;
          break;
        case 10:
          // The connection's fate is this server's to say (once, below); a close asked for is honoured.
          if (name.toLowerCase() === 'connection') {
            if (CLOSE_TOKEN.test(value)) keepAlive = false;
            continue;
          }
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') length = true;
          break;
        case 17:
          // So is the framing: a Transfer-Encoding from elsewhere would contradict the one chosen here.
          if (name.toLowerCase() === 'transfer-encoding') continue;
          break;
      }
      out += `${name}: ${value}\r\n`;
    }
    // RFC 9110 6.4.1: no body for HEAD, 1xx, 204 and 304, whatever the head says.
    if (status < 200 || status === 204 || status === 304) this.hasBody = false;
    if (!date) out += `Date: ${httpDate()}\r\n`;
    if (this.hasBody && !length) {
      this.chunked = true;
      out += 'Transfer-Encoding: chunked\r\n';
    }
    this.shouldKeepAlive = keepAlive;
    if (keepAlive) out += this.conn.server.keepAliveHeader;
    else out += 'Connection: close\r\n';
    this.head = `${out}\r\n`;
    this.statusCode = status;
    this.headersSent = true;
    return this;
  }

  /** Write body bytes (a string is written as latin1). False when the socket's buffer is over its mark. */
  write(chunk: Buffer | string, encoding?: BufferEncoding): boolean {
    if (this.writableEnded) throw new Error('write after end');
    if (!this.headersSent) this.writeHead(this.statusCode);
    const socket = this.conn.socket;
    // The connection is closing (the client left, see Connection.onEnd): nothing more can be sent.
    if (this.destroyed || !socket.writable) return false;
    const head = this.head;
    if (!this.hasBody || chunk.length === 0) {
      if (head === null) return true;
      this.head = null;
      return socket.write(head, 'latin1');
    }
    this.head = null;
    if (typeof chunk === 'string') {
      if (encoding === undefined || encoding === 'latin1') {
        if (!this.chunked) return socket.write(head === null ? chunk : head + chunk, 'latin1');
        return socket.write(`${head ?? ''}${chunk.length.toString(16)}\r\n${chunk}\r\n`, 'latin1');
      }
      chunk = Buffer.from(chunk, encoding);
    }
    const buf = chunk as Buffer;
    if (!this.chunked) {
      if (head === null) return socket.write(buf);
      socket.cork();
      socket.write(head, 'latin1');
      const ok = socket.write(buf);
      socket.uncork();
      return ok;
    }
    socket.cork();
    socket.write(`${head ?? ''}${buf.length.toString(16)}\r\n`, 'latin1');
    socket.write(buf);
    const ok = socket.write('\r\n', 'latin1');
    socket.uncork();
    return ok;
  }

  /** Trailer fields after a chunked body (dropped when the body is not chunked, as node does). */
  addTrailers(fields: Record<string, string>): void {
    for (const [name, value] of Object.entries(fields)) {
      if (!TOKEN.test(name)) throw invalid('name', name);
      if (BAD_VALUE.test(value)) throw invalid('value', name);
      this.trailers += `${name}: ${value}\r\n`;
    }
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded) return this;
    if (!this.headersSent) this.writeHead(this.statusCode);
    const socket = this.conn.socket;
    const sent = !this.destroyed && socket.writable;
    if (sent) {
      if (chunk !== undefined && chunk.length > 0) this.write(chunk);
      const last = this.chunked ? `0\r\n${this.trailers}\r\n` : '';
      const head = this.head;
      this.head = null;
      if (head !== null || last !== '') socket.write(head === null ? last : head + last, 'latin1');
    }
    this.writableEnded = true;
    this.writableFinished = sent;
    process.nextTick(finishResponse, this);
    return this;
  }

  destroy(_err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.conn.socket.destroy();
    return this;
  }

  /** Emit 'close' once, and let the connection go on to its next request. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
    this.conn.responseDone(this);
  }
}

function finishResponse(res: FastResponse): void {
  if (res.closed) return;
  if (res.writableFinished) res.emit('finish');
  res.close();
}

/** One client connection while this server reads it. */
class Connection {
  /** Bytes read and not yet parsed. */
  private buf: Buffer | null = null;
  /** The response being written, or null between requests. */
  private res: FastResponse | null = null;
  /**
   * When the pending head began (Date.now()): its first byte, or the connection's start for the first request
   * (a client that connects and sends nothing gets the headers timeout, as on node's server). 0: none pending.
   */
  headSince: number;
  /** When the connection became idle between requests, 0 otherwise. */
  idleSince = 0;
  /** The connection left this server (handed off, timed out or closed). */
  gone = false;
  private inLoop = false;
  private paused = false;

  constructor(
    readonly socket: Socket,
    readonly server: H1Server,
  ) {
    this.headSince = Date.now();
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.on('drain', this.onDrain);
  }

  get idle(): boolean {
    return this.res === null && this.buf === null;
  }

  /** Waiting for (the rest of) a head, no response pending. */
  get reading(): boolean {
    return this.res === null && this.headSince !== 0 && !this.gone;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.gone) return;
    if (this.buf === null) {
      this.buf = chunk;
      if (this.res === null && this.headSince === 0) this.headSince = Date.now();
    } else this.buf = Buffer.concat([this.buf, chunk]);
    this.idleSince = 0;
    if (this.res === null) this.next();
    else if (this.buf.length > this.server.options.maxHeaderSize && !this.paused) {
      // A client sending ahead of its answers: hold what came, read more once the response is done.
      this.paused = true;
      this.socket.pause();
    }
  };

  /** Read and start every complete head buffered, one at a time. */
  private next(): void {
    if (this.inLoop) return;
    this.inLoop = true;
    try {
      while (this.res === null && this.buf !== null && !this.gone) {
        const buf = this.buf;
        const end = buf.indexOf(CRLFCRLF);
        const max = this.server.options.maxHeaderSize;
        if (end === -1) {
          // Not complete yet: wait, unless it is already too large or not what this reader takes (a client
          // ending lines with a bare LF would otherwise wait here for a CRLF CRLF that never comes).
          if (buf.length > max || hasBareLf(buf)) this.handOff();
          break;
        }
        if (end > max) {
          this.handOff();
          break;
        }
        const head = parseHead(buf.toString('latin1', 0, end));
        if (head === null) {
          this.handOff();
          break;
        }
        if (end + 4 === buf.length) {
          this.buf = null;
          this.headSince = 0;
        } else {
          // A pipelined head: its time starts when its turn comes (responseDone).
          this.buf = buf.subarray(end + 4);
        }
        const req = new FastRequest(this.socket, head.method, head.url, head.rawHeaders, head.headers);
        const res = new FastResponse(this, req, !head.close && !this.server.draining);
        this.res = res;
        this.server.hooks.request(req, res);
      }
    } finally {
      this.inLoop = false;
    }
  }

  responseDone(res: FastResponse): void {
    if (this.res !== res) return;
    this.res = null;
    if (this.gone) return;
    if (!res.shouldKeepAlive) {
      this.leave();
      // As node does: end the connection once what was written has left, then let it close.
      this.socket.destroySoon();
      return;
    }
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.buf === null) this.idleSince = Date.now();
    else this.headSince = Date.now();
    this.next();
  }

  /** Give the connection and its unread bytes to node's server. */
  private handOff(): void {
    const socket = this.socket;
    socket.pause();
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('close', this.onClose);
    socket.off('error', this.onError);
    socket.off('drain', this.onDrain);
    if (this.buf !== null) socket.unshift(this.buf);
    this.leave();
    this.server.hooks.handOff(socket);
    // Node's server reads the socket from here: first the bytes put back, then what comes next.
    socket.resume();
  }

  /** The head took longer than the headers timeout. */
  timedOut(): void {
    this.leave();
    this.server.hooks.timeout(this.socket);
  }

  /**
   * The client ended its side. As node's server does (it does not allow half-open HTTP connections): what it
   * asked and has not been answered is abandoned, and the connection is ended; its close cancels the exchange.
   */
  private readonly onEnd = (): void => {
    if (this.gone) return;
    this.leave();
    if (this.socket.writable) this.socket.end();
  };

  private readonly onClose = (): void => {
    this.leave();
    const res = this.res;
    if (res !== null) {
      res.destroyed = true;
      res.req.emit('close');
      res.close();
    }
  };

  /** This server is done with the connection (what happens to the socket is the caller's). */
  private leave(): void {
    this.gone = true;
    this.buf = null;
    this.server.forget(this);
  }

  /** Close the connection without a word (idle past its time, or the gateway shutting down). */
  drop(): void {
    this.leave();
    this.socket.destroy();
  }

  private readonly onError = (): void => {
    this.socket.destroy();
  };

  private readonly onDrain = (): void => {
    this.res?.emit('drain');
  };
}

export class H1Server {
  readonly keepAliveHeader: string;
  /** Responses say Connection: close from now on (the gateway is shutting down). */
  draining = false;
  private readonly connections = new Set<Connection>();
  private readonly clock: NodeJS.Timeout;

  constructor(
    readonly options: H1ServerOptions,
    readonly hooks: H1ServerHooks,
  ) {
    this.keepAliveHeader =
      options.keepAliveTimeout > 0 ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(options.keepAliveTimeout / 1000)}\r\n` : 'Connection: keep-alive\r\n';
    this.clock = setInterval(this.check, options.checkInterval);
    this.clock.unref();
  }

  /** A new client connection. */
  accept(socket: Socket): void {
    this.connections.add(new Connection(socket, this));
  }

  forget(conn: Connection): void {
    this.connections.delete(conn);
  }

  /** Close every connection with no request pending. */
  closeIdle(): void {
    for (const conn of this.connections) {
      if (conn.idle) conn.drop();
    }
  }

  close(): void {
    clearInterval(this.clock);
  }

  private readonly check = (): void => {
    const now = Date.now();
    const { headersTimeout, keepAliveTimeout } = this.options;
    for (const conn of this.connections) {
      if (conn.reading && now - conn.headSince >= headersTimeout) conn.timedOut();
      else if (keepAliveTimeout > 0 && conn.idleSince !== 0 && conn.idle && now - conn.idleSince >= keepAliveTimeout) conn.drop();
    }
  };
}
