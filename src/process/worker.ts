/**
 * @module process/worker
 * A gateway worker process: runs the data plane, takes config, discovered nodes and health state from the primary over IPC,
 * reports passive health outcomes and metrics back, drains on request.
 */
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import { Gateway } from '../dataplane/gateway.js';
import { PassiveReporter } from '../dataplane/upstream/health.js';
import { loadPlugins } from '../plugins/load.js';
import type { PrimaryToWorker, WorkerToPrimary } from '../sync/messages.js';
import { LeasedLimits } from '../dataplane/limits/leased.js';
import { WorkerLimitsChannel } from './limits-ipc.js';
import type { NodesMessage } from './discovery-messages.js';

function send(msg: WorkerToPrimary): void {
  process.send?.(msg);
}

export async function runWorker(settings: Settings, log: Logger): Promise<void> {
  const plugins = await loadPlugins(settings);
  // Passive outcomes go to the primary, which owns health state for all workers; healthy traffic sends nothing.
  const passive = new PassiveReporter((r) => send({ t: 'passive', upstream: r.upstream, node: r.node, ok: r.ok }));
  // Limits shared by all workers live in the primary; counters are spent from leases it hands out.
  const limitsChannel = new WorkerLimitsChannel(send, log);
  const limits = new LeasedLimits(limitsChannel).startSweeping();
  const gateway = new Gateway({ settings, logger: log, plugins, limits, health: { report: (upstream, node, ok) => passive.report(upstream, node.key, ok) } });
  let listening = false;
  /** Health flips that arrived before the config naming their upstream. */
  const pendingHealth = new Map<string, boolean>();

  const applyHealth = (upstream: string, node: string, healthy: boolean) => {
    const state = gateway.nodes.get(upstream)?.get(node);
    if (state) state.healthy = healthy;
    else pendingHealth.set(`${upstream}\0${node}`, healthy);
  };

  const applyPendingHealth = () => {
    for (const [k, healthy] of pendingHealth) {
      const [up, node] = k.split('\0') as [string, string];
      const state = gateway.nodes.get(up)?.get(node);
      if (state) {
        state.healthy = healthy;
        pendingHealth.delete(k);
      }
    }
  };

  process.on('message', (msg: PrimaryToWorker | NodesMessage) => {
    switch (msg.t) {
      case 'nodes':
        // Discovered nodes: every upstream using the key switches at once; requests in flight keep their node.
        if (gateway.setDiscoveredNodes(msg.key, msg.nodes) > 0) applyPendingHealth();
        break;
      case 'config': {
        try {
          gateway.applyConfig(msg.config, msg.revision);
          applyPendingHealth();
          send({ t: 'applied', revision: msg.revision });
        } catch (e) {
          log.error({ err: (e as Error).message, revision: msg.revision }, 'config could not be applied; keeping the previous one');
          send({ t: 'apply-failed', revision: msg.revision, error: (e as Error).message });
          return;
        }
        if (!listening) {
          listening = true;
          gateway.listen().then(
            (ports) => send({ t: 'listening', http: ports.http, https: ports.https }),
            (err: Error) => {
              log.fatal({ err: err.message }, 'cannot listen');
              process.exit(1);
            },
          );
        }
        break;
      }
      case 'health':
        applyHealth(msg.upstream, msg.node, msg.healthy);
        break;
      case 'metrics':
        send({ t: 'metrics', id: msg.id, dump: gateway.metrics.dump() });
        break;
      case 'limits':
        limitsChannel.onReply(msg);
        break;
      case 'limits-reclaim':
        send({ t: 'limits-returned', id: msg.id, returned: limits.reclaim(msg.key, msg.limits) });
        break;
      case 'control': {
        const r = gateway.control(msg.plugin, msg.action, msg.args);
        send({ t: 'control', id: msg.id, status: r.status, body: r.body });
        break;
      }
      case 'drain':
        gateway.drain(msg.timeout).finally(() => process.exit(0));
        break;
    }
  });
  // The primary tells workers to drain; a signal sent to the whole process group must not kill them first.
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  // Messages sent before this process listens are lost, so the primary waits for this before sending config.
  send({ t: 'hello' });
  process.on('disconnect', () => {
    gateway.drain(settings.shutdownTimeout).finally(() => process.exit(0));
  });
}
