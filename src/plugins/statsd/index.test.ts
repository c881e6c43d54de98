/**
 * @module plugins/statsd/index.test
 * statsd: the schema (defaults, refused configs with their paths, the docs example), then real datagrams received
 * by a node:dgram socket on 127.0.0.1: names, values and types, the tag styles, sanitised ids, the sample rate,
 * packing under maxPacketSize, the flush interval, one socket per target kept across reloads, host names looked
 * up once, dead ports and failed lookups counted and logged once; then traffic through an in-process gateway.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { pino, type Logger } from 'pino';
import statsd, { METRICS, DIMENSIONS } from './index.js';
import { Batcher, UdpTarget, MAX_PENDING, type TargetStats } from './transport.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { PluginStateStore } from '../../dataplane/plugins/state.js';
import type { PluginContext, PluginInstance } from '../../dataplane/plugins/types.js';
import { harness } from '../../../test/helpers/harness.js';
import { node } from '../../../test/helpers/upstream.js';
import { send, json } from '../../../test/helpers/http.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const { upstream, gateway, defer } = harness();
const P = 'routes[0].plugins.statsd';

function validate(plugin: unknown) {
  return validateDeclarative({ routes: [{ id: 'r', paths: ['/'], upstream: { nodes: [node(1)] }, plugins: { statsd: plugin } }] }, builtinRegistry());
}

function problemsOf(plugin: unknown): string[] {
  const r = validate(plugin);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** Poll `cond` every 10 ms for at most `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Receiver {
  port: number;
  /** Every datagram, as received. */
  packets: Buffer[];
  /** Every metric line of every datagram. */
  lines(): string[];
}

/** A StatsD stand-in: a UDP socket on 127.0.0.1 keeping every datagram. */
async function receiver(): Promise<Receiver> {
  const sock = dgram.createSocket('udp4');
  const packets: Buffer[] = [];
  sock.on('message', (m) => packets.push(m));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  defer(() => new Promise<void>((r) => sock.close(() => r())));
  return { port: sock.address().port, packets, lines: () => packets.flatMap((p) => p.toString('latin1').split('\n')) };
}

/** A UDP port on 127.0.0.1 that nothing listens on. */
async function deadPort(): Promise<number> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  await new Promise<void>((r) => sock.close(() => r()));
  return port;
}

/** A logger that keeps its warn lines. */
function captureLogger(): { logger: Logger; warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => void warnings.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, warnings };
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 8125,
  prefix: 'gatehouse',
  sampleRate: 1,
  metrics: [...METRICS],
  dimensions: [...DIMENSIONS],
  tags: 'none',
  flushInterval: 1000,
  maxPacketSize: 1432,
};

type Conf = Parameters<typeof statsd.create>[0];

/** Stores made by tests; closed after each test so no socket or timer outlives it. */
let stores: PluginStateStore[] = [];
afterEach(() => {
  for (const s of stores) s.closeAll();
  stores = [];
});

/** The plugin made directly, with its own state store, sending to `port` as soon as a turn ends. */
function make(port: number, over: Partial<Conf> = {}, logger?: Logger): { inst: PluginInstance; store: PluginStateStore } {
  const store = new PluginStateStore();
  stores.push(store);
  store.beginLoad();
  const conf = { ...DEFAULTS, flushInterval: 0, port, ...over } as Conf;
  assert.deepEqual(statsd.check!(conf), []);
  const inst = statsd.create(conf, pluginEnv({ store, plugin: 'statsd', ...(logger ? { logger } : {}) }));
  store.sweep();
  return { inst, store };
}

/** A finished request as the log phase sees it. */
function fakeCtx(over: Record<string, unknown> = {}): PluginContext {
  return {
    routeId: 'invoices',
    serviceId: 'billing',
    consumer: null,
    status: 200,
    start: 100,
    endedAt: 112.3456,
    upstreamLatency: 7.5,
    bytesReceived: 0,
    bytesSent: 42,
    ...over,
  } as unknown as PluginContext;
}

function statsOf(store: PluginStateStore, key: string): TargetStats {
  return store.controlEnv('statsd').state<UdpTarget>(key)!.stats;
}

describe('statsd config', () => {
  it('fills defaults', () => {
    const r = validate({});
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    assert.deepEqual((r.value.routes[0] as { plugins: Record<string, unknown> }).plugins.statsd, DEFAULTS);
  });

  it('refuses bad values with their paths', () => {
    const cases: Array<[unknown, string]> = [
      [{ port: 0 }, `${P}.port`],
      [{ port: 70000 }, `${P}.port`],
      [{ sampleRate: 0 }, `${P}.sampleRate`],
      [{ sampleRate: 1.5 }, `${P}.sampleRate`],
      [{ prefix: 'a..b' }, `${P}.prefix`],
      [{ prefix: 'a:b' }, `${P}.prefix`],
      [{ prefix: 'gate house' }, `${P}.prefix`],
      [{ metrics: [] }, `${P}.metrics`],
      [{ metrics: ['requestCount', 'requestCount'] }, `${P}.metrics`],
      [{ metrics: ['uniqueUsers'] }, `${P}.metrics[0]`],
      [{ dimensions: ['method'] }, `${P}.dimensions[0]`],
      [{ tags: 'librato' }, `${P}.tags`],
      [{ maxPacketSize: 100 }, `${P}.maxPacketSize`],
      [{ maxPacketSize: 70000 }, `${P}.maxPacketSize`],
      [{ flushInterval: -1 }, `${P}.flushInterval`],
      [{ host: '' }, `${P}.host`],
      [{ host: 'bad host!' }, `${P}.host`],
      [{ host: '-x.example' }, `${P}.host`],
      [{ tags: 'dogstatsd', constantTags: { env: 'a,b' } }, `${P}.constantTags`],
      [{ tags: 'dogstatsd', constantTags: { '1env': 'prod' } }, `${P}.constantTags`],
      [{ extra: 1 }, P],
    ];
    for (const [conf, path] of cases) {
      const problems = problemsOf(conf);
      assert.ok(problems.some((p) => p.startsWith(path)), `${JSON.stringify(conf)} -> ${JSON.stringify(problems)}`);
    }
  });

  it('refuses constant tags without a tag style, and takes IP addresses and host names', () => {
    assert.deepEqual(problemsOf({ constantTags: { env: 'prod' } }), [
      `${P}.constantTags: needs a tag style (tags: dogstatsd, influx or graphite); plain StatsD names have no tags`,
    ]);
    assert.deepEqual(problemsOf({ tags: 'dogstatsd', constantTags: { env: 'prod', 'team.name': 'pay-ments_1' } }), []);
    for (const host of ['10.0.0.1', '::1', 'fe80::1', 'statsd', 'statsd.monitoring.svc.cluster.local', 'localhost']) {
      assert.deepEqual(problemsOf({ host }), [], host);
    }
    assert.deepEqual(problemsOf({ prefix: '' }), []);
    assert.deepEqual(problemsOf({ prefix: 'prod.edge-1.gw' }), []);
  });

  it('the example in docs/plugins/statsd.md is valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/statsd.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const r = validateDeclarative(parse(yaml), builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    assert.deepEqual(r.value.globalPlugins?.statsd, { ...DEFAULTS, host: '10.0.0.20', sampleRate: 0.5 });
  });
});

describe('statsd lines', () => {
  it('names carry service, route and consumer; counters are c, timers ms, values as measured', async () => {
    const rx = await receiver();
    const { inst } = make(rx.port);
    inst.log!(fakeCtx({ consumer: { username: 'alice' }, bytesReceived: 5 }));
    assert.ok(await until(() => rx.lines().length === 6), rx.lines().join('\n'));
    const base = 'gatehouse.service.billing.route.invoices.consumer.alice';
    assert.deepEqual(rx.lines().sort(), [
      `${base}.latency:12.346|ms`,
      `${base}.request.bytes:5|c`,
      `${base}.request.count:1|c`,
      `${base}.response.bytes:42|c`,
      `${base}.status.200:1|c`,
      `${base}.upstream_latency:7.5|ms`,
    ]);
    // One request's lines fit one datagram, separated by "\n".
    assert.equal(rx.packets.length, 1);
  });

  it('a request with no upstream answer has no upstream timer, no zero counters, and 499 when the client left', async () => {
    const rx = await receiver();
    const { inst } = make(rx.port);
    inst.log!(fakeCtx({ serviceId: null, status: 0, upstreamLatency: -1, bytesSent: 0, endedAt: 100 }));
    assert.ok(await until(() => rx.lines().length === 3));
    assert.deepEqual(rx.lines().sort(), [
      'gatehouse.service._.route.invoices.consumer._.latency:0|ms',
      'gatehouse.service._.route.invoices.consumer._.request.count:1|c',
      'gatehouse.service._.route.invoices.consumer._.status.499:1|c',
    ]);
  });

  it('replaces what StatsD does not allow in names: ".", ":", "|", "@", "#", ",", "=", whitespace', async () => {
    const rx = await receiver();
    const { inst } = make(rx.port, { metrics: ['requestCount'] });
    inst.log!(fakeCtx({ routeId: 'users.v2', serviceId: 'bill.ing', consumer: { username: 'alice@example.com' } }));
    inst.log!(fakeCtx({ routeId: 'r', serviceId: null, consumer: { username: 'we i|rd:na@me#x,y=z\tq' } }));
    assert.ok(await until(() => rx.lines().length === 2));
    assert.deepEqual(rx.lines(), [
      'gatehouse.service.bill_ing.route.users_v2.consumer.alice_example_com.request.count:1|c',
      'gatehouse.service._.route.r.consumer.we_i_rd_na_me_x_y_z_q.request.count:1|c',
    ]);
  });

  it('chosen metrics and dimensions only; no dimensions gives gateway-wide names; no prefix', async () => {
    const rx = await receiver();
    const { inst } = make(rx.port, { metrics: ['statusCount', 'latency'], dimensions: ['route'] });
    inst.log!(fakeCtx({ status: 503, consumer: { username: 'alice' } }));
    const rx2 = await receiver();
    const { inst: inst2 } = make(rx2.port, { metrics: ['requestCount', 'bytesSent'], dimensions: [], prefix: '' });
    inst2.log!(fakeCtx());
    assert.ok(await until(() => rx.lines().length === 2 && rx2.lines().length === 2));
    assert.deepEqual(rx.lines().sort(), ['gatehouse.route.invoices.latency:12.346|ms', 'gatehouse.route.invoices.status.503:1|c']);
    assert.deepEqual(rx2.lines().sort(), ['request.count:1|c', 'response.bytes:42|c']);
  });

  it('dogstatsd: "|#k:v" tags with the dimensions, the status as a tag, constant tags; ids keep their dots', async () => {
    const rx = await receiver();
    const { inst } = make(rx.port, { tags: 'dogstatsd', constantTags: { env: 'prod' } });
    inst.log!(fakeCtx({ routeId: 'users.v2', consumer: { username: 'alice@example.com' } }));
    inst.log!(fakeCtx({ serviceId: null, status: 404, upstreamLatency: -1, bytesSent: 0 }));
    assert.ok(await until(() => rx.lines().length === 8), rx.lines().join('\n'));
    const t1 = 'service:billing,route:users.v2,consumer:alice_example.com';
    const t2 = 'route:invoices';
    assert.deepEqual(rx.lines().sort(), [
      `gatehouse.latency:12.346|ms|#${t1},env:prod`,
      `gatehouse.latency:12.346|ms|#${t2},env:prod`,
      `gatehouse.request.count:1|c|#${t1},env:prod`,
      `gatehouse.request.count:1|c|#${t2},env:prod`,
      `gatehouse.response.bytes:42|c|#${t1},env:prod`,
      `gatehouse.status.count:1|c|#${t1},status:200,env:prod`,
      `gatehouse.status.count:1|c|#${t2},status:404,env:prod`,
      `gatehouse.upstream_latency:7.5|ms|#${t1},env:prod`,
    ].sort());
  });

  it('influx and graphite tags go in the name, before the value', async () => {
    const rxI = await receiver();
    const rxG = await receiver();
    const over = { metrics: ['statusCount', 'upstreamLatency'] as Conf['metrics'], constantTags: { dc: 'eu-1' } };
    make(rxI.port, { ...over, tags: 'influx' }).inst.log!(fakeCtx({ consumer: { username: 'bob' } }));
    make(rxG.port, { ...over, tags: 'graphite' }).inst.log!(fakeCtx({ consumer: { username: 'bob' } }));
    assert.ok(await until(() => rxI.lines().length === 2 && rxG.lines().length === 2));
    assert.deepEqual(rxI.lines().sort(), [
      'gatehouse.status.count,service=billing,route=invoices,consumer=bob,status=200,dc=eu-1:1|c',
      'gatehouse.upstream_latency,service=billing,route=invoices,consumer=bob,dc=eu-1:7.5|ms',
    ]);
    assert.deepEqual(rxG.lines().sort(), [
      'gatehouse.status.count;service=billing;route=invoices;consumer=bob;status=200;dc=eu-1:1|c',
      'gatehouse.upstream_latency;service=billing;route=invoices;consumer=bob;dc=eu-1:7.5|ms',
    ]);
  });

  it('sampleRate: a request is sent whole or not at all, every line with "|@rate" (before dogstatsd tags)', async (t) => {
    const rx = await receiver();
    const rxTags = await receiver();
    const { inst } = make(rx.port, { sampleRate: 0.25, metrics: ['requestCount', 'latency', 'bytesSent'] });
    const { inst: tagged } = make(rxTags.port, { sampleRate: 0.25, metrics: ['requestCount'], tags: 'dogstatsd', dimensions: ['route'] });
    let draw = 0.3;
    t.mock.method(Math, 'random', () => draw);
    inst.log!(fakeCtx()); // 0.3 is not below 0.25: not sampled
    draw = 0.2;
    inst.log!(fakeCtx());
    inst.log!(fakeCtx());
    tagged.log!(fakeCtx());
    t.mock.restoreAll();
    assert.ok(await until(() => rx.lines().length === 6 && rxTags.lines().length === 1));
    await sleep(50);
    assert.equal(rx.lines().length, 6, 'the unsampled request sent nothing');
    for (const line of rx.lines()) assert.match(line, /\|(c|ms)\|@0\.25$/);
    assert.deepEqual(rxTags.lines(), ['gatehouse.request.count:1|c|@0.25|#route:invoices']);
    // What StatsD makes of it: each sampled count stands for 1 / rate requests.
    const counted = rx.lines().filter((l) => l.includes('.request.count:')).reduce((n, l) => n + Number(/:(\d+)\|/.exec(l)![1]) / 0.25, 0);
    assert.equal(counted, 8);
    // With rate 1 there is no suffix at all.
    const rx1 = await receiver();
    make(rx1.port, { metrics: ['requestCount'] }).inst.log!(fakeCtx());
    assert.ok(await until(() => rx1.lines().length === 1));
    assert.equal(rx1.lines()[0], 'gatehouse.service.billing.route.invoices.consumer._.request.count:1|c');
  });
});

describe('statsd packing and flushing', () => {
  it('packs lines into datagrams of at most maxPacketSize; full ones go at once, the rest when the interval ends', async () => {
    const rx = await receiver();
    const { inst, store } = make(rx.port, { maxPacketSize: 256, flushInterval: 60000 });
    for (let i = 0; i < 40; i++) inst.log!(fakeCtx({ routeId: `route-${i}`, bytesReceived: i + 1 }));
    const expected = 40 * 6;
    // Full datagrams leave without waiting for the minute-long interval.
    assert.ok(await until(() => rx.packets.length > 5));
    await sleep(100);
    const early = rx.lines().length;
    assert.ok(early < expected, 'the last, partly filled datagram waits for the interval');
    // The interval ends (here: the state is dropped, which flushes what is left).
    store.closeAll();
    assert.ok(await until(() => rx.lines().length === expected), `${rx.lines().length} of ${expected}`);
    const line = /^gatehouse\.service\.billing\.route\.route-\d+\.consumer\._\.[a-z_.]+(\.\d{3})?:\d+(\.\d+)?\|(c|ms)$/;
    let packed = 0;
    for (const p of rx.packets) {
      assert.ok(p.length <= 256, `datagram of ${p.length} bytes`);
      const lines = p.toString('latin1').split('\n');
      if (lines.length > 1) packed++;
      for (const l of lines) assert.match(l, line);
    }
    assert.ok(packed > 0, 'several lines per datagram');
    // Every request's lines arrived, none split between datagrams.
    for (let i = 0; i < 40; i++) assert.equal(rx.lines().filter((l) => l.includes(`.route.route-${i}.`)).length, 6, `route-${i}`);
  });

  it('a flush interval sends a partly filled datagram when it ends', async () => {
    const rx = await receiver();
    const { inst } = make(rx.port, { flushInterval: 1000, metrics: ['requestCount'] });
    const t0 = performance.now();
    inst.log!(fakeCtx());
    inst.log!(fakeCtx());
    await sleep(100);
    // Checked only while the interval surely runs (a loaded machine may sleep longer).
    if (performance.now() - t0 < 900) assert.equal(rx.packets.length, 0, 'still waiting for the interval');
    assert.ok(await until(() => rx.packets.length === 1));
    assert.ok(performance.now() - t0 >= 900, 'sent when the interval ended, not before');
    assert.equal(rx.packets[0]!.toString(), 'gatehouse.service.billing.route.invoices.consumer._.request.count:1|c\ngatehouse.service.billing.route.invoices.consumer._.request.count:1|c');
  });

  it('drops (and counts) a line longer than maxPacketSize; the others are sent', async () => {
    const rx = await receiver();
    const { logger, warnings } = captureLogger();
    const { inst, store } = make(rx.port, { maxPacketSize: 256, metrics: ['requestCount'] }, logger);
    inst.log!(fakeCtx({ routeId: 'r'.repeat(128), serviceId: 's'.repeat(128), consumer: { username: 'c'.repeat(100) } }));
    inst.log!(fakeCtx());
    assert.ok(await until(() => rx.lines().length === 1));
    assert.equal(rx.lines()[0], 'gatehouse.service.billing.route.invoices.consumer._.request.count:1|c');
    assert.equal(statsOf(store, `udp:127.0.0.1:${rx.port}`).tooLarge, 1);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.error, 'ETOOLARGE');
  });
});

describe('statsd transport', () => {
  it('one socket per host and port for every config of the process, kept across reloads, closed when unused', async () => {
    const rx = await receiver();
    const store = new PluginStateStore();
    stores.push(store);
    const env = pluginEnv({ store, plugin: 'statsd' });
    const conf = (over: Partial<Conf>) => ({ ...DEFAULTS, port: rx.port, flushInterval: 0, ...over }) as Conf;
    const key = `udp:127.0.0.1:${rx.port}`;
    const ctl = store.controlEnv('statsd');

    store.beginLoad();
    const a = statsd.create(conf({}), env);
    const b = statsd.create(conf({ prefix: 'other', maxPacketSize: 512 }), env);
    store.sweep();
    const target = ctl.state<UdpTarget>(key)!;
    assert.ok(target instanceof UdpTarget);
    assert.equal(ctl.stateKeys().filter((k) => k.startsWith('udp:')).length, 1, 'one socket for two configs');
    a.log!(fakeCtx());
    b.log!(fakeCtx());
    // Five lines a request (no request body: no request.bytes).
    assert.ok(await until(() => rx.lines().length === 10));

    // A reload with the same target keeps the socket and its counts.
    store.beginLoad();
    statsd.create(conf({ prefix: 'reloaded' }), env).log!(fakeCtx());
    store.sweep();
    assert.equal(ctl.state<UdpTarget>(key), target);
    assert.ok(await until(() => rx.lines().filter((l) => l.startsWith('reloaded.')).length === 5));
    assert.equal(target.stats.datagrams, 3);

    // Two loads without it: dropped and closed.
    const other = await receiver();
    for (let i = 0; i < 2; i++) {
      store.beginLoad();
      statsd.create(conf({ port: other.port }), env);
      store.sweep();
    }
    assert.equal(ctl.state<UdpTarget>(key), undefined);
    assert.ok(await until(() => target.isClosed));
  });

  it('looks a host name up once, not per packet; datagrams wait for the answer', async () => {
    const rx = await receiver();
    let lookups = 0;
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const target = new UdpTarget('statsd.test', rx.port, pino({ level: 'silent' }), async (host) => {
      lookups++;
      assert.equal(host, 'statsd.test');
      await answered;
      return [
        { address: '::1', family: 6 },
        { address: '127.0.0.1', family: 4 },
      ];
    });
    defer(() => target.close());
    const batcher = new Batcher(target, 1432, 0);
    for (let i = 0; i < 100; i++) {
      batcher.add(`m${i}:1|c`);
      if (i % 10 === 0) await sleep(1);
    }
    assert.equal(target.ready, false);
    answer();
    assert.ok(await until(() => rx.lines().length === 100), `${rx.lines().length}`);
    assert.equal(lookups, 1);
    assert.equal(target.address, '127.0.0.1', 'IPv4 preferred');
    assert.deepEqual(rx.lines().slice(0, 3), ['m0:1|c', 'm1:1|c', 'm2:1|c']);
  });

  it('a real host name (localhost) through the plugin', async () => {
    const rx = await receiver();
    const { inst } = make(rx.port, { host: 'localhost', metrics: ['requestCount'] });
    inst.log!(fakeCtx());
    assert.ok(await until(() => rx.lines().length === 1));
  });

  it('a failed lookup: nothing throws, waiting datagrams are bounded, one warning', async () => {
    const { logger, warnings } = captureLogger();
    const target = new UdpTarget('nowhere.invalid', 8125, logger, async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.invalid'), { code: 'ENOTFOUND' });
    });
    defer(() => target.close());
    for (let i = 0; i < MAX_PENDING + 44; i++) target.send(Buffer.from('x:1|c'));
    assert.ok(await until(() => target.stats.resolveErrors === 1));
    assert.equal(target.stats.dropped, 44);
    assert.equal(target.stats.datagrams, 0);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.error, 'ENOTFOUND');
    assert.equal(warnings[0]!.target, 'nowhere.invalid:8125');
  });

  it('a dead port: failures (ECONNREFUSED) counted and logged once, nothing thrown', async () => {
    const port = await deadPort();
    const { logger, warnings } = captureLogger();
    const { inst, store } = make(port, { metrics: ['requestCount'] }, logger);
    const stats = statsOf(store, `udp:127.0.0.1:${port}`);
    for (let i = 0; i < 30 && stats.sendErrors < 3; i++) {
      inst.log!(fakeCtx());
      await sleep(20);
    }
    assert.ok(stats.sendErrors >= 3, JSON.stringify(stats));
    assert.equal(stats.lastError, 'ECONNREFUSED');
    assert.equal(warnings.length, 1, 'at most one warning a minute');
    assert.equal(warnings[0]!.error, 'ECONNREFUSED');
    assert.equal(warnings[0]!.target, `127.0.0.1:${port}`);
  });
});

describe('statsd traffic', () => {
  async function setup(statsdPort: number, extra: Record<string, unknown> = {}) {
    const up = await upstream((req, res) => {
      const status = req.url === '/invoices/missing' ? 404 : 200;
      const body = JSON.stringify({ ok: status === 200 });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    const config = {
      consumers: [{ username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } }],
      services: [{ id: 'billing', upstream: { nodes: [node(up.port)] } }],
      globalPlugins: { statsd: { port: statsdPort, flushInterval: 20, ...extra } },
      routes: [
        { id: 'invoices', paths: ['/invoices/*'], serviceId: 'billing', plugins: { 'key-auth': {} } },
        { id: 'health.check', paths: ['/health'], upstream: { nodes: [node(up.port)] } },
      ],
    };
    const gw = await gateway(config, undefined, { statusServer: true });
    return { gw, config };
  }

  it('counts, statuses, timers and bytes of real requests by service, route and consumer', async () => {
    const rx = await receiver();
    const { gw } = await setup(rx.port);
    const key = { apikey: 'alice-secret-key' };
    assert.equal((await send(gw.http, '/invoices/1', { headers: key })).status, 200);
    assert.equal((await send(gw.http, '/invoices/missing', { headers: key })).status, 404);
    assert.equal((await send(gw.http, '/invoices/2', { method: 'POST', headers: key, body: 'hello' })).status, 200);
    assert.equal((await send(gw.http, '/invoices/3')).status, 401);
    assert.equal((await send(gw.http, '/health')).status, 200);
    const lines = () => rx.lines();
    assert.ok(await until(() => lines().filter((l) => l.includes('.request.count:')).length === 5), lines().join('\n'));
    const alice = 'gatehouse.service.billing.route.invoices.consumer.alice';
    const anon = 'gatehouse.service.billing.route.invoices.consumer._';
    const health = 'gatehouse.service._.route.health_check.consumer._';
    const has = (prefix: string) => lines().filter((l) => l.startsWith(prefix));
    assert.equal(has(`${alice}.request.count:1|c`).length, 3);
    assert.equal(has(`${alice}.status.200:1|c`).length, 2);
    assert.equal(has(`${alice}.status.404:1|c`).length, 1);
    assert.equal(has(`${alice}.upstream_latency:`).length, 3);
    assert.equal(has(`${alice}.latency:`).length, 3);
    assert.deepEqual(has(`${alice}.request.bytes:`), [`${alice}.request.bytes:5|c`]);
    // The gateway's own 401: counted and timed, with no upstream timer and no consumer.
    assert.deepEqual(has(`${anon}.`).filter((l) => !l.includes('.latency:') && !l.includes('.response.bytes:')).sort(), [
      `${anon}.request.count:1|c`,
      `${anon}.status.401:1|c`,
    ]);
    assert.equal(has(`${anon}.upstream_latency`).length, 0);
    assert.equal(has(`${anon}.latency:`).length, 1);
    assert.equal(has(`${health}.status.200:1|c`).length, 1);
    for (const l of has(`${alice}.latency:`)) {
      const v = Number(/:([\d.]+)\|ms$/.exec(l)![1]);
      assert.ok(v > 0 && v < 10000, l);
    }
    const body = has(`${alice}.response.bytes:`).map((l) => Number(/:(\d+)\|c$/.exec(l)![1]));
    assert.deepEqual(body.sort(), [11, 11, 12], 'response bodies: {"ok":true} twice, {"ok":false} once');
  });

  it('a dead StatsD port fails no request; the stats action shows the failures', async () => {
    const port = await deadPort();
    const { gw } = await setup(port, { flushInterval: 0 });
    for (let i = 0; i < 20; i++) {
      const r = await send(gw.http, '/health');
      assert.equal(r.status, 200);
      assert.deepEqual(json(r), { ok: true });
    }
    const stats = async () => {
      const r = await send(gw.status!, '/plugins/statsd/stats', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(r.status, 200);
      const t = (json(r).workers as Array<{ targets: Array<Record<string, unknown>> }>)[0]!.targets;
      assert.equal(t.length, 1);
      return t[0]!;
    };
    let s = await stats();
    for (let i = 0; i < 50 && (s.sendErrors as number) === 0; i++) {
      await send(gw.http, '/health');
      await sleep(20);
      s = await stats();
    }
    assert.equal(s.target, `127.0.0.1:${port}`);
    assert.equal(s.connected, true);
    assert.ok((s.datagrams as number) > 0);
    assert.ok((s.sendErrors as number) > 0, JSON.stringify(s));
    assert.equal(s.lastError, 'ECONNREFUSED');
  });

  it('a reload keeps the socket: counts go on, the new prefix is used', async () => {
    const rx = await receiver();
    const { gw, config } = await setup(rx.port, { flushInterval: 0, metrics: ['requestCount'] });
    await send(gw.http, '/health');
    assert.ok(await until(() => rx.lines().length === 1));
    gw.apply({ ...config, globalPlugins: { statsd: { port: rx.port, flushInterval: 0, metrics: ['requestCount'], prefix: 'edge', dimensions: ['route'] } } });
    await send(gw.http, '/health');
    assert.ok(await until(() => rx.lines().length === 2));
    assert.deepEqual(rx.lines(), ['gatehouse.service._.route.health_check.consumer._.request.count:1|c', 'edge.route.health_check.request.count:1|c']);
    const r = await send(gw.status!, '/plugins/statsd/stats', { method: 'POST', body: '{}' });
    const t = (json(r).workers as Array<{ targets: Array<Record<string, unknown>> }>)[0]!.targets;
    assert.equal(t.length, 1);
    assert.equal(t[0]!.datagrams, 2, 'the same socket sent both');
  });
});
