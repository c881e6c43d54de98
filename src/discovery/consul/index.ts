/**
 * @module discovery/consul
 * The consul and consul-kv discovery sources, over the named Consul clusters of the settings
 * (discovery.consul; an upstream names one in discovery.cluster, the first one when it names none):
 *
 * - consul follows a service in the catalog through the health API, passing instances only
 *   (GET /v1/health/service/<service>?passing=true[&tag=...][&dc=...]);
 * - consul-kv follows a KV folder in the nginx-upsync-module layout
 *   (GET /v1/kv/<kvPrefix>/<service>/?recurse=true[&dc=...]), one key `<host>:<port>` per node.
 *
 * Both use blocking queries (see blocking.ts), so a change arrives as soon as Consul has it and an idle
 * service costs one request per wait. Each cluster has its own keep-alive connection pool, made when a watch
 * first needs it (TLS files are read then) and closed by close().
 */
import type { DiscoveryBackend, DiscoveryHandlers, DiscoveryLogger, DiscoverySpec, DiscoveryWatch } from '../types.js';
import { BlockingWatch, type BlockingOptions, type BlockingRead } from './blocking.js';
import { ConsulClient, ConsulError, type ConsulAnswer, type ConsulClusterConfig } from './client.js';
import { parseHealthService, type ParsedNodes } from './health.js';
import { parseKvService } from './kv.js';
import { WatchSet } from '../watch-set.js';

export { ConsulClient, ConsulError } from './client.js';
export type { ConsulClusterConfig } from './client.js';

/** Loop tuning (rate limit and retry backoff); the defaults suit production, tests may shorten them. */
export type ConsulBackendOptions = Pick<BlockingOptions, 'minInterval' | 'retryMin' | 'retryMax' | 'random'>;

type ConsulType = 'consul' | 'consul-kv';

/**
 * What the factories take: the settings' discovery section (whose `consul` is the list of clusters, see
 * ConsulClusterSettings in config/settings), or the list itself.
 */
export type ConsulSettingsInput = { readonly consul?: readonly ConsulClusterConfig[] } | readonly ConsulClusterConfig[];

function clustersOf(settings: ConsulSettingsInput): readonly ConsulClusterConfig[] {
  if (Array.isArray(settings)) return settings;
  return (settings as { readonly consul?: readonly ConsulClusterConfig[] }).consul ?? [];
}

/** A KV path in a URL: each segment encoded, the slashes kept. */
function kvPath(dir: string): string {
  return `/v1/kv/${dir.split('/').map(encodeURIComponent).join('/')}`;
}

/** The service's KV folder: "<prefix>/<service>/" (prefix and service without outer slashes). */
export function kvDir(prefix: string, service: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return p ? `${p}/${service}/` : `${service}/`;
}

/**
 * What the ACL headers say about an answer that came back without entries: an Error when the emptiness may
 * be the token's doing rather than the service's.
 */
function aclEmptiness(client: ConsulClient, answer: ConsulAnswer, entries: number, needs: string): ConsulError | null {
  if (entries > 0) return null;
  if (answer.filteredByAcls) {
    return new ConsulError('acl', `consul cluster "${client.name}" (${client.origin}): every result was left out by ACLs (X-Consul-Results-Filtered-By-ACLs): the token needs ${needs}`);
  }
  if (!client.hasToken && answer.defaultAclPolicy === 'deny') {
    return new ConsulError(
      'acl',
      `consul cluster "${client.name}" (${client.origin}): no results, no token is configured and Consul denies by default, so "nothing there" cannot be told from "not allowed": set the cluster's token`,
    );
  }
  return null;
}

/** Logs each problem line once while it lasts (not again at every answer that still has it). */
class ProblemLog {
  #seen = new Set<string>();

  constructor(
    private readonly log: DiscoveryLogger,
    private readonly fields: Record<string, unknown>,
    private readonly what: string,
  ) {}

  note(problems: readonly string[]): void {
    const now = new Set(problems);
    for (const p of now) if (!this.#seen.has(p)) this.log.warn({ ...this.fields, problem: p }, this.what);
    this.#seen = now;
  }
}

function parseJson(client: ConsulClient, path: string, body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new ConsulError('protocol', `consul cluster "${client.name}" (${client.origin}): GET ${path}: the answer is not JSON`);
  }
}

function parsed(client: ConsulClient, path: string, parse: () => ParsedNodes): ParsedNodes {
  try {
    return parse();
  } catch (e) {
    throw new ConsulError('protocol', `consul cluster "${client.name}" (${client.origin}): GET ${path}: ${(e as Error).message}`);
  }
}

/** consul: the passing instances of a catalog service. */
function healthRead(client: ConsulClient, spec: DiscoverySpec, log: DiscoveryLogger, fields: Record<string, unknown>): BlockingRead {
  const path = `/v1/health/service/${encodeURIComponent(spec.service)}`;
  const params: Array<[string, string]> = [['passing', 'true'], ...(spec.tags ?? []).map((t): [string, string] => ['tag', t])];
  const problems = new ProblemLog(log, fields, 'consul service instance left out');
  const partial = new ProblemLog(log, fields, 'consul left some instances out for lack of ACL rights');
  return async (index, waitMs, signal) => {
    const answer = await client.read(path, params, { index, waitMs, signal });
    if (answer.status === 404) throw new ConsulError('status', `consul cluster "${client.name}" (${client.origin}): GET ${path}: HTTP 404`, { status: 404 });
    const result = parsed(client, path, () => parseHealthService(parseJson(client, path, answer.body), { tags: spec.tags, datacenter: client.datacenter }));
    const denied = aclEmptiness(client, answer, result.entries, `service:read on "${spec.service}" and node:read on its nodes`);
    if (denied) throw denied;
    partial.note(answer.filteredByAcls ? ['the token may not read every instance or node (X-Consul-Results-Filtered-By-ACLs)'] : []);
    problems.note(result.problems);
    return { index: answer.index, nodes: result.nodes };
  };
}

/** consul-kv: the nodes listed under the service's KV folder. */
function kvRead(client: ConsulClient, spec: DiscoverySpec, log: DiscoveryLogger, fields: Record<string, unknown>): BlockingRead {
  const dir = kvDir(client.kvPrefix, spec.service);
  const path = kvPath(dir);
  const params: Array<[string, string]> = [['recurse', 'true']];
  const problems = new ProblemLog(log, { ...fields, folder: dir }, 'consul KV entry left out');
  const partial = new ProblemLog(log, { ...fields, folder: dir }, 'consul left some KV entries out for lack of ACL rights');
  return async (index, waitMs, signal) => {
    const answer = await client.read(path, params, { index, waitMs, signal });
    // 404: nothing under the folder (yet); the index still says when that changes.
    const result = answer.status === 404 ? { nodes: [], problems: [], entries: 0 } : parsed(client, path, () => parseKvService(parseJson(client, path, answer.body), dir));
    const denied = aclEmptiness(client, answer, result.entries, `key:read on "${dir}"`);
    if (denied) throw denied;
    partial.note(answer.filteredByAcls ? ['the token may not read every key of the folder (X-Consul-Results-Filtered-By-ACLs)'] : []);
    problems.note(result.problems);
    return { index: answer.index, nodes: result.nodes };
  };
}

/** Characters a consul-kv service may not have: it is one or more KV path segments, never "." or "..". */
function checkKvService(service: string): void {
  if (service.startsWith('/') || service.endsWith('/') || service.includes('//')) {
    throw new Error(`consul-kv discovery: service "${service}" must be a KV folder name without leading, trailing or doubled "/"`);
  }
  if (service.split('/').some((s) => s === '.' || s === '..')) throw new Error(`consul-kv discovery: service "${service}" must not contain "." or ".." segments`);
}

class ConsulBackend implements DiscoveryBackend {
  readonly type: ConsulType;
  readonly #clusters: readonly ConsulClusterConfig[];
  readonly #log: DiscoveryLogger;
  readonly #options: ConsulBackendOptions;
  readonly #clients = new Map<string, ConsulClient>();
  readonly #watches = new WatchSet();
  #closed = false;

  constructor(type: ConsulType, clusters: readonly ConsulClusterConfig[], log: DiscoveryLogger, options: ConsulBackendOptions) {
    this.type = type;
    this.#clusters = clusters;
    this.#log = log;
    this.#options = options;
  }

  /** The cluster a spec names, or the first one; throws saying what is configured when there is none. */
  #cluster(name: string | undefined): ConsulClusterConfig {
    if (this.#clusters.length === 0) throw new Error(`${this.type} discovery: no Consul cluster is configured (settings: discovery.consul)`);
    if (name === undefined || name === '') return this.#clusters[0]!;
    const found = this.#clusters.find((c) => c.name === name);
    if (!found) {
      throw new Error(`${this.type} discovery: no Consul cluster named "${name}" in discovery.consul (known: ${this.#clusters.map((c) => `"${c.name}"`).join(', ')})`);
    }
    return found;
  }

  /** The cluster's client, made on first use. */
  #client(cluster: ConsulClusterConfig): ConsulClient {
    let c = this.#clients.get(cluster.name);
    if (!c) {
      c = new ConsulClient(cluster);
      this.#clients.set(cluster.name, c);
    }
    return c;
  }

  watch(spec: DiscoverySpec, handlers: DiscoveryHandlers): DiscoveryWatch {
    if (spec.type !== this.type) throw new Error(`the ${this.type} backend cannot follow a ${spec.type} source`);
    if (this.#closed) throw new Error(`the ${this.type} backend is closed`);
    if (typeof spec.service !== 'string' || spec.service === '') throw new Error(`${this.type} discovery: the service name is empty`);
    if (this.type === 'consul-kv') checkKvService(spec.service);
    const cluster = this.#cluster(spec.cluster);
    const client = this.#client(cluster);
    const fields: Record<string, unknown> = { source: this.type, cluster: cluster.name, service: spec.service };
    const read = this.type === 'consul' ? healthRead(client, spec, this.#log, fields) : kvRead(client, spec, this.#log, fields);
    const w = new BlockingWatch(read, handlers, this.#log, fields, { ...this.#options, waitMs: client.waitMs });
    return this.#watches.run(w);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watches.closeAll();
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** The consul source (catalog services, passing instances) over the settings' Consul clusters. */
export function createConsulBackend(settings: ConsulSettingsInput, log: DiscoveryLogger, options: ConsulBackendOptions = {}): DiscoveryBackend {
  return new ConsulBackend('consul', clustersOf(settings), log, options);
}

/** The consul-kv source (nginx-upsync-module KV layout) over the settings' Consul clusters. */
export function createConsulKvBackend(settings: ConsulSettingsInput, log: DiscoveryLogger, options: ConsulBackendOptions = {}): DiscoveryBackend {
  return new ConsulBackend('consul-kv', clustersOf(settings), log, options);
}
