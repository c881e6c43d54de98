/**
 * @module cluster/etcd-source
 * Cluster mode's config source: the live entities the control plane publishes to etcd, one key per entity
 * (<prefix>/config/<tenant>/<kind>/<id>, the entity's JSON). It loads everything at one revision, then
 * watches from the next one and applies each watch response as a whole, so a gateway runs the old config or
 * the new one, never part of each. A compacted watch or a lost connection leads to a full resync. While etcd
 * is unreachable the running config keeps serving (the source reports itself degraded); every config applied
 * is saved to a local file, which a gateway started while etcd is down serves from.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { DeclarativeConfig } from '../model/declarative.js';
import type { ConfigProblem, PluginValidator } from '../model/validate.js';
import type { ConfigSource, ConfigSourceEvents, SourceHealth } from '../sync/source.js';
import { compileForInstance, type GrayOverride, type StoredEntity } from '../control/compile.js';
import { ENTITY_KINDS, type EntityKind } from '../store/types.js';
import { EtcdError, type EtcdClient, type KeyValue } from '../etcd/client.js';

/** The etcd key of a live entity. */
export function entityKey(prefix: string, tenant: string, kind: EntityKind, id: string): string {
  return `${prefix}/config/${tenant}/${kind}/${id}`;
}

/** The etcd key of a route's gray release (beside the entities, so one watch sees both in order). */
export function grayKey(prefix: string, tenant: string, routeId: string): string {
  return `${prefix}/config/${tenant}/${GRAY_KIND}/${routeId}`;
}

const GRAY_KIND = 'gray-routes';

/** Parse a gray release key; null for a key that is not one. */
export function parseGrayKey(prefix: string, key: string): { tenant: string; routeId: string } | null {
  const base = configPrefix(prefix);
  if (!key.startsWith(base)) return null;
  const parts = key.slice(base.length).split('/');
  if (parts.length !== 3 || !parts[0] || parts[1] !== GRAY_KIND || !parts[2]) return null;
  return { tenant: parts[0], routeId: parts[2] };
}

export function configPrefix(prefix: string): string {
  return `${prefix}/config/`;
}

/** Parse a config key back into tenant, kind and id; null for a key that is not one. */
export function parseEntityKey(prefix: string, key: string): { tenant: string; kind: EntityKind; id: string } | null {
  const base = configPrefix(prefix);
  if (!key.startsWith(base)) return null;
  const parts = key.slice(base.length).split('/');
  if (parts.length !== 3 || !parts[0] || !parts[2]) return null;
  if (!(ENTITY_KINDS as readonly string[]).includes(parts[1]!)) return null;
  return { tenant: parts[0], kind: parts[1] as EntityKind, id: parts[2] };
}

interface Cached {
  revision: number;
  entities: StoredEntity[];
  gray?: GrayOverride[];
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

export class EtcdConfigSource extends EventEmitter<ConfigSourceEvents> implements ConfigSource {
  readonly describe: string;
  /** The entities as of `revision`, by key. */
  private entities = new Map<string, StoredEntity>();
  /** Gray releases by key (all of them; those naming this instance apply). */
  private gray = new Map<string, GrayOverride>();
  private revision = 0;
  /** The gray route versions this instance serves (reported with its heartbeat). */
  served: Array<{ tenant: string; routeId: string; version: number }> = [];
  private watcher: { cancel(): void } | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_MIN_MS;
  private closed = false;
  private degradedSince: string | null = null;
  private lastError: string | null = null;

  constructor(
    private readonly client: EtcdClient,
    private readonly prefix: string,
    private readonly plugins: PluginValidator,
    /** Where the last applied config is saved, for a start while etcd is down. */
    private readonly cacheFile: string,
    private readonly log: Logger,
    /** This gateway's instance id: gray releases that name it apply here. */
    private readonly instanceId: string | null = null,
  ) {
    super();
    this.describe = `etcd ${prefix}`;
  }

  health(): SourceHealth {
    return this.degradedSince === null
      ? { ok: true, detail: { source: 'etcd', revision: this.revision } }
      : { ok: false, detail: { source: 'etcd', revision: this.revision, degradedSince: this.degradedSince, error: this.lastError } };
  }

  private compile(): { ok: true; config: DeclarativeConfig } | { ok: false; problems: ConfigProblem[] } {
    const r = compileForInstance([...this.entities.values()], [...this.gray.values()], this.instanceId, this.plugins);
    if (!r.ok) return r;
    if (r.grayRefused.length) this.log.error({ problems: r.grayRefused }, 'the gray releases for this instance make its config invalid: serving the live config alone');
    this.served = r.served;
    return { ok: true, config: r.config };
  }

  private grayOf(kv: KeyValue): GrayOverride | null {
    const at = parseGrayKey(this.prefix, kv.key);
    if (!at) return null;
    try {
      const g = JSON.parse(kv.value) as Partial<GrayOverride>;
      if (!g || typeof g.content !== 'object' || g.content === null || !Array.isArray(g.instances) || typeof g.version !== 'number') throw new Error('bad shape');
      return { tenant: at.tenant, routeId: at.routeId, version: g.version, instances: g.instances.map(String), content: g.content };
    } catch {
      this.log.error({ key: kv.key }, 'etcd gray release key does not hold {version, instances, content}; ignored');
      return null;
    }
  }

  /** Take one key's new value (or its deletion) into the state; a malformed value leaves the key as it was. */
  private take(kv: KeyValue, deleted: boolean): void {
    const gray = parseGrayKey(this.prefix, kv.key) !== null;
    if (deleted) {
      (gray ? this.gray : this.entities).delete(kv.key);
      return;
    }
    if (gray) {
      const g = this.grayOf(kv);
      if (g) this.gray.set(kv.key, g);
    } else {
      const e = this.entityOf(kv);
      if (e) this.entities.set(kv.key, e);
    }
  }

  private entityOf(kv: KeyValue): StoredEntity | null {
    const at = parseEntityKey(this.prefix, kv.key);
    if (!at) return null;
    try {
      const content = JSON.parse(kv.value) as unknown;
      if (content === null || typeof content !== 'object' || Array.isArray(content)) throw new Error('not an object');
      return { ...at, content: content as Record<string, unknown> };
    } catch {
      this.log.error({ key: kv.key }, 'etcd config key does not hold a JSON object; ignored');
      return null;
    }
  }

  /** Read everything at one revision. */
  private async fetchAll(): Promise<void> {
    const r = await this.client.range(configPrefix(this.prefix), { prefix: true });
    this.entities = new Map();
    this.gray = new Map();
    for (const kv of r.kvs) this.take(kv, false);
    this.revision = r.revision;
  }

  private save(): void {
    try {
      mkdirSync(dirname(this.cacheFile), { recursive: true, mode: 0o700 });
      const tmp = `${this.cacheFile}.${process.pid}.tmp`;
      const data: Cached = { revision: this.revision, entities: [...this.entities.values()], gray: [...this.gray.values()] };
      // The saved config holds the same secrets as etcd: readable by this user only.
      writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 });
      renameSync(tmp, this.cacheFile);
    } catch (e) {
      this.log.warn({ err: (e as Error).message, file: this.cacheFile }, 'cannot save the config for starts while etcd is down');
    }
  }

  private loadSaved(): boolean {
    try {
      const data = JSON.parse(readFileSync(this.cacheFile, 'utf8')) as Cached;
      this.entities = new Map(data.entities.map((e) => [entityKey(this.prefix, e.tenant, e.kind, e.id), e]));
      this.gray = new Map((data.gray ?? []).map((g) => [grayKey(this.prefix, g.tenant, g.routeId), g]));
      this.revision = data.revision;
      return true;
    } catch {
      return false;
    }
  }

  async load(): Promise<{ ok: true; config: DeclarativeConfig; revision: number } | { ok: false; problems: ConfigProblem[] }> {
    try {
      await this.fetchAll();
      this.markUp();
    } catch (e) {
      this.markDown(e);
      if (!this.loadSaved()) {
        return { ok: false, problems: [{ path: '(etcd)', message: `cannot be read (${(e as Error).message}) and no config was saved by an earlier run` }] };
      }
      this.log.warn({ file: this.cacheFile, revision: this.revision }, 'etcd is unreachable: serving the config saved by the last run until it is back');
    }
    const c = this.compile();
    if (!c.ok) return c;
    if (this.degradedSince === null) this.save();
    return { ok: true, config: c.config, revision: Math.max(1, this.revision) };
  }

  /** Read everything again (SIGHUP, or after a compaction or an outage), apply it, and watch from there. */
  async reload(): Promise<void> {
    this.watcher?.cancel();
    this.watcher = null;
    try {
      await this.fetchAll();
    } catch (e) {
      this.markDown(e);
      this.scheduleRetry();
      return;
    }
    this.markUp();
    this.apply();
    this.startWatch();
  }

  private apply(): void {
    const c = this.compile();
    if (!c.ok) {
      this.emit('invalid', c.problems);
      return;
    }
    this.save();
    this.emit('config', c.config, Math.max(1, this.revision));
  }

  watch(): void {
    if (this.degradedSince !== null) {
      // Started from the saved config: get the real one as soon as etcd answers.
      this.scheduleRetry(0);
      return;
    }
    this.startWatch();
  }

  private startWatch(): void {
    if (this.closed) return;
    this.watcher = this.client.watch(
      configPrefix(this.prefix),
      this.revision + 1,
      (events, revision) => {
        for (const ev of events) this.take(ev.kv, ev.type === 'delete');
        this.revision = Math.max(this.revision, revision);
        if (events.length > 0) this.apply();
      },
      (err) => {
        this.watcher = null;
        if (this.closed) return;
        if (err instanceof EtcdError && err.code === 'compacted') {
          this.log.warn({ from: this.revision + 1, compactRevision: err.compactRevision }, 'etcd watch compacted: reading the whole config again');
          void this.reload();
          return;
        }
        this.markDown(err);
        this.scheduleRetry();
      },
    );
  }

  private scheduleRetry(delay = this.retryMs): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.reload();
    }, delay);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private markDown(e: unknown): void {
    const msg = e instanceof EtcdError ? `${e.code}: ${e.message}` : (e as Error)?.message ?? String(e);
    if (this.degradedSince === null) {
      this.degradedSince = new Date().toISOString();
      this.log.error({ err: msg, revision: this.revision }, 'etcd unreachable: serving the last config until it is back');
    }
    this.lastError = msg;
  }

  private markUp(): void {
    if (this.degradedSince !== null) this.log.info({ revision: this.revision }, 'etcd reachable again');
    this.degradedSince = null;
    this.lastError = null;
    this.retryMs = RETRY_MIN_MS;
  }

  close(): void {
    this.closed = true;
    this.watcher?.cancel();
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}
