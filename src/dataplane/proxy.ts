/**
 * @module dataplane/proxy
 * Forwards one request to an upstream node and relays the response: the request path's hot core.
 * One Exchange per request is the handler of the gateway's HTTP/1.1 client (upstream/h1-client.ts; no stream
 * wrappers), streams both bodies with backpressure, retries on another node when that is safe, and never
 * turns an upstream failure into a truncated success.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { errorBody, ERRORS, type ErrorCode } from '../core/errors.js';
import { downstreamResponseHeaders, headersToObject, upstreamRequestHeaders, type ForwardInfo } from './headers.js';
import type { UpstreamRuntime } from './upstream/upstream.js';
import { UPSTREAM_ERR, type UpstreamHandler } from './upstream/h1-client.js';
import type { NodeState, PickContext } from './upstream/types.js';
import type { Timeouts } from '../model/common.js';
import type { Context } from './context.js';
import { PluginFailure, runResponseBody, runResponseTap } from './plugins/chain.js';

export type ClientRequest = IncomingMessage | Http2ServerRequest;
export type ClientResponse = ServerResponse | Http2ServerResponse;

/** Reports real-traffic outcomes to passive health checking. */
export interface HealthReporter {
  report(upstreamKey: string, node: NodeState, ok: boolean): void;
}

/** What the exchange needs of the matched route. */
export interface ProxyTarget {
  upstream: UpstreamRuntime;
  timeouts: Timeouts;
  maxBodySize: number;
}

/** Per-request state shared with the server (and, later, plugins). */
export interface RequestContext extends PickContext {
  req: ClientRequest;
  res: ClientResponse;
  method: string;
  h2: boolean;
  fwd: ForwardInfo;
  trustedPeer: boolean;
  target: ProxyTarget;
  /** performance.now() when the request arrived. */
  start: number;
  /** Final status sent downstream (0 until headers are written). */
  status: number;
  node: NodeState | null;
  /** Milliseconds to upstream response headers, -1 when none came. */
  upstreamLatency: number;
  /** Error code when the gateway answered itself. */
  errorCode: ErrorCode | null;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const RETRY_STATUSES = new Set([502, 503, 504]);
/** Connection-level failures where the node never saw the request: always safe to try another node. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', UPSTREAM_ERR.connectTimeout]);

const JSON_HEADERS = 'application/json';

function noop(): void {}

const EMPTY = Buffer.alloc(0);
/**
 * Response bytes an HTTP/1.1 client may leave unread in the gateway before it stops reading from the node: one
 * 64 KiB socket read of the body plus room for the response head and the piece that ends it.
 */
const RELAY_WINDOW = 96 * 1024;
/** Largest body sent with its head as one string (see onComplete). */
const SINGLE_WRITE_MAX = 16 * 1024;

function withoutHeader(list: string[], lower: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) if (list[i]!.toLowerCase() !== lower) out.push(list[i]!, list[i + 1]!);
  return out;
}

/** Write a gateway-made JSON error, or cut the connection if the response has already started. */
export function sendError(res: ClientResponse, code: ErrorCode, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code);
  const headers: Record<string, string | number> = { 'content-type': JSON_HEADERS, 'content-length': body.length };
  if (close && !('stream' in res)) headers.connection = 'close';
  res.writeHead(ERRORS[code].status, headers);
  res.end(body);
}

/**
 * Write a response the gateway makes itself (an error, a plugin's answer) for a request that has a context:
 * plugins' response headers and response phases apply to it as to a proxied response.
 */
export function respond(ctx: Context, status: number, headers: string[], body: Buffer, close: boolean): void {
  const res = ctx.res;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  let head = { status, headers };
  if (ctx.chain !== null || ctx.responseExtra !== null) head = ctx.finishHead(head);
  // RFC 9110 8.6: no Content-Length on 1xx and 204; a 304 would announce the cached representation's length.
  if (head.status >= 200 && head.status !== 204 && head.status !== 304) head.headers.push('content-length', String(body.length));
  if (close && !ctx.h2) head.headers.push('connection', 'close');
  ctx.status = head.status;
  ctx.bytesSent += body.length;
  if (ctx.h2) (res as Http2ServerResponse).writeHead(head.status, headersToObject(head.headers));
  else (res as ServerResponse).writeHead(head.status, head.headers);
  res.end(body);
}

/** A gateway error for a request with a context. */
export function respondError(ctx: Context, code: ErrorCode, close = false, extraHeaders: string[] = []): void {
  ctx.errorCode = code;
  respond(ctx, ERRORS[code].status, ['content-type', JSON_HEADERS, ...extraHeaders], errorBody(code), close);
}

/** Counts body bytes and fails once a chunked (length-less) body crosses the route's limit. */
class BodyLimit extends Transform {
  seen = 0;
  exceeded = false;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      this.exceeded = true;
      cb(new Error('body too large'));
      return;
    }
    cb(null, chunk);
  }
}

function timeoutCode(err: NodeJS.ErrnoException): boolean {
  return err.code === UPSTREAM_ERR.connectTimeout || err.code === UPSTREAM_ERR.headersTimeout || err.code === UPSTREAM_ERR.bodyTimeout;
}

/** One client request's trip through the upstream, across retries. */
export class Exchange implements UpstreamHandler {
  private node: NodeState | null = null;
  private tried: Set<NodeState> | null = null;
  private attempts = 0;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private body: Readable | null = null;
  private buffered: Buffer | null = null;
  /** Plugins filter the response body (the route has responseBody hooks). */
  private filterBody = false;
  /** Plugins watch the response body as it is sent (responseTap hooks). */
  private tapBody = false;
  private bodyStarted = false;
  /** The final piece of the body, held to be written with the end of the response. */
  private lastChunk: Buffer | null = null;
  private headersAt = 0;
  private sentAt = 0;
  private retrying: NodeState | null = null;
  private finished = false;
  private clientGone = false;
  private drainWaiting: (() => void) | null = null;
  /** Body bytes were written before the last piece. */
  private relayed = false;
  private limiter: BodyLimit | null = null;
  private sendTimer: NodeJS.Timeout | null = null;
  private lastBodyProgress = 0;
  private readonly path: string;
  private readonly headers: string[];

  constructor(
    private readonly ctx: Context,
    private readonly health: HealthReporter,
    forwardPath: string,
    hostHeader: string,
    hasBody: boolean,
    private readonly hostFromNode: boolean,
    /** Called once when the client response closes (finished or not): metrics and access log. */
    private readonly onClosed: (ctx: Context) => void,
  ) {
    const req = ctx.req;
    this.path = ctx.query ? `${forwardPath}?${ctx.query}` : forwardPath;
    let headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection as string | undefined, hostHeader, ctx.fwd, ctx.trustedPeer);
    if (ctx.bufferedBody !== null) {
      // A plugin read the body: send those bytes; the client sets their length.
      ctx.removeUpstreamHeader('content-length');
      this.body = null;
      this.buffered = ctx.bufferedBody;
    }
    this.headers = ctx.upstreamEdits === null ? headers : ctx.editUpstreamHeaders(headers);
    headers = this.headers;
    if (ctx.excluded !== null) this.tried = new Set(ctx.excluded);
    if (this.buffered !== null) ctx.bytesReceived = this.buffered.length;
    else if (hasBody) {
      const cl = req.headers['content-length'];
      if (cl !== undefined) ctx.bytesReceived = Number(cl) || 0;
    }
    if (hasBody && this.buffered === null) {
      const limit = ctx.target.maxBodySize;
      if (limit > 0 && req.headers['content-length'] === undefined) {
        this.limiter = new BodyLimit(limit);
        // The client reports the error through onError while it holds the body; before that (or after a failed
        // attempt) nobody else listens, and an unhandled stream error would take the whole worker down.
        this.limiter.on('error', noop);
        (req as Readable).pipe(this.limiter);
        this.body = this.limiter;
      } else {
        this.body = req as Readable;
      }
    }
  }

  /** Start the first attempt. */
  run(): void {
    this.ctx.res.on('close', this.onResponseClose);
    if (this.body === null) {
      this.attempt(null);
      return;
    }
    // Node calls the request handler as soon as the head is parsed and only then parses the body bytes that
    // came with it; waiting for the microtask queue lets a framing error in those bytes (bad chunk size,
    // unknown coding) close the client first, so no upstream connection is opened for it.
    queueMicrotask(this.firstAttempt);
  }

  private readonly firstAttempt = (): void => {
    const req = this.ctx.req as IncomingMessage;
    // A request whose body was read to its end (into the limiter) is destroyed too, but not gone.
    if ((req.destroyed && !req.complete) || this.ctx.res.destroyed || (!this.ctx.h2 && !req.socket.writable)) {
      this.finished = true;
      this.limiter?.destroy();
      return;
    }
    this.attempt(null);
  };

  private readonly onResponseClose = (): void => {
    if (this.limiter !== null) this.ctx.bytesReceived = this.limiter.seen;
    if (!this.finished) {
      this.clientGone = true;
      this.abortUpstream?.(new Error('client closed the connection'));
    }
    this.onClosed(this.ctx);
  };

  private attempt(next: NodeState | null): void {
    const up = this.ctx.upstream;
    const node = next ?? up.pick(this.ctx, this.tried);
    if (node === null) {
      this.fail(this.attempts === 0 ? 'GH_ERR_UPSTREAM_NO_HEALTHY_NODE' : 'GH_ERR_UPSTREAM_UNAVAILABLE');
      return;
    }
    this.node = node;
    this.ctx.node = node;
    // passHost node: the Host header names whichever node this attempt goes to.
    // A Host a plugin set (proxy-rewrite's host) wins over the node's.
    if (this.hostFromNode && this.ctx.upstreamEdits?.has('host') !== true) this.headers[1] = up.nodeHost(node);
    this.attempts++;
    this.abortUpstream = null;
    this.headersAt = 0;
    // A retry must not report the latency of the attempt before it.
    this.ctx.upstreamLatency = -1;
    up.balancer.onStart(node);
    this.sentAt = performance.now();
    this.ctx.upstreamSentAt = this.sentAt;
    const t = this.ctx.timeouts;
    const attempt = this.attempts;
    const abort = up.pool(node).h1.dispatch(
      {
        path: this.path,
        method: this.ctx.method,
        headers: this.headers,
        body: this.buffered ?? this.body,
        headersTimeout: t.read,
        bodyTimeout: t.read,
      },
      this,
    );
    // Abortable while it waits for a connection too (unless it already ended and another attempt began).
    if (this.attempts === attempt && this.abortUpstream === null) this.abortUpstream = abort;
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) {
      abort(new Error('client closed the connection'));
      return;
    }
    this.abortUpstream = abort;
    if (this.body !== null && !this.bodyStarted) {
      this.bodyStarted = true;
      this.armSendTimeout();
    }
  }

  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string): boolean {
    const node = this.node!;
    const up = this.ctx.upstream;
    this.headersAt = performance.now();
    this.ctx.upstreamLatency = this.headersAt - this.sentAt;
    this.clearSendTimeout();
    if (up.failureStatuses.has(statusCode)) this.health.report(up.key, node, false);
    else if (up.failureStatuses.size > 0) this.health.report(up.key, node, true);

    if (RETRY_STATUSES.has(statusCode) && this.canRetry(true)) {
      (this.tried ??= new Set()).add(node);
      const other = up.pick(this.ctx, this.tried);
      if (other !== null) {
        // Another node can answer: drop this response unseen and try it.
        this.retrying = other;
        this.abortUpstream?.(new Error('retrying on another node'));
        return false;
      }
    }

    const res = this.ctx.res;
    let headers = downstreamResponseHeaders(rawHeaders);
    if (this.ctx.chain !== null || this.ctx.responseExtra !== null) {
      const head = this.ctx.finishHead({ status: statusCode, headers });
      if (head.status !== statusCode) statusText = '';
      statusCode = head.status;
      headers = head.headers;
      if (this.ctx.chain !== null && this.ctx.chain.responseTap.length > 0) this.tapBody = true;
      if (this.ctx.chain !== null && this.ctx.chain.responseBody.length > 0) {
        // A body filter changes the length: the framing is left to the server (chunked, or close for HTTP/1.0).
        this.filterBody = true;
        headers = withoutHeader(headers, 'content-length');
      }
    }
    this.ctx.status = statusCode;
    try {
      if (this.ctx.h2) (res as Http2ServerResponse).writeHead(statusCode, headersToObject(headers));
      else (res as ServerResponse).writeHead(statusCode, statusText || undefined, headers);
    } catch {
      // The upstream sent a header node will not relay: treat as a broken upstream.
      this.ctx.status = 0;
      this.abortUpstream?.(new Error('invalid upstream response header'));
      return false;
    }
    if (this.drainWaiting === null) {
      this.drainWaiting = resume;
    }
    return true;
  }

  onData(chunk: Buffer, last: boolean): boolean {
    if (last && !this.filterBody) {
      // The whole rest of the body: written with the end of the response, in one call.
      this.ctx.bytesSent += chunk.length;
      if (this.tapBody) runResponseTap(this.ctx, this.ctx.chain!, chunk, false);
      this.lastChunk = chunk;
      return true;
    }
    if (this.filterBody) {
      const out = this.filter(chunk, false);
      if (out === null) return false;
      if (out.length === 0) return true;
      chunk = out;
    }
    this.ctx.bytesSent += chunk.length;
    if (this.tapBody) runResponseTap(this.ctx, this.ctx.chain!, chunk, false);
    this.relayed = true;
    const res = this.ctx.res as ServerResponse;
    // write() says false for any piece above the socket's 16 KiB high-water mark, though a piece written while
    // the head is corked leaves in one go a moment later; pausing the node for it costs a pause, a 'drain' and
    // a resume per response. Backpressure starts when more than RELAY_WINDOW waits for the client instead.
    if (res.write(chunk) || (!this.ctx.h2 && res.writableLength <= RELAY_WINDOW)) return true;
    res.once('drain', this.drainWaiting!);
    return false;
  }

  onComplete(trailers: string[] | null): void {
    this.done(true);
    const res = this.ctx.res;
    if (this.filterBody) {
      const tail = this.filter(EMPTY, true);
      if (tail === null) return;
      if (tail.length > 0) {
        this.ctx.bytesSent += tail.length;
        if (this.tapBody) runResponseTap(this.ctx, this.ctx.chain!, tail, false);
        (res as ServerResponse).write(tail);
      }
    }
    if (this.tapBody) runResponseTap(this.ctx, this.ctx.chain!, EMPTY, true);
    if (trailers && trailers.length && !this.ctx.h2) {
      const t: Record<string, string> = {};
      for (let i = 0; i < trailers.length; i += 2) t[trailers[i]!] = trailers[i + 1]!;
      try {
        (res as ServerResponse).addTrailers(t);
      } catch {
        /* trailers are best-effort */
      }
    }
    if (this.lastChunk !== null) {
      const chunk = this.lastChunk;
      this.lastChunk = null;
      if (!this.relayed && !this.ctx.h2 && chunk.length <= SINGLE_WRITE_MAX) {
        // A small body that is the whole response leaves as one string with the head, in one plain write.
        // end(chunk) would queue it on the corked socket beside the head and an empty piece, for a vectored
        // write. Corked here, write() does not cork until the next tick itself; uncorking writes head + body.
        const r = res as ServerResponse;
        r.cork();
        r.write(chunk.toString('latin1'), 'latin1');
        r.uncork();
        r.end();
      } else res.end(chunk);
    } else res.end();
  }

  onError(err: Error): void {
    const node = this.node!;
    const up = this.ctx.upstream;
    this.clearSendTimeout();
    up.balancer.onFinish(node, -1);
    if (this.finished) return; // the gateway already answered (408) and aborted this attempt itself
    if (this.retrying !== null) {
      const next = this.retrying;
      this.retrying = null;
      this.attempt(next);
      return;
    }
    if (this.clientGone) {
      this.finished = true;
      return;
    }
    if (this.limiter?.exceeded) {
      this.finished = true;
      respondError(this.ctx, 'GH_ERR_BODY_TOO_LARGE', true);
      if (!this.ctx.h2) (this.ctx.req as IncomingMessage).socket?.destroySoon?.();
      return;
    }
    const e = err as NodeJS.ErrnoException;
    const isConnectFailure = e.code !== undefined && CONNECT_FAILURES.has(e.code);
    if (!this.ctx.res.headersSent) this.health.report(up.key, node, false);
    if (!this.ctx.res.headersSent && (isConnectFailure || e.code === UPSTREAM_ERR.socket) && this.canRetry(isConnectFailure ? false : true)) {
      (this.tried ??= new Set()).add(node);
      const other = up.pick(this.ctx, this.tried);
      if (other !== null) {
        this.attempt(other);
        return;
      }
    }
    this.finished = true;
    if (this.ctx.res.headersSent) {
      // The response started: cut the connection so the client sees a failure, never a short success.
      this.ctx.res.destroy(err);
      return;
    }
    this.fail(timeoutCode(e) ? 'GH_ERR_UPSTREAM_TIMEOUT' : 'GH_ERR_UPSTREAM_UNAVAILABLE');
  }

  /** Run the response body filters; on a plugin failure the response is cut off (its head is already sent). */
  private filter(chunk: Buffer, last: boolean): Buffer | null {
    try {
      return runResponseBody(this.ctx, this.ctx.chain!, chunk, last);
    } catch (err) {
      if (err instanceof PluginFailure) this.ctx.onPluginError?.(err);
      this.finished = true;
      this.abortUpstream?.(new Error('response body filter failed'));
      this.ctx.res.destroy();
      return null;
    }
  }

  /**
   * A retry is safe when attempts remain and the request can be sent again unchanged: no body has been
   * streamed yet; for answers from the node (not connection failures) only with an idempotent method.
   */
  private canRetry(nodeAnswered: boolean): boolean {
    if (this.attempts > this.ctx.upstream.retries) return false;
    if (this.body !== null && this.bodyStarted) return false;
    if (nodeAnswered && !IDEMPOTENT.has(this.ctx.method)) return false;
    return true;
  }

  private done(ok: boolean): void {
    this.finished = true;
    this.clearSendTimeout();
    this.ctx.upstream.balancer.onFinish(this.node!, ok ? this.ctx.upstreamLatency : -1);
  }

  private fail(code: ErrorCode): void {
    this.finished = true;
    respondError(this.ctx, code);
  }

  /** The send timeout: the request body may not stall longer than timeouts.send while it is being sent. */
  private armSendTimeout(): void {
    const body = this.body!;
    const ms = this.ctx.timeouts.send;
    this.lastBodyProgress = performance.now();
    body.on('data', this.onBodyProgress);
    body.once('end', this.clearSendTimeoutBound);
    this.sendTimer = setTimeout(this.checkSend, ms);
    this.sendTimer.unref();
  }

  private readonly onBodyProgress = (): void => {
    this.lastBodyProgress = performance.now();
  };

  private readonly checkSend = (): void => {
    const ms = this.ctx.timeouts.send;
    const idle = performance.now() - this.lastBodyProgress;
    if (idle < ms) {
      this.sendTimer = setTimeout(this.checkSend, ms - idle);
      this.sendTimer.unref();
      return;
    }
    this.sendTimer = null;
    // A paused body means the node stopped reading (its fault, 504); a flowing one means the client stalled.
    const nodeStalled = this.body!.isPaused() || this.body!.readableLength > 0;
    const err = Object.assign(new Error('request body send timed out'), { code: nodeStalled ? UPSTREAM_ERR.headersTimeout : 'GH_CLIENT_STALLED' });
    if (!nodeStalled && !this.ctx.res.headersSent) {
      this.finished = true;
      this.abortUpstream?.(err);
      respondError(this.ctx, 'GH_ERR_REQUEST_TIMEOUT', true);
      return;
    }
    this.abortUpstream?.(err);
  };

  private readonly clearSendTimeoutBound = (): void => this.clearSendTimeout();

  private clearSendTimeout(): void {
    if (this.sendTimer !== null) {
      clearTimeout(this.sendTimer);
      this.sendTimer = null;
    }
  }
}
