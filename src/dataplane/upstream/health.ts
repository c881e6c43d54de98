/**
 * @module dataplane/upstream/health
 * Health checking: one authoritative checker (active probes + passive reports) and helpers for workers.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Static } from '@sinclair/typebox';
import type { HealthCheck, UpstreamTls } from '../../model/upstream.js';
import type { NodeState } from './types.js';

export interface HealthLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface HealthCheckerOptions {
  /** Told about every node that goes out (warn) or comes back (info). */
  logger?: HealthLogger;
}

export type UpstreamTlsSettings = Static<typeof UpstreamTls>;

/** What the checker needs to know about one upstream. */
export interface UpstreamHealthTarget {
  /** Stable upstream identity, the same string the workers use ("upstream id", "route:<id>"...). */
  key: string;
  nodes: NodeState[];
  healthCheck?: HealthCheck | undefined;
  scheme: 'http' | 'https';
  tls?: UpstreamTlsSettings | undefined;
}

/** Emitted as 'change' whenever a node flips; also the message workers receive. */
export interface HealthChange {
  upstream: string;
  node: string;
  healthy: boolean;
}

/** One real request's outcome, as a worker sends it to the checker. */
export interface PassiveReport {
  upstream: string;
  node: string;
  ok: boolean;
}

const DEFAULT_EXPECTED = [200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 307, 308];
const DEFAULT_FAILURE_STATUSES = [502, 503, 504];

interface ActiveSettings {
  type: 'http' | 'https' | 'tcp';
  path: string;
  host: string | undefined;
  port: number | undefined;
  interval: number;
  timeout: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  expected: ReadonlySet<number>;
  headers: Record<string, string>;
  tls: UpstreamTlsSettings | undefined;
}

interface PassiveSettings {
  unhealthyThreshold: number;
  cooldown: number;
}

interface NodeEntry {
  readonly key: string;
  /** The NodeState objects to keep in step (one per listing of the key in the upstream). */
  targets: NodeState[];
  healthy: boolean;
  activeSuccesses: number;
  activeFailures: number;
  passiveFailures: number;
  probeTimer: NodeJS.Timeout | null;
  /** Aborts the probe in flight, if any. */
  abortProbe: (() => void) | null;
  cooldownTimer: NodeJS.Timeout | null;
  /** Bumped whenever probing restarts or stops, so a probe already in flight cannot report into new settings. */
  generation: number;
}

interface UpstreamEntry {
  readonly key: string;
  active: ActiveSettings | null;
  passive: PassiveSettings | null;
  /** Active settings as JSON: probes restart only when they change. */
  activeFingerprint: string;
  nodes: Map<string, NodeEntry>;
}

/**
 * The authoritative health state per (upstream, node). Every worker process of a gateway must agree on
 * which nodes are out, and probing each node once per worker would multiply the probe load, so exactly
 * one HealthChecker runs (in the cluster primary, or in the only process). Workers send it the outcome of
 * real requests through a PassiveReporter and apply the 'change' events it emits with applyHealthChange.
 * It also sets `healthy` on the NodeState objects it was given, which is all a single process needs.
 */
export class HealthChecker extends EventEmitter<{ change: [HealthChange] }> {
  readonly #upstreams = new Map<string, UpstreamEntry>();
  readonly #logger: HealthLogger | undefined;
  #closed = false;

  constructor(options: HealthCheckerOptions = {}) {
    super();
    this.#logger = options.logger;
  }

  /**
   * Take the full list of upstreams (on every config or node-list change). Nodes that still exist keep
   * their state and counters; new nodes start healthy; probes restart only where their settings changed.
   * Upstreams left out of the list are forgotten.
   */
  configure(upstreams: readonly UpstreamHealthTarget[]): void {
    if (this.#closed) throw new Error('HealthChecker is closed');
    const seen = new Set<string>();
    for (const target of upstreams) {
      seen.add(target.key);
      let up = this.#upstreams.get(target.key);
      if (!up) {
        up = { key: target.key, active: null, passive: null, activeFingerprint: '', nodes: new Map() };
        this.#upstreams.set(target.key, up);
      }
      const active = resolveActive(target);
      const fingerprint = active ? JSON.stringify({ ...active, expected: [...active.expected] }) : '';
      const activeChanged = fingerprint !== up.activeFingerprint;
      up.active = active;
      up.passive = resolvePassive(target.healthCheck);
      up.activeFingerprint = fingerprint;

      const groups = new Map<string, NodeState[]>();
      for (const node of target.nodes) {
        const group = groups.get(node.key);
        if (group) group.push(node);
        else groups.set(node.key, [node]);
      }
      for (const [key, entry] of up.nodes) {
        if (!groups.has(key)) {
          stopNode(entry);
          up.nodes.delete(key);
        }
      }
      for (const [key, targets] of groups) {
        let entry = up.nodes.get(key);
        const isNew = entry === undefined;
        if (!entry) {
          entry = {
            key, targets, healthy: true, activeSuccesses: 0, activeFailures: 0, passiveFailures: 0,
            probeTimer: null, abortProbe: null, cooldownTimer: null, generation: 0,
          };
          up.nodes.set(key, entry);
        }
        entry.targets = targets;
        for (const node of targets) node.healthy = entry.healthy;
        if (isNew || activeChanged) {
          stopProbes(entry);
          // Jitter the first probe so nodes (and restarted checkers) do not probe in lockstep.
          if (active) this.#scheduleProbe(up, entry, Math.random() * active.interval);
        }
        this.#ensureWayBack(up, entry);
      }
    }
    for (const [key, up] of this.#upstreams) {
      if (seen.has(key)) continue;
      for (const entry of up.nodes.values()) stopNode(entry);
      this.#upstreams.delete(key);
    }
  }

  /**
   * The outcome of one real request: ok = false for a connection error, a timeout, or a status in
   * passive.failureStatuses (see passiveFailureStatuses). Ignored when the upstream has no passive checks.
   */
  reportPassive(upstreamKey: string, nodeKey: string, ok: boolean): void {
    const up = this.#upstreams.get(upstreamKey);
    const passive = up?.passive;
    if (!up || !passive) return;
    const entry = up.nodes.get(nodeKey);
    if (!entry) return;
    if (ok) {
      entry.passiveFailures = 0;
      return;
    }
    // Requests that were in flight when the node went out still report; they must not extend its time out.
    if (!entry.healthy) return;
    entry.passiveFailures++;
    if (entry.passiveFailures >= passive.unhealthyThreshold) {
      this.#setHealthy(up, entry, false, 'passive', `${entry.passiveFailures} failed requests in a row`);
      this.#ensureWayBack(up, entry);
    }
  }

  snapshot(): HealthChange[] {
    const out: HealthChange[] = [];
    for (const up of this.#upstreams.values()) {
      for (const entry of up.nodes.values()) out.push({ upstream: up.key, node: entry.key, healthy: entry.healthy });
    }
    return out;
  }

  /** Stop every probe and timer; the checker cannot be configured again. */
  close(): void {
    this.#closed = true;
    for (const up of this.#upstreams.values()) for (const entry of up.nodes.values()) stopNode(entry);
    this.#upstreams.clear();
  }

  /**
   * An unhealthy node needs something that can bring it back: active probes if there are any, else the
   * passive cooldown, else (no health checks left at all) it is simply healthy again.
   */
  #ensureWayBack(up: UpstreamEntry, entry: NodeEntry): void {
    if (entry.healthy) return;
    if (up.active) {
      clearCooldown(entry);
      return;
    }
    if (up.passive) {
      if (entry.cooldownTimer) return;
      entry.cooldownTimer = setTimeout(() => {
        entry.cooldownTimer = null;
        if (this.#closed) return;
        this.#setHealthy(up, entry, true, 'cooldown', `back after ${up.passive?.cooldown ?? 0} ms out`);
      }, up.passive.cooldown);
      entry.cooldownTimer.unref();
      return;
    }
    this.#setHealthy(up, entry, true, 'config', 'health checks removed');
  }

  #scheduleProbe(up: UpstreamEntry, entry: NodeEntry, delay: number): void {
    const generation = entry.generation;
    entry.probeTimer = setTimeout(() => {
      entry.probeTimer = null;
      const settings = up.active;
      if (this.#closed || generation !== entry.generation || !settings) return;
      const node = entry.targets[0]!;
      entry.abortProbe = runProbe(node, settings, (ok, detail) => {
        if (this.#closed || generation !== entry.generation) return;
        entry.abortProbe = null;
        this.#recordProbe(up, entry, settings, ok, detail);
        this.#scheduleProbe(up, entry, settings.interval);
      });
    }, delay);
    entry.probeTimer.unref();
  }

  #recordProbe(up: UpstreamEntry, entry: NodeEntry, settings: ActiveSettings, ok: boolean, detail: string): void {
    if (ok) {
      entry.activeFailures = 0;
      entry.activeSuccesses++;
      if (!entry.healthy && entry.activeSuccesses >= settings.healthyThreshold) {
        this.#setHealthy(up, entry, true, 'active', `${entry.activeSuccesses} successful probes in a row`);
      }
    } else {
      entry.activeSuccesses = 0;
      entry.activeFailures++;
      if (entry.healthy && entry.activeFailures >= settings.unhealthyThreshold) {
        this.#setHealthy(up, entry, false, 'active', `${entry.activeFailures} failed probes in a row, last: ${detail}`);
      }
    }
  }

  #setHealthy(up: UpstreamEntry, entry: NodeEntry, healthy: boolean, source: string, reason: string): void {
    if (entry.healthy === healthy) return;
    entry.healthy = healthy;
    // Thresholds count from the flip: a node coming back must prove itself from zero, and vice versa.
    entry.activeSuccesses = 0;
    entry.activeFailures = 0;
    entry.passiveFailures = 0;
    clearCooldown(entry);
    for (const node of entry.targets) node.healthy = healthy;
    const fields = { upstream: up.key, node: entry.key, source, reason };
    if (healthy) this.#logger?.info(fields, 'upstream node is healthy again');
    else this.#logger?.warn(fields, 'upstream node marked unhealthy');
    this.emit('change', { upstream: up.key, node: entry.key, healthy });
  }
}

function stopProbes(entry: NodeEntry): void {
  entry.generation++;
  if (entry.probeTimer) clearTimeout(entry.probeTimer);
  entry.probeTimer = null;
  const abort = entry.abortProbe;
  entry.abortProbe = null;
  abort?.();
}

function clearCooldown(entry: NodeEntry): void {
  if (entry.cooldownTimer) clearTimeout(entry.cooldownTimer);
  entry.cooldownTimer = null;
}

function stopNode(entry: NodeEntry): void {
  stopProbes(entry);
  clearCooldown(entry);
}

function resolveActive(target: UpstreamHealthTarget): ActiveSettings | null {
  const active = target.healthCheck?.active;
  if (!active) return null;
  // Lower-case names so a configured "Host" replaces the default instead of being sent twice.
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(active.headers ?? {})) headers[name.toLowerCase()] = value;
  return {
    type: active.type ?? 'http',
    path: active.path ?? '/',
    host: active.host ?? headers.host,
    port: active.port,
    interval: active.interval ?? 5000,
    timeout: active.timeout ?? 2000,
    healthyThreshold: active.healthyThreshold ?? 2,
    unhealthyThreshold: active.unhealthyThreshold ?? 3,
    expected: new Set(active.expectedStatuses ?? DEFAULT_EXPECTED),
    headers,
    tls: active.type === 'https' ? target.tls : undefined,
  };
}

function resolvePassive(healthCheck: HealthCheck | undefined): PassiveSettings | null {
  const passive = healthCheck?.passive;
  if (!passive) return null;
  return { unhealthyThreshold: passive.unhealthyThreshold ?? 3, cooldown: passive.cooldown ?? 10000 };
}

/**
 * The upstream statuses a worker should report as failures, or null when the upstream has no passive
 * checks (then the worker reports nothing at all). Meant to be computed when the upstream is compiled.
 */
export function passiveFailureStatuses(healthCheck: HealthCheck | undefined): ReadonlySet<number> | null {
  const passive = healthCheck?.passive;
  if (!passive) return null;
  return new Set(passive.failureStatuses ?? DEFAULT_FAILURE_STATUSES);
}

/** One probe; `done` is called exactly once, unless the returned abort function is called first. */
function runProbe(node: NodeState, settings: ActiveSettings, done: (ok: boolean, detail: string) => void): () => void {
  const port = settings.port ?? node.port;
  let finished = false;
  let cleanup: () => void = () => {};
  const finish = (ok: boolean, detail: string): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    cleanup();
    done(ok, detail);
  };
  const abort = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    cleanup();
  };
  const timer = setTimeout(() => finish(false, `no answer within ${settings.timeout} ms`), settings.timeout);
  timer.unref();

  if (settings.type === 'tcp') {
    const socket = net.connect({ host: node.host, port });
    cleanup = () => socket.destroy();
    socket.once('connect', () => finish(true, 'connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    return abort;
  }

  const hostHeader = settings.host ?? (node.host.includes(':') ? `[${node.host}]:${port}` : `${node.host}:${port}`);
  const options: https.RequestOptions = {
    host: node.host,
    port,
    method: 'GET',
    path: settings.path,
    // A fresh connection each time: a probe must see whether the node accepts connections now.
    agent: false,
    headers: { 'user-agent': 'gatehouse-health-check', ...settings.headers, host: hostHeader, connection: 'close' },
  };
  if (settings.type === 'https') {
    const tls = settings.tls;
    options.rejectUnauthorized = tls?.verify ?? true;
    const serverName = tls?.serverName ?? (net.isIP(node.host) ? undefined : node.host);
    if (serverName !== undefined) options.servername = serverName;
    if (tls?.ca !== undefined) options.ca = tls.ca;
  }
  const request = (settings.type === 'https' ? https : http).request(options);
  cleanup = () => request.destroy();
  request.once('response', (res) => {
    const status = res.statusCode ?? 0;
    res.resume();
    finish(settings.expected.has(status), `status ${status}`);
  });
  request.once('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
  request.end();
  return abort;
}

/**
 * For workers that receive 'change' events (or a snapshot's entries) from the checker's process: sets
 * `healthy` on the worker's own node objects. Returns false when the worker does not know the node
 * (config not there yet, or already gone).
 */
export function applyHealthChange(nodesByUpstream: ReadonlyMap<string, ReadonlyMap<string, NodeState>>, change: HealthChange): boolean {
  const node = nodesByUpstream.get(change.upstream)?.get(change.node);
  if (!node) return false;
  node.healthy = change.healthy;
  return true;
}

/**
 * Worker side of passive checks. Only runs of failures matter to the checker, so a success is sent only
 * when it ends a run this worker reported; healthy traffic sends nothing. report() allocates nothing on
 * that common path.
 */
export class PassiveReporter {
  /** Per upstream, the nodes whose last report from this worker was a failure. */
  readonly #failing = new Map<string, Set<string>>();
  readonly #send: (report: PassiveReport) => void;

  constructor(send: (report: PassiveReport) => void) {
    this.#send = send;
  }

  /** HOT PATH. Takes the node or its key, so it can stand in for the proxy's reporter directly. */
  report(upstream: string, nodeOrKey: string | { readonly key: string }, ok: boolean): void {
    const node = typeof nodeOrKey === 'string' ? nodeOrKey : nodeOrKey.key;
    let failing = this.#failing.get(upstream);
    if (ok) {
      if (failing === undefined || !failing.delete(node)) return;
    } else {
      if (failing === undefined) {
        failing = new Set();
        this.#failing.set(upstream, failing);
      }
      failing.add(node);
    }
    this.#send({ upstream, node, ok });
  }

  /** Drop what is known about upstreams that no longer exist. */
  retain(upstreams: ReadonlySet<string>): void {
    for (const key of this.#failing.keys()) if (!upstreams.has(key)) this.#failing.delete(key);
  }
}
