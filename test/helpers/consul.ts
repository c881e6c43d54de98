/**
 * @module test/helpers/consul
 * A Consul stand-in for tests: one in-process HTTP server speaking the part of Consul's HTTP API that service
 * discovery uses, written from the published API documentation (catalog, health, KV, blocking queries, ACL
 * tokens), since no Consul server can be installed where the tests run. It behaves as one Consul server that
 * is its own leader, in one datacenter:
 *
 * - PUT /v1/catalog/register and /v1/catalog/deregister (nodes, services, and checks with their status);
 * - GET /v1/health/service/<name> with passing, tag (repeatable: all of them), dc;
 * - PUT, GET and DELETE /v1/kv/<key> with recurse, keys, separator, raw, flags and cas; values in base64;
 * - blocking queries: index and wait (Go durations, at most 10m, default 5m, plus up to wait/16 of jitter),
 *   per-resource indexes as Consul computes them (a service's own index, the KV prefix's newest entry or
 *   tombstone), X-Consul-Index, X-Consul-KnownLeader, X-Consul-LastContact, X-Consul-Default-ACL-Policy;
 * - ACLs when `acl` is given: default deny; X-Consul-Token (or Authorization: Bearer, or ?token=); an unknown
 *   token gets 403 "ACL not found"; a token without the right gets 403 "Permission denied" on a single
 *   resource, and lists without what it may not read (with X-Consul-Results-Filtered-By-ACLs: true, which
 *   Consul leaves out for the anonymous token).
 *
 * Tests can stop and start it (an outage: open connections are cut), snapshot and restore its state (as
 * `consul snapshot restore` does: the index goes back and every blocked query returns), and read the log of
 * requests it received. Query parameters real Consul honours but this stand-in does not implement (filter,
 * near, node-meta, namespaces...) are refused with 400 rather than ignored, so no test relies on them.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { request as undiciRequest, Agent, type Dispatcher } from 'undici';

/** Prefixes a token may read and write, per resource kind (Consul's service_prefix, node_prefix, key_prefix). */
export interface ConsulAclPolicy {
  service?: string[];
  node?: string[];
  key?: string[];
}

export interface ConsulStandInOptions {
  /** The datacenter it is (default dc1); a dc parameter naming another one fails as Consul does without a route. */
  datacenter?: string;
  /** ACLs on, default deny: tokens by secret, each with its rights ('management': everything). */
  acl?: { tokens: Record<string, ConsulAclPolicy | 'management'> };
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /**
   * Answer as Consul versions before the index sanity fix did: an index of 0 when the resource's table was
   * never written (not raised to 1), so a client that sends index=0 back gets no blocking at all.
   */
  legacyZeroIndex?: boolean;
}

/** One request as the stand-in received it. */
export interface ConsulRequestRecord {
  method: string;
  /** The path, without the query. */
  path: string;
  query: URLSearchParams;
  /** The ACL token it carried, if any. */
  token: string | undefined;
  /** Date.now() when it arrived. */
  at: number;
}

/** A copy of the whole state, for restore(). */
export interface ConsulSnapshot {
  readonly state: State;
}

// ---------------------------------------------------------------------------------------------------------
// State (what Consul keeps in its state store), with raft-style indexes.

interface NodeRec {
  id: string;
  node: string;
  address: string;
  taggedAddresses: Record<string, string> | null;
  meta: Record<string, string> | null;
  createIndex: number;
  modifyIndex: number;
}

interface ServiceRec {
  node: string;
  id: string;
  service: string;
  tags: string[];
  address: string;
  meta: Record<string, string> | null;
  port: number;
  weights: { Passing: number; Warning: number };
  enableTagOverride: boolean;
  createIndex: number;
  modifyIndex: number;
}

type CheckStatus = 'passing' | 'warning' | 'critical';

interface CheckRec {
  node: string;
  checkId: string;
  name: string;
  status: CheckStatus;
  notes: string;
  output: string;
  serviceId: string;
  serviceName: string;
  serviceTags: string[];
  type: string;
  definition: Record<string, unknown>;
  createIndex: number;
  modifyIndex: number;
}

interface KvRec {
  key: string;
  flags: number;
  /** base64, or null for a key with no value. */
  value: string | null;
  lockIndex: number;
  createIndex: number;
  modifyIndex: number;
}

interface State {
  /** The raft index: the last write's. */
  index: number;
  nodes: Map<string, NodeRec>;
  /** By "<node>\0<service id>". */
  services: Map<string, ServiceRec>;
  /** By "<node>\0<check id>". */
  checks: Map<string, CheckRec>;
  /** The index of the last change to each service name's instances (Consul's "service.<name>" index). */
  serviceIndex: Map<string, number>;
  /** The last index at which some service name lost its last instance (Consul's service_last_extinction). */
  lastExtinction: number;
  /** The last index that changed the catalog (nodes, services, checks). */
  catalogIndex: number;
  kv: Map<string, KvRec>;
  /** Deleted keys and the index of their deletion (Consul's graveyard). */
  tombstones: Map<string, number>;
  /** The last index that changed the KV store or its graveyard. */
  kvIndex: number;
}

/**
 * The raft index of a fresh server. A real one has already written entries of its own (its election, its
 * configuration) before it serves a client, so a first write never takes index 1, which blocking clients
 * send for "nothing yet".
 */
const FIRST_RAFT_INDEX = 10;

function emptyState(): State {
  return {
    index: FIRST_RAFT_INDEX,
    nodes: new Map(),
    services: new Map(),
    checks: new Map(),
    serviceIndex: new Map(),
    lastExtinction: 0,
    catalogIndex: 0,
    kv: new Map(),
    tombstones: new Map(),
    kvIndex: 0,
  };
}

const MAX_QUERY_MS = 10 * 60_000;
const DEFAULT_QUERY_MS = 5 * 60_000;
const MAX_KV_VALUE = 512 * 1024;
const MAX_BODY = 4 * 1024 * 1024;

/** Query parameters Consul honours on these endpoints that the stand-in does not implement. */
const UNIMPLEMENTED_PARAMS = ['filter', 'near', 'node-meta', 'ns', 'partition', 'peer', 'cached', 'sampling', 'merge-central-config', 'acquire', 'release'];

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * time.ParseDuration of Go, in milliseconds: "300ms", "1.5h", "2h45m", "-5s", "0". Null when it is not one.
 */
export function parseGoDuration(s: string): number | null {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return null;
  let total = 0;
  const part = /^(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest.length > 0) {
    const m = part.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}

/** Go's strconv.ParseBool. */
function parseGoBool(s: string): boolean | null {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return null;
}

/** A field of a decoded JSON body, matched case-insensitively as Go's encoding/json does. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

function str(obj: Record<string, unknown>, name: string): string {
  const v = field(obj, name);
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new HttpError(400, `Request decode failed: json: cannot unmarshal ${typeof v} into Go struct field .${name} of type string`);
  return v;
}

function strMap(obj: Record<string, unknown>, name: string): Record<string, string> | null {
  const v = field(obj, name);
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new HttpError(400, `Request decode failed: json: cannot unmarshal into Go struct field .${name} of type map[string]string`);
  }
  return { ...(v as Record<string, string>) };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Go's JSON of a map: keys sorted. */
function sortedMap<T>(m: Record<string, T> | null): Record<string, T> | null {
  if (m === null) return null;
  return Object.fromEntries(Object.keys(m).sort().map((k) => [k, m[k]!]));
}

function cloneState(s: State): State {
  return structuredClone(s);
}

interface Waiter {
  /** Answer now if the resource's index passed the one asked for (or `force`); true when it answered. */
  check(force: boolean): boolean;
}

interface Caller {
  /** null: ACLs are off. */
  policy: ConsulAclPolicy | 'management' | null;
  anonymous: boolean;
}

export class ConsulStandIn {
  readonly datacenter: string;
  /** A management token of its own (when ACLs are on), for the helper's writes and the tests'. */
  readonly managementToken: string;
  /** Every request received, oldest first. */
  readonly requests: ConsulRequestRecord[] = [];

  #state: State = emptyState();
  readonly #tokens: Map<string, ConsulAclPolicy | 'management'> | null;
  readonly #tls: { cert: string; key: string } | undefined;
  readonly #legacyZeroIndex: boolean;
  readonly #waiters = new Set<Waiter>();
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #port = 0;
  readonly #dispatcher: Dispatcher;

  private constructor(opts: ConsulStandInOptions) {
    this.datacenter = opts.datacenter ?? 'dc1';
    this.managementToken = randomUUID();
    this.#tokens = opts.acl ? new Map(Object.entries(opts.acl.tokens)) : null;
    this.#tokens?.set(this.managementToken, 'management');
    this.#tls = opts.tls;
    this.#legacyZeroIndex = opts.legacyZeroIndex ?? false;
    this.#dispatcher = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 1000 });
  }

  /** A stand-in listening on a free loopback port. */
  static async start(opts: ConsulStandInOptions = {}): Promise<ConsulStandIn> {
    const c = new ConsulStandIn(opts);
    await c.start();
    return c;
  }

  get port(): number {
    return this.#port;
  }

  /** The address a client is configured with, e.g. http://127.0.0.1:41234. */
  get address(): string {
    return `${this.#tls ? 'https' : 'http'}://127.0.0.1:${this.#port}`;
  }

  /** The current raft index. */
  get index(): number {
    return this.#state.index;
  }

  /** Blocking queries being held open right now. */
  get blockedQueries(): number {
    return this.#waiters.size;
  }

  get running(): boolean {
    return this.#server !== null;
  }

  /** The requests for one method and path (prefix) received since `since` (Date.now() value). */
  requestsTo(method: string, pathPrefix: string, since = 0): ConsulRequestRecord[] {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(pathPrefix) && r.at >= since);
  }

  /** Listen (again, on the same port after stop()). */
  async start(): Promise<void> {
    if (this.#server) return;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res);
    const server = this.#tls ? createHttpsServer({ cert: this.#tls.cert, key: this.#tls.key }, handler) : createHttpServer(handler);
    // Consul's HTTP server keeps idle connections open; blocking queries reuse them.
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    server.on('secureConnection', (s: Socket) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Stop listening and cut every open connection, blocked queries included (an outage). */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    this.#waiters.clear();
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await closed;
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#dispatcher.close();
  }

  /** A copy of the state now (data and indexes). */
  snapshot(): ConsulSnapshot {
    return { state: cloneState(this.#state) };
  }

  /**
   * Put an older state back, as `consul snapshot restore` does: data and indexes go back to the snapshot's
   * (the index goes backwards), and every blocked query returns at once with what it now reads.
   */
  restore(snapshot: ConsulSnapshot): void {
    this.#state = cloneState(snapshot.state);
    for (const w of [...this.#waiters]) w.check(true);
  }

  /** Add or replace a token (ACLs must be on). */
  setToken(secret: string, policy: ConsulAclPolicy | 'management'): void {
    if (!this.#tokens) throw new Error('ACLs are off for this stand-in');
    this.#tokens.set(secret, policy);
  }

  /** Delete a token: requests with it get 403 "ACL not found" from then on. */
  deleteToken(secret: string): void {
    this.#tokens?.delete(secret);
  }

  // -------------------------------------------------------------------------------------------------------
  // Client side for tests: the same HTTP API anyone would use, with the management token.

  /** One request to the stand-in's own API (with the management token, unless `token` is given; null: none). */
  async api(method: string, path: string, body?: string | Buffer | object, token?: string | null) {
    const headers: Record<string, string> = {};
    const t = token === undefined ? (this.#tokens ? this.managementToken : undefined) : (token ?? undefined);
    if (t !== undefined) headers['x-consul-token'] = t;
    let payload: string | Buffer | undefined;
    if (body !== undefined) payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const res = await undiciRequest(`${this.address}${path}`, { method: method as Dispatcher.HttpMethod, headers, body: payload, dispatcher: this.#dispatcher, headersTimeout: 10_000, bodyTimeout: 10_000 });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: text };
  }

  async #write(method: string, path: string, body?: string | Buffer | object): Promise<void> {
    const r = await this.api(method, path, body);
    if (r.status !== 200 || r.body.trim() !== 'true') throw new Error(`${method} ${path}: HTTP ${r.status} ${r.body}`);
  }

  /** PUT /v1/catalog/register with this body (Consul's field names). */
  async register(body: Record<string, unknown>): Promise<void> {
    await this.#write('PUT', '/v1/catalog/register', body);
  }

  /** PUT /v1/catalog/deregister with this body. */
  async deregister(body: Record<string, unknown>): Promise<void> {
    await this.#write('PUT', '/v1/catalog/deregister', body);
  }

  /** PUT /v1/kv/<key> with a raw value. */
  async kvPut(key: string, value: string | Buffer = ''): Promise<void> {
    await this.#write('PUT', `/v1/kv/${encodeKey(key)}`, value);
  }

  /** DELETE /v1/kv/<key>, or every key under it with recurse. */
  async kvDelete(key: string, opts: { recurse?: boolean } = {}): Promise<void> {
    await this.#write('DELETE', `/v1/kv/${encodeKey(key)}${opts.recurse ? '?recurse' : ''}`);
  }

  // -------------------------------------------------------------------------------------------------------
  // The server.

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://consul');
    const token = tokenOf(req, url);
    this.requests.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, token, at: Date.now() });
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      try {
        if (tooLarge) throw new HttpError(413, `Request body too large, max size: ${MAX_BODY} bytes`);
        this.#route(req.method ?? 'GET', url, token, Buffer.concat(chunks), res);
      } catch (e) {
        const err = e instanceof HttpError ? e : new HttpError(500, (e as Error).message);
        this.#plain(res, err.status, err.message);
      }
    });
    req.on('error', () => res.destroy());
  }

  #route(method: string, url: URL, token: string | undefined, body: Buffer, res: ServerResponse): void {
    const p = url.pathname;
    const q = url.searchParams;
    for (const name of UNIMPLEMENTED_PARAMS) {
      if (q.has(name)) throw new HttpError(400, `the "${name}" parameter is not implemented by this Consul stand-in`);
    }
    const dc = q.get('dc');
    if (dc && dc !== this.datacenter) throw new HttpError(500, 'No path to datacenter');
    const caller = this.#caller(token);
    if (p === '/v1/catalog/register' || p === '/v1/catalog/deregister') {
      if (method !== 'PUT') throw new HttpError(405, `method ${method} not allowed`);
      const obj = decodeJson(body);
      const bodyDc = str(obj, 'Datacenter');
      if (bodyDc && bodyDc !== this.datacenter) throw new HttpError(500, 'No path to datacenter');
      if (p === '/v1/catalog/register') this.#register(obj, caller);
      else this.#deregister(obj, caller);
      this.#json(res, 200, true);
      return;
    }
    if (p.startsWith('/v1/health/service/')) {
      if (method !== 'GET') throw new HttpError(405, `method ${method} not allowed`);
      const name = decodeURIComponent(p.slice('/v1/health/service/'.length));
      if (!name) throw new HttpError(400, 'Missing service name');
      let passing = false;
      if (q.has('passing')) {
        const v = q.get('passing')!;
        const b = v === '' ? true : parseGoBool(v);
        if (b === null) throw new HttpError(400, 'Invalid value for ?passing');
        passing = b;
      }
      const tags = q.getAll('tag');
      // Consul resolves the token at each run of a blocking query: a token deleted meanwhile fails it.
      this.#blocking(q, res, () => this.#healthService(name, passing, tags, this.#caller(token)));
      return;
    }
    if (p.startsWith('/v1/kv/') || p === '/v1/kv') {
      const key = decodeURIComponent(p.slice('/v1/kv/'.length));
      if (method === 'GET') {
        this.#kvGet(key, q, token, res);
        return;
      }
      if (method === 'PUT') {
        if (!key) throw new HttpError(400, 'Missing key name');
        this.#json(res, 200, this.#kvPut(key, q, body, caller));
        return;
      }
      if (method === 'DELETE') {
        this.#json(res, 200, this.#kvDelete(key, q, caller));
        return;
      }
      throw new HttpError(405, `method ${method} not allowed`);
    }
    throw new HttpError(404, '404 page not found');
  }

  #caller(token: string | undefined): Caller {
    if (!this.#tokens) return { policy: null, anonymous: token === undefined };
    if (token === undefined || token === '' || token === 'anonymous') return { policy: {}, anonymous: true };
    const policy = this.#tokens.get(token);
    if (!policy) throw new HttpError(403, 'ACL not found');
    return { policy, anonymous: false };
  }

  #allowed(caller: Caller, kind: keyof ConsulAclPolicy, name: string): boolean {
    const p = caller.policy;
    if (p === null || p === 'management') return true;
    return (p[kind] ?? []).some((prefix) => name.startsWith(prefix));
  }

  #require(caller: Caller, kind: keyof ConsulAclPolicy, access: 'read' | 'write', name: string): void {
    if (this.#allowed(caller, kind, name)) return;
    const who = caller.anonymous ? 'anonymous token' : 'token';
    throw new HttpError(403, `Permission denied: ${who} lacks permission '${kind}:${access}' on "${name}"`);
  }

  /** Run a query now, or hold it until its index passes the one asked for or its wait is over. */
  #blocking(q: URLSearchParams, res: ServerResponse, query: () => QueryResult): void {
    let waitMs = 0;
    const wait = q.get('wait');
    if (wait !== null && wait !== '') {
      const ms = parseGoDuration(wait);
      if (ms === null) throw new HttpError(400, 'Invalid wait time');
      waitMs = ms;
    }
    let minIndex = 0;
    const idx = q.get('index');
    if (idx !== null && idx !== '') {
      if (!/^\d+$/.test(idx)) throw new HttpError(400, 'Invalid index');
      minIndex = Number(idx);
    }
    const first = query();
    if (minIndex === 0 || first.index > minIndex) {
      this.#answer(res, first);
      return;
    }
    if (waitMs <= 0) waitMs = DEFAULT_QUERY_MS;
    if (waitMs > MAX_QUERY_MS) waitMs = MAX_QUERY_MS;
    // Consul spreads out the wake-up of concurrent queries: up to wait/16 more.
    waitMs += Math.floor(Math.random() * (waitMs / 16));
    let timer: NodeJS.Timeout | null = null;
    const waiter: Waiter = {
      check: (force) => {
        let r: QueryResult;
        try {
          r = query();
        } catch (e) {
          // The caller's token was deleted meanwhile: the query fails as Consul's does.
          this.#waiters.delete(waiter);
          if (timer) clearTimeout(timer);
          const err = e instanceof HttpError ? e : new HttpError(500, (e as Error).message);
          this.#plain(res, err.status, err.message);
          return true;
        }
        if (!force && r.index <= minIndex) return false;
        this.#waiters.delete(waiter);
        if (timer) clearTimeout(timer);
        this.#answer(res, r);
        return true;
      },
    };
    this.#waiters.add(waiter);
    timer = setTimeout(() => waiter.check(true), waitMs);
    res.on('close', () => {
      this.#waiters.delete(waiter);
      if (timer) clearTimeout(timer);
    });
  }

  /** A write happened: blocked queries whose resource changed answer now. */
  #changed(): void {
    for (const w of [...this.#waiters]) w.check(false);
  }

  #answer(res: ServerResponse, r: QueryResult): void {
    if (res.destroyed || res.writableEnded) return;
    const headers = this.#meta(r.index);
    if (r.filtered) headers['X-Consul-Results-Filtered-By-ACLs'] = 'true';
    if (r.raw !== undefined) {
      res.writeHead(r.status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(r.raw);
      return;
    }
    if (r.status === 404) {
      res.writeHead(404, headers);
      res.end();
      return;
    }
    res.writeHead(r.status, { ...headers, 'Content-Type': 'application/json' });
    res.end(JSON.stringify(r.body));
  }

  #meta(index: number): Record<string, string> {
    return {
      'X-Consul-Default-Acl-Policy': this.#tokens ? 'deny' : 'allow',
      'X-Consul-Index': String(index),
      'X-Consul-Knownleader': 'true',
      'X-Consul-Lastcontact': '0',
    };
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json', 'X-Consul-Default-Acl-Policy': this.#tokens ? 'deny' : 'allow' });
    res.end(JSON.stringify(body));
  }

  #plain(res: ServerResponse, status: number, message: string): void {
    if (res.destroyed || res.writableEnded || res.headersSent) return;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Consul-Default-Acl-Policy': this.#tokens ? 'deny' : 'allow' });
    res.end(message);
  }

  /** An index as Consul reports it: never 0 (the sanity fix), unless emulating versions before it. */
  #reported(index: number): number {
    return this.#legacyZeroIndex ? index : Math.max(1, index);
  }

  // -------------------------------------------------------------------------------------------------------
  // Catalog and health.

  #register(obj: Record<string, unknown>, caller: Caller): void {
    const s = this.#state;
    const nodeName = str(obj, 'Node');
    if (!nodeName) throw new HttpError(500, 'Must provide node');
    const skipNodeUpdate = field(obj, 'SkipNodeUpdate') === true;
    const address = str(obj, 'Address');
    const existingNode = s.nodes.get(nodeName);
    if (!address && !(skipNodeUpdate && existingNode)) throw new HttpError(500, 'Must provide address if SkipNodeUpdate is not set');
    this.#require(caller, 'node', 'write', nodeName);

    const svcObj = field(obj, 'Service');
    let svcIn: Omit<ServiceRec, 'createIndex' | 'modifyIndex'> | null = null;
    if (svcObj !== undefined && svcObj !== null) {
      if (typeof svcObj !== 'object' || Array.isArray(svcObj)) throw new HttpError(400, 'Request decode failed: Service must be an object');
      const so = svcObj as Record<string, unknown>;
      const service = str(so, 'Service');
      if (!service) throw new HttpError(500, 'Must provide service name');
      this.#require(caller, 'service', 'write', service);
      const tags = field(so, 'Tags');
      if (tags !== undefined && tags !== null && (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string'))) {
        throw new HttpError(400, 'Request decode failed: Service.Tags must be a list of strings');
      }
      const port = field(so, 'Port') ?? 0;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new HttpError(400, 'Request decode failed: Service.Port must be an integer');
      const w = field(so, 'Weights') as Record<string, unknown> | undefined | null;
      const passingW = w ? field(w, 'Passing') : undefined;
      const warningW = w ? field(w, 'Warning') : undefined;
      if (passingW !== undefined && (typeof passingW !== 'number' || !Number.isInteger(passingW) || passingW < 1)) throw new HttpError(500, 'Passing must be greater than 0');
      svcIn = {
        node: nodeName,
        id: str(so, 'ID') || service,
        service,
        tags: [...((tags as string[] | null | undefined) ?? [])],
        address: str(so, 'Address'),
        meta: strMap(so, 'Meta'),
        port,
        weights: { Passing: (passingW as number | undefined) ?? 1, Warning: typeof warningW === 'number' ? warningW : 1 },
        enableTagOverride: field(so, 'EnableTagOverride') === true,
      };
    }

    const checksIn: Array<Omit<CheckRec, 'createIndex' | 'modifyIndex' | 'serviceName' | 'serviceTags'>> = [];
    const one = field(obj, 'Check');
    const many = field(obj, 'Checks');
    const rawChecks = [...(one !== undefined && one !== null ? [one] : []), ...(Array.isArray(many) ? many : [])];
    for (const c of rawChecks) {
      if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new HttpError(400, 'Request decode failed: a check must be an object');
      const co = c as Record<string, unknown>;
      const checkNode = str(co, 'Node') || nodeName;
      if (checkNode !== nodeName) throw new HttpError(500, `Node mismatch: check is for node "${checkNode}", registration for "${nodeName}"`);
      const name = str(co, 'Name');
      const checkId = str(co, 'CheckID') || name;
      if (!checkId) throw new HttpError(500, 'Missing check ID');
      const status = str(co, 'Status') || 'critical';
      if (status !== 'passing' && status !== 'warning' && status !== 'critical') throw new HttpError(500, `Invalid check status: "${status}"`);
      const def = field(co, 'Definition');
      checksIn.push({
        node: nodeName,
        checkId,
        name,
        status,
        notes: str(co, 'Notes'),
        output: str(co, 'Output'),
        serviceId: str(co, 'ServiceID'),
        type: str(co, 'Type'),
        definition: def && typeof def === 'object' && !Array.isArray(def) ? (def as Record<string, unknown>) : {},
      });
    }
    // A service check must name a service on that node (registered before or now).
    for (const c of checksIn) {
      if (!c.serviceId) continue;
      const exists = (svcIn && svcIn.id === c.serviceId) || s.services.has(`${nodeName}\0${c.serviceId}`);
      if (!exists) throw new HttpError(500, `Unknown service ID "${c.serviceId}" for check "${c.checkId}"`);
    }

    // Every write takes a raft index, whether or not it changes anything.
    const idx = s.index + 1;
    s.index = idx;
    const touched = new Set<string>();
    let catalogChanged = false;

    if (!(skipNodeUpdate && existingNode)) {
      const id = str(obj, 'ID') || existingNode?.id || '';
      const next = { id, node: nodeName, address, taggedAddresses: strMap(obj, 'TaggedAddresses'), meta: strMap(obj, 'NodeMeta') };
      const same = existingNode && sameJson({ ...existingNode, createIndex: 0, modifyIndex: 0 }, { ...next, createIndex: 0, modifyIndex: 0 });
      if (!same) {
        s.nodes.set(nodeName, { ...next, createIndex: existingNode?.createIndex ?? idx, modifyIndex: idx });
        catalogChanged = true;
        // A node's change is a change of every service instance on it.
        for (const svc of s.services.values()) if (svc.node === nodeName) touched.add(svc.service);
      }
    }

    if (svcIn) {
      const key = `${nodeName}\0${svcIn.id}`;
      const old = s.services.get(key);
      const same = old && sameJson({ ...old, createIndex: 0, modifyIndex: 0 }, { ...svcIn, createIndex: 0, modifyIndex: 0 });
      if (!same) {
        s.services.set(key, { ...svcIn, createIndex: old?.createIndex ?? idx, modifyIndex: idx });
        touched.add(svcIn.service);
        if (old && old.service !== svcIn.service) touched.add(old.service);
        catalogChanged = true;
        // Service checks carry the service's name and tags.
        for (const c of s.checks.values()) {
          if (c.node === nodeName && c.serviceId === svcIn.id) {
            c.serviceName = svcIn.service;
            c.serviceTags = [...svcIn.tags];
          }
        }
      }
    }

    for (const c of checksIn) {
      const key = `${nodeName}\0${c.checkId}`;
      const old = s.checks.get(key);
      const svc = c.serviceId ? s.services.get(`${nodeName}\0${c.serviceId}`) : undefined;
      const next = { ...c, serviceName: svc?.service ?? '', serviceTags: svc ? [...svc.tags] : [] };
      const same = old && sameJson({ ...old, createIndex: 0, modifyIndex: 0 }, { ...next, createIndex: 0, modifyIndex: 0 });
      if (same) continue;
      s.checks.set(key, { ...next, createIndex: old?.createIndex ?? idx, modifyIndex: idx });
      catalogChanged = true;
      if (svc) touched.add(svc.service);
      else for (const sv of s.services.values()) if (sv.node === nodeName) touched.add(sv.service);
    }

    if (catalogChanged) s.catalogIndex = idx;
    for (const name of touched) s.serviceIndex.set(name, idx);
    this.#noteExtinctions(touched, idx);
    this.#changed();
  }

  #deregister(obj: Record<string, unknown>, caller: Caller): void {
    const s = this.#state;
    const nodeName = str(obj, 'Node');
    if (!nodeName) throw new HttpError(500, 'Must provide node');
    const serviceId = str(obj, 'ServiceID');
    const checkId = str(obj, 'CheckID');
    this.#require(caller, 'node', 'write', nodeName);
    const idx = s.index + 1;
    s.index = idx;
    const touched = new Set<string>();
    let changed = false;
    if (!serviceId && !checkId) {
      if (s.nodes.delete(nodeName)) changed = true;
      for (const [k, svc] of [...s.services]) {
        if (svc.node !== nodeName) continue;
        s.services.delete(k);
        touched.add(svc.service);
        changed = true;
      }
      for (const [k, c] of [...s.checks]) {
        if (c.node !== nodeName) continue;
        s.checks.delete(k);
        changed = true;
      }
    } else {
      if (serviceId) {
        const svc = s.services.get(`${nodeName}\0${serviceId}`);
        if (svc) {
          this.#require(caller, 'service', 'write', svc.service);
          s.services.delete(`${nodeName}\0${serviceId}`);
          touched.add(svc.service);
          changed = true;
          for (const [k, c] of [...s.checks]) if (c.node === nodeName && c.serviceId === serviceId) s.checks.delete(k);
        }
      }
      if (checkId) {
        const c = s.checks.get(`${nodeName}\0${checkId}`);
        if (c) {
          s.checks.delete(`${nodeName}\0${checkId}`);
          changed = true;
          const svc = c.serviceId ? s.services.get(`${nodeName}\0${c.serviceId}`) : undefined;
          if (svc) touched.add(svc.service);
          else for (const sv of s.services.values()) if (sv.node === nodeName) touched.add(sv.service);
        }
      }
    }
    if (changed) s.catalogIndex = idx;
    for (const name of touched) s.serviceIndex.set(name, idx);
    this.#noteExtinctions(touched, idx);
    this.#changed();
  }

  /** Service names among `names` that have no instance left went extinct at `idx`. */
  #noteExtinctions(names: Set<string>, idx: number): void {
    for (const name of names) {
      let any = false;
      for (const svc of this.#state.services.values()) {
        if (svc.service === name) {
          any = true;
          break;
        }
      }
      if (!any) this.#state.lastExtinction = idx;
    }
  }

  /** GET /v1/health/service/<name>: its instances with their node and checks, the index as Consul computes it. */
  #healthService(name: string, passing: boolean, tags: string[], caller: Caller): QueryResult {
    const s = this.#state;
    const instances = [...s.services.values()].filter((svc) => svc.service === name).sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    let index: number;
    if (instances.length > 0) index = s.serviceIndex.get(name) ?? s.catalogIndex;
    else if (s.lastExtinction > 0) index = s.lastExtinction;
    else index = s.serviceIndex.get(name) ?? s.catalogIndex;
    let filtered = false;
    const out: unknown[] = [];
    for (const svc of instances) {
      if (tags.length > 0 && !tags.every((t) => svc.tags.includes(t))) continue;
      if (!this.#allowed(caller, 'service', svc.service) || !this.#allowed(caller, 'node', svc.node)) {
        filtered = true;
        continue;
      }
      const node = s.nodes.get(svc.node);
      const checks = [...s.checks.values()]
        .filter((c) => c.node === svc.node && (c.serviceId === '' || c.serviceId === svc.id))
        .sort((a, b) => (a.checkId < b.checkId ? -1 : a.checkId > b.checkId ? 1 : 0));
      if (passing && checks.some((c) => c.status !== 'passing')) continue;
      out.push({
        Node: node
          ? {
              ID: node.id,
              Node: node.node,
              Address: node.address,
              Datacenter: this.datacenter,
              TaggedAddresses: sortedMap(node.taggedAddresses),
              Meta: sortedMap(node.meta),
              CreateIndex: node.createIndex,
              ModifyIndex: node.modifyIndex,
            }
          : null,
        Service: {
          ID: svc.id,
          Service: svc.service,
          Tags: [...svc.tags],
          Address: svc.address,
          Meta: sortedMap(svc.meta),
          Port: svc.port,
          Weights: { ...svc.weights },
          EnableTagOverride: svc.enableTagOverride,
          CreateIndex: svc.createIndex,
          ModifyIndex: svc.modifyIndex,
        },
        Checks: checks.map((c) => ({
          Node: c.node,
          CheckID: c.checkId,
          Name: c.name,
          Status: c.status,
          Notes: c.notes,
          Output: c.output,
          ServiceID: c.serviceId,
          ServiceName: c.serviceName,
          ServiceTags: [...c.serviceTags],
          Type: c.type,
          Definition: c.definition,
          CreateIndex: c.createIndex,
          ModifyIndex: c.modifyIndex,
        })),
      });
    }
    return { status: 200, index: this.#reported(index), body: out, filtered: filtered && !caller.anonymous };
  }

  // -------------------------------------------------------------------------------------------------------
  // KV.

  #kvGet(key: string, q: URLSearchParams, token: string | undefined, res: ServerResponse): void {
    const recurse = q.has('recurse');
    const keysOnly = q.has('keys');
    const raw = q.has('raw');
    const separator = q.get('separator') ?? '';
    if (recurse || keysOnly) {
      this.#blocking(q, res, () => this.#kvList(key, keysOnly, separator, this.#caller(token)));
      return;
    }
    this.#blocking(q, res, () => {
      this.#require(this.#caller(token), 'key', 'read', key);
      const s = this.#state;
      const e = s.kv.get(key);
      if (!e) return { status: 404, index: this.#reported(s.kvIndex), body: null, filtered: false };
      if (raw) return { status: 200, index: e.modifyIndex, body: null, filtered: false, raw: e.value === null ? Buffer.alloc(0) : Buffer.from(e.value, 'base64') };
      return { status: 200, index: e.modifyIndex, body: [kvJson(e)], filtered: false };
    });
  }

  /** A recursive read: the index is the prefix's newest entry or tombstone, else the whole store's. */
  #kvList(prefix: string, keysOnly: boolean, separator: string, caller: Caller): QueryResult {
    const s = this.#state;
    let lindex = 0;
    const entries: KvRec[] = [];
    for (const e of s.kv.values()) {
      if (!e.key.startsWith(prefix)) continue;
      if (e.modifyIndex > lindex) lindex = e.modifyIndex;
      entries.push(e);
    }
    if (prefix !== '') {
      for (const [k, at] of s.tombstones) if (k.startsWith(prefix) && at > lindex) lindex = at;
    } else {
      lindex = s.kvIndex;
    }
    const index = lindex !== 0 ? lindex : s.kvIndex;
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const visible = entries.filter((e) => this.#allowed(caller, 'key', e.key));
    const filtered = visible.length !== entries.length && !caller.anonymous;
    if (visible.length === 0) return { status: 404, index: this.#reported(index), body: null, filtered };
    if (keysOnly) {
      const keys: string[] = [];
      for (const e of visible) {
        let k = e.key;
        if (separator) {
          const at = k.indexOf(separator, prefix.length);
          if (at >= 0) k = k.slice(0, at + separator.length);
        }
        if (keys[keys.length - 1] !== k) keys.push(k);
      }
      return { status: 200, index, body: keys, filtered };
    }
    return { status: 200, index, body: visible.map(kvJson), filtered };
  }

  #kvPut(key: string, q: URLSearchParams, body: Buffer, caller: Caller): boolean {
    this.#require(caller, 'key', 'write', key);
    if (body.length > MAX_KV_VALUE) {
      throw new HttpError(413, `Request body(${body.length} bytes) too large, max size: ${MAX_KV_VALUE} bytes. See https://developer.hashicorp.com/consul/docs/agent/config/config-files#kv_max_value_size.`);
    }
    let flags = 0;
    if (q.has('flags')) {
      const f = q.get('flags')!;
      if (!/^\d+$/.test(f)) throw new HttpError(400, `strconv.ParseUint: parsing "${f}": invalid syntax`);
      flags = Number(f);
    }
    const s = this.#state;
    const old = s.kv.get(key);
    if (q.has('cas')) {
      const c = q.get('cas')!;
      if (!/^\d+$/.test(c)) throw new HttpError(400, `strconv.ParseUint: parsing "${c}": invalid syntax`);
      const cas = Number(c);
      if (cas === 0 ? old !== undefined : old?.modifyIndex !== cas) {
        s.index++;
        return false;
      }
    }
    const idx = ++s.index;
    s.kv.set(key, {
      key,
      flags,
      value: body.length > 0 ? body.toString('base64') : null,
      lockIndex: old?.lockIndex ?? 0,
      createIndex: old?.createIndex ?? idx,
      modifyIndex: idx,
    });
    s.kvIndex = idx;
    this.#changed();
    return true;
  }

  #kvDelete(key: string, q: URLSearchParams, caller: Caller): boolean {
    this.#require(caller, 'key', 'write', key);
    const s = this.#state;
    if (q.has('cas')) {
      const c = q.get('cas')!;
      if (!/^\d+$/.test(c)) throw new HttpError(400, `strconv.ParseUint: parsing "${c}": invalid syntax`);
      const cas = Number(c);
      const old = s.kv.get(key);
      if (cas === 0 || old?.modifyIndex !== cas) {
        s.index++;
        return false;
      }
    }
    const idx = ++s.index;
    const gone = q.has('recurse') ? [...s.kv.keys()].filter((k) => k.startsWith(key)) : s.kv.has(key) ? [key] : [];
    for (const k of gone) {
      s.kv.delete(k);
      s.tombstones.set(k, idx);
    }
    if (gone.length > 0) s.kvIndex = idx;
    this.#changed();
    return true;
  }
}

interface QueryResult {
  status: number;
  index: number;
  body: unknown;
  /** Some results were left out by ACLs (reported to non-anonymous tokens only). */
  filtered: boolean;
  /** ?raw: the value itself. */
  raw?: Buffer;
}

/** A KV entry as Consul's JSON has it (DirEntry: Session only when set). */
function kvJson(e: KvRec): Record<string, unknown> {
  return { LockIndex: e.lockIndex, Key: e.key, Flags: e.flags, Value: e.value, CreateIndex: e.createIndex, ModifyIndex: e.modifyIndex };
}

function decodeJson(body: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `Request decode failed: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'Request decode failed: the body must be a JSON object');
  return v as Record<string, unknown>;
}

/** The ACL token of a request: X-Consul-Token, else Authorization: Bearer, else ?token=. */
function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  const h = req.headers['x-consul-token'];
  if (typeof h === 'string' && h !== '') return h;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '');
  const q = url.searchParams.get('token');
  return q === null || q === '' ? undefined : q;
}

/** A KV key in a URL path: each segment encoded, the slashes kept. */
export function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** A fresh random token secret, shaped like Consul's (a UUID). */
export function consulToken(): string {
  return randomUUID();
}
