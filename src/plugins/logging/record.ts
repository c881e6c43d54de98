/**
 * @module plugins/logging/record
 * The access record the logger plugins (http-logger, file-logger) write: the config fields that choose what goes
 * in it, and the builder compiled from them once per config load. Secrets never reach a record: credential-looking
 * query arguments are redacted, Authorization / Proxy-Authorization / Cookie / Set-Cookie values are always
 * "[redacted]" even when asked for by name, and every free-form value is cut to a bounded length so a queue of
 * records has a bounded size.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { PluginContext, ResponseHead } from '../../dataplane/plugins/types.js';
import { StringEnum } from '../../model/common.js';
import { HeaderName } from '../util.js';

/** Every field a record can hold, in the order they are written. */
export const RECORD_FIELDS = [
  'time',
  'route',
  'service',
  'consumer',
  'method',
  'host',
  'path',
  'status',
  'latencyMs',
  'upstreamLatencyMs',
  'upstream',
  'clientIp',
  'bytesSent',
  'bytesReceived',
  'userAgent',
  'requestId',
  'error',
] as const;
export type RecordField = (typeof RECORD_FIELDS)[number];

/** The fields written when a config does not choose: all but `host` and `error`. */
export const DEFAULT_FIELDS: RecordField[] = RECORD_FIELDS.filter((f) => f !== 'host' && f !== 'error');

/** Header values that are credentials: written as "[redacted]" even when a config names the header. */
export const ALWAYS_REDACTED_HEADERS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** What a redacted value is written as. */
export const REDACTED = '[redacted]';

/** Query argument names (lower case) that are credentials. */
const SECRET_ARGS = new Set(['key', 'sig', 'pwd', 'pass', 'auth', 'authorization', 'jwt', 'code_verifier']);
/** Parts of query argument names (lower case) that mark them as credentials (access_token, x-amz-signature...). */
const SECRET_ARG_PARTS = ['token', 'secret', 'passw', 'signature', 'apikey', 'api_key', 'api-key', 'credential', 'session'];

/** Longest free-form value kept (user agent, host, header values, path, query); longer ones end with "...". */
export const MAX_VALUE_LENGTH = 2048;

/** The record options both logger plugins share, as schema properties to spread into their config objects. */
export const RecordOptions = {
  fields: Type.Array(
    StringEnum(RECORD_FIELDS, {
      description:
        'time: when the request arrived (ISO 8601, UTC); route, service, consumer: ids (null when none); method; host: the Host header; path: canonical, without the query; status (499: the client left first); latencyMs: request to end of response; upstreamLatencyMs: request sent upstream to response headers (null when none); upstream: the node "host:port"; clientIp; bytesSent, bytesReceived: body bytes; userAgent; requestId: the request-id plugin\'s id, else the X-Request-Id header; error: the gateway\'s error code when it answered itself.',
    }),
    {
      uniqueItems: true,
      maxItems: RECORD_FIELDS.length,
      default: DEFAULT_FIELDS,
      description: 'The fields of each record (default: every field but host and error).',
    },
  ),
  includeQuery: Type.Boolean({
    default: false,
    description:
      'Add the query string as `query`, with the values of credential-looking arguments (apikey, key, token, access_token, password, secret, signature...) and of redactQueryArgs replaced by [redacted].',
  }),
  redactQueryArgs: Type.Array(Type.String({ minLength: 1, maxLength: 256, description: 'A query argument name (case-insensitive).' }), {
    default: [],
    maxItems: 64,
    description: 'More query arguments whose values are redacted when includeQuery is on (a key-auth `query` name of your own, for example).',
  }),
  requestHeaders: Type.Array(HeaderName, {
    default: [],
    maxItems: 64,
    description: 'Request headers to add as `requestHeaders` (by lower-case name); Authorization, Proxy-Authorization and Cookie are always written as [redacted].',
  }),
  responseHeaders: Type.Array(HeaderName, {
    default: [],
    maxItems: 64,
    description: 'Response headers (as sent to the client) to add as `responseHeaders`; Set-Cookie is always written as [redacted].',
  }),
};

const RecordOptionsSchema = Type.Object(RecordOptions);
export type RecordConfig = Static<typeof RecordOptionsSchema>;

/** Cross-field problems of the record options, as [relative path, message]. */
export function checkRecordOptions(config: RecordConfig): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  for (const list of ['requestHeaders', 'responseHeaders'] as const) {
    const seen = new Set<string>();
    config[list].forEach((name, i) => {
      const lower = name.toLowerCase();
      if (seen.has(lower)) problems.push([`${list}[${i}]`, `repeats header "${name}"`]);
      seen.add(lower);
    });
  }
  if (config.fields.length === 0 && !config.includeQuery && config.requestHeaders.length === 0 && config.responseHeaders.length === 0) {
    problems.push(['fields', 'is empty and nothing else is logged: records would be empty']);
  }
  if (config.redactQueryArgs.length > 0 && !config.includeQuery) problems.push(['redactQueryArgs', 'has no effect without includeQuery: true']);
  return problems;
}

/** Whether a query argument name (lower case, decoded) holds a credential. */
export function isSecretArg(lower: string, extra: ReadonlySet<string>): boolean {
  if (SECRET_ARGS.has(lower) || extra.has(lower)) return true;
  for (const part of SECRET_ARG_PARTS) if (lower.includes(part)) return true;
  return false;
}

/** Cut a free-form value to MAX_VALUE_LENGTH. */
export function clip(value: string): string {
  return value.length > MAX_VALUE_LENGTH ? `${value.slice(0, MAX_VALUE_LENGTH)}...` : value;
}

function decodeName(raw: string): string {
  if (raw.indexOf('%') === -1 && raw.indexOf('+') === -1) return raw.toLowerCase();
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/** The raw query (without '?') with the values of credential arguments replaced by [redacted]. */
export function redactQuery(query: string, extra: ReadonlySet<string> = new Set()): string {
  if (query === '') return '';
  let out = '';
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    const part = query.slice(start, end);
    const eq = part.indexOf('=');
    const name = eq === -1 ? part : part.slice(0, eq);
    if (start > 0) out += '&';
    // A bare name (`?token`) has no value to hide; an argument with one has it replaced whole.
    out += eq !== -1 && isSecretArg(decodeName(name), extra) ? `${name}=${REDACTED}` : part;
    start = end + 1;
  }
  return clip(out);
}

type Getter = (ctx: PluginContext) => unknown;

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

const GETTERS: Record<RecordField, Getter> = {
  time: (ctx) => new Date(ctx.startedAt).toISOString(),
  route: (ctx) => ctx.routeId,
  service: (ctx) => ctx.serviceId,
  consumer: (ctx) => ctx.consumer?.username ?? null,
  method: (ctx) => ctx.method,
  host: (ctx) => {
    const h = ctx.headers.host ?? ctx.headers[':authority'];
    return typeof h === 'string' ? clip(h) : null;
  },
  path: (ctx) => clip(ctx.path),
  // The gateway's own rule (gateway.ts): a client that left before any response is logged as 499.
  status: (ctx) => (ctx.res.writableFinished ? ctx.status : ctx.status === 0 ? 499 : ctx.status),
  latencyMs: (ctx) => (ctx.endedAt > 0 ? round(ctx.endedAt - ctx.start) : null),
  upstreamLatencyMs: (ctx) => (ctx.upstreamLatency >= 0 ? round(ctx.upstreamLatency) : null),
  upstream: (ctx) => ctx.node?.key ?? null,
  clientIp: (ctx) => ctx.clientIp,
  bytesSent: (ctx) => ctx.bytesSent,
  bytesReceived: (ctx) => ctx.bytesReceived,
  userAgent: (ctx) => {
    const ua = ctx.headers['user-agent'];
    return typeof ua === 'string' ? clip(ua) : null;
  },
  requestId: (ctx) => {
    // The request-id plugin's id (its header name may be another one), else what the client sent.
    const own = ctx.vars['request-id'];
    if (typeof own === 'string') return own;
    const h = ctx.headers['x-request-id'];
    return typeof h === 'string' ? clip(h) : null;
  },
  error: (ctx) => ctx.errorCode,
};

function headerValue(lower: string, value: string | string[]): string | string[] {
  if (ALWAYS_REDACTED_HEADERS.has(lower)) return REDACTED;
  return typeof value === 'string' ? clip(value) : value.map(clip);
}

/** A compiled record builder: `build` at log time, `captureHead` in the response-headers phase when needed. */
export interface RecordBuilder {
  build(ctx: PluginContext): Record<string, unknown>;
  /** Present only when response headers are logged: keeps the response head for the log phase. */
  captureHead?: (ctx: PluginContext, head: ResponseHead) => void;
}

/**
 * Compile the record options once per config load. `varKey` is where the response head is kept in ctx.vars
 * between the response-headers and log phases (the plugin's name).
 */
export function compileRecord(config: RecordConfig, varKey: string): RecordBuilder {
  const fields = config.fields.map((f) => [f, GETTERS[f]] as const);
  const includeQuery = config.includeQuery;
  const extraSecrets: ReadonlySet<string> = new Set(config.redactQueryArgs.map((n) => n.toLowerCase()));
  const reqHeaders = [...new Set(config.requestHeaders.map((h) => h.toLowerCase()))];
  const resHeaders: ReadonlySet<string> = new Set(config.responseHeaders.map((h) => h.toLowerCase()));

  const builder: RecordBuilder = {
    build(ctx) {
      const record: Record<string, unknown> = {};
      for (const [name, get] of fields) record[name] = get(ctx);
      if (includeQuery) record.query = redactQuery(ctx.query, extraSecrets);
      if (reqHeaders.length > 0) {
        const out: Record<string, string | string[]> = {};
        for (const name of reqHeaders) {
          const v = ctx.headers[name];
          if (v !== undefined) out[name] = headerValue(name, v);
        }
        record.requestHeaders = out;
      }
      if (resHeaders.size > 0) {
        const out: Record<string, string | string[]> = {};
        const head = ctx.vars[varKey] as ResponseHead | undefined;
        if (head !== undefined) {
          const list = head.headers;
          for (let i = 0; i < list.length; i += 2) {
            const lower = list[i]!.toLowerCase();
            if (!resHeaders.has(lower)) continue;
            const value = ALWAYS_REDACTED_HEADERS.has(lower) ? REDACTED : clip(String(list[i + 1]));
            const had = out[lower];
            if (had === undefined) out[lower] = value;
            else if (value !== REDACTED) out[lower] = Array.isArray(had) ? [...had, value] : [had, value];
          }
        }
        record.responseHeaders = out;
      }
      return record;
    },
  };
  if (resHeaders.size > 0) {
    // The head object is kept, not copied: the log phase reads it as it was finally written, after the response
    // phases of higher-priority plugins (which run later: response phases go in reverse priority) changed it.
    builder.captureHead = (ctx, head) => {
      ctx.vars[varKey] = head;
    };
  }
  return builder;
}
