/**
 * @module discovery/consul/client
 * HTTP to one Consul cluster: a keep-alive undici Pool of its own, the ACL token in X-Consul-Token, TLS from
 * the settings' PEM files, and reads with Consul's blocking-query parameters (index, wait) under a deadline
 * of wait + wait/16 (Consul's own jitter) + the cluster's timeout. Every failure is a ConsulError naming the
 * cluster, its address and the path; never the token.
 */
import { readFileSync } from 'node:fs';
import { Pool, type Dispatcher } from 'undici';

/** One cluster as the settings give it (discovery.consul[]); defaults filled in when absent. */
export interface ConsulClusterConfig {
  name: string;
  /** http(s)://host:port of the Consul HTTP API. */
  address: string;
  /** ACL token; empty or absent for none. */
  token?: string;
  /** The datacenter to ask about (the `dc` parameter); absent: the agent's own. */
  datacenter?: string;
  /** PEM files (paths) for https addresses. */
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
  /** Milliseconds a blocking query waits for a change (default 30000). */
  wait?: number;
  /** Milliseconds a request may take beyond its blocking wait (default 5000). */
  timeout?: number;
  /** consul-kv: the KV folder holding one folder per service (default "upstreams"). */
  kvPrefix?: string;
}

export const DEFAULT_WAIT_MS = 30_000;
export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_KV_PREFIX = 'upstreams';
/** Consul limits a blocking query to 10 minutes. */
const MAX_WAIT_MS = 10 * 60_000;
/** A bound on one answer, so a runaway answer cannot grow a buffer without end. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/** How much of an error answer's body is kept for the message. */
const MAX_ERROR_CHARS = 300;

export type ConsulErrorKind = 'unavailable' | 'timeout' | 'acl' | 'status' | 'protocol';

export class ConsulError extends Error {
  readonly kind: ConsulErrorKind;
  /** The HTTP status, when Consul answered with an error status. */
  readonly status?: number;

  constructor(kind: ConsulErrorKind, message: string, extra?: { status?: number; cause?: unknown }) {
    super(message, extra?.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'ConsulError';
    this.kind = kind;
    if (extra?.status !== undefined) this.status = extra.status;
  }
}

/** One answer of a read: 200, or 404 (which KV reads take as "nothing under the key"). */
export interface ConsulAnswer {
  status: 200 | 404;
  /** X-Consul-Index. */
  index: number;
  body: string;
  /** X-Consul-Results-Filtered-By-ACLs: true: the token may not read everything there is. */
  filteredByAcls: boolean;
  /** X-Consul-Default-ACL-Policy (allow or deny), when Consul sends it (1.9 and later). */
  defaultAclPolicy: string | null;
}

export interface ReadOptions {
  /** The index of the last answer: 0 for a read that returns at once, more to block until it changes. */
  index: number;
  /** Milliseconds to block at most (sent as the wait parameter when index > 0). */
  waitMs: number;
  /** Aborts the read (the watch was closed). */
  signal: AbortSignal;
}

function pemFile(cluster: string, what: string, file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`discovery.consul "${cluster}": tls.${what}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** The body as text, at most `max` bytes (more: a protocol error, or cut short when `truncate`). */
async function readBody(body: Dispatcher.ResponseData['body'], max: number, truncate: boolean): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const c = chunk as Buffer;
    size += c.length;
    if (size > max) {
      body.destroy();
      if (truncate) {
        chunks.push(c.subarray(0, Math.max(0, c.length - (size - max))));
        break;
      }
      throw new ConsulError('protocol', `the answer is larger than ${max} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class ConsulClient {
  readonly name: string;
  /** Scheme, host and port only: safe for messages. */
  readonly origin: string;
  readonly datacenter: string | undefined;
  readonly waitMs: number;
  readonly timeoutMs: number;
  readonly kvPrefix: string;
  readonly hasToken: boolean;
  readonly #token: string | undefined;
  readonly #pool: Pool;

  /** Throws an Error naming the setting when the cluster's address or TLS files are unusable. */
  constructor(cfg: ConsulClusterConfig) {
    this.name = cfg.name;
    let url: URL;
    try {
      url = new URL(cfg.address);
    } catch {
      throw new Error(`discovery.consul "${cfg.name}": address ${JSON.stringify(cfg.address)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`discovery.consul "${cfg.name}": address ${url.origin} must be http: or https:`);
    if (url.pathname !== '/' || url.search || url.hash) throw new Error(`discovery.consul "${cfg.name}": address must be scheme, host and port only (no path or query)`);
    this.origin = url.origin;
    this.datacenter = cfg.datacenter || undefined;
    this.waitMs = Math.min(Math.max(cfg.wait ?? DEFAULT_WAIT_MS, 1), MAX_WAIT_MS);
    this.timeoutMs = Math.max(cfg.timeout ?? DEFAULT_TIMEOUT_MS, 1);
    this.kvPrefix = cfg.kvPrefix ?? DEFAULT_KV_PREFIX;
    this.#token = cfg.token || undefined;
    this.hasToken = this.#token !== undefined;
    const tls =
      url.protocol === 'https:'
        ? {
            ca: pemFile(cfg.name, 'ca', cfg.tls?.ca),
            cert: pemFile(cfg.name, 'cert', cfg.tls?.cert),
            key: pemFile(cfg.name, 'key', cfg.tls?.key),
            rejectUnauthorized: cfg.tls?.rejectUnauthorized ?? true,
          }
        : undefined;
    // undici's own header and body timeouts are off: each read has its own deadline, which for a blocking
    // query is the whole wait.
    this.#pool = new Pool(url.origin, { connect: tls, keepAliveTimeout: 10_000, headersTimeout: 0, bodyTimeout: 0 });
  }

  /**
   * GET path with these parameters (plus dc, and index and wait when blocking). Resolves with a 200 or 404
   * answer and its index; rejects with a ConsulError for anything else.
   */
  async read(path: string, params: ReadonlyArray<readonly [string, string]>, opts: ReadOptions): Promise<ConsulAnswer> {
    const q = new URLSearchParams();
    for (const [k, v] of params) q.append(k, v);
    if (this.datacenter) q.append('dc', this.datacenter);
    const blocking = opts.index > 0;
    if (blocking) {
      q.append('index', String(opts.index));
      q.append('wait', `${Math.max(1, Math.round(opts.waitMs))}ms`);
    }
    const limit = blocking ? opts.waitMs + Math.ceil(opts.waitMs / 16) + this.timeoutMs : this.timeoutMs;
    const what = `consul cluster "${this.name}" (${this.origin}): GET ${path}`;
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, limit);
    const onAbort = () => ac.abort();
    if (opts.signal.aborted) ac.abort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token !== undefined) headers['x-consul-token'] = this.#token;
    try {
      const res = await this.#pool.request({ method: 'GET', path: `${path}?${q.toString()}`, headers, signal: ac.signal });
      const status = res.statusCode;
      if (status !== 200 && status !== 404) {
        const text = (await readBody(res.body, 64 * 1024, true)).replace(/\s+/g, ' ').trim().slice(0, MAX_ERROR_CHARS);
        const kind: ConsulErrorKind = status === 403 ? 'acl' : 'status';
        throw new ConsulError(kind, `${what}: HTTP ${status}${text ? `: ${text}` : ''}`, { status });
      }
      const body = await readBody(res.body, MAX_ANSWER_BYTES, false);
      const rawIndex = headerValue(res.headers['x-consul-index']);
      if (rawIndex === undefined || !/^\d+$/.test(rawIndex.trim())) {
        throw new ConsulError('protocol', `${what}: the answer has ${rawIndex === undefined ? 'no' : 'an invalid'} X-Consul-Index header`);
      }
      return {
        status,
        index: Number(rawIndex.trim()),
        body,
        filteredByAcls: headerValue(res.headers['x-consul-results-filtered-by-acls'])?.trim().toLowerCase() === 'true',
        defaultAclPolicy: headerValue(res.headers['x-consul-default-acl-policy'])?.trim().toLowerCase() ?? null,
      };
    } catch (e) {
      if (e instanceof ConsulError) {
        if (e.message.startsWith(what)) throw e;
        throw new ConsulError(e.kind, `${what}: ${e.message}`, { cause: e.cause });
      }
      if (timedOut) throw new ConsulError('timeout', `${what}: no answer within ${limit} ms`, { cause: e });
      if (opts.signal.aborted) throw new ConsulError('unavailable', `${what}: the watch was closed`, { cause: e });
      const err = e as NodeJS.ErrnoException;
      throw new ConsulError('unavailable', `${what}: ${err.message || err.code || String(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
      opts.signal.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    await this.#pool.destroy().catch(() => {});
  }
}
