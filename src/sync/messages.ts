/**
 * @module sync/messages
 * Messages between the primary process and gateway workers (node:cluster IPC).
 */
import type { DeclarativeConfig } from '../model/declarative.js';
import type { MetricsDump } from '../status/metrics.js';

export type PrimaryToWorker =
  | { t: 'config'; revision: number; config: DeclarativeConfig }
  | { t: 'health'; upstream: string; node: string; healthy: boolean }
  | { t: 'metrics'; id: number }
  | { t: 'drain'; timeout: number };

export type WorkerToPrimary =
  | { t: 'hello' }
  | { t: 'listening'; http: number; https: number | null }
  | { t: 'applied'; revision: number }
  | { t: 'apply-failed'; revision: number; error: string }
  | { t: 'passive'; upstream: string; node: string; ok: boolean }
  | { t: 'metrics'; id: number; dump: MetricsDump };
