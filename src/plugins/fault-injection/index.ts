/**
 * @module plugins/fault-injection
 * Chaos testing at the gateway: delays requests and/or answers them with a configured response instead of
 * proxying, for a percentage of requests and optionally only those that match conditions.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext, type PluginResponse } from '../../dataplane/plugins/types.js';
import { compileConditions } from '../../dataplane/router/conditions.js';
import type { RouterRequest } from '../../dataplane/router/types.js';
import { MatchCondition } from '../../model/common.js';
import { PRIORITIES } from '../priorities.js';

const Percentage = (what: string) =>
  Type.Number({ minimum: 0, maximum: 100, default: 100, description: `Share of requests (0 to 100, fractions allowed) that get the ${what}, drawn per request.` });

const Abort = Type.Object(
  {
    status: Type.Integer({ minimum: 200, maximum: 599, description: 'Status of the response sent instead of proxying.' }),
    body: Type.Optional(Type.String({ maxLength: 65536, description: 'Body of the response, sent as given (content-type text/plain unless headers set one).' })),
    headers: Type.Optional(
      Type.Record(Type.String(), Type.String({ maxLength: 8192, description: 'Header value.' }), {
        description: 'Extra response headers, by name (not the framing headers: content-length, transfer-encoding, connection...).',
      }),
    ),
    percentage: Percentage('abort'),
  },
  { additionalProperties: false, description: 'Answer the request at the gateway; the upstream never sees it.' },
);

const Delay = Type.Object(
  {
    duration: Type.Integer({ minimum: 1, maximum: 60000, description: 'Milliseconds to hold the request before it goes on (or is aborted).' }),
    percentage: Percentage('delay'),
  },
  { additionalProperties: false, description: 'Hold the request for a while, then let it go on.' },
);

const Config = Type.Object(
  {
    abort: Type.Optional(Abort),
    delay: Type.Optional(Delay),
    match: Type.Optional(
      Type.Array(MatchCondition, {
        minItems: 1,
        maxItems: 64,
        description: 'Inject faults only into requests that satisfy all of these conditions (the same conditions as a route\'s match).',
      }),
    ),
  },
  { additionalProperties: false, description: 'fault-injection on a route, service or globally: give abort, delay or both.' },
);
type Config = Static<typeof Config>;

/** RFC 9110 token: what Node accepts as a header name. */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** Visible characters, spaces and tabs: no CR/LF that could split the response head. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** The gateway frames the response itself; a configured copy of these would contradict it. */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection']);

/**
 * Answer for a request whose client left during the delay: it ends the chain so no later plugin runs and
 * nothing is proxied. The gateway does not write it (the response is already closed).
 */
const CLIENT_GONE: PluginResponse = Object.freeze({ status: 499 });

/** A percentage as a per-request draw: 0 and 100 are decided at config load, with no call to Math.random. */
function compileChance(percentage: number): () => boolean {
  if (percentage >= 100) return () => true;
  if (percentage <= 0) return () => false;
  // Math.random is uniform on [0, 1): this is true for `percentage` out of 100 requests on average.
  return () => Math.random() * 100 < percentage;
}

/** What the condition predicate reads of a request (it only looks at headers, query and cookies). */
function routerView(ctx: PluginContext): RouterRequest {
  return { method: ctx.method, host: '', path: ctx.path, query: ctx.query, headers: ctx.headers };
}

/** Hold the request for `ms`, then resolve with `then`; resolve at once with CLIENT_GONE if the client leaves. */
function hold(ctx: PluginContext, ms: number, then: PluginResponse | undefined): Promise<PluginResponse | undefined> {
  // The union of HTTP/1 and HTTP/2 responses: both are event emitters with 'close' and `destroyed`.
  const res = ctx.res as unknown as NodeJS.EventEmitter & { destroyed: boolean };
  if (res.destroyed) return Promise.resolve(CLIENT_GONE);
  return new Promise((resolve) => {
    const onClose = () => {
      clearTimeout(timer);
      resolve(CLIENT_GONE);
    };
    // unref: a pending fault must not keep a gateway that is shutting down alive.
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(then);
    }, ms).unref();
    res.once('close', onClose);
  });
}

export default definePlugin<Config>({
  name: 'fault-injection',
  version: '1.0.0',
  priority: PRIORITIES['fault-injection'],
  description: 'Delays requests and/or answers them with a configured response, for a share of matching requests.',
  schema: Config,
  // Not on a consumer: consumer plugins join after authentication, and this works in the rewrite phase.
  scopes: ['global', 'service', 'route'],
  check(config) {
    const problems: Array<[string, string]> = [];
    if (config.abort === undefined && config.delay === undefined) problems.push(['', 'needs abort, delay or both']);
    if (config.abort?.body !== undefined && (config.abort.status === 204 || config.abort.status === 304)) {
      problems.push(['abort.body', `cannot be sent with status ${config.abort.status}, which has no body`]);
    }
    for (const [name, value] of Object.entries(config.abort?.headers ?? {})) {
      const at = `abort.headers.${name}`;
      if (!HEADER_NAME.test(name)) problems.push([at, 'is not a valid header name']);
      else if (FRAMING_HEADERS.has(name.toLowerCase())) problems.push([at, 'is set by the gateway and cannot be configured']);
      if (!HEADER_VALUE.test(value)) problems.push([at, 'has a character not allowed in a header value']);
    }
    // The same rules as a route's match conditions (model/validate.ts), with this plugin's field paths.
    (config.match ?? []).forEach((m, j) => {
      const op = m.op ?? 'equals';
      if ((op === 'equals' || op === 'notEquals' || op === 'regex') && m.value === undefined) problems.push([`match[${j}].value`, `is required for op ${op}`]);
      if ((op === 'in' || op === 'notIn') && !m.values) problems.push([`match[${j}].values`, `is required for op ${op}`]);
      if (op === 'regex' && m.value !== undefined) {
        try {
          new RegExp(m.value);
        } catch (e) {
          problems.push([`match[${j}].value`, `is not a valid regular expression: ${(e as Error).message}`]);
        }
      }
    });
    return problems;
  },
  create(config, env) {
    if (config.abort === undefined && config.delay === undefined) throw new Error(`${env.path}: needs abort, delay or both`);
    // Throws a ConditionCompileError naming the config path if check() was skipped and a condition is bad.
    const matches = compileConditions(env.path, config.match);

    let abortResponse: PluginResponse | undefined;
    if (config.abort !== undefined) {
      const headers: Record<string, string> = { ...config.abort.headers };
      const hasType = Object.keys(headers).some((k) => k.toLowerCase() === 'content-type');
      if (config.abort.body !== undefined && config.abort.body !== '' && !hasType) headers['content-type'] = 'text/plain; charset=utf-8';
      // Built once: every abort is the same response. A string body is sent as is by the gateway.
      abortResponse = Object.freeze({
        status: config.abort.status,
        ...(config.abort.body !== undefined ? { body: config.abort.body } : {}),
        headers: Object.freeze(headers),
      });
    }
    const abortChance = abortResponse !== undefined ? compileChance(config.abort!.percentage) : () => false;
    const delayMs = config.delay?.duration ?? 0;
    const delayChance = config.delay !== undefined ? compileChance(config.delay.percentage) : () => false;

    return {
      // HOT PATH on routes with the plugin: synchronous unless this request is delayed.
      rewrite(ctx) {
        if (matches !== null && !matches(routerView(ctx))) return;
        // Both draws are independent, as in APISIX: a request may be delayed, aborted, both or neither.
        const abort = abortChance() ? abortResponse : undefined;
        if (delayMs > 0 && delayChance()) return hold(ctx, delayMs, abort);
        return abort;
      },
    };
  },
});
