/**
 * @module sync/messages
 * Messages between the primary process and gateway workers (node:cluster IPC).
 */
import type { DeclarativeConfig } from '../model/declarative.js';
import type { MetricsDump } from '../status/metrics.js';
import type { CounterLimit } from '../dataplane/limits/types.js';

export type PrimaryToWorker =
  | { t: 'config'; revision: number; config: DeclarativeConfig }
  | { t: 'health'; upstream: string; node: string; healthy: boolean }
  | { t: 'metrics'; id: number }
  | { t: 'drain'; timeout: number }
  | { t: 'control'; id: number; plugin: string; action: string; args: Record<string, unknown> }
  | { t: 'limits'; id: number; reply: unknown }
  | { t: 'limits-reclaim'; id: number; key: string; limits: CounterLimit[] };

export type WorkerToPrimary =
  | { t: 'hello' }
  | { t: 'listening'; http: number; https: number | null }
  | { t: 'applied'; revision: number }
  | { t: 'apply-failed'; revision: number; error: string }
  | { t: 'passive'; upstream: string; node: string; ok: boolean }
  | { t: 'metrics'; id: number; dump: MetricsDump }
  | { t: 'control'; id: number; status: number; body: unknown }
  | { t: 'limits'; id: number; op: LimitsOp }
  | { t: 'limits-release'; key: string }
  | { t: 'limits-returned'; id: number; returned: Array<{ tokens: number; end: number }> };

/** A worker's request to the primary's shared limits (see dataplane/limits/leased.ts). */
export type LimitsOp =
  | { op: 'grant'; key: string; limits: CounterLimit[]; cost: number }
  | { op: 'bucket'; key: string; rate: number; burst: number }
  | { op: 'acquire'; key: string; max: number };
