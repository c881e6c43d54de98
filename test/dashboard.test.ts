/**
 * @module test/dashboard
 * The dashboard: how the control plane serves the built app (CSP with a fresh nonce, index.html for client
 * routes, immutable hashed assets, the API's paths left to the API), the overview's traffic summary, and
 * end to end in a real browser (Debian Chromium driven by playwright-core) against `gatehouse start`: log in,
 * create an upstream, a consumer and a route with key-auth through the generated forms, submit them for
 * review, approve as a reviewer, see the gateway serve the route; edit, publish and roll back; start and stop
 * a gray release; a viewer sees no edit controls; markup in a route name stays text. Then the rest of the
 * release controls (reject with a comment, withdraw, rebase a stale change, promote a gray release) and the
 * administration screens (tenants, users, members, API tokens). Screenshots of the main screens go to
 * test-output/screenshots/.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import Fastify from 'fastify';
import { pino } from 'pino';
import { registerDashboard, summarizeRouteMetrics, NONCE_PLACEHOLDER } from '../src/control/dashboard.js';
import { ControlPlane } from '../src/control/server.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { builtinRegistry } from '../src/plugins/index.js';
import { browserSkip, launchBrowser, screenshotDir, type Page } from './helpers/browser.js';
import { freePort, Gatehouse, sleep, waitUntil } from './helpers/cli.js';
import { quantile, rates } from '../dashboard/src/metrics.js';
import { diffLines, stableJson } from '../dashboard/src/diff-lines.js';
import { node, startUpstream } from './helpers/upstream.js';

// ---------------------------------------------------------------------------------------------------------
// Serving the built app

function fixtureDist(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gh-dash-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(
    join(dir, 'index.html'),
    `<!doctype html><html><head><meta property="csp-nonce" nonce="${NONCE_PLACEHOLDER}"><script type="module" src="/assets/app-3f9a.js" nonce="${NONCE_PLACEHOLDER}"></script></head><body><div id="root"></div></body></html>`,
  );
  writeFileSync(join(dir, 'assets', 'app-3f9a.js'), `console.log(${JSON.stringify('x'.repeat(4000))});\n`);
  writeFileSync(join(dir, 'assets', 'app-3f9a.css'), 'body{margin:0}');
  writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  return dir;
}

async function controlPlaneWithDashboard(dir: string) {
  const dbDir = mkdtempSync(join(tmpdir(), 'gh-dash-db-'));
  const store = new SqliteStore(join(dbDir, 'gatehouse.db'));
  await store.init();
  const cp = new ControlPlane({ store, plugins: builtinRegistry(), logger: pino({ level: 'silent' }) });
  registerDashboard(cp.app, { dir });
  await cp.app.ready();
  return {
    app: cp.app,
    async close() {
      await cp.app.close();
      await store.close();
      rmSync(dbDir, { recursive: true, force: true });
    },
  };
}

test('dashboard serving: index with a strict CSP and a fresh nonce, client routes, cached assets, API paths left alone', async (t) => {
  const dir = fixtureDist();
  const cp = await controlPlaneWithDashboard(dir);
  t.after(async () => {
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const a = await cp.app.inject({ method: 'GET', url: '/' });
  assert.equal(a.statusCode, 200);
  assert.match(String(a.headers['content-type']), /^text\/html/);
  assert.equal(a.headers['cache-control'], 'no-cache');
  const csp = String(a.headers['content-security-policy']);
  const nonce = /'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
  assert.ok(nonce && nonce.length >= 22, csp);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'scripts: this origin only, no inline, no eval');
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.ok(!a.body.includes(NONCE_PLACEHOLDER), 'the placeholder is replaced');
  assert.equal(a.body.split(`nonce="${nonce}"`).length - 1, 2, 'the meta tag and the script carry the nonce');
  assert.equal(a.headers['x-content-type-options'], 'nosniff');
  assert.equal(a.headers['x-frame-options'], 'DENY');

  const b = await cp.app.inject({ method: 'GET', url: '/' });
  assert.notEqual(/'nonce-([^']+)'/.exec(String(b.headers['content-security-policy']))?.[1], nonce, 'a new nonce on every answer');

  // Client-side routes get the app; so does /index.html.
  for (const url of ['/t/shop/routes', '/t/shop/routes/users?tab=history', '/login', '/index.html']) {
    const r = await cp.app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, 200, url);
    assert.ok(r.body.includes('<div id="root">'), url);
    assert.ok(r.headers['content-security-policy'], url);
  }

  // Hashed assets: a year, immutable, with an ETag; compressed for clients that take it.
  const js = await cp.app.inject({ method: 'GET', url: '/assets/app-3f9a.js', headers: { 'accept-encoding': 'gzip, br' } });
  assert.equal(js.statusCode, 200);
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assert.equal(js.headers['content-encoding'], 'br');
  assert.ok(brotliDecompressSync(js.rawPayload).toString().startsWith('console.log("xxx'));
  const gz = await cp.app.inject({ method: 'GET', url: '/assets/app-3f9a.js', headers: { 'accept-encoding': 'gzip, br;q=0' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.ok(gunzipSync(gz.rawPayload).toString().startsWith('console.log("xxx'));
  const plain = await cp.app.inject({ method: 'GET', url: '/assets/app-3f9a.js' });
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.ok(plain.body.startsWith('console.log("xxx'));
  const again = await cp.app.inject({ method: 'GET', url: '/assets/app-3f9a.js', headers: { 'if-none-match': String(js.headers.etag) } });
  assert.equal(again.statusCode, 304);
  const icon = await cp.app.inject({ method: 'GET', url: '/favicon.svg' });
  assert.equal(icon.statusCode, 200);
  assert.equal(icon.headers['content-type'], 'image/svg+xml');
  assert.equal(icon.headers['cache-control'], 'public, max-age=3600');

  // A missing file is a 404, not the app; nothing outside the build is reachable.
  for (const url of ['/assets/app-0000.js', '/robots.txt', '/../package.json', '/assets/..%2f..%2fpackage.json', '/t/..%2f..%2fetc', '/a%00b']) {
    const r = await cp.app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, 404, url);
    assert.equal(JSON.parse(r.body).error.code, 'GH_ERR_ROUTE_NOT_FOUND', url);
  }
  const missing = await cp.app.inject({ method: 'GET', url: '/assets/app-0000.js' });
  assert.equal(missing.statusCode, 404);
  assert.equal(JSON.parse(missing.body).error.code, 'GH_ERR_ROUTE_NOT_FOUND');

  // The admin API keeps its own answers: JSON errors, never the app.
  const api = await cp.app.inject({ method: 'GET', url: '/api/v1/no-such-thing' });
  assert.equal(api.statusCode, 404);
  assert.equal(JSON.parse(api.body).error.code, 'GH_ERR_ROUTE_NOT_FOUND');
  const gray = await cp.app.inject({ method: 'GET', url: '/admin/nothing' });
  assert.equal(gray.statusCode, 404);
  assert.equal(JSON.parse(gray.body).error.code, 'GH_ERR_ROUTE_NOT_FOUND');
  const me = await cp.app.inject({ method: 'GET', url: '/api/v1/me' });
  assert.equal(me.statusCode, 401);
  assert.equal(JSON.parse(me.body).error.code, 'GH_ERR_AUTH_REQUIRED');
});

test('dashboard serving: an unbuilt dashboard answers 404 saying how to build it; the API works', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-dash-empty-'));
  const warnings: unknown[] = [];
  const app = Fastify();
  registerDashboard(app, { dir, logger: { warn: (o: unknown) => warnings.push(o), info: () => {} } as never });
  app.get('/api/v1/ping', async () => ({ ok: true }));
  t.after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const r = await app.inject({ method: 'GET', url: '/' });
  assert.equal(r.statusCode, 404);
  assert.match(JSON.parse(r.body).error.message, /not built.*build:dashboard/);
  assert.equal((await app.inject({ method: 'GET', url: '/t/x/routes' })).statusCode, 404);
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/ping' })).statusCode, 200);
  assert.equal(warnings.length, 1);
});

test('overview metrics: per-route counters of one tenant from the gateway /metrics text', () => {
  const text = [
    '# HELP gatehouse_http_requests_total Requests answered, by route and status.',
    '# TYPE gatehouse_http_requests_total counter',
    'gatehouse_http_requests_total{route="shop.users",status="200"} 90',
    'gatehouse_http_requests_total{route="shop.users",status="503"} 10',
    'gatehouse_http_requests_total{route="other.users",status="200"} 7',
    'gatehouse_http_requests_total{route="shop.a\\"b",status="404"} 1',
    '# TYPE gatehouse_http_request_duration_seconds histogram',
    'gatehouse_http_request_duration_seconds_bucket{route="shop.users",le="0.001"} 10',
    'gatehouse_http_request_duration_seconds_bucket{route="shop.users",le="0.005"} 60',
    'gatehouse_http_request_duration_seconds_bucket{route="shop.users",le="0.01"} 99',
    'gatehouse_http_request_duration_seconds_bucket{route="shop.users",le="+Inf"} 100',
    'gatehouse_http_request_duration_seconds_sum{route="shop.users"} 0.42',
    'gatehouse_http_request_duration_seconds_count{route="shop.users"} 100',
    'gatehouse_http_request_duration_seconds_bucket{route="other.users",le="+Inf"} 7',
    'gatehouse_route_requests_total{route="shop.users",service="",consumer="",status="200"} 5',
    '',
  ].join('\n');
  const r = summarizeRouteMetrics(text, 'shop');
  assert.deepEqual(
    r.map((x) => x.id),
    ['a"b', 'users'],
  );
  const users = r.find((x) => x.id === 'users')!;
  assert.deepEqual(users.requests, { '200': 90, '503': 10 });
  assert.deepEqual(users.latency.bucketsMs, [1, 5, 10]);
  assert.deepEqual(users.latency.counts, [10, 60, 99, 100]);
  assert.equal(users.latency.sumMs, 420);
  assert.equal(users.latency.count, 100);
  assert.deepEqual(summarizeRouteMetrics(text, 'nobody'), []);
});

test('overview rates: requests per second, 5xx share and p99 between two readings; a restart counts from zero', () => {
  const bounds = [1, 5, 10];
  assert.equal(quantile(0.99, bounds, [0, 0, 0, 0]), null);
  assert.equal(quantile(0.5, bounds, [0, 100, 100, 100]), 3, 'interpolated within the (1, 5] bucket');
  assert.equal(quantile(0.99, bounds, [0, 0, 0, 10]), 10, 'above the last bound: the last bound');
  const reading = (at: string, ok: number, failed: number, cum: number[]) => ({
    at,
    routes: [{ id: 'users', requests: { '200': ok, '502': failed }, latency: { bucketsMs: bounds, counts: cum, sumMs: 0, count: cum.at(-1)! } }],
  });
  const a = reading('2026-01-01T00:00:00.000Z', 100, 0, [50, 100, 100, 100]);
  const b = reading('2026-01-01T00:00:10.000Z', 190, 10, [50, 100, 190, 200]);
  const [r] = rates(a, b);
  assert.equal(r!.rps, 10);
  assert.equal(r!.errorRate, 0.1);
  assert.equal(r!.p99Ms, 10, '99 of the 100 new requests took 5 to 10 ms');
  // The gateway restarted: its counters start again below the last reading.
  const c = reading('2026-01-01T00:00:20.000Z', 20, 0, [20, 20, 20, 20]);
  assert.equal(rates(b, c)[0]!.rps, 2);
});

test('diff view: lines of two versions aligned, keys in a stable order, changed lines paired', () => {
  assert.equal(stableJson({ b: 1, a: { d: 1, c: 2 } }), stableJson({ a: { c: 2, d: 1 }, b: 1 }));
  const rows = diffLines(stableJson({ paths: ['/a'], methods: ['GET'], name: 'x' }).split('\n'), stableJson({ paths: ['/a'], name: 'y' }).split('\n'));
  assert.deepEqual(
    rows.filter((r) => r.kind !== 'same').map((r) => [r.kind, r.left?.trim() ?? null, r.right?.trim() ?? null]),
    [
      ['del', '"methods": [', null],
      ['del', '"GET"', null],
      ['del', '],', null],
      ['mod', '"name": "x",', '"name": "y",'],
    ],
  );
  assert.equal(rows.filter((r) => r.kind === 'same').length, 5);
  assert.deepEqual(diffLines([], ['{', '}']).map((r) => r.kind), ['add', 'add']);
});

// ---------------------------------------------------------------------------------------------------------
// End to end in a browser

interface Answer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Record<string, string | string[] | undefined>;
}

function http(port: number, method: string, path: string, opts: { headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...opts.headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : null;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const PASSWORDS: Record<string, string> = {
  admin: 'admin-password-e2e-1',
  erin: 'erin-password-e2e-1',
  rita: 'rita-password-e2e-1',
  vic: 'vic-password-e2e-1',
  nora: 'nora-password-e2e-1',
};
const XSS_NAME = 'Users <script>window.__ghXss = 1</script><img src="x" onerror="window.__ghXss = 2">';

/** An API client: answers the body of a 2xx answer (and fails the test on any other); `raw` answers any. */
type Call = ((method: string, path: string, body?: unknown) => Promise<any>) & { raw(method: string, path: string, body?: unknown): Promise<Answer> }; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * `gatehouse start` (control plane and one gateway instance) in front of an echo upstream, an API client
 * for the set-up a script would do, and a Chromium page on the dashboard with the steps every test uses.
 * Content-Security-Policy violations and uncaught errors in the page are collected for `assertClean`.
 */
async function openDashboard(t: TestContext, instanceId: string) {
  const up = await startUpstream();
  t.after(() => up.close());
  const adminPort = await freePort();
  const gw = await Gatehouse.start(t, 'routes: []\n', {
    workers: 1,
    args: () => ['start'],
    env: { GATEHOUSE_ADMIN_PORT: String(adminPort), GATEHOUSE_ADMIN_PASSWORD: PASSWORDS.admin!, GATEHOUSE_INSTANCE_ID: instanceId },
  });
  const proxy = (path: string, headers: Record<string, string> = {}, method = 'GET') => http(gw.proxyPort, method, path, { headers });

  /** The API as a script of `user` would call it: a token made from a login session. */
  const apiAs = async (user: string): Promise<Call> => {
    const login = await http(adminPort, 'POST', '/api/v1/login', { body: { username: user, password: PASSWORDS[user] } });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const tok = await http(adminPort, 'POST', '/api/v1/tokens', { headers: { cookie, 'x-csrf-token': login.body.csrfToken }, body: { name: `e2e-${user}` } });
    assert.equal(tok.status, 201, JSON.stringify(tok.body));
    const auth = { authorization: `Bearer ${tok.body.token}` };
    const raw = (method: string, path: string, body?: unknown) => http(adminPort, method, `/api/v1${path}`, { headers: auth, body });
    return Object.assign(
      async (method: string, path: string, body?: unknown) => {
        const r = await raw(method, path, body);
        assert.ok(r.status < 300, `${method} ${path} as ${user}: ${r.status} ${JSON.stringify(r.body)}`);
        return r.body;
      },
      { raw },
    );
  };
  const call = await apiAs('admin');

  const shots = screenshotDir();
  const { browser, close } = await launchBrowser();
  t.after(close);
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, baseURL: `http://127.0.0.1:${adminPort}`, colorScheme: 'light' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];
  page.on('console', (m) => {
    if (/Content[- ]Security[- ]Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`) });

  // A form field by its label as shown (a required field's label ends in " *").
  const field = (label: string) => page.getByLabel(new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( \\*)?$`)).first();
  const pick = async (label: string, option: string | RegExp) => {
    await field(label).first().click();
    await page.getByRole('option', { name: option }).first().click();
  };
  const logIn = async (user: string) => {
    await page.goto('/login');
    await field('User name').fill(user);
    await field('Password').fill(PASSWORDS[user]!);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByTestId('user-menu').waitFor();
  };
  const logOut = async () => {
    await page.getByTestId('user-menu').click();
    await page.getByRole('menuitem', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
  };
  /** The dialog open now (a closing one may linger in the page for its animation). */
  const dialog = () => page.getByRole('dialog').last();
  const assertClean = () => {
    assert.deepEqual(cspViolations, [], 'no Content-Security-Policy violation');
    assert.deepEqual(pageErrors, [], 'no uncaught error in the page');
  };
  /** On the gray release screen: start version `version` of `route` on this instance, in the skip-review lane. */
  const startGray = async (route: string, version: RegExp) => {
    await page.goto('/t/shop/gray');
    await pick('Route', route);
    await pick('Version', version);
    await pick('Instances', new RegExp(`^${instanceId}`));
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Start…' }).click();
    await field('Skip review (emergency lane)').check();
    await dialog().getByRole('button', { name: 'Start gray release', exact: true }).click();
  };
  return { up, adminPort, gw, proxy, apiAs, call, page, shot, field, pick, logIn, logOut, dialog, assertClean, startGray };
}

/** Tenant shop (review required, admins may skip it) and users with a role in it. */
async function shopWithMembers(call: Call, members: Array<[string, 'admin' | 'editor' | 'reviewer' | 'viewer']>) {
  await call('POST', '/tenants', { id: 'shop', name: 'Shop', reviewRequired: true, skipReviewRoles: ['admin'] });
  for (const [user, role] of members) {
    await call('POST', '/users', { username: user, password: PASSWORDS[user] });
    await call('PUT', `/tenants/shop/members/${user}`, { role });
  }
}

test('dashboard end to end in Chromium: forms, review, publish, rollback, gray release, roles, text only', { timeout: 300_000 }, async (t) => {
  const skip = await browserSkip();
  if (skip) return t.skip(skip);

  const instanceId = 'gw-e2e-1';
  const { up, proxy, call, page, shot, field, pick, logIn, logOut, assertClean, startGray } = await openDashboard(t, instanceId);
  // Set-up through the API as a script would: tenants, users and their roles.
  await shopWithMembers(call, [
    ['erin', 'editor'],
    ['rita', 'reviewer'],
    ['vic', 'viewer'],
  ]);
  await call('POST', '/tenants', { id: 'hidden', name: 'Hidden' });

  // ---- an editor logs in; a wrong password first
  await page.goto('/');
  await page.waitForURL(/\/login/);
  await field('User name').fill('erin');
  await field('Password').fill('not-her-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('login-error').waitFor();
  await shot('01-login');
  await logIn('erin');
  await page.waitForURL(/\/t\/shop\/overview/);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await shot('02-overview');
  // The tenant switcher offers only the tenants she belongs to.
  await page.getByTestId('tenant-switcher').click();
  const options = await page.getByRole('option').count();
  assert.equal(options, 1);
  assert.equal(await page.getByRole('option', { name: /hidden/i }).count(), 0);
  await page.keyboard.press('Escape');

  // ---- an upstream through the generated form
  await page.goto('/t/shop/upstreams/new');
  await field('Id').fill('demo');
  await page.getByRole('button', { name: 'Add node' }).click();
  await field('Host').fill('127.0.0.1');
  await field('Port').fill(String(node(up.port).port));
  await page.getByRole('button', { name: 'Create draft' }).click();
  await page.waitForURL(/\/t\/shop\/upstreams\/demo$/);

  // ---- a consumer with a key-auth credential (the credential form comes from the plugin's schema)
  await page.goto('/t/shop/consumers/new');
  await field('User name').fill('alice');
  await pick('Credential to add', /^key-auth/);
  await page.locator('[data-path="credentials"]').getByRole('button', { name: 'Add', exact: true }).click();
  await field('Key').fill('alice-secret-key');
  await page.getByRole('button', { name: 'Create draft' }).click();
  await page.waitForURL(/\/t\/shop\/consumers\/alice$/);

  // ---- a route with key-auth; a bad path first: the API's field error shows at the field
  await page.goto('/t/shop/routes/new');
  await field('Id').fill('users');
  await field('Name').fill(XSS_NAME);
  const paths = field('Paths');
  await paths.fill('users/*');
  await paths.press('Enter');
  await field('Upstream id').fill('demo');
  await pick('Plugin to add', /^key-auth/);
  await page.locator('[data-path="plugins"]').getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('[data-plugin="key-auth"]').waitFor();
  await page.getByRole('button', { name: 'Create draft' }).click();
  await page.getByText(/must match pattern/).first().waitFor();
  assert.match(await page.getByTestId('error-alert').innerText(), /paths\[0\]/);
  await shot('03-route-form-field-error');
  // Backspace in the empty input removes the last value.
  await paths.click();
  await paths.press('Backspace');
  await paths.fill('/users/*');
  await paths.press('Enter');
  await page.getByRole('button', { name: 'Create draft' }).click();
  await page.waitForURL(/\/t\/shop\/routes\/users$/);

  // Markup in a name is text: shown as written, never run or parsed.
  assert.equal(await page.getByTestId('entity-title').innerText(), XSS_NAME);
  assert.equal(await page.evaluate(() => (globalThis as unknown as { __ghXss?: number }).__ghXss), undefined);
  assert.equal(await page.locator('img[src="x"]').count(), 0);
  assert.equal(await page.locator('script:not([src])').count(), 0);

  await page.goto('/t/shop/routes');
  await page.getByTestId('entity-table').waitFor();
  assert.ok((await page.getByTestId('entity-table').innerText()).includes('<script>'));
  await shot('04-routes-list');
  assert.equal((await proxy('/users/1', { apikey: 'alice-secret-key' })).status, 404, 'drafts are not served');

  // ---- submit the three drafts as one change
  await page.goto('/t/shop/changes?tab=drafts');
  await page.getByTestId('drafts-table').waitFor();
  await page.getByRole('checkbox', { name: 'Pick all' }).check();
  await page.getByRole('button', { name: /Submit 3 for review/ }).click();
  await field('Title').fill('Users API behind key-auth');
  await page.getByRole('dialog').getByRole('button', { name: 'Submit', exact: true }).click();
  await page.waitForURL(/\/t\/shop\/changes\/\d+$/);
  const changeUrl = page.url();
  // The author cannot approve her own change.
  assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0);
  await logOut();

  // ---- a reviewer approves it from the queue
  await logIn('rita');
  await page.goto('/t/shop/changes');
  await page.getByTestId('changes-table').getByRole('link', { name: /Users API behind key-auth/ }).click();
  await page.getByTestId('change-item').first().waitFor();
  assert.equal(await page.getByTestId('change-item').count(), 3);
  await shot('05-change-review-diff');
  // A reviewer writes no drafts: no edit controls in the entity screens.
  assert.equal(await page.getByRole('button', { name: 'Withdraw' }).count(), 0);
  await page.getByRole('button', { name: 'Approve' }).click();
  await field('Comment').fill('Looks good.');
  await page.getByRole('dialog').getByRole('button', { name: 'Approve and publish' }).click();
  await page.getByText('approved', { exact: true }).first().waitFor();
  assert.equal(page.url(), changeUrl);

  // ---- the gateway serves the route
  await waitUntil('the route served', 5000, async () => ((await proxy('/users/1')).status === 401 ? true : undefined), 50);
  assert.equal((await proxy('/users/1', { apikey: 'alice-secret-key' })).status, 200);
  await logOut();

  // ---- an admin edits the route, publishes it by the skip-review lane, then rolls it back
  await logIn('admin');
  await page.goto('/t/shop/routes/users/edit');
  await pick('Methods', 'POST');
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Save draft' }).click();
  await page.waitForURL(/\/t\/shop\/routes\/users$/);
  await page.getByTestId('diff').waitFor();
  await page.getByRole('button', { name: 'Publish…' }).click();
  await field('Skip review (emergency lane)').check();
  await field('Note').fill('POST only');
  await page.getByRole('dialog').getByRole('button', { name: 'Publish', exact: true }).click();
  await waitUntil('version 2 served', 5000, async () => ((await proxy('/users/1', { apikey: 'alice-secret-key' })).status === 404 ? true : undefined), 50);

  await page.goto('/t/shop/routes/users?tab=history');
  await page.getByTestId('versions-table').waitFor();
  await page.getByText('Version 1 → version 2').waitFor();
  await shot('06-route-history-diff');
  await page.getByTestId('versions-table').getByRole('button', { name: 'Roll back' }).click();
  await field('Skip review (emergency lane)').check();
  await page.getByRole('dialog').getByRole('button', { name: 'Roll back', exact: true }).click();
  await waitUntil('version 1 served again', 5000, async () => ((await proxy('/users/1', { apikey: 'alice-secret-key' })).status === 200 ? true : undefined), 50);
  await page.getByText('rollback to version 1').first().waitFor();

  // ---- gray release of version 2 (POST only) to this gateway instance, then stop it
  await startGray('users', /^Version 2/);
  await page.getByTestId('gray-card').waitFor();
  await waitUntil('the gray version served', 5000, async () => ((await proxy('/users/1', { apikey: 'alice-secret-key' })).status === 404 ? true : undefined), 50);
  await page.getByTestId('gray-card').getByText('serving').waitFor({ timeout: 10_000 });
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await shot('07-gray-release');
  await page.getByRole('button', { name: 'Stop' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Stop' }).click();
  await waitUntil('the live version served again', 5000, async () => ((await proxy('/users/1', { apikey: 'alice-secret-key' })).status === 200 ? true : undefined), 50);
  await page.getByText('No gray release is running').waitFor();

  // ---- the overview charts the route's traffic from the gateway's counters
  let loading = true;
  const load = (async () => {
    const until = Date.now() + 60_000;
    while (loading && Date.now() < until) {
      await proxy('/users/1', { apikey: 'alice-secret-key' });
      await sleep(20);
    }
  })();
  await page.goto('/t/shop/overview');
  await page.getByTestId('traffic-table').getByText('users').waitFor({ timeout: 30_000 });
  await page.locator('.recharts-line').first().waitFor({ timeout: 15_000 });
  assert.match(await page.getByTestId('traffic-table').innerText(), /users\s+\d+\.\d\d\s+0\.0%/);
  await sleep(5500);
  await shot('02-overview-traffic');
  loading = false;
  await load;

  await page.goto('/instances');
  await page.getByTestId('instances-table').getByText(instanceId).waitFor();
  await page.getByTestId('instances-table').getByText(/^metrics read at http:\/\/127\.0\.0\.1:\d+$/).waitFor();
  await shot('08-instances');
  await page.goto('/t/shop/upstreams/demo?tab=nodes');
  await page.getByTestId('nodes-table').getByText(`127.0.0.1:${up.port}`).waitFor();
  await page.goto('/t/shop/audit');
  await page.getByTestId('audit-table').waitFor();
  assert.ok((await page.getByTestId('audit-table').innerText()).includes('routes.rollback'));
  await shot('09-audit');
  await logOut();

  // ---- a viewer sees no edit controls
  await logIn('vic');
  await page.goto('/t/shop/routes');
  await page.getByTestId('entity-table').waitFor();
  assert.equal(await page.getByRole('link', { name: 'New route' }).count(), 0);
  await page.goto('/t/shop/routes/users');
  await page.getByTestId('entity-title').waitFor();
  for (const name of ['Edit', 'Delete', 'Publish', 'Publish…']) assert.equal(await page.getByRole('button', { name, exact: true }).count() + (await page.getByRole('link', { name, exact: true }).count()), 0, name);
  await page.goto('/t/shop/routes/users?tab=history');
  await page.getByTestId('versions-table').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Roll back' }).count(), 0);
  await shot('10-viewer-route');
  await page.goto('/t/shop/gray');
  await page.getByText('Active').first().waitFor();
  assert.equal(await page.getByRole('button', { name: 'Start…' }).count(), 0);

  assertClean();
});

test('dashboard in Chromium: reject with a comment, withdraw, rebase a stale change and approve it, promote a gray release', { timeout: 180_000 }, async (t) => {
  const skip = await browserSkip();
  if (skip) return t.skip(skip);

  const instanceId = 'gw-e2e-2';
  const { up, proxy, apiAs, call, page, shot, field, pick, logIn, logOut, dialog, assertClean, startGray } = await openDashboard(t, instanceId);
  await shopWithMembers(call, [
    ['erin', 'editor'],
    ['rita', 'reviewer'],
  ]);
  // Live: route users (version 1) to an upstream, by the admin's skip-review lane.
  await call('POST', '/tenants/shop/upstreams', { id: 'demo', nodes: [node(up.port)] });
  await call('POST', '/tenants/shop/routes', { id: 'users', paths: ['/users/*'], upstreamId: 'demo' });
  await call('POST', '/tenants/shop/upstreams/demo/publish', { skipReview: true });
  await call('POST', '/tenants/shop/routes/users/publish', { skipReview: true });
  await waitUntil('version 1 served', 5000, async () => ((await proxy('/users/1')).status === 200 ? true : undefined), 50);

  // The editor's changes, submitted through the API as a script of hers would.
  const erin = await apiAs('erin');
  const submit = async (title: string, kind: string, id: string, content: Record<string, unknown>): Promise<number> => {
    await erin('PUT', `/tenants/shop/${kind}/${id}`, content);
    return (await erin('POST', '/tenants/shop/changes', { title, items: [{ kind, id }] })).id;
  };
  const people = await submit('Serve /people too', 'routes', 'users', { id: 'users', paths: ['/users/*', '/people/*'], upstreamId: 'demo' });
  // Meanwhile version 2 of the route goes live another way (the admin's emergency lane): that change is stale.
  await call('PUT', '/tenants/shop/routes/users', { id: 'users', paths: ['/users/*'], methods: ['GET'], upstreamId: 'demo' });
  await call('POST', '/tenants/shop/routes/users/publish', { skipReview: true, note: 'GET only' });
  const bob = await submit('Consumer bob', 'consumers', 'bob', { username: 'bob' });
  const spare = await submit('A spare upstream', 'upstreams', 'spare', { id: 'spare', nodes: [node(up.port)] });
  const change = (id: number) => call('GET', `/tenants/shop/changes/${id}`);
  assert.equal((await proxy('/people/1')).status, 404, 'nothing of an open change is served');

  // ---- a reviewer rejects a change: the comment is required
  const reason = 'Consumers are made by the platform team: ask in #gateway.';
  await logIn('rita');
  await page.goto(`/t/shop/changes/${bob}`);
  await page.getByTestId('change-item').waitFor();
  await page.getByRole('button', { name: 'Reject' }).click();
  const confirmReject = dialog().getByRole('button', { name: 'Reject', exact: true });
  assert.equal(await confirmReject.isDisabled(), true, 'no rejection without a comment');
  await field('Comment').fill(reason);
  assert.equal(await confirmReject.isDisabled(), false);
  await confirmReject.click();
  await page.getByTestId('change-comment').waitFor();
  await page.getByText('rejected', { exact: true }).first().waitFor();
  const rejected = await change(bob);
  assert.deepEqual([rejected.status, rejected.comment, rejected.decidedBy], ['rejected', reason, 'rita']);
  assert.equal((await call('GET', '/tenants/shop/consumers/bob')).live, null, 'nothing went live');

  // ---- the stale change: the reviewer cannot approve it, and is told the author can rebase it
  await page.goto(`/t/shop/changes/${people}`);
  await page.getByTestId('change-stale').waitFor();
  assert.match(await page.getByTestId('change-stale').innerText(), /Its author can rebase it/);
  assert.match(await page.getByTestId('change-item').innerText(), /live is now version 2/i, 'the badge says what is live now');
  assert.equal(await page.getByRole('button', { name: 'Approve' }).isDisabled(), true);
  assert.equal(await page.getByRole('button', { name: /^Rebase/ }).count(), 0);
  await shot('11-change-stale-reviewer');
  await logOut();

  // ---- the author sees the rejection and its comment, withdraws a change and rebases the stale one
  await logIn('erin');
  await page.goto('/t/shop/changes?tab=mine');
  await page.getByTestId('changes-table').waitFor();
  await page.getByText('Rejected', { exact: true }).click();
  await page.getByTestId('changes-table').getByRole('link', { name: /Consumer bob/ }).click();
  await page.getByTestId('change-comment').waitFor();
  const shownComment = await page.getByTestId('change-comment').innerText();
  assert.match(shownComment, /Comment by rita/);
  assert.ok(shownComment.includes(reason), shownComment);
  await page.getByText('rejected', { exact: true }).first().waitFor();
  assert.equal(await page.getByRole('button', { name: 'Withdraw' }).count(), 0, 'a closed change has no actions');
  await shot('12-change-rejected-author');

  await page.goto(`/t/shop/changes/${spare}`);
  await page.getByTestId('change-item').waitFor();
  await page.getByRole('button', { name: 'Withdraw' }).click();
  await dialog().getByRole('button', { name: 'Withdraw', exact: true }).click();
  await page.getByText('withdrawn', { exact: true }).first().waitFor();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  assert.equal(await page.getByRole('button', { name: 'Withdraw' }).count(), 0);
  assert.equal((await change(spare)).status, 'withdrawn');
  assert.equal((await call('GET', '/tenants/shop/upstreams/spare')).pending, true, 'the draft stays');

  await page.goto(`/t/shop/changes/${people}`);
  await page.getByTestId('change-stale').waitFor();
  await shot('13-change-stale-author');
  await page.getByRole('button', { name: 'Rebase on the current live versions' }).click();
  await page.getByTestId('change-stale').waitFor({ state: 'detached' });
  await page.getByText('Update (based on version 2)').waitFor();
  const rebased = await change(people);
  assert.equal(rebased.status, 'open');
  assert.equal(rebased.items[0].baseVersion, 2);
  assert.deepEqual(rebased.items[0].content.paths, ['/users/*', '/people/*'], 'its content is kept');
  await logOut();

  // ---- the reviewer approves the rebased change: it goes live
  await logIn('rita');
  await page.goto(`/t/shop/changes/${people}`);
  await page.getByTestId('change-item').waitFor();
  assert.equal(await page.getByTestId('change-stale').count(), 0);
  await page.getByRole('button', { name: 'Approve' }).click();
  await dialog().getByRole('button', { name: 'Approve and publish' }).click();
  await page.getByText('approved', { exact: true }).first().waitFor();
  await waitUntil('the rebased change served', 5000, async () => ((await proxy('/people/1')).status === 200 ? true : undefined), 50);
  assert.equal((await call('GET', '/tenants/shop/routes/users')).liveVersion, 3);
  await logOut();

  // ---- an admin tries version 2 (GET only, no /people) on this instance, then promotes it
  await logIn('admin');
  await startGray('users', /^Version 2/);
  await page.getByTestId('gray-card').getByText('serving').waitFor({ timeout: 10_000 });
  await waitUntil('the gray version served', 5000, async () => ((await proxy('/people/1')).status === 404 ? true : undefined), 50);
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await page.getByTestId('gray-card').getByRole('button', { name: 'Promote' }).click();
  assert.match(await dialog().innerText(), /Promote the gray version of route users[\s\S]*becomes the live version on every instance/);
  await field('Skip review (emergency lane)').check();
  await dialog().getByRole('button', { name: 'Promote', exact: true }).click();
  await page.getByText('No gray release is running').waitFor();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await shot('14-gray-promoted');
  const promoted = await call('GET', '/tenants/shop/routes/users');
  assert.equal(promoted.liveVersion, 4);
  assert.deepEqual([promoted.live.paths, promoted.live.methods], [['/users/*'], ['GET']], 'version 2 is live');
  // No instance keeps a gray override: every one serves the promoted version as its live version.
  await waitUntil('no gray version left on the instance', 15_000, async () => {
    const items: Array<{ id: string; gray?: unknown[] }> = (await call('GET', '/instances')).items;
    const mine = items.find((i) => i.id === instanceId);
    return mine && !(mine.gray ?? []).length ? true : undefined;
  }, 200);
  assert.equal((await proxy('/users/1')).status, 200);
  assert.equal((await proxy('/users/1', {}, 'POST')).status, 404, 'GET only');
  assert.equal((await proxy('/people/1')).status, 404);

  assertClean();
});

test('dashboard in Chromium: a superadmin makes a tenant, a user and a membership; an API token is shown once, works and is revoked', { timeout: 120_000 }, async (t) => {
  const skip = await browserSkip();
  if (skip) return t.skip(skip);

  const { adminPort, call, page, shot, field, pick, logIn, logOut, dialog, assertClean } = await openDashboard(t, 'gw-e2e-3');
  await logIn('admin');

  // ---- a tenant; a bad id first: the API's answer is shown and nothing is made
  await page.goto('/tenants');
  await page.getByRole('button', { name: 'New tenant' }).click();
  await field('Id').fill('Pay Ments');
  await field('Name').fill('Payments');
  await dialog().getByRole('button', { name: 'Create' }).click();
  await dialog().getByTestId('error-alert').waitFor();
  await field('Id').fill('pay');
  await dialog().getByRole('button', { name: 'Create' }).click();
  await page.getByTestId('tenants-table').getByText('Payments').waitFor();
  const pay = await call('GET', '/tenants/pay');
  assert.deepEqual([pay.name, pay.reviewRequired], ['Payments', true]);
  assert.equal((await call('GET', '/tenants')).items.length, 1);

  // ---- a user; a short password is refused
  await page.goto('/users');
  await page.getByRole('button', { name: 'New user' }).click();
  await field('User name').fill('nora');
  await field('Password').fill('too-short');
  await dialog().getByRole('button', { name: 'Create' }).click();
  await dialog().getByTestId('error-alert').waitFor();
  await field('Password').fill(PASSWORDS.nora!);
  await dialog().getByRole('button', { name: 'Create' }).click();
  await page.getByTestId('users-table').getByText('nora', { exact: true }).waitFor();
  assert.ok((await call('GET', '/users')).items.some((u: { username: string; superadmin: boolean }) => u.username === 'nora' && !u.superadmin));

  // ---- she becomes an editor of the tenant (added as a viewer first by mistake, and removed)
  const addMember = async (role: string) => {
    await field('User').fill('nora');
    await page.getByRole('option', { name: 'nora', exact: true }).click();
    await pick('Role', new RegExp(`^${role}`));
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByTestId('members-table').getByText('nora', { exact: true }).waitFor();
  };
  await page.goto('/t/pay/members');
  await addMember('viewer');
  await page.getByRole('button', { name: 'Remove nora' }).click();
  await dialog().getByRole('button', { name: 'Remove', exact: true }).click();
  await page.getByTestId('members-table').getByText('nora', { exact: true }).waitFor({ state: 'detached' });
  assert.equal((await call.raw('GET', '/tenants/pay/members/nora')).status, 404);
  await addMember('editor');
  assert.equal(await page.getByRole('combobox', { name: 'Role of nora' }).inputValue(), 'editor');
  assert.equal((await call('GET', '/tenants/pay/members/nora')).role, 'editor');
  await shot('15-members');
  await logOut();

  // ---- she logs in and finds the tenant, and no administration screens
  await logIn('nora');
  await page.waitForURL(/\/t\/pay\/overview/);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await page.getByTestId('tenant-switcher').click();
  assert.equal(await page.getByRole('option').count(), 1);
  assert.equal(await page.getByRole('option').first().innerText(), 'Payments (pay)');
  await page.keyboard.press('Escape');
  assert.equal(await page.getByRole('link', { name: 'Users', exact: true }).count(), 0);
  assert.equal(await page.getByRole('link', { name: 'Tenants', exact: true }).count(), 0);

  // ---- an API token: shown once, works with the API, revoked
  await page.getByTestId('user-menu').click();
  await page.getByRole('menuitem', { name: 'API tokens' }).click();
  await page.waitForURL(/\/tokens$/);
  await page.getByText('No tokens').waitFor();
  await page.getByRole('button', { name: 'New token' }).click();
  await field('Name').fill('ci-deploy');
  await dialog().getByRole('button', { name: 'Create' }).click();
  await dialog().getByTestId('new-token').waitFor();
  const secret = (await dialog().getByTestId('new-token').innerText()).trim();
  assert.ok(secret.length >= 32, 'a long random token');
  assert.match(await dialog().innerText(), /only time the token is shown/);
  await shot('16-token-shown-once');
  await dialog().getByRole('button', { name: 'Done' }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await page.getByTestId('tokens-table').getByText('ci-deploy').waitFor();
  assert.ok(!(await page.locator('body').innerText()).includes(secret), 'the token is not shown again');
  await page.getByRole('button', { name: 'New token' }).click();
  await dialog().getByRole('button', { name: 'Cancel' }).waitFor();
  assert.equal(await dialog().getByTestId('new-token').count(), 0, 'a new dialog asks for a new token');
  await dialog().getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });

  const bearer = { authorization: `Bearer ${secret}` };
  const me = await http(adminPort, 'GET', '/api/v1/me', { headers: bearer });
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.equal(me.body.user.username, 'nora');
  assert.deepEqual(
    me.body.memberships.map((m: { tenant: string; role: string }) => [m.tenant, m.role]),
    [['pay', 'editor']],
  );
  assert.equal((await http(adminPort, 'GET', '/api/v1/tenants/pay/routes', { headers: bearer })).status, 200);
  assert.equal((await http(adminPort, 'GET', '/api/v1/users', { headers: bearer })).status, 403, 'her rights, no more');

  await page.getByRole('button', { name: 'Revoke ci-deploy' }).click();
  await dialog().getByRole('button', { name: 'Revoke', exact: true }).click();
  await page.getByText('No tokens').waitFor();
  const revoked = await http(adminPort, 'GET', '/api/v1/me', { headers: bearer });
  assert.equal(revoked.status, 401, JSON.stringify(revoked.body));
  assert.equal((await call('GET', '/tenants/pay/members/nora')).role, 'editor', 'her membership is unaffected');

  assertClean();
});
