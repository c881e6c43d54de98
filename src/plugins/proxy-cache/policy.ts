/**
 * @module plugins/proxy-cache/policy
 * The HTTP caching rules proxy-cache applies (RFC 9111 for a shared cache): Cache-Control directives of
 * responses and requests, freshness lifetime, Vary, and the validators of conditional requests (RFC 9110 13).
 */

/** The response Cache-Control directives a shared cache acts on (RFC 9111 5.2.2). */
export interface ResponseDirectives {
  noStore: boolean;
  /** private, qualified or not: a shared cache does not store the response. */
  private: boolean;
  /** no-cache, qualified or not: it may be used only after revalidation, which this cache does not do. */
  noCache: boolean;
  public: boolean;
  mustRevalidate: boolean;
  /** Seconds; -1 when absent. An invalid value counts as 0 (stale at once, RFC 9111 1.2.2). */
  maxAge: number;
  sMaxAge: number;
}

const MAX_DELTA = 2 ** 31;

function deltaSeconds(arg: string | null): number {
  if (arg === null || !/^\d+$/.test(arg)) return 0;
  const n = Number(arg);
  return n > MAX_DELTA ? MAX_DELTA : n;
}

/** Parse a Cache-Control value (all its field lines joined with commas). The first of duplicate directives wins. */
export function parseCacheControl(v: string): ResponseDirectives {
  const d: ResponseDirectives = { noStore: false, private: false, noCache: false, public: false, mustRevalidate: false, maxAge: -1, sMaxAge: -1 };
  const n = v.length;
  let i = 0;
  while (i < n) {
    while (i < n && (v[i] === ' ' || v[i] === '\t' || v[i] === ',')) i++;
    if (i >= n) break;
    let start = i;
    while (i < n && v[i] !== '=' && v[i] !== ',') i++;
    const name = v.slice(start, i).trim().toLowerCase();
    let arg: string | null = null;
    if (i < n && v[i] === '=') {
      i++;
      while (i < n && (v[i] === ' ' || v[i] === '\t')) i++;
      if (v[i] === '"') {
        // A quoted-string may hold commas (private="set-cookie, x-a").
        start = ++i;
        while (i < n && v[i] !== '"') i += v[i] === '\\' ? 2 : 1;
        arg = v.slice(start, Math.min(i, n));
        i++;
      } else {
        start = i;
        while (i < n && v[i] !== ',') i++;
        arg = v.slice(start, i).trim();
      }
    }
    switch (name) {
      case 'no-store':
        d.noStore = true;
        break;
      case 'private':
        d.private = true;
        break;
      case 'no-cache':
        d.noCache = true;
        break;
      case 'public':
        d.public = true;
        break;
      case 'must-revalidate':
      case 'proxy-revalidate':
        d.mustRevalidate = true;
        break;
      case 'max-age':
        if (d.maxAge < 0) d.maxAge = deltaSeconds(arg);
        break;
      case 's-maxage':
        if (d.sMaxAge < 0) d.sMaxAge = deltaSeconds(arg);
        break;
      default:
        break;
    }
  }
  return d;
}

/**
 * Freshness lifetime in seconds (RFC 9111 4.2.1): s-maxage, else max-age, else Expires minus Date (an
 * Expires that is not a date means already expired), else the configured default.
 */
export function freshnessLifetime(d: ResponseDirectives, expires: string | undefined, date: string | undefined, now: number, fallback: number): number {
  if (d.sMaxAge >= 0) return d.sMaxAge;
  if (d.maxAge >= 0) return d.maxAge;
  if (expires !== undefined) {
    const exp = Date.parse(expires);
    if (Number.isNaN(exp)) return 0;
    const sent = date === undefined ? NaN : Date.parse(date);
    return Math.max(0, Math.floor((exp - (Number.isNaN(sent) ? now : sent)) / 1000));
  }
  return fallback;
}

/** The Age header's seconds, or 0 when absent or invalid. */
export function ageSeconds(v: string | undefined): number {
  if (v === undefined) return 0;
  const t = v.trim();
  return /^\d+$/.test(t) ? Math.min(Number(t), MAX_DELTA) : 0;
}

/**
 * The request header names a Vary value lists: lower-case, sorted, without duplicates; null for `Vary: *`
 * (the response varies on something outside the request headers: not storable).
 */
export function varyNames(v: string | undefined): string[] | null {
  if (v === undefined) return [];
  const names = new Set<string>();
  for (const part of v.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '*') return null;
    if (name !== '') names.add(name);
  }
  return [...names].sort();
}

/** Request Cache-Control / Pragma directives that ask to skip a cache. */
const NO_CACHE = /(?:^|[\s,])no-cache(?:$|[\s,=])/i;
const NO_STORE = /(?:^|[\s,])no-store(?:$|[\s,=])/i;

/** What a request's own caching headers ask: 0 nothing, NO_CACHE_REQUEST fetch anew, NO_STORE_REQUEST fetch and do not keep. */
export const NO_CACHE_REQUEST = 1;
export const NO_STORE_REQUEST = 2;

/** HOT PATH: reads only headers the request has; no allocation for the usual request without them. */
export function requestDirectives(cacheControl: string | undefined, pragma: string | undefined): number {
  let r = 0;
  if (cacheControl !== undefined) {
    if (NO_STORE.test(cacheControl)) r = NO_STORE_REQUEST;
    else if (NO_CACHE.test(cacheControl)) r = NO_CACHE_REQUEST;
  }
  // RFC 9111 5.4: Pragma counts only when the request has no Cache-Control.
  if (r === 0 && cacheControl === undefined && pragma !== undefined && NO_CACHE.test(pragma)) r = NO_CACHE_REQUEST;
  return r;
}

/** Weak comparison of entity tags (RFC 9110 8.8.3.2): the opaque parts, W/ ignored. */
function opaque(tag: string): string {
  const t = tag.trim();
  return t.startsWith('W/') ? t.slice(2) : t;
}

/** Whether an If-None-Match value matches a stored ETag (RFC 9110 13.1.2). */
export function etagMatches(ifNoneMatch: string, etag: string): boolean {
  if (ifNoneMatch.trim() === '*') return true;
  const want = opaque(etag);
  for (const part of ifNoneMatch.split(',')) if (opaque(part) === want) return true;
  return false;
}
