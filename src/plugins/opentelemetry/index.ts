/**
 * @module plugins/opentelemetry
 * Distributed tracing without the OpenTelemetry SDK (its per-request cost is too high for a gateway): W3C Trace
 * Context propagation in the rewrite phase (the plugin runs first of all but request-id), a SERVER span for the
 * request and a CLIENT span for the upstream call built in the log phase, and OTLP/HTTP JSON export in the
 * background. Sampling is parent-based (a valid incoming traceparent's sampled flag is honoured) and otherwise
 * decided from the trace id by a ratio, so every gateway with the same ratio makes the same choice for a trace.
 * Unsampled requests still get a traceparent upstream (flag 00), as W3C asks, and cost no span work.
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginControlEnv } from '../../dataplane/plugins/types.js';
import { StringEnum } from '../../model/common.js';
import { HeaderValues } from '../util.js';
import { PRIORITIES } from '../priorities.js';
import { OtlpExporter, type ExporterOptions, type ExporterStats } from './exporter.js';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, ratioThreshold, sampledByRatio } from './trace-context.js';
import { clientSpan, RequestTrace, resourceJson, serverSpan } from './spans.js';

export { RequestTrace } from './spans.js';

const Config = Type.Object(
  {
    endpoint: Type.String({
      minLength: 8,
      maxLength: 2048,
      pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$',
      default: 'http://127.0.0.1:4318',
      description:
        'Base URL of the OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, Tempo...); spans are POSTed to <endpoint>/v1/traces. Only its origin is ever logged.',
    }),
    sampleRatio: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 1,
      description: 'Share of new traces recorded, 0 to 1, decided from the trace id (the same on every gateway). Requests with a valid incoming traceparent follow its sampled flag instead, unless parentBased is false.',
    }),
    parentBased: Type.Boolean({
      default: true,
      description: 'Honour the sampled flag of a valid incoming traceparent. False: the ratio decides for every trace, continued or new (clients then cannot force recording).',
    }),
    headers: HeaderValues('Extra headers sent to the collector with every export (an API key or Authorization); their values are never logged.'),
    resource: Type.Record(Type.String({ pattern: '^\\S{1,255}$' }), Type.Union([Type.String({ maxLength: 4096 }), Type.Number(), Type.Boolean()]), {
      default: {},
      maxProperties: 64,
      additionalProperties: false,
      description: 'Resource attributes of every span (deployment.environment.name, service.namespace...); service.name is "gatehouse" unless given here.',
    }),
    compression: StringEnum(['none', 'gzip'], { default: 'none', description: 'Compress export bodies: none, or gzip (Content-Encoding: gzip).' }),
    timeout: Type.Integer({ minimum: 1, maximum: 600000, default: 10000, description: 'Milliseconds one export attempt may take in all (connect, answer).' }),
    batchMaxSize: Type.Integer({ minimum: 1, maximum: 10000, default: 512, description: 'Spans per export at most; a full batch is sent at once.' }),
    flushInterval: Type.Integer({
      minimum: 1,
      maximum: 600000,
      default: 5000,
      description: 'Milliseconds a span waits for its batch to fill before the batch is sent anyway.',
    }),
    maxQueue: Type.Integer({
      minimum: 1,
      maximum: 1000000,
      default: 2048,
      description: 'Spans this worker process holds at most while they wait to be sent; past it new spans are dropped and counted.',
    }),
    retries: Type.Integer({
      minimum: 0,
      maximum: 20,
      default: 3,
      description: 'Further attempts for a batch that failed with 429, 502, 503, 504, a connection error or a timeout; then it is given up.',
    }),
    retryDelay: Type.Integer({
      minimum: 1,
      maximum: 600000,
      default: 1000,
      description: 'Milliseconds before the first retry, doubled for each next one (at most 30 s), with up to 20% jitter; a longer Retry-After from the collector is honoured up to 30 s.',
    }),
  },
  { additionalProperties: false, description: 'opentelemetry on a route, service or globally.' },
);
type Config = Static<typeof Config>;

/** Headers the exporter sets or frames itself: not configurable. */
const EXPORTER_HEADERS = new Set(['host', 'content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);

/** Where the rewrite phase leaves the request's trace for the log phase and for other plugins (loggers). */
export const TRACE_VAR = 'opentelemetry';

/** `<endpoint>/v1/traces`, keeping a path prefix the endpoint has (a collector behind a reverse proxy). */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

function exporterOptions(c: Config): ExporterOptions {
  return {
    url: tracesUrl(c.endpoint),
    headers: c.headers,
    compression: c.compression,
    timeout: c.timeout,
    batchMaxSize: c.batchMaxSize,
    flushInterval: c.flushInterval,
    maxQueue: c.maxQueue,
    retries: c.retries,
    retryDelay: c.retryDelay,
  };
}

/**
 * The state key of an exporter: configs naming the same collector with the same export options share one (and
 * its connection and queue), across reloads too. Hashed, so header values (API keys) never show in state keys.
 */
function exporterKey(o: ExporterOptions): string {
  const headers = Object.entries(o.headers)
    .map(([k, v]) => [k.toLowerCase(), v])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0));
  const digest = createHash('sha256')
    .update(JSON.stringify([o.url, headers, o.compression, o.timeout, o.batchMaxSize, o.flushInterval, o.maxQueue, o.retries, o.retryDelay]))
    .digest('hex')
    .slice(0, 32);
  return `exporter ${digest}`;
}

/** What the `stats` control action reports for one exporter of a worker. */
export interface OpenTelemetryStats extends ExporterStats {
  /** The collector's origin (never its path or headers). */
  collector: string;
  queued: number;
}

function exporters(env: PluginControlEnv): OtlpExporter[] {
  return env
    .stateKeys()
    .filter((k) => k.startsWith('exporter '))
    .map((k) => env.state<OtlpExporter>(k))
    .filter((e): e is OtlpExporter => e instanceof OtlpExporter);
}

export default definePlugin<Config>({
  name: 'opentelemetry',
  version: '1.0.0',
  priority: PRIORITIES['opentelemetry'],
  description: 'W3C Trace Context propagation, a server span per request and a client span per upstream call, sampled by ratio or parent, exported over OTLP/HTTP JSON in the background.',
  schema: Config,
  // The trace is decided in the rewrite phase, before any consumer is known.
  scopes: ['global', 'service', 'route'],
  check(config) {
    const problems: Array<[string, string]> = [];
    let url: URL | null = null;
    try {
      url = new URL(config.endpoint);
    } catch {
      problems.push(['endpoint', 'is not a valid URL']);
    }
    if (url !== null) {
      // The messages never repeat the endpoint: it may hold a token.
      if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(['endpoint', 'must be an http or https URL']);
      if (url.username !== '' || url.password !== '') problems.push(['endpoint', 'must not hold credentials: send them in headers (Authorization)']);
      if (url.search !== '' || url.hash !== '') problems.push(['endpoint', 'must not have a query or fragment: it is the base URL that /v1/traces is added to']);
    }
    for (const name of Object.keys(config.headers)) {
      if (EXPORTER_HEADERS.has(name.toLowerCase())) problems.push([`headers.${name}`, 'is set by the exporter and cannot be configured']);
    }
    if (config.maxQueue < config.batchMaxSize) problems.push(['maxQueue', 'must be at least batchMaxSize']);
    return problems;
  },
  create(config, env) {
    const options = exporterOptions(config);
    const exporter = env.state(exporterKey(options), () => new OtlpExporter(options, env.logger));
    const resource = resourceJson(config.resource);
    const threshold = ratioThreshold(config.sampleRatio);
    const parentBased = config.parentBased;
    return {
      // HOT PATH: one header parse, two ids, one header set. No span work for unsampled requests.
      rewrite(ctx) {
        const incoming = ctx.headers.traceparent;
        // Node joins repeated headers; a repeated traceparent is then too long and invalid, as it should be.
        const parent = typeof incoming === 'string' ? parseTraceparent(incoming) : null;
        let traceId: string;
        let sampled: boolean;
        let traceState = '';
        if (parent !== null) {
          traceId = parent.traceId;
          sampled = parentBased ? parent.sampled : sampledByRatio(traceId, threshold);
          const ts = ctx.headers.tracestate;
          if (ts !== undefined) traceState = typeof ts === 'string' ? ts : ts.join(',');
        } else {
          traceId = newTraceId();
          sampled = sampledByRatio(traceId, threshold);
          // W3C: a tracestate without a valid traceparent is invalid and must not be passed on.
          if (ctx.headers.tracestate !== undefined) ctx.removeUpstreamHeader('tracestate');
        }
        const clientSpanId = newSpanId();
        ctx.setUpstreamHeader('traceparent', formatTraceparent(traceId, clientSpanId, sampled));
        ctx.vars[TRACE_VAR] = new RequestTrace(traceId, newSpanId(), clientSpanId, parent?.parentId ?? '', sampled, traceState, ctx.method, ctx.path);
      },
      // After the response (gateway.ts runs the log phase in setImmediate): serialise two spans and queue them.
      log(ctx) {
        const t = ctx.vars[TRACE_VAR];
        if (!(t instanceof RequestTrace) || !t.sampled) return;
        exporter.enqueue(resource, serverSpan(ctx, t));
        const client = clientSpan(ctx, t);
        if (client !== null) exporter.enqueue(resource, client);
      },
    };
  },
  control: {
    /** Export counters of every exporter in this worker: `POST /plugins/opentelemetry/stats`. */
    stats(_args, env): OpenTelemetryStats[] {
      return exporters(env).map((e) => ({ collector: e.origin, queued: e.queued, ...e.stats }));
    },
  },
});
