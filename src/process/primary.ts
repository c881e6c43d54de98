/**
 * @module process/primary
 * The primary process of a gateway: loads and validates config, forks one worker per core, follows the
 * discovery sources its upstreams name, broadcasts config, discovered nodes and health state to the workers,
 * restarts a worker that dies, serves the status port, reloads on SIGHUP and drains on SIGTERM.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { DeclarativeConfig } from '../model/declarative.js';
import { effectiveNodes, healthTargets } from '../dataplane/snapshot.js';
import { NodeRegistry } from '../dataplane/upstream/upstream.js';
import { HealthChecker } from '../dataplane/upstream/health.js';
import { mergeDumps, renderPrometheus, type MetricsDump } from '../status/metrics.js';
import { startStatusServer } from '../status/server.js';
import type { ConfigSource } from '../sync/source.js';
import type { PluginRegistry } from '../dataplane/plugins/registry.js';
import type { PrimaryToWorker, WorkerToPrimary } from '../sync/messages.js';
import { formatProblems } from '../config/declarative-file.js';
import { loadPlugins } from '../plugins/load.js';
import { PrimaryLimits } from './limits-ipc.js';
import { DiscoveryManager } from '../discovery/manager.js';
import { resolveDiscoverySettings } from '../discovery/index.js';
import type { NodesMessage } from './discovery-messages.js';

interface WorkerInfo {
  worker: Worker;
  revision: number;
  listening: boolean;
  ports?: { http: number; https: number | null };
}

export interface PrimaryOptions {
  settings: Settings;
  log: Logger;
  /** Where config comes from (a declarative file, the control plane's store...), given the loaded plugins. */
  source: (plugins: PluginRegistry) => ConfigSource;
  /** Plugins already loaded by the caller (all-in-one shares them with the control plane). */
  plugins?: PluginRegistry;
  /**
   * The discovery manager to run with (all-in-one shares it with the control plane, which shows the nodes);
   * default: one made from the settings. The primary closes it when it stops.
   */
  discovery?: DiscoveryManager;
  /** Given a way to read the health of every node (all-in-one shows it with an upstream's nodes). */
  exposeHealth?: (snapshot: () => Array<{ upstream: string; node: string; healthy: boolean }>) => void;
}

export async function runPrimary(opts: PrimaryOptions): Promise<void> {
  const { settings, log } = opts;
  const count = settings.workers === 'auto' ? availableParallelism() : settings.workers;
  let plugins = opts.plugins;
  try {
    plugins ??= await loadPlugins(settings);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'cannot load plugins');
    process.exitCode = 1;
    return;
  }
  const source = opts.source(plugins);
  const first = await source.load();
  if (!first.ok) {
    log.fatal({ source: source.describe, problems: first.problems }, `invalid config:\n${formatProblems(first.problems)}`);
    process.exitCode = 1;
    return;
  }
  let config: DeclarativeConfig = first.config;
  let revision = first.revision;
  let configErrors = 0;
  let shuttingDown = false;

  // Discovery sources are followed here, once for all workers, which get every node list over IPC. The first
  // config waits (at most discovery.startWait) for its sources' first answers, so workers start with nodes.
  const discovery = opts.discovery ?? new DiscoveryManager({ settings: resolveDiscoverySettings(settings), log: log.child({ component: 'discovery' }) });
  await discovery.prepare(config);
  discovery.retain(config);

  // Health state lives here, once for all workers; discovered nodes are probed like static ones.
  const nodes = new NodeRegistry();
  const health = new HealthChecker({ logger: log });
  const discoveredNodes = (key: string) => discovery.nodes(key);
  const configureHealth = () => {
    const ups = healthTargets(config, (key, body) => nodes.resolve(key, effectiveNodes(body, discoveredNodes)));
    nodes.retain(new Set(ups.map((u) => u.key)));
    health.configure(ups);
  };
  configureHealth();
  opts.exposeHealth?.(() => health.snapshot());

  const workers = new Map<number, WorkerInfo>();
  const broadcast = (msg: PrimaryToWorker | NodesMessage) => {
    for (const w of workers.values()) if (w.worker.isConnected()) w.worker.send(msg);
  };
  health.on('change', (c: { upstream: string; node: string; healthy: boolean }) => broadcast({ t: 'health', ...c }));
  discovery.on('nodes', (key, list) => {
    if (shuttingDown) return;
    // Workers first: a health verdict on a new node must not reach a worker before the node does.
    broadcast({ t: 'nodes', key, nodes: list });
    configureHealth();
  });
  discovery.on('forget', (key) => broadcast({ t: 'nodes', key, nodes: null }));

  // The limits all workers share (limit-count, limit-req, limit-conn with policy local).
  const limits = new PrimaryLimits(
    () => workers.size,
    (id, msg) => {
      const w = workers.get(id)?.worker;
      if (!w?.isConnected()) return false;
      w.send(msg);
      return true;
    },
  );
  const pendingControl = new Map<number, { results: Array<{ worker: number; status: number; body: unknown }>; waiting: number; done: () => void }>();
  let controlSeq = 0;

  const pendingMetrics = new Map<number, { dumps: MetricsDump[]; waiting: number; done: () => void }>();
  let metricsSeq = 0;
  /** Each live worker's latest dump, and what dead workers had reported: counters must not go down when a
   * worker is replaced (Prometheus would take that for a reset). */
  const lastDumps = new Map<number, MetricsDump>();
  let retired: MetricsDump | null = null;

  cluster.schedulingPolicy = cluster.SCHED_NONE; // workers accept directly: no hop through the primary
  cluster.setupPrimary({ silent: false });

  const fork = () => {
    const worker = cluster.fork({ GATEHOUSE_ROLE: 'worker' });
    const info: WorkerInfo = { worker, revision: 0, listening: false };
    workers.set(worker.id, info);
    worker.on('message', (msg: WorkerToPrimary) => {
      switch (msg.t) {
        case 'hello':
          // Node lists before the config, so the first config a worker compiles has them.
          for (const [key, list] of discovery.snapshot()) worker.send({ t: 'nodes', key, nodes: list } satisfies NodesMessage);
          worker.send({ t: 'config', revision, config } satisfies PrimaryToWorker);
          for (const h of health.snapshot()) if (!h.healthy) worker.send({ t: 'health', upstream: h.upstream, node: h.node, healthy: false } satisfies PrimaryToWorker);
          break;
        case 'listening':
          info.listening = true;
          info.ports = { http: msg.http, https: msg.https };
          log.info({ worker: worker.id, http: msg.http, https: msg.https }, 'gateway worker listening');
          break;
        case 'applied':
          info.revision = msg.revision;
          break;
        case 'apply-failed':
          log.error({ worker: worker.id, revision: msg.revision, err: msg.error }, 'worker refused config');
          break;
        case 'passive':
          health.reportPassive(msg.upstream, msg.node, msg.ok);
          break;
        case 'limits': {
          const reply = limits.handle(worker.id, msg.op);
          if (reply instanceof Promise) {
            void reply.then((r) => {
              if (worker.isConnected()) worker.send({ t: 'limits', id: msg.id, reply: r } satisfies PrimaryToWorker);
            });
          } else worker.send({ t: 'limits', id: msg.id, reply } satisfies PrimaryToWorker);
          break;
        }
        case 'limits-returned':
          limits.returned(msg);
          break;
        case 'limits-release':
          limits.release(worker.id, msg.key);
          break;
        case 'control': {
          const p = pendingControl.get(msg.id);
          if (p) {
            p.results.push({ worker: worker.id, status: msg.status, body: msg.body });
            if (--p.waiting === 0) p.done();
          }
          break;
        }
        case 'metrics': {
          lastDumps.set(worker.id, msg.dump);
          const p = pendingMetrics.get(msg.id);
          if (p) {
            p.dumps.push(msg.dump);
            if (--p.waiting === 0) p.done();
          }
          break;
        }
      }
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    workers.delete(worker.id);
    limits.workerGone(worker.id);
    const last = lastDumps.get(worker.id);
    if (last) {
      lastDumps.delete(worker.id);
      retired = mergeDumps(retired ? [retired, last] : [last]);
    }
    if (shuttingDown) return;
    log.error({ worker: worker.id, code, signal }, 'gateway worker died; starting a new one');
    setTimeout(fork, 200).unref();
  });

  // A config that names a new discovery source waits (at most discovery.startWait) for its first answer; a
  // newer config arriving meanwhile supersedes it. The watches of the config in service keep running until
  // the next one is applied.
  let latestConfig = 0;
  source.on('config', (next, rev) => {
    const seq = ++latestConfig;
    void discovery.prepare(next).then(() => {
      if (seq !== latestConfig || shuttingDown) return;
      config = next;
      revision = rev;
      configureHealth();
      broadcast({ t: 'config', revision, config });
      discovery.retain(next);
      log.info({ revision, routes: next.routes.length, upstreams: next.upstreams.length }, 'config reloaded');
    });
  });
  source.on('invalid', (problems) => {
    configErrors++;
    log.error({ source: source.describe, problems }, `config change refused, still serving revision ${revision}:\n${formatProblems(problems)}`);
  });
  source.watch();

  // Signals are handled from here on: a SIGHUP during start-up must reload, not kill the gateway.
  let status: Server | null = null;
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading config');
    source.reload(true).catch(() => log.error('SIGHUP reload failed'));
  });
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'draining in-flight requests');
    source.close();
    health.close();
    void discovery.close();
    limits.close();
    broadcast({ t: 'drain', timeout: settings.shutdownTimeout });
    const hardStop = setTimeout(() => {
      log.warn('drain timed out; exiting');
      process.exit(0);
    }, settings.shutdownTimeout + 2000);
    hardStop.unref();
    const check = setInterval(() => {
      if (workers.size === 0) {
        clearInterval(check);
        status?.close();
        log.info('stopped');
        process.exit(0);
      }
    }, 50);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  for (let i = 0; i < count; i++) fork();

  const collectMetrics = (): Promise<MetricsDump[]> =>
    new Promise((resolve) => {
      const live = [...workers.values()].filter((w) => w.worker.isConnected());
      const id = ++metricsSeq;
      const entry = { dumps: [] as MetricsDump[], waiting: live.length, done: () => {} };
      const finish = () => {
        pendingMetrics.delete(id);
        resolve(entry.dumps);
      };
      entry.done = finish;
      if (live.length === 0) return finish();
      pendingMetrics.set(id, entry);
      for (const w of live) w.worker.send({ t: 'metrics', id } satisfies PrimaryToWorker);
      setTimeout(finish, 1000).unref();
    });

  /** Run a plugin control action in every live worker; 200 with each worker's answer unless one refused it. */
  const runControl = (plugin: string, action: string, args: Record<string, unknown>): Promise<{ status: number; body: unknown }> =>
    new Promise((resolve) => {
      const live = [...workers.values()].filter((w) => w.worker.isConnected());
      const id = ++controlSeq;
      const entry = { results: [] as Array<{ worker: number; status: number; body: unknown }>, waiting: live.length, done: () => {} };
      entry.done = () => {
        pendingControl.delete(id);
        const failed = entry.results.find((r) => r.status !== 200);
        if (failed) return resolve({ status: failed.status, body: failed.body });
        if (entry.results.length < live.length) return resolve({ status: 503, body: { error: { code: 'GH_ERR_SHUTTING_DOWN', message: 'not every worker answered' } } });
        resolve({ status: 200, body: { workers: entry.results.map((r) => r.body) } });
      };
      if (live.length === 0) return entry.done();
      pendingControl.set(id, entry);
      for (const w of live) w.worker.send({ t: 'control', id, plugin, action, args } satisfies PrimaryToWorker);
      setTimeout(entry.done, 2000).unref();
    });

  try {
    status = await startStatusServer(settings.status.host, settings.status.port, {
      healthy: () => !shuttingDown,
      ready: () => {
        const all = [...workers.values()];
        const serving = all.filter((w) => w.listening && w.revision > 0).length;
        const current = all.filter((w) => w.revision === revision).length;
        // A config source that lost its backend (etcd down) does not make the gateway unready: it keeps
        // serving its last config, and pulling every gateway out of a load balancer would turn an etcd outage
        // into an outage. It is reported here and in gatehouse_config_source_up.
        const sourceHealth = source.health?.();
        // Like the config source, a discovery source that is down leaves the gateway ready: its upstreams keep
        // their last known nodes.
        const discoveryHealth = discovery.health();
        return {
          ready: !shuttingDown && serving === count && current === count,
          detail: {
            revision,
            workers: count,
            serving,
            current,
            configErrors,
            ...(sourceHealth ? { configSource: { ok: sourceHealth.ok, ...sourceHealth.detail } } : {}),
            ...(discoveryHealth.detail.watches > 0 ? { discovery: { ok: discoveryHealth.ok, ...discoveryHealth.detail } } : {}),
          },
        };
      },
      metrics: async () => {
        const dumps = await collectMetrics();
        if (retired) dumps.push(mergeDumps([retired]));
        for (const d of dumps) d.configErrors = Math.max(d.configErrors, configErrors);
        const sourceHealth = source.health?.();
        return renderPrometheus(dumps, {
          health: health.snapshot(),
          configRevision: revision,
          workers: workers.size,
          configSourceUp: sourceHealth ? sourceHealth.ok : undefined,
          discovery: discovery.metrics(),
        });
      },
      control: runControl,
    });
    const addr = status.address() as { port: number };
    log.info({ port: addr.port }, 'status server listening');
  } catch (e) {
    log.error({ err: (e as Error).message }, 'status server could not start');
  }

}
