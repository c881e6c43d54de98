/**
 * @module plugins/jwt-auth/jwks
 * Public keys from a JWKS URL: fetched with undici, cached for a bounded time (the server's max-age, within
 * bounds), refetched on an unknown kid at most once per cooldown, one fetch in flight shared by every request
 * that waits for it, and the last good set kept while the server fails.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { Agent, request } from 'undici';
import { logger } from '../../core/logger.js';
import { publicKeyProblem, publicKeyVerifier, type Algorithm, type Verifier } from './verify.js';

export interface JwksOptions {
  /** How long a fetched set is used before it is refreshed, and the cap on the server's max-age (ms). */
  maxAgeMs: number;
  /** Least time between two fetches (ms): bounds what a flood of unknown kids, or a failing server, costs. */
  cooldownMs: number;
  /** Whole-exchange limit of one fetch (ms). */
  timeoutMs: number;
  /** A larger response is refused (bytes). */
  maxBytes: number;
  /** Keys beyond this many in one set are ignored. */
  maxKeys: number;
  /** Clock in ms; tests move it. */
  now: () => number;
  /** Told why a fetch failed (a short reason, never the response body). */
  onFailure: (reason: string) => void;
}

export const JWKS_DEFAULTS = { maxAgeS: 600, cooldownS: 30, timeoutMs: 5000, maxBytes: 256 * 1024, maxKeys: 100 } as const;

interface JwksKey {
  kid: string | undefined;
  /** The JWK's own alg, when it names one: the key is then used for that algorithm only. */
  alg: string | undefined;
  key: KeyObject;
  /** Verifiers made on first use per algorithm (null: the key cannot verify it). */
  verifiers: Map<Algorithm, Verifier | null>;
}

interface KeySet {
  byKid: Map<string, JwksKey[]>;
  all: JwksKey[];
}

/** A JWKS could not be fetched or was not one; `reason` is safe to log. */
class JwksFetchError extends Error {
  constructor(readonly reason: string) {
    super(`JWKS fetch failed: ${reason}`);
    this.name = 'JwksFetchError';
  }
}

let agent: Agent | undefined;
function jwksAgent(): Agent {
  // Its own agent, so a test or embedder replacing undici's global dispatcher does not redirect key fetches.
  agent ??= new Agent({ connect: { timeout: JWKS_DEFAULTS.timeoutMs } });
  return agent;
}

/** max-age from Cache-Control in ms; 0 for no-store/no-cache; null when it says nothing usable. */
export function cacheControlMaxAge(header: string | string[] | undefined): number | null {
  const value = Array.isArray(header) ? header.join(',') : header;
  if (!value) return null;
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(value)) return 0;
  const m = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,10})"?\s*(?:,|$)/i.exec(value);
  return m ? Number(m[1]) * 1000 : null;
}

function usable(k: JwksKey, alg: Algorithm): Verifier | null {
  let v = k.verifiers.get(alg);
  if (v === undefined) {
    v = (k.alg === undefined || k.alg === alg) && publicKeyProblem(alg, k.key) === null ? publicKeyVerifier(alg, k.key) : null;
    k.verifiers.set(alg, v);
  }
  return v;
}

/** Import the signing keys of a JWKS document; keys this verifier cannot or must not use are skipped. */
export function importKeySet(doc: unknown, maxKeys: number): KeySet | null {
  if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys)) return null;
  const set: KeySet = { byKid: new Map(), all: [] };
  for (const jwk of (doc as { keys: unknown[] }).keys) {
    if (set.all.length >= maxKeys) break;
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) continue;
    const j = jwk as Record<string, unknown>;
    if (j.use !== undefined && j.use !== 'sig') continue;
    if (j.key_ops !== undefined && !(Array.isArray(j.key_ops) && j.key_ops.includes('verify'))) continue;
    // A published set holds public keys only: secret (oct) or private members mean a misconfigured server,
    // and a gateway has no use for either.
    if (j.kty === 'oct' || j.d !== undefined) continue;
    let key: KeyObject;
    try {
      key = createPublicKey({ key: j as never, format: 'jwk' });
    } catch {
      continue;
    }
    const k: JwksKey = { kid: typeof j.kid === 'string' ? j.kid : undefined, alg: typeof j.alg === 'string' ? j.alg : undefined, key, verifiers: new Map() };
    set.all.push(k);
    if (k.kid !== undefined) {
      const same = set.byKid.get(k.kid);
      if (same) same.push(k);
      else set.byKid.set(k.kid, [k]);
    }
  }
  return set;
}

/** A short, safe reason: our own, a system or undici error code, or the error's class (a timeout's). */
function failureReason(e: unknown): string {
  if (e instanceof JwksFetchError) return e.reason;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const name = (e as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'error';
}

/** The keys of one JWKS URL. Shared by every credential and config that names the same URL and options. */
export class JwksSource {
  private readonly opts: JwksOptions;
  private keys: KeySet | null = null;
  private expiresAt = 0;
  private lastAttempt = -Infinity;
  private inflight: Promise<void> | null = null;
  /** Fetches started, successful or not. */
  fetches = 0;

  constructor(
    readonly uri: string,
    opts: Partial<JwksOptions> = {},
  ) {
    this.opts = {
      maxAgeMs: JWKS_DEFAULTS.maxAgeS * 1000,
      cooldownMs: JWKS_DEFAULTS.cooldownS * 1000,
      timeoutMs: JWKS_DEFAULTS.timeoutMs,
      maxBytes: JWKS_DEFAULTS.maxBytes,
      maxKeys: JWKS_DEFAULTS.maxKeys,
      now: Date.now,
      onFailure: () => {},
      ...opts,
    };
  }

  /**
   * The verifier for a token's kid and the credential's algorithm, or null. A known key answers at once
   * (an expired set is refreshed beside the request); an unknown one waits for at most one fetch, which
   * concurrent requests share, and only when the cooldown since the last fetch has passed. Never rejects.
   */
  async verifier(kid: string | undefined, alg: Algorithm): Promise<Verifier | null> {
    const now = this.opts.now();
    const hit = this.pick(kid, alg);
    if (hit !== null) {
      if (now >= this.expiresAt) void this.refresh(now);
      return hit;
    }
    if (this.inflight === null && now - this.lastAttempt < this.opts.cooldownMs) return null;
    await this.refresh(now);
    return this.pick(kid, alg);
  }

  private pick(kid: string | undefined, alg: Algorithm): Verifier | null {
    const set = this.keys;
    if (set === null) return null;
    if (kid !== undefined) {
      for (const k of set.byKid.get(kid) ?? []) {
        const v = usable(k, alg);
        if (v !== null) return v;
      }
      return null;
    }
    // No kid: only an unambiguous set will do (exactly one key fits the algorithm).
    let found: Verifier | null = null;
    for (const k of set.all) {
      const v = usable(k, alg);
      if (v === null) continue;
      if (found !== null) return null;
      found = v;
    }
    return found;
  }

  /** Start a fetch unless one is in flight or the cooldown forbids it; resolves when it has settled. */
  private refresh(now: number): Promise<void> {
    if (this.inflight !== null) return this.inflight;
    if (now - this.lastAttempt < this.opts.cooldownMs) return Promise.resolve();
    this.lastAttempt = now;
    this.fetches++;
    this.inflight = this.fetchSet()
      .then(({ set, maxAgeMs }) => {
        this.keys = set;
        const ttl = Math.min(Math.max(maxAgeMs ?? this.opts.maxAgeMs, this.opts.cooldownMs), this.opts.maxAgeMs);
        this.expiresAt = this.opts.now() + ttl;
      })
      .catch((e: unknown) => {
        // Keep the last good set: a JWKS outage must not lock out tokens signed with keys already known.
        this.opts.onFailure(failureReason(e));
      })
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  private async fetchSet(): Promise<{ set: KeySet; maxAgeMs: number | null }> {
    const { timeoutMs, maxBytes } = this.opts;
    const res = await request(this.uri, {
      method: 'GET',
      headers: { accept: 'application/jwk-set+json, application/json' },
      dispatcher: jwksAgent(),
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      reset: true,
    });
    // Destroying an unread body emits an abort error; it is expected here and must not become uncaught.
    res.body.on('error', () => {});
    try {
      if (res.statusCode !== 200) throw new JwksFetchError(`status ${res.statusCode}`);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) throw new JwksFetchError('response too large');
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > maxBytes) throw new JwksFetchError('response too large');
        chunks.push(chunk as Buffer);
      }
      let doc: unknown;
      try {
        doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        throw new JwksFetchError('not JSON');
      }
      const set = importKeySet(doc, this.opts.maxKeys);
      if (set === null) throw new JwksFetchError('not a JWK set');
      return { set, maxAgeMs: cacheControlMaxAge(res.headers['cache-control']) };
    } finally {
      // Drop whatever is left unread; the connection is not reused.
      if (!res.body.destroyed) res.body.destroy();
    }
  }
}

const MAX_SHARED = 256;
const shared = new Map<string, JwksSource>();

/** Where a JWKS lives, for logs: the origin only (a URL's path or query may carry a token). */
function origin(uri: string): string {
  try {
    return new URL(uri).origin;
  } catch {
    return '(invalid url)';
  }
}

/**
 * The process-wide source for a URL and cache settings. Shared so that every consumer naming one identity
 * provider, and every config reload, uses one cache and one rate limit; the least recently used are dropped
 * beyond a bound (a config that still holds one keeps using it).
 */
export function sharedJwksSource(uri: string, maxAgeS: number, cooldownS: number): JwksSource {
  const id = `${uri}\0${maxAgeS}\0${cooldownS}`;
  let source = shared.get(id);
  if (source) {
    shared.delete(id);
  } else {
    const where = origin(uri);
    source = new JwksSource(uri, {
      maxAgeMs: maxAgeS * 1000,
      cooldownMs: cooldownS * 1000,
      onFailure: (reason) => logger().warn({ plugin: 'jwt-auth', jwks: where, reason }, 'JWKS fetch failed; keeping the last good keys'),
    });
  }
  shared.set(id, source);
  if (shared.size > MAX_SHARED) shared.delete(shared.keys().next().value!);
  return source;
}
