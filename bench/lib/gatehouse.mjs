// Gatehouse: declarative routes files (1 route, 10,000 routes, rewritten for the reload scenario) and the
// launcher: `node <repo>/bin/gatehouse.js gateway --file <routes.yaml> --workers 1`, settings by env.
import fs from 'node:fs';
import path from 'node:path';
import { startProcess } from './procs.mjs';
import { HOST } from './http.mjs';

const q = (s) => JSON.stringify(s); // a JSON string is a valid YAML scalar

function upstreamYaml(upstreamPort) {
  return `upstreams:
  - id: up
    type: roundrobin
    nodes:
      - { host: ${HOST}, port: ${upstreamPort}, weight: 1 }
`;
}

/** One catch-all route. `labels` (an object) is the harmless field the reload scenario changes. */
export function oneRouteYaml(upstreamPort, labels) {
  let y = `${upstreamYaml(upstreamPort)}routes:
  - id: r1
    paths: ["/*"]
    upstreamId: up
`;
  if (labels) {
    y += '    labels:\n';
    for (const [k, v] of Object.entries(labels)) y += `      ${q(k)}: ${q(String(v))}\n`;
  }
  return y;
}

/**
 * The plugin-cost scenario: one process serves both routes, so the two variants differ only by the plugins.
 *   /plain/*  no plugins (the request path skips the plugin machinery entirely)
 *   /auth/*   key-auth + request-id; wrk sends the consumer's key in the apikey header
 *   /stack/*  key-auth + limit-count (local policy, never reached) + prometheus: the issue-4 target stack
 */
export const PLUGIN_ROUTES = {
  plain: { path: '/plain/hello', label: 'route with no plugins ("/plain/*")' },
  auth: { path: '/auth/hello', label: 'key-auth + request-id ("/auth/*", wrk sends the apikey header)' },
  stack: { path: '/stack/hello', label: 'key-auth + limit-count (local) + prometheus ("/stack/*")' },
};

/** Routes for the plugin-cost scenario; with `key` null, only the plain route (for a baseline build). */
export function pluginRoutesYaml(upstreamPort, key) {
  let y = `${upstreamYaml(upstreamPort)}routes:
  - id: plain
    paths: ["/plain/*"]
    upstreamId: up
`;
  if (key === null) return y;
  y += `  - id: auth
    paths: ["/auth/*"]
    upstreamId: up
    plugins:
      key-auth: {}
      request-id: {}
  - id: stack
    paths: ["/stack/*"]
    upstreamId: up
    plugins:
      key-auth: {}
      # A limit the benchmark never reaches: every request is counted, none refused.
      limit-count: { count: 1000000000, timeWindow: 3600, key: consumer }
      prometheus: {}
consumers:
  - username: bench
    credentials:
      key-auth: { key: ${q(key)} }
`;
  return y;
}

export const MANY_ROUTES = 10000;
/** The route the 10,000-routes scenario loads: a prefix route (no host) near the end of the file. */
export const MANY_TARGET = { index: 9997, path: '/svc9997/hello', kind: 'prefix "/svc9997/*"' };

/**
 * 10,000 distinct routes, cycling through four shapes:
 *   i % 4 == 0  exact paths        /svcNNNN and /svcNNNN/items
 *   i % 4 == 1  prefix             /svcNNNN/*
 *   i % 4 == 2  named parameter    /svcNNNN/users/:id/orders, methods GET and POST
 *   i % 4 == 3  prefix with hosts  /svcNNNN/* on svcNNNN.example.com and *.svcNNNN.example.org
 */
export function manyRoutesYaml(upstreamPort, count = MANY_ROUTES) {
  const parts = [upstreamYaml(upstreamPort), 'routes:\n'];
  for (let i = 0; i < count; i++) {
    const n = String(i).padStart(4, '0');
    const id = `svc${n}`;
    switch (i % 4) {
      case 0:
        parts.push(`  - id: ${id}\n    paths: ["/svc${n}", "/svc${n}/items"]\n    upstreamId: up\n`);
        break;
      case 1:
        parts.push(`  - id: ${id}\n    paths: ["/svc${n}/*"]\n    upstreamId: up\n`);
        break;
      case 2:
        parts.push(`  - id: ${id}\n    paths: ["/svc${n}/users/:id/orders"]\n    methods: [GET, POST]\n    upstreamId: up\n`);
        break;
      default:
        parts.push(`  - id: ${id}\n    paths: ["/svc${n}/*"]\n    hosts: ["svc${n}.example.com", "*.svc${n}.example.org"]\n    upstreamId: up\n`);
    }
  }
  return parts.join('');
}

/** Writes a file in place (truncate + write) or by rename of a sibling temp file. */
export function writeRoutes(file, text, mode = 'inplace') {
  if (mode === 'rename') {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } else {
    fs.writeFileSync(file, text);
  }
}

/** Why Gatehouse cannot be started from this checkout, or null. */
export function gatehouseMissing(repo) {
  const bin = path.join(repo, 'bin', 'gatehouse.js');
  if (!fs.existsSync(bin)) return 'bin/gatehouse.js not found (set BENCH_GATEHOUSE_DIR or --gatehouse-dir)';
  if (!fs.existsSync(path.join(repo, 'dist'))) return 'dist/ not built (run `npm ci && npm run build` in the repository root)';
  if (!fs.existsSync(path.join(repo, 'node_modules'))) return 'node_modules/ missing (run `npm ci` in the repository root)';
  return null;
}

export function startGatehouse({ name, repo, routesFile, port, statusPort, workDir, cpu, logPath }) {
  const env = {
    ...process.env,
    GATEHOUSE_PROXY_HOST: HOST,
    GATEHOUSE_PROXY_HTTP: String(port),
    GATEHOUSE_PROXY_HTTPS: '-1',
    GATEHOUSE_STATUS_HOST: HOST,
    GATEHOUSE_STATUS_PORT: String(statusPort),
    GATEHOUSE_ACCESS_LOG_ENABLED: 'false',
    GATEHOUSE_LOG_LEVEL: 'warn',
    GATEHOUSE_DATA_DIR: path.join(workDir, 'data'),
  };
  return startProcess(
    name,
    process.execPath,
    [path.join(repo, 'bin', 'gatehouse.js'), 'gateway', '--file', routesFile, '--workers', '1'],
    { env, cwd: workDir, cpu, logPath },
  );
}
