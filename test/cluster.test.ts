/**
 * End-to-end tests of the gateway as users run it: the real CLI (`bin/gatehouse.js gateway --file ...`) in a
 * child process with a primary and worker processes, proxying to a real upstream in this process.
 *
 * Every gateway is spawned detached (its own process group) and the whole group is killed in an after hook,
 * so no primary or worker outlives the test, whatever happens.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { childPids, Gatehouse, get, isAlive, killAll, metricValue, parsePrometheus, ROOT, runCli, sleep, waitUntil } from './helpers/cli.js';

const PKG_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Product requirement: a valid file change is served within 1 s. See the reload test for the 1.5 s bound. */
const RELOAD_BOUND_MS = 1500;

// ---------------------------------------------------------------------------------------------------------
// The upstream: a real HTTP server in this process

interface Upstream {
  server: Server;
  port: number;
  /** Called when a /slow request arrives (before it is answered). */
  onSlow: Array<() => void>;
}

const SLOW_MS = 1000;
const SLOW_BODY = 'slow-'.repeat(20_000); // 100 kB, to check the body arrives whole

let upstream: Upstream;

async function startUpstream(): Promise<Upstream> {
  const up: Upstream = { server: undefined as unknown as Server, port: 0, onSlow: [] };
  up.server = createServer((req, res) => {
    req.resume();
    if (req.url?.startsWith('/slow')) {
      for (const f of up.onSlow.splice(0)) f();
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(SLOW_BODY) });
        res.end(SLOW_BODY);
      }, SLOW_MS);
      return;
    }
    const body = JSON.stringify({ upstream: true, path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', () => resolve()));
  up.port = (up.server.address() as { port: number }).port;
  return up;
}

/** A declarative file with one route per entry of `routes` (id -> paths), all to the test upstream. */
function routesYaml(routes: Record<string, string[]>, opts: { label?: string; extraRouteYaml?: string } = {}): string {
  const lines = [
    'upstreams:',
    '  - id: up',
    '    type: roundrobin',
    '    nodes:',
    `      - { host: 127.0.0.1, port: ${upstream.port}, weight: 1 }`,
    '    timeout: { connect: 2000, send: 10000, read: 10000 }',
    'routes:',
  ];
  for (const [id, paths] of Object.entries(routes)) {
    lines.push(`  - id: ${id}`, `    paths: ${JSON.stringify(paths)}`, '    upstreamId: up');
    if (opts.label) lines.push(`    labels: { rev: "${opts.label}" }`);
  }
  if (opts.extraRouteYaml) lines.push(opts.extraRouteYaml);
  return `${lines.join('\n')}\n`;
}

/** Poll until `path` answers 200 on `count` consecutive new connections and /readyz shows `revision` with
 * every worker on it; returns the milliseconds since `since`. */
async function waitServedEverywhere(gw: Gatehouse, path: string, revision: number, since: number, count = 12): Promise<number> {
  return waitUntil(`${path} served by every worker at revision ${revision}`, 10_000, async () => {
    const r = await gw.readyz();
    // ready means every worker acknowledged the primary's current revision (current === workers).
    if (r.status !== 200 || r.body.revision !== revision || r.body.current !== r.body.workers) return undefined;
    for (let i = 0; i < count; i++) {
      const res = await get(gw.proxyPort, path);
      if (res.status !== 200) return undefined;
    }
    return Date.now() - since;
  }, 10);
}

before(async () => {
  upstream = await startUpstream();
});

after(async () => {
  killAll();
  upstream.server.closeAllConnections();
  await new Promise<void>((r) => upstream.server.close(() => r()));
});

// ---------------------------------------------------------------------------------------------------------
// 1. Serving, health, readiness, metrics

test('serves traffic with 2 workers; /healthz, /readyz and /metrics summed across workers', { timeout: 60_000 }, async (t) => {
  const gw = await Gatehouse.start(t, routesYaml({ hello: ['/hello', '/hello/*'] }), { workers: 2 });

  // /readyz can answer before the primary's log lines have come through the pipe: wait for them.
  await waitUntil('two listening log lines', 5000, () => (gw.logs.filter((l) => l.msg === 'gateway worker listening').length >= 2 ? true : undefined)).catch(() => {});
  const listening = gw.logs.filter((l) => l.msg === 'gateway worker listening');
  assert.equal(listening.length, 2, `two workers listening${gw.tail()}`);
  for (const l of listening) assert.equal(l.http, gw.proxyPort);

  const health = await get(gw.statusPort, '/healthz');
  assert.equal(health.status, 200);
  assert.equal((JSON.parse(health.body) as { status: string }).status, 'ok');

  const ready = await gw.readyz();
  assert.equal(ready.status, 200);
  assert.equal(ready.body.status, 'ready');
  assert.equal(ready.body.revision, 1);
  assert.equal(ready.body.workers, 2);
  assert.equal(ready.body.serving, 2);

  // N requests on new connections, a few at a time so both workers are likely to take some.
  const N = 40;
  for (let i = 0; i < N; i += 8) {
    const batch = await Promise.all(Array.from({ length: Math.min(8, N - i) }, (_, j) => get(gw.proxyPort, `/hello/${i + j}`)));
    for (const r of batch) {
      assert.equal(r.status, 200, r.body);
      assert.equal((JSON.parse(r.body) as { upstream: boolean }).upstream, true);
    }
  }
  const misses = 3;
  for (let i = 0; i < misses; i++) {
    const r = await get(gw.proxyPort, '/no-such-route');
    assert.equal(r.status, 404);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'GH_ERR_ROUTE_NOT_FOUND');
  }

  // Access log lines come from the workers themselves (their own pid): report how traffic was spread.
  const accessPids = new Set(gw.logs.filter((l) => l.type === 'access' && l.route === 'hello').map((l) => l.pid));
  t.diagnostic(`requests were answered by ${accessPids.size} worker(s)`);

  // The counters are per worker and merged by the primary; an access log line is written after the counter,
  // so wait for all of them before reading /metrics.
  await waitUntil('all access log lines', 5000, () => (gw.logs.filter((l) => l.type === 'access').length >= N + misses ? true : undefined));
  const m = await gw.metrics();
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
  assert.equal(metricValue(m.samples, 'gatehouse_http_requests_total', { route: 'hello', status: '200' }), N, m.text);
  assert.equal(metricValue(m.samples, 'gatehouse_http_requests_total', { route: '', status: '404' }), misses, m.text);
  assert.equal(metricValue(m.samples, 'gatehouse_http_request_duration_seconds_count', { route: 'hello' }), N, m.text);
  assert.equal(metricValue(m.samples, 'gatehouse_http_request_duration_seconds_bucket', { route: 'hello', le: '+Inf' }), N, m.text);
  assert.equal(metricValue(m.samples, 'gatehouse_upstream_response_seconds_count', { route: 'hello' }), N, m.text);
  assert.equal(metricValue(m.samples, 'gatehouse_workers'), 2, m.text);
  assert.equal(metricValue(m.samples, 'gatehouse_config_errors_total'), 0, m.text);
  assert.ok((metricValue(m.samples, 'gatehouse_connections_total') ?? 0) >= N + misses, m.text);

  // The grammar check itself must reject malformed text (so a passing parse means something).
  assert.throws(() => parsePrometheus('# TYPE x counter\nx{route="a} 1\n'));
  assert.throws(() => parsePrometheus('x 1\n'));
  assert.throws(() => parsePrometheus('# TYPE x counter\nx one\n'));
});

// ---------------------------------------------------------------------------------------------------------
// 2. Hot reload

test('hot reload: a changed file (rename over, then in-place write) is served by every worker within the bound', { timeout: 60_000 }, async (t) => {
  const gw = await Gatehouse.start(t, routesYaml({ hello: ['/hello'] }), { workers: 2 });
  assert.equal((await get(gw.proxyPort, '/fresh')).status, 404);

  // (a) write a temp file and rename it over the routes file
  let since = Date.now();
  await gw.replaceFile(routesYaml({ hello: ['/hello'], fresh: ['/fresh'] }));
  const renameMs = await waitServedEverywhere(gw, '/fresh', 2, since);
  t.diagnostic(`rename: new route served everywhere after ${renameMs} ms`);
  // The product promise is 1 s; the assertion allows 1.5 s because the poll itself (12 requests on new
  // connections plus /readyz per round) and a loaded CI machine add time that is not the gateway's.
  assert.ok(renameMs <= RELOAD_BOUND_MS, `rename reload took ${renameMs} ms${gw.tail()}`);
  assert.equal((await get(gw.proxyPort, '/hello')).status, 200);

  // (b) write the file in place
  since = Date.now();
  await gw.writeInPlace(routesYaml({ hello: ['/hello'], third: ['/third'] }));
  const inPlaceMs = await waitServedEverywhere(gw, '/third', 3, since);
  t.diagnostic(`in-place write: new route served everywhere after ${inPlaceMs} ms`);
  assert.ok(inPlaceMs <= RELOAD_BOUND_MS, `in-place reload took ${inPlaceMs} ms${gw.tail()}`);
  // the route removed by this change is gone on every worker
  for (let i = 0; i < 8; i++) assert.equal((await get(gw.proxyPort, '/fresh')).status, 404);

  const ready = await gw.readyz();
  assert.equal(ready.status, 200);
  assert.equal(ready.body.revision, 3);
  const reloaded = gw.logs.filter((l) => l.msg === 'config reloaded').map((l) => l.revision);
  assert.deepEqual(reloaded, [2, 3], `one reload per change${gw.tail()}`);
});

// ---------------------------------------------------------------------------------------------------------
// 3. Invalid changes are refused

test('an invalid change is refused with the field path; the old routes keep serving; a valid file is picked up again', { timeout: 60_000 }, async (t) => {
  const good = routesYaml({ hello: ['/hello'] });
  const gw = await Gatehouse.start(t, good, { workers: 2 });

  const bad: Array<{ yaml: string; field: string }> = [
    { yaml: good.replace('["/hello"]', '["hello"]'), field: 'routes[0].paths[0]' },
    { yaml: good.replace('    upstreamId: up', '    upstreamId: up\n    bogus: 1'), field: 'routes[0].bogus' },
    { yaml: good.replace('    upstreamId: up', '    upstreamId: missing'), field: 'routes[0].upstreamId' },
  ];
  for (const [i, b] of bad.entries()) {
    assert.notEqual(b.yaml, good, 'the bad file differs from the good one');
    const since = gw.mark();
    await gw.replaceFile(b.yaml);
    const { line } = await gw.waitLog(`refusal naming ${b.field}`, (l) => typeof l.msg === 'string' && l.msg.startsWith('config change refused'), { since });
    assert.ok(line.msg!.includes(b.field), `the refusal message names ${b.field}: ${line.msg}`);
    const problems = line.problems as Array<{ path: string; message: string }>;
    assert.ok(problems.some((p) => p.path === b.field), `problems name ${b.field}: ${JSON.stringify(problems)}`);
    assert.ok((line.level as number) >= 50, 'logged as an error');

    // still serving the old config
    for (let j = 0; j < 6; j++) assert.equal((await get(gw.proxyPort, '/hello')).status, 200);
    const ready = await gw.readyz();
    assert.equal(ready.status, 200);
    assert.equal(ready.body.revision, 1);
    const m = await gw.metrics();
    assert.equal(metricValue(m.samples, 'gatehouse_config_errors_total'), i + 1, m.text);
    assert.equal(metricValue(m.samples, 'gatehouse_config_reloads_total'), 1, m.text);
  }
  assert.equal(gw.logs.filter((l) => l.msg === 'config reloaded').length, 0, 'nothing invalid was applied');

  const since = Date.now();
  await gw.replaceFile(routesYaml({ hello: ['/hello'], after: ['/after'] }));
  const ms = await waitServedEverywhere(gw, '/after', 2, since);
  assert.ok(ms <= RELOAD_BOUND_MS, `valid file after refusals took ${ms} ms`);
  assert.equal((await get(gw.proxyPort, '/hello')).status, 200);
});

test('a file truncated mid-write is not applied (no window with every route gone)', { timeout: 60_000 }, async (t) => {
  const good = routesYaml({ hello: ['/hello'] });
  const gw = await Gatehouse.start(t, good, { workers: 2 });
  const since = gw.mark();
  // `generate > routes.yaml` truncates first and writes later; make "later" longer than the debounce.
  await writeFile(gw.file, '');
  const { line } = await gw.waitLog('refusal of the empty file', (l) => typeof l.msg === 'string' && l.msg.startsWith('config change refused'), { since });
  assert.equal((line.problems as Array<{ path: string }>)[0]?.path, '(file)');
  for (let i = 0; i < 6; i++) assert.equal((await get(gw.proxyPort, '/hello')).status, 200);
  assert.equal((await gw.readyz()).body.revision, 1);

  await writeFile(gw.file, routesYaml({ hello: ['/hello'], later: ['/later'] }));
  await waitServedEverywhere(gw, '/later', 2, Date.now());
  assert.equal(gw.logs.filter((l) => l.msg === 'config reloaded' && l.routes === 0).length, 0, 'an empty config was never applied');
});

// ---------------------------------------------------------------------------------------------------------
// 4. Reload under load

test('reloads under keep-alive load lose no request', { timeout: 60_000 }, async (t) => {
  const gw = await Gatehouse.start(t, routesYaml({ hello: ['/hello'] }, { label: 'a' }), {
    workers: 2,
    env: { GATEHOUSE_ACCESS_LOG_ENABLED: 'false' },
  });
  const before = await gw.readyz();
  const startRevision = before.body.revision as number;

  const pool = new Pool(`http://127.0.0.1:${gw.proxyPort}`, { connections: 8, pipelining: 1, keepAliveTimeout: 30_000 });
  t.after(() => pool.destroy());

  const LOAD_MS = 4000;
  const REWRITE_MS = 300;
  const failures: string[] = [];
  let ok = 0;
  let stop = false;
  let writes = 0;
  let okAfterLastWrite = 0;

  const hardStop = Date.now() + LOAD_MS + 15_000; // bounded even if the writer fails
  const client = async () => {
    while (!stop && Date.now() < hardStop) {
      try {
        const res = await pool.request({ path: '/hello', method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 });
        const body = await res.body.text();
        if (res.statusCode === 200) {
          ok++;
          if (writes > 0) okAfterLastWrite++;
        } else failures.push(`${res.statusCode} ${body.slice(0, 200)}`);
      } catch (e) {
        failures.push(`${(e as NodeJS.ErrnoException).code ?? ''} ${(e as Error).message}`);
      }
    }
  };
  const writer = async () => {
    try {
      const end = Date.now() + LOAD_MS;
      while (Date.now() < end) {
        await sleep(REWRITE_MS);
        writes++;
        await gw.replaceFile(routesYaml({ hello: ['/hello'] }, { label: writes % 2 ? 'b' : 'a' }));
        okAfterLastWrite = 0;
      }
      // let the last change be applied while the clients keep going
      await gw.waitReady(5000, (b) => (b.revision as number) > startRevision);
      await sleep(300);
    } finally {
      stop = true;
    }
  };
  await Promise.all([writer(), ...Array.from({ length: 8 }, client)]);

  const after = await gw.waitReady(5000);
  const reloads = (after.revision as number) - startRevision;
  t.diagnostic(`${ok} requests, ${failures.length} failed, ${writes} rewrites, ${reloads} reloads`);
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${ok + failures.length} requests failed`);
  assert.ok(ok > 0, 'requests were made');
  assert.ok(okAfterLastWrite > 0, 'requests were still answered after the last rewrite');
  assert.ok(writes >= 5, `the file was rewritten repeatedly (${writes})`);
  assert.ok(reloads >= 3, `the rewrites were applied while under load (${reloads} reloads for ${writes} rewrites)${gw.tail()}`);
  assert.ok(gw.logs.filter((l) => l.msg === 'config reloaded').length >= 3);
  assert.equal(gw.logs.filter((l) => l.msg === 'worker refused config').length, 0, gw.tail());

  const m = await gw.metrics();
  assert.equal(metricValue(m.samples, 'gatehouse_http_requests_total', { route: 'hello', status: '200' }), ok, 'every answered request is counted once');
  // keep-alive was really used: far fewer connections than requests
  assert.ok((metricValue(m.samples, 'gatehouse_connections_total') ?? Infinity) < ok, m.text);
});

// ---------------------------------------------------------------------------------------------------------
// 5. Worker crash

test('a killed worker is replaced and traffic keeps being served', { timeout: 60_000 }, async (t) => {
  const gw = await Gatehouse.start(t, routesYaml({ hello: ['/hello'] }), { workers: 2 });
  const workers = await childPids(gw.pid);
  assert.equal(workers.length, 2, `the primary has two worker processes: ${workers}`);

  // Traffic before the crash, scraped once, so the victim's counts have been reported.
  const before = 20;
  for (let i = 0; i < before; i += 5) {
    for (const r of await Promise.all(Array.from({ length: 5 }, () => get(gw.proxyPort, '/hello')))) assert.equal(r.status, 200);
  }
  await waitUntil('access log lines', 5000, () => (gw.logs.filter((l) => l.type === 'access').length >= before ? true : undefined));
  const m0 = await gw.metrics();
  assert.equal(metricValue(m0.samples, 'gatehouse_http_requests_total', { route: 'hello', status: '200' }), before, m0.text);
  // Kill a worker that answered some of them (access log lines carry the worker's own pid).
  const served = new Set(gw.logs.filter((l) => l.type === 'access').map((l) => l.pid as number));
  const victim = workers.find((p) => served.has(p)) ?? workers[0]!;

  const since = gw.mark();
  process.kill(victim, 'SIGKILL');
  const died = await gw.waitLog('worker died', (l) => l.msg === 'gateway worker died; starting a new one', { since });
  assert.equal(died.line.signal, 'SIGKILL');
  // the surviving worker keeps serving while the replacement starts
  assert.equal((await get(gw.proxyPort, '/hello')).status, 200);
  const during = 1;
  const relisten = await gw.waitLog('replacement listening', (l) => l.msg === 'gateway worker listening', { since: died.index + 1 });
  assert.equal(relisten.line.http, gw.proxyPort);

  const ready = await gw.waitReady(10_000, (b) => b.serving === 2);
  assert.equal(ready.revision, 1);
  const now = await childPids(gw.pid);
  assert.equal(now.length, 2, `two workers again: ${now}`);
  assert.ok(!now.includes(victim), 'the killed worker is not among them');
  assert.ok(!isAlive(victim), 'the killed worker is gone');

  // no retries: every request on a new connection after the restart must succeed
  const afterCrash = 30;
  const total = before + during + afterCrash;
  for (let i = 0; i < afterCrash; i++) {
    const r = await get(gw.proxyPort, '/hello');
    assert.equal(r.status, 200, r.body);
  }
  await waitUntil('access log lines', 5000, () => (gw.logs.filter((l) => l.type === 'access').length >= total ? true : undefined));
  const m = await gw.metrics();
  assert.equal(metricValue(m.samples, 'gatehouse_workers'), 2, m.text);
  // A counter must not go down when a worker dies (Prometheus would read that as a reset and rate() would
  // spike): what the dead worker had reported is kept.
  assert.equal(metricValue(m.samples, 'gatehouse_http_requests_total', { route: 'hello', status: '200' }), total, m.text);
  assert.equal(metricValue(m.samples, 'gatehouse_http_request_duration_seconds_count', { route: 'hello' }), total, m.text);
});

// ---------------------------------------------------------------------------------------------------------
// 6. Graceful shutdown

test('SIGTERM drains: the in-flight request completes, new connections are refused, exit code 0', { timeout: 60_000 }, async (t) => {
  const gw = await Gatehouse.start(t, routesYaml({ hello: ['/hello'], slow: ['/slow'] }), {
    workers: 2,
    env: { GATEHOUSE_SHUTDOWN_TIMEOUT: '10000' },
  });
  const workers = await childPids(gw.pid);

  const arrived = new Promise<void>((r) => upstream.onSlow.push(r));
  let slowDone = false;
  const slow = get(gw.proxyPort, '/slow', 15_000).finally(() => {
    slowDone = true;
  });
  await Promise.race([arrived, sleep(5000).then(() => Promise.reject(new Error('the slow request never reached the upstream')))]);

  const since = gw.mark();
  process.kill(gw.pid, 'SIGTERM');
  await gw.waitLog('drain start', (l) => l.msg === 'draining in-flight requests', { since, timeoutMs: 5000 });

  // New connections are refused once the workers stop listening, while the slow request is still running.
  const refusedWhileInFlight = await waitUntil('a refused connection', 5000, () =>
    new Promise<boolean | undefined>((resolve) => {
      const s = connect(gw.proxyPort, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(undefined);
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? !slowDone : undefined));
    }), 10);
  assert.ok(refusedWhileInFlight, 'connections were refused while the in-flight request was still being served');

  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.body.length, SLOW_BODY.length, 'the whole body arrived');
  assert.equal(r.body, SLOW_BODY);

  const exit = await Promise.race([gw.exited, sleep(15_000).then(() => null)]);
  assert.ok(exit, `the gateway exited after draining${gw.tail()}`);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(gw.logs.some((l) => l.msg === 'stopped'), gw.tail());
  assert.equal(gw.logs.filter((l) => l.msg === 'gateway worker died; starting a new one').length, 0, 'draining workers are not replaced');
  await waitUntil('workers gone', 5000, () => (workers.every((p) => !isAlive(p)) ? true : undefined));
});

// ---------------------------------------------------------------------------------------------------------
// 7. SIGHUP

test('SIGHUP reloads the file', { timeout: 60_000 }, async (t) => {
  const gw = await Gatehouse.start(t, routesYaml({ hello: ['/hello'] }), { workers: 2 });
  const since = gw.mark();
  process.kill(gw.pid, 'SIGHUP');
  await gw.waitLog('SIGHUP log', (l) => l.msg === 'SIGHUP: reloading config', { since });
  const reloaded = await gw.waitLog('reload after SIGHUP', (l) => l.msg === 'config reloaded', { since });
  assert.equal(reloaded.line.revision, 2);
  await gw.waitReady(5000, (b) => b.revision === 2);
  assert.equal((await get(gw.statusPort, '/healthz')).status, 200, 'SIGHUP does not stop the gateway');
  assert.equal(gw.exitInfo, null);
  for (let i = 0; i < 6; i++) assert.equal((await get(gw.proxyPort, '/hello')).status, 200);
  assert.equal((await childPids(gw.pid)).length, 2, 'SIGHUP does not kill workers');
});

// ---------------------------------------------------------------------------------------------------------
// 8. gatehouse validate

test('gatehouse validate: exit 0 for a good file, 1 with one line per problem naming the field path', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-validate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const good = routesYaml({ hello: ['/hello'] });
  await writeFile(join(dir, 'good.yaml'), good);
  await writeFile(join(dir, 'bad.yaml'), good.replace('["/hello"]', '["hello"]').replace('    upstreamId: up', '    upstreamId: up\n    bogus: 1'));
  await writeFile(join(dir, 'refs.yaml'), routesYaml({ a: ['/a'], b: ['/b'] }).replaceAll('upstreamId: up', 'upstreamId: missing'));

  const ok = await runCli(['validate', 'good.yaml'], dir);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /good\.yaml: valid/);

  const bad = await runCli(['validate', 'bad.yaml'], dir);
  assert.equal(bad.code, 1, bad.stderr);
  const lines = bad.stdout.trim().split('\n');
  assert.equal(lines.length, 2, bad.stdout);
  assert.ok(lines.some((l) => l.startsWith('routes[0].paths[0]: ')), bad.stdout);
  assert.ok(lines.some((l) => l.startsWith('routes[0].bogus: ')), bad.stdout);

  const refs = await runCli(['validate', 'refs.yaml'], dir);
  assert.equal(refs.code, 1, refs.stderr);
  assert.deepEqual(
    refs.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(':')[0]),
    ['routes[0].upstreamId', 'routes[1].upstreamId'],
    refs.stdout,
  );

  const missing = await runCli(['validate', 'nope.yaml'], dir);
  assert.equal(missing.code, 1);
});

// ---------------------------------------------------------------------------------------------------------
// 9. --version and unknown commands

test('gatehouse --version prints the package version; an unknown command exits 2', { timeout: 30_000 }, async () => {
  for (const flag of ['--version', '-v']) {
    const r = await runCli([flag], ROOT);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), PKG_VERSION);
  }
  const unknown = await runCli(['frobnicate'], ROOT);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});
