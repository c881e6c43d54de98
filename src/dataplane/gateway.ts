/**
 * @module dataplane/gateway
 * The data plane of one process: the HTTP and HTTPS/HTTP2 listeners, the request path from arrival to the
 * proxy exchange, WebSocket upgrades, atomic config swaps and graceful draining.
 */
import { createServer, ServerResponse, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { DeclarativeConfig } from '../model/declarative.js';
import type { Settings } from '../config/settings.js';
import { errorBody, ERRORS, type ErrorCode } from '../core/errors.js';
import { Metrics } from '../status/metrics.js';
import { downstreamResponseHeaders, forwardInfo, TrustedProxies, upstreamRequestHeaders, type ForwardInfo } from './headers.js';
import { Exchange, respond, respondError, sendError, type ClientRequest, type ClientResponse, type HealthReporter } from './proxy.js';
import { Context } from './context.js';
import { H1Server } from './h1/server.js';
import { PluginFailure, runLog, runRequestPhases, type AuthOutcome, type Chain, type ChainVerdict } from './plugins/chain.js';
import type { PluginResponse } from './plugins/types.js';
import type { PluginRegistry } from './plugins/registry.js';
import { normalizePath, splitTarget } from './router/normalize.js';
import { compileSnapshot, type RouteRuntime, type Snapshot } from './snapshot.js';
import { NodeRegistry } from './upstream/upstream.js';
import { PoolRegistry } from './upstream/pools.js';
import { PluginStateStore } from './plugins/state.js';
import { ControlError, type PluginServices } from './plugins/types.js';
import { LocalLimits } from './limits/local.js';
import type { SharedLimits } from './limits/types.js';
import { RedisClients } from './limits/redis-clients.js';
import type { DiscoveredNode } from '../discovery/types.js';
import { mergeNodes } from '../discovery/spec.js';

/** A control action's answer in one process. */
export interface ControlResult {
  status: number;
  body: unknown;
}

export interface GatewayOptions {
  settings: Settings;
  logger: Logger;
  /** Passive health outcomes go here (in-process checker, or IPC to the primary). */
  health: HealthReporter;
  /** The plugins routes may use. */
  plugins: PluginRegistry;
  metrics?: Metrics;
  /** Limits shared by this gateway's workers (the primary's, through IPC); default: in this process. */
  limits?: SharedLimits;
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

/** How long a connection closed for a client error stays open for the client to read the answer. */
const CLIENT_ERROR_LINGER_MS = 1000;

/**
 * How often node's HTTP/1 servers look for connections past headersTimeout or requestTimeout. Node checks every
 * 30 s by default, which would make a 500 ms headers timeout fire up to 30 s late.
 */
function timeoutCheckInterval(headersTimeout: number, requestTimeout: number): number {
  const shortest = requestTimeout > 0 ? Math.min(headersTimeout, requestTimeout) : headersTimeout;
  return Math.max(50, Math.min(30_000, Math.floor(shortest / 4)));
}

/**
 * End a client connection (after `data`, when given) and destroy it once the client closes or after a short
 * linger. Closing at once could reset the connection under unread bytes and lose the answer; the destroy also
 * ends any exchange still streaming this connection's request upstream.
 */
function lingerClose(socket: Duplex, data: string | null): void {
  if (data === null) socket.end();
  else socket.end(data);
  const linger = setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}

function rawError(code: ErrorCode): string {
  const body = errorBody(code);
  const { status } = ERRORS[code];
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString()}`;
}

/** Rejections after which the connection is closed. */
const CLOSE_AFTER = new Set<ErrorCode>(['GH_ERR_BODY_TOO_LARGE', 'GH_ERR_TRANSFER_CODING_UNSUPPORTED', 'GH_ERR_BAD_REQUEST']);

/** RFC 9110 4.2.3 / RFC 3986 3.2.2: a host (reg-name, IPv4, or [IPv6]) and an optional port, nothing else. */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::\d{0,5})?$/;

/**
 * HOT PATH: checks on the request head that node's parser leaves to the application. Returns the error to
 * answer with, or null. RFC 9112 3.2: exactly one valid Host on HTTP/1.1; 6.1: a transfer coding we cannot
 * relay must not be silently stripped; HTTP/2 has no header size limit of its own in node.
 */
function checkHead(req: ClientRequest, h2: boolean, maxHeaderSize: number): ErrorCode | null {
  const raw = req.rawHeaders;
  if (h2) {
    let size = 0;
    for (let i = 0; i < raw.length; i++) size += raw[i]!.length;
    // RFC 9113 6.5.2 counts 32 bytes of overhead per field.
    if (size + (raw.length / 2) * 32 > maxHeaderSize) return 'GH_ERR_HEADERS_TOO_LARGE';
    const authority = req.headers[':authority'];
    if (authority !== undefined && !VALID_HOST.test(authority as string)) return 'GH_ERR_BAD_REQUEST';
    return null;
  }
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++;
      if (hosts > 1 || !VALID_HOST.test(raw[i + 1]!)) return 'GH_ERR_BAD_REQUEST';
    }
  }
  if (hosts === 0 && req.httpVersionMinor >= 1) return 'GH_ERR_BAD_REQUEST';
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te.toLowerCase() !== 'chunked') {
    // "gzip, chunked" is framed correctly but carries a coding we would strip; anything not ending in chunked is
    // an obfuscated or broken framing.
    return /,\s*chunked$/i.test(te) ? 'GH_ERR_TRANSFER_CODING_UNSUPPORTED' : 'GH_ERR_BAD_REQUEST';
  }
  return null;
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
  private readonly plugins: PluginRegistry;
  private readonly strictPaths: boolean;
  private readonly trusted: TrustedProxies;
  private httpServer: Server | null = null;
  private httpsServer: Http2SecureServer | null = null;
  /** The reader of plain HTTP/1.1 requests on the HTTP port (proxy.fastHttp1), or null. */
  private h1: H1Server | null = null;
  private inFlight = 0;
  private draining = false;
  private readonly sockets = new Set<Duplex>();
  private readonly answeredClients = new WeakSet<Duplex>();
  /** Plugin state kept across reloads, and what plugins share in this process. */
  readonly pluginState = new PluginStateStore();
  readonly services: PluginServices;
  private readonly redis: RedisClients;
  private readonly ownLimits: LocalLimits | null;

  constructor(opts: GatewayOptions) {
    this.settings = opts.settings;
    this.log = opts.logger;
    this.health = opts.health;
    this.plugins = opts.plugins;
    this.strictPaths = opts.settings.proxy.ambiguousPaths === 'reject';
    this.metrics = opts.metrics ?? new Metrics();
    this.trusted = new TrustedProxies(opts.settings.proxy.trustedProxies);
    this.accessLog = opts.settings.accessLog.enabled ? opts.logger.child({ type: 'access' }) : null;
    this.redis = new RedisClients(opts.logger);
    this.ownLimits = opts.limits === undefined ? new LocalLimits().startSweeping() : null;
    const limits = opts.limits ?? this.ownLimits!;
    this.services = { limits, redis: (o) => this.redis.get(o), metrics: this.metrics };
    this.metrics.pluginCounters = () => this.pluginState.counters();
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

  /**
   * Discovered nodes by discovery key, as the process that watches the sources last sent them; kept across
   * configs, so a config that uses a key gets its nodes at once.
   */
  readonly discovered = new Map<string, DiscoveredNode[]>();

  /** Compile and swap in a new config. Throws (and keeps the old config) if it cannot be compiled. */
  applyConfig(cfg: DeclarativeConfig, revision: number): void {
    this.pluginState.beginLoad();
    const next = compileSnapshot(
      cfg,
      revision,
      {
        settings: this.settings,
        nodes: this.nodes,
        pools: this.pools,
        metrics: this.metrics,
        plugins: this.plugins,
        logger: this.log,
        state: this.pluginState,
        services: this.services,
        discovered: this.discovered,
      },
      this.snapshot,
    );
    this.snapshot = next;
    this.pools.sweep();
    this.pluginState.sweep();
    this.metrics.configReloads++;
  }

  /**
   * Take a discovery key's new node list (null: the key is no longer watched). Every upstream using the key
   * gets its static nodes plus these at once; requests in flight keep their node and its connection, and the
   * pools of nodes no upstream has any more are closed once their requests finish. Returns how many upstreams
   * changed.
   */
  setDiscoveredNodes(key: string, nodes: DiscoveredNode[] | null): number {
    if (nodes === null) {
      // The upstreams of the config in service keep what they have until a config without them arrives.
      this.discovered.delete(key);
      return 0;
    }
    this.discovered.set(key, nodes);
    const snap = this.snapshot;
    if (!snap) return 0;
    let changed = 0;
    for (const rt of snap.upstreams.values()) {
      if (rt.discoveryKey !== key) continue;
      rt.setNodes(mergeNodes(rt.config.nodes, nodes));
      changed++;
    }
    if (changed > 0) {
      this.pools.beginGeneration();
      for (const rt of snap.upstreams.values()) rt.retainPools();
      this.pools.sweep();
    }
    return changed;
  }

  /**
   * Run a plugin's control action (proxy-cache purge...) in this process. Answers with an HTTP status and
   * what to send: 404 for an unknown plugin or action, 400 when the action refuses its arguments.
   */
  control(plugin: string, action: string, args: Record<string, unknown>): ControlResult {
    const handler = this.plugins.get(plugin)?.control?.[action];
    if (typeof handler !== 'function') return { status: 404, body: { error: { code: 'GH_ERR_ROUTE_NOT_FOUND', message: `plugin "${plugin}" has no action "${action}"` } } };
    try {
      return { status: 200, body: handler(args, this.pluginState.controlEnv(plugin)) ?? null };
    } catch (e) {
      if (e instanceof ControlError) return { status: 400, body: { error: { code: 'GH_ERR_BAD_REQUEST', message: e.message } } };
      this.log.error({ plugin, action, err: (e as Error)?.name }, 'plugin control action failed');
      return { status: 500, body: { error: { code: 'GH_ERR_INTERNAL', message: 'internal gateway error' } } };
    }
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
        // Host is checked in onRequest, so a missing one gets the same JSON error as a bad one.
        requireHostHeader: false,
        connectionsCheckingInterval: timeoutCheckInterval(p.headersTimeout, p.requestTimeout),
      },
      this.onRequest,
    );
    http.on('clientError', this.onClientError);
    http.on('upgrade', this.onUpgrade);
    http.on('connect', this.onConnect);
    if (p.fastHttp1) {
      // Plain requests are read by the gateway's own reader; it gives node's server every other connection, by
      // calling the connection listener node's server registered for itself.
      const [nodeConnection, ...others] = http.listeners('connection') as ((socket: Socket) => void)[];
      if (nodeConnection === undefined || others.length > 0) throw new Error("unexpected listeners on node's HTTP server");
      http.removeListener('connection', nodeConnection);
      const shortest = p.requestTimeout > 0 ? Math.min(p.headersTimeout, p.requestTimeout) : p.headersTimeout;
      this.h1 = new H1Server(
        {
          maxHeaderSize: p.maxHeaderSize,
          headersTimeout: shortest,
          keepAliveTimeout: p.keepAliveTimeout,
          // The same rule as node's timeout checks (keep-alive 0 means none, as a request timeout of 0 does), at most 1 s.
          checkInterval: Math.min(1000, timeoutCheckInterval(shortest, p.keepAliveTimeout)),
        },
        {
          // The reader's request and response carry the members of node's IncomingMessage and ServerResponse that the
          // gateway and its plugins use (see h1/server.ts); everything past this point takes them as node's.
          request: (req, res) => this.onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse),
          handOff: (socket) => nodeConnection.call(http, socket),
          timeout: (socket) => this.onClientError(Object.assign(new Error('request head timed out'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket),
        },
      );
      const h1 = this.h1;
      http.on('connection', this.onConnection);
      http.on('connection', (socket: Socket) => h1.accept(socket));
    } else http.on('connection', this.onConnection);
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
      // HTTP/1.1 over TLS (the ALPN fallback) runs on node's HTTP/1 machinery, which reads its limits from
      // the server object, not from createSecureServer's options: without these it would take 60 s header and
      // 300 s request timeouts, node's default header size, no keep-alive timeout and no Host check.
      Object.assign(https, {
        maxHeaderSize: p.maxHeaderSize,
        headersTimeout: p.headersTimeout,
        requestTimeout: p.requestTimeout,
        keepAliveTimeout: p.keepAliveTimeout,
        requireHostHeader: false,
        connectionsCheckingInterval: timeoutCheckInterval(p.headersTimeout, p.requestTimeout),
      });
      https.on('connect', this.onConnect);
      https.on('request', this.onRequest);
      https.on('upgrade', this.onUpgrade);
      https.on('clientError', this.onClientError);
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

  /**
   * Malformed requests that node's parser refuses, and clients too slow to send their request: answer with a
   * JSON error and close, sending nothing upstream. Responses already owed on this connection (pipelined
   * requests parsed before the broken one) go out first, so no client reads our error as the answer to a request
   * the upstream did handle; a request whose own body broke has its exchange aborted when the socket closes.
   */
  private readonly onClientError = (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // Node may report one broken connection more than once (a parse error, then again when the client ends).
    if (this.answeredClients.has(socket)) return;
    this.answeredClients.add(socket);
    const code: ErrorCode =
      err.code === 'HPE_HEADER_OVERFLOW' ? 'GH_ERR_HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'GH_ERR_REQUEST_TIMEOUT' : 'GH_ERR_BAD_REQUEST';
    this.metrics.route(Metrics.NO_ROUTE).record(ERRORS[code].status, 0, -1);
    const answer = (): void => {
      if (socket.destroyed) return;
      // The response node is writing on this socket now (it holds the socket until that response has finished).
      const current = (socket as { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
      if (current !== null) {
        if (current.req.complete) {
          // Owed to an earlier, well-formed request: let it (and any queued after it) finish, then answer.
          current.once('close', () => setImmediate(answer));
          return;
        }
        if (current.headersSent) {
          // The broken request was already answered (say a 404 or 413 sent before its body came), or its answer
          // has begun: a second response, or one cut into the first, would be read as something else. Close.
          if (current.writableEnded) lingerClose(socket, null);
          else socket.destroy();
          return;
        }
      }
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      lingerClose(socket, rawError(code));
    };
    answer();
  };

  /** A gateway never tunnels: CONNECT is answered with 405 and the connection closed. */
  private readonly onConnect = (_req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', () => socket.destroy());
    lingerClose(socket, rawError('GH_ERR_METHOD_NOT_ALLOWED'));
    this.metrics.route(Metrics.NO_ROUTE).record(405, 0, -1);
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
    const path = target.path === '' ? null : normalizePath(target.path, this.settings.proxy.slashes, this.strictPaths);
    if (path === null) return this.reject(req, res, 'GH_ERR_PATH_INVALID', start, null);
    const headError = checkHead(req, h2, this.settings.proxy.maxHeaderSize);
    if (headError !== null) return this.reject(req, res, headError, start, null);
    const headers = req.headers;
    const method = req.method ?? 'GET';
    const authority = absoluteAuthority(url);
    const match = snap.router.match({
      method,
      host: hostOnly(authority ?? (h2 ? (headers[':authority'] as string | undefined) ?? headers.host : headers.host)),
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
    // The host that was routed on is the one the upstream is told about (never a different Host header).
    if (authority !== undefined) fwd.host = authority;
    const ctx = new Context(req, res, method, h2, fwd, fwd.clientIp !== peer || this.trusted.has(peer), route, start, route.id, match.params, path, target.query, headers, route.route.timeout !== undefined);
    if (route.chain === null) {
      this.forward(ctx, route, hasBody);
      return;
    }
    this.runPlugins(ctx, route, route.chain, hasBody);
  };

  /** Hand the request to the proxy exchange. */
  private forward(ctx: Context, route: RouteRuntime, hasBody: boolean): void {
    const up = ctx.upstream;
    const first = up.nodes[0];
    const hostHeader = up.passHost === 'pass' ? ctx.fwd.host || (first ? up.nodeHost(first) : '') : up.passHost === 'rewrite' ? up.upstreamHost! : '';
    const exchange = new Exchange(ctx, this.health, ctx.path, hostHeader, hasBody || ctx.bufferedBody !== null, up.passHost === 'node', this.finish);
    exchange.run();
  }

  /**
   * The plugin path: request phases, then the proxy, or the answer a phase gave. A plugin that throws ends the
   * request with 500 and it is never proxied, so an auth plugin that did not finish cannot be bypassed.
   */
  private runPlugins(ctx: Context, route: RouteRuntime, chain: Chain, hasBody: boolean): void {
    ctx.chain = chain;
    ctx.onPluginError = this.onPluginError;
    const snap = this.snapshot!;
    ctx.upstreams = snap.upstreams;
    // Offered whenever there is a body: the consumer's chain, known only after auth, may need it too.
    const readBody = hasBody ? () => this.readBody(ctx, route) : null;
    let verdict: ChainVerdict | Promise<ChainVerdict>;
    try {
      verdict = runRequestPhases(ctx, chain, readBody);
    } catch (err) {
      ctx.res.once('close', () => this.finish(ctx));
      this.onChainError(ctx, route, err);
      return;
    }
    if (!(verdict instanceof Promise)) {
      // All hooks were synchronous: no promise, no listener beyond what the proxy adds itself.
      if (!('proceed' in verdict)) ctx.res.once('close', () => this.finish(ctx));
      this.onVerdict(ctx, route, hasBody, verdict);
      return;
    }
    // While a hook is pending the client may leave; the proxy's own close listener takes over once it starts.
    let proxied = false;
    const onClose = () => {
      if (!proxied) this.finish(ctx);
    };
    ctx.res.once('close', onClose);
    verdict.then(
      (v) => {
        if ('proceed' in v && !ctx.res.destroyed && !ctx.res.headersSent) {
          proxied = true;
          ctx.res.off('close', onClose);
        }
        this.onVerdict(ctx, route, hasBody, v);
      },
      (err: unknown) => this.onChainError(ctx, route, err),
    );
  }

  private onVerdict(ctx: Context, route: RouteRuntime, hasBody: boolean, verdict: ChainVerdict): void {
    if (ctx.res.destroyed || ctx.res.headersSent) return;
    if ('respond' in verdict) return this.sendPluginResponse(ctx, verdict.respond);
    if ('refuse' in verdict) return refuse(ctx, verdict, false);
    ctx.chain = verdict.proceed;
    this.forward(ctx, route, hasBody);
  }

  private onChainError(ctx: Context, route: RouteRuntime, err: unknown): void {
    if (err instanceof BodyStalled) {
      if (!ctx.res.destroyed) respondError(ctx, 'GH_ERR_REQUEST_TIMEOUT', true);
      return;
    }
    // A client that went away while its body was being read is not a failure of the gateway.
    if (ctx.req.destroyed || ctx.res.destroyed) return;
    if (err instanceof PluginFailure) this.onPluginError(err);
    else this.log.error({ err: (err as Error)?.name, route: route.id }, 'plugin chain failed');
    respondError(ctx, 'GH_ERR_PLUGIN_FAILED');
  }

  private sendPluginResponse(ctx: Context, r: PluginResponse): void {
    const headers: string[] = [];
    let body: Buffer;
    if (r.body === undefined) body = Buffer.alloc(0);
    else if (Buffer.isBuffer(r.body)) body = r.body;
    else if (typeof r.body === 'string') body = Buffer.from(r.body);
    else {
      body = Buffer.from(JSON.stringify(r.body));
      headers.push('content-type', 'application/json');
    }
    for (const [k, v] of Object.entries(r.headers ?? {})) headers.push(k, v);
    respond(ctx, r.status, headers, body, false);
  }

  /**
   * Read the whole request body for plugins that need it (request-validation), within the route's limit.
   * Resolves false when the body is over the limit (the caller answers 413).
   */
  private readBody(ctx: Context, route: RouteRuntime): Promise<boolean> {
    const limit = route.maxBodySize;
    const stallMs = route.timeouts.send;
    const stream = ctx.req as unknown as NodeJS.ReadableStream & { destroyed: boolean };
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      // The same rule as a streamed body: it may not stall longer than the send timeout.
      const timer = setTimeout(() => {
        cleanup();
        reject(new BodyStalled());
      }, stallMs);
      const onData = (c: Buffer) => {
        timer.refresh();
        size += c.length;
        if (limit > 0 && size > limit) {
          cleanup();
          resolve(false);
          return;
        }
        chunks.push(c);
      };
      const onEnd = () => {
        cleanup();
        ctx.bufferedBody = Buffer.concat(chunks, size);
        resolve(true);
      };
      const onError = (e: Error) => {
        cleanup();
        reject(e);
      };
      const onClose = () => {
        cleanup();
        reject(new Error('client closed the connection'));
      };
      const cleanup = () => {
        clearTimeout(timer);
        stream.off('close', onClose);
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('error', onError);
      };
      stream.on('data', onData);
      stream.on('end', onEnd);
      stream.on('error', onError);
      stream.on('close', onClose);
    });
  }

  private readonly onPluginError = (f: PluginFailure): void => {
    this.metrics.pluginError(f.plugin, f.phase);
    // The plugin's own error message may carry request data or secrets: log only where and what kind.
    this.log.error({ plugin: f.plugin, phase: f.phase, err: (f.original as Error)?.name ?? typeof f.original }, 'plugin failed');
  };

  private reject(req: ClientRequest, res: ClientResponse, code: ErrorCode, start: number, route: RouteRuntime | null): void {
    res.once('close', this.onRejectedClose);
    // A request whose body is not read (or whose framing is in doubt) must not leave bytes on a connection
    // that would be parsed as the next request.
    const h = req.headers;
    const unreadBody = h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
    sendError(res, code, CLOSE_AFTER.has(code) || unreadBody);
    const status = ERRORS[code].status;
    (route?.stats ?? this.metrics.route(Metrics.NO_ROUTE)).record(status, performance.now() - start, -1);
    if (this.accessLog) {
      // Only the path: the query (?apikey=...) and an absolute-form target's userinfo may hold credentials.
      const raw = splitTarget(req.url ?? '').path || '(unparsable)';
      const path = raw.length > 512 ? `${raw.slice(0, 512)}...` : raw;
      this.accessLog.info({ method: req.method, path, status, route: route?.id ?? null, error: code, client: req.socket.remoteAddress, ms: round(performance.now() - start) });
    }
  }

  private readonly onRejectedClose = (): void => {
    this.inFlight--;
  };

  private readonly finish = (ctx: Context): void => {
    const route = ctx.target as RouteRuntime;
    this.inFlight--;
    ctx.endedAt = performance.now();
    const ms = ctx.endedAt - ctx.start;
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
        ...(ctx.consumer ? { consumer: ctx.consumer.username } : {}),
        ...(ctx.errorCode ? { error: ctx.errorCode } : {}),
        ...(ctx.res.writableFinished ? {} : { aborted: true }),
      });
    }
    if (ctx.chain !== null && ctx.chain.log.length > 0) {
      // The log phase never delays the response: it runs after it is done, for every request that finished in
      // this turn of the event loop at once (one scheduled callback, not one per request).
      if (this.logQueue.length === 0) setImmediate(this.runLogQueue);
      this.logQueue.push(ctx);
    }
  };

  /** Requests whose log phase is due. */
  private logQueue: Context[] = [];

  private readonly runLogQueue = (): void => {
    const due = this.logQueue;
    this.logQueue = [];
    for (let i = 0; i < due.length; i++) {
      const ctx = due[i]!;
      runLog(ctx, ctx.chain!, this.onPluginError);
    }
  };

  /**
   * WebSocket (and other HTTP/1.1 Upgrade) requests: match, ask the node to upgrade, then splice the two sockets
   * together. A node that refuses the upgrade (401, 403, 404...) has its answer relayed as it is, not turned
   * into a 502.
   */
  private readonly onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    // Node takes its own listeners off a socket it hands over for an upgrade: without this one, a client that
    // resets the connection while the node is being asked would throw an uncaught 'error' and end the process.
    socket.on('error', () => socket.destroy());
    let route: RouteRuntime | null = null;
    const start = performance.now();
    const fail = (code: ErrorCode) => {
      route?.stats.record(ERRORS[code].status, performance.now() - start, -1);
      if (socket.writable) lingerClose(socket, rawError(code));
      else socket.destroy();
    };
    const snap = this.snapshot;
    if (snap === null || this.draining) return fail('GH_ERR_SHUTTING_DOWN');
    const url = req.url ?? '';
    if (url.length > this.settings.proxy.maxUrlLength) return fail('GH_ERR_URI_TOO_LONG');
    const target = splitTarget(url);
    const path = target.path === '' ? null : normalizePath(target.path, this.settings.proxy.slashes, this.strictPaths);
    if (path === null) return fail('GH_ERR_PATH_INVALID');
    const match = snap.router.match({
      method: req.method ?? 'GET',
      host: hostOnly(absoluteAuthority(url) ?? req.headers.host),
      path,
      query: target.query,
      headers: req.headers,
    });
    if (match === null) return fail('GH_ERR_ROUTE_NOT_FOUND');
    const matched = match.value;
    route = matched;
    if (!matched.websocket || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return fail('GH_ERR_WEBSOCKET_DISABLED');
    const peer = socket.remoteAddress ?? '';
    const fwd = forwardInfo(req.headers, peer, socket.localPort ?? 0, (socket as { encrypted?: boolean }).encrypted === true, this.trusted, this.settings.proxy.realIpHeader);
    const trustedPeer = fwd.clientIp !== peer || this.trusted.has(peer);
    const chain = matched.chain;
    if (chain === null) {
      this.upgradeToNode(req, socket, head, matched, fwd, trustedPeer, path, target.query, start, null, fail);
      return;
    }
    // Upgrades go through the same request phases as every other request (auth, ip rules...). The plugins
    // answer through a response object on this socket; when they let the request through, the socket is
    // taken back for the upgrade.
    const res = new ServerResponse(req);
    res.assignSocket(socket);
    res.shouldKeepAlive = false;
    const ctx = new Context(req, res, req.method ?? 'GET', false, fwd, trustedPeer, matched, start, matched.id, match.params, path, target.query, req.headers, matched.route.timeout !== undefined);
    ctx.upstreams = snap.upstreams;
    ctx.chain = chain;
    ctx.onPluginError = this.onPluginError;
    res.once('finish', () => {
      matched.stats.record(ctx.status, performance.now() - start, -1);
      lingerClose(socket, null);
    });
    // Not the hot path: a promise either way keeps this simple (a synchronous throw becomes a rejection).
    new Promise<ChainVerdict>((resolve) => resolve(runRequestPhases(ctx, chain, null))).then(
      (verdict) => {
        if (socket.destroyed) return;
        if ('respond' in verdict) return this.sendPluginResponse(ctx, verdict.respond);
        if ('refuse' in verdict) return refuse(ctx, verdict, true);
        res.detachSocket(socket);
        this.upgradeToNode(req, socket, head, matched, fwd, trustedPeer, ctx.path, ctx.query, start, ctx, fail);
      },
      (err: unknown) => {
        if (socket.destroyed) return;
        if (err instanceof PluginFailure) this.onPluginError(err);
        respondError(ctx, 'GH_ERR_PLUGIN_FAILED', true);
      },
    );
  };

  /** The upgrade itself: ask a node to switch protocols, then splice the two sockets together. */
  private upgradeToNode(
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    matched: RouteRuntime,
    fwd: ForwardInfo,
    trustedPeer: boolean,
    path: string,
    query: string,
    start: number,
    ctx: Context | null,
    fail: (code: ErrorCode) => void,
  ): void {
    const up = ctx?.upstream ?? matched.upstream;
    const node = up.pick({ clientIp: fwd.clientIp, path, query, headers: req.headers }, ctx?.excluded ?? null);
    if (node === null) return fail('GH_ERR_UPSTREAM_NO_HEALTHY_NODE');
    const hostHeader = up.passHost === 'pass' ? fwd.host || up.nodeHost(node) : up.passHost === 'rewrite' ? up.upstreamHost! : up.nodeHost(node);
    const plain = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, hostHeader, fwd, trustedPeer);
    const headers = ctx === null ? plain : ctx.editUpstreamHeaders(plain);
    socket.setTimeout(0);
    up.balancer.onStart(node);

    let abortUpstream: ((err?: Error) => void) | null = null;
    let settled = false;
    let relayed = false;
    let resumeUpstream: (() => void) | null = null;
    const settle = (latency: number): void => {
      settled = true;
      socket.off('close', onClientGone);
      up.balancer.onFinish(node, latency);
    };
    const onClientGone = (): void => {
      if (settled) return;
      settle(-1);
      abortUpstream?.(new Error('client closed the connection'));
    };
    socket.once('close', onClientGone);
    const handler: Dispatcher.DispatchHandler = {
      onConnect: (abort) => {
        if (settled) abort(new Error('client closed the connection'));
        else abortUpstream = abort;
      },
      onUpgrade: (_status, rawHeaders, upSocket) => {
        if (settled) {
          upSocket.destroy();
          return;
        }
        const latency = performance.now() - start;
        settle(latency);
        if (up.failureStatuses.size > 0) this.health.report(up.key, node, true);
        if (!socket.writable) {
          upSocket.destroy();
          return;
        }
        let head101 = 'HTTP/1.1 101 Switching Protocols\r\n';
        const raw = rawHeaders ?? [];
        for (let i = 0; i < raw.length; i += 2) head101 += `${raw[i]!.toString()}: ${raw[i + 1]!.toString()}\r\n`;
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
        matched.stats.record(101, latency, latency);
      },
      onHeaders: (status, rawHeaders, resume, statusText) => {
        // The node answered without upgrading: relay that answer, then close (the client asked for another
        // protocol on this connection, so it cannot be reused for HTTP).
        if (settled) return false;
        relayed = true;
        resumeUpstream = resume;
        if (up.failureStatuses.has(status)) this.health.report(up.key, node, false);
        else if (up.failureStatuses.size > 0) this.health.report(up.key, node, true);
        const list = downstreamResponseHeaders(rawHeaders.map((b) => b.toString('latin1')));
        let out = `HTTP/1.1 ${status} ${statusText || 'Unknown'}\r\n`;
        for (let i = 0; i < list.length; i += 2) out += `${list[i]}: ${list[i + 1]}\r\n`;
        socket.write(`${out}connection: close\r\n\r\n`);
        matched.stats.record(status, performance.now() - start, performance.now() - start);
        return true;
      },
      onData: (chunk) => {
        if (socket.write(chunk)) return true;
        socket.once('drain', () => resumeUpstream?.());
        return false;
      },
      onComplete: () => {
        if (settled) return;
        settle(performance.now() - start);
        lingerClose(socket, null);
      },
      onError: (err) => {
        if (settled) return;
        settle(-1);
        const code = (err as NodeJS.ErrnoException).code;
        this.health.report(up.key, node, false);
        this.log.debug({ err: err.message, route: matched.id }, 'websocket upgrade to upstream failed');
        // Part of a refusal was already relayed: cut the connection so the client sees it fail.
        if (relayed) socket.destroy();
        else fail(code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' ? 'GH_ERR_UPSTREAM_TIMEOUT' : 'GH_ERR_UPSTREAM_UNAVAILABLE');
      },
    };
    up.pool(node).undici.dispatch(
      {
        path: query ? `${path}?${query}` : path,
        method: 'GET',
        headers,
        upgrade: 'websocket',
        headersTimeout: matched.timeouts.read,
        bodyTimeout: matched.timeouts.read,
      },
      handler,
    );
  }

  /**
   * Stop accepting connections and wait for in-flight requests to finish (at most `timeoutMs`), then close
   * what remains. Keep-alive clients are told to close after their current response.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.h1 !== null) this.h1.draining = true;
    const closing: Promise<void>[] = [];
    for (const s of [this.httpServer, this.httpsServer]) {
      if (s) closing.push(new Promise((resolve) => s.close(() => resolve())));
    }
    this.httpServer?.closeIdleConnections();
    this.h1?.closeIdle();
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      this.httpServer?.closeIdleConnections();
      this.h1?.closeIdle();
    }
    for (const s of this.sockets) s.destroy();
    this.httpServer?.closeAllConnections();
    this.h1?.close();
    await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, 1000))]);
    await this.pools.closeAll();
    // Log queues send what they hold (bounded), after the last request's log phase has run.
    if (this.logQueue.length > 0) this.runLogQueue();
    await this.pluginState.closeAll();
    this.ownLimits?.close();
    await this.redis.closeAll();
  }
}

/** Answer a request the plugin chain refused: 401 (with the auth plugins' challenges when nothing was presented) or 413. */
function refuse(ctx: Context, verdict: { refuse: AuthOutcome; challenges: string[] }, close: boolean): void {
  const code: ErrorCode = verdict.refuse === 'invalid' ? 'GH_ERR_AUTH_INVALID' : verdict.refuse === 'missing' ? 'GH_ERR_AUTH_REQUIRED' : 'GH_ERR_BODY_TOO_LARGE';
  const extra: string[] = [];
  if (code === 'GH_ERR_AUTH_REQUIRED') for (const c of verdict.challenges) extra.push('www-authenticate', c);
  respondError(ctx, code, close || code === 'GH_ERR_BODY_TOO_LARGE', extra);
}

/** A request body stalled while a plugin waited for it. */
class BodyStalled extends Error {}

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
