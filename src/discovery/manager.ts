/**
 * @module discovery/manager
 * The one place in a gateway that follows discovery sources (the primary process, or the only process). It
 * keeps one watch per spec key however many upstreams share it, starts and stops watches as configs change,
 * and decides what node list each key has:
 *
 * - a source that cannot be read keeps its last known nodes (logged once per outage, counted in
 *   gatehouse_discovery_errors_total, gatehouse_discovery_source_up 0), never an empty list;
 * - an empty answer from a source that answers is honoured only once it has lasted the grace period
 *   (discovery.emptyGracePeriod, or the upstream's own), so a registry hiccup does not turn traffic into 503s;
 * - any other answer is taken at once.
 *
 * Every change is emitted as 'nodes' (key, nodes), which the primary hands to its workers; 'forget' (key) when
 * no upstream uses a key any more.
 */
import { EventEmitter } from 'node:events';
import type { DiscoverySettings } from '../config/settings.js';
import type { DiscoverySample } from '../status/metrics.js';
import { DiscoveryBackends } from './index.js';
import { canonicalNodes, discoverySpecs, sameNodes, type UpstreamsOfConfig } from './spec.js';
import type { DiscoveredNode, DiscoveryLogger, DiscoverySpec, DiscoveryWatch } from './types.js';

/** What is known about one watched key (a copy; changing it changes nothing). */
export interface DiscoveryState {
  key: string;
  spec: DiscoverySpec;
  /** The nodes upstreams using this key get; null until the source first answered. */
  nodes: DiscoveredNode[] | null;
  /** Whether the last attempt to read the source worked; null before the first attempt ended. */
  up: boolean | null;
  /** The last failure's message while the source is down. */
  error?: string;
  /** Failed attempts since the watch started. */
  errors: number;
  /** ISO time the source went down (while it is down). */
  downSince?: string;
  /** ISO time the source started answering "no nodes" while the last nodes are kept (grace period running). */
  emptySince?: string;
  /** ISO time the node list last changed. */
  updatedAt?: string;
}

interface Entry {
  readonly key: string;
  readonly spec: DiscoverySpec;
  watch: DiscoveryWatch | null;
  nodes: DiscoveredNode[] | null;
  up: boolean | null;
  error: string | null;
  errors: number;
  downSince: number | null;
  emptySince: number | null;
  emptyTimer: NodeJS.Timeout | null;
  updatedAt: number | null;
  /** Resolves once the source first answered or failed. */
  readonly answered: Promise<void>;
  markAnswered: () => void;
}

export interface DiscoveryManagerOptions {
  settings: DiscoverySettings;
  log: DiscoveryLogger;
  /** The backends to watch with (default: the built-in ones, made from `settings`). */
  backends?: DiscoveryBackends;
}

export interface DiscoveryManagerEvents {
  /** The node list of a key changed (also its first answer). */
  nodes: [key: string, nodes: DiscoveredNode[]];
  /** No upstream uses this key any more; its watch is closed. */
  forget: [key: string];
}

/** How many added or removed addresses a change's log line lists. */
const LOGGED_NODES = 20;

function iso(ms: number | null): string | undefined {
  return ms === null ? undefined : new Date(ms).toISOString();
}

/** A node a backend reported, checked: a usable host and port, a sane weight (a bad one is dropped with a log line). */
function usable(n: DiscoveredNode): boolean {
  return (
    typeof n?.host === 'string' &&
    n.host.length > 0 &&
    n.host.length <= 253 &&
    Number.isInteger(n.port) &&
    n.port >= 1 &&
    n.port <= 65535 &&
    Number.isInteger(n.weight) &&
    n.weight >= 0 &&
    n.weight <= 100000
  );
}

export class DiscoveryManager extends EventEmitter<DiscoveryManagerEvents> {
  readonly settings: DiscoverySettings;
  readonly #log: DiscoveryLogger;
  readonly #backends: DiscoveryBackends;
  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(opts: DiscoveryManagerOptions) {
    super();
    this.settings = opts.settings;
    this.#log = opts.log;
    this.#backends = opts.backends ?? new DiscoveryBackends(opts.settings, opts.log);
  }

  /**
   * Start the watches a config needs that are not running yet, and resolve once each of them has answered
   * (or failed), or after discovery.startWait, whichever is first. Watches the config does not need keep
   * running until retain() is called with it: the config in service may still need them.
   */
  prepare(cfg: UpstreamsOfConfig): Promise<void> {
    return this.ensure(discoverySpecs(cfg));
  }

  /** prepare() for specs by key. */
  async ensure(specs: ReadonlyMap<string, DiscoverySpec>): Promise<void> {
    if (this.#closed) return;
    const fresh: Entry[] = [];
    for (const [key, spec] of specs) {
      if (!this.#entries.has(key)) fresh.push(this.#start(key, spec));
    }
    const wait = this.settings.startWait;
    if (fresh.length === 0 || wait === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(fresh.map((e) => e.answered)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, wait);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /** Stop the watches no upstream of this config (now in service) uses. */
  retain(cfg: UpstreamsOfConfig): void {
    this.retainKeys(new Set(discoverySpecs(cfg).keys()));
  }

  /** retain() by keys. */
  retainKeys(keys: ReadonlySet<string>): void {
    for (const [key, entry] of this.#entries) {
      if (keys.has(key)) continue;
      this.#stop(entry);
      this.#entries.delete(key);
      this.emit('forget', key);
    }
  }

  /** The current nodes of a key; undefined when the key is not watched or its source has not answered yet. */
  nodes(key: string): DiscoveredNode[] | undefined {
    return this.#entries.get(key)?.nodes ?? undefined;
  }

  /** Every key whose source has answered, with its nodes (what a new worker is given). */
  snapshot(): Array<[string, DiscoveredNode[]]> {
    const out: Array<[string, DiscoveredNode[]]> = [];
    for (const e of this.#entries.values()) if (e.nodes !== null) out.push([e.key, e.nodes]);
    return out;
  }

  /** What is known about one key, or undefined when it is not watched. */
  state(key: string): DiscoveryState | undefined {
    const e = this.#entries.get(key);
    return e ? this.#stateOf(e) : undefined;
  }

  states(): DiscoveryState[] {
    return [...this.#entries.values()].map((e) => this.#stateOf(e));
  }

  /** Whether every watched source answers (for /readyz; a source that is down does not make a gateway unready). */
  health(): { ok: boolean; detail: { watches: number; down: Array<{ watch: string; error: string | undefined; since: string | undefined }> } } {
    const down = [...this.#entries.values()].filter((e) => e.up === false).map((e) => ({ watch: e.key, error: e.error ?? undefined, since: iso(e.downSince) }));
    return { ok: down.length === 0, detail: { watches: this.#entries.size, down } };
  }

  metrics(): DiscoverySample[] {
    return [...this.#entries.values()].map((e) => ({
      key: e.key,
      source: e.spec.type,
      service: e.spec.service,
      cluster: e.spec.cluster ?? '',
      nodes: e.nodes?.length ?? 0,
      up: e.up === true,
      errors: e.errors,
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const e of this.#entries.values()) this.#stop(e);
    this.#entries.clear();
    await this.#backends.close();
  }

  #stateOf(e: Entry): DiscoveryState {
    const s: DiscoveryState = { key: e.key, spec: e.spec, nodes: e.nodes ? [...e.nodes] : null, up: e.up, errors: e.errors };
    if (e.error !== null && e.up === false) s.error = e.error;
    if (e.downSince !== null) s.downSince = iso(e.downSince)!;
    if (e.emptySince !== null) s.emptySince = iso(e.emptySince)!;
    if (e.updatedAt !== null) s.updatedAt = iso(e.updatedAt)!;
    return s;
  }

  #fields(e: Entry): Record<string, unknown> {
    return { source: e.spec.type, service: e.spec.service, ...(e.spec.cluster ? { cluster: e.spec.cluster } : {}), watch: e.key };
  }

  #start(key: string, spec: DiscoverySpec): Entry {
    let markAnswered!: () => void;
    const answered = new Promise<void>((r) => (markAnswered = r));
    const entry: Entry = {
      key, spec, watch: null, nodes: null, up: null, error: null, errors: 0, downSince: null,
      emptySince: null, emptyTimer: null, updatedAt: null, answered, markAnswered,
    };
    this.#entries.set(key, entry);
    const live = () => !this.#closed && this.#entries.get(key) === entry;
    try {
      const watch = this.#backends.get(spec.type).watch(spec, {
        onNodes: (nodes) => {
          if (live()) this.#onNodes(entry, nodes);
        },
        onError: (err) => {
          if (live()) this.#onError(entry, err);
        },
      });
      // A backend may answer (or fail) before watch() returns; a watch closed meanwhile must still be closed.
      if (live()) entry.watch = watch;
      else watch.close();
    } catch (e) {
      // The spec cannot be followed at all (unknown cluster, a source without settings): nothing will change
      // that until the settings do, so it is reported once, as an outage.
      this.#onError(entry, e instanceof Error ? e : new Error(String(e)));
    }
    return entry;
  }

  #stop(e: Entry): void {
    this.#clearEmpty(e);
    const w = e.watch;
    e.watch = null;
    e.markAnswered();
    try {
      w?.close();
    } catch (err) {
      this.#log.warn({ ...this.#fields(e), err: (err as Error).message }, 'discovery watch did not close cleanly');
    }
  }

  #clearEmpty(e: Entry): void {
    if (e.emptyTimer) clearTimeout(e.emptyTimer);
    e.emptyTimer = null;
    e.emptySince = null;
  }

  #onNodes(e: Entry, reported: DiscoveredNode[]): void {
    const ok = reported.filter(usable);
    if (ok.length !== reported.length) this.#log.warn({ ...this.#fields(e), dropped: reported.length - ok.length }, 'discovery source reported nodes without a usable host, port or weight; they are left out');
    const nodes = canonicalNodes(ok);
    if (e.up === false) this.#log.info({ ...this.#fields(e), nodes: nodes.length, downFor: Date.now() - (e.downSince ?? Date.now()) }, 'discovery source reachable again');
    e.up = true;
    e.error = null;
    e.downSince = null;
    e.markAnswered();
    if (nodes.length > 0 || e.nodes === null || e.nodes.length === 0) {
      this.#clearEmpty(e);
      this.#set(e, nodes);
      return;
    }
    // An empty answer while nodes are known: honoured only once it has lasted the grace period.
    if (e.emptySince !== null) return;
    const grace = e.spec.emptyGracePeriod ?? this.settings.emptyGracePeriod;
    if (grace === 0) {
      this.#set(e, nodes);
      return;
    }
    e.emptySince = Date.now();
    this.#log.warn({ ...this.#fields(e), kept: e.nodes.length, gracePeriod: grace }, 'discovery source answered with no nodes: keeping the last known nodes for the grace period');
    e.emptyTimer = setTimeout(() => {
      e.emptyTimer = null;
      e.emptySince = null;
      if (this.#entries.get(e.key) !== e || this.#closed) return;
      this.#log.warn({ ...this.#fields(e), dropped: e.nodes?.length ?? 0, gracePeriod: grace }, 'discovery source still has no nodes after the grace period: the upstream has no discovered nodes now');
      this.#set(e, []);
    }, grace);
    e.emptyTimer.unref();
  }

  #onError(e: Entry, err: Error): void {
    e.errors++;
    e.error = err.message;
    e.markAnswered();
    // An empty answer is only honoured from a source that keeps answering: an outage stops the grace period.
    this.#clearEmpty(e);
    if (e.up !== false) {
      e.downSince = Date.now();
      this.#log.error(
        { ...this.#fields(e), err: err.message, kept: e.nodes?.length ?? 0 },
        e.nodes?.length ? 'discovery source unreachable: keeping the last known nodes' : 'discovery source unreachable: no nodes known for it yet',
      );
    } else {
      this.#log.debug({ ...this.#fields(e), err: err.message }, 'discovery source still unreachable');
    }
    e.up = false;
  }

  #set(e: Entry, nodes: DiscoveredNode[]): void {
    if (e.nodes !== null && sameNodes(e.nodes, nodes)) return;
    const before = new Set((e.nodes ?? []).map((n) => `${n.host}:${n.port}`));
    const after = new Set(nodes.map((n) => `${n.host}:${n.port}`));
    const added = [...after].filter((k) => !before.has(k));
    const removed = [...before].filter((k) => !after.has(k));
    e.nodes = nodes;
    e.updatedAt = Date.now();
    // Lists of thousands of nodes must not make one log line of megabytes: the first few, and the counts.
    this.#log.info(
      { ...this.#fields(e), nodes: nodes.length, added: added.slice(0, LOGGED_NODES), removed: removed.slice(0, LOGGED_NODES), addedCount: added.length, removedCount: removed.length },
      'discovered nodes changed',
    );
    this.emit('nodes', e.key, nodes);
  }
}
