/**
 * @module test/secrets
 * Credentials never leak: a canary string, unique per run, is put into every consumer credential the built-in
 * auth plugins take (key-auth key, and basic-auth password and jwt-auth secret when those plugins are
 * registered), then the real CLI (primary + workers, logging at debug, access log on) is driven through correct
 * and wrong credentials, credentials in headers, query arguments, cookies and bodies, malformed requests,
 * plugin failures in every phase, and invalid config reloads whose bad field holds the canary. Everything the
 * process tree writes, every response (status, headers, body) and /metrics are then searched for the canary,
 * also base64-encoded. `gatehouse validate` is held to the same rule.
 *
 * Also: every spelling of a protected path gets the auth outcome of the canonical path (401 or 400), and never
 * reaches the protected upstream unauthenticated.
 *
 * The tests in section 3 guard leaks and bypasses this suite once found (refused URLs in the access log, YAML
 * aliases and unknown field names echoed, ';' and encoded separators, WebSocket upgrades skipping plugins).
 */
import { after, before, describe, it, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtinRegistry } from '../src/plugins/index.js';
import { startInProcessGateway, type InProcessGateway } from '../src/process/in-process.js';
import { Gatehouse, get, runCli, sleep, waitUntil, type LogLine } from './helpers/cli.js';
import { send, type Reply } from './helpers/http.js';
import { rawExchange, type RawResult } from './helpers/raw.js';
import { closedPort, node, startUpstream, type TestUpstream } from './helpers/upstream.js';


// ---------------------------------------------------------------------------------------------------------
// The canary

/** Letters and digits only, so URL-encoding and JSON-escaping leave it as it is. Unique per run. */
const CANARY = `ghcanary${randomBytes(8).toString('hex')}`;
const KEY_ALICE = `${CANARY}alicekey`;
const KEY_BOB = `${CANARY}bobkey`;
const BASIC_USER = 'alice-basic';
const BASIC_PASSWORD = `${CANARY}basicpw`;
const JWT_KEY = 'alice-jwt';
/** At least 32 bytes: HS256 secrets shorter than the MAC are refused. */
const JWT_SECRET = `${CANARY}jwtsecret0123456789abcdef`;
const PLUGIN_SECRET = `${CANARY}pluginsecret`;

/** The canary and its base64 and base64url forms at each of the three byte alignments. */
function needles(secret: string): string[] {
  const out = new Set<string>([secret]);
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k, 0x20), Buffer.from(secret)]).toString('base64');
    // The first group depends on the bytes before the canary (when k > 0), the last on the bytes after it.
    const core = enc.slice(k === 0 ? 0 : 4, -4);
    out.add(core);
    out.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...out];
}
const NEEDLES = needles(CANARY);

/** Every place the canary (in any of its forms) occurs in `sources`, with some context, for the failure message. */
function findCanary(sources: Record<string, string>): string[] {
  const hits: string[] = [];
  for (const [name, text] of Object.entries(sources)) {
    for (const n of NEEDLES) {
      let i = text.indexOf(n);
      while (i !== -1 && hits.length < 20) {
        hits.push(`${name}: ...${JSON.stringify(text.slice(Math.max(0, i - 160), i + n.length + 60))}...`);
        i = text.indexOf(n, i + n.length);
      }
    }
  }
  return hits;
}

function assertNoCanary(sources: Record<string, string>): void {
  const hits = findCanary(sources);
  assert.deepEqual(hits, [], `the canary leaked in ${hits.length} place(s):\n${hits.join('\n')}`);
}

// ---------------------------------------------------------------------------------------------------------
// The auth plugins registered today, and their credentials

const registry = builtinRegistry();
const HAS_BASIC = registry.has('basic-auth');
const HAS_JWT = registry.has('jwt-auth');

/** The route option naming the claim that selects a jwt-auth credential (docs/plugins/jwt-auth.md), by its default. */
function jwtClaim(): string {
  const def = registry.get('jwt-auth') as { schema?: { properties?: { claim?: { default?: unknown } } } } | undefined;
  const claim = def?.schema?.properties?.claim?.default;
  return typeof claim === 'string' ? claim : 'key';
}

function jwtHS256(payload: Record<string, unknown>, secret: string, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }): string {
  const h = Buffer.from(JSON.stringify(header)).toString('base64url');
  const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${h}.${p}.${createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')}`;
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

function aliceCredentials(): Record<string, unknown> {
  const c: Record<string, unknown> = { 'key-auth': { key: KEY_ALICE } };
  if (HAS_BASIC) c['basic-auth'] = { username: BASIC_USER, password: BASIC_PASSWORD };
  if (HAS_JWT) c['jwt-auth'] = { key: JWT_KEY, algorithm: 'HS256', secret: JWT_SECRET };
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// A custom plugin that fails in a chosen phase, with request data and its own secret in the error

const FAULT_PHASES = ['rewrite', 'access', 'beforeUpstream', 'responseHeaders', 'log'] as const;
type FaultPhase = (typeof FAULT_PHASES)[number];
/** Request phases end the request with 500; response-header and log failures are contained. */
const REQUEST_PHASES = new Set<FaultPhase>(['rewrite', 'access', 'beforeUpstream']);

const FAULT_PLUGIN = `// canary-fault: throws in the phase its config names, with the request's apikey and its own secret in the error.
const phases = ${JSON.stringify(FAULT_PHASES)};
export default {
  name: 'canary-fault',
  version: '1.0.0',
  priority: 91,
  description: 'Fails on purpose (tests).',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['phase'],
    description: 'canary-fault config',
    properties: {
      phase: { type: 'string', enum: phases, description: 'The phase that throws.' },
      secret: { type: 'string', default: '', description: 'A secret of the plugin; it ends up in its errors.' },
    },
  },
  create(config) {
    const fail = (ctx, canReject) => {
      const key = String(ctx.headers.apikey ?? '');
      const how = String(ctx.headers['x-fault'] ?? 'error');
      if (how === 'json') return JSON.parse('{"apikey": ' + key + '}'); // a SyntaxError that quotes its input
      if (how === 'string') throw 'fault: ' + key + ' ' + config.secret;
      if (how === 'reject' && canReject) return Promise.reject(new Error('fault: ' + key + ' ' + config.secret));
      throw new Error('fault: ' + key + ' ' + config.secret);
    };
    const hooks = {};
    if (config.phase === 'responseHeaders') hooks.responseHeaders = (ctx) => { fail(ctx, false); };
    else if (config.phase === 'log') hooks.log = (ctx) => { fail(ctx, false); };
    else hooks[config.phase] = (ctx) => fail(ctx, true);
    return hooks;
  },
};
`;

// ---------------------------------------------------------------------------------------------------------
// Recording every response

interface Transcript {
  entries: string[];
  text(): string;
}

function transcript(): Transcript {
  const entries: string[] = [];
  return { entries, text: () => entries.join('\n') };
}

async function call(tr: Transcript, port: number, label: string, path: string, opts: Parameters<typeof send>[2] = {}): Promise<Reply> {
  const r = await send(port, path, { timeout: 10_000, ...opts });
  tr.entries.push(`### ${label}\n${r.status}\n${JSON.stringify(r.headers)}\n${r.body}`);
  return r;
}

async function raw(tr: Transcript, port: number, label: string, payload: string): Promise<RawResult> {
  const r = await rawExchange(port, payload, { idleMs: 400, totalMs: 8000 });
  tr.entries.push(`### ${label}\n${r.raw.toString('latin1')}`);
  return r;
}

function errorCode(r: { body: string }): string | undefined {
  try {
    return (JSON.parse(r.body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Shared fixtures

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function upstream(): Promise<TestUpstream> {
  // A fixed answer: an upstream that echoed requests would put forwarded credentials in the response bodies.
  const u = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 });
    res.end('{"ok":true}');
  });
  cleanups.push(() => u.close());
  return u;
}

async function scratchDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Setup {
  config: Record<string, unknown>;
  /** The config as a file (JSON is YAML too). */
  text: string;
  routeIndex: Map<string, number>;
}

/** The declarative config of the leak tests: every auth plugin registered today, on routes of its own and together. */
function leakConfig(upstreamPort: number, deadPort: number): Setup {
  const routes: Array<Record<string, unknown>> = [
    { id: 'ka', paths: ['/ka', '/ka/*'], upstreamId: 'app', plugins: { 'key-auth': {}, 'request-id': {} } },
    { id: 'ka-custom', paths: ['/ka-custom/*'], upstreamId: 'app', plugins: { 'key-auth': { header: 'X-Api-Key', query: 'api_key', hideCredentials: false } } },
    ...FAULT_PHASES.map((phase) => ({
      id: `boom-${phase}`,
      paths: [`/boom/${phase}/*`],
      upstreamId: 'app',
      plugins: { 'key-auth': {}, 'canary-fault': { phase, secret: PLUGIN_SECRET } },
    })),
    { id: 'ws', paths: ['/ws/*'], websocket: true, upstream: { nodes: [node(deadPort)] } },
    { id: 'public', paths: ['/public/*'], upstreamId: 'app' },
  ];
  const all: Record<string, unknown> = { 'key-auth': {} };
  if (HAS_BASIC) {
    routes.push({ id: 'basic', paths: ['/basic/*'], upstreamId: 'app', plugins: { 'basic-auth': {} } });
    all['basic-auth'] = {};
  }
  if (HAS_JWT) {
    routes.push({ id: 'jwt', paths: ['/jwt/*'], upstreamId: 'app', plugins: { 'jwt-auth': {} } });
    all['jwt-auth'] = {};
  }
  routes.push({ id: 'any', paths: ['/any/*'], upstreamId: 'app', plugins: all });
  const config = {
    upstreams: [{ id: 'app', type: 'roundrobin', nodes: [node(upstreamPort)] }],
    routes,
    consumers: [
      { username: 'alice', credentials: aliceCredentials() },
      { username: 'bob', credentials: { 'key-auth': { key: KEY_BOB } } },
    ],
  };
  return { config, text: `${JSON.stringify(config, null, 2)}\n`, routeIndex: new Map(routes.map((r, i) => [r.id as string, i])) };
}

async function startLeakGateway(t: TestContext, setup: Setup, workers = 2): Promise<Gatehouse> {
  const pluginDir = await scratchDir(t, 'gatehouse-secrets-plugins-');
  await writeFile(join(pluginDir, 'canary-fault.mjs'), FAULT_PLUGIN);
  return Gatehouse.start(t, setup.text, {
    workers,
    env: {
      GATEHOUSE_LOG_LEVEL: 'debug',
      GATEHOUSE_ACCESS_LOG_ENABLED: 'true',
      GATEHOUSE_PLUGINS_DIRECTORY: pluginDir,
    },
  });
}

/** Everything to search: the process tree's output, the responses, and the status port. */
async function collect(gw: Gatehouse, tr: Transcript): Promise<Record<string, string>> {
  const metrics = await get(gw.statusPort, '/metrics');
  const readyz = await get(gw.statusPort, '/readyz');
  const healthz = await get(gw.statusPort, '/healthz');
  return {
    stdout: gw.stdout,
    stderr: gw.stderr,
    responses: tr.text(),
    metrics: metrics.body,
    'metrics headers': JSON.stringify(metrics.headers),
    readyz: readyz.body,
    healthz: healthz.body,
  };
}

// ---------------------------------------------------------------------------------------------------------
// 1. The real CLI at debug level: traffic, failures and reloads, then a search of everything

test('a canary secret never appears in any log line, error body or metric, with logging at debug', { timeout: 120_000 }, async (t) => {
  const up = await upstream();
  const deadPort = await closedPort();
  const setup = leakConfig(up.port, deadPort);
  const gw = await startLeakGateway(t, setup);
  const tr = transcript();
  const P = gw.proxyPort;
  t.diagnostic(`auth plugins with credentials in this run: key-auth${HAS_BASIC ? ', basic-auth' : ''}${HAS_JWT ? ', jwt-auth' : ''}`);

  await t.test('key-auth: correct and wrong keys, in headers, query arguments, cookies and bodies', async () => {
    let r = await call(tr, P, 'key in header', '/ka/x', { headers: { apikey: KEY_ALICE } });
    assert.equal(r.status, 200, r.body);
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    r = await call(tr, P, 'key in query', `/ka/x?a=1&apikey=${KEY_ALICE}&b=2`);
    assert.equal(r.status, 200, r.body);
    assert.equal(up.seen.at(-1)?.url, '/ka/x?a=1&b=2', 'the key argument is removed before forwarding');
    r = await call(tr, P, 'other consumer', '/ka', { headers: { apikey: KEY_BOB } });
    assert.equal(r.status, 200, r.body);

    for (const [label, path, headers] of [
      ['wrong key in header', '/ka/x', { apikey: `${KEY_ALICE}x` }],
      ['bare canary in header', '/ka/x', { apikey: CANARY }],
      ['wrong key in query', `/ka/x?apikey=${KEY_ALICE}x`, {}],
      ['wrong header, right query', `/ka/x?apikey=${KEY_ALICE}`, { apikey: `x${KEY_ALICE}` }],
      ['truncated key', '/ka/x', { apikey: KEY_ALICE.slice(0, -1) }],
    ] as const) {
      r = await call(tr, P, label, path, { headers });
      assert.equal(r.status, 401, `${label}: ${r.body}`);
      assert.equal(errorCode(r), 'GH_ERR_AUTH_INVALID', label);
    }
    for (const [label, headers] of [
      ['canary as a bearer token', { authorization: `Bearer ${CANARY}` }],
      ['canary in a cookie', { cookie: `apikey=${KEY_ALICE}; other=${CANARY}` }],
      ['canary in another header', { 'x-api-key': KEY_ALICE }],
    ] as const) {
      r = await call(tr, P, label, '/ka/x', { headers });
      assert.equal(r.status, 401, `${label}: ${r.body}`);
      assert.equal(errorCode(r), 'GH_ERR_AUTH_REQUIRED', label);
    }
    // Two apikey headers (node keeps the first).
    const dup = await raw(tr, P, 'two apikey headers', `GET /ka/x HTTP/1.1\r\nHost: t\r\napikey: ${KEY_ALICE}x\r\napikey: ${KEY_ALICE}\r\nConnection: close\r\n\r\n`);
    assert.equal(dup.status, 401);

    r = await call(tr, P, 'canary in a body, right key', '/ka/x', { method: 'POST', headers: { apikey: KEY_ALICE, 'content-type': 'application/json' }, body: JSON.stringify({ apikey: KEY_ALICE, password: CANARY }) });
    assert.equal(r.status, 200, r.body);
    r = await call(tr, P, 'canary in a body, wrong key', '/ka/x', { method: 'POST', headers: { apikey: CANARY, 'content-type': 'application/json' }, body: JSON.stringify({ apikey: KEY_ALICE }) });
    assert.equal(r.status, 401, r.body);

    // A custom header and argument, and a route that forwards the key (hideCredentials: false).
    r = await call(tr, P, 'custom header', '/ka-custom/x', { headers: { 'x-api-key': KEY_BOB } });
    assert.equal(r.status, 200, r.body);
    r = await call(tr, P, 'custom header, wrong', '/ka-custom/x', { headers: { 'x-api-key': `${KEY_BOB}x` } });
    assert.equal(r.status, 401, r.body);
    r = await call(tr, P, 'custom argument, wrong', `/ka-custom/x?api_key=${CANARY}`);
    assert.equal(r.status, 401, r.body);
    r = await call(tr, P, 'custom route, default header ignored', '/ka-custom/x', { headers: { apikey: KEY_BOB } });
    assert.equal(r.status, 401, r.body);

    // Credentials on requests that never reach a plugin: no route, or a route without plugins.
    r = await call(tr, P, 'no route, key in header', '/nope/x', { headers: { apikey: KEY_ALICE, authorization: basic(BASIC_USER, BASIC_PASSWORD) } });
    assert.equal(r.status, 404, r.body);
    r = await call(tr, P, 'public route, key in header and query', `/public/x?apikey=${KEY_ALICE}`, { headers: { apikey: KEY_ALICE } });
    assert.equal(r.status, 200, r.body);
  });

  await t.test('basic-auth and jwt-auth (when registered): correct and wrong credentials', { skip: !HAS_BASIC && !HAS_JWT ? 'neither basic-auth nor jwt-auth is registered yet' : false }, async () => {
    if (HAS_BASIC) {
      let r = await call(tr, P, 'basic, correct', '/basic/x', { headers: { authorization: basic(BASIC_USER, BASIC_PASSWORD) } });
      assert.equal(r.status, 200, r.body);
      for (const [label, value] of [
        ['basic, wrong password', basic(BASIC_USER, `${BASIC_PASSWORD}x`)],
        ['basic, unknown user', basic('nobody', BASIC_PASSWORD)],
        ['basic, no colon', `Basic ${Buffer.from(BASIC_PASSWORD).toString('base64')}`],
        ['basic, not base64', `Basic ${CANARY}!`],
        ['basic, raw', `Basic ${BASIC_USER}:${BASIC_PASSWORD}`],
      ] as const) {
        r = await call(tr, P, label, '/basic/x', { headers: { authorization: value } });
        assert.equal(r.status, 401, `${label}: ${r.body}`);
      }
      r = await call(tr, P, 'basic on a route with every auth plugin', '/any/x', { headers: { authorization: basic(BASIC_USER, BASIC_PASSWORD) } });
      assert.equal(r.status, 200, r.body);
      r = await call(tr, P, 'basic wrong on a route with every auth plugin', '/any/x', { headers: { authorization: basic(BASIC_USER, CANARY) } });
      assert.equal(r.status, 401, r.body);
    }
    if (HAS_JWT) {
      const claim = jwtClaim();
      const exp = Math.floor(Date.now() / 1000) + 600;
      let r = await call(tr, P, 'jwt, correct', '/jwt/x', { headers: { authorization: `Bearer ${jwtHS256({ [claim]: JWT_KEY, exp }, JWT_SECRET)}` } });
      assert.equal(r.status, 200, r.body);
      for (const [label, token] of [
        ['jwt, wrong secret', jwtHS256({ [claim]: JWT_KEY, exp }, `${JWT_SECRET}x`)],
        ['jwt, canary as the token', CANARY],
        ['jwt, canary as the credential claim', jwtHS256({ [claim]: CANARY, exp }, JWT_SECRET)],
        ['jwt, canary in the header, wrong secret', jwtHS256({ [claim]: JWT_KEY, exp }, CANARY, { alg: 'HS256', kid: CANARY })],
        ['jwt, alg none', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ [claim]: JWT_KEY, exp, s: CANARY })).toString('base64url')}.`],
        ['jwt, expired', jwtHS256({ [claim]: JWT_KEY, exp: exp - 3600 }, JWT_SECRET)],
      ] as const) {
        r = await call(tr, P, label, '/jwt/x', { headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 401, `${label}: ${r.body}`);
      }
      r = await call(tr, P, 'jwt in query (not enabled)', `/jwt/x?jwt=${CANARY}`);
      assert.equal(r.status, 401, r.body);
    }
  });

  await t.test('malformed requests with the canary in a header', async () => {
    const line = (extra: string, target = '/ka/x') => `GET ${target} HTTP/1.1\r\nHost: t\r\n${extra}Connection: close\r\n\r\n`;
    for (const [label, payload, statuses] of [
      ['invalid header name', line(`apikey: ${KEY_ALICE}\r\nbad header: ${CANARY}\r\n`), [400]],
      ['control character in the value', line(`apikey: ${KEY_ALICE}\x01\r\n`), [400]],
      ['header line without a colon', line(`apikey: ${KEY_ALICE}\r\n${CANARY}\r\n`), [400]],
      ['obsolete line folding', line(`apikey: x\r\n ${KEY_ALICE}\r\n`), [400]],
      ['two Host headers', line(`Host: u\r\napikey: ${KEY_ALICE}\r\n`), [400]],
      ['no Host header', `GET /ka/x HTTP/1.1\r\napikey: ${KEY_ALICE}\r\nConnection: close\r\n\r\n`, [400]],
      ['invalid Host', line(`apikey: ${KEY_ALICE}\r\n`).replace('Host: t', `Host: ${CANARY}/x`), [400]],
      ['unsupported transfer coding', `POST /ka/x HTTP/1.1\r\nHost: t\r\napikey: ${KEY_ALICE}\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n`, [400, 501]],
      ['invalid content-length', `POST /ka/x HTTP/1.1\r\nHost: t\r\napikey: ${KEY_ALICE}\r\nContent-Length: ${CANARY}\r\nConnection: close\r\n\r\n`, [400]],
      ['oversized header', line(`apikey: ${KEY_ALICE}\r\nx-pad: ${CANARY.repeat(4000)}\r\n`), [431, 400]],
      ['invalid method', line(`apikey: ${KEY_ALICE}\r\n`).replace('GET', 'G@T'), [400]],
      ['bad chunked body', `POST /ka/x HTTP/1.1\r\nHost: t\r\napikey: ${KEY_ALICE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n${CANARY}\r\n0\r\n\r\n`, [400, 502]],
    ] as const) {
      const r = await raw(tr, P, label, payload);
      assert.ok((statuses as readonly number[]).includes(r.status), `${label}: got ${r.status} (${r.raw.toString('latin1').slice(0, 200)})`);
    }
  });

  let pluginFailures = 0;
  await t.test('plugin failures in every phase, with the key and the plugin\'s secret in the error', async () => {
    for (const phase of FAULT_PHASES) {
      const hows = REQUEST_PHASES.has(phase) ? ['error', 'json', 'string', 'reject'] : ['error', 'json', 'string'];
      for (const how of hows) {
        const r = await call(tr, P, `fault ${phase} ${how}`, `/boom/${phase}/x`, { headers: { apikey: KEY_ALICE, 'x-fault': how } });
        pluginFailures++;
        if (REQUEST_PHASES.has(phase)) {
          assert.equal(r.status, 500, `${phase}/${how}: ${r.body}`);
          assert.equal(errorCode(r), 'GH_ERR_PLUGIN_FAILED');
        } else {
          assert.equal(r.status, 200, `${phase}/${how}: a response or log phase failure does not change the answer (${r.body})`);
        }
      }
    }
    // rewrite runs before authentication: a wrong key still reaches the failing plugin.
    const r = await call(tr, P, 'fault rewrite, wrong key', '/boom/rewrite/x', { headers: { apikey: `${KEY_ALICE}x` } });
    pluginFailures++;
    assert.equal(r.status, 500, r.body);
    await waitUntil('every plugin failure logged', 5000, () => (gw.logs.filter((l) => l.msg === 'plugin failed').length >= pluginFailures ? true : undefined));
  });

  await t.test('a WebSocket upgrade to a dead upstream (a debug log line) with the canary in header and query', async () => {
    const r = await raw(
      tr,
      P,
      'websocket',
      `GET /ws/x?apikey=${KEY_ALICE} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\napikey: ${KEY_ALICE}\r\nauthorization: ${basic(BASIC_USER, BASIC_PASSWORD)}\r\n\r\n`,
    );
    assert.equal(r.status, 502);
    const { line } = await gw.waitLog('the debug line of the failed upgrade', (l) => l.msg === 'websocket upgrade to upstream failed', { timeoutMs: 5000 });
    assert.equal(line.level, 20, 'logged at debug: the process really logs at debug');
  });

  let refusals = 0;
  await t.test('invalid config reloads whose bad field holds the canary are refused, naming the field only', async () => {
    const aliceAt = 'consumers[0].credentials';
    const withAlice = (cred: Record<string, unknown>): string => {
      const c = structuredClone(setup.config) as { consumers: Array<{ credentials: Record<string, unknown> }> };
      c.consumers[0]!.credentials = { ...c.consumers[0]!.credentials, ...cred };
      return JSON.stringify(c, null, 2);
    };
    const faultIndex = setup.routeIndex.get('boom-access')!;
    const cases: Array<{ label: string; text: string; path: string | RegExp }> = [
      { label: 'key of the wrong type (a list)', text: withAlice({ 'key-auth': { key: [KEY_ALICE] } }), path: `${aliceAt}.key-auth.key` },
      { label: 'key of the wrong type (a mapping)', text: withAlice({ 'key-auth': { key: { value: KEY_ALICE } } }), path: `${aliceAt}.key-auth.key` },
      { label: 'key too long', text: withAlice({ 'key-auth': { key: KEY_ALICE.repeat(30) } }), path: `${aliceAt}.key-auth.key` },
      { label: 'duplicate key', text: setup.text.replace(`"key": "${KEY_BOB}"`, `"key": "${KEY_ALICE}"`), path: 'consumers[1].credentials.key-auth' },
      { label: 'credential under a misspelt plugin', text: withAlice({ 'kye-auth': { key: KEY_ALICE } }), path: `${aliceAt}.kye-auth` },
      { label: 'credential under a plugin that is not an auth plugin', text: withAlice({ 'request-id': { key: KEY_ALICE } }), path: `${aliceAt}.request-id` },
      {
        label: 'plugin config with a wrong value',
        text: setup.text.replace(`"phase": "access"`, `"phase": "${CANARY}"`),
        path: `routes[${faultIndex}].plugins.canary-fault.phase`,
      },
      { label: 'YAML: unterminated quote', text: setup.text.replace(`"${KEY_ALICE}"`, `"${KEY_ALICE}`), path: /^\(line \d+, column \d+\)$|^\(file\)$/ },
      { label: 'YAML: duplicate mapping key', text: setup.text.replace(`"key": "${KEY_ALICE}"`, `"key": "${KEY_ALICE}", "key": "${KEY_ALICE}x"`), path: /^\(line \d+, column \d+\)$|^\(file\)$/ },
      { label: 'YAML: invalid escape', text: setup.text.replace(`"${KEY_ALICE}"`, `"\\q${KEY_ALICE}"`), path: /^\(line \d+, column \d+\)$|^\(file\)$/ },
    ];
    if (HAS_BASIC) {
      cases.push(
        { label: 'basic-auth password of the wrong type', text: withAlice({ 'basic-auth': { username: BASIC_USER, password: [BASIC_PASSWORD] } }), path: `${aliceAt}.basic-auth.password` },
        { label: 'basic-auth password too long', text: withAlice({ 'basic-auth': { username: BASIC_USER, password: BASIC_PASSWORD.repeat(30) } }), path: `${aliceAt}.basic-auth.password` },
      );
    }
    if (HAS_JWT) {
      cases.push(
        { label: 'jwt-auth secret of the wrong type', text: withAlice({ 'jwt-auth': { key: JWT_KEY, algorithm: 'HS256', secret: { s: JWT_SECRET } } }), path: `${aliceAt}.jwt-auth.secret` },
        { label: 'jwt-auth algorithm holding the secret', text: withAlice({ 'jwt-auth': { key: JWT_KEY, algorithm: JWT_SECRET, secret: JWT_SECRET } }), path: `${aliceAt}.jwt-auth.algorithm` },
      );
    }
    for (const c of cases) {
      assert.notEqual(c.text, setup.text, `${c.label}: the bad file differs from the good one`);
      const since = gw.mark();
      await gw.replaceFile(c.text);
      const { line } = await gw.waitLog(`refusal: ${c.label}`, (l) => typeof l.msg === 'string' && l.msg.startsWith('config change refused'), { since });
      refusals++;
      const problems = line.problems as Array<{ path: string; message: string }>;
      assert.ok(
        problems.some((p) => (typeof c.path === 'string' ? p.path === c.path : c.path.test(p.path))),
        `${c.label}: the refusal names ${String(c.path)}: ${JSON.stringify(problems)}`,
      );
    }
    // Still serving the first config.
    const r = await call(tr, P, 'after the refusals', '/ka/x', { headers: { apikey: KEY_ALICE } });
    assert.equal(r.status, 200, r.body);
    assert.equal((await gw.readyz()).body.revision, 1);
  });

  await t.test('the search: no log line, response or metric holds the canary', async () => {
    // Access lines are written after the response: a few marker requests on new connections (so on every
    // worker), and the search starts once their lines are in.
    const markers = Array.from({ length: 8 }, (_, i) => `/public/flush-${i}`);
    for (const m of markers) assert.equal((await call(tr, P, 'marker', m)).status, 200);
    await waitUntil('the access lines of the marker requests', 10_000, () => (markers.every((m) => gw.logs.some((l) => l.type === 'access' && l.path === m)) ? true : undefined));
    await sleep(200);
    const sources = await collect(gw, tr);
    const m = await gw.metrics();

    // The scenarios really ran (a search of empty output would prove nothing).
    assert.ok(gw.logs.some((l: LogLine) => l.level === 20), 'debug lines were logged');
    assert.ok(gw.logs.filter((l) => l.type === 'access').length >= 30, 'access lines were logged');
    assert.equal(gw.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('config change refused')).length, refusals);
    const pluginErrors = m.samples.filter((s) => s.name === 'gatehouse_plugin_errors_total' && s.labels.plugin === 'canary-fault').reduce((a, s) => a + s.value, 0);
    assert.equal(pluginErrors, pluginFailures, m.text);
    assert.equal(gw.logs.filter((l) => l.msg === 'gateway worker died; starting a new one').length, 0, `no worker died${gw.tail()}`);
    assert.equal(gw.exitInfo, null, 'the gateway is still running');

    assertNoCanary(sources);
    // Keys hidden by their plugin (hideCredentials, the default) never reach the upstream either.
    const hidden = up.seen.filter((s) => /^\/(ka|any|boom)\//.test(s.url) && !s.url.startsWith('/ka-custom'));
    assert.ok(hidden.length > 0);
    assertNoCanary({ 'requests the upstream received on routes that hide credentials': hidden.map((s) => `${s.method} ${s.url}\n${s.rawHeaders.join('\n')}`).join('\n') });
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2. gatehouse validate

test('gatehouse validate: a duplicate canary key is reported by its path, never by its value', { timeout: 60_000 }, async (t) => {
  const dir = await scratchDir(t, 'gatehouse-secrets-validate-');
  const upstreams = [{ id: 'app', nodes: [node(9)] }];
  await writeFile(
    join(dir, 'dup.yaml'),
    JSON.stringify({
      upstreams,
      consumers: [
        { username: 'alice', credentials: aliceCredentials() },
        { username: 'bob', credentials: { 'key-auth': { key: KEY_ALICE } } },
      ],
    }),
  );
  const dup = await runCli(['validate', 'dup.yaml'], dir);
  assert.equal(dup.code, 1, dup.stderr);
  const lines = dup.stdout.trim().split('\n');
  assert.deepEqual(lines.map((l) => l.slice(0, l.indexOf(': '))), ['consumers[1].credentials.key-auth'], dup.stdout);
  assert.match(lines[0]!, /consumer "alice"/, 'it names the other consumer');
  assertNoCanary({ 'validate stdout': dup.stdout, 'validate stderr': dup.stderr });

  // More bad fields holding the canary, one line each.
  const expected = ['consumers[0].credentials.key-auth.key', 'consumers[1].credentials.key-auth.key', 'consumers[2].credentials.kye-auth'];
  const consumers: Array<Record<string, unknown>> = [
    { username: 'a', credentials: { 'key-auth': { key: [KEY_ALICE] } } },
    { username: 'b', credentials: { 'key-auth': { key: KEY_ALICE.repeat(30) } } },
    { username: 'c', credentials: { 'kye-auth': { key: KEY_ALICE } } },
  ];
  if (HAS_BASIC) {
    consumers.push({ username: 'd', credentials: { 'basic-auth': { username: 'd', password: { p: BASIC_PASSWORD } } } });
    expected.push(`consumers[${consumers.length - 1}].credentials.basic-auth.password`);
  }
  await writeFile(join(dir, 'bad.yaml'), JSON.stringify({ upstreams, consumers }));
  const bad = await runCli(['validate', 'bad.yaml'], dir);
  assert.equal(bad.code, 1, bad.stderr);
  const paths = bad.stdout.trim().split('\n').map((l) => l.slice(0, l.indexOf(': ')));
  for (const p of expected) assert.ok(paths.includes(p), `names ${p}: ${bad.stdout}`);
  assertNoCanary({ 'validate stdout': bad.stdout, 'validate stderr': bad.stderr });
});

// ---------------------------------------------------------------------------------------------------------
// 3. Leaks and bypasses found earlier, kept as regression tests

test('a request refused before the plugins run does not log the credentials in its URL (query string, userinfo)', { timeout: 60_000 }, async (t) => {
  const up = await upstream();
  const setup = leakConfig(up.port, await closedPort());
  const gw = await startLeakGateway(t, setup, 1);
  const tr = transcript();
  const P = gw.proxyPort;
  assert.equal((await call(tr, P, 'no route', `/nope?apikey=${KEY_ALICE}`)).status, 404);
  assert.equal((await raw(tr, P, 'invalid path', `GET /ka/%zz?apikey=${KEY_ALICE} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`)).status, 400);
  assert.equal((await raw(tr, P, 'two Host headers', `GET /ka/x?apikey=${KEY_ALICE} HTTP/1.1\r\nHost: t\r\nHost: u\r\nConnection: close\r\n\r\n`)).status, 400);
  assert.equal((await raw(tr, P, 'body too large', `POST /ka/x?apikey=${KEY_ALICE} HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n`)).status, 413);
  assert.equal((await raw(tr, P, 'userinfo in an absolute-form target', `GET http://alice:${BASIC_PASSWORD}@t/nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`)).status, 404);
  assert.equal((await call(tr, P, 'URI too long', `/ka/x?apikey=${KEY_ALICE}&pad=${'p'.repeat(10_000)}`)).status, 414);
  await waitUntil('access lines', 5000, () => (gw.logs.filter((l) => l.type === 'access').length >= 6 ? true : undefined));
  assertNoCanary(await collect(gw, tr));
});

test('a hot reload of a file with an unresolved YAML alias in a credential is refused without the value, and the gateway keeps serving', { timeout: 60_000 }, async (t) => {
  const up = await upstream();
  const setup = leakConfig(up.port, await closedPort());
  const gw = await startLeakGateway(t, setup, 1);
  const tr = transcript();
  const since = gw.mark();
  // An unquoted value starting with "*" is a YAML alias: a password like "*x..." written without quotes.
  await gw.replaceFile(setup.text.replace(`"${KEY_ALICE}"`, `*${KEY_ALICE}`));
  await waitUntil('a refusal, or the gateway gone', 10_000, () => (gw.exitInfo || gw.logs.slice(since).some((l) => String(l.msg).startsWith('config change refused')) ? true : undefined));
  const sources = { stdout: gw.stdout, stderr: gw.stderr };
  assert.equal(gw.exitInfo, null, `the gateway is still running${gw.tail()}`);
  assert.equal((await call(tr, gw.proxyPort, 'after', '/ka/x', { headers: { apikey: KEY_ALICE } })).status, 200);
  assertNoCanary({ ...sources, ...(await collect(gw, tr)) });
});

test('gatehouse validate never echoes a credential written as a YAML alias or as a field name', { timeout: 60_000 }, async (t) => {
  const dir = await scratchDir(t, 'gatehouse-secrets-validate-');
  const head = 'upstreams: []\nconsumers:\n  - username: alice\n    credentials:\n';
  const files = {
    'alias.yaml': `${head}      key-auth: { key: *${KEY_ALICE} }\n`,
    'field-name.yaml': `${head}      key-auth: { ${KEY_ALICE} }\n`,
    'field-name-block.yaml': `${head}      key-auth:\n        key: x\n        ${KEY_ALICE}: 1\n`,
    // Billion laughs: the alias limit throws the same way (no canary here; it must not crash either).
    'alias-bomb.yaml': `a: &a [x, x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 12 }, (_, i) => `b${i}: &b${i} [${Array(12).fill(i ? `*b${i - 1}` : '*a').join(', ')}]`).join('\n')}\n`,
  };
  const outputs: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) {
    await writeFile(join(dir, name), text);
    const r = await runCli(['validate', name], dir);
    outputs[`${name} stdout`] = r.stdout;
    outputs[`${name} stderr`] = r.stderr;
    assert.equal(r.code, 1, `${name}: exit code`);
    assert.doesNotMatch(r.stderr, /^\s+at /m, `${name}: no stack trace`);
    assert.match(r.stdout, /^consumers\[0\]\.credentials\.key-auth|^\(line \d+, column \d+\)|^\(file\)|^\(root\)/m, `${name}: a line names the place: ${r.stdout}`);
  }
  assertNoCanary(outputs);
});

// ---------------------------------------------------------------------------------------------------------
// 4. Every spelling of a protected path gets the canonical path's auth outcome

/**
 * The protected route (/admin, /admin/*) has its own upstream; the public routes another. In production both
 * are often the same backend, which is why a path some backend would read as /admin must not get past the
 * admin route's key check by being routed elsewhere.
 */
describe('path variants and the auth decision', () => {
  let protectedUp: TestUpstream;
  let publicUp: TestUpstream;
  const gateways = {} as Record<'prefix' | 'catchAll', InProcessGateway>;

  before(async () => {
    protectedUp = await upstream();
    publicUp = await upstream();
    for (const kind of ['prefix', 'catchAll'] as const) {
      const g = await startInProcessGateway({ config: config(kind === 'catchAll') });
      cleanups.push(() => g.close());
      gateways[kind] = g;
    }
  });

  const config = (catchAll: boolean, websocket = false, protectedPort = protectedUp.port) => ({
    consumers: [{ username: 'alice', credentials: { 'key-auth': { key: KEY_ALICE } } }],
    routes: [
      { id: 'admin', paths: ['/admin', '/admin/*'], websocket, upstream: { nodes: [node(protectedPort)] }, plugins: { 'key-auth': {} } },
      { id: 'public', paths: catchAll ? ['/public/*', '/*'] : ['/public/*'], upstream: { nodes: [node(publicUp.port)] } },
    ],
  });

  const gateway = async (kind: 'prefix' | 'catchAll'): Promise<InProcessGateway> => gateways[kind];

  async function req(port: number, target: string, headers = ''): Promise<RawResult> {
    return rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: t\r\n${headers}Connection: close\r\n\r\n`, { idleMs: 400, totalMs: 8000 });
  }

  /** Requests that reached the protected upstream without an authenticated consumer. */
  const unauthenticatedAtProtected = () => protectedUp.seen.filter((s) => s.headers['x-consumer-username'] === undefined);

  /** Canonical spellings of /admin or a path under it: 401 without a key, the admin route with one. */
  const EQUIVALENT = [
    '/admin', '/admin/', '/admin/x', '//admin', '///admin//x', '/admin//', '/a/../admin', '/a/b/../../admin/x',
    '/./admin', '/admin/.', '/admin/./x', '/x/..//admin/./y', '/public/../admin', '/%61dmin', '/%61%64%6D%69%6E', '/adm%69n/x',
    '/%2e/admin', '/%2E/admin', '/x/%2e%2e/admin', '/x/%2E%2E/admin', '/x/.%2e/admin', '/x/%2e./admin', '/public/%2e%2e/admin',
    '/admin/x/%2e%2e', '/admin?x=1', '/admin?apikey=', 'http://t/admin', 'http://t//admin/../admin/x',
  ];
  /** Refused outright (400): above the root, NUL, backslash, fragment, broken escapes, non-ASCII. */
  const REJECTED = [
    '/..', '/../admin', '/%2e%2e/admin', '/%2E%2E/admin', '/.%2e/admin', '/admin/../../admin',
    '/admin%00', '/admin%00.css', '/%00/admin', '/admin/%00', '/admin%00/../public/x',
    '/admin\\x', '/public\\..\\admin', '/admin#x', '/public/x#/../../admin', '/admin%', '/admin%2', '/admin%zz', '/%61dmin%g0',
    '/admin/\xff', '/\xc3\xa4dmin',
  ];

  for (const kind of ['prefix', 'catchAll'] as const) {
    it(`canonical spellings are authenticated like /admin (${kind === 'prefix' ? 'public prefix route' : 'with a catch-all route'})`, async () => {
      const g = await gateway(kind);
      for (const p of EQUIVALENT) {
        const before = protectedUp.seen.length;
        const anon = await req(g.http, p);
        assert.equal(anon.status, 401, `${p} without a key -> ${anon.status}`);
        assert.equal(errorCode(anon.responses[0]!), 'GH_ERR_AUTH_REQUIRED', p);
        const keyed = await req(g.http, p, `apikey: ${KEY_ALICE}\r\n`);
        assert.equal(keyed.status, 200, `${p} with the key -> ${keyed.status}`);
        assert.equal(protectedUp.seen.length, before + 1, `${p}: the key check and the forwarding belong to the admin route`);
        assert.equal(protectedUp.seen.at(-1)!.headers['x-consumer-username'], 'alice');
      }
      assert.deepEqual(unauthenticatedAtProtected().map((s) => s.url), []);
    });

    it(`NUL, backslash, fragments, broken escapes and paths above the root are refused with 400 (${kind})`, async () => {
      const g = await gateway(kind);
      const seenBefore = protectedUp.seen.length + publicUp.seen.length;
      for (const p of REJECTED) {
        for (const headers of ['', `apikey: ${KEY_ALICE}\r\n`]) {
          const r = await req(g.http, p, headers);
          assert.equal(r.status, 400, `${JSON.stringify(p)}${headers ? ' with the key' : ''} -> ${r.status}`);
        }
      }
      assert.equal(protectedUp.seen.length + publicUp.seen.length, seenBefore, 'nothing refused reached an upstream');
    });
  }

  it('case variants are other paths: 404 without a matching route, the public route with a catch-all, never the admin upstream', async () => {
    // Paths are case-sensitive (RFC 3986 6.2.2.1): /ADMIN is not /admin. It reaches whatever route matches it,
    // never the admin route's upstream. A case-insensitive backend behind a catch-all route must protect
    // those spellings itself (or the route lists them).
    const variants = ['/ADMIN', '/Admin', '/aDmIn/x', '/%41DMIN', '/%41dmin'];
    const prefix = await gateway('prefix');
    for (const p of variants) {
      const r = await req(prefix.http, p);
      assert.equal(r.status, 404, `${p} (no catch-all) -> ${r.status}`);
    }
    const catchAll = await gateway('catchAll');
    for (const p of variants) {
      const before = publicUp.seen.length;
      const r = await req(catchAll.http, p);
      assert.equal(r.status, 200, `${p} (catch-all) -> ${r.status}`);
      assert.equal(publicUp.seen.length, before + 1, `${p} went to the public route's upstream`);
    }
    assert.deepEqual(unauthenticatedAtProtected().map((s) => s.url), []);
  });

  /** Paths some backends read as /admin: path parameters, encoded slashes and backslashes. */
  const AMBIGUOUS = [
    '/admin;x', '/admin;', '/admin;jsessionid=1/x', '/admin;/x', '/;/admin', '/public/..;/admin', '/public/.;/../admin',
    '/x/..%2Fadmin', '/x/..%2fadmin', '/..%2Fadmin', '/public/..%2Fadmin', '/public/%2e%2e%2Fadmin', '/%2Fadmin', '/admin%2F', '/admin%2fx',
    '/public/..%5Cadmin', '/admin%5Cx', '/admin/x%2F..%2F..%2Fpublic',
  ];
  for (const kind of ['prefix', 'catchAll'] as const) {
    it(`";" parameters and encoded "/" or "\\" never reach the admin route's upstream without a key (${kind})`, async () => {
      const g = await gateway(kind);
      for (const p of AMBIGUOUS) {
        const r = await req(g.http, p);
        assert.ok([400, 401, 404, 200].includes(r.status), `${p} -> ${r.status}`);
      }
      assert.deepEqual(unauthenticatedAtProtected().map((s) => s.url), []);
    });

    it(`";" parameters and encoded "/" or "\\" get the same outcome as /admin: 401 or 400 (${kind})`, async () => {
      const g = await gateway(kind);
      const wrong: string[] = [];
      for (const p of AMBIGUOUS) {
        const r = await req(g.http, p);
        if (r.status !== 401 && r.status !== 400) wrong.push(`${p} -> ${r.status}`);
      }
      assert.deepEqual(wrong, [], 'outcomes that differ from /admin without a key');
      assert.deepEqual(unauthenticatedAtProtected().map((s) => s.url), []);
    });
  }

  it('a WebSocket upgrade on a protected route is authenticated like any request', async () => {
    const own = await upstream();
    const g = await startInProcessGateway({ config: config(false, true, own.port) });
    cleanups.push(() => g.close());
    const r = await rawExchange(
      g.http,
      'GET /admin/x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      { idleMs: 400, totalMs: 8000 },
    );
    assert.deepEqual(own.seen.map((s) => s.url), [], `the protected upstream was reached without a key (answer ${r.status})`);
    assert.equal(r.status, 401);
  });
});
