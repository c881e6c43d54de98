/**
 * @module cluster/publisher
 * The control plane's side of cluster mode: the store is the source of truth, etcd carries what is live to
 * the gateways, one key per entity. A publish writes (or deletes) that one key. A full reconcile at start and
 * every minute writes what differs and removes what should not be there, in transactions of at most 100
 * operations (etcd's default limit is 128), so etcd always converges to the store even after an outage or a
 * hand edit. Gray releases travel the same way, beside the entities. While etcd is unreachable publishes are kept in the store and reconciled when it is back.
 */
import type { Logger } from 'pino';
import type { Store, EntityKind } from '../store/types.js';
import type { EtcdClient } from '../etcd/client.js';
import type { GrayRecord } from '../store/types.js';
import { configPrefix, entityKey, grayKey } from './etcd-source.js';

/** What a gateway needs of a gray release (the store's record carries more). */
function grayValue(g: GrayRecord): string {
  return JSON.stringify({ version: g.version, baseVersion: g.baseVersion, instances: g.instances, content: g.content });
}

const BATCH = 100;
const RECONCILE_MS = 60_000;
const RETRY_MS = 2_000;

export class EtcdPublisher {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private dirty = false;
  private healthy = true;

  constructor(
    private readonly client: EtcdClient,
    private readonly prefix: string,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Reconcile now and then periodically. */
  async start(): Promise<void> {
    await this.reconcile();
    this.schedule(RECONCILE_MS);
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.reconcile().finally(() => this.schedule(this.dirty ? RETRY_MS : RECONCILE_MS));
    }, ms);
    this.timer.unref();
  }

  get ok(): boolean {
    return this.healthy;
  }

  /**
   * Entities were published or gray releases changed, together: write their live state (or removal) in one etcd
   * transaction, so a gateway sees all of them at once or none. On failure, reconcile soon.
   */
  async published(changes: Array<{ tenant: string; kind: EntityKind | 'gray'; id: string }>): Promise<void> {
    try {
      const puts: Array<{ key: string; value: string }> = [];
      const deletes: string[] = [];
      const grays = new Map<string, GrayRecord[]>();
      for (const c of changes) {
        if (c.kind === 'gray') {
          if (!grays.has(c.tenant)) grays.set(c.tenant, await this.store.listGray(c.tenant));
          const g = grays.get(c.tenant)!.find((x) => x.routeId === c.id);
          const key = grayKey(this.prefix, c.tenant, c.id);
          if (g) puts.push({ key, value: grayValue(g) });
          else deletes.push(key);
          continue;
        }
        const key = entityKey(this.prefix, c.tenant, c.kind, c.id);
        const e = await this.store.getEntity(c.tenant, c.kind, c.id);
        if (e?.live) puts.push({ key, value: JSON.stringify(e.live) });
        else deletes.push(key);
      }
      for (let i = 0; i < Math.max(puts.length, deletes.length); i += BATCH) {
        await this.client.batch(puts.slice(i, i + BATCH), deletes.slice(i, i + BATCH));
      }
      this.up();
    } catch (err) {
      this.down(err);
      this.dirty = true;
      this.schedule(RETRY_MS);
    }
  }

  /** Make etcd hold exactly the store's live entities and gray releases. */
  reconcile(): Promise<void> {
    this.running ??= (async () => {
      try {
        const live = await this.store.live();
        const want = new Map(live.entities.map((e) => [entityKey(this.prefix, e.tenant, e.kind, e.id), JSON.stringify(e.content)]));
        for (const g of live.gray) want.set(grayKey(this.prefix, g.tenant, g.routeId), grayValue(g));
        const have = await this.client.range(configPrefix(this.prefix), { prefix: true });
        const puts: Array<{ key: string; value: string }> = [];
        const deletes: string[] = [];
        const seen = new Set<string>();
        for (const kv of have.kvs) {
          seen.add(kv.key);
          const v = want.get(kv.key);
          if (v === undefined) deletes.push(kv.key);
          else if (v !== kv.value) puts.push({ key: kv.key, value: v });
        }
        for (const [key, value] of want) if (!seen.has(key)) puts.push({ key, value });
        for (let i = 0; i < Math.max(puts.length, deletes.length); i += BATCH) {
          await this.client.batch(puts.slice(i, i + BATCH), deletes.slice(i, i + BATCH));
        }
        if (puts.length || deletes.length) this.log.info({ written: puts.length, removed: deletes.length }, 'etcd reconciled with the store');
        this.dirty = false;
        this.up();
      } catch (err) {
        this.down(err);
        this.dirty = true;
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private down(err: unknown): void {
    if (this.healthy) this.log.error({ err: (err as Error)?.message }, 'cannot write to etcd; published changes reach the gateways when it is back');
    this.healthy = false;
  }

  private up(): void {
    if (!this.healthy) this.log.info('etcd writable again');
    this.healthy = true;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
