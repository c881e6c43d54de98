/**
 * @module dataplane/upstream/health.test
 * Health checks against real servers on loopback: probes, passive reports, cooldown, reconfiguration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { HealthCheck } from '../../model/upstream.js';
import { createNodeState } from './balancers/index.js';
import { HealthChecker, PassiveReporter, applyHealthChange, passiveFailureStatuses, type HealthChange, type PassiveReport } from './health.js';
import type { NodeState } from './types.js';

interface TestServer {
  server: http.Server;
  port: number;
  status: number;
  requests: http.IncomingMessage[];
  /** Responses served per status code. */
  served: Map<number, number>;
}

async function startServer(): Promise<TestServer> {
  const state: TestServer = { server: track(http.createServer()), port: 0, status: 200, requests: [], served: new Map() };
  state.server.on('request', (req, res) => {
    state.requests.push(req);
    const status = state.status;
    state.served.set(status, (state.served.get(status) ?? 0) + 1);
    res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
  });
  state.server.listen(0, '127.0.0.1');
  await once(state.server, 'listening');
  state.port = (state.server.address() as AddressInfo).port;
  return state;
}

/** Tracks accepted sockets so stopServer can drop them: a server that never reads would never see them end. */
function track<T extends net.Server>(server: T): T {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  openSockets.set(server, sockets);
  return server;
}
const openSockets = new WeakMap<net.Server, Set<net.Socket>>();

async function stopServer(server: net.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of openSockets.get(server) ?? []) socket.destroy();
  await closed;
}

/** The next 'change' matching `match`; fails the test instead of hanging when it never comes. */
function nextChange(checker: HealthChecker, match: Partial<HealthChange>, timeoutMs = 5000): Promise<HealthChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      checker.off('change', onChange);
      reject(new Error(`no change matching ${JSON.stringify(match)} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onChange = (change: HealthChange): void => {
      for (const [k, v] of Object.entries(match)) if (change[k as keyof HealthChange] !== v) return;
      clearTimeout(timer);
      checker.off('change', onChange);
      resolve(change);
    };
    checker.on('change', onChange);
  });
}

function activeCheck(overrides: Partial<NonNullable<HealthCheck['active']>> = {}): HealthCheck {
  return {
    active: {
      type: 'http',
      path: '/healthz',
      interval: 100,
      timeout: 1000,
      healthyThreshold: 2,
      unhealthyThreshold: 3,
      expectedStatuses: [200],
      ...overrides,
    },
  };
}

function passiveCheck(cooldown: number, unhealthyThreshold = 3): HealthCheck {
  return { passive: { unhealthyThreshold, failureStatuses: [502, 503, 504], cooldown } };
}

test('http probes take a node out after unhealthyThreshold failures and bring it back after healthyThreshold successes', async (t) => {
  const srv = await startServer();
  const checker = new HealthChecker();
  t.after(async () => {
    checker.close();
    await stopServer(srv.server);
  });
  const node = createNodeState('127.0.0.1', srv.port, 1);
  checker.configure([{
    key: 'orders',
    nodes: [node],
    scheme: 'http',
    healthCheck: activeCheck({ host: 'orders.internal', headers: { 'X-Probe': 'yes' } }),
  }]);

  // Let a few healthy probes through first: they must not flip anything.
  while (srv.requests.length < 2) await new Promise((r) => setTimeout(r, 20));
  assert.equal(node.healthy, true);
  const probe = srv.requests[0]!;
  assert.equal(probe.url, '/healthz');
  assert.equal(probe.method, 'GET');
  assert.equal(probe.headers.host, 'orders.internal');
  assert.equal(probe.headers['x-probe'], 'yes');

  const down = nextChange(checker, { healthy: false });
  srv.status = 500;
  const change = await down;
  assert.deepEqual(change, { upstream: 'orders', node: node.key, healthy: false });
  assert.equal(srv.served.get(500), 3, 'out after exactly unhealthyThreshold failed probes');
  assert.equal(node.healthy, false);
  assert.deepEqual(checker.snapshot(), [{ upstream: 'orders', node: node.key, healthy: false }]);

  const up = nextChange(checker, { healthy: true });
  const okBefore = srv.served.get(200) ?? 0;
  srv.status = 200;
  await up;
  assert.equal((srv.served.get(200) ?? 0) - okBefore, 2, 'back after exactly healthyThreshold successful probes');
  assert.equal(node.healthy, true);
});

test('a probe that gets no answer in time counts as failed', async (t) => {
  // Accepts connections and never answers.
  const silent = track(net.createServer(() => {}));
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const checker = new HealthChecker();
  t.after(async () => {
    checker.close();
    await stopServer(silent);
  });
  const node = createNodeState('127.0.0.1', (silent.address() as AddressInfo).port, 1);
  checker.configure([{ key: 'slow', nodes: [node], scheme: 'http', healthCheck: activeCheck({ timeout: 50, unhealthyThreshold: 2 }) }]);
  await nextChange(checker, { upstream: 'slow', healthy: false });
  assert.equal(node.healthy, false);
});

test('a tcp probe fails once the port is closed', async (t) => {
  const server = track(net.createServer((socket) => socket.destroy()));
  let connections = 0;
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const checker = new HealthChecker();
  t.after(() => checker.close());
  const node = createNodeState('127.0.0.1', (server.address() as AddressInfo).port, 1);
  const changes: HealthChange[] = [];
  checker.on('change', (c) => changes.push(c));
  checker.configure([{ key: 'tcp', nodes: [node], scheme: 'http', healthCheck: activeCheck({ type: 'tcp', unhealthyThreshold: 2 }) }]);

  while (connections < 3) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(changes, [], 'successful connects keep the node in');
  const down = nextChange(checker, { healthy: false });
  await stopServer(server);
  await down;
  assert.equal(node.healthy, false);
});

test('passive failures in a row take a node out and the cooldown brings it back', async (t) => {
  const checker = new HealthChecker();
  t.after(() => checker.close());
  const node = createNodeState('10.0.0.1', 80, 1);
  const other = createNodeState('10.0.0.2', 80, 1);
  checker.configure([{ key: 'api', nodes: [node, other], scheme: 'http', healthCheck: passiveCheck(200) }]);

  checker.reportPassive('api', node.key, false);
  checker.reportPassive('api', node.key, false);
  checker.reportPassive('api', node.key, true);
  checker.reportPassive('api', node.key, false);
  checker.reportPassive('api', node.key, false);
  assert.equal(node.healthy, true, 'a success in between resets the count');

  const down = nextChange(checker, { node: node.key, healthy: false });
  checker.reportPassive('api', node.key, false);
  await down;
  assert.equal(node.healthy, false);
  assert.equal(other.healthy, true);

  const started = Date.now();
  await nextChange(checker, { node: node.key, healthy: true });
  assert.ok(Date.now() - started >= 150, 'not before the cooldown');
  assert.equal(node.healthy, true);

  // Reports about unknown upstreams or nodes are ignored.
  checker.reportPassive('nope', node.key, false);
  checker.reportPassive('api', '10.9.9.9:80', false);
});

test('with active checks, a node taken out by passive failures comes back through probes', async (t) => {
  const srv = await startServer();
  const checker = new HealthChecker();
  t.after(async () => {
    checker.close();
    await stopServer(srv.server);
  });
  const node = createNodeState('127.0.0.1', srv.port, 1);
  const healthCheck: HealthCheck = { ...activeCheck({ interval: 150 }), ...passiveCheck(3_600_000, 2) };
  checker.configure([{ key: 'mixed', nodes: [node], scheme: 'http', healthCheck }]);

  checker.reportPassive('mixed', node.key, false);
  checker.reportPassive('mixed', node.key, false);
  assert.equal(node.healthy, false);
  const okBefore = srv.served.get(200) ?? 0;
  await nextChange(checker, { healthy: true });
  assert.ok((srv.served.get(200) ?? 0) - okBefore >= 2, 'probes, not the (hour-long) cooldown, brought it back');
});

test('configure() keeps the state of surviving nodes and forgets removed ones', async (t) => {
  const checker = new HealthChecker();
  t.after(() => checker.close());
  const a = createNodeState('10.0.0.1', 80, 1);
  const b = createNodeState('10.0.0.2', 80, 1);
  checker.configure([{ key: 'svc', nodes: [a, b], scheme: 'http', healthCheck: passiveCheck(3_600_000, 1) }]);
  checker.reportPassive('svc', a.key, false);
  assert.equal(a.healthy, false);

  // A reload builds new node objects; the checker matches them by key.
  const a2 = createNodeState('10.0.0.1', 80, 1);
  const c = createNodeState('10.0.0.3', 80, 1);
  checker.configure([{ key: 'svc', nodes: [a2, c], scheme: 'http', healthCheck: passiveCheck(3_600_000, 1) }]);
  assert.equal(a2.healthy, false, 'state carried over to the new object');
  assert.equal(c.healthy, true, 'new nodes start healthy');
  assert.deepEqual(
    checker.snapshot().sort((x, y) => x.node.localeCompare(y.node)),
    [
      { upstream: 'svc', node: a.key, healthy: false },
      { upstream: 'svc', node: c.key, healthy: true },
    ],
  );

  const changes: HealthChange[] = [];
  checker.on('change', (change) => changes.push(change));
  checker.reportPassive('svc', b.key, false);
  assert.deepEqual(changes, [], 'a removed node is no longer tracked');

  // Health checks removed altogether: nothing could bring the node back, so it is healthy again.
  checker.configure([{ key: 'svc', nodes: [a2, c], scheme: 'http' }]);
  assert.equal(a2.healthy, true);
  assert.deepEqual(changes, [{ upstream: 'svc', node: a.key, healthy: true }]);

  checker.configure([]);
  assert.deepEqual(checker.snapshot(), []);
});

test('close() stops probing', async (t) => {
  const srv = await startServer();
  t.after(() => stopServer(srv.server));
  const checker = new HealthChecker();
  checker.configure([{ key: 'x', nodes: [createNodeState('127.0.0.1', srv.port, 1)], scheme: 'http', healthCheck: activeCheck() }]);
  while (srv.requests.length < 2) await new Promise((r) => setTimeout(r, 20));
  checker.close();
  const count = srv.requests.length;
  await new Promise((r) => setTimeout(r, 350));
  // One probe may already have been on the wire when close() ran.
  assert.ok(srv.requests.length <= count + 1, `${srv.requests.length - count} probes after close`);
  assert.throws(() => checker.configure([]), /closed/);
});

test('state flips are logged', async (t) => {
  const lines: Array<[string, object, string]> = [];
  const logger = {
    warn: (obj: object, msg: string) => lines.push(['warn', obj, msg]),
    info: (obj: object, msg: string) => lines.push(['info', obj, msg]),
  };
  const checker = new HealthChecker({ logger });
  t.after(() => checker.close());
  const node = createNodeState('10.0.0.1', 80, 1);
  checker.configure([{ key: 'logged', nodes: [node], scheme: 'http', healthCheck: passiveCheck(100, 1) }]);
  checker.reportPassive('logged', node.key, false);
  await nextChange(checker, { healthy: true });
  assert.deepEqual(lines.map(([level, obj]) => [level, (obj as { node: string }).node, (obj as { source: string }).source]), [
    ['warn', node.key, 'passive'],
    ['info', node.key, 'cooldown'],
  ]);
});

test('applyHealthChange sets the worker\'s node and ignores unknown ones', () => {
  const node = createNodeState('10.0.0.1', 80, 1);
  const nodesByUpstream = new Map<string, Map<string, NodeState>>([['api', new Map([[node.key, node]])]]);
  assert.equal(applyHealthChange(nodesByUpstream, { upstream: 'api', node: node.key, healthy: false }), true);
  assert.equal(node.healthy, false);
  assert.equal(applyHealthChange(nodesByUpstream, { upstream: 'api', node: '10.0.0.9:80', healthy: true }), false);
  assert.equal(applyHealthChange(nodesByUpstream, { upstream: 'gone', node: node.key, healthy: true }), false);
  assert.equal(node.healthy, false);
});

test('PassiveReporter sends failures and only the successes that end them', () => {
  const sent: PassiveReport[] = [];
  const reporter = new PassiveReporter((report) => sent.push(report));
  reporter.report('api', 'a:80', true);
  reporter.report('api', 'a:80', false);
  reporter.report('api', 'a:80', false);
  reporter.report('api', 'a:80', true);
  reporter.report('api', 'a:80', true);
  reporter.report('api', 'b:80', true);
  reporter.report('api', createNodeState('c', 80, 1), false);
  assert.deepEqual(sent, [
    { upstream: 'api', node: 'a:80', ok: false },
    { upstream: 'api', node: 'a:80', ok: false },
    { upstream: 'api', node: 'a:80', ok: true },
    { upstream: 'api', node: 'c:80', ok: false },
  ]);
  reporter.report('old', 'a:80', false);
  reporter.retain(new Set(['api']));
  reporter.report('old', 'a:80', true);
  assert.equal(sent.length, 5);
});

test('passiveFailureStatuses is null without passive checks', () => {
  assert.equal(passiveFailureStatuses(undefined), null);
  assert.equal(passiveFailureStatuses(activeCheck()), null);
  assert.deepEqual([...passiveFailureStatuses(passiveCheck(100))!], [502, 503, 504]);
});

test('reports through a PassiveReporter drive the checker like direct reports', async (t) => {
  const checker = new HealthChecker();
  t.after(() => checker.close());
  const node = createNodeState('10.0.0.1', 80, 1);
  checker.configure([{ key: 'ipc', nodes: [node], scheme: 'http', healthCheck: passiveCheck(3_600_000, 2) }]);
  // Stands in for the IPC hop: worker -> primary.
  const reporter = new PassiveReporter((r) => checker.reportPassive(r.upstream, r.node, r.ok));
  reporter.report('ipc', node.key, false);
  reporter.report('ipc', node.key, true);
  reporter.report('ipc', node.key, false);
  assert.equal(node.healthy, true);
  reporter.report('ipc', node.key, false);
  assert.equal(node.healthy, false);
});
