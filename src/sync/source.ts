/**
 * @module sync/source
 * Where a gateway's primary process gets its config: a declarative file (standalone mode), the control plane's
 * store (all-in-one), and later etcd (cluster mode). A source emits only valid configs.
 */
import type { EventEmitter } from 'node:events';
import type { DeclarativeConfig } from '../model/declarative.js';
import type { ConfigProblem } from '../model/validate.js';

export interface ConfigSourceEvents {
  config: [DeclarativeConfig, number];
  invalid: [ConfigProblem[]];
}

/** Whether a source can currently reach what it reads from (the config keeps serving either way). */
export interface SourceHealth {
  ok: boolean;
  detail: Record<string, unknown>;
}

export interface ConfigSource extends EventEmitter<ConfigSourceEvents> {
  /** What it reads from, for logs ("routes.yaml", "store data/gatehouse.db"). */
  readonly describe: string;
  /** Load once: the current config and its revision, or why it is invalid (nothing is emitted then). */
  load(): Promise<{ ok: true; config: DeclarativeConfig; revision: number } | { ok: false; problems: ConfigProblem[] }>;
  /** Load again now (SIGHUP); a changed valid config is emitted. */
  reload(force?: boolean): Promise<void>;
  /** Emit every later change. */
  watch(): void;
  close(): void;
  /** For sources that can lose their backend (etcd): reported on /readyz and in metrics. */
  health?(): SourceHealth;
}
