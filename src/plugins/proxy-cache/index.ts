/**
 * @module plugins/proxy-cache
 * Caches upstream responses in the memory of each worker process and answers later requests for the same key
 * from there: a store bounded in bytes with least-recently-used eviction, keyed on the route, scheme, host,
 * canonical path, query, chosen request headers and the consumer; honours Cache-Control, Expires and Vary
 * (RFC 9111, shared cache); answers conditional requests from stored validators; tells the client what
 * happened in X-Cache-Status (HIT, MISS, EXPIRED, BYPASS). Concurrent misses for one key send one request
 * upstream, the others wait for its answer. Operators purge through the status port.
 *
 * The cache answers in the before-upstream phase: after authentication and after every access check (limits,
 * consumer-restriction, request-validation), so a cached answer costs what a proxied one does in quotas and is
 * never given to a client the gateway would refuse.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ControlError, definePlugin, type PhaseResult, type PluginContext, type PluginControlEnv, type PluginResponse, type ResponseHead } from '../../dataplane/plugins/types.js';
import { PRIORITIES } from '../priorities.js';
import { HeaderName } from '../util.js';
import { CacheEntry, FillLock, MemoryCache, type KeyParts } from './store.js';
import { ageSeconds, etagMatches, freshnessLifetime, NO_STORE_REQUEST, parseCacheControl, requestDirectives, varyNames, type ResponseDirectives } from './policy.js';

const MiB = 1024 * 1024;

const Config = Type.Object(
  {
    memorySize: Type.Integer({
      minimum: 64 * 1024,
      maximum: 64 * 1024 * MiB,
      default: 64 * MiB,
      description: 'Bytes the stored responses (key, headers and body of each) may take in all, per worker process; least recently used ones are evicted beyond it.',
    }),
    maxObjectSize: Type.Integer({
      minimum: 1,
      maximum: 1024 * MiB,
      default: MiB,
      description: 'Largest response body, in bytes, that is stored; larger responses are passed through uncached.',
    }),
    ttl: Type.Integer({
      minimum: 1,
      maximum: 31_536_000,
      default: 300,
      description: 'Seconds a response stays fresh when it sets no freshness of its own (Cache-Control s-maxage or max-age, Expires).',
    }),
    methods: Type.Array(Type.Union([Type.Literal('GET'), Type.Literal('HEAD')], { description: 'GET, or HEAD (answered from stored GET responses).' }), {
      minItems: 1,
      uniqueItems: true,
      default: ['GET', 'HEAD'],
      description: 'Request methods answered from the cache. Only GET responses are stored; HEAD requests are answered from them.',
    }),
    statuses: Type.Array(Type.Integer({ minimum: 200, maximum: 599, description: 'An upstream status.' }), {
      minItems: 1,
      maxItems: 100,
      uniqueItems: true,
      default: [200, 301, 404],
      description: 'Upstream statuses whose responses are stored.',
    }),
    keyHeaders: Type.Array(HeaderName, {
      maxItems: 16,
      default: [],
      description: 'Request headers whose values are part of the cache key (a language, a tenant), besides the route, scheme, host, path and query.',
    }),
    keyQuery: Type.Union([Type.Literal('keep'), Type.Literal('sort'), Type.Literal('ignore')], {
      default: 'keep',
      description: 'The query in the key: keep (as sent), sort (arguments in order, so ?a=1&b=2 and ?b=2&a=1 share an entry) or ignore (one entry per path).',
    }),
    perConsumer: Type.Boolean({
      default: true,
      description: 'On authenticated requests, the consumer is part of the key, so one consumer is never answered with what the upstream told another. false shares entries among consumers (content that is the same for all).',
    }),
    setCookie: Type.Union([Type.Literal('refuse'), Type.Literal('strip')], {
      default: 'refuse',
      description: 'Responses with Set-Cookie: refuse (not stored) or strip (stored without their Set-Cookie; only the client that caused the fill gets the cookie).',
    }),
    clientBypass: Type.Boolean({
      default: true,
      description: 'Requests with Cache-Control no-cache or no-store (or Pragma no-cache) go to the upstream (BYPASS); false answers them from the cache like any other.',
    }),
    lockTimeout: Type.Integer({
      minimum: 0,
      maximum: 600_000,
      default: 5000,
      description: 'Milliseconds a request waits for another request that is fetching the same key before it goes upstream itself (0: no waiting, every miss goes upstream).',
    }),
  },
  { additionalProperties: false, description: 'proxy-cache config.' },
);
type Config = Static<typeof Config>;

/** The response header that tells the client what the cache did. */
const STATUS_HEADER = 'X-Cache-Status';
const STATUS_HEADER_LOWER = 'x-cache-status';

/** The cache's clock (ms since the epoch). Tests replace `now` to move time without waiting. */
export const cacheClock = { now: (): number => Date.now() };

const VAR = 'proxy-cache';

/** A fill is deciding until the response head comes, collecting the body, then done (stored or given up). */
const DECIDING = 0;
const COLLECTING = 1;
const DONE = 2;

type FillStatus = 'MISS' | 'EXPIRED' | 'BYPASS';

/** A request that went upstream: what the cache does with its answer. Kept in ctx.vars for the response phases. */
class Fill {
  state = DECIDING;
  chunks: Buffer[] | null = null;
  size = 0;
  // From the response head, once it is found storable.
  status = 0;
  headers: Record<string, string> | null = null;
  headerBytes = 0;
  vary: readonly string[] = [];
  notModified: PluginResponse | null = null;
  etag: string | undefined = undefined;
  lastModified = NaN;
  storedAt = 0;
  initialAge = 0;
  expiresAt = 0;

  constructor(
    readonly cache: MemoryCache,
    readonly cacheStatus: FillStatus,
    readonly key: string,
    readonly parts: KeyParts,
    /** Whether the answer may be stored (not for HEAD, nor for a request that said no-store). */
    readonly store: boolean,
    readonly lock: FillLock | null,
    readonly lockKey: string,
    /** The store's generation when the request left: a purge since then means the answer may be outdated. */
    readonly generation: number,
  ) {}
}

/** The headers a 304 carries (RFC 9110 15.4.5). */
const NOT_MODIFIED_HEADERS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']);

const NO_DIRECTIVES: ResponseDirectives = parseCacheControl('');

/** Lower-case host name without the port ("Example.com:8080" -> "example.com"); no allocation when already so. */
export function hostName(h: string): string {
  let end = h.length;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const close = h.indexOf(']');
    end = close === -1 ? h.length : close + 1;
  } else {
    const colon = h.indexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && h.charCodeAt(end - 1) === 46 /* . */) end--;
  const name = end === h.length ? h : h.slice(0, end);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return name.toLowerCase();
  }
  return name;
}

/** The query with its arguments in order (empty arguments dropped). */
export function sortedQuery(q: string): string {
  if (q === '' || q.indexOf('&') === -1) return q;
  return q
    .split('&')
    .filter((p) => p !== '')
    .sort()
    .join('&');
}

/**
 * A request header's value as the key and Vary see it. X-Consumer-Username is what the gateway sends upstream
 * (the authenticated consumer), never a client's copy, which the gateway removes.
 */
function headerValue(ctx: PluginContext, lower: string): string | undefined {
  if (lower === 'x-consumer-username') return ctx.consumer?.username;
  const v = ctx.headers[lower];
  return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v;
}

/** The secondary key of a request for a resource that varies on `names`. Header values hold no LF or NUL. */
function variantOf(ctx: PluginContext, names: readonly string[]): string {
  let s = '';
  for (const n of names) {
    const v = headerValue(ctx, n);
    s += v === undefined ? '\n' : `\n=${v}`;
  }
  return s;
}

/** Whether a conditional request matches the stored validators, so a 304 answers it (RFC 9110 13.2.2). */
function isNotModified(ctx: PluginContext, e: CacheEntry): boolean {
  const inm = ctx.headers['if-none-match'];
  if (inm !== undefined) return e.etag !== undefined && etagMatches(inm, e.etag);
  const ims = ctx.headers['if-modified-since'];
  if (ims === undefined || Number.isNaN(e.lastModified)) return false;
  const since = Date.parse(ims);
  return !Number.isNaN(since) && e.lastModified <= since;
}

/** Headers plugins set for this one request (request-id, RateLimit-*): the gateway's context keeps them apart. */
type WithExtra = PluginContext & { responseExtra?: string[] | null };

function setForThisRequest(extra: string[] | null | undefined, lower: string): boolean {
  if (extra == null) return false;
  for (let i = 0; i < extra.length; i += 2) if (extra[i]!.toLowerCase() === lower) return true;
  return false;
}

function check(config: Config): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  if (config.maxObjectSize > config.memorySize) problems.push(['maxObjectSize', 'is larger than memorySize: no such response could be stored']);
  if (config.methods.includes('HEAD') && !config.methods.includes('GET')) problems.push(['methods', 'HEAD requests are answered from stored GET responses: list GET too']);
  config.statuses.forEach((s, i) => {
    if (s === 206) problems.push([`statuses[${i}]`, '206 is a part of a response (a Range request) and cannot be stored as the whole']);
    if (s === 304) problems.push([`statuses[${i}]`, '304 answers a conditional request and has no body to store']);
  });
  const seen = new Set<string>();
  config.keyHeaders.forEach((h, i) => {
    const lower = h.toLowerCase();
    if (seen.has(lower)) problems.push([`keyHeaders[${i}]`, 'is listed twice']);
    seen.add(lower);
  });
  return problems;
}

/** The fields of a purge request, checked. */
interface PurgeRequest {
  scope: string | undefined;
  host: string | undefined;
  path: string | undefined;
  pathPrefix: string | undefined;
  query: string | undefined;
  all: boolean;
}

const PURGE_FIELDS = ['scope', 'method', 'host', 'path', 'pathPrefix', 'query', 'all'];

function optionalString(args: Record<string, unknown>, name: string, max: number): string | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new ControlError(`${name} must be a non-empty string of at most ${max} characters`);
  return v;
}

function purgeRequest(args: Record<string, unknown>): PurgeRequest {
  for (const k of Object.keys(args)) {
    if (!PURGE_FIELDS.includes(k)) throw new ControlError(`unknown field "${k.slice(0, 64)}": a purge takes ${PURGE_FIELDS.join(', ')}`);
  }
  const method = optionalString(args, 'method', 16);
  if (method !== undefined && method.toUpperCase() !== 'GET' && method.toUpperCase() !== 'HEAD') {
    throw new ControlError('method must be GET or HEAD: only GET responses are stored, and HEAD requests are answered from them');
  }
  const path = optionalString(args, 'path', 8192);
  const pathPrefix = optionalString(args, 'pathPrefix', 8192);
  for (const [name, p] of [['path', path], ['pathPrefix', pathPrefix]] as const) {
    if (p !== undefined && p.charCodeAt(0) !== 47) throw new ControlError(`${name} must start with "/"`);
  }
  if (args.all !== undefined && args.all !== true) throw new ControlError('all must be true (or left out)');
  const all = args.all === true;
  const targets = (path !== undefined ? 1 : 0) + (pathPrefix !== undefined ? 1 : 0) + (all ? 1 : 0);
  if (targets !== 1) throw new ControlError('name exactly one of path, pathPrefix or all: true');
  const query = args.query === '' ? '' : optionalString(args, 'query', 8192);
  if (query !== undefined && (query.charCodeAt(0) === 63 || all)) {
    throw new ControlError(all ? 'query cannot be used with all' : 'query is the query string without the leading "?"');
  }
  const host = optionalString(args, 'host', 260);
  return { scope: optionalString(args, 'scope', 300), host: host === undefined ? undefined : hostName(host), path, pathPrefix, query, all };
}

/** POST /plugins/proxy-cache/purge: remove matching entries from this process's stores. */
function purge(args: Record<string, unknown>, env: PluginControlEnv): { removed: number } {
  const p = purgeRequest(args);
  const scopes = env.stateKeys();
  if (p.scope !== undefined && !scopes.includes(p.scope)) throw new ControlError(`no proxy-cache config at scope "${p.scope}" (a scope is route:<id>, service:<id>, consumer:<username> or global)`);
  let removed = 0;
  for (const scope of p.scope === undefined ? scopes : [p.scope]) {
    const cache = env.state<unknown>(scope);
    if (!(cache instanceof MemoryCache)) continue;
    // The query is compared as the key holds it.
    const query = p.query === undefined ? undefined : cache.keyQuery === 'ignore' ? '' : cache.keyQuery === 'sort' ? sortedQuery(p.query) : p.query;
    if (p.all && p.host === undefined) {
      removed += cache.clear();
      continue;
    }
    removed += cache.purge(
      (k) =>
        (p.host === undefined || k.host === p.host) &&
        (query === undefined || k.query === query) &&
        (p.path !== undefined ? k.path === p.path : p.pathPrefix !== undefined ? k.path.startsWith(p.pathPrefix) : true),
    );
  }
  return { removed };
}

export default definePlugin<Config>({
  name: 'proxy-cache',
  version: '1.0.0',
  priority: PRIORITIES['proxy-cache'],
  description: 'Caches upstream responses in memory (bounded in bytes, LRU) and answers repeated requests from there, honouring Cache-Control and Vary; one upstream request for concurrent misses; purge through the status port.',
  schema: Config,
  check,
  control: { purge },
  create(config, env) {
    const methods = new Set<string>(config.methods);
    const statuses = new Set<number>(config.statuses);
    const keyHeaders = config.keyHeaders.map((h) => h.toLowerCase());
    const keyQuery = config.keyQuery;
    const perConsumer = config.perConsumer;
    const stripCookies = config.setCookie === 'strip';
    const clientBypass = config.clientBypass;
    const lockTimeout = config.lockTimeout;
    const maxObject = config.maxObjectSize;
    const ttl = config.ttl;
    // Entries stored under other rules (key, statuses, freshness) must not be served under these: a store made
    // by an earlier load is emptied when they change. Its size and the lock wait apply to it as they are.
    const fingerprint = JSON.stringify([config.ttl, config.maxObjectSize, config.methods, config.statuses, keyHeaders, keyQuery, perConsumer, config.setCookie]);
    const cache = env.state(env.scope, () => new MemoryCache(config.memorySize, fingerprint, keyQuery));
    cache.scope = env.scope;
    if (cache.fingerprint !== fingerprint) {
      cache.clear();
      cache.fingerprint = fingerprint;
      cache.keyQuery = keyQuery;
    }
    cache.resize(config.memorySize);

    /** HOT PATH: the primary key; one string built per request. */
    function keyOf(ctx: PluginContext): string {
      const q = keyQuery === 'keep' ? ctx.query : keyQuery === 'sort' ? sortedQuery(ctx.query) : '';
      let k = `${ctx.routeId}\n${ctx.fwd.proto}\n${hostName(ctx.fwd.host)}\n${ctx.path}\n${q}`;
      for (let i = 0; i < keyHeaders.length; i++) {
        const v = headerValue(ctx, keyHeaders[i]!);
        k += v === undefined ? '\n' : `\n=${v}`;
      }
      if (perConsumer && ctx.consumer !== null) k += `\n@${ctx.consumer.username}`;
      return k;
    }

    function partsOf(ctx: PluginContext): KeyParts {
      const q = keyQuery === 'keep' ? ctx.query : keyQuery === 'sort' ? sortedQuery(ctx.query) : '';
      return { routeId: ctx.routeId, scheme: ctx.fwd.proto, host: hostName(ctx.fwd.host), path: ctx.path, query: q };
    }

    /**
     * Answer from the cache, or let the request go upstream as a fill, or wait for the request that is filling
     * the key. Only a plain GET (`fills`) takes the key's lock: a HEAD, Range or conditional request may get an
     * answer that cannot be stored (no body, 206, 304) and would send its waiters upstream one by one; such
     * requests wait on a lock a GET holds, or go upstream without one. `deadline` is 0 on the first look, the
     * clock ms the wait ends at after one, and -1 once waiting is over (go upstream without the lock).
     */
    function lookup(ctx: PluginContext, key: string, head: boolean, fills: boolean, deadline: number): PhaseResult {
      const now = cacheClock.now();
      const res = cache.resource(key);
      let lockKey = key;
      let status: FillStatus = 'MISS';
      if (res !== undefined) {
        const variant = res.vary.length === 0 ? '' : variantOf(ctx, res.vary);
        if (variant !== '') lockKey = `${key}\0${variant}`;
        const e = res.variants.get(variant);
        if (e !== undefined) {
          if (now < e.expiresAt) {
            cache.touch(e);
            ctx.vars[VAR] = e;
            return e.notModified !== null && isNotModified(ctx, e) ? e.notModified : e.response;
          }
          // Stale: fetched anew. It goes now, so memory is not held by what can no longer be served.
          cache.remove(e);
          status = 'EXPIRED';
        }
      }
      const held = lockTimeout === 0 || deadline < 0 ? undefined : cache.heldLock(lockKey, now, lockTimeout);
      if (held === undefined) {
        // The client left while this request waited: no fill for it.
        if (deadline > 0 && ctx.res.destroyed) return;
        const lock = fills && lockTimeout > 0 && deadline >= 0 ? cache.takeLock(lockKey, now) : null;
        if (status === 'EXPIRED') cache.events.expired++;
        else cache.events.miss++;
        ctx.vars[VAR] = new Fill(cache, status, key, partsOf(ctx), !head, lock, lock === null ? '' : lockKey, cache.generation);
        return;
      }
      const until = deadline === 0 ? now + lockTimeout : deadline;
      if (until - now <= 0) return lookup(ctx, key, head, fills, -1);
      // Stored: look again (a HIT, unless the answer was for another Vary variant). Failed or timed out: go
      // upstream without the lock; a waiter never waits in turn behind an answer that could not be stored.
      return held.wait(until - now).then((outcome) => lookup(ctx, key, head, fills, outcome === 'stored' ? until : -1));
    }

    /** The fill will not be stored: free its key so its waiters go upstream at once. */
    function giveUp(f: Fill): void {
      if (f.state === DONE) return;
      f.state = DONE;
      f.chunks = null;
      if (f.lock !== null) f.cache.unlock(f.lockKey, f.lock, 'failed');
    }

    /** Whether the upstream's answer may be stored (RFC 9111 3); if so, keep what the entry needs. */
    function admit(ctx: PluginContext, head: ResponseHead, f: Fill): boolean {
      // Only the upstream's own answers: not a gateway error (502, 504) nor another plugin's response.
      if (ctx.upstreamLatency < 0 || ctx.errorCode !== null) return false;
      if (!statuses.has(head.status)) return false;
      let cc: string | undefined;
      let vary: string | undefined;
      let expires: string | undefined;
      let date: string | undefined;
      let age: string | undefined;
      let etag: string | undefined;
      let lastModified: string | undefined;
      let cookie = false;
      let length = -1;
      const extra = (ctx as WithExtra).responseExtra;
      // No prototype: a header named __proto__ is a header like any other.
      const kept = Object.create(null) as Record<string, string>;
      let bytes = 0;
      const list = head.headers;
      for (let i = 0; i < list.length; i += 2) {
        const lower = list[i]!.toLowerCase();
        const value = list[i + 1]!;
        switch (lower) {
          case 'cache-control':
            cc = cc === undefined ? value : `${cc}, ${value}`;
            break;
          case 'vary':
            vary = vary === undefined ? value : `${vary}, ${value}`;
            break;
          case 'expires':
            expires ??= value;
            break;
          case 'date':
            date ??= value;
            break;
          case 'etag':
            etag ??= value;
            break;
          case 'last-modified':
            lastModified ??= value;
            break;
          case 'set-cookie':
            cookie = true;
            continue;
          case 'content-length':
            length = Number(value);
            continue;
          // Framing is the gateway's on every answer; Age and the status are worked out per hit.
          case 'transfer-encoding':
          case 'age':
          case STATUS_HEADER_LOWER:
            if (lower === 'age') age = value;
            continue;
          default:
            break;
        }
        // Per-request headers other plugins set (an id, rate limit counts) are not part of the stored answer.
        if (setForThisRequest(extra, lower)) continue;
        const prev = kept[lower];
        // RFC 9110 5.3: field lines of one name combine into one list value (Set-Cookie is never kept).
        kept[lower] = prev === undefined ? value : `${prev}, ${value}`;
        bytes += lower.length + value.length + (prev === undefined ? 0 : 2);
      }
      if (cookie && !stripCookies) return false;
      const d = cc === undefined ? NO_DIRECTIVES : parseCacheControl(cc);
      if (d.noStore || d.private || d.noCache) return false;
      // RFC 9111 3.5: an answer to a request with credentials is shared only when the upstream says so.
      if (ctx.headers.authorization !== undefined && !d.public && d.sMaxAge < 0 && !d.mustRevalidate) return false;
      const names = varyNames(vary);
      if (names === null) return false;
      if (length > maxObject) return false;
      const now = cacheClock.now();
      const initialAge = ageSeconds(age);
      const fresh = freshnessLifetime(d, expires, date, now, ttl) - initialAge;
      if (fresh <= 0) return false;
      let notModified: PluginResponse | null = null;
      const lm = lastModified === undefined ? NaN : Date.parse(lastModified);
      if (etag !== undefined || !Number.isNaN(lm)) {
        const h = Object.create(null) as Record<string, string>;
        for (const name of NOT_MODIFIED_HEADERS) if (kept[name] !== undefined) h[name] = kept[name]!;
        notModified = { status: 304, headers: h };
      }
      f.status = head.status;
      f.headers = kept;
      f.headerBytes = bytes;
      f.vary = names;
      f.notModified = notModified;
      f.etag = etag;
      f.lastModified = lm;
      f.storedAt = now;
      f.initialAge = initialAge;
      f.expiresAt = now + fresh * 1000;
      return true;
    }

    /** The whole body came: store the entry and wake the waiters. */
    function complete(ctx: PluginContext, f: Fill): void {
      f.state = DONE;
      const chunks = f.chunks ?? [];
      f.chunks = null;
      const c = f.cache;
      let stored = false;
      if (f.generation === c.generation && f.headers !== null) {
        // One buffer of its own: a chunk may be a slice of a larger pooled buffer it would keep alive.
        const body = Buffer.allocUnsafeSlow(f.size);
        let at = 0;
        for (const chunk of chunks) at += chunk.copy(body, at);
        const variant = f.vary.length === 0 ? '' : variantOf(ctx, f.vary);
        stored =
          c.insert(f.key, f.parts, f.vary, variant, {
            response: { status: f.status, headers: f.headers, body },
            notModified: f.notModified,
            etag: f.etag,
            lastModified: f.lastModified,
            storedAt: f.storedAt,
            initialAge: f.initialAge,
            expiresAt: f.expiresAt,
            bytes: f.headerBytes + f.size,
          }) !== null;
      }
      if (f.lock !== null) c.unlock(f.lockKey, f.lock, stored ? 'stored' : 'failed');
    }

    return {
      // HOT PATH on routes with the plugin: one key string; a hit returns the stored answer as it is.
      beforeUpstream(ctx) {
        if (!methods.has(ctx.method)) return;
        const h = ctx.headers;
        // WebSocket upgrades run the request phases too: never answer one from the cache.
        if (h.upgrade !== undefined) return;
        const head = ctx.method === 'HEAD';
        const asked = clientBypass ? requestDirectives(h['cache-control'], h.pragma) : 0;
        const key = keyOf(ctx);
        if (asked !== 0) {
          // no-cache: fetched anew and the answer replaces the stored one; no-store: nothing is kept.
          cache.events.bypass++;
          ctx.vars[VAR] = new Fill(cache, 'BYPASS', key, partsOf(ctx), !head && asked !== NO_STORE_REQUEST, null, '', cache.generation);
          return;
        }
        // Range and conditional requests may be answered with a 206 or 304, which is not stored.
        const fills = !head && h.range === undefined && h['if-none-match'] === undefined && h['if-modified-since'] === undefined;
        return lookup(ctx, key, head, fills, 0);
      },

      responseHeaders(ctx, head) {
        const v = ctx.vars[VAR];
        if (v === undefined) return;
        if (v instanceof CacheEntry) {
          cache.events.hit++;
          head.headers.push('Age', String(Math.max(0, Math.floor((cacheClock.now() - v.storedAt) / 1000)) + v.initialAge), STATUS_HEADER, 'HIT');
          return;
        }
        if (!(v instanceof Fill)) return;
        // Called again when the first head could not be written (the gateway then answers with an error).
        if (v.state !== DONE) {
          if (v.store && admit(ctx, head, v)) {
            v.state = COLLECTING;
            v.chunks ??= [];
          } else giveUp(v);
        }
        head.headers.push(STATUS_HEADER, v.cacheStatus);
      },

      responseTap(ctx, chunk, last) {
        const v = ctx.vars[VAR];
        if (!(v instanceof Fill) || v.state !== COLLECTING) return;
        if (last) {
          complete(ctx, v);
          return;
        }
        if (v.size + chunk.length > maxObject) {
          giveUp(v);
          return;
        }
        v.chunks!.push(chunk);
        v.size += chunk.length;
      },

      // The body did not complete (upstream failed, client left) or never came: nothing is stored.
      log(ctx) {
        const v = ctx.vars[VAR];
        if (v instanceof Fill) giveUp(v);
      },
    };
  },
});
