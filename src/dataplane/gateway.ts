/**
 * @module dataplane/gateway
 * The data plane of one process: the HTTP and HTTPS/HTTP2 listeners, the request path from arrival to the
 * proxy exchange, WebSocket upgrades, atomic config swaps and graceful draining.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { DeclarativeConfig } from '../model/declarative.js';
import type { Settings } from '../config/settings.js';
import { errorBody, ERRORS, type ErrorCode } from '../core/errors.js';
import { Metrics } from '../status/metrics.js';
import { forwardInfo, TrustedProxies, upstreamRequestHeaders } from './headers.js';
import { Exchange, sendError, type ClientRequest, type ClientResponse, type HealthReporter, type RequestContext } from './proxy.js';
import { normalizePath, splitTarget } from './router/normalize.js';
import { compileSnapshot, type RouteRuntime, type Snapshot } from './snapshot.js';
import { NodeRegistry } from './upstream/upstream.js';
import { PoolRegistry } from './upstream/pools.js';

export interface GatewayOptions {
  settings: Settings;
  logger: Logger;
  /** Passive health outcomes go here (in-process checker, or IPC to the primary). */
  health: HealthReporter;
  metrics?: Metrics;
}

/**
 * The authority of an absolute-form target ("http://a.example/x" -> "a.example"), or undefined for the usual
 * origin-form. RFC 9112 3.2.2: a server must then ignore the Host header and use this authority.
 */
function absoluteAuthority(url: string): string | undefined {
  if (url.charCodeAt(0) === 47 /* / */) return undefined;
  const scheme = url.indexOf('://');
  if (scheme === -1) return undefined;
  const start = scheme + 3;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 || c === 63 || c === 35) break; // / ? #
    end++;
  }
  const authority = url.slice(start, end);
  const at = authority.lastIndexOf('@');
  return at === -1 ? authority : authority.slice(at + 1);
}

/** Lower-case host name without the port ("[::1]:80" -> "[::1]"). */
function hostOnly(h: string | undefined): string {
  if (!h) return '';
  let end = h.length;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const close = h.indexOf(']');
    end = close === -1 ? h.length : close + 1;
  } else {
    const colon = h.indexOf(':');
    if (colon !== -1) end = colon;
  }
  // A fully qualified name ("example.com.") is the same host as without the dot.
  if (h.charCodeAt(end - 1) === 46 /* . */) end--;
  const name = end === h.length ? h : h.slice(0, end);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return name.toLowerCase();
  }
  return name;
}

function rawError(code: ErrorCode): string {
  const body = errorBody(code);
  const { status } = ERRORS[code];
  return `HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : status === 414 ? 'URI Too Long' : 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString()}`;
}

export class Gateway {
  readonly settings: Settings;
  readonly metrics: Metrics;
  readonly nodes = new NodeRegistry();
  readonly pools = new PoolRegistry();
  private snapshot: Snapshot | null = null;
  private readonly log: Logger;
  private readonly accessLog: Logger | null;
  private readonly health: HealthReporter;
  private readonly trusted: TrustedProxies;
  private httpServer: Server | null = null;
  private httpsServer: Http2SecureServer | null = null;
  private inFlight = 0;
  private draining = false;
  private readonly sockets = new Set<Duplex>();

  constructor(opts: GatewayOptions) {
    this.settings = opts.settings;
    this.log = opts.logger;
    this.health = opts.health;
    this.metrics = opts.metrics ?? new Metrics();
    this.trusted = new TrustedProxies(opts.settings.proxy.trustedProxies);
    this.accessLog = opts.settings.accessLog.enabled ? opts.logger.child({ type: 'access' }) : null;
  }

  get revision(): number {
    return this.snapshot?.revision ?? 0;
  }

  get ready(): boolean {
    return this.snapshot !== null && !this.draining;
  }

  get current(): Snapshot | null {
    return this.snapshot;
  }

  /** Compile and swap in a new config. Throws (and keeps the old config) if it cannot be compiled. */
  applyConfig(cfg: DeclarativeConfig, revision: number): void {
    const next = compileSnapshot(cfg, revision, { settings: this.settings, nodes: this.nodes, pools: this.pools, metrics: this.metrics }, this.snapshot);
    this.snapshot = next;
    this.pools.sweep();
    this.metrics.configReloads++;
  }

  /** Start the listeners; resolves with the bound ports. */
  async listen(): Promise<{ http: number; https: number | null }> {
    const p = this.settings.proxy;
    const http = createServer(
      {
        maxHeaderSize: p.maxHeaderSize,
        headersTimeout: p.headersTimeout,
        requestTimeout: p.requestTimeout,
        keepAliveTimeout: p.keepAliveTimeout,
        noDelay: true,
        requireHostHeader: true,
      },
      this.onRequest,
    );
    http.on('clientError', this.onClientError);
    http.on('upgrade', this.onUpgrade);
    http.on('connection', this.onConnection);
    this.httpServer = http;
    await listenOn(http, p.http, p.host);
    let httpsPort: number | null = null;
    if (p.https >= 0) {
      const https = createSecureServer({
        allowHTTP1: true,
        maxSessionMemory: 64,
        ALPNProtocols: p.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
        SNICallback: (servername, cb) => {
          const ctx = this.snapshot?.certificates.lookup(servername);
          if (ctx) cb(null, ctx);
          else cb(new Error('no certificate for this server name'));
        },
        maxHeaderSize: p.maxHeaderSize,
      } as Parameters<typeof createSecureServer>[0]);
      https.on('request', this.onRequest);
      https.on('upgrade', this.onUpgrade);
      https.on('secureConnection', this.onConnection);
      https.on('tlsClientError', () => {});
      this.httpsServer = https;
      await listenOn(https, p.https, p.host);
      httpsPort = (https.address() as { port: number }).port;
    }
    return { http: (http.address() as { port: number }).port, https: httpsPort };
  }

  private readonly onConnection = (socket: Duplex): void => {
    this.metrics.connections++;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  };

  /** Malformed requests that node's parser refuses: answer with a JSON error, send nothing upstream. */
  private readonly onClientError = (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const code: ErrorCode =
      err.code === 'HPE_HEADER_OVERFLOW' ? 'GH_ERR_HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'GH_ERR_REQUEST_TIMEOUT' : 'GH_ERR_BAD_REQUEST';
    socket.end(rawError(code));
    this.metrics.route(Metrics.NO_ROUTE).record(ERRORS[code].status, 0, -1);
  };

  /** HOT PATH: one request from arrival to hand-off to the proxy exchange. */
  private readonly onRequest = (req: ClientRequest, res: ClientResponse): void => {
    const start = performance.now();
    const h2 = req.httpVersionMajor === 2;
    this.inFlight++;
    if (this.draining && !h2) (res as ServerResponse).shouldKeepAlive = false;
    const snap = this.snapshot;
    if (snap === null) return this.reject(req, res, 'GH_ERR_SHUTTING_DOWN', start, null);
    const url = req.url ?? '';
    if (url.length > this.settings.proxy.maxUrlLength) return this.reject(req, res, 'GH_ERR_URI_TOO_LONG', start, null);
    const target = splitTarget(url);
    const path = target.path === '' ? null : normalizePath(target.path, this.settings.proxy.slashes);
    if (path === null) return this.reject(req, res, 'GH_ERR_PATH_INVALID', start, null);
    const headers = req.headers;
    const method = req.method ?? 'GET';
    const match = snap.router.match({
      method,
      host: hostOnly(absoluteAuthority(url) ?? (h2 ? (headers[':authority'] as string | undefined) ?? headers.host : headers.host)),
      path,
      query: target.query,
      headers,
    });
    if (match === null) return this.reject(req, res, 'GH_ERR_ROUTE_NOT_FOUND', start, null);
    const route = match.value;

    let hasBody: boolean;
    if (h2) hasBody = !(req as Http2ServerRequest).stream.endAfterHeaders;
    else {
      const cl = headers['content-length'];
      hasBody = headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
    }
    if (hasBody && route.maxBodySize > 0) {
      const cl = headers['content-length'];
      if (cl !== undefined && Number(cl) > route.maxBodySize) return this.reject(req, res, 'GH_ERR_BODY_TOO_LARGE', start, route);
    }

    const socket = req.socket;
    const peer = socket.remoteAddress ?? '';
    const fwd = forwardInfo(headers, peer, socket.localPort ?? 0, h2 || (socket as { encrypted?: boolean }).encrypted === true, this.trusted, this.settings.proxy.realIpHeader);
    const up = route.upstream;
    const ctx: RequestContext = {
      req,
      res,
      method,
      h2,
      fwd,
      trustedPeer: fwd.clientIp !== peer || this.trusted.has(peer),
      target: route,
      start,
      status: 0,
      node: null,
      upstreamLatency: -1,
      errorCode: null,
      clientIp: fwd.clientIp,
      path,
      query: target.query,
      headers,
    };
    const hostHeader = up.passHost === 'pass' ? fwd.host || up.nodeHost(up.nodes[0]!) : up.passHost === 'rewrite' ? up.upstreamHost! : '';
    const exchange = new Exchange(ctx, this.health, path, hostHeader, hasBody, up.passHost === 'node', this.finish);
    exchange.run();
  };

  private reject(req: ClientRequest, res: ClientResponse, code: ErrorCode, start: number, route: RouteRuntime | null): void {
    res.once('close', this.onRejectedClose);
    sendError(res, code, code === 'GH_ERR_BODY_TOO_LARGE');
    const status = ERRORS[code].status;
    (route?.stats ?? this.metrics.route(Metrics.NO_ROUTE)).record(status, performance.now() - start, -1);
    if (this.accessLog) {
      const url = req.url ?? '';
      this.accessLog.info({ method: req.method, path: url.length > 512 ? `${url.slice(0, 512)}...` : url, status, route: route?.id ?? null, error: code, client: req.socket.remoteAddress, ms: round(performance.now() - start) });
    }
  }

  private readonly onRejectedClose = (): void => {
    this.inFlight--;
  };

  private readonly finish = (ctx: RequestContext): void => {
    const route = ctx.target as RouteRuntime;
    this.inFlight--;
    const ms = performance.now() - ctx.start;
    // A client that left before any response is logged as 499, as nginx does.
    const status = ctx.res.writableFinished ? ctx.status : ctx.status === 0 ? 499 : ctx.status;
    route.stats.record(status, ms, ctx.upstreamLatency);
    if (this.accessLog) {
      this.accessLog.info({
        method: ctx.method,
        path: ctx.path,
        status,
        route: route.id,
        upstream: ctx.node?.key ?? null,
        client: ctx.clientIp,
        ms: round(ms),
        upstreamMs: ctx.upstreamLatency >= 0 ? round(ctx.upstreamLatency) : null,
        ...(ctx.errorCode ? { error: ctx.errorCode } : {}),
        ...(ctx.res.writableFinished ? {} : { aborted: true }),
      });
    }
  };

  /** WebSocket (and other HTTP/1.1 Upgrade) requests: match, then splice the two sockets together. */
  private readonly onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const fail = (code: ErrorCode) => {
      if (socket.writable) socket.end(rawError(code));
      else socket.destroy();
    };
    const snap = this.snapshot;
    if (snap === null || this.draining) return fail('GH_ERR_SHUTTING_DOWN');
    const target = splitTarget(req.url ?? '');
    const path = target.path === '' ? null : normalizePath(target.path, this.settings.proxy.slashes);
    if (path === null) return fail('GH_ERR_PATH_INVALID');
    const match = snap.router.match({ method: req.method ?? 'GET', host: hostOnly(req.headers.host), path, query: target.query, headers: req.headers });
    if (match === null) return fail('GH_ERR_ROUTE_NOT_FOUND');
    const route = match.value;
    if (!route.websocket || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return fail('GH_ERR_WEBSOCKET_DISABLED');
    const up = route.upstream;
    const peer = socket.remoteAddress ?? '';
    const fwd = forwardInfo(req.headers, peer, socket.localPort ?? 0, (socket as { encrypted?: boolean }).encrypted === true, this.trusted, this.settings.proxy.realIpHeader);
    const node = up.pick({ clientIp: fwd.clientIp, path, query: target.query, headers: req.headers }, null);
    if (node === null) return fail('GH_ERR_UPSTREAM_NO_HEALTHY_NODE');
    const hostHeader = up.passHost === 'pass' ? fwd.host : up.passHost === 'rewrite' ? up.upstreamHost! : up.nodeHost(node);
    const headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, hostHeader, fwd, fwd.clientIp !== peer || this.trusted.has(peer));
    const start = performance.now();
    socket.setTimeout(0);
    up.balancer.onStart(node);
    up.pool(node)
      .upgrade({
        path: target.query ? `${path}?${target.query}` : path,
        method: 'GET',
        headers,
        protocol: 'websocket',
        headersTimeout: route.timeouts.read,
      } as Parameters<ReturnType<typeof up.pool>['upgrade']>[0])
      .then(({ headers: upHeaders, socket: upSocket }) => {
        up.balancer.onFinish(node, performance.now() - start);
        if (!socket.writable) {
          upSocket.destroy();
          return;
        }
        let head101 = 'HTTP/1.1 101 Switching Protocols\r\n';
        for (const [k, v] of Object.entries(upHeaders)) {
          if (v === undefined) continue;
          for (const one of Array.isArray(v) ? v : [v]) head101 += `${k}: ${one}\r\n`;
        }
        socket.write(`${head101}\r\n`);
        if (head.length) upSocket.write(head);
        upSocket.pipe(socket);
        socket.pipe(upSocket);
        const close = () => {
          socket.destroy();
          upSocket.destroy();
        };
        upSocket.on('error', close);
        socket.on('error', close);
        upSocket.on('close', close);
        socket.on('close', close);
        route.stats.record(101, performance.now() - start, performance.now() - start);
      })
      .catch((err: NodeJS.ErrnoException) => {
        up.balancer.onFinish(node, -1);
        this.log.debug({ err: err.message, route: route.id }, 'websocket upgrade to upstream failed');
        fail(err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_CONNECT_TIMEOUT' ? 'GH_ERR_UPSTREAM_TIMEOUT' : 'GH_ERR_UPSTREAM_UNAVAILABLE');
      });
  };

  /**
   * Stop accepting connections and wait for in-flight requests to finish (at most `timeoutMs`), then close
   * what remains. Keep-alive clients are told to close after their current response.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const closing: Promise<void>[] = [];
    for (const s of [this.httpServer, this.httpsServer]) {
      if (s) closing.push(new Promise((resolve) => s.close(() => resolve())));
    }
    this.httpServer?.closeIdleConnections();
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      this.httpServer?.closeIdleConnections();
    }
    for (const s of this.sockets) s.destroy();
    this.httpServer?.closeAllConnections();
    await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, 1000))]);
    await this.pools.closeAll();
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function listenOn(server: Server | Http2SecureServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export { hostOnly };
