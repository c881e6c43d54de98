/**
 * @module cli/main
 * The gatehouse command: start | gateway | control-plane | validate.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../core/logger.js';
import { loadSettings, SettingsError } from '../config/settings.js';
import { loadDeclarativeFile } from '../config/declarative-file.js';
import { runPrimary } from '../process/primary.js';
import { runWorker } from '../process/worker.js';
import { startDemoUpstream } from './demo-upstream.js';
import { loadPlugins } from '../plugins/load.js';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import { FileConfigSource } from '../sync/file-source.js';
import { SqliteStore } from '../store/sqlite.js';
import { bootstrapAdmin } from '../control/bootstrap.js';
import { ControlPlane } from '../control/server.js';
import { StoreConfigSource } from '../control/store-source.js';
import { hostname } from 'node:os';
import { EtcdClient } from '../etcd/client.js';
import { EtcdConfigSource } from '../cluster/etcd-source.js';
import { EtcdPublisher } from '../cluster/publisher.js';
import { advertisedStatusUrl, InstanceRegistrar, listInstances } from '../cluster/instances.js';
import { DiscoveryManager } from '../discovery/manager.js';
import { resolveDiscoverySettings } from '../discovery/index.js';
import { upstreamNodes, type UpstreamNodesOptions } from '../discovery/view.js';
import type { UpstreamDiscoveryView } from '../discovery/spec.js';
import type { UpstreamNodeInfo } from '../control/server.js';
import { nodeKey } from '../dataplane/upstream/balancers/index.js';
import { registerDashboard } from '../control/dashboard.js';
import { GatewayMetrics, instanceTargets } from '../control/gateway-metrics.js';

const USAGE = `Usage: gatehouse <command> [options]

Commands:
  start [-c gatehouse.yaml]          all-in-one: admin API (control plane, embedded store under dataDir) and the
                                     gateway workers it configures
  gateway -c gatehouse.yaml          data plane only, config from the configProvider in the settings (a file,
                                     or etcd: cluster mode)
  gateway --file routes.yaml         data plane on a declarative file (standalone mode, hot-reloaded)
  control-plane -c gatehouse.yaml    admin API and store, publishing the live config to the etcd of
                                     configProvider for gateways started with configProvider type etcd
  validate FILE                      check a declarative file; exit 0 when valid, 1 with one line per problem
  backup [-c gatehouse.yaml] FILE    copy the embedded store (dataDir) to FILE, consistent, while it runs

Options:
  -c, --config FILE     static settings (YAML); GATEHOUSE_* variables and flags override it
  -f, --file FILE       declarative routes file (standalone mode)
  -w, --workers N       worker processes (a number or auto)
      --demo-upstream   also start the built-in demo service on 127.0.0.1:9081 (quick start)
  -h, --help            this text
  -v, --version         print the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number | void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        file: { type: 'string', short: 'f' },
        workers: { type: 'string', short: 'w' },
        'demo-upstream': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }

  if (command === 'validate') {
    const file = positionals[1];
    if (!file) {
      process.stderr.write('validate needs a FILE\n');
      return 2;
    }
    let registry;
    try {
      registry = await loadPlugins(loadSettings({ file: values.config }).settings);
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 1;
    }
    const result = await loadDeclarativeFile(file, registry);
    if (result.ok) {
      process.stdout.write(`${file}: valid (${result.value.routes.length} routes, ${result.value.upstreams.length} upstreams)\n`);
      return 0;
    }
    for (const p of result.problems) process.stdout.write(`${p.path}: ${p.message}\n`);
    return 1;
  }

  if (command === 'backup') {
    const target = positionals[1];
    if (!target) {
      process.stderr.write('backup needs the FILE to write\n');
      return 2;
    }
    try {
      const settings = loadSettings({ file: values.config }).settings;
      const source = join(settings.dataDir, 'gatehouse.db');
      if (!existsSync(source)) {
        process.stderr.write(`no store at ${source} (dataDir: ${settings.dataDir})\n`);
        return 1;
      }
      const store = new SqliteStore(source);
      await store.init();
      try {
        await store.backup(target);
      } finally {
        await store.close();
      }
      process.stdout.write(`${source} -> ${target}\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`backup failed: ${(e as Error).message}\n`);
      return 1;
    }
  }


  if (command !== 'gateway' && command !== 'start' && command !== 'control-plane') {
    process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }

  let settings;
  try {
    const overrides: Record<string, unknown> = {};
    if (values.file) {
      overrides['configProvider.type'] = 'file';
      overrides['configProvider.path'] = values.file;
    }
    if (values.workers) overrides.workers = values.workers === 'auto' ? 'auto' : Number(values.workers);
    settings = loadSettings({ file: values.config, overrides }).settings;
  } catch (e) {
    if (e instanceof SettingsError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const log = createLogger({ level: settings.log.level });

  if (cluster.isWorker) {
    await runWorker(settings, log.child({ worker: cluster.worker?.id }));
    return;
  }
  if (values['demo-upstream']) {
    await startDemoUpstream(9081);
    log.info({ address: 'http://127.0.0.1:9081' }, 'demo upstream listening');
  }
  if (command === 'start' && !values.file) return startAllInOne(settings, log);
  if (command === 'control-plane') return startControlPlane(settings, log);
  if (settings.configProvider.type === 'etcd') return startEtcdGateway(settings, log);
  if (!settings.configProvider.path) {
    process.stderr.write('no declarative file: pass --file routes.yaml or set configProvider.path in the settings\n');
    return 1;
  }
  const file = settings.configProvider.path;
  await runPrimary({ settings, log, source: (plugins) => new FileConfigSource(file, plugins) });
}

/**
 * The control plane's view of an upstream's nodes: static and discovered (from this process's discovery
 * manager when it runs the gateway, else by a one-off lookup), with the health this process knows of.
 */
function nodesView(opts: UpstreamNodesOptions, health: () => Array<{ upstream: string; node: string; healthy: boolean }>) {
  return async (upstreamKey: string, content: Record<string, unknown>): Promise<{ nodes: UpstreamNodeInfo[]; discovery: unknown }> => {
    const v = await upstreamNodes(content as UpstreamDiscoveryView, opts);
    const known = new Map(health().filter((h) => h.upstream === upstreamKey).map((h) => [h.node, h.healthy]));
    const nodes = v.nodes.map((n) => {
      const h = known.get(nodeKey(n.host, n.port));
      return { ...n, health: h === undefined ? ('unknown' as const) : h ? ('healthy' as const) : ('unhealthy' as const) };
    });
    return { nodes, discovery: v.discovery };
  };
}

/** All-in-one: the status port this process serves, as the control plane in the same process reaches it. */
function localStatusUrl(settings: Settings): string {
  const h = settings.status.host;
  const host = h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  return `http://${host}:${settings.status.port}`;
}

/** This gateway's instance id: the setting, or host name and proxy port (the name gray releases target). */
function instanceIdOf(settings: Settings): string {
  return settings.instanceId ?? `${hostname()}-${settings.proxy.http}`;
}

/**
 * All-in-one: the control plane's store and admin API in the primary process, and gateway workers whose
 * config is the store's live state. A publish reaches the workers at once.
 */
async function startAllInOne(settings: Settings, log: Logger): Promise<number | void> {
  let store: SqliteStore;
  let plugins;
  try {
    plugins = await loadPlugins(settings);
    store = await openControlStore(settings, log);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'cannot open the store');
    return 1;
  }
  const source = new StoreConfigSource(store, plugins, `store ${join(settings.dataDir, 'gatehouse.db')}`, instanceIdOf(settings), log.child({ component: 'config' }));
  let revision = 0;
  source.on('config', (_c, rev) => (revision = rev));
  // One discovery manager: the gateway's nodes come from it, and the admin API shows the same.
  const discovery = new DiscoveryManager({ settings: resolveDiscoverySettings(settings), log: log.child({ component: 'discovery' }) });
  let health: () => Array<{ upstream: string; node: string; healthy: boolean }> = () => [];
  const startedAt = new Date().toISOString();
  const statusUrl = localStatusUrl(settings);
  const metrics = new GatewayMetrics({ targets: async () => [{ id: instanceIdOf(settings), startedAt, statusUrl }] });
  const cp = new ControlPlane({
    store,
    plugins,
    logger: log.child({ component: 'admin' }),
    onPublish: () => source.notify(),
    upstreamNodes: nodesView({ manager: discovery, log: log.child({ component: 'discovery' }) }, () => health()),
    metrics: (tenant) => metrics.read(tenant),
    // All-in-one: this process is the one gateway instance.
    instances: async () => [
      {
        id: instanceIdOf(settings),
        hostname: hostname(),
        addresses: { http: settings.proxy.http, https: settings.proxy.https >= 0 ? settings.proxy.https : null, status: settings.status.port },
        statusUrl,
        startedAt,
        version: version(),
        labels: settings.instanceLabels,
        revision,
        pid: process.pid,
        heartbeat: new Date().toISOString(),
        configSourceOk: true,
        gray: source.served,
      },
    ],
  });
  registerDashboard(cp.app, { logger: log.child({ component: 'dashboard' }) });
  const adminPort = await listenAdmin(cp, settings, log);
  if (adminPort === null) {
    await store.close();
    return 1;
  }
  log.info({ address: `http://${settings.admin.host}:${adminPort}/api/v1`, store: store.driver }, 'admin API listening');
  await runPrimary({ settings, log, plugins, source: () => source, discovery, exposeHealth: (snapshot) => (health = snapshot) });
  if (process.exitCode) return;
  // Where everything is, for the person at the terminal (the JSON log has it too).
  const p = settings.proxy;
  process.stderr.write(
    `Gatehouse: proxy http://${p.host}:${p.http}${p.https >= 0 ? ` and https://${p.host}:${p.https}` : ''}, ` +
      `admin API http://${settings.admin.host}:${adminPort}/api/v1 (POST /login as a user, or Authorization: Bearer <token>), ` +
      `status http://${settings.status.host}:${settings.status.port}/readyz\n`,
  );
}

/** The control plane's store under dataDir, created on first use with its first admin (password shown once). */
async function openControlStore(settings: Settings, log: Logger): Promise<SqliteStore> {
  mkdirSync(settings.dataDir, { recursive: true, mode: 0o700 });
  const store = new SqliteStore(join(settings.dataDir, 'gatehouse.db'));
  await store.init();
  const boot = await bootstrapAdmin(store, settings.dataDir, log);
  // Shown once, on the terminal, not in the JSON log stream.
  if (boot.password) process.stderr.write(`\nFirst start: log in to the admin API as "admin" with password ${boot.password}\n(also in ${boot.passwordFile}, readable only by this user)\n\n`);
  return store;
}

/** Listen with the admin API on admin.host:port; the bound port, or null (logged) when it cannot. */
async function listenAdmin(cp: ControlPlane, settings: Settings, log: Logger): Promise<number | null> {
  try {
    await cp.app.listen({ host: settings.admin.host, port: settings.admin.port });
  } catch (e) {
    log.fatal({ err: (e as Error).message, host: settings.admin.host, port: settings.admin.port }, 'the admin API cannot listen');
    return null;
  }
  return (cp.app.server.address() as { port: number }).port;
}

/** The etcd key prefix without a trailing slash. */
function etcdPrefix(settings: Settings): string {
  return settings.configProvider.prefix.replace(/\/+$/, '');
}

/** An etcd client from the configProvider settings (TLS files read here). */
function etcdClient(settings: Settings): EtcdClient {
  const cp = settings.configProvider;
  if (!cp.endpoints?.length) throw new Error('configProvider.endpoints is required with type etcd (GATEHOUSE_CONFIG_PROVIDER_ENDPOINTS)');
  const read = (f: string | undefined) => (f ? readFileSync(f, 'utf8') : undefined);
  return new EtcdClient({
    endpoints: cp.endpoints,
    username: cp.username,
    password: cp.password,
    timeout: cp.timeout,
    tls: cp.tls ? { ca: read(cp.tls.ca), cert: read(cp.tls.cert), key: read(cp.tls.key), rejectUnauthorized: cp.tls.rejectUnauthorized } : undefined,
  });
}

/**
 * Cluster mode, data plane: config from etcd (watched; saved locally for starts while etcd is down), and this
 * gateway registered in etcd as an instance.
 */
async function startEtcdGateway(settings: Settings, log: Logger): Promise<number | void> {
  let client: EtcdClient;
  try {
    client = etcdClient(settings);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  }
  const prefix = etcdPrefix(settings);
  let source: EtcdConfigSource | null = null;
  let revision = 0;
  await runPrimary({
    settings,
    log,
    source: (plugins) => {
      source = new EtcdConfigSource(client, prefix, plugins, join(settings.dataDir, 'etcd-config.json'), log.child({ component: 'etcd' }), instanceIdOf(settings));
      return source;
    },
  });
  if (process.exitCode || source === null) return;
  const src = source as EtcdConfigSource;
  const statusUrl = advertisedStatusUrl(settings.status);
  if (statusUrl === null) log.warn('no status address to advertise (status.port 0 without status.advertiseAddress): the control plane cannot read this gateway\'s metrics');
  else log.info({ statusUrl }, 'status address advertised to the control plane');
  const registrar = new InstanceRegistrar(
    client,
    prefix,
    {
      id: instanceIdOf(settings),
      addresses: { http: settings.proxy.http, https: settings.proxy.https >= 0 ? settings.proxy.https : null, status: settings.status.port },
      statusUrl,
      version: version(),
      labels: settings.instanceLabels,
    },
    log.child({ component: 'instance' }),
    () => ({ revision, configSourceOk: src.health().ok, gray: src.served }),
  );
  src.on('config', (_c, rev) => {
    revision = rev;
    registrar.changed();
  });
  revision = (src.health().detail.revision as number) ?? 0;
  registrar.start();
  const stop = () => void registrar.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * Cluster mode, control plane: the admin API and the store, publishing what is live to etcd for the gateways
 * (which it lists as instances). No gateway workers run here.
 */
async function startControlPlane(settings: Settings, log: Logger): Promise<number | void> {
  let client: EtcdClient;
  let store: SqliteStore;
  let plugins;
  try {
    client = etcdClient(settings);
    plugins = await loadPlugins(settings);
    store = await openControlStore(settings, log);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'cannot start the control plane');
    return 1;
  }
  const prefix = etcdPrefix(settings);
  const publisher = new EtcdPublisher(client, prefix, store, log.child({ component: 'etcd' }));
  // Every live gateway's /metrics, at the status URL it advertises in its instance record.
  const metrics = new GatewayMetrics({ targets: async () => instanceTargets(await listInstances(client, prefix), hostname()) });
  const cp = new ControlPlane({
    store,
    plugins,
    logger: log.child({ component: 'admin' }),
    onPublish: (_rev, changes) => void publisher.published(changes),
    // No gateway runs here: discovered nodes by a one-off lookup with this process's discovery settings.
    upstreamNodes: nodesView({ settings: resolveDiscoverySettings(settings), log: log.child({ component: 'discovery' }) }, () => []),
    instances: () => listInstances(client, prefix),
    metrics: (tenant) => metrics.read(tenant),
  });
  registerDashboard(cp.app, { logger: log.child({ component: 'dashboard' }) });
  const adminPort = await listenAdmin(cp, settings, log);
  if (adminPort === null) {
    await store.close();
    return 1;
  }
  log.info({ address: `http://${settings.admin.host}:${adminPort}/api/v1`, etcd: settings.configProvider.endpoints, prefix }, 'control plane listening');
  await publisher.start();
  const stop = async (signal: string) => {
    log.info({ signal }, 'stopping the control plane');
    publisher.close();
    await cp.app.close();
    await store.close();
    await client.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
