/**
 * @module plugins/api-breaker/index.test
 * api-breaker: schema and checks with field paths, then real traffic through an in-process gateway to real
 * upstream nodes, with the breakers' clock replaced so open, half-open and closed are walked through without
 * sleeping: a failing node opened and kept out while the healthy one serves; every node open answered with
 * 503 GH_ERR_CIRCUIT_OPEN or the fallback; half-open probes one at a time; closing after successes; reopening
 * on a failed probe for longer; the error-ratio window; what counts as a failure; breakers per route; state kept
 * across reloads; the status and reset actions. The instance is also driven directly for upgrades and lost probes.
 */
import { describe, it, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import apiBreaker, { setClock } from './index.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import type { PluginContext, PluginInstance, PluginResponse } from '../../dataplane/plugins/types.js';
import type { NodeState } from '../../dataplane/upstream/types.js';
import type { InProcessGateway } from '../../process/in-process.js';
import { harness } from '../../../test/helpers/harness.js';
import { closedPort, node, type TestUpstream } from '../../../test/helpers/upstream.js';
import { json, send } from '../../../test/helpers/http.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const { upstream, gateway } = harness();
const P = 'routes[0].plugins.api-breaker';

/** The breakers' clock, moved by hand. Starts on a whole second so error-ratio buckets line up. */
let now = 1_000_000;
setClock(() => now);
after(() => setClock(null));

function validate(plugin: unknown) {
  return validateDeclarative(
    { upstreams: [{ id: 'u', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'api-breaker': plugin } }] },
    builtinRegistry(),
  );
}

function problemsOf(plugin: unknown): string[] {
  const r = validate(plugin);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** Poll `cond` every 10 ms for at most `ms` (the log phase runs just after each response). */
async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Report {
  scope: string;
  route: string;
  upstream: string;
  node: string;
  state: string;
  consecutiveFailures: number;
  openings: number;
  retryInMs: number;
  probesInFlight: number;
  successes: number;
  windowRequests: number;
  windowFailures: number;
}

async function control(gw: InProcessGateway, action: string, args: Record<string, unknown> = {}) {
  const r = await send(gw.status!, `/plugins/api-breaker/${action}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(args) });
  return { status: r.status, body: json<{ workers: Array<Record<string, unknown>> }>(r) };
}

/** Every breaker of the (single) worker, closed ones included. */
async function breakers(gw: InProcessGateway, args: Record<string, unknown> = {}): Promise<Report[]> {
  const r = await control(gw, 'status', { all: true, ...args });
  assert.equal(r.status, 200);
  return r.body.workers[0]!.breakers as Report[];
}

async function breakerOf(gw: InProcessGateway, port: number, route?: string): Promise<Report | undefined> {
  return (await breakers(gw, route !== undefined ? { route } : {})).find((b) => b.node === `127.0.0.1:${port}`);
}

/** Wait until the breaker of `port` satisfies `pred`. */
async function waitFor(gw: InProcessGateway, port: number, pred: (b: Report) => boolean, route?: string): Promise<Report> {
  let last: Report | undefined;
  await until(async () => {
    last = await breakerOf(gw, port, route);
    return last !== undefined && pred(last);
  });
  return last!;
}

/**
 * A node whose answer the test picks per request: the `x-status` request header (default 200), or held until
 * released when the test sets `hold`.
 */
async function controlledNode(): Promise<{ up: TestUpstream; held: ServerResponse[]; mode: { hold: boolean } }> {
  const held: ServerResponse[] = [];
  const mode = { hold: false };
  const up = await upstream((req: IncomingMessage, res: ServerResponse) => {
    if (mode.hold) {
      held.push(res);
      return;
    }
    const status = Number(req.headers['x-status'] ?? 200);
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`node ${status}`);
  });
  return { up, held, mode };
}

function failingNode(status = 500): Promise<TestUpstream> {
  return upstream((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end('failing');
  });
}

const oneRoute = (ports: number[], plugin: Record<string, unknown>, upstreamExtra: Record<string, unknown> = {}) => ({
  upstreams: [{ id: 'u', nodes: ports.map((p) => node(p)), ...upstreamExtra }],
  routes: [{ id: 'r', paths: ['/*'], upstreamId: 'u', plugins: { 'api-breaker': plugin } }],
});

const withStatus = (status: number) => ({ headers: { 'x-status': String(status) } });

beforeEach(() => {
  now = 1_000_000;
});

describe('api-breaker config', () => {
  it('fills defaults', () => {
    const r = validate({});
    assert.ok(r.ok);
    const conf = (r.value.routes[0] as { plugins: Record<string, unknown> }).plugins['api-breaker'];
    assert.deepEqual(conf, { failureStatuses: [500, 502, 503, 504], consecutiveFailures: 5, openDuration: 30000, halfOpenProbes: 1, successesToClose: 3 });
    const withRatio = validate({ consecutiveFailures: 0, errorRatio: { threshold: 0.5 }, fallback: { status: 200 } });
    assert.ok(withRatio.ok);
    const c2 = (withRatio.value.routes[0] as { plugins: Record<string, Record<string, unknown>> }).plugins['api-breaker']!;
    assert.deepEqual(c2.errorRatio, { threshold: 0.5, minRequests: 20, window: 10000 });
    assert.deepEqual(c2.fallback, { status: 200, headers: {} });
  });

  it('accepts a full config', () => {
    assert.deepEqual(
      problemsOf({
        failureStatuses: [429, 500, 503],
        consecutiveFailures: 3,
        errorRatio: { threshold: 1, minRequests: 5, window: 60000 },
        openDuration: 1000,
        maxOpenDuration: 60000,
        halfOpenProbes: 2,
        successesToClose: 2,
        fallback: { status: 200, headers: { 'Content-Type': 'application/json', 'X-Degraded': '1' }, body: '{"items":[]}' },
      }),
      [],
    );
  });

  it('refuses configs with the failing field paths', () => {
    assert.deepEqual(problemsOf({ consecutiveFailures: 0 }), [`${P}.consecutiveFailures: is 0 and there is no errorRatio: nothing would ever open the breaker`]);
    assert.deepEqual(problemsOf({ openDuration: 5000, maxOpenDuration: 1000 }), [`${P}.maxOpenDuration: must not be shorter than openDuration`]);
    assert.deepEqual(problemsOf({ fallback: { status: 200, headers: { 'Content-Length': '3' } } }), [`${P}.fallback.headers.Content-Length: is set by the gateway and cannot be configured`]);
    assert.deepEqual(problemsOf({ fallback: { status: 204, body: 'x' } }), [`${P}.fallback.body: cannot be sent with status 204, which has no body`]);
    const startsWith = (plugin: unknown, path: string) => {
      const problems = problemsOf(plugin);
      assert.ok(problems.length > 0 && problems.every((p) => p.startsWith(path)), `${JSON.stringify(plugin)} -> ${JSON.stringify(problems)}`);
    };
    startsWith({ errorRatio: { threshold: 1.5 } }, `${P}.errorRatio.threshold`);
    startsWith({ errorRatio: { threshold: 0 } }, `${P}.errorRatio.threshold`);
    startsWith({ errorRatio: {} }, `${P}.errorRatio.threshold`);
    startsWith({ errorRatio: { threshold: 0.5, window: 10 } }, `${P}.errorRatio.window`);
    startsWith({ fallback: { body: 'x' } }, `${P}.fallback.status`);
    startsWith({ fallback: { status: 700 } }, `${P}.fallback.status`);
    startsWith({ fallback: { status: 200, headers: { 'x-a': 'a\r\nb' } } }, `${P}.fallback.headers`);
    startsWith({ fallback: { status: 200, headers: { 'bad name': 'a' } } }, `${P}.fallback.headers`);
    startsWith({ failureStatuses: [200] }, `${P}.failureStatuses[0]`);
    startsWith({ failureStatuses: [500, 500] }, `${P}.failureStatuses`);
    startsWith({ halfOpenProbes: 0 }, `${P}.halfOpenProbes`);
    startsWith({ successesToClose: 0 }, `${P}.successesToClose`);
    startsWith({ openDuration: 10 }, `${P}.openDuration`);
    startsWith({ consecutiveFailures: -1 }, `${P}.consecutiveFailures`);
    startsWith({ extra: 1 }, `${P}.extra`);
  });

  it('cannot be put on a consumer', () => {
    const r = validateDeclarative({ consumers: [{ username: 'c', plugins: { 'api-breaker': {} } }] }, builtinRegistry());
    assert.ok(!r.ok && r.problems.some((p) => p.path === 'consumers[0].plugins.api-breaker' && /cannot be configured on a consumer/.test(p.message)));
  });

  it('the example in docs/plugins/api-breaker.md is valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/api-breaker.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const r = validateDeclarative(parse(yaml), builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    const conf = (r.value.routes[0] as { plugins: Record<string, Record<string, unknown>> }).plugins['api-breaker']!;
    assert.equal(conf.consecutiveFailures, 5);
    assert.deepEqual(conf.errorRatio, { threshold: 0.5, minRequests: 20, window: 10000 });
    assert.equal((conf.fallback as { status: number }).status, 200);
  });
});

describe('api-breaker opening', () => {
  it('opens a failing node after consecutive failures; the healthy node then takes all the traffic', async () => {
    const bad = await failingNode(500);
    const good = await upstream();
    const gw = await gateway(oneRoute([bad.port, good.port], { consecutiveFailures: 3 }), {}, { statusServer: true });
    // Round robin alternates: the failing node sees every other request until it opens.
    let failures = 0;
    while (bad.seen.length < 3) {
      const r = await send(gw.http, '/x');
      if (r.status === 500) failures++;
      else assert.equal(r.status, 200);
    }
    assert.equal(failures, 3);
    const b = await waitFor(gw, bad.port, (x) => x.state === 'open');
    assert.deepEqual(
      { route: b.route, upstream: b.upstream, scope: b.scope, openings: b.openings, retryInMs: b.retryInMs },
      { route: 'r', upstream: 'upstream:u', scope: 'route:r', openings: 1, retryInMs: 30000 },
    );
    assert.equal((await breakerOf(gw, good.port))!.state, 'closed');
    const goodBefore = good.seen.length;
    for (let i = 0; i < 8; i++) assert.equal((await send(gw.http, '/x')).status, 200);
    assert.equal(bad.seen.length, 3, 'the open node got no request');
    assert.equal(good.seen.length, goodBefore + 8);
    // The default status action lists only breakers that are not closed.
    const listed = (await control(gw, 'status')).body.workers[0]!.breakers as Report[];
    assert.deepEqual(listed.map((x) => x.node), [`127.0.0.1:${bad.port}`]);
  });

  it('a success between failures starts the count again', async () => {
    const { up } = await controlledNode();
    const gw = await gateway(oneRoute([up.port], { consecutiveFailures: 2 }), {}, { statusServer: true });
    await send(gw.http, '/', withStatus(500));
    await waitFor(gw, up.port, (b) => b.consecutiveFailures === 1);
    await send(gw.http, '/', withStatus(200));
    await waitFor(gw, up.port, (b) => b.consecutiveFailures === 0);
    await send(gw.http, '/', withStatus(503));
    await waitFor(gw, up.port, (b) => b.consecutiveFailures === 1);
    assert.equal((await breakerOf(gw, up.port))!.state, 'closed');
    await send(gw.http, '/', withStatus(502));
    await waitFor(gw, up.port, (b) => b.state === 'open');
  });
});

describe('api-breaker with every node open', () => {
  it('answers 503 GH_ERR_CIRCUIT_OPEN with Retry-After, without contacting any node', async () => {
    const a = await failingNode(500);
    const b = await failingNode(500);
    const gw = await gateway(oneRoute([a.port, b.port], { consecutiveFailures: 2, openDuration: 20000 }), {}, { statusServer: true });
    for (let i = 0; i < 4; i++) assert.equal((await send(gw.http, '/')).status, 500);
    await waitFor(gw, a.port, (x) => x.state === 'open');
    await waitFor(gw, b.port, (x) => x.state === 'open');
    now += 5000;
    const r = await send(gw.http, '/');
    assert.equal(r.status, 503);
    assert.deepEqual(json(r), { error: { code: 'GH_ERR_CIRCUIT_OPEN', message: 'the upstream is failing and its circuit is open' } });
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['retry-after'], '15');
    assert.equal(a.seen.length + b.seen.length, 4);
  });

  it('answers the configured fallback instead', async () => {
    const a = await failingNode(502);
    const gw = await gateway(
      oneRoute([a.port], {
        consecutiveFailures: 1,
        fallback: { status: 200, headers: { 'Content-Type': 'application/json', 'X-Degraded': '1' }, body: '{"items":[],"degraded":true}' },
      }, { retries: 0 }),
      {},
      { statusServer: true },
    );
    assert.equal((await send(gw.http, '/')).status, 502);
    await waitFor(gw, a.port, (x) => x.state === 'open');
    const r = await send(gw.http, '/list');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-degraded'], '1');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body), { items: [], degraded: true });
    assert.equal(a.seen.length, 1);
  });

  it('a fallback body without a content-type goes out as text/plain', async () => {
    const a = await failingNode(500);
    const gw = await gateway(oneRoute([a.port], { consecutiveFailures: 1, fallback: { status: 503, body: 'try again later' } }), {}, { statusServer: true });
    await send(gw.http, '/');
    await waitFor(gw, a.port, (x) => x.state === 'open');
    const r = await send(gw.http, '/');
    assert.deepEqual([r.status, r.headers['content-type'], r.body], [503, 'text/plain; charset=utf-8', 'try again later']);
  });
});

describe('api-breaker half-open and closing', () => {
  it('lets one probe through after openDuration, keeps others off while it runs, closes after enough successes', async () => {
    const { up, held, mode } = await controlledNode();
    const gw = await gateway(oneRoute([up.port], { consecutiveFailures: 2, openDuration: 1000, successesToClose: 2 }), {}, { statusServer: true });
    await send(gw.http, '/', withStatus(500));
    await send(gw.http, '/', withStatus(500));
    await waitFor(gw, up.port, (b) => b.state === 'open');
    assert.equal((await send(gw.http, '/')).status, 503);
    now += 999;
    assert.equal((await send(gw.http, '/')).status, 503, 'still open before openDuration has passed');
    assert.equal(up.seen.length, 2);

    now += 1;
    mode.hold = true;
    const probe = send(gw.http, '/probe');
    await until(() => held.length === 1);
    const b = await waitFor(gw, up.port, (x) => x.state === 'half-open');
    assert.equal(b.probesInFlight, 1);
    const other = await send(gw.http, '/other');
    assert.equal(other.status, 503, 'a second request is kept off while the probe runs');
    assert.equal(other.headers['retry-after'], '1');
    assert.equal(up.seen.length, 3);
    mode.hold = false;
    held[0]!.writeHead(200, { 'content-type': 'text/plain' });
    held[0]!.end('probe ok');
    assert.equal((await probe).body, 'probe ok');
    await waitFor(gw, up.port, (x) => x.state === 'half-open' && x.successes === 1 && x.probesInFlight === 0);

    assert.equal((await send(gw.http, '/')).status, 200);
    await waitFor(gw, up.port, (x) => x.state === 'closed');
    // Closed: requests flow freely again, concurrently.
    const all = await Promise.all([send(gw.http, '/1'), send(gw.http, '/2'), send(gw.http, '/3')]);
    assert.deepEqual(all.map((r) => r.status), [200, 200, 200]);
  });

  it('reopens on a failed probe, for twice as long each time up to maxOpenDuration, and starts over once closed', async () => {
    const { up } = await controlledNode();
    const gw = await gateway(oneRoute([up.port], { consecutiveFailures: 1, openDuration: 1000, maxOpenDuration: 3000, successesToClose: 1 }), {}, { statusServer: true });
    await send(gw.http, '/', withStatus(500));
    let b = await waitFor(gw, up.port, (x) => x.state === 'open');
    assert.equal(b.retryInMs, 1000);

    now += 1000;
    assert.equal((await send(gw.http, '/', withStatus(500))).status, 500, 'the probe reaches the node');
    b = await waitFor(gw, up.port, (x) => x.openings === 2);
    assert.deepEqual([b.state, b.retryInMs], ['open', 2000]);
    now += 1000;
    assert.equal((await send(gw.http, '/', withStatus(500))).status, 503, 'the second opening lasts 2000 ms');
    assert.equal(up.seen.length, 2);
    now += 1000;
    assert.equal((await send(gw.http, '/', withStatus(500))).status, 500);
    b = await waitFor(gw, up.port, (x) => x.openings === 3);
    assert.equal(b.retryInMs, 3000, 'capped at maxOpenDuration');
    now += 3000;
    await send(gw.http, '/', withStatus(500));
    b = await waitFor(gw, up.port, (x) => x.openings === 4);
    assert.equal(b.retryInMs, 3000);

    now += 3000;
    assert.equal((await send(gw.http, '/')).status, 200);
    await waitFor(gw, up.port, (x) => x.state === 'closed');
    await send(gw.http, '/', withStatus(500));
    b = await waitFor(gw, up.port, (x) => x.openings === 5);
    assert.equal(b.retryInMs, 1000, 'a new opening after closing starts from openDuration');
  });

  it('without maxOpenDuration a failed probe reopens for openDuration again', async () => {
    const { up } = await controlledNode();
    const gw = await gateway(oneRoute([up.port], { consecutiveFailures: 1, openDuration: 1000 }), {}, { statusServer: true });
    await send(gw.http, '/', withStatus(500));
    await waitFor(gw, up.port, (x) => x.state === 'open');
    now += 1000;
    await send(gw.http, '/', withStatus(500));
    const b = await waitFor(gw, up.port, (x) => x.openings === 2);
    assert.equal(b.retryInMs, 1000);
  });

  it('probes the half-open node while the healthy node keeps serving', async () => {
    const { up: flaky } = await controlledNode();
    const good = await upstream();
    const gw = await gateway(oneRoute([flaky.port, good.port], { consecutiveFailures: 1, openDuration: 1000, successesToClose: 1 }), {}, { statusServer: true });
    while (flaky.seen.length < 1) await send(gw.http, '/', withStatus(500));
    await waitFor(gw, flaky.port, (x) => x.state === 'open');
    for (let i = 0; i < 4; i++) await send(gw.http, '/', withStatus(500));
    assert.equal(flaky.seen.length, 1);
    now += 1000;
    // Round robin reaches the half-open node within two requests; it now answers well and closes.
    while (flaky.seen.length < 2) assert.equal((await send(gw.http, '/')).status, 200);
    await waitFor(gw, flaky.port, (x) => x.state === 'closed');
  });
});

describe('api-breaker error ratio', () => {
  it('opens when the failed share over the window reaches the threshold, once minRequests is met', async () => {
    const { up } = await controlledNode();
    const gw = await gateway(
      oneRoute([up.port], { consecutiveFailures: 0, errorRatio: { threshold: 0.5, minRequests: 10, window: 10000 } }),
      {},
      { statusServer: true },
    );
    // Alternating answers: never two failures in a row, so only the ratio can open the node.
    for (let i = 0; i < 9; i++) await send(gw.http, '/', withStatus(i % 2 === 0 ? 500 : 200));
    let b = await waitFor(gw, up.port, (x) => x.windowRequests === 9);
    assert.deepEqual([b.state, b.windowFailures], ['closed', 5], 'a ratio above the threshold waits for minRequests');
    await send(gw.http, '/', withStatus(200));
    b = await waitFor(gw, up.port, (x) => x.windowRequests === 10);
    assert.deepEqual([b.state, b.windowFailures], ['closed', 5]);
    await send(gw.http, '/', withStatus(500));
    b = await waitFor(gw, up.port, (x) => x.state === 'open');
    assert.equal(b.consecutiveFailures, 0);
  });

  it('forgets requests older than the window, bucket by bucket', async () => {
    const { up } = await controlledNode();
    const gw = await gateway(
      oneRoute([up.port], { consecutiveFailures: 0, errorRatio: { threshold: 0.5, minRequests: 6, window: 10000 } }),
      {},
      { statusServer: true },
    );
    for (let i = 0; i < 5; i++) await send(gw.http, '/', withStatus(500));
    await waitFor(gw, up.port, (x) => x.windowRequests === 5);
    now += 5000;
    for (let i = 0; i < 4; i++) await send(gw.http, '/', withStatus(200));
    await waitFor(gw, up.port, (x) => x.windowRequests === 9 && x.windowFailures === 5);
    // The first bucket leaves the 10 s window; the second stays.
    now += 5000;
    let b = (await breakerOf(gw, up.port))!;
    assert.deepEqual([b.windowRequests, b.windowFailures], [4, 0]);
    await send(gw.http, '/', withStatus(500));
    await send(gw.http, '/', withStatus(500));
    b = await waitFor(gw, up.port, (x) => x.windowRequests === 6);
    // 2 failures in 6: below the threshold, though 7 of the 11 requests ever sent failed.
    assert.deepEqual([b.state, b.windowFailures], ['closed', 2]);
    await send(gw.http, '/', withStatus(500));
    b = await waitFor(gw, up.port, (x) => x.windowRequests === 7);
    assert.equal(b.state, 'closed');
    // 4 in 8: the threshold is reached.
    await send(gw.http, '/', withStatus(500));
    await waitFor(gw, up.port, (x) => x.state === 'open');
  });
});

describe('api-breaker outcomes', () => {
  it('counts connection failures (502) and upstream timeouts (504) as failures', async () => {
    const port = await closedPort();
    const gw = await gateway(oneRoute([port], { consecutiveFailures: 2 }), {}, { statusServer: true });
    const first = await send(gw.http, '/');
    assert.equal(json<{ error: { code: string } }>(first).error.code, 'GH_ERR_UPSTREAM_UNAVAILABLE');
    await send(gw.http, '/');
    await waitFor(gw, port, (x) => x.state === 'open');
    assert.equal(json<{ error: { code: string } }>(await send(gw.http, '/')).error.code, 'GH_ERR_CIRCUIT_OPEN');

    const { up, held, mode } = await controlledNode();
    mode.hold = true;
    const gw2 = await gateway(oneRoute([up.port], { consecutiveFailures: 1 }, { timeout: { read: 300 }, retries: 0 }), {}, { statusServer: true });
    const r = await send(gw2.http, '/');
    assert.equal(json<{ error: { code: string } }>(r).error.code, 'GH_ERR_UPSTREAM_TIMEOUT');
    await waitFor(gw2, up.port, (x) => x.state === 'open');
    for (const res of held) res.destroy();
  });

  it('statuses outside failureStatuses are successes; a custom list is honoured', async () => {
    const { up } = await controlledNode();
    const gw = await gateway(oneRoute([up.port], { consecutiveFailures: 2, failureStatuses: [429] }), {}, { statusServer: true });
    await send(gw.http, '/', withStatus(429));
    await waitFor(gw, up.port, (x) => x.consecutiveFailures === 1);
    await send(gw.http, '/', withStatus(500));
    await waitFor(gw, up.port, (x) => x.consecutiveFailures === 0);
    await send(gw.http, '/', withStatus(404));
    await send(gw.http, '/', withStatus(429));
    await waitFor(gw, up.port, (x) => x.consecutiveFailures === 1);
    await send(gw.http, '/', withStatus(429));
    await waitFor(gw, up.port, (x) => x.state === 'open');
  });

  it('a client that leaves before the node answers counts as neither', async () => {
    const { up, held, mode } = await controlledNode();
    const gw = await gateway(oneRoute([up.port], { consecutiveFailures: 2 }), {}, { statusServer: true });
    await send(gw.http, '/', withStatus(500));
    await waitFor(gw, up.port, (x) => x.consecutiveFailures === 1);
    mode.hold = true;
    const req = request({ host: '127.0.0.1', port: gw.http, path: '/leaving', agent: false });
    req.on('error', () => {});
    req.end();
    await until(() => held.length === 1);
    const upstreamClosed = new Promise((r) => held[0]!.once('close', r));
    req.destroy();
    // The gateway closes the upstream request when the client goes, in the same turn as it runs finish (which
    // schedules the log phase): by the time the node sees it, the log phase has run.
    await upstreamClosed;
    mode.hold = false;
    const b = (await breakerOf(gw, up.port))!;
    // Counted as a failure it would have opened the node (2 in a row); as a success, reset the count to 0.
    assert.deepEqual([b.state, b.consecutiveFailures], ['closed', 1]);
    assert.equal((await send(gw.http, '/', withStatus(500))).status, 500);
    await waitFor(gw, up.port, (x) => x.state === 'open');
  });
});

describe('api-breaker scope and state', () => {
  it('keeps a breaker per route: the same node stays in use for another route', async () => {
    const bad = await failingNode(500);
    const gw = await gateway(
      {
        upstreams: [{ id: 'u', nodes: [node(bad.port)] }],
        globalPlugins: { 'api-breaker': { consecutiveFailures: 1 } },
        routes: [
          { id: 'a', paths: ['/a'], upstreamId: 'u' },
          { id: 'b', paths: ['/b'], upstreamId: 'u' },
        ],
      },
      {},
      { statusServer: true },
    );
    assert.equal((await send(gw.http, '/a')).status, 500);
    const b = await waitFor(gw, bad.port, (x) => x.state === 'open', 'a');
    assert.equal(b.scope, 'global');
    assert.equal((await send(gw.http, '/a')).status, 503);
    assert.equal((await send(gw.http, '/b')).status, 500, 'route b still reaches the node');
    assert.equal(bad.seen.length, 2);
  });

  it('keeps breakers across reloads, which apply the new config to them', async () => {
    const bad = await failingNode(500);
    const cfg = oneRoute([bad.port], { consecutiveFailures: 1, openDuration: 60000 });
    const gw = await gateway(cfg, {}, { statusServer: true });
    await send(gw.http, '/');
    await waitFor(gw, bad.port, (x) => x.state === 'open');
    gw.apply(cfg);
    gw.apply(cfg);
    assert.equal((await send(gw.http, '/')).status, 503);
    assert.equal((await breakerOf(gw, bad.port))!.state, 'open');
    gw.apply(oneRoute([bad.port], { consecutiveFailures: 1, openDuration: 60000, fallback: { status: 200, body: 'cached answer' } }));
    const r = await send(gw.http, '/');
    assert.deepEqual([r.status, r.body], [200, 'cached answer']);
    assert.equal(bad.seen.length, 1);
  });

  it('reset closes breakers by hand; bad arguments are refused', async () => {
    const bad = await failingNode(500);
    const gw = await gateway(oneRoute([bad.port], { consecutiveFailures: 1 }), {}, { statusServer: true });
    await send(gw.http, '/');
    await waitFor(gw, bad.port, (x) => x.state === 'open');
    assert.deepEqual((await control(gw, 'reset', { route: 'other' })).body.workers, [{ reset: 0 }]);
    assert.equal((await send(gw.http, '/')).status, 503);
    assert.deepEqual((await control(gw, 'reset', { route: 'r', upstream: 'u', node: `127.0.0.1:${bad.port}` })).body.workers, [{ reset: 1 }]);
    assert.equal((await send(gw.http, '/')).status, 500, 'closed again: the node gets traffic');
    const refused = await control(gw, 'reset', { route: 5 });
    assert.equal(refused.status, 400);
    const unknown = await control(gw, 'status', { colour: 'red' });
    assert.equal(unknown.status, 400);
  });
});

describe('api-breaker instance', () => {
  /** A node and a fake request context with what the hooks read. */
  function fakeNode(port: number): NodeState {
    return { key: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, healthy: true, active: 0, ewma: 0, ewmaStamp: 0 };
  }
  const nodes = [fakeNode(1)];
  const up = { key: 'upstream:u', nodes, timeouts: { connect: 1000, send: 1000, read: 1000 } };
  function fakeCtx(headers: Record<string, string> = {}) {
    const avoided: NodeState[] = [];
    const ctx = {
      routeId: 'r',
      upstream: up,
      headers,
      vars: {} as Record<string, unknown>,
      node: null as NodeState | null,
      status: 0,
      errorCode: null as string | null,
      res: { writableFinished: true },
      avoidNode: (n: NodeState) => avoided.push(n),
    };
    return { ctx, avoided, pc: ctx as unknown as PluginContext };
  }
  function instance(): PluginInstance {
    const config = { failureStatuses: [500], consecutiveFailures: 1, openDuration: 1000, halfOpenProbes: 1, successesToClose: 1 };
    return apiBreaker.create(config as Parameters<typeof apiBreaker.create>[0], pluginEnv({ plugin: 'api-breaker' }));
  }
  /** Run one request through the hooks: beforeUpstream, then (when let through) a node answer and the log phase. */
  function run(inst: PluginInstance, status: number, headers: Record<string, string> = {}, logIt = true) {
    const f = fakeCtx(headers);
    const answer = inst.beforeUpstream!(f.pc) as PluginResponse | undefined;
    if (answer === undefined) {
      f.ctx.node = nodes[0]!;
      f.ctx.status = status;
    }
    if (logIt) inst.log!(f.pc);
    return { answer, ...f };
  }

  it('an upgrade request never takes a probe slot (its outcome would never come)', () => {
    const inst = instance();
    assert.equal(run(inst, 500).answer, undefined);
    assert.equal(run(inst, 200).answer?.status, 503);
    now += 1000;
    const upgrade = run(inst, 101, { upgrade: 'websocket' });
    assert.equal(upgrade.answer?.status, 503);
    assert.deepEqual(upgrade.avoided, nodes);
    // A plain request still gets the probe, and its success closes the breaker.
    assert.equal(run(inst, 200).answer, undefined);
    assert.equal(run(inst, 200).answer, undefined);
  });

  it('a probe whose outcome never comes frees its slot after a lease', () => {
    const inst = instance();
    run(inst, 500);
    now += 1000;
    assert.equal(run(inst, 200, {}, false).answer, undefined, 'the probe is let through and never logged');
    assert.equal(run(inst, 200).answer?.status, 503, 'its slot is taken');
    // The lease: the longer of openDuration and the upstream's connect + read timeouts.
    now += 2000;
    assert.equal(run(inst, 200).answer, undefined);
    assert.equal(run(inst, 200).answer, undefined, 'that probe closed the breaker');
  });
});
