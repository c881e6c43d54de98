/**
 * @module plugins/limit-count
 * Rate limits and quotas: at most `count` requests per window, per key (client, consumer, route, header...),
 * with several windows at once (10 per second and 100,000 per month). Counters are shared by every worker of a
 * gateway (`policy: local`) or by every gateway through Redis (`policy: redis`). Answers RateLimit-* headers
 * and 429 with Retry-After.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext, type PluginResponse, type PhaseResult } from '../../dataplane/plugins/types.js';
import { windowName, type CounterLimit, type CounterVerdict, type LimitWindow } from '../../dataplane/limits/types.js';
import { PRIORITIES } from '../priorities.js';
import { compileKey, KeyParts, refusal, RejectedMessage, RejectedStatus, seconds } from '../limits/shared.js';
import { RedisCounter } from './redis.js';

const NAMED_WINDOWS = { second: 1, minute: 60, hour: 3600, day: 86400 } as const;

const Window = Type.Union(
  [
    Type.Integer({ minimum: 1, maximum: 31_622_400, description: 'Window length in seconds (windows start at multiples of it since the Unix epoch, so 86400 is a UTC day).' }),
    Type.Union([Type.Literal('second'), Type.Literal('minute'), Type.Literal('hour'), Type.Literal('day'), Type.Literal('month'), Type.Literal('year')], {
      description: 'A named window: second, minute, hour, day (UTC), month or year (UTC calendar month or year).',
    }),
  ],
  { description: 'The window: seconds, or second, minute, hour, day, month, year.' },
);

const Limit = Type.Object(
  {
    count: Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'Requests allowed per window.' }),
    window: Window,
  },
  { additionalProperties: false, description: 'One limit: count requests per window.' },
);

const Redis = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253, description: 'Redis host name or address.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 6379, description: 'Redis port.' }),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'ACL user name (Redis 6+).' })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, writeOnly: true, description: 'Password (AUTH). Never logged; write-only in the admin API.' })),
    database: Type.Integer({ minimum: 0, maximum: 15, default: 0, description: 'Database number.' }),
    tls: Type.Boolean({ default: false, description: 'Connect with TLS.' }),
    timeout: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 500,
      description: 'Milliseconds a check may take (and a connection attempt); past it the check counts as failed and onRedisFailure applies.',
    }),
  },
  { additionalProperties: false, description: 'The Redis server that holds the counters (policy redis).' },
);

const Config = Type.Object(
  {
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'Requests allowed per timeWindow (the one-limit form; use limits for several).' })),
    timeWindow: Type.Optional(Window),
    limits: Type.Optional(
      Type.Array(Limit, {
        minItems: 1,
        maxItems: 8,
        description: 'Several limits at once (instead of count and timeWindow); a request is let through only when every one has room, and then counts against all.',
      }),
    ),
    algorithm: Type.Union([Type.Literal('fixed'), Type.Literal('sliding')], {
      default: 'fixed',
      description:
        'fixed: counters reset at each window boundary. sliding: the previous window still weighs in by how much of it overlaps the last window length, which smooths bursts at boundaries (not with month or year windows).',
    }),
    key: KeyParts,
    group: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._~-]{1,128}$',
        description: 'Share counters with every other limit-count config of the same group (by default each route, service or consumer config counts on its own).',
      }),
    ),
    policy: Type.Union([Type.Literal('local'), Type.Literal('redis')], {
      default: 'local',
      description: 'local: counters shared by every worker of this gateway. redis: one counter across every gateway using the same Redis.',
    }),
    redis: Type.Optional(Redis),
    onRedisFailure: Type.Union([Type.Literal('allow'), Type.Literal('reject')], {
      default: 'allow',
      description: 'When Redis cannot be reached in time: allow the request (fail open, the default) or refuse it with 503 GH_ERR_RATE_LIMIT_UNAVAILABLE (fail closed).',
    }),
    rejectedStatus: RejectedStatus,
    rejectedMessage: RejectedMessage,
    headers: Type.Boolean({ default: true, description: 'Send RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset on every response, and Retry-After on refusals.' }),
  },
  { additionalProperties: false, description: 'limit-count on a route, service, consumer or globally.' },
);
type Config = Static<typeof Config>;

type WindowSpec = Static<typeof Window>;

/** The limits of a config, whichever form it uses (check() has made sure it uses one). */
function limitsOf(config: Config): Array<{ count: number; window: WindowSpec }> {
  return config.limits ?? [{ count: config.count!, window: config.timeWindow! }];
}

function toWindow(w: WindowSpec): LimitWindow {
  if (typeof w === 'number') return { ms: w * 1000 };
  if (w === 'month' || w === 'year') return { calendar: w };
  return { ms: NAMED_WINDOWS[w] * 1000 };
}

export default definePlugin<Config>({
  name: 'limit-count',
  version: '1.0.0',
  priority: PRIORITIES['limit-count'],
  description: 'Rate limits and quotas: at most count requests per window per key, shared by all workers or all gateways (Redis).',
  schema: Config,
  check(config) {
    const problems: Array<[string, string]> = [];
    const single = config.count !== undefined || config.timeWindow !== undefined;
    if (single && config.limits !== undefined) return [['limits', 'give either count and timeWindow or limits, not both']];
    if (!single && config.limits === undefined) return [['count', 'is required (with timeWindow), or give limits']];
    if (config.count === undefined && single) return [['count', 'is required with timeWindow']];
    if (config.timeWindow === undefined && single) return [['timeWindow', 'is required with count']];
    if (config.policy === 'redis' && config.redis === undefined) problems.push(['redis', 'is required with policy redis']);
    if (config.policy !== 'redis' && config.redis !== undefined) problems.push(['redis', 'is only used with policy redis']);
    const seen = new Set<string>();
    limitsOf(config).forEach((l, i) => {
      const w = toWindow(l.window);
      const at = config.limits === undefined ? 'timeWindow' : `limits[${i}].window`;
      if (config.algorithm === 'sliding' && !('ms' in w)) problems.push([at, 'a sliding window cannot be a calendar month or year']);
      const name = windowName(w, false);
      if (seen.has(name)) problems.push([at, 'another limit has the same window']);
      seen.add(name);
    });
    return problems;
  },
  create(config, env) {
    const sliding = config.algorithm === 'sliding';
    const limits: CounterLimit[] = limitsOf(config).map((l) => ({ count: l.count, window: toWindow(l.window), sliding }));
    // The windows are part of the key: a config whose windows change starts new counters.
    const prefix = `${config.group !== undefined ? `group:${config.group}` : env.scope}\u0001${limits.map((l) => windowName(l.window, l.sliding)).join(',')}\u0001`;
    const keyOf = compileKey(prefix, config.key);
    const headers = config.headers;
    const status = config.rejectedStatus;
    const message = config.rejectedMessage;

    const verdict = (ctx: PluginContext, v: CounterVerdict): PluginResponse | undefined => {
      if (!v.allowed) {
        return refusal(
          status,
          message,
          headers ? { 'ratelimit-limit': String(v.limit), 'ratelimit-remaining': '0', 'ratelimit-reset': seconds(v.resetMs), 'retry-after': seconds(v.resetMs) } : {},
        );
      }
      if (headers) {
        ctx.setResponseHeader('RateLimit-Limit', String(v.limit));
        ctx.setResponseHeader('RateLimit-Remaining', String(v.remaining));
        ctx.setResponseHeader('RateLimit-Reset', seconds(v.resetMs));
      }
      return undefined;
    };

    if (config.policy === 'redis') {
      const counter = new RedisCounter(env.services.redis(config.redis!), limits);
      const failOpen = config.onRedisFailure === 'allow';
      const unavailable = refusal(503, undefined, {}, 'GH_ERR_RATE_LIMIT_UNAVAILABLE');
      return {
        access(ctx): PhaseResult {
          return counter.count(keyOf(ctx), 1).then(
            (v) => verdict(ctx, v),
            () => (failOpen ? undefined : unavailable),
          );
        },
      };
    }

    const shared = env.services.limits;
    return {
      /** HOT PATH: with leases in hand this is synchronous. */
      access(ctx): PhaseResult {
        const v = shared.count(keyOf(ctx), limits, 1);
        if (v instanceof Promise) return v.then((r) => verdict(ctx, r));
        return verdict(ctx, v);
      },
    };
  },
});
