/**
 * @module etcd/client
 * A small etcd v3 client over the JSON gateway that etcd serves on its client port (grpc-gateway: POST /v3/...,
 * keys and values in base64, int64 numbers as strings), which is all cluster mode needs: reads, writes,
 * one-revision batches, leases, prefix watches and a health read. It speaks HTTP through undici, tries the
 * endpoints in turn, authenticates with a user and password when given, and maps every failure to an
 * EtcdError with one of a few stable codes.
 */
import { Pool } from 'undici';

export interface EtcdOptions {
  /** Client URLs, e.g. ["http://127.0.0.1:2379"]; tried in turn when one fails (connection error or 5xx). */
  endpoints: string[];
  username?: string;
  password?: string;
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean }; // PEM strings
  /** Milliseconds for one unary request (default 2000). */
  timeout?: number;
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** The lease the key is attached to, as etcd's decimal int64 ("0": none). */
  lease: string;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

export type EtcdErrorCode = 'unavailable' | 'compacted' | 'auth' | 'timeout' | 'protocol';

export class EtcdError extends Error {
  code: EtcdErrorCode;
  /** for 'compacted': the compact revision */
  compactRevision?: number;

  constructor(code: EtcdErrorCode, message: string, extra?: { compactRevision?: number; cause?: unknown }) {
    super(message, extra?.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'EtcdError';
    this.code = code;
    if (extra?.compactRevision !== undefined) this.compactRevision = extra.compactRevision;
  }
}

const DEFAULT_TIMEOUT_MS = 2000;
/**
 * A watch that has heard nothing for this many unary timeouts checks that its member still answers; a dead
 * connection (a crashed host, a partition: no FIN ever arrives) would otherwise look like a quiet prefix.
 */
const WATCH_PROBE_TIMEOUTS = 5;
/**
 * Progress notifications are requested, and etcd sends one to an idle watch every 10 minutes by default: a
 * watch silent for longer is on a connection that no longer delivers, even if new connections still work.
 */
const WATCH_MAX_SILENCE_MS = 15 * 60_000;
/** A bound on one streamed JSON message, so a broken stream cannot grow a buffer without end. */
const MAX_MESSAGE_CHARS = 256 * 1024 * 1024;

// etcd's answers when the token it was given no longer stands: unknown or expired (simple tokens live in
// the member's memory, for --auth-token-ttl), issued before a change to users or roles, or absent because
// auth was enabled after this client found it disabled. One new authentication is worth a try.
const STALE_TOKEN = /invalid auth token|revision of auth store is old|user name is empty/;
const AUTH_FAILURE = /etcdserver: (permission denied|invalid auth token|revision of auth store is old|user name is empty|user name not found|authentication failed|invalid auth management)/;

/** The JSON grpc-gateway answers with; int64 fields arrive as decimal strings, zero values are left out. */
interface RawHeader {
  revision?: string;
}
interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}
interface RawResponse {
  header?: RawHeader;
  [field: string]: unknown;
}

interface Endpoint {
  /** Scheme, host and port only: never user info, so it can go in messages. */
  origin: string;
  pool: Pool;
}

/** What a watch needs from its client, without widening the client's public surface. */
interface WatchHost {
  readonly timeout: number;
  authToken(deadline: number): Promise<string>;
  dropToken(used: string): boolean;
  endpointOrder(): Endpoint[];
  answered(ep: Endpoint): void;
  forget(w: Watch): void;
  /** A bounded Status call to this one member, without auth: does it still answer? */
  probe(ep: Endpoint): Promise<unknown>;
}

interface CallOptions {
  /** Send the auth token (default true). */
  auth?: boolean;
  /** Only this endpoint (the watch's member check), no failover. */
  only?: Endpoint;
  /** The endpoint is a gRPC stream (LeaseKeepAlive): its body is a sequence of {"result": ...} objects. */
  stream?: boolean;
}

export class EtcdClient {
  private readonly endpoints: Endpoint[];
  private readonly timeout: number;
  private readonly username: string | undefined;
  private readonly password: string;
  /** The endpoint tried first: the last one that answered. */
  private current = 0;
  /** undefined: not authenticated yet; '': etcd has auth disabled, send nothing. */
  private token: string | undefined;
  private authenticating: Promise<string> | null = null;
  private readonly watches = new Set<Watch>();
  private closed = false;
  private readonly host: WatchHost;

  constructor(opts: EtcdOptions) {
    if (!opts.endpoints?.length) throw new TypeError('EtcdClient: at least one endpoint is required');
    this.timeout = opts.timeout ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeout > 0)) throw new TypeError('EtcdClient: timeout must be a positive number of milliseconds');
    this.username = opts.username || undefined;
    this.password = opts.password ?? '';
    this.endpoints = opts.endpoints.map((raw) => {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new TypeError(`EtcdClient: endpoint ${JSON.stringify(raw)} is not a URL`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`EtcdClient: endpoint ${url.origin} must be http: or https:`);
      const tls = url.protocol === 'https:' && opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, rejectUnauthorized: opts.tls.rejectUnauthorized ?? true } : undefined;
      // undici's own header and body timeouts are off: every request carries its own deadline (an abort), and
      // a watch's body may rightly stay quiet for as long as its prefix does.
      return { origin: url.origin, pool: new Pool(url.origin, { connect: tls, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 }) };
    });
    this.host = {
      timeout: this.timeout,
      authToken: (deadline) => this.authToken(deadline),
      dropToken: (used) => this.dropToken(used),
      endpointOrder: () => this.endpointOrder(),
      answered: (ep) => this.answered(ep),
      forget: (w) => this.watches.delete(w),
      probe: (ep) => this.call('/v3/maintenance/status', {}, { auth: false, only: ep }),
    };
  }

  /** One key, or every key with the prefix; `revision` reads at that revision. Returns the store revision of the read. */
  async range(key: string, opts: { prefix?: boolean; revision?: number; keysOnly?: boolean } = {}): Promise<{ kvs: KeyValue[]; revision: number }> {
    const body: Record<string, unknown> = opts.prefix ? prefixRange(key) : { key: b64(key) };
    if (opts.revision !== undefined && opts.revision > 0) body.revision = opts.revision;
    if (opts.keysOnly) body.keys_only = true;
    const r = await this.call('/v3/kv/range', body);
    const kvs = Array.isArray(r.kvs) ? (r.kvs as RawKv[]).map(toKeyValue) : [];
    return { kvs, revision: revisionOf(r) };
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<{ revision: number }> {
    const r = await this.call('/v3/kv/put', putRequest(key, value, opts.lease));
    return { revision: revisionOf(r) };
  }

  async delete(key: string, opts: { prefix?: boolean } = {}): Promise<{ revision: number; deleted: number }> {
    const r = await this.call('/v3/kv/deleterange', opts.prefix ? prefixRange(key) : { key: b64(key) });
    return { revision: revisionOf(r), deleted: int(r.deleted) };
  }

  /** Puts and deletes in one transaction (all at one revision). */
  async batch(puts: Array<{ key: string; value: string; lease?: string }>, deletes: string[]): Promise<{ revision: number }> {
    const success = [
      ...puts.map((p) => ({ request_put: putRequest(p.key, p.value, p.lease) })),
      ...deletes.map((key) => ({ request_delete_range: { key: b64(key) } })),
    ];
    const r = await this.call('/v3/kv/txn', { success });
    return { revision: revisionOf(r) };
  }

  async grantLease(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const r = await this.call('/v3/lease/grant', { TTL: ttlSeconds });
    if (typeof r.error === 'string' && r.error) throw new EtcdError('protocol', `etcd refused the lease: ${r.error}`);
    if (typeof r.ID !== 'string') throw new EtcdError('protocol', 'etcd granted a lease without an ID');
    return { id: r.ID, ttl: int(r.TTL) };
  }

  /** One keep-alive; resolves with the remaining TTL (0: the lease is gone). */
  async keepAlive(id: string): Promise<number> {
    // LeaseKeepAlive is a bidirectional stream; through the gateway one request object gets one answer,
    // then the stream ends with the request body. An unknown or expired lease answers without a TTL.
    const r = await this.call('/v3/lease/keepalive', { ID: id }, { stream: true });
    return Math.max(0, int(r.TTL));
  }

  async revokeLease(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id });
    } catch (e) {
      // Already expired or revoked: what the caller wanted is true.
      if (e instanceof EtcdError && e.code === 'protocol' && /lease not found/.test(e.message)) return;
      throw e;
    }
  }

  /**
   * Watch every key with the prefix from `fromRevision` (inclusive). `onEvents` gets each batch of events with
   * the revision of the response (a transaction's events arrive together). `onError` is called once when the
   * watch ends for good: EtcdError 'compacted' (with compactRevision) when fromRevision was compacted, or
   * 'unavailable' when the connection broke (the caller resyncs and watches again). Progress notifications
   * may be requested so an idle watch notices a dead connection; cancel() ends it without calling onError.
   */
  watch(prefix: string, fromRevision: number, onEvents: (events: WatchEvent[], revision: number) => void, onError: (err: EtcdError) => void): { cancel(): void } {
    const w = new Watch(this.host, prefix, fromRevision, onEvents, onError);
    this.watches.add(w);
    if (this.closed) queueMicrotask(() => w.fail(new EtcdError('unavailable', 'the etcd client is closed')));
    else void w.run();
    return { cancel: () => w.cancel() };
  }

  /** The cluster's health for readiness: resolves with the current revision, or rejects with EtcdError. */
  async status(): Promise<{ revision: number }> {
    const r = await this.call('/v3/maintenance/status', {});
    // A member cut off from its quorum still answers Status, but serves nothing new: not healthy.
    if (typeof r.leader !== 'string' || r.leader === '0') throw new EtcdError('unavailable', 'the etcd member has no leader');
    return { revision: revisionOf(r) };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.watches]) w.cancel();
    await Promise.all(this.endpoints.map((e) => e.pool.close().catch(() => {})));
  }

  // -------------------------------------------------------------------------------------------------------

  /** The token to send ('' for none); authenticates first when needed. */
  private async authToken(deadline: number): Promise<string> {
    if (this.username === undefined) return '';
    if (this.token !== undefined) return this.token;
    this.authenticating ??= this.authenticate(deadline).finally(() => {
      this.authenticating = null;
    });
    return this.authenticating;
  }

  /** etcd refused `used`: authenticate again at the next call (unless another call already has). */
  private dropToken(used: string): boolean {
    if (this.username === undefined) return false;
    if (this.token === used) this.token = undefined;
    return true;
  }

  /** Endpoints in the order to try them: the last one that answered first. */
  private endpointOrder(): Endpoint[] {
    const n = this.endpoints.length;
    const out: Endpoint[] = [];
    for (let i = 0; i < n; i++) out.push(this.endpoints[(this.current + i) % n]!);
    return out;
  }

  private answered(ep: Endpoint): void {
    this.current = this.endpoints.indexOf(ep);
  }

  private async authenticate(deadline: number): Promise<string> {
    try {
      const r = await this.send('/v3/auth/authenticate', { name: this.username, password: this.password }, '', deadline, {});
      if (typeof r.token !== 'string' || !r.token) throw new EtcdError('protocol', 'etcd answered the authentication without a token');
      this.token = r.token;
    } catch (e) {
      if (!(e instanceof EtcdError)) throw e;
      // Credentials configured for a cluster that does not check them (yet): send none, and authenticate
      // when etcd starts asking ("user name is empty" is a stale-token answer).
      if (/authentication is not enabled/.test(e.message)) this.token = '';
      else if (e.code === 'auth' || e.code === 'protocol') throw new EtcdError('auth', `etcd authentication as ${JSON.stringify(this.username)} failed: ${e.message}`);
      else throw e;
    }
    return this.token;
  }

  /** One unary call within the timeout, over the endpoints in turn, authenticating again once if etcd refuses the token. */
  private async call(path: string, body: unknown, opts: CallOptions = {}): Promise<RawResponse> {
    const deadline = Date.now() + this.timeout;
    let retried = false;
    for (;;) {
      const token = opts.auth === false ? '' : await this.authToken(deadline);
      try {
        return await this.send(path, body, token, deadline, opts);
      } catch (e) {
        if (!retried && e instanceof EtcdError && e.code === 'auth' && STALE_TOKEN.test(e.message) && this.dropToken(token)) {
          retried = true;
          continue;
        }
        throw e;
      }
    }
  }

  private async send(path: string, body: unknown, token: string, deadline: number, opts: CallOptions): Promise<RawResponse> {
    if (this.closed) throw new EtcdError('unavailable', 'the etcd client is closed');
    const payload = JSON.stringify(body);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = token;
    const order = opts.only ? [opts.only] : this.endpointOrder();
    const failures: string[] = [];
    for (const ep of order) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw this.timedOut(path, ep, !opts.only);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), remaining);
      let status: number;
      let text: string;
      try {
        const res = await ep.pool.request({ method: 'POST', path, headers, body: payload, signal: ac.signal });
        status = res.statusCode;
        text = await res.body.text();
      } catch (e) {
        if (ac.signal.aborted) throw this.timedOut(path, ep, !opts.only);
        // Refused, reset, unreachable: this member is no use now, the next one may be.
        failures.push(`${ep.origin}: ${connectionErrorText(e)}`);
        continue;
      } finally {
        clearTimeout(timer);
      }
      let parsed: unknown;
      try {
        parsed = opts.stream ? firstStreamed(text) : text ? JSON.parse(text) : {};
      } catch {
        parsed = undefined;
      }
      if (status >= 500) {
        failures.push(`${ep.origin}: ${etcdMessage(parsed) ?? `HTTP ${status}`}`);
        continue;
      }
      if (!opts.only) this.answered(ep);
      if (status !== 200) throw errorFromAnswer(status, parsed, path);
      if (parsed === undefined || parsed === null || typeof parsed !== 'object') throw new EtcdError('protocol', `etcd answered ${path} with something that is not JSON`);
      if (opts.stream) {
        const msg = parsed as { result?: RawResponse; error?: unknown };
        if (msg.error !== undefined) throw streamError(msg.error, path);
        if (!msg.result || typeof msg.result !== 'object') throw new EtcdError('protocol', `etcd answered ${path} without a result`);
        return msg.result;
      }
      return parsed as RawResponse;
    }
    throw new EtcdError('unavailable', `no etcd endpoint answered ${path} (${failures.join('; ')})`);
  }

  private timedOut(path: string, ep: Endpoint, moveOn: boolean): EtcdError {
    // The request may have been applied, so it is not sent again elsewhere; the next call starts with the
    // next endpoint, so a member that hangs is left behind.
    if (moveOn && this.endpoints[this.current] === ep) this.current = (this.current + 1) % this.endpoints.length;
    return new EtcdError('timeout', `etcd did not answer ${path} within ${this.timeout} ms (${ep.origin})`);
  }
}

/** One watch stream: POST /v3/watch, a create request, then a stream of {"result": WatchResponse} objects. */
class Watch {
  private done = false;
  private ac: AbortController | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  private lastHeard = Date.now();
  /** The next revision to watch from if the stream is opened again (after a new authentication). */
  private next: number;
  private reauthenticated = false;
  /** Which opening of the stream is current: a stream given up for a new one must not end the watch. */
  private generation = 0;

  constructor(
    private readonly host: WatchHost,
    private readonly prefix: string,
    fromRevision: number,
    private readonly onEvents: (events: WatchEvent[], revision: number) => void,
    private readonly onError: (err: EtcdError) => void,
  ) {
    this.next = fromRevision;
  }

  cancel(): void {
    this.finish();
  }

  fail(err: EtcdError): void {
    if (this.done) return;
    this.finish();
    this.onError(err);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.host.forget(this);
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
    this.ac?.abort();
    this.ac = null;
  }

  async run(): Promise<void> {
    const generation = ++this.generation;
    const stale = () => this.done || generation !== this.generation;
    const timeout = this.host.timeout;
    let token: string;
    try {
      token = await this.host.authToken(Date.now() + timeout);
    } catch (e) {
      if (!stale()) this.fail(asWatchError(e));
      return;
    }
    if (stale()) return;
    const create: Record<string, unknown> = { ...prefixRange(this.prefix), progress_notify: true };
    if (this.next > 0) create.start_revision = this.next;
    const payload = JSON.stringify({ create_request: create });
    // hasleader: the member ends the stream when it loses its leader rather than leaving the watch silent.
    const headers: Record<string, string> = { 'content-type': 'application/json', 'grpc-metadata-hasleader': 'true' };
    if (token) headers.authorization = token;

    const failures: string[] = [];
    for (const ep of this.host.endpointOrder()) {
      if (stale()) return;
      const ac = new AbortController();
      this.ac = ac;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        ac.abort();
      }, timeout);
      let res;
      try {
        // grpc-gateway sends the headers with the first message (the "created" answer), so the timeout covers
        // the watch's creation; after that the stream may rightly stay quiet for as long as the prefix does.
        res = await ep.pool.request({ method: 'POST', path: '/v3/watch', headers, body: payload, signal: ac.signal });
      } catch (e) {
        if (stale()) return;
        failures.push(`${ep.origin}: ${timedOut ? `no answer within ${timeout} ms` : connectionErrorText(e)}`);
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (res.statusCode !== 200) {
        const text = await res.body.text().catch(() => '');
        if (stale()) return;
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        if (res.statusCode >= 500) {
          failures.push(`${ep.origin}: ${etcdMessage(parsed) ?? `HTTP ${res.statusCode}`}`);
          continue;
        }
        const err = errorFromAnswer(res.statusCode, parsed, '/v3/watch');
        if (this.retryAuth(err.message, token)) return;
        return this.fail(err);
      }
      this.host.answered(ep);
      return this.consume(ep, res.body, token, stale);
    }
    if (!stale()) this.fail(new EtcdError('unavailable', `no etcd endpoint accepted the watch (${failures.join('; ')})`));
  }

  private async consume(ep: Endpoint, body: AsyncIterable<Uint8Array>, token: string, stale: () => boolean): Promise<void> {
    this.lastHeard = Date.now();
    this.startProbe(ep);
    const splitter = new JsonStreamSplitter();
    try {
      for await (const chunk of body) {
        if (stale()) return;
        this.lastHeard = Date.now();
        for (const msg of splitter.push(chunk)) {
          this.handle(msg, token);
          if (stale()) return;
        }
      }
    } catch (e) {
      if (stale()) return;
      return this.fail(e instanceof EtcdError ? e : new EtcdError('unavailable', `the etcd watch connection to ${ep.origin} broke: ${connectionErrorText(e)}`, { cause: e }));
    }
    if (!stale()) this.fail(new EtcdError('unavailable', `etcd at ${ep.origin} ended the watch stream`));
  }

  private handle(msg: unknown, token: string): void {
    const m = msg as { result?: RawWatchResponse; error?: unknown };
    if (m.error !== undefined) return this.fail(streamError(m.error, '/v3/watch'));
    const r = m.result;
    if (!r || typeof r !== 'object') return this.fail(new EtcdError('protocol', 'etcd sent a watch message without a result'));
    const compact = int(r.compact_revision);
    if (compact > 0) {
      return this.fail(new EtcdError('compacted', `etcd compacted revision ${this.next} away (compacted up to ${compact})`, { compactRevision: compact }));
    }
    if (r.canceled) {
      const reason = typeof r.cancel_reason === 'string' ? r.cancel_reason : 'no reason given';
      if (this.retryAuth(reason, token)) return;
      const code: EtcdErrorCode = AUTH_FAILURE.test(reason) ? 'auth' : /no leader/.test(reason) ? 'unavailable' : 'protocol';
      return this.fail(new EtcdError(code, `etcd canceled the watch: ${reason}`));
    }
    if (r.created) this.reauthenticated = false;
    if (!Array.isArray(r.events) || r.events.length === 0) return; // created, or a progress notification
    const events: WatchEvent[] = [];
    let last = 0;
    for (const ev of r.events as RawEvent[]) {
      const kv = toKeyValue(ev.kv ?? {});
      events.push({ type: ev.type === 'DELETE' ? 'delete' : 'put', kv });
      if (kv.modRevision > last) last = kv.modRevision;
    }
    // Normally the response's revision is that of its events. When etcd catches a watch up from the past it
    // splits the backlog into several responses and stamps each with the store's current revision, so the
    // last event's revision is the one up to which everything has really been delivered.
    const revision = last || int(r.header?.revision);
    this.next = revision + 1;
    try {
      this.onEvents(events, revision);
    } catch (e) {
      // The caller's bug: surface it like a throwing event listener, without taking the stream down.
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  /** etcd refused the token: authenticate again (once) and open the stream again from where it got to. */
  private retryAuth(message: string, token: string): boolean {
    if (this.reauthenticated || !STALE_TOKEN.test(message) || !this.host.dropToken(token)) return false;
    this.reauthenticated = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
    this.ac?.abort();
    this.ac = null;
    void this.run();
    return true;
  }

  private startProbe(ep: Endpoint): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    const every = this.host.timeout * WATCH_PROBE_TIMEOUTS;
    this.probeTimer = setInterval(() => void this.probe(ep, every), every);
    this.probeTimer.unref();
  }

  private async probe(ep: Endpoint, quietFor: number): Promise<void> {
    const silent = Date.now() - this.lastHeard;
    if (this.done || this.probing || silent < quietFor) return;
    if (silent > WATCH_MAX_SILENCE_MS) {
      return this.fail(new EtcdError('unavailable', `the etcd watch on ${ep.origin} has been silent for ${Math.round(silent / 1000)} s, progress notifications included`));
    }
    this.probing = true;
    try {
      await this.host.probe(ep);
    } catch (e) {
      if (e instanceof EtcdError && (e.code === 'unavailable' || e.code === 'timeout')) {
        this.fail(new EtcdError('unavailable', `etcd at ${ep.origin} stopped answering while the watch was quiet (${e.message})`, { cause: e }));
      }
    } finally {
      this.probing = false;
    }
  }
}

interface RawWatchResponse extends RawResponse {
  created?: boolean;
  canceled?: boolean;
  cancel_reason?: string;
  compact_revision?: string;
  events?: unknown[];
}
interface RawEvent {
  type?: string;
  kv?: RawKv;
}

/**
 * Splits a stream of concatenated JSON objects (grpc-gateway writes one per message, newline-separated, but
 * a chunk may hold part of one or several) into parsed objects, scanning each character once.
 */
class JsonStreamSplitter {
  private readonly decoder = new TextDecoder();
  private buf = '';
  private pos = 0;
  private start = -1;
  private depth = 0;
  private inString = false;
  private escaped = false;

  push(chunk: Uint8Array): unknown[] {
    this.buf += this.decoder.decode(chunk, { stream: true });
    const out: unknown[] = [];
    const buf = this.buf;
    for (let i = this.pos; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
      } else if (this.depth === 0) {
        // Between messages: whitespace, or the start of the next object.
        if (c === 0x7b) {
          this.start = i;
          this.depth = 1;
        } else if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) {
          throw new EtcdError('protocol', 'etcd sent something other than JSON objects in a stream');
        }
      } else if (c === 0x22) {
        this.inString = true;
      } else if (c === 0x7b || c === 0x5b) {
        this.depth++;
      } else if (c === 0x7d || c === 0x5d) {
        if (--this.depth === 0) {
          try {
            out.push(JSON.parse(buf.slice(this.start, i + 1)));
          } catch {
            throw new EtcdError('protocol', 'etcd sent malformed JSON in a stream');
          }
          this.start = -1;
        }
      }
    }
    if (this.depth === 0) {
      this.buf = '';
      this.pos = 0;
    } else {
      this.buf = buf.slice(this.start);
      this.pos = this.buf.length;
      this.start = 0;
      if (this.buf.length > MAX_MESSAGE_CHARS) throw new EtcdError('protocol', 'etcd sent a stream message larger than this client accepts');
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

function unb64(s: string | undefined): string {
  return s ? Buffer.from(s, 'base64').toString('utf8') : '';
}

/** int64 as the gateway writes it (a decimal string, absent when 0); revisions stay far below 2^53. */
function int(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || v === '') return 0;
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

function revisionOf(r: RawResponse): number {
  return int(r.header?.revision);
}

/** The key range of a prefix: [prefix, prefix with its last byte below 0xff incremented); '' is every key. */
function prefixRange(prefix: string): { key: string; range_end: string } {
  const key = Buffer.from(prefix, 'utf8');
  // etcd refuses an empty key; "\0" to "\0" is its spelling of the whole keyspace.
  if (key.length === 0) return { key: 'AA==', range_end: 'AA==' };
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return { key: key.toString('base64'), range_end: end.subarray(0, i + 1).toString('base64') };
    }
  }
  return { key: key.toString('base64'), range_end: 'AA==' };
}

function putRequest(key: string, value: string, lease: string | undefined): Record<string, unknown> {
  const req: Record<string, unknown> = { key: b64(key), value: b64(value) };
  if (lease && lease !== '0') req.lease = lease;
  return req;
}

function toKeyValue(kv: RawKv): KeyValue {
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    createRevision: int(kv.create_revision),
    modRevision: int(kv.mod_revision),
    version: int(kv.version),
    lease: typeof kv.lease === 'string' && kv.lease ? kv.lease : '0',
  };
}

/** The first object of a streamed answer (LeaseKeepAlive). */
function firstStreamed(text: string): unknown {
  const objs = new JsonStreamSplitter().push(Buffer.from(text, 'utf8'));
  return objs[0];
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/** etcd's own message from a gateway error body: {"error": "...", "message": "...", "code": N}. */
function etcdMessage(body: unknown): string | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as { message?: unknown; error?: unknown };
  if (typeof b.message === 'string' && b.message) return b.message;
  if (typeof b.error === 'string' && b.error) return b.error;
  return undefined;
}

function errorFromAnswer(status: number, body: unknown, path: string): EtcdError {
  const msg = etcdMessage(body) ?? `HTTP ${status}`;
  if (/required revision has been compacted/.test(msg)) return new EtcdError('compacted', `etcd: ${msg}`);
  if (status === 401 || status === 403 || AUTH_FAILURE.test(msg)) return new EtcdError('auth', `etcd refused ${path}: ${msg}`);
  if (status >= 500) return new EtcdError('unavailable', `etcd could not serve ${path}: ${msg}`);
  return new EtcdError('protocol', `etcd refused ${path}: ${msg}`);
}

/** An error inside a stream: {"error": {"grpc_code": 14, "http_code": 503, "message": "..."}}. */
function streamError(err: unknown, path: string): EtcdError {
  const e = (err && typeof err === 'object' ? err : { message: String(err) }) as { http_code?: unknown; message?: unknown };
  const status = typeof e.http_code === 'number' ? e.http_code : 500;
  return errorFromAnswer(status, { message: typeof e.message === 'string' ? e.message : undefined }, path);
}

function asWatchError(e: unknown): EtcdError {
  if (e instanceof EtcdError) return e.code === 'timeout' ? new EtcdError('unavailable', e.message, { cause: e }) : e;
  return new EtcdError('unavailable', String((e as Error)?.message ?? e), { cause: e });
}

function connectionErrorText(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : '';
  const msg = typeof err?.message === 'string' ? err.message : String(e);
  return code && !msg.includes(code) ? `${code} ${msg}` : msg;
}
