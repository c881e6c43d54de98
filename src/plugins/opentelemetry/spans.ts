/**
 * @module plugins/opentelemetry/spans
 * The two spans of a sampled request, serialised as OTLP/JSON Span objects: a SERVER span for the request as the
 * gateway handled it and a CLIENT span for the call to the upstream, with attributes named by the OpenTelemetry
 * HTTP semantic conventions. Built in the log phase, after the response; times are converted from
 * performance.now() to Unix nanoseconds (as decimal strings, the JSON form of OTLP's fixed64).
 */
import { isIP } from 'node:net';
import type { PluginContext } from '../../dataplane/plugins/types.js';
import type { RouteRuntime } from '../../dataplane/snapshot.js';
import type { Route } from '../../model/route.js';
import type { Router } from '../../dataplane/router/types.js';
import { compileRouter } from '../../dataplane/router/router.js';

/** What the rewrite phase learnt of a request, kept for the log phase (and for other plugins: ctx.vars). */
export class RequestTrace {
  constructor(
    readonly traceId: string,
    /** The gateway's SERVER span. */
    readonly spanId: string,
    /** The CLIENT span: the parent-id the upstream was sent. */
    readonly clientSpanId: string,
    /** The caller's span ('' when the gateway started the trace). */
    readonly parentSpanId: string,
    readonly sampled: boolean,
    /** The incoming tracestate, passed on unchanged ('' when none or when the trace was restarted). */
    readonly traceState: string,
    /** Method and canonical path as the client sent them, before any plugin rewrote them. */
    readonly method: string,
    readonly path: string,
  ) {}
}

/** OTLP SpanKind and StatusCode values. */
const KIND_SERVER = 2;
const KIND_CLIENT = 3;
const STATUS_ERROR = 2;

/** Methods the semantic conventions know; any other is reported as "_OTHER" with the original kept aside. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);

/** Longest User-Agent recorded: the header is the client's to fill and spans should stay small. */
const MAX_USER_AGENT = 512;
/** Longest tracestate carried on a span (the spec asks propagators to keep at least 512 characters). */
const MAX_TRACE_STATE = 512;

// performance.now() is relative to timeOrigin (Unix ms with a fraction). Adding them as doubles would lose the
// microseconds at today's epoch (~1.7e12 ms), so the whole milliseconds and the fraction are kept apart.
const ORIGIN_MS = Math.floor(performance.timeOrigin);
const ORIGIN_FRACTION = performance.timeOrigin - ORIGIN_MS;

/** A performance.now() value as Unix nanoseconds, a decimal string. */
export function unixNano(perfMs: number): string {
  const t = ORIGIN_FRACTION + perfMs;
  let whole = Math.floor(t);
  let ns = Math.round((t - whole) * 1e6);
  if (ns >= 1e6) {
    whole += 1;
    ns -= 1e6;
  }
  return `${ORIGIN_MS + whole}${String(ns).padStart(6, '0')}`;
}

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };
interface KeyValue {
  key: string;
  value: AnyValue;
}

function str(out: KeyValue[], key: string, value: string): void {
  out.push({ key, value: { stringValue: value } });
}

/** int64 in OTLP/JSON is a decimal string. */
function int(out: KeyValue[], key: string, value: number): void {
  out.push({ key, value: { intValue: String(Math.trunc(value)) } });
}

/** An OTLP/JSON attribute value for a resource attribute from config. */
export function anyValue(v: string | number | boolean): AnyValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}

/** The Resource JSON of a config: its attributes, service.name "gatehouse" unless given, and the SDK's identity. */
export function resourceJson(attributes: Record<string, string | number | boolean>): string {
  const all: Record<string, string | number | boolean> = {
    'service.name': 'gatehouse',
    'telemetry.sdk.name': 'gatehouse',
    'telemetry.sdk.language': 'nodejs',
    'telemetry.sdk.version': '1.0.0',
    ...attributes,
  };
  return JSON.stringify({ attributes: Object.entries(all).map(([key, v]) => ({ key, value: anyValue(v) })) });
}

// http.route: the route's path pattern that matched. A route with one path has it; for a route with several, its
// own paths are compiled once (per route object, so per config load) into a router that picks the same pattern the
// gateway's router did: the patterns of one route share host, method and conditions, so only the path decides.
const routers = new WeakMap<Route, Router<null> | null>();

export function routePattern(route: Route | undefined, path: string): string | undefined {
  if (route === undefined || !Array.isArray(route.paths) || route.paths.length === 0) return undefined;
  if (route.paths.length === 1) return route.paths[0];
  let router = routers.get(route);
  if (router === undefined) {
    try {
      router = compileRouter<null>([{ route: { id: route.id, paths: route.paths, enabled: true, priority: 0 } as Route, value: null }]);
    } catch {
      router = null;
    }
    routers.set(route, router);
  }
  return router?.match({ method: 'GET', host: '', path, query: '', headers: {} })?.pattern;
}

/** "host" or "host:port" or "[v6]:port" -> [host, port or -1]. */
function splitHost(h: string): [string, number] {
  if (h.charCodeAt(0) === 91 /* [ */) {
    const close = h.indexOf(']');
    if (close === -1) return [h, -1];
    const port = h.charCodeAt(close + 1) === 58 ? Number(h.slice(close + 2)) : -1;
    return [h.slice(1, close), Number.isInteger(port) && port > 0 ? port : -1];
  }
  const colon = h.indexOf(':');
  if (colon === -1 || h.indexOf(':', colon + 1) !== -1) return [h, -1];
  const port = Number(h.slice(colon + 1));
  return [h.slice(0, colon), Number.isInteger(port) && port > 0 ? port : -1];
}

function methodAttributes(out: KeyValue[], method: string): string {
  if (KNOWN_METHODS.has(method)) {
    str(out, 'http.request.method', method);
    return method;
  }
  str(out, 'http.request.method', '_OTHER');
  str(out, 'http.request.method_original', method);
  return 'HTTP';
}

interface SpanJson {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  status: { code: number; message?: string };
}

function status(error: boolean, message: string): SpanJson['status'] {
  return error ? (message ? { code: STATUS_ERROR, message } : { code: STATUS_ERROR }) : { code: 0 };
}

/** The response went out whole (false: the client left, or it was cut off midway). */
function completed(ctx: PluginContext): boolean {
  return ctx.res.writableFinished;
}

/**
 * The SERVER span: from the request's arrival to the end of its response. Status ERROR for 5xx answers and
 * responses that did not complete; 4xx answers leave it unset, as the semantic conventions say for servers (the
 * gateway's own error code is still recorded as gatehouse.error.code).
 */
export function serverSpan(ctx: PluginContext, t: RequestTrace): string {
  const attrs: KeyValue[] = [];
  const name = methodAttributes(attrs, t.method);
  str(attrs, 'url.path', t.path);
  str(attrs, 'url.scheme', ctx.fwd.proto);
  const route = routePattern((ctx.target as Partial<RouteRuntime>).route, t.path);
  if (route !== undefined) str(attrs, 'http.route', route);
  const [host, hostPort] = splitHost(ctx.fwd.host);
  if (host !== '') str(attrs, 'server.address', host);
  const port = hostPort > 0 ? hostPort : Number(ctx.fwd.port);
  if (port > 0) int(attrs, 'server.port', port);
  str(attrs, 'client.address', ctx.clientIp);
  if (ctx.fwd.peer !== '') str(attrs, 'network.peer.address', ctx.fwd.peer);
  const peerPort = ctx.req.socket?.remotePort;
  if (peerPort !== undefined) int(attrs, 'network.peer.port', peerPort);
  str(attrs, 'network.protocol.version', ctx.h2 ? '2' : ctx.req.httpVersion);
  const ua = ctx.headers['user-agent'];
  if (typeof ua === 'string' && ua !== '') str(attrs, 'user_agent.original', ua.length > MAX_USER_AGENT ? ua.slice(0, MAX_USER_AGENT) : ua);
  const done = completed(ctx);
  if (ctx.status > 0) int(attrs, 'http.response.status_code', ctx.status);
  if (ctx.bytesReceived > 0) int(attrs, 'http.request.body.size', ctx.bytesReceived);
  int(attrs, 'http.response.body.size', ctx.bytesSent);
  str(attrs, 'gatehouse.route.id', ctx.routeId);
  if (ctx.serviceId !== null) str(attrs, 'gatehouse.service.id', ctx.serviceId);
  if (ctx.consumer !== null) str(attrs, 'gatehouse.consumer', ctx.consumer.username);
  if (ctx.errorCode !== null) str(attrs, 'gatehouse.error.code', ctx.errorCode);

  let error = false;
  let message = '';
  if (ctx.status >= 500) {
    error = true;
    message = ctx.errorCode ?? '';
    str(attrs, 'error.type', ctx.errorCode ?? String(ctx.status));
  } else if (!done) {
    error = true;
    message = ctx.status === 0 ? 'the client closed the connection before the response' : 'the response was not completed';
    str(attrs, 'error.type', ctx.status === 0 ? 'client_closed' : 'response_incomplete');
  }
  const span: SpanJson = {
    traceId: t.traceId,
    spanId: t.spanId,
    name: route !== undefined ? `${name} ${route}` : name,
    kind: KIND_SERVER,
    startTimeUnixNano: unixNano(ctx.start),
    endTimeUnixNano: unixNano(ctx.endedAt > 0 ? ctx.endedAt : performance.now()),
    attributes: attrs,
    status: status(error, message),
  };
  if (t.parentSpanId !== '') span.parentSpanId = t.parentSpanId;
  if (t.traceState !== '' && t.traceState.length <= MAX_TRACE_STATE) span.traceState = t.traceState;
  return JSON.stringify(span);
}

/** Gateway error codes that mean the upstream call itself failed (no usable response came). */
const UPSTREAM_FAILURES = new Set(['GH_ERR_UPSTREAM_UNAVAILABLE', 'GH_ERR_UPSTREAM_TIMEOUT', 'GH_ERR_REQUEST_TIMEOUT', 'GH_ERR_BODY_TOO_LARGE']);

/**
 * The CLIENT span, for a request that was sent upstream: from when the (last) attempt was sent to when its
 * response headers came, or to the end of the request when none came. Status ERROR when the call failed or the
 * upstream answered 4xx/5xx, as the semantic conventions say for clients. Null when nothing was sent upstream.
 */
export function clientSpan(ctx: PluginContext, t: RequestTrace): string | null {
  const node = ctx.node;
  if (ctx.upstreamSentAt <= 0 || node === null) return null;
  const end = ctx.endedAt > 0 ? ctx.endedAt : performance.now();
  const failed = ctx.errorCode !== null && UPSTREAM_FAILURES.has(ctx.errorCode);
  const answered = !failed && ctx.upstreamLatency >= 0;
  // The headers' time, kept within the request (a latency left from an earlier attempt must not overshoot).
  const headersAt = answered ? Math.min(end, Math.max(ctx.upstreamSentAt, ctx.upstreamSentAt + ctx.upstreamLatency)) : end;

  const attrs: KeyValue[] = [];
  const name = methodAttributes(attrs, ctx.method);
  const up = ctx.upstream;
  str(attrs, 'server.address', node.host);
  int(attrs, 'server.port', node.port);
  if (isIP(node.host) !== 0) {
    str(attrs, 'network.peer.address', node.host);
    int(attrs, 'network.peer.port', node.port);
  }
  // Without the query: it may carry credentials, and the semantic conventions ask for them to be redacted.
  str(attrs, 'url.full', `${up.scheme}://${up.nodeHost(node)}${ctx.path}`);
  str(attrs, 'gatehouse.upstream', up.key);

  let error = false;
  let message = '';
  if (failed) {
    error = true;
    message = ctx.errorCode!;
    str(attrs, 'error.type', ctx.errorCode!);
  } else if (answered && ctx.status > 0) {
    int(attrs, 'http.response.status_code', ctx.status);
    if (ctx.status >= 400) {
      error = true;
      str(attrs, 'error.type', String(ctx.status));
    }
  } else if (!answered) {
    // No answer and no gateway error: the client left while the upstream was still working.
    error = true;
    message = 'no response from the upstream';
    str(attrs, 'error.type', 'client_closed');
  }
  const span: SpanJson = {
    traceId: t.traceId,
    spanId: t.clientSpanId,
    parentSpanId: t.spanId,
    name,
    kind: KIND_CLIENT,
    startTimeUnixNano: unixNano(ctx.upstreamSentAt),
    endTimeUnixNano: unixNano(headersAt),
    attributes: attrs,
    status: status(error, message),
  };
  return JSON.stringify(span);
}
