/**
 * @module dataplane/headers
 * Builds the header lists sent upstream and downstream: strips hop-by-hop headers (and every header named in
 * Connection), then adds the X-Forwarded-* set from the real peer. Works on flat [name, value, ...] arrays
 * because node's writeHead and the upstream clients take them without building objects.
 */
import { AddressMatcher, parseRule, type Rule } from '../core/cidr.js';

/** RFC 9110 7.6.1 connection-specific fields plus ones that must never be relayed by a gateway. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/** Request-only fields the gateway consumes or rewrites itself. */
const REQUEST_DROP = new Set([
  ...HOP_BY_HOP,
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-real-ip',
  // Set by the gateway for an authenticated consumer: a client-sent copy must never reach the upstream.
  'x-consumer-username',
]);

/** Name lengths that can be in a set: a name of another length is not lower-cased just to miss the lookup. */
function lengthsOf(names: Set<string>): Uint8Array {
  const lengths = new Uint8Array(64);
  for (const n of names) lengths[n.length] = 1;
  return lengths;
}
const HOP_LENGTHS = lengthsOf(HOP_BY_HOP);
const REQUEST_DROP_LENGTHS = lengthsOf(REQUEST_DROP);

/** Lower-case names listed in Connection header values (extra hop-by-hop fields), or null. */
function connectionTokens(value: string | undefined): Set<string> | null {
  if (!value) return null;
  // The usual values name no extra header.
  if (value.length <= 10 && (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close')) return null;
  let set: Set<string> | null = null;
  for (const raw of value.split(',')) {
    const t = raw.trim().toLowerCase();
    if (t && t !== 'close' && t !== 'keep-alive') (set ??= new Set()).add(t);
  }
  return set;
}

/** Trusted proxy addresses, compiled once per settings (entries were validated with the settings). */
export class TrustedProxies {
  private readonly matcher: AddressMatcher;
  readonly any: boolean;
  constructor(entries: string[]) {
    const rules: Rule[] = [];
    for (const e of entries) {
      const r = parseRule(e);
      // Settings validation refuses bad entries; a bad one here must never widen trust.
      if (typeof r === 'string') throw new Error(`proxy.trustedProxies: "${e}" ${r}`);
      rules.push(r);
    }
    this.matcher = new AddressMatcher(rules);
    this.any = entries.length > 0;
  }
  has(ip: string): boolean {
    if (!this.any || !ip) return false;
    return this.matcher.has(ip) === true;
  }
}

export interface ForwardInfo {
  /** The address of the TCP peer. */
  peer: string;
  /** The client's address (the peer, or from X-Forwarded-For when the peer is trusted). */
  clientIp: string;
  proto: 'http' | 'https';
  host: string;
  port: string;
}

/**
 * Works out who the client is. Client-sent X-Forwarded-* are believed only from trusted proxies; then the
 * client is the right-most X-Forwarded-For address that is not itself a trusted proxy.
 */
export function forwardInfo(
  headers: Record<string, string | string[] | undefined>,
  peer: string,
  localPort: number,
  tls: boolean,
  trusted: TrustedProxies,
  realIpHeader: string,
): ForwardInfo {
  const host = (headers[':authority'] as string | undefined) ?? (headers.host as string | undefined) ?? '';
  const info: ForwardInfo = { peer, clientIp: peer, proto: tls ? 'https' : 'http', host, port: String(localPort) };
  if (!trusted.any || !trusted.has(peer)) return info;
  const fwd = headers[realIpHeader];
  const list = Array.isArray(fwd) ? fwd.join(',') : fwd;
  if (list) {
    const parts = list.split(',');
    for (let i = parts.length - 1; i >= 0; i--) {
      const ip = parts[i]!.trim();
      if (!ip) continue;
      info.clientIp = ip;
      if (!trusted.has(ip)) break;
    }
  }
  const proto = headers['x-forwarded-proto'];
  if (proto === 'http' || proto === 'https') info.proto = proto;
  const fhost = headers['x-forwarded-host'];
  if (typeof fhost === 'string' && fhost) info.host = fhost;
  const fport = headers['x-forwarded-port'];
  if (typeof fport === 'string' && /^\d{1,5}$/.test(fport)) info.port = fport;
  return info;
}

/**
 * HOT PATH: the header list for the upstream request. `raw` is node's rawHeaders ([name, value, ...],
 * original case, HTTP/2 pseudo-headers included). `hostHeader` is what passHost decided.
 */
export function upstreamRequestHeaders(
  raw: string[],
  connection: string | undefined,
  hostHeader: string,
  fwd: ForwardInfo,
  trustedPeer: boolean,
): string[] {
  const extra = connectionTokens(connection);
  const out: string[] = ['host', hostHeader];
  let xff: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (extra === null && (name.length >= 64 || REQUEST_DROP_LENGTHS[name.length] === 0)) {
      out.push(name, raw[i + 1]!);
      continue;
    }
    const lower = name.toLowerCase();
    if (REQUEST_DROP.has(lower)) {
      if (lower === 'x-forwarded-for' && trustedPeer) xff = xff === undefined ? raw[i + 1] : `${xff}, ${raw[i + 1]}`;
      continue;
    }
    if (extra !== null && extra.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  out.push(
    'x-forwarded-for', xff === undefined ? fwd.peer : `${xff}, ${fwd.peer}`,
    'x-forwarded-proto', fwd.proto,
    'x-forwarded-host', fwd.host,
    'x-forwarded-port', fwd.port,
    'x-real-ip', fwd.clientIp,
  );
  return out;
}

/**
 * HOT PATH: the header list for the downstream response from the upstream's ([name, value, ...] as received).
 */
export function downstreamResponseHeaders(raw: string[]): string[] {
  const out: string[] = [];
  let extra: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length >= 64 || HOP_LENGTHS[name.length] === 0) {
      out.push(name, raw[i + 1]!);
      continue;
    }
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') extra = connectionTokens(raw[i + 1]!);
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  if (extra !== null) {
    const kept: string[] = [];
    for (let i = 0; i < out.length; i += 2) if (!extra.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
    return kept;
  }
  return out;
}

/** Flat header list to an object (HTTP/2 responses need one); repeated names become arrays. */
export function headersToObject(flat: string[]): Record<string, string | string[]> {
  const obj: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const k = flat[i]!.toLowerCase();
    const v = flat[i + 1]!;
    const cur = obj[k];
    if (cur === undefined) obj[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else obj[k] = [cur, v];
  }
  return obj;
}
