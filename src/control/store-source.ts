/**
 * @module control/store-source
 * The all-in-one gateway's config source: the live entities of every tenant in the control plane's store,
 * compiled into one declarative config (see compile.ts). A publish in this process is applied at once
 * (notify); the store's revision is also polled, so a publish made by another control-plane process on the
 * same store arrives within the poll interval.
 */
import { EventEmitter } from 'node:events';
import type { DeclarativeConfig } from '../model/declarative.js';
import type { ConfigProblem, PluginValidator } from '../model/validate.js';
import type { ConfigSource, ConfigSourceEvents } from '../sync/source.js';
import type { Store } from '../store/types.js';
import { compileForInstance } from './compile.js';

export class StoreConfigSource extends EventEmitter<ConfigSourceEvents> implements ConfigSource {
  private timer: NodeJS.Timeout | null = null;
  private revision = -1;
  private loading: Promise<void> | null = null;
  private again = false;
  /** The gray route versions this instance serves (GET /api/v1/instances shows them). */
  served: Array<{ tenant: string; routeId: string; version: number }> = [];

  constructor(
    private readonly store: Store,
    private readonly plugins: PluginValidator,
    readonly describe: string,
    /** This gateway's instance id: gray releases that name it apply here. */
    private readonly instanceId: string,
    private readonly log?: { error(obj: object, msg?: string): void },
    private readonly pollMs = 500,
  ) {
    super();
  }

  async load(): Promise<{ ok: true; config: DeclarativeConfig; revision: number } | { ok: false; problems: ConfigProblem[] }> {
    const live = await this.store.live();
    const r = compileForInstance(live.entities, live.gray, this.instanceId, this.plugins);
    if (!r.ok) return r;
    if (r.grayRefused.length) this.log?.error({ problems: r.grayRefused }, 'the gray releases for this instance make its config invalid: serving the live config alone');
    this.served = r.served;
    this.revision = live.revision;
    // Revision 0 of the store (nothing published yet) is revision 1 of the gateway: workers count from 1.
    return { ok: true, config: r.config, revision: live.revision + 1 };
  }

  /** Load if the store moved on (or always, with force) and emit the result. */
  reload(force = false): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.again = false;
          const rev = await this.store.liveRevision();
          if (!force && rev === this.revision) continue;
          const r = await this.load();
          if (r.ok) this.emit('config', r.config, r.revision);
          else {
            this.revision = rev;
            this.emit('invalid', r.problems);
          }
        } while (this.again);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /** A publish happened in this process: apply it now rather than at the next poll. */
  notify(): void {
    this.reload().catch(() => {});
  }

  watch(): void {
    this.timer ??= setInterval(() => this.notify(), this.pollMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
