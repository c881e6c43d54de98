/**
 * @module dataplane/plugins/state
 * Plugin state that outlives config reloads: caches, breaker counts, log queues. A plugin instance is made anew
 * on every config load, so what must survive a reload is kept here, by plugin and key, and handed back to the
 * next instance that asks for the same key. What no load asks for in two loads in a row is dropped.
 */
import type { PluginControlEnv, PluginCounter } from './types.js';

interface Entry {
  value: unknown;
  /** The config load that last asked for it. */
  generation: number;
}

/** How many loads in a row may pass without asking for an entry before it is dropped. */
const KEEP_GENERATIONS = 2;

export class PluginStateStore {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;

  /** A config load begins: entries asked for from now on belong to it. */
  beginLoad(): void {
    this.generation++;
  }

  /** A config load was swapped in: drop what recent loads did not ask for, closing it. */
  sweep(): void {
    for (const [k, e] of this.entries) {
      if (this.generation - e.generation >= KEEP_GENERATIONS) {
        this.entries.delete(k);
        close(e.value);
      }
    }
  }

  get<T>(plugin: string, key: string, create: () => T): T {
    const k = `${plugin}\0${key}`;
    let e = this.entries.get(k);
    if (e === undefined) {
      e = { value: create(), generation: this.generation };
      this.entries.set(k, e);
    } else {
      e.generation = this.generation;
    }
    return e.value as T;
  }

  /** The counters of every state value that reports some, with its plugin's name (read when metrics are dumped). */
  counters(): Array<{ plugin: string; counter: PluginCounter }> {
    const out: Array<{ plugin: string; counter: PluginCounter }> = [];
    for (const [k, e] of this.entries) {
      const m = (e.value as { metrics?: unknown } | null)?.metrics;
      if (typeof m !== 'function') continue;
      const plugin = k.slice(0, k.indexOf('\0'));
      try {
        for (const counter of (m as () => PluginCounter[]).call(e.value)) out.push({ plugin, counter });
      } catch {
        /* a plugin's metrics must not break /metrics */
      }
    }
    return out;
  }

  /** The view a plugin's control actions get of its own state. */
  controlEnv(plugin: string): PluginControlEnv {
    const prefix = `${plugin}\0`;
    return {
      state: <T>(key: string) => this.entries.get(prefix + key)?.value as T | undefined,
      stateKeys: () => [...this.entries.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)),
    };
  }

  /**
   * Drop everything (the gateway stops), waiting up to `waitMs` for the closes that return a promise (a log
   * queue sending what it holds).
   */
  async closeAll(waitMs = 2500): Promise<void> {
    const pending: Promise<unknown>[] = [];
    for (const e of this.entries.values()) {
      const p = close(e.value);
      if (p) pending.push(p.catch(() => {}));
    }
    this.entries.clear();
    if (pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(pending), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }
}

/** Call the value's close(), if it has one; its promise, when it returns one. */
function close(value: unknown): Promise<unknown> | null {
  const c = (value as { close?: unknown } | null)?.close;
  if (typeof c !== 'function') return null;
  try {
    const r: unknown = (c as () => unknown).call(value);
    return r instanceof Promise ? r : null;
  } catch {
    /* a plugin's close must not break a reload or a stop */
    return null;
  }
}
