/**
 * @module discovery/etcd
 * The etcd discovery source: a registry prefix services write their instances under, one key per instance,
 *
 *   <prefix>/<service>/<instance id>  =  {"host": "10.0.0.5", "port": 8080, "weight": 1, "metadata": {...}}
 *
 * (weight and metadata optional; any other top-level field joins the metadata). A watch reads the service's
 * keys at one revision, then follows them from the next; a compacted watch, a lost connection or a failed
 * read leads to a full read again, with backoff, while the manager keeps the last nodes. Instances usually
 * attach their key to a lease they keep alive, so an instance that dies drops out when its lease expires.
 */
import { readFileSync } from 'node:fs';
import type { DiscoverySettings, EtcdDiscoverySettings } from '../config/settings.js';
import { EtcdClient, EtcdError, type KeyValue } from '../etcd/client.js';
import type { DiscoveredNode, DiscoveryBackend, DiscoveryHandlers, DiscoveryLogger, DiscoverySpec, DiscoveryWatch } from './types.js';
import { canonicalNodes, sameNodes } from './spec.js';
import { WatchSet } from './watch-set.js';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

/** The registry prefix without trailing slashes. */
export function registryPrefix(prefix: string): string {
  return prefix.replace(/\/+$/, '');
}

/** The etcd key of one instance of a service. */
export function instanceKey(prefix: string, service: string, instanceId: string): string {
  return `${registryPrefix(prefix)}/${service}/${instanceId}`;
}

/**
 * One instance from its key's value; a string saying what is wrong when it is not a usable instance. Fields
 * other than host, port, weight and metadata join the metadata (metadata's own fields win).
 */
export function parseInstance(value: string): DiscoveredNode | string {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return 'is not JSON';
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'is not a JSON object';
  const { host, port, weight, metadata, ...rest } = v as Record<string, unknown>;
  if (typeof host !== 'string' || host.length === 0 || host.length > 253) return 'needs "host": a host name or IP address';
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return 'needs "port": an integer from 1 to 65535';
  if (weight !== undefined && (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 100000)) return '"weight" must be an integer from 0 to 100000';
  if (metadata !== undefined && (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))) return '"metadata" must be an object';
  const meta = { ...rest, ...(metadata as Record<string, unknown> | undefined) };
  const node: DiscoveredNode = { host, port, weight: (weight as number | undefined) ?? 1 };
  if (Object.keys(meta).length > 0) node.metadata = meta;
  return node;
}

function hasTags(node: DiscoveredNode, tags: readonly string[] | undefined): boolean {
  if (!tags?.length) return true;
  const own = node.metadata?.tags;
  return Array.isArray(own) && tags.every((t) => own.includes(t));
}

class EtcdServiceWatch implements DiscoveryWatch {
  readonly #client: EtcdClient;
  readonly #spec: DiscoverySpec;
  readonly #handlers: DiscoveryHandlers;
  readonly #log: DiscoveryLogger;
  /** `<prefix>/<service>/`: every instance key starts with it. */
  readonly #dir: string;
  /** Instances by instance id (only well-formed ones). */
  #instances = new Map<string, DiscoveredNode>();
  /** Values already reported as malformed, so one bad key is logged once, not at every resync. */
  readonly #reported = new Map<string, string>();
  #revision = 0;
  #watcher: { cancel(): void } | null = null;
  #timer: NodeJS.Timeout | null = null;
  #retryMs = RETRY_MIN_MS;
  #closed = false;
  #last: DiscoveredNode[] | null = null;

  constructor(client: EtcdClient, prefix: string, spec: DiscoverySpec, handlers: DiscoveryHandlers, log: DiscoveryLogger) {
    this.#client = client;
    this.#spec = spec;
    this.#handlers = handlers;
    this.#log = log;
    this.#dir = `${registryPrefix(prefix)}/${spec.service}/`;
  }

  start(): void {
    void this.#resync();
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.cancel();
    this.#watcher = null;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Take one key's value (or its deletion); keys deeper than one segment below the service are not instances. */
  #take(kv: KeyValue, deleted: boolean): void {
    const id = kv.key.slice(this.#dir.length);
    if (!id || id.includes('/')) return;
    if (deleted) {
      this.#instances.delete(id);
      this.#reported.delete(id);
      return;
    }
    const parsed = parseInstance(kv.value);
    if (typeof parsed === 'string') {
      this.#instances.delete(id);
      if (this.#reported.get(id) !== kv.value) {
        this.#reported.set(id, kv.value);
        this.#log.warn({ source: 'etcd', service: this.#spec.service, key: kv.key, problem: parsed }, 'etcd registry key is not a usable instance; ignored');
      }
      return;
    }
    this.#reported.delete(id);
    this.#instances.set(id, parsed);
  }

  #report(): void {
    const nodes = canonicalNodes([...this.#instances.values()].filter((n) => hasTags(n, this.#spec.tags)));
    if (this.#last !== null && sameNodes(this.#last, nodes)) return;
    this.#last = nodes;
    this.#handlers.onNodes(nodes);
  }

  async #resync(): Promise<void> {
    this.#watcher?.cancel();
    this.#watcher = null;
    let read: { kvs: KeyValue[]; revision: number };
    try {
      read = await this.#client.range(this.#dir, { prefix: true });
    } catch (e) {
      if (this.#closed) return;
      this.#failed(e);
      return;
    }
    if (this.#closed) return;
    this.#retryMs = RETRY_MIN_MS;
    this.#instances = new Map();
    for (const kv of read.kvs) this.#take(kv, false);
    this.#revision = read.revision;
    this.#report();
    this.#follow();
  }

  #follow(): void {
    if (this.#closed) return;
    this.#watcher = this.#client.watch(
      this.#dir,
      this.#revision + 1,
      (events, revision) => {
        if (this.#closed) return;
        for (const ev of events) this.#take(ev.kv, ev.type === 'delete');
        this.#revision = Math.max(this.#revision, revision);
        if (events.length > 0) this.#report();
      },
      (err) => {
        this.#watcher = null;
        if (this.#closed) return;
        if (err instanceof EtcdError && err.code === 'compacted') {
          // Events were missed: read the whole service again (not a source failure).
          void this.#resync();
          return;
        }
        this.#failed(err);
      },
    );
  }

  #failed(e: unknown): void {
    // The next good read reports its list even if unchanged: that tells the manager the source is back.
    this.#last = null;
    const msg = e instanceof EtcdError ? `${e.code}: ${e.message}` : ((e as Error)?.message ?? String(e));
    this.#handlers.onError(new Error(`etcd registry ${this.#dir}: ${msg}`, { cause: e }));
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#resync();
    }, this.#retryMs);
    this.#timer.unref();
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
  }
}

class EtcdBackend implements DiscoveryBackend {
  readonly type = 'etcd' as const;
  readonly #settings: EtcdDiscoverySettings;
  readonly #log: DiscoveryLogger;
  #client: EtcdClient | null = null;
  readonly #watches = new WatchSet();

  constructor(settings: EtcdDiscoverySettings, log: DiscoveryLogger) {
    if (!settings.endpoints?.length) {
      throw new Error('discovery.etcd.endpoints is not set (and configProvider is not etcd): the etcd discovery source has no etcd to read');
    }
    this.#settings = settings;
    this.#log = log;
  }

  /** One client for every watch of this backend, made on first use (TLS files are read then). */
  #clientFor(): EtcdClient {
    if (this.#client) return this.#client;
    const s = this.#settings;
    const read = (f: string | undefined, what: string) => {
      if (!f) return undefined;
      try {
        return readFileSync(f, 'utf8');
      } catch (e) {
        throw new Error(`discovery.etcd.tls.${what}: cannot read ${f} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    };
    this.#client = new EtcdClient({
      endpoints: s.endpoints!,
      username: s.username,
      password: s.password,
      timeout: s.timeout,
      tls: s.tls ? { ca: read(s.tls.ca, 'ca'), cert: read(s.tls.cert, 'cert'), key: read(s.tls.key, 'key'), rejectUnauthorized: s.tls.rejectUnauthorized } : undefined,
    });
    return this.#client;
  }

  watch(spec: DiscoverySpec, handlers: DiscoveryHandlers): DiscoveryWatch {
    if (spec.type !== 'etcd') throw new Error(`the etcd backend cannot follow a ${spec.type} source`);
    if (!spec.service || spec.service.includes('/')) throw new Error(`etcd discovery: service "${spec.service}" must be one key segment (no "/")`);
    const w = new EtcdServiceWatch(this.#clientFor(), this.#settings.prefix, spec, handlers, this.#log);
    return this.#watches.run(w);
  }

  async close(): Promise<void> {
    this.#watches.closeAll();
    const c = this.#client;
    this.#client = null;
    await c?.close();
  }
}

/** The etcd backend for the settings' discovery section (see resolveDiscoverySettings for the endpoint default). */
export function createEtcdBackend(settings: DiscoverySettings, log: DiscoveryLogger): DiscoveryBackend {
  return new EtcdBackend(settings.etcd, log);
}
