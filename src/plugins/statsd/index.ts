/**
 * @module plugins/statsd
 * Sends request metrics to a StatsD server over UDP: a request count, a count per status code, the request latency
 * and the upstream latency as timers, and the body bytes received and sent, by service, route and consumer. The
 * log phase only queues lines; they are packed into datagrams of at most maxPacketSize bytes and sent by one
 * connected socket per StatsD host and port per process (transport.ts), fire and forget. StatsD itself aggregates
 * what every worker process sends.
 *
 * Names: with `tags: none` the dimensions are part of the name (plain StatsD and Graphite have no tags):
 * `gatehouse.service.billing.route.invoices.consumer.alice.request.count:1|c`. With a tag style they are tags
 * instead: `gatehouse.request.count:1|c|#service:billing,route:invoices,consumer:alice` (dogstatsd).
 */
import { Type, type Static } from '@sinclair/typebox';
import { isIP } from 'node:net';
import { definePlugin, type PluginContext } from '../../dataplane/plugins/types.js';
import { StringEnum } from '../../model/common.js';
import { PRIORITIES } from '../priorities.js';
import { Batcher, UdpTarget } from './transport.js';

export const METRICS = ['requestCount', 'statusCount', 'latency', 'upstreamLatency', 'bytesReceived', 'bytesSent'] as const;
export const DIMENSIONS = ['service', 'route', 'consumer'] as const;
const TAG_STYLES = ['none', 'dogstatsd', 'influx', 'graphite'] as const;

/** Dot-separated segments of letters, digits, "_" and "-"; or empty for no prefix. */
const PREFIX = '^([A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*)?$';
/** What a tag key and a tag value may hold in every tag style (no separator of any of them). */
const TAG_KEY = '^[A-Za-z][A-Za-z0-9_.-]{0,63}$';
const TAG_VALUE = '^[A-Za-z0-9_.-]{1,200}$';
/** RFC 1123 host name. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

const Config = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253, default: '127.0.0.1', description: 'StatsD server: an IP address or a host name (looked up when config loads, then every minute; an IPv4 address is preferred).' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 8125, description: 'StatsD UDP port.' }),
    prefix: Type.String({
      pattern: PREFIX,
      maxLength: 128,
      default: 'gatehouse',
      description: 'First part of every metric name: dot-separated segments of letters, digits, "_" and "-" ("" for none).',
    }),
    sampleRate: Type.Number({
      minimum: 0.0001,
      maximum: 1,
      default: 1,
      description: 'Share of requests whose metrics are sent, 0.0001 to 1; sent with "|@rate" so StatsD scales counts back up.',
    }),
    metrics: Type.Array(StringEnum(METRICS, { description: 'A metric.' }), {
      minItems: 1,
      uniqueItems: true,
      default: [...METRICS],
      description: 'Metrics sent per request: requestCount, statusCount, latency, upstreamLatency, bytesReceived, bytesSent.',
    }),
    dimensions: Type.Array(StringEnum(DIMENSIONS, { description: 'A dimension.' }), {
      uniqueItems: true,
      default: [...DIMENSIONS],
      description: 'What metrics are broken down by (service, route, consumer): parts of the name, or tags with a tag style. [] for gateway-wide totals.',
    }),
    tags: StringEnum(TAG_STYLES, {
      default: 'none',
      description: 'none: dimensions in the metric name (plain StatsD, Graphite). dogstatsd: "|#k:v" tags. influx: "name,k=v" (Telegraf). graphite: "name;k=v" (Graphite 1.1 tags through StatsD).',
    }),
    constantTags: Type.Optional(
      Type.Record(Type.String({ pattern: TAG_KEY }), Type.String({ pattern: TAG_VALUE }), {
        maxProperties: 16,
        additionalProperties: false,
        description: 'Tags added to every metric (env: prod), with a tag style only. Keys: a letter then letters, digits, "_", "." or "-"; values: letters, digits, "_", "." or "-".',
      }),
    ),
    flushInterval: Type.Integer({
      minimum: 0,
      maximum: 60000,
      default: 1000,
      description: 'Milliseconds metrics may wait to fill a datagram before it is sent (a full one goes at once); 0: sent at the end of each event loop turn.',
    }),
    maxPacketSize: Type.Integer({
      minimum: 256,
      maximum: 65507,
      default: 1432,
      description: 'Largest datagram sent, in bytes; lines are packed into datagrams up to this size. 1432 fits a 1500-byte MTU; raise it on loopback or jumbo-frame networks.',
    }),
  },
  { additionalProperties: false, description: 'statsd config.' },
);
type Config = Static<typeof Config>;
type TagStyle = (typeof TAG_STYLES)[number];

/** In names, anything but letters, digits, "_" and "-" (the "." separator, ":", "|", "@", "#", whitespace...). */
const UNSAFE_NAME = /[^A-Za-z0-9_-]/g;
/** In tag values the "." is fine; separators of every tag style are not. */
const UNSAFE_TAG = /[^A-Za-z0-9_.-]/g;

/** An id as one segment of a metric name. */
export function nameSegment(v: string): string {
  return v === '' ? '_' : v.replace(UNSAFE_NAME, '_');
}

/** An id as a tag value. */
export function tagValue(v: string): string {
  return v === '' ? '_' : v.replace(UNSAFE_TAG, '_');
}

/** The two constant halves of a line around its value: `head + value + tail`. */
interface Parts {
  head: string;
  tail: string;
}

/** Builds metric lines for one config: prefix, tag style, sample rate and constant tags fixed. */
class Formatter {
  private readonly rate: string;
  private readonly constant: Array<[string, string]>;

  constructor(
    private readonly style: TagStyle,
    private readonly prefix: string,
    sampleRate: number,
    constantTags: Record<string, string>,
  ) {
    // Numbers from 1e-6 up print without an exponent, which every StatsD parser reads.
    this.rate = sampleRate < 1 ? `|@${sampleRate}` : '';
    this.constant = Object.entries(constantTags);
  }

  /** `dims`: [key, id or null when the request has none], in name order. `extra`: a tag added in tag styles. */
  parts(dims: Array<[string, string | null]>, metric: string, type: 'c' | 'ms', extra: [string, string] | null = null): Parts {
    const segments: string[] = this.prefix === '' ? [] : [this.prefix];
    const tail = `|${type}${this.rate}`;
    if (this.style === 'none') {
      // Fixed depth, so Graphite wildcards line up: a missing service or consumer is "_" (no id can be "_").
      for (const [k, v] of dims) segments.push(k, v === null ? '_' : nameSegment(v));
      segments.push(metric);
      return { head: `${segments.join('.')}:`, tail };
    }
    segments.push(metric);
    const name = segments.join('.');
    const tags: Array<[string, string]> = [];
    for (const [k, v] of dims) if (v !== null) tags.push([k, tagValue(v)]);
    if (extra !== null) tags.push(extra);
    tags.push(...this.constant);
    switch (this.style) {
      case 'dogstatsd':
        return { head: `${name}:`, tail: tags.length === 0 ? tail : `${tail}|#${tags.map(([k, v]) => `${k}:${v}`).join(',')}` };
      case 'influx':
        return { head: `${name}${tags.map(([k, v]) => `,${k}=${v}`).join('')}:`, tail };
      case 'graphite':
        return { head: `${name}${tags.map(([k, v]) => `;${k}=${v}`).join('')}:`, tail };
    }
  }

  /** The whole line of a count of one. */
  one(dims: Array<[string, string | null]>, metric: string, extra: [string, string] | null = null): string {
    const p = this.parts(dims, metric, 'c', extra);
    return `${p.head}1${p.tail}`;
  }

  statusLine(dims: Array<[string, string | null]>, status: number): string {
    return this.style === 'none' ? this.one(dims, `status.${status}`) : this.one(dims, 'status.count', ['status', String(status)]);
  }
}

/** The lines of one (route, consumer) of one config, built once: per request only values are joined in. */
class Series {
  readonly count: string;
  readonly latency: Parts;
  readonly upstreamLatency: Parts;
  readonly bytesReceived: Parts;
  readonly bytesSent: Parts;
  private readonly statuses = new Map<number, string>();

  constructor(
    private readonly fmt: Formatter,
    private readonly dims: Array<[string, string | null]>,
  ) {
    this.count = fmt.one(dims, 'request.count');
    this.latency = fmt.parts(dims, 'latency', 'ms');
    this.upstreamLatency = fmt.parts(dims, 'upstream_latency', 'ms');
    this.bytesReceived = fmt.parts(dims, 'request.bytes', 'c');
    this.bytesSent = fmt.parts(dims, 'response.bytes', 'c');
  }

  status(code: number): string {
    let line = this.statuses.get(code);
    if (line === undefined) {
      line = this.fmt.statusLine(this.dims, code);
      this.statuses.set(code, line);
    }
    return line;
  }
}

/** Series kept per config instance; routes and consumers come from config, so this is a guard, not a cache policy. */
const MAX_SERIES = 10_000;

/** Milliseconds with at most three decimals, never negative, never in exponent form. */
function ms(v: number): string {
  return v > 0 ? String(Math.round(v * 1000) / 1000) : '0';
}

export default definePlugin<Config>({
  name: 'statsd',
  version: '1.0.0',
  priority: PRIORITIES['statsd'],
  description: 'Sends request counts, status counts, latency timers and bytes by service, route and consumer to StatsD over UDP, packed into datagrams, fire and forget.',
  schema: Config,
  check(config) {
    const problems: Array<[string, string]> = [];
    if (isIP(config.host) === 0 && !HOSTNAME.test(config.host)) problems.push(['host', 'must be an IP address or a host name']);
    if (config.constantTags !== undefined && Object.keys(config.constantTags).length > 0 && config.tags === 'none') {
      problems.push(['constantTags', 'needs a tag style (tags: dogstatsd, influx or graphite); plain StatsD names have no tags']);
    }
    return problems;
  },
  create(config, env) {
    const { host, port, maxPacketSize, flushInterval } = config;
    // One socket per StatsD server per process, whatever the number of configs naming it, kept across reloads.
    const target = env.state(`udp:${host}:${port}`, () => new UdpTarget(host, port, env.logger));
    // Configs that pack alike share a buffer, so their lines fill the same datagrams.
    const batcher = env.state(`batch:${host}:${port}:${maxPacketSize}:${flushInterval}`, () => new Batcher(target, maxPacketSize, flushInterval));

    const fmt = new Formatter(config.tags, config.prefix, config.sampleRate, config.constantTags ?? {});
    const rate = config.sampleRate;
    const want = new Set(config.metrics);
    const sendCount = want.has('requestCount');
    const sendStatus = want.has('statusCount');
    const sendLatency = want.has('latency');
    const sendUpstream = want.has('upstreamLatency');
    const sendIn = want.has('bytesReceived');
    const sendOut = want.has('bytesSent');
    const byService = config.dimensions.includes('service');
    const byRoute = config.dimensions.includes('route');
    const byConsumer = config.dimensions.includes('consumer');

    // routeId -> consumer ("" when none or not a dimension) -> lines. The service is the route's.
    const cache = new Map<string, Map<string, Series>>();
    let cached = 0;

    function seriesOf(ctx: PluginContext): Series {
      const consumer = byConsumer ? (ctx.consumer?.username ?? '') : '';
      let perRoute = cache.get(ctx.routeId);
      if (perRoute === undefined) {
        perRoute = new Map();
        cache.set(ctx.routeId, perRoute);
      }
      let s = perRoute.get(consumer);
      if (s === undefined) {
        const dims: Array<[string, string | null]> = [];
        if (byService) dims.push(['service', ctx.serviceId]);
        if (byRoute) dims.push(['route', ctx.routeId]);
        if (byConsumer) dims.push(['consumer', consumer === '' ? null : consumer]);
        s = new Series(fmt, dims);
        if (cached < MAX_SERIES) {
          perRoute.set(consumer, s);
          cached++;
        }
      }
      return s;
    }

    return {
      // HOT PATH (after the response): one draw when sampling, cached names, a string per value; queued only.
      log(ctx) {
        if (rate < 1 && !(Math.random() < rate)) return;
        const s = seriesOf(ctx);
        if (sendCount) batcher.add(s.count);
        // No status: the client left before any response (499, as the gateway's own series count it).
        if (sendStatus) batcher.add(s.status(ctx.status === 0 ? 499 : ctx.status));
        if (sendLatency) {
          const end = ctx.endedAt > 0 ? ctx.endedAt : performance.now();
          batcher.add(s.latency.head + ms(end - ctx.start) + s.latency.tail);
        }
        if (sendUpstream && ctx.upstreamLatency >= 0) batcher.add(s.upstreamLatency.head + ms(ctx.upstreamLatency) + s.upstreamLatency.tail);
        // Zero adds nothing to a counter: not sent.
        if (sendIn && ctx.bytesReceived > 0) batcher.add(s.bytesReceived.head + ctx.bytesReceived + s.bytesReceived.tail);
        if (sendOut && ctx.bytesSent > 0) batcher.add(s.bytesSent.head + ctx.bytesSent + s.bytesSent.tail);
      },
    };
  },
  control: {
    /** This worker's StatsD targets: where they send and what has happened (POST /plugins/statsd/stats). */
    stats(_args, env) {
      const targets: Array<Record<string, unknown>> = [];
      for (const key of env.stateKeys()) {
        if (!key.startsWith('udp:')) continue;
        const t = env.state<UdpTarget>(key);
        if (t === undefined || t.isClosed) continue;
        targets.push({ target: t.target, address: t.address, connected: t.ready, ...t.stats });
      }
      return { pid: process.pid, targets };
    },
  },
});
