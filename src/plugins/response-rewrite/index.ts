/**
 * @module plugins/response-rewrite
 * Rewrites the upstream's response: status, headers and the whole body, optionally only for some upstream
 * statuses. The gateway's own answers (errors, auth refusals, plugin answers) are never changed.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext, type PluginInstance, type ResponseHead } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';
import { HeaderName, HeaderValues, protectedHeaderEdits } from '../util.js';


/** A body up to 1 MiB: it is held in memory once per config. */
const MAX_BODY = 1024 * 1024;

const Config = Type.Object(
  {
    status: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, description: 'Status sent to the client instead of the upstream\'s.' })),
    headers: Type.Object(
      {
        set: HeaderValues('Response headers to set, replacing the upstream\'s values: name -> value.'),
        add: HeaderValues('Response headers to append, keeping the upstream\'s values: name -> value.'),
        remove: Type.Array(HeaderName, {
          default: [],
          maxItems: 64,
          description: 'Response headers to remove.',
        }),
      },
      { default: {}, additionalProperties: false, description: 'Response header changes, applied in the order remove, set, add.' },
    ),
    body: Type.Optional(Type.String({ maxLength: MAX_BODY, description: 'Replaces the whole body (UTF-8). Set content-type under headers.set to match it.' })),
    bodyBase64: Type.Optional(
      Type.String({
        maxLength: Math.ceil(MAX_BODY / 3) * 4,
        pattern: '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$',
        description: 'Replaces the whole body with these bytes (standard base64), for binary bodies.',
      }),
    ),
    onStatus: Type.Optional(
      Type.Array(Type.Integer({ minimum: 100, maximum: 599, description: 'An upstream status.' }), {
        minItems: 1,
        maxItems: 100,
        uniqueItems: true,
        description: 'Rewrite only when the upstream answered one of these statuses; without it, every upstream response is rewritten.',
      }),
    ),
  },
  { additionalProperties: false, description: 'response-rewrite on a route, service, consumer or globally.' },
);
type Config = Static<typeof Config>;

/** Headers the HTTP layer owns: a value set here would break the framing of the response. */
const PROTECTED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer']);

function check(config: Config): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  if (config.body !== undefined && config.bodyBase64 !== undefined) problems.push(['bodyBase64', 'cannot be used with body: use one']);
  const hasBody = config.body !== undefined || config.bodyBase64 !== undefined;
  if (hasBody && (config.status === 204 || config.status === 304)) problems.push(['status', `${config.status} responses have no body: remove body or choose another status`]);
  const headers = config.headers ?? { set: {}, add: {}, remove: [] };
  problems.push(...protectedHeaderEdits(headers, (name) => PROTECTED.has(name), () => 'is a framing header the gateway sets itself and cannot be changed'));
  if (config.status === undefined && config.body === undefined && config.bodyBase64 === undefined && Object.keys(headers.set ?? {}).length + Object.keys(headers.add ?? {}).length + (headers.remove ?? []).length === 0) {
    problems.push(['', 'changes nothing: set status, headers, body or bodyBase64']);
  }
  return problems;
}

/** Drops every header of a (lower-case) name from a flat list. */
function dropHeader(h: string[], lower: string): void {
  for (let i = 0; i < h.length; i += 2) {
    if (h[i]!.length === lower.length && h[i]!.toLowerCase() === lower) {
      h.splice(i, 2);
      i -= 2;
    }
  }
}

/**
 * What the body hook does for this request, decided in the header phase where the status is known:
 * the replacement bytes, or PASS when the response is not rewritten.
 */
const VAR = 'response-rewrite';
const PASS = 0;
const EMPTY = Buffer.alloc(0);

export default definePlugin<Config>({
  name: 'response-rewrite',
  version: '1.0.0',
  priority: PRIORITIES['response-rewrite'],
  description: 'Rewrites the upstream response: status, headers and the whole body, optionally only for some upstream statuses.',
  schema: Config,
  check,
  create(config) {
    const onStatus = config.onStatus !== undefined ? new Set(config.onStatus) : null;
    const status = config.status ?? null;
    const body = config.body !== undefined ? Buffer.from(config.body, 'utf8') : config.bodyBase64 !== undefined ? Buffer.from(config.bodyBase64, 'base64') : null;
    const headers = config.headers ?? { set: {}, add: {}, remove: [] };
    const remove = (headers.remove ?? []).map((n) => n.toLowerCase());
    const set = Object.entries(headers.set ?? {}).map(([n, v]) => [n.toLowerCase(), v] as const);
    const add = Object.entries(headers.add ?? {}).map(([n, v]) => [n.toLowerCase(), v] as const);

    const responseHeaders = (ctx: PluginContext, head: ResponseHead): void => {
      // Only the upstream's answers: a gateway error or a plugin's answer keeps its code and its own body
      // (the body phase never runs on those, so a replaced body could not follow the headers anyway).
      const fromUpstream = ctx.upstreamLatency >= 0 && ctx.errorCode === null;
      if (!fromUpstream || (onStatus !== null && !onStatus.has(head.status))) {
        if (body !== null) ctx.vars[VAR] = PASS;
        return;
      }
      if (status !== null) head.status = status;
      const h = head.headers;
      if (body !== null) {
        // The old body's coding and validators describe bytes that are no longer sent.
        dropHeader(h, 'content-encoding');
        dropHeader(h, 'etag');
        dropHeader(h, 'content-md5');
        // HEAD, 204 and 304 carry no body: the replacement is dropped, the upstream's (empty) one too.
        const none = ctx.req.method === 'HEAD' || head.status === 204 || head.status === 304;
        ctx.vars[VAR] = none ? EMPTY : body;
      }
      for (const name of remove) dropHeader(h, name);
      for (const [name, value] of set) {
        dropHeader(h, name);
        h.push(name, value);
      }
      for (const [name, value] of add) h.push(name, value);
    };

    const instance: PluginInstance = { responseHeaders };
    // Registered only with a body: a body hook costs every response of the route its Content-Length.
    if (body !== null) {
      instance.responseBody = (ctx, chunk, last) => {
        const replacement = ctx.vars[VAR];
        if (!Buffer.isBuffer(replacement)) return chunk;
        // Every upstream chunk is dropped; the new body goes out once, at the end.
        return last ? replacement : null;
      };
    }
    return instance;
  },
});
