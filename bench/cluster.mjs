#!/usr/bin/env node
// Cluster-mode benchmark: 10,000 routes over 100 tenants in a control plane's store, published to a real etcd.
// Measures (1) how long a new gateway takes from start to serving all of them, (2) the time from an admin
// write (PATCH + publish through the admin API) to the change serving on every gateway, p50/p99 over many
// writes, and (3) the memory of each gateway worker with the 10,000 routes loaded.
//
//   cd bench && node cluster.mjs [--tenants 100] [--routes-per-tenant 100] [--writes 50] [--gateways 2]
//
// Needs etcd on the PATH (Debian: etcd-server) and a built Gatehouse (npm ci in the repository root).
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from './lib/http.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/gatehouse.js');
const { values: opt } = parseArgs({
  options: {
    tenants: { type: 'string', default: '100' },
    'routes-per-tenant': { type: 'string', default: '100' },
    writes: { type: 'string', default: '50' },
    gateways: { type: 'string', default: '2' },
  },
});
const TENANTS = Number(opt.tenants);
const PER = Number(opt['routes-per-tenant']);
const WRITES = Number(opt.writes);
const GATEWAYS = Number(opt.gateways);
const log = (m) => process.stderr.write(`${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const procs = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-cluster-bench-'));
const cleanup = () => {
  for (const p of procs) try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
  fs.rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function start(cmd, args, env, name) {
  const out = fs.openSync(path.join(work, `${name}.log`), 'w');
  const p = spawn(cmd, args, { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...env } });
  procs.push(p);
  return p;
}

async function http(port, method, p, { token, body } = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

async function until(what, ms, fn, every = 20) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(every);
  }
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

function rssOfChildren(pid) {
  const kids = execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').filter(Boolean);
  return kids.map((k) => {
    const status = fs.readFileSync(`/proc/${k}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024;
  });
}

async function main() {
  // A tiny upstream every route points at.
  const upstream = createServer((req, res) => res.end('ok'));
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const upPort = upstream.address().port;

  // etcd
  const [client, peer] = [await freePort(), await freePort()];
  start('etcd', ['--name', 'bench', '--data-dir', path.join(work, 'etcd'), '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`, '--initial-cluster', `bench=http://127.0.0.1:${peer}`], {}, 'etcd');
  await until('etcd', 10_000, async () => (await fetch(`http://127.0.0.1:${client}/health`)).ok);

  // The store, filled directly (the admin API's publish validates the whole live config each time, which is
  // what the write latency below measures; filling 10,000 routes through it is not the point here).
  const { SqliteStore } = await import(pathToFileURL(path.join(ROOT, 'dist/src/store/sqlite.js')).href);
  const { hashPassword, newId } = await import(pathToFileURL(path.join(ROOT, 'dist/src/control/secrets.js')).href);
  const store = new SqliteStore(path.join(work, 'cp', 'gatehouse.db'));
  await store.init();
  const audit = (tenant) => ({ actor: 'bench', source: 'bench', tenant, kind: 'bench', entityId: null, action: 'fill', before: null, after: null });
  const password = 'bench-admin-password';
  await store.createUser({ id: newId(), username: 'admin', passwordHash: await hashPassword(password), superadmin: true, disabled: false }, audit(null));
  let t0 = performance.now();
  for (let t = 0; t < TENANTS; t++) {
    const tenant = `t${t}`;
    await store.createTenant({ id: tenant, name: tenant, reviewRequired: false, skipReviewRoles: ['admin'] }, audit(tenant));
    await store.writeDraft(tenant, 'upstreams', 'u', { draft: { nodes: [{ host: '127.0.0.1', port: upPort }] }, create: true, actor: 'bench', audit: audit(tenant) });
    await store.publish(tenant, 'upstreams', 'u', { actor: 'bench', audit: audit(tenant) });
    for (let r = 0; r < PER; r++) {
      await store.writeDraft(tenant, 'routes', `r${r}`, { draft: { paths: [`/${tenant}/r${r}/*`], upstreamId: 'u' }, create: true, actor: 'bench', audit: audit(tenant) });
      await store.publish(tenant, 'routes', `r${r}`, { actor: 'bench', audit: audit(tenant) });
    }
  }
  await store.close();
  log(`store filled: ${TENANTS} tenants x ${PER} routes in ${Math.round(performance.now() - t0)} ms`);

  const env = { GATEHOUSE_CONFIG_PROVIDER_TYPE: 'etcd', GATEHOUSE_CONFIG_PROVIDER_ENDPOINTS: `http://127.0.0.1:${client}`, GATEHOUSE_CONFIG_PROVIDER_PREFIX: '/bench', GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_ACCESS_LOG_ENABLED: 'false' };
  const adminPort = await freePort();
  start(process.execPath, [BIN, 'control-plane'], { ...env, GATEHOUSE_DATA_DIR: path.join(work, 'cp'), GATEHOUSE_ADMIN_PORT: String(adminPort) }, 'control-plane');
  t0 = performance.now();
  const want = TENANTS * (PER + 1);
  await until('etcd holds every entity', 120_000, async () => {
    const r = await fetch(`http://127.0.0.1:${client}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/bench/config/').toString('base64'), range_end: Buffer.from('/bench/config0').toString('base64'), count_only: true }) });
    return Number((await r.json()).count ?? 0) >= want;
  }, 200);
  const publishAllMs = performance.now() - t0;
  log(`control plane published ${want} entities to etcd in ${Math.round(publishAllMs)} ms`);

  // Gateways: time from spawn to serving the last tenant's last route.
  const gateways = [];
  const loadMs = [];
  for (let i = 0; i < GATEWAYS; i++) {
    const [http1, status] = [await freePort(), await freePort()];
    const started = performance.now();
    const p = start(process.execPath, [BIN, 'gateway'], { ...env, GATEHOUSE_DATA_DIR: path.join(work, `gw${i}`), GATEHOUSE_INSTANCE_ID: `gw-${i}`, GATEHOUSE_WORKERS: '1', GATEHOUSE_PROXY_HTTP: String(http1), GATEHOUSE_PROXY_HTTPS: '-1', GATEHOUSE_STATUS_PORT: String(status) }, `gw${i}`);
    await until(`gateway ${i} serving`, 120_000, async () => (await fetch(`http://127.0.0.1:${http1}/t${TENANTS - 1}/r${PER - 1}/x`)).status === 200, 20);
    loadMs.push(performance.now() - started);
    gateways.push({ p, http: http1, status });
    log(`gateway ${i} serving all routes ${Math.round(loadMs.at(-1))} ms after start`);
  }
  await sleep(1000);
  const rss = gateways.flatMap((g) => rssOfChildren(g.p.pid));

  // Admin writes: change a route's path and publish; time until every gateway serves the new path.
  const login = await http(adminPort, 'POST', '/api/v1/login', { body: { username: 'admin', password } });
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const tok = await fetch(`http://127.0.0.1:${adminPort}/api/v1/tokens`, { method: 'POST', headers: { cookie, 'x-csrf-token': login.body.csrfToken, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) });
  const token = (await tok.json()).token;
  const latencies = [];
  const publishMs = [];
  for (let w = 0; w < WRITES; w++) {
    const tenant = `t${w % TENANTS}`;
    const newPath = `/${tenant}/moved-${w}`;
    const t1 = performance.now();
    const patch = await http(adminPort, 'PATCH', `/api/v1/tenants/${tenant}/routes/r0`, { token, body: { paths: [`${newPath}/*`] } });
    if (patch.status !== 200) throw new Error(`PATCH ${patch.status} ${JSON.stringify(patch.body)}`);
    const tp = performance.now();
    const pub = await http(adminPort, 'POST', `/api/v1/tenants/${tenant}/routes/r0/publish`, { token, body: {} });
    if (pub.status !== 200) throw new Error(`publish ${pub.status} ${JSON.stringify(pub.body)}`);
    publishMs.push(performance.now() - tp);
    await Promise.all(gateways.map((g) => until('change served', 30_000, async () => (await fetch(`http://127.0.0.1:${g.http}${newPath}/x`)).status === 200, 2)));
    latencies.push(performance.now() - t1);
  }
  const fmt = (ms) => `${Math.round(ms)} ms`;
  const mib = (b) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  const md = [
    `Measured ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, ${os.cpus()[0].model} (${os.cpus().length} CPUs), etcd ${execFileSync('etcd', ['--version']).toString().split('\n')[0].replace('etcd Version: ', '')}.`,
    `Command: \`cd bench && node cluster.mjs --tenants ${TENANTS} --routes-per-tenant ${PER} --writes ${WRITES} --gateways ${GATEWAYS}\` (control plane, ${GATEWAYS} gateways with 1 worker each, and etcd on one machine).`,
    '',
    '| measure | value |',
    '|---|---|',
    `| entities | ${TENANTS} tenants, ${TENANTS * PER} routes, ${TENANTS} upstreams |`,
    `| control plane start to all entities in etcd (reconcile) | ${fmt(publishAllMs)} |`,
    `| new gateway: start to serving every route | ${loadMs.map(fmt).join(', ')} |`,
    `| admin write (PATCH + publish) to serving on every gateway, p50 / p99 / max over ${WRITES} writes | ${fmt(quantile(latencies, 0.5))} / ${fmt(quantile(latencies, 0.99))} / ${fmt(Math.max(...latencies))} |`,
    `| of which the publish call (validates the whole live config), p50 / p99 | ${fmt(quantile(publishMs, 0.5))} / ${fmt(quantile(publishMs, 0.99))} |`,
    `| memory (RSS) per gateway worker with every route loaded | ${rss.map(mib).join(', ')} |`,
  ].join('\n');
  process.stdout.write(`${md}\n`);
  upstream.close();
  process.exit(0);
}

main().catch((e) => {
  log(`failed: ${e.stack || e}`);
  for (const f of fs.readdirSync(work).filter((x) => x.endsWith('.log'))) log(`--- ${f}\n${fs.readFileSync(path.join(work, f), 'utf8').slice(-2000)}`);
  process.exit(1);
});
