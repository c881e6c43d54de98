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

const USAGE = `Usage: gatehouse <command> [options]

Commands:
  start [-c gatehouse.yaml]          all-in-one server (today: the gateway in standalone mode)
  gateway -c gatehouse.yaml          data plane only, config from the configProvider in the settings
  gateway --file routes.yaml         data plane on a declarative file (standalone mode, hot-reloaded)
  control-plane -c gatehouse.yaml    admin API and dashboard (not available in this version)
  validate FILE                      check a declarative file; exit 0 when valid, 1 with one line per problem

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

  if (command === 'control-plane') {
    process.stderr.write('gatehouse control-plane: the control plane is not part of this version yet; run the gateway in standalone mode (gatehouse gateway --file routes.yaml)\n');
    return 1;
  }

  if (command !== 'gateway' && command !== 'start') {
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
  if (settings.configProvider.type !== 'file' || !settings.configProvider.path) {
    process.stderr.write(
      settings.configProvider.type === 'etcd'
        ? 'configProvider type etcd is not available in this version; use a declarative file (--file routes.yaml)\n'
        : 'no declarative file: pass --file routes.yaml or set configProvider.path in the settings\n',
    );
    return 1;
  }
  if (values['demo-upstream']) {
    await startDemoUpstream(9081);
    log.info({ address: 'http://127.0.0.1:9081' }, 'demo upstream listening');
  }
  await runPrimary({ settings, log, configFile: settings.configProvider.path });
}
