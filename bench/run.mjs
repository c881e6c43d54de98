#!/usr/bin/env node
// Gatehouse benchmark harness. See README.md. Run from bench/: `npm ci && npm run bench` (or `-- --quick`).
//
// Rig: nginx upstream + wrk pinned to CPU 1, the proxy under test (its whole process tree) pinned to CPU 0.
// For every repetition, every proxy is started, checked, and loaded with each body size (3 s warm-up, then
// the measured run); its CPU time per request comes from /proc (utime + stime of its process tree).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  CLK_TCK, setPinning, startProcess, stopProcess, killAllSync, tailLog, treeSnapshot, cpuMicros,
  cpuBusySnapshot, cpuBusy,
} from './lib/procs.mjs';
import { freePort, waitReady, probe } from './lib/http.mjs';
import { BODIES, writeUpstream, writeProxy, startNginx } from './lib/nginx.mjs';
import { runWrk, errorCount } from './lib/wrk.mjs';
import {
  oneRouteYaml, manyRoutesYaml, pluginRoutesYaml, writeRoutes, gatehouseMissing, startGatehouse, MANY_ROUTES, MANY_TARGET,
  PLUGIN_ROUTES,
} from './lib/gatehouse.mjs';
import { median, min, max, fmtRps, fmtMs, fmtRatio, fmtUs, textTable, mdTable } from './lib/stats.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const PROXY_CPU = '0'; // the proxy under test
const RIG_CPU = '1'; // wrk and the upstream
/** Gatehouse's extra scenarios, selectable with --scenarios. */
const SCENARIOS = ['one-route', 'many-routes', 'reload', 'plugins'];

// ---------------------------------------------------------------------------------------------- options
const HELP = `Usage: node run.mjs [options]        (npm run bench -- [options])

  --quick              1 repetition, 3 s runs, 1 s warm-up, small body only        (BENCH_QUICK=1)
  --reps N             interleaved repetitions (default 3)                           (BENCH_REPS)
  --duration S         seconds of each measured run (default 10)                     (BENCH_DURATION)
  --warmup S           seconds of warm-up before each measured run (default 3)       (BENCH_WARMUP)
  --sizes LIST         body sizes: small,4k,64k (default all)                         (BENCH_SIZES)
  --connections LIST   wrk connections, e.g. 64,256 (default 64)                      (BENCH_CONNECTIONS)
  --proxies LIST       none,nginx,undici,fast-gateway,fastify,http-proxy,gatehouse    (BENCH_PROXIES)
                       (default all of these); tcp-relay is an opt-in extra reference
  --no-scenarios       skip Gatehouse's extra scenarios (10,000 routes; reloads)      (BENCH_SCENARIOS=0)
  --scenarios-only     run only Gatehouse's extra scenarios
  --scenarios LIST     which scenarios: one-route,many-routes,reload,plugins (all)    (BENCH_SCENARIOS=LIST)
  --plugins-baseline DIR  another Gatehouse checkout (built) whose plain route is      (BENCH_PLUGINS_BASELINE)
                       measured next to the plugins scenario, e.g. the last release
  --reload-mode MODE   how the reload scenario rewrites the file: inplace | rename    (BENCH_RELOAD_MODE)
  --gatehouse-dir DIR  the Gatehouse checkout (default: the directory above bench/)   (BENCH_GATEHOUSE_DIR)
  --ready-timeout S    seconds a proxy has to answer 200 before it is skipped (10)    (BENCH_READY_TIMEOUT)
  --no-pin             do not pin with taskset (results are then not comparable)      (BENCH_PIN=0)
  --keep-tmp           keep the scratch directory (configs, logs) for inspection
  --help
`;

function parseOptions(argv) {
  const env = process.env;
  const o = {
    quick: env.BENCH_QUICK === '1',
    reps: env.BENCH_REPS ? Number(env.BENCH_REPS) : undefined,
    duration: env.BENCH_DURATION ? Number(env.BENCH_DURATION) : undefined,
    warmup: env.BENCH_WARMUP !== undefined && env.BENCH_WARMUP !== '' ? Number(env.BENCH_WARMUP) : undefined,
    sizes: env.BENCH_SIZES ? env.BENCH_SIZES.split(',') : undefined,
    connections: env.BENCH_CONNECTIONS ? env.BENCH_CONNECTIONS.split(',').map(Number) : undefined,
    proxies: env.BENCH_PROXIES ? env.BENCH_PROXIES.split(',') : undefined,
    scenarios: env.BENCH_SCENARIOS !== '0',
    scenarioList: env.BENCH_SCENARIOS && !['0', '1'].includes(env.BENCH_SCENARIOS) ? env.BENCH_SCENARIOS.split(',') : undefined,
    scenariosOnly: false,
    pluginsBaseline: env.BENCH_PLUGINS_BASELINE ? path.resolve(env.BENCH_PLUGINS_BASELINE) : null,
    reloadMode: env.BENCH_RELOAD_MODE || 'inplace',
    gatehouseDir: env.BENCH_GATEHOUSE_DIR || path.resolve(BENCH_DIR, '..'),
    readyTimeout: env.BENCH_READY_TIMEOUT ? Number(env.BENCH_READY_TIMEOUT) : 10,
    pin: env.BENCH_PIN !== '0',
    keepTmp: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--reps': o.reps = Number(val()); break;
      case '--duration': o.duration = Number(val()); break;
      case '--warmup': o.warmup = Number(val()); break;
      case '--sizes': o.sizes = val().split(','); break;
      case '--connections': o.connections = val().split(',').map(Number); break;
      case '--proxies': o.proxies = val().split(','); break;
      case '--no-scenarios': o.scenarios = false; break;
      case '--scenarios-only': o.scenariosOnly = true; o.scenarios = true; break;
      case '--scenarios': o.scenarioList = val().split(','); o.scenarios = true; break;
      case '--plugins-baseline': o.pluginsBaseline = path.resolve(val()); break;
      case '--reload-mode': o.reloadMode = val(); break;
      case '--gatehouse-dir': o.gatehouseDir = path.resolve(val()); break;
      case '--ready-timeout': o.readyTimeout = Number(val()); break;
      case '--no-pin': o.pin = false; break;
      case '--keep-tmp': o.keepTmp = true; break;
      case '--help': case '-h': process.stdout.write(HELP); process.exit(0); break;
      default: throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  o.reps ??= o.quick ? 1 : 3;
  o.duration ??= o.quick ? 3 : 10;
  o.warmup ??= o.quick ? 1 : 3;
  o.sizes ??= o.quick ? ['small'] : ['small', '4k', '64k'];
  o.connections ??= [64];
  o.proxies ??= PROXIES.filter((p) => !p.optIn).map((p) => p.key);
  o.sizes = [...new Set(o.sizes)];
  o.connections = [...new Set(o.connections)];
  o.proxies = [...new Set(o.proxies)];
  o.scenarioList = [...new Set(o.scenarioList ?? SCENARIOS)];
  const bad = (what, xs, ok) => {
    const wrong = xs.filter((x) => !ok(x));
    if (wrong.length) throw new Error(`unknown ${what}: ${wrong.join(', ')}`);
  };
  bad('size', o.sizes, (s) => s in BODIES);
  bad('proxy', o.proxies, (k) => PROXIES.some((p) => p.key === k));
  bad('scenario', o.scenarioList, (k) => SCENARIOS.includes(k));
  bad('connection count', o.connections, (c) => Number.isInteger(c) && c > 0 && c <= 10000);
  for (const [k, lo, hi] of [['reps', 1, 50], ['duration', 1, 600], ['warmup', 0, 600], ['readyTimeout', 1, 300]]) {
    if (!(o[k] >= lo && o[k] <= hi)) throw new Error(`--${k} must be within ${lo}..${hi}`);
  }
  if (!['inplace', 'rename'].includes(o.reloadMode)) throw new Error('--reload-mode is inplace or rename');
  return o;
}

// ---------------------------------------------------------------------------------------------- proxies
function pkgVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  } catch {
    return '?';
  }
}

const PROXIES = [
  { key: 'none', kind: 'none', label: () => 'none (wrk straight to the upstream)' },
  { key: 'nginx', kind: 'nginx', label: (m) => `nginx ${m.nginxVersion}, 1 worker` },
  { key: 'undici', kind: 'node', script: 'minimal-undici.mjs', label: () => `minimal node:http + undici ${pkgVersion('undici')} Pool (reference)` },
  { key: 'tcp-relay', kind: 'node', optIn: true, script: 'tcp-relay.mjs', label: () => 'TCP relay, no HTTP (floor of any Node.js proxy; opt-in)' },
  { key: 'fast-gateway', kind: 'node', peer: true, script: 'fast-gateway.cjs', label: () => `fast-gateway ${pkgVersion('fast-gateway')}` },
  { key: 'fastify', kind: 'node', peer: true, script: 'fastify-http-proxy.mjs', label: () => `@fastify/http-proxy ${pkgVersion('@fastify/http-proxy')} (fastify ${pkgVersion('fastify')})` },
  { key: 'http-proxy', kind: 'node', peer: true, script: 'http-proxy.cjs', label: () => `http-proxy ${pkgVersion('http-proxy')} (node:http + keep-alive Agent)` },
  { key: 'gatehouse', kind: 'gatehouse', label: (m) => `Gatehouse ${m.gatehouseVersion} (--workers 1)` },
];

// ---------------------------------------------------------------------------------------------- helpers
const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function findBinary(name, extra = []) {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  for (const p of extra) if (fs.existsSync(p)) return p;
  return null;
}

function toolVersion(bin, args, re) {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const m = re.exec(text);
  return m ? m[1] : text.split('\n')[0].trim();
}

function cpuModel() {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : os.cpus()[0]?.model ?? '?';
  } catch {
    return os.cpus()[0]?.model ?? '?';
  }
}

/** A Gatehouse checkout's package version and git revision (when it is a git checkout). */
function checkoutInfo(dir) {
  let version = '?';
  try { version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version; } catch {}
  const r = spawnSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = r.status === 0 && spawnSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).stdout.trim() !== '';
  return { version, rev: r.status === 0 ? `${r.stdout.trim()}${dirty ? '+changes' : ''}` : null };
}

function commandLine(args) {
  const envs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  const shown = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `cd bench && ${envs}npm run bench${shown ? ` -- ${shown}` : ''}`;
  return `cd bench && ${envs}node run.mjs${shown ? ` ${shown}` : ''}`;
}

// ---------------------------------------------------------------------------------------------- main
async function main() {
  const args = process.argv.slice(2);
  const opt = parseOptions(args);

  // Tools.
  const nginxBin = findBinary('nginx', ['/usr/sbin/nginx', '/usr/local/sbin/nginx']);
  const wrkBin = findBinary('wrk');
  const tasksetBin = findBinary('taskset');
  const missing = [];
  if (!nginxBin) missing.push('nginx (Debian: apt-get install -y nginx-light)');
  if (!wrkBin) missing.push('wrk (Debian: apt-get install -y wrk)');
  if (!tasksetBin && opt.pin) missing.push('taskset (Debian: apt-get install -y util-linux)');
  if (missing.length) {
    log(`missing tools:\n  ${missing.join('\n  ')}\ninstall them with: apt-get install -y nginx-light wrk`);
    process.exit(2);
  }
  if (!fs.existsSync(path.join(BENCH_DIR, 'node_modules', 'undici'))) {
    log('bench dependencies are not installed: run `npm ci` in bench/ first');
    process.exit(2);
  }
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  if (cores < 2 && opt.pin) {
    log(`only ${cores} CPU available: pinning needs 2 (proxy on CPU 0, wrk + upstream on CPU 1); running unpinned`);
    opt.pin = false;
  }
  setPinning(opt.pin);
  // The harness itself (mostly idle; it rewrites the routes file in the reload scenario) stays off CPU 0.
  if (opt.pin) spawnSync('taskset', ['-a', '-cp', RIG_CPU, String(process.pid)], { stdio: 'ignore' });

  const ghMissing = gatehouseMissing(opt.gatehouseDir);
  let gatehouseVersion = '?';
  try { gatehouseVersion = JSON.parse(fs.readFileSync(path.join(opt.gatehouseDir, 'package.json'), 'utf8')).version; } catch {}
  const meta = {
    date: new Date().toISOString(),
    command: commandLine(args),
    node: process.version,
    cpuModel: cpuModel(),
    cores,
    kernel: os.release(),
    nginxVersion: toolVersion(nginxBin, ['-v'], /nginx\/(\S+)/),
    wrkVersion: toolVersion(wrkBin, ['--version'], /^wrk (\S+)/m),
    gatehouseVersion,
    clkTck: CLK_TCK,
    pinned: opt.pin,
    options: {
      reps: opt.reps, durationS: opt.duration, warmupS: opt.warmup, sizes: opt.sizes,
      connections: opt.connections, proxies: opt.proxies, scenarios: opt.scenarios ? opt.scenarioList : [], reloadMode: opt.reloadMode,
      wrkThreads: 1,
    },
    gatehouseRev: checkoutInfo(opt.gatehouseDir).rev,
    pluginsBaseline: opt.pluginsBaseline ? checkoutInfo(opt.pluginsBaseline) : null,
    peers: Object.fromEntries(['undici', 'fast-gateway', 'fastify', '@fastify/http-proxy', 'http-proxy'].map((n) => [n, pkgVersion(n)])),
  };
  const labels = Object.fromEntries(PROXIES.map((p) => [p.key, p.label(meta)]));

  // Scratch space, and cleanup on every way out.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    killAllSync();
    if (!opt.keepTmp) {
      try { fs.rmSync(tmp, { recursive: true, force: true }); } catch {}
    } else {
      log(`scratch directory kept: ${tmp}`);
    }
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      log(`\n${sig}: stopping every child process`);
      cleanup();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (e) => {
    log(`fatal: ${e.stack || e}`);
    cleanup();
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log(`fatal: ${e?.stack || e}`);
    cleanup();
    process.exit(1);
  });

  // How busy the machine is before we start anything: a shared machine makes every figure noisy.
  const idle0 = cpuBusySnapshot();
  await sleep(1000);
  meta.busyBeforeStart = cpuBusy(idle0, cpuBusySnapshot());
  const busiest = Math.max(0, ...Object.values(meta.busyBeforeStart).filter(Number.isFinite));
  if (busiest > 10) log(`warning: the machine is not idle before the run (${JSON.stringify(meta.busyBeforeStart)} % busy): results will be noisy`);

  log(`gatehouse bench: ${meta.command}`);
  log(`node ${meta.node}, ${meta.cpuModel}, ${cores} CPUs, nginx ${meta.nginxVersion}, wrk ${meta.wrkVersion}, pinned: ${opt.pin}`);
  log(`reps ${opt.reps}, warm-up ${opt.warmup} s, runs ${opt.duration} s, sizes ${opt.sizes.join(',')}, connections ${opt.connections.join(',')}`);

  // Upstream.
  const upstreamPort = await freePort();
  const upPrefix = path.join(tmp, 'upstream');
  writeUpstream(upPrefix, upstreamPort);
  const upstream = startNginx('upstream', upPrefix, RIG_CPU, nginxBin);
  for (const size of Object.keys(BODIES)) {
    const r = await waitReady(upstreamPort, BODIES[size].path, { expectLength: BODIES[size].length, timeoutMs: 10000, proc: upstream });
    if (!r.ok) throw new Error(`the upstream nginx did not serve ${BODIES[size].path}: ${r.last}\n${tailLog(upstream)}`);
  }
  log(`upstream nginx on 127.0.0.1:${upstreamPort} (pid ${upstream.pid})`);

  const records = [];
  const skipped = {};
  const scenarioRecords = [];

  // One warm-up plus one measured run against a running proxy; returns a record.
  async function measure({ proc, port, urlPath, expectLength, connections, hostHeader, headers, during }) {
    const wrkLog = path.join(tmp, 'wrk.log');
    if (opt.warmup > 0) {
      await runWrk({ port, urlPath, connections, durationS: opt.warmup, cpu: RIG_CPU, logPath: wrkLog, hostHeader, headers });
    }
    if (proc?.exited) throw new Error(`process exited during warm-up (code ${proc.exitCode}, signal ${proc.signal})`);
    if (expectLength !== undefined) {
      const chk = await probe(port, urlPath, { timeoutMs: 5000, host: hostHeader, headers });
      if (chk.status !== 200 || chk.length !== expectLength) {
        throw new Error(`after warm-up: status ${chk.status}, ${chk.length} bytes (want 200, ${expectLength})`);
      }
    }
    const before = proc ? treeSnapshot(proc.pid) : null;
    const busyBefore = cpuBusySnapshot();
    during?.start();
    let w;
    try {
      w = await runWrk({ port, urlPath, connections, durationS: opt.duration, cpu: RIG_CPU, logPath: wrkLog, hostHeader, headers });
    } finally {
      during?.stop();
    }
    const after = proc ? treeSnapshot(proc.pid) : null;
    const busy = cpuBusy(busyBefore, cpuBusySnapshot());
    const cpuUs = proc ? cpuMicros(before, after) : null;
    // CPU 0 time not spent by the proxy: other processes on the machine (noise), in % of the core.
    const foreign = busy.cpu0 === undefined || busy.cpu0 === null ? null
      : Math.max(0, Math.round((busy.cpu0 - (proc ? (cpuUs / (w.durationS * 1e6)) * 100 : 0)) * 10) / 10);
    if (foreign !== null && foreign > 15) log(`  warning: CPU 0 was ${foreign}% busy with other processes during this run (noise)`);
    return {
      rps: w.rps,
      requests: w.requests,
      durationS: w.durationS,
      p50us: w.p50us,
      p90us: w.p90us,
      p99us: w.p99us,
      maxus: w.maxus,
      non2xx: w.non2xx,
      socketErrors: w.socketErrors,
      errors: errorCount(w),
      cpuUs,
      cpuUsPerReq: proc && w.requests > 0 ? cpuUs / w.requests : null,
      proxyCoreShare: proc ? cpuUs / (w.durationS * 1e6) : null,
      treeProcesses: proc ? after.per.size : null,
      rssMB: proc ? Math.round((after.rss / 2 ** 20) * 10) / 10 : null,
      busy,
      cpu0ForeignPct: foreign,
      proxyAlive: proc ? !proc.exited : null,
    };
  }

  // Starts one proxy; resolves { proc, port } or throws with the reason.
  async function startProxy(def, rep, routesFile) {
    if (def.kind === 'none') return { proc: null, port: upstreamPort };
    const port = await freePort();
    const dir = path.join(tmp, `${def.key}-${rep}`);
    fs.mkdirSync(dir, { recursive: true });
    const logPath = path.join(dir, 'proxy.log');
    let proc;
    let statusPort = null;
    let timeoutMs = opt.readyTimeout * 1000;
    if (def.kind === 'nginx') {
      writeProxy(dir, port, upstreamPort);
      proc = startNginx(def.key, dir, PROXY_CPU, nginxBin);
    } else if (def.kind === 'node') {
      proc = startProcess(def.key, process.execPath, [path.join(BENCH_DIR, 'proxies', def.script)], {
        env: { ...process.env, PORT: String(port), UPSTREAM_HOST: '127.0.0.1', UPSTREAM_PORT: String(upstreamPort), NODE_ENV: 'production' },
        cwd: BENCH_DIR,
        cpu: PROXY_CPU,
        logPath,
      });
    } else {
      const missing = def.repo ? gatehouseMissing(def.repo) : ghMissing;
      if (missing) throw new Error(missing);
      let file = routesFile;
      if (!file) {
        file = path.join(dir, 'routes.yaml');
        writeRoutes(file, oneRouteYaml(upstreamPort));
      }
      if (def.readyTimeoutS) timeoutMs = Math.max(timeoutMs, def.readyTimeoutS * 1000);
      statusPort = await freePort();
      proc = startGatehouse({
        name: def.key, repo: def.repo ?? opt.gatehouseDir, routesFile: file, port, statusPort, workDir: dir, cpu: PROXY_CPU, logPath,
      });
    }
    const probePath = def.probePath ?? BODIES.small.path;
    const r = await waitReady(port, probePath, { expectLength: BODIES.small.length, timeoutMs, proc });
    if (!r.ok) {
      await stopProcess(proc);
      const tail = tailLog(proc, 6);
      throw new Error(`did not answer 200 on ${probePath} within ${timeoutMs / 1000} s (${r.last})${tail ? `\n      ${tail.split('\n').join('\n      ')}` : ''}`);
    }
    return { proc, port, statusPort, readyMs: r.ms };
  }

  const fmtRun = (r) =>
    `${fmtRps(r.rps)} rps, p50 ${fmtMs(r.p50us)}, p99 ${fmtMs(r.p99us)}` +
    (r.cpuUsPerReq !== null ? `, CPU ${fmtUs(r.cpuUsPerReq)} µs/req (${Math.round(r.proxyCoreShare * 100)}% of a core)` : '') +
    `, cpu0 ${r.busy.cpu0 ?? '-'}% cpu1 ${r.busy.cpu1 ?? '-'}%` +
    (r.errors ? `, ERRORS ${r.errors} (non-2xx ${r.non2xx}, socket ${JSON.stringify(r.socketErrors)})` : '');

  // ------------------------------------------------------------------ main matrix, interleaved by repetition
  const selected = PROXIES.filter((p) => opt.proxies.includes(p.key));
  if (!opt.scenariosOnly) {
    for (let rep = 1; rep <= opt.reps; rep++) {
      for (const def of selected) {
        if (skipped[def.key]) continue;
        let started;
        try {
          started = await startProxy(def, rep);
        } catch (e) {
          skipped[def.key] = e.message;
          log(`[rep ${rep}/${opt.reps}] ${labels[def.key]}: SKIPPED, ${e.message}`);
          continue;
        }
        for (const size of opt.sizes) {
          for (const connections of opt.connections) {
            const tag = `[rep ${rep}/${opt.reps}] ${def.key} ${size} c${connections}`;
            const base = { rep, proxy: def.key, size, connections };
            try {
              const r = await measure({
                proc: started.proc, port: started.port, urlPath: BODIES[size].path, expectLength: BODIES[size].length, connections,
              });
              records.push({ ...base, ...r });
              log(`${tag}: ${fmtRun(r)}`);
            } catch (e) {
              records.push({ ...base, error: e.message, logTail: started.proc ? tailLog(started.proc, 30) : undefined });
              log(`${tag}: FAILED, ${e.message}`);
            }
            if (started.proc?.exited) break;
          }
          if (started.proc?.exited) {
            log(`[rep ${rep}/${opt.reps}] ${def.key}: the process exited (code ${started.proc.exitCode}, signal ${started.proc.signal})\n${tailLog(started.proc)}`);
            break;
          }
        }
        if (started.proc) await stopProcess(started.proc);
      }
    }
  }

  // ------------------------------------------------------------------ Gatehouse scenarios
  let scenarioNote = null;
  if (opt.scenarios) {
    if (ghMissing) scenarioNote = ghMissing;
    else if (skipped.gatehouse) scenarioNote = 'Gatehouse did not answer in the main runs';
  }
  if (opt.scenarios && !scenarioNote) {
    const gh = PROXIES.find((p) => p.key === 'gatehouse');
    const urlPath = MANY_TARGET.path;
    const connections = opt.connections[0];
    const want = (s) => opt.scenarioList.includes(s);

    // (c) 10,000 routes, loading one of the last.
    const manyRoutes = async (rep) => {
      const dirB = path.join(tmp, `scenario-many-${rep}`);
      fs.mkdirSync(dirB, { recursive: true });
      const manyFile = path.join(dirB, 'routes.yaml');
      writeRoutes(manyFile, manyRoutesYaml(upstreamPort));
      let b;
      try {
        b = await startProxy({ ...gh, key: 'gatehouse', probePath: urlPath, readyTimeoutS: 30 }, `many-${rep}`, manyFile);
      } catch (e) {
        scenarioRecords.push({ rep, scenario: 'many-routes', connections, error: e.message });
        log(`[scenario rep ${rep}/${opt.reps}] many-routes: FAILED, ${e.message}`);
        return;
      }
      try {
        const r = await measure({ proc: b.proc, port: b.port, urlPath, expectLength: BODIES.small.length, connections });
        r.readyMs = b.readyMs;
        scenarioRecords.push({ rep, scenario: 'many-routes', connections, ...r });
        log(`[scenario rep ${rep}/${opt.reps}] many-routes: ${fmtRun(r)} (ready after ${b.readyMs} ms)`);
      } catch (e) {
        scenarioRecords.push({ rep, scenario: 'many-routes', connections, error: e.message });
        log(`[scenario rep ${rep}/${opt.reps}] many-routes: FAILED, ${e.message}`);
      }
      await stopProcess(b.proc);
    };

    // (d) Plugin cost: one process serves a route with no plugins and one with key-auth + request-id; the two
    // are loaded back to back, in alternating order by repetition. With --plugins-baseline, another build's
    // plain route is measured in the same repetition (before or after, alternating).
    const pluginKey = `bench-${randomBytes(24).toString('hex')}`;
    const pluginVariants = {
      'plugins-none': { urlPath: PLUGIN_ROUTES.plain.path, headers: {} },
      'plugins-auth': { urlPath: PLUGIN_ROUTES.auth.path, headers: { apikey: pluginKey } },
      'plugins-stack': { urlPath: PLUGIN_ROUTES.stack.path, headers: { apikey: pluginKey } },
    };
    const measurePlugin = async (rep, scenario, started, variant) => {
      const tag = `[scenario rep ${rep}/${opt.reps}] ${scenario}`;
      try {
        const r = await measure({ proc: started.proc, port: started.port, urlPath: variant.urlPath, headers: variant.headers, expectLength: BODIES.small.length, connections });
        scenarioRecords.push({ rep, scenario, connections, ...r });
        log(`${tag}: ${fmtRun(r)}`);
      } catch (e) {
        scenarioRecords.push({ rep, scenario, connections, error: e.message });
        log(`${tag}: FAILED, ${e.message}`);
      }
    };
    const pluginsBaseline = async (rep) => {
      const dir = path.join(tmp, `scenario-plugins-baseline-${rep}`);
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'routes.yaml');
      writeRoutes(file, pluginRoutesYaml(upstreamPort, null));
      let started;
      try {
        started = await startProxy({ ...gh, key: 'gatehouse-baseline', repo: opt.pluginsBaseline, probePath: PLUGIN_ROUTES.plain.path }, `plugins-baseline-${rep}`, file);
      } catch (e) {
        scenarioRecords.push({ rep, scenario: 'plugins-baseline', connections, error: e.message });
        log(`[scenario rep ${rep}/${opt.reps}] plugins-baseline: FAILED, ${e.message}`);
        return;
      }
      await measurePlugin(rep, 'plugins-baseline', started, pluginVariants['plugins-none']);
      await stopProcess(started.proc);
    };
    const plugins = async (rep) => {
      if (opt.pluginsBaseline && rep % 2 === 1) await pluginsBaseline(rep);
      const dir = path.join(tmp, `scenario-plugins-${rep}`);
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'routes.yaml');
      writeRoutes(file, pluginRoutesYaml(upstreamPort, pluginKey));
      let started;
      let ready = false;
      try {
        started = await startProxy({ ...gh, key: 'gatehouse', probePath: PLUGIN_ROUTES.plain.path }, `plugins-${rep}`, file);
        // The plugins really run: no key is refused, the key is accepted and the request id comes back.
        const without = await probe(started.port, PLUGIN_ROUTES.auth.path, { timeoutMs: 5000 });
        const withKey = await probe(started.port, PLUGIN_ROUTES.auth.path, { timeoutMs: 5000, headers: { apikey: pluginKey } });
        if (without.status !== 401 || withKey.status !== 200 || !withKey.headers['x-request-id']) {
          throw new Error(`${PLUGIN_ROUTES.auth.path}: without the key ${without.status} (want 401), with it ${withKey.status} (want 200 with x-request-id)`);
        }
        const stack = await probe(started.port, PLUGIN_ROUTES.stack.path, { timeoutMs: 5000, headers: { apikey: pluginKey } });
        if (stack.status !== 200 || !stack.headers['ratelimit-remaining']) {
          throw new Error(`${PLUGIN_ROUTES.stack.path}: ${stack.status} (want 200 with RateLimit-Remaining)`);
        }
        ready = true;
      } catch (e) {
        if (started) await stopProcess(started.proc);
        for (const scenario of Object.keys(pluginVariants)) scenarioRecords.push({ rep, scenario, connections, error: e.message });
        log(`[scenario rep ${rep}/${opt.reps}] plugins: FAILED, ${e.message}`);
      }
      if (ready) {
        const order = Object.keys(pluginVariants);
        if (rep % 2 === 0) order.reverse();
        for (const scenario of order) {
          await measurePlugin(rep, scenario, started, pluginVariants[scenario]);
          if (started.proc.exited) break;
        }
        await stopProcess(started.proc);
      }
      if (opt.pluginsBaseline && rep % 2 === 0) await pluginsBaseline(rep);
    };

    for (let rep = 1; rep <= opt.reps && !scenarioNote; rep++) {
      // (a) one catch-all route, steady; then (b) the same process while its file is rewritten every second.
      const oneDir = path.join(tmp, `scenario-one-${rep}`);
      const oneFile = path.join(oneDir, 'routes.yaml');
      // Alternate the order by repetition so that neither run always gets the fresher process.
      const pair = [['one-route', null], ['reload', makeReloader(oneFile, upstreamPort, opt)]].filter(([scenario]) => want(scenario));
      if (rep % 2 === 0) pair.reverse();
      if (pair.length) {
        fs.mkdirSync(oneDir, { recursive: true });
        writeRoutes(oneFile, oneRouteYaml(upstreamPort));
        let a;
        try {
          a = await startProxy({ ...gh, key: 'gatehouse', probePath: urlPath }, `one-${rep}`, oneFile);
        } catch (e) {
          scenarioNote = `Gatehouse (1 route) ${e.message}`;
          log(`[scenario rep ${rep}] ${scenarioNote}`);
          break;
        }
        for (const [scenario, during] of pair) {
          const tag = `[scenario rep ${rep}/${opt.reps}] ${scenario}`;
          try {
            const m0 = during ? await configMetrics(a.statusPort) : null;
            const r = await measure({ proc: a.proc, port: a.port, urlPath, expectLength: BODIES.small.length, connections, during });
            if (during) {
              await sleep(300); // let the last rewrite land before reading the counters
              const m1 = await configMetrics(a.statusPort);
              r.reloads = during.count();
              r.reloadsApplied = m0?.reloads !== undefined && m1?.reloads !== undefined ? m1.reloads - m0.reloads : null;
              r.configErrors = m0?.errors !== undefined && m1?.errors !== undefined ? m1.errors - m0.errors : null;
              r.logErrorLines = countLogErrors(a.proc);
            }
            scenarioRecords.push({ rep, scenario, connections, ...r });
            log(`${tag}: ${fmtRun(r)}${during ? `, ${r.reloads} file rewrites, reloads applied ${r.reloadsApplied ?? 'n/a'}, config errors ${r.configErrors ?? 'n/a'}, ${r.logErrorLines} error log lines` : ''}`);
          } catch (e) {
            scenarioRecords.push({ rep, scenario, connections, error: e.message });
            log(`${tag}: FAILED, ${e.message}`);
          }
          if (a.proc.exited) break;
        }
        await stopProcess(a.proc);
      }
      if (want('many-routes')) await manyRoutes(rep);
      if (want('plugins')) await plugins(rep);
    }
  }

  await stopProcess(upstream);

  // ------------------------------------------------------------------ report
  const report = buildReport({ meta, labels, opt, records, skipped, scenarioRecords, scenarioNote });
  const resultsDir = path.join(BENCH_DIR, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const stamp = meta.date.replace(/[:.]/g, '-');
  const jsonName = `${stamp}.json`;
  fs.writeFileSync(
    path.join(resultsDir, jsonName),
    `${JSON.stringify({ meta, labels, skipped, summaries: report.summaries, scenarios: report.scenarioSummary, scenarioNote, records, scenarioRecords }, null, 2)}\n`,
  );
  fs.writeFileSync(path.join(resultsDir, `${stamp}.md`), report.markdown);
  process.stdout.write(`\n${report.text}\n\n----- Markdown (paste into bench/RESULTS.md) -----\n\n${report.markdown}\n`);
  log(`results written to bench/results/${jsonName} (and .md)`);
}

// The reload scenario's writer: once per second, the routes file gets a new label value.
function makeReloader(file, upstreamPort, opt) {
  let timer = null;
  let n = 0;
  const maxCount = Math.ceil(opt.duration) + 2;
  return {
    start() {
      n = 0;
      timer = setInterval(() => {
        if (n >= maxCount) return;
        n++;
        writeRoutes(file, oneRouteYaml(upstreamPort, { 'bench-reload': String(n) }), opt.reloadMode);
      }, 1000);
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
    count: () => n,
  };
}

// Gatehouse's config counters from its status port (/metrics): *config_reloads_total, *config_errors_total.
async function configMetrics(statusPort) {
  if (!statusPort) return null;
  try {
    const r = await probe(statusPort, '/metrics', { timeoutMs: 2000, keepBody: true });
    if (r.status !== 200) return null;
    const sum = (re) => {
      let total;
      for (const line of r.body.split('\n')) {
        const m = re.exec(line);
        if (m) total = (total ?? 0) + Number(m[1]);
      }
      return total;
    };
    return {
      reloads: sum(/^\w*config_reloads_total(?:\{[^}]*\})?\s+([\d.e+]+)/),
      errors: sum(/^\w*config_errors_total(?:\{[^}]*\})?\s+([\d.e+]+)/),
    };
  } catch {
    return null;
  }
}

// pino error (50) and fatal (60) lines in a process's log.
function countLogErrors(proc) {
  try {
    return fs.readFileSync(proc.logPath, 'utf8').split('\n').filter((l) => /"level":\s*(50|60)\b/.test(l)).length;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------- report
function summarize(runs) {
  const ok = runs.filter((r) => !r.error);
  if (!ok.length) return null;
  const pick = (k) => ok.map((r) => r[k]);
  return {
    n: ok.length,
    failedRuns: runs.length - ok.length,
    rps: { median: median(pick('rps')), min: min(pick('rps')), max: max(pick('rps')) },
    p50us: median(pick('p50us')),
    p99us: median(pick('p99us')),
    cpuUsPerReq: ok[0].cpuUsPerReq === null
      ? null
      : { median: median(pick('cpuUsPerReq')), min: min(pick('cpuUsPerReq')), max: max(pick('cpuUsPerReq')) },
    proxyCoreShare: median(pick('proxyCoreShare')),
    rssMB: median(pick('rssMB')),
    cpu1Busy: median(ok.map((r) => r.busy?.cpu1)),
    cpu0ForeignPct: median(pick('cpu0ForeignPct')),
    errors: ok.reduce((a, r) => a + r.errors, 0),
  };
}

function buildReport({ meta, labels, opt, records, skipped, scenarioRecords, scenarioNote }) {
  const md = [];
  const txt = [];
  const summaries = {};
  md.push(`Measured ${meta.date.slice(0, 10)}: Node ${meta.node}, ${meta.cpuModel} (${meta.cores} CPUs), kernel ${meta.kernel}, nginx ${meta.nginxVersion}, wrk ${meta.wrkVersion}, Gatehouse ${meta.gatehouseVersion}.`);
  md.push(`Command: \`${meta.command}\` (${opt.reps} interleaved ${opt.reps === 1 ? 'repetition' : 'repetitions'}, ${opt.warmup} s warm-up + ${opt.duration} s measured per run, wrk -t1, ${meta.pinned ? 'proxy on CPU 0, wrk + upstream on CPU 1' : 'NOT pinned'}).`);
  md.push('');

  const rpsCell = (s) => `${fmtRps(s.rps.median)} (${fmtRps(s.rps.min)}-${fmtRps(s.rps.max)})`;
  const keys = PROXIES.map((p) => p.key).filter((k) => opt.proxies.includes(k));

  if (!opt.scenariosOnly) {
    for (const size of opt.sizes) {
      for (const connections of opt.connections) {
        const group = {};
        for (const k of keys) group[k] = summarize(records.filter((r) => r.proxy === k && r.size === size && r.connections === connections));
        summaries[`${size}/c${connections}`] = group;
        const ng = group.nginx;
        const peers = PROXIES.filter((p) => p.peer && group[p.key]?.cpuUsPerReq);
        const best = peers.sort((a, b) => group[a.key].cpuUsPerReq.median - group[b.key].cpuUsPerReq.median)[0];
        const gh = group.gatehouse;
        const rows = [];
        const trows = [];
        for (const k of keys) {
          const s = group[k];
          if (!s) {
            const why = skipped[k] ? `skipped: ${skipped[k].split('\n')[0]}` : 'no successful run';
            rows.push([labels[k], why, '-', '-', '-', '-', '-', '-']);
            trows.push([k, why, '', '', '', '', '', '', '', '']);
            continue;
          }
          const cpu = s.cpuUsPerReq ? `${fmtUs(s.cpuUsPerReq.median)} (${fmtUs(s.cpuUsPerReq.min)}-${fmtUs(s.cpuUsPerReq.max)})` : '-';
          const rpsVs = ng ? fmtRatio(s.rps.median / ng.rps.median) : '-';
          const cpuVs = ng?.cpuUsPerReq && s.cpuUsPerReq ? fmtRatio(s.cpuUsPerReq.median / ng.cpuUsPerReq.median) : '-';
          let vsPeer = '-';
          if (k === 'gatehouse' && best) {
            const b = group[best.key];
            vsPeer = `${fmtRatio(s.rps.median / b.rps.median)}x rps, ${fmtRatio(s.cpuUsPerReq.median / b.cpuUsPerReq.median)}x CPU/req (vs ${best.key})`;
          }
          const name = labels[k] + (s.errors ? ` ⚠ ${s.errors} errors` : '') + (s.failedRuns ? ` ⚠ ${s.failedRuns} failed runs` : '');
          rows.push([name, rpsCell(s), fmtMs(s.p50us), fmtMs(s.p99us), cpu, rpsVs, cpuVs, vsPeer]);
          trows.push([k, rpsCell(s), fmtMs(s.p50us), fmtMs(s.p99us), cpu,
            s.proxyCoreShare !== null ? `${Math.round(s.proxyCoreShare * 100)}%` : '-',
            s.cpu1Busy !== null ? `${Math.round(s.cpu1Busy)}%` : '-',
            s.cpu0ForeignPct !== null ? `${Math.round(s.cpu0ForeignPct)}%` : '-', s.rssMB ?? '-', s.errors]);
        }
        const title = `${BODIES[size].label}, ${connections} connections`;
        md.push(`### ${title}`);
        md.push('');
        md.push(mdTable(['proxy', 'rps (median, min-max)', 'p50', 'p99', 'CPU µs/req', 'rps vs nginx', 'CPU vs nginx', 'Gatehouse vs best Node peer'], rows));
        md.push('');
        const errs = keys.filter((k) => group[k]?.errors);
        md.push(errs.length
          ? `Non-2xx or socket errors: ${errs.map((k) => `${k} ${group[k].errors}`).join(', ')}.`
          : 'No non-2xx responses or socket errors in any run.');
        const noisy = keys.filter((k) => group[k]?.cpu0ForeignPct > 10);
        if (noisy.length) {
          md.push(`⚠ Other processes used CPU 0 during the runs of ${noisy.map((k) => `${k} (${Math.round(group[k].cpu0ForeignPct)}%)`).join(', ')}: those figures are disturbed.`);
        }
        if (gh && group.undici) {
          md.push(`Gatehouse vs the minimal undici proxy: ${fmtRatio(gh.rps.median / group.undici.rps.median)}x rps, ${fmtRatio(gh.cpuUsPerReq.median / group.undici.cpuUsPerReq.median)}x CPU per request.`);
        }
        const relay = group['tcp-relay'];
        if (gh && relay?.cpuUsPerReq) {
          md.push(`The TCP relay (no HTTP) costs ${fmtUs(relay.cpuUsPerReq.median)} µs per request: Gatehouse spends ${fmtUs(gh.cpuUsPerReq.median - relay.cpuUsPerReq.median)} µs above that floor.`);
        }
        md.push('');
        txt.push(`== ${title}`);
        txt.push(textTable(['proxy', 'rps (median, min-max)', 'p50', 'p99', 'CPU µs/req', 'proxy core', 'cpu1 busy', 'cpu0 other', 'RSS MB', 'errors'], trows));
        txt.push('');
      }
    }
  }

  // Scenarios.
  let scenarioSummary = null;
  const want = (x) => opt.scenarios && opt.scenarioList.includes(x);
  const routeScenarios = ['one-route', 'many-routes', 'reload'].filter(want);
  if (routeScenarios.length) {
    md.push(`### Gatehouse scenarios (small body, ${opt.connections[0]} connections, request ${MANY_TARGET.path})`);
    md.push('');
    txt.push('== Gatehouse scenarios');
    if (scenarioNote) {
      md.push(`Not run: ${scenarioNote}.`);
      txt.push(`not run: ${scenarioNote}`);
    } else {
      const one = summarize(scenarioRecords.filter((r) => r.scenario === 'one-route'));
      const many = summarize(scenarioRecords.filter((r) => r.scenario === 'many-routes'));
      const rel = summarize(scenarioRecords.filter((r) => r.scenario === 'reload'));
      const relRuns = scenarioRecords.filter((r) => r.scenario === 'reload' && !r.error);
      const reloads = relRuns.map((r) => r.reloads);
      const applied = relRuns.map((r) => r.reloadsApplied ?? 'n/a');
      const cfgErrors = relRuns.reduce((a, r) => a + (r.configErrors ?? 0), 0);
      const logErrors = relRuns.reduce((a, r) => a + (r.logErrorLines ?? 0), 0);
      const manyReady = median(scenarioRecords.filter((r) => r.scenario === 'many-routes' && !r.error).map((r) => r.readyMs));
      scenarioSummary = {
        oneRoute: one, manyRoutes: many, reload: rel, reloadsPerRun: reloads, reloadsAppliedPerRun: applied,
        reloadConfigErrors: cfgErrors, reloadLogErrorLines: logErrors, manyRoutesReadyMs: manyReady,
      };
      const row = (name, s, ratioTo, extra = '') => (s
        ? [name, `${fmtRps(s.rps.median)} (${fmtRps(s.rps.min)}-${fmtRps(s.rps.max)})`, fmtMs(s.p99us),
          s.cpuUsPerReq ? fmtUs(s.cpuUsPerReq.median) : '-', ratioTo ? fmtRatio(s.rps.median / ratioTo.rps.median) : '-',
          `${s.errors}${extra}`]
        : [name, 'no successful run', '-', '-', '-', '-']);
      const rows = [];
      if (want('one-route')) rows.push(row('1 route ("/*")', one, one));
      if (want('many-routes')) {
        rows.push(row(`${MANY_ROUTES.toLocaleString('en-US')} routes, target #${MANY_TARGET.index} (${MANY_TARGET.kind}; answered ${manyReady !== null ? (manyReady / 1000).toFixed(1) : '-'} s after start)`, many, one));
      }
      if (want('reload')) {
        rows.push(row(`1 route, file rewritten every second (${opt.reloadMode}; rewrites per run ${reloads.join('/') || 0}, reloads applied ${applied.join('/')})`, rel, one,
          (cfgErrors ? `; ${cfgErrors} config errors` : '') + (logErrors ? `; ${logErrors} error log lines` : '')));
      }
      md.push(mdTable(['scenario', 'rps (median, min-max)', 'p99', 'CPU µs/req', 'rps vs 1 route', 'non-2xx + socket errors'], rows));
      md.push('');
      if (want('reload')) md.push('The reload row must show 0 errors: a reload may cost throughput but never a request.');
      txt.push(textTable(['scenario', 'rps (median, min-max)', 'p99', 'CPU µs/req', 'vs 1 route', 'errors'], rows));
      const failed = scenarioRecords.filter((r) => r.error && routeScenarios.includes(r.scenario));
      if (failed.length) {
        md.push('');
        md.push(`Failed scenario runs: ${failed.map((r) => `${r.scenario} (rep ${r.rep}): ${r.error.split('\n')[0]}`).join('; ')}.`);
        txt.push(`failed: ${failed.map((r) => `${r.scenario} rep ${r.rep}: ${r.error.split('\n')[0]}`).join('; ')}`);
      }
    }
    md.push('');
  }
  if (want('plugins')) {
    const { section, text, summary } = pluginReport({ meta, opt, scenarioRecords, scenarioNote });
    md.push(...section, '');
    txt.push('', ...text);
    scenarioSummary = { ...scenarioSummary, plugins: summary };
  }
  const skippedList = Object.entries(skipped);
  if (skippedList.length) {
    txt.push('');
    for (const [k, why] of skippedList) txt.push(`skipped ${k}: ${why}`);
  }
  return { markdown: `${md.join('\n').trimEnd()}\n`, text: txt.join('\n'), summaries, scenarioSummary };
}

/**
 * The plugin-cost section: (a) a route with no plugins, (b) key-auth + request-id, both served by one process and
 * loaded back to back, and (0) the plain route of a baseline build when one was given. The headline figure is
 * (b)/(a) CPU per request, paired by repetition (same process, same minute), as the median of those ratios.
 */
function pluginReport({ meta, opt, scenarioRecords, scenarioNote }) {
  const connections = opt.connections[0];
  const section = [`### Gatehouse plugin cost (small body, ${connections} connections; one process serves both routes)`, ''];
  const text = ['== Gatehouse plugin cost'];
  if (scenarioNote) {
    section.push(`Not run: ${scenarioNote}.`);
    text.push(`not run: ${scenarioNote}`);
    return { section, text, summary: null };
  }
  const of = (scenario) => scenarioRecords.filter((r) => r.scenario === scenario);
  const base = opt.pluginsBaseline ? summarize(of('plugins-baseline')) : null;
  const none = summarize(of('plugins-none'));
  const auth = summarize(of('plugins-auth'));
  const stack = summarize(of('plugins-stack'));
  // Paired ratios, one per repetition where both runs succeeded.
  const paired = (num, den) => {
    const out = { cpu: [], rps: [] };
    for (let rep = 1; rep <= opt.reps; rep++) {
      const n = of(num).find((r) => r.rep === rep && !r.error);
      const d = of(den).find((r) => r.rep === rep && !r.error);
      if (!n || !d) continue;
      if (n.cpuUsPerReq && d.cpuUsPerReq) out.cpu.push(n.cpuUsPerReq / d.cpuUsPerReq);
      out.rps.push(n.rps / d.rps);
    }
    return out;
  };
  const range = (xs) => (xs.length ? `${fmtRatio(median(xs))} (${fmtRatio(min(xs))}-${fmtRatio(max(xs))})` : '-');
  const authVsNone = paired('plugins-auth', 'plugins-none');
  const stackVsNone = paired('plugins-stack', 'plugins-none');
  const noneVsBase = base ? paired('plugins-none', 'plugins-baseline') : null;
  const baseInfo = meta.pluginsBaseline;
  const baseLabel = baseInfo ? `Gatehouse ${baseInfo.version}${baseInfo.rev ? ` (${baseInfo.rev})` : ''}` : '';
  const row = (name, s, ratios) => (s
    ? [name, `${fmtRps(s.rps.median)} (${fmtRps(s.rps.min)}-${fmtRps(s.rps.max)})`, fmtMs(s.p99us),
      s.cpuUsPerReq ? `${fmtUs(s.cpuUsPerReq.median)} (${fmtUs(s.cpuUsPerReq.min)}-${fmtUs(s.cpuUsPerReq.max)})` : '-',
      ratios ? range(ratios.cpu) : '-', ratios ? range(ratios.rps) : '-', String(s.errors)]
    : [name, 'no successful run', '-', '-', '-', '-', '-']);
  const rows = [];
  if (opt.pluginsBaseline) rows.push(row(`(0) ${PLUGIN_ROUTES.plain.label}, baseline build ${baseLabel}`, base, null));
  rows.push(row(`(a) ${PLUGIN_ROUTES.plain.label}${baseInfo ? `, this build${meta.gatehouseRev ? ` (${meta.gatehouseRev})` : ''}` : ''}`, none, noneVsBase));
  rows.push(row(`(b) ${PLUGIN_ROUTES.auth.label}`, auth, authVsNone));
  rows.push(row(`(c) ${PLUGIN_ROUTES.stack.label}`, stack, stackVsNone));
  const head = ['variant', 'rps (median, min-max)', 'p99', 'CPU µs/req (median, min-max)', 'CPU/req ratio, paired', 'rps ratio, paired', 'non-2xx + socket errors'];
  section.push(mdTable(head, rows), '');
  section.push('Ratios are per repetition: (b)/(a) and (c)/(a), and (a)/(0) when a baseline build was measured; median (min-max).');
  const cpuRatio = median(authVsNone.cpu);
  if (cpuRatio !== null) {
    section.push(`(b)/(a): ${fmtRatio(cpuRatio)}x the CPU per request and ${fmtRatio(median(authVsNone.rps))}x the rps of a route with no plugins; the target is under 1.10x CPU per request${cpuRatio < 1.1 ? ' (met)' : ' (not met)'}.`);
  }
  const stackRps = median(stackVsNone.rps);
  if (stackRps !== null) {
    section.push(`(c)/(a): ${fmtRatio(stackRps)}x the rps and ${fmtRatio(median(stackVsNone.cpu))}x the CPU per request of a route with no plugins; the target is at least 0.85x the rps${stackRps >= 0.85 ? ' (met)' : ' (not met)'}.`);
  }
  if (noneVsBase && noneVsBase.cpu.length) {
    section.push(`(a)/(0): ${range(noneVsBase.cpu)} CPU per request against the baseline build: "no measurable cost" means within the run-to-run range of the baseline's own repetitions.`);
  }
  const noisy = [['(0)', base], ['(a)', none], ['(b)', auth], ['(c)', stack]].filter(([, x]) => x?.cpu0ForeignPct > 10);
  if (noisy.length) {
    section.push(`⚠ Other processes used CPU 0 during the runs of ${noisy.map(([k, x]) => `${k} (${Math.round(x.cpu0ForeignPct)}%)`).join(', ')}: those figures are disturbed.`);
  }
  const failed = scenarioRecords.filter((r) => r.error && r.scenario.startsWith('plugins'));
  if (failed.length) section.push('', `Failed runs: ${failed.map((r) => `${r.scenario} (rep ${r.rep}): ${r.error.split('\n')[0]}`).join('; ')}.`);
  text.push(textTable(head, rows));
  return {
    section,
    text,
    summary: { baseline: base, none, auth, stack, authVsNone, stackVsNone, noneVsBaseline: noneVsBase },
  };
}

main().catch((e) => {
  log(`fatal: ${e.stack || e}`);
  killAllSync();
  process.exit(1);
});
