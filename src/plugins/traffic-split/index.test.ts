/**
 * @module plugins/traffic-split/index.test
 * traffic-split: schema and checks with field paths, unknown upstream ids refused at config load at every
 * scope, the weighted pick driven directly, then real traffic through an in-process gateway to real upstreams
 * (exact 10/90 split, 0/100 switch, header/cookie/query rules, rule order, the route's own upstream, timeouts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { pino } from 'pino';
import { parse } from 'yaml';
import trafficSplit from './index.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import type { PluginContext, PluginInstance } from '../../dataplane/plugins/types.js';
import { harness } from '../../../test/helpers/harness.js';
import { node, type TestUpstream } from '../../../test/helpers/upstream.js';
import { send } from '../../../test/helpers/http.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const { upstream, gateway } = harness();
const P = 'routes[0].plugins.traffic-split';

function problemsOf(plugin: unknown, extra: Record<string, unknown> = {}): string[] {
  const r = validateDeclarative(
    {
      upstreams: [{ id: 'main', nodes: [node(1)] }, { id: 'canary', nodes: [node(2)] }],
      routes: [{ id: 'r', paths: ['/'], upstreamId: 'main', plugins: { 'traffic-split': plugin } }],
      ...extra,
    },
    builtinRegistry(),
  );
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** The plugin instance as the gateway makes it (config with defaults filled by validation). */
function instance(config: unknown): PluginInstance {
  return trafficSplit.create(config as Parameters<typeof trafficSplit.create>[0], pluginEnv());
}

/** Runs the hook on `n` bare requests and lists the upstream each was sent to ('-' for the route's own). */
function picks(inst: PluginInstance, n: number, known = new Set(['a', 'b', 'c'])): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let picked = '-';
    const ctx = {
      method: 'GET',
      path: '/',
      query: '',
      headers: {},
      useUpstream(id: string) {
        if (!known.has(id)) return false;
        picked = id;
        return true;
      },
    } as unknown as PluginContext;
    inst.beforeUpstream!(ctx);
    out.push(picked);
  }
  return out;
}

/** An upstream that answers with its own name, so a test sees where each request went. */
async function named(name: string, delayMs = 0): Promise<TestUpstream> {
  return upstream((_req, res: ServerResponse) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) });
      res.end(name);
    };
    if (delayMs > 0) setTimeout(answer, delayMs).unref();
    else answer();
  });
}

async function where(port: number, path: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await send(port, path, { headers, timeout: 5000 });
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.body}`);
  return r.body;
}

describe('traffic-split schema', () => {
  it('accepts weighted splits, conditions and entries without upstreamId', () => {
    assert.deepEqual(problemsOf({ rules: [{ upstreams: [{ upstreamId: 'canary', weight: 10 }, { weight: 90 }] }] }), []);
    assert.deepEqual(problemsOf({ rules: [{ upstreams: [{ upstreamId: 'canary', weight: 0 }, { upstreamId: 'main', weight: 100 }] }] }), []);
    assert.deepEqual(
      problemsOf({
        rules: [
          { match: [{ in: 'header', name: 'x-canary', op: 'equals', value: '1' }], upstreams: [{ upstreamId: 'canary', weight: 1 }] },
          { match: [{ in: 'cookie', name: 'beta', op: 'exists' }, { in: 'query', name: 'v', op: 'in', values: ['2', '3'] }], upstreams: [{ upstreamId: 'canary', weight: 1 }] },
          { upstreams: [{ weight: 1 }] },
        ],
      }),
      [],
    );
  });

  it('refuses bad configs with the field path', () => {
    const only = (config: unknown, path: string, message?: RegExp) => {
      const got = problemsOf(config);
      assert.ok(got.length > 0 && got.every((p) => p.startsWith(`${P}${path}:`)), `${path}: ${got.join('\n')}`);
      if (message) assert.match(got.join('\n'), message);
    };
    only({}, '.rules');
    only({ rules: [] }, '.rules');
    only({ rules: [{}] }, '.rules[0].upstreams');
    only({ rules: [{ upstreams: [] }] }, '.rules[0].upstreams');
    only({ rules: [{ upstreams: [{ upstreamId: 'canary' }] }] }, '.rules[0].upstreams[0].weight');
    only({ rules: [{ upstreams: [{ weight: -1 }] }] }, '.rules[0].upstreams[0].weight');
    only({ rules: [{ upstreams: [{ weight: 1.5 }] }] }, '.rules[0].upstreams[0].weight');
    only({ rules: [{ upstreams: [{ weight: 1, extra: 1 }] }] }, '.rules[0].upstreams[0].extra');
    only({ rules: [{ upstreams: [{ upstreamId: 'bad id', weight: 1 }] }] }, '.rules[0].upstreams[0].upstreamId');
    only({ rules: [{ upstreams: [{ weight: 0 }, { upstreamId: 'canary', weight: 0 }] }] }, '.rules[0].upstreams', /weight above 0/);
    only({ rules: [{ upstreams: [{ upstreamId: 'canary', weight: 1 }, { upstreamId: 'canary', weight: 2 }] }] }, '.rules[0].upstreams[1]', /duplicates upstream "canary"/);
    only({ rules: [{ upstreams: [{ weight: 1 }, { weight: 2 }] }] }, '.rules[0].upstreams[1]', /route's own upstream/);
    only({ rules: [{ match: [], upstreams: [{ weight: 1 }] }] }, '.rules[0].match');
    only({ rules: [{ match: [{ in: 'body', name: 'x' }], upstreams: [{ weight: 1 }] }] }, '.rules[0].match[0].in');
    only({ rules: [{ match: [{ in: 'header', name: 'x' }], upstreams: [{ weight: 1 }] }] }, '.rules[0].match[0].value', /required for op equals/);
    only({ rules: [{ match: [{ in: 'query', name: 'x', op: 'in' }], upstreams: [{ weight: 1 }] }] }, '.rules[0].match[0].values');
    only({ rules: [{ match: [{ in: 'cookie', name: 'x', op: 'regex', value: '(' }], upstreams: [{ weight: 1 }] }] }, '.rules[0].match[0].value', /regular expression/);
    only({ rules: [{ upstreams: [{ weight: 1 }] }, { match: [{ in: 'header', name: 'x', op: 'exists' }], upstreams: [{ weight: 1 }] }] }, '.rules[1]', /never tried/);
    only({ rules: [{ upstreams: [{ weight: 1 }] }], extra: true }, '.extra');
  });

  it('refuses an upstream id the config does not have, with its path, at every scope', () => {
    assert.deepEqual(problemsOf({ rules: [{ upstreams: [{ weight: 1 }, { upstreamId: 'nope', weight: 1 }] }] }), [
      `${P}.rules[0].upstreams[1].upstreamId: names upstream "nope", which does not exist`,
    ]);
    // A weight of 0 does not make a dangling id harmless: the next edit of the weight would send traffic nowhere.
    assert.deepEqual(problemsOf({ rules: [{ match: [{ in: 'header', name: 'x-new', op: 'exists' }], upstreams: [{ upstreamId: 'canary', weight: 1 }] }, { upstreams: [{ upstreamId: 'gone', weight: 0 }, { weight: 1 }] }] }), [
      `${P}.rules[1].upstreams[0].upstreamId: names upstream "gone", which does not exist`,
    ]);
    const bad = { rules: [{ upstreams: [{ upstreamId: 'nope', weight: 1 }] }] };
    const msg = 'rules[0].upstreams[0].upstreamId: names upstream "nope", which does not exist';
    assert.deepEqual(problemsOf({ rules: [{ upstreams: [{ weight: 1 }] }] }, { globalPlugins: { 'traffic-split': bad } }), [`globalPlugins.traffic-split.${msg}`]);
    assert.deepEqual(
      problemsOf({ rules: [{ upstreams: [{ weight: 1 }] }] }, { services: [{ id: 's', upstreamId: 'main', plugins: { 'traffic-split': bad } }] }),
      [`services[0].plugins.traffic-split.${msg}`],
    );
    assert.deepEqual(
      problemsOf({ rules: [{ upstreams: [{ weight: 1 }] }] }, { consumers: [{ username: 'alice', plugins: { 'traffic-split': bad } }] }),
      [`consumers[0].plugins.traffic-split.${msg}`],
    );
    // An inline upstream of a route has no id to send traffic to: only the config's named upstreams count.
    assert.deepEqual(problemsOf({ rules: [{ upstreams: [{ upstreamId: 'r', weight: 1 }] }] }), [`${P}.rules[0].upstreams[0].upstreamId: names upstream "r", which does not exist`]);
  });
});

describe('traffic-split weighted pick', () => {
  it('is nginx smooth weighted round robin: exact, spread out, the same every time', () => {
    assert.deepEqual(picks(instance({ rules: [{ upstreams: [{ upstreamId: 'a', weight: 5 }, { upstreamId: 'b', weight: 1 }, { upstreamId: 'c', weight: 1 }] }] }), 14), [
      'a', 'a', 'b', 'a', 'c', 'a', 'a',
      'a', 'a', 'b', 'a', 'c', 'a', 'a',
    ]);
    const tenNinety = picks(instance({ rules: [{ upstreams: [{ upstreamId: 'a', weight: 10 }, { weight: 90 }] }] }), 1000);
    for (let i = 0; i < 1000; i += 10) assert.equal(tenNinety.slice(i, i + 10).filter((p) => p === 'a').length, 1, `block at ${i}`);
    assert.deepEqual(picks(instance({ rules: [{ upstreams: [{ upstreamId: 'a', weight: 0 }, { weight: 100 }] }] }), 50), new Array(50).fill('-'));
  });

  it('keeps its cycle per instance (per route and config)', () => {
    const config = { rules: [{ upstreams: [{ upstreamId: 'a', weight: 1 }, { upstreamId: 'b', weight: 1 }] }] };
    const one = instance(config);
    const two = instance(config);
    assert.deepEqual(picks(one, 3), ['a', 'b', 'a']);
    assert.deepEqual(picks(two, 1), ['a']);
    assert.deepEqual(picks(one, 1), ['b']);
  });

  it('fails the request rather than serve the wrong upstream when an id is unknown at run time', () => {
    const inst = instance({ rules: [{ upstreams: [{ upstreamId: 'unknown', weight: 1 }] }] });
    assert.throws(() => picks(inst, 1), /upstream "unknown" does not exist/);
  });
});

describe('traffic-split through the gateway', () => {
  it('sends exactly 10 of every 100 requests to the canary, spread out, and the rest to the route\'s upstream', async () => {
    const main = await named('main');
    const canary = await named('canary');
    const gw = await gateway({
      upstreams: [{ id: 'main', nodes: [node(main.port)] }, { id: 'canary', nodes: [node(canary.port)] }],
      routes: [{ id: 'r', paths: ['/*'], upstreamId: 'main', plugins: { 'traffic-split': { rules: [{ upstreams: [{ upstreamId: 'canary', weight: 10 }, { weight: 90 }] }] } } }],
    });
    const got: string[] = [];
    for (let i = 0; i < 100; i++) got.push(await where(gw.http, `/x/${i}`));
    assert.equal(got.filter((g) => g === 'canary').length, 10);
    assert.equal(got.filter((g) => g === 'main').length, 90);
    for (let i = 0; i < 100; i += 10) assert.equal(got.slice(i, i + 10).filter((g) => g === 'canary').length, 1, `block at ${i}`);
    assert.equal(canary.seen.length, 10);
    assert.equal(main.seen.length, 90);
    // The request went on unchanged to the upstream picked.
    assert.ok(canary.seen.every((s) => s.method === 'GET' && /^\/x\/\d+$/.test(s.url)));
  });

  it('switches blue/green with weights 0 and 100, on named and inline route upstreams', async () => {
    const blue = await named('blue');
    const green = await named('green');
    const gw = await gateway({
      upstreams: [{ id: 'blue', nodes: [node(blue.port)] }, { id: 'green', nodes: [node(green.port)] }],
      routes: [
        { id: 'to-green', paths: ['/g'], upstreamId: 'blue', plugins: { 'traffic-split': { rules: [{ upstreams: [{ upstreamId: 'green', weight: 100 }, { weight: 0 }] }] } } },
        { id: 'stay-blue', paths: ['/b'], upstreamId: 'blue', plugins: { 'traffic-split': { rules: [{ upstreams: [{ upstreamId: 'green', weight: 0 }, { weight: 100 }] }] } } },
        // The route's own upstream is inline (it has no id): an entry without upstreamId still reaches it.
        { id: 'inline', paths: ['/i'], upstream: { nodes: [node(blue.port)] }, plugins: { 'traffic-split': { rules: [{ upstreams: [{ weight: 1 }, { upstreamId: 'green', weight: 1 }] }] } } },
      ],
    });
    for (let i = 0; i < 20; i++) {
      assert.equal(await where(gw.http, '/g'), 'green');
      assert.equal(await where(gw.http, '/b'), 'blue');
    }
    const inline: string[] = [];
    for (let i = 0; i < 4; i++) inline.push(await where(gw.http, '/i'));
    assert.deepEqual(inline, ['blue', 'green', 'blue', 'green']);
    assert.equal(green.seen.length, 22);
    assert.equal(blue.seen.length, 22);
  });

  it('picks by header, cookie and query rules, the first matching rule winning, else the route\'s upstream', async () => {
    const main = await named('main');
    const canary = await named('canary');
    const beta = await named('beta');
    const gw = await gateway({
      upstreams: [{ id: 'main', nodes: [node(main.port)] }, { id: 'canary', nodes: [node(canary.port)] }, { id: 'beta', nodes: [node(beta.port)] }],
      routes: [
        {
          id: 'r',
          paths: ['/*'],
          upstreamId: 'main',
          plugins: {
            'traffic-split': {
              rules: [
                { match: [{ in: 'header', name: 'X-Canary', op: 'equals', value: '1' }], upstreams: [{ upstreamId: 'canary', weight: 1 }] },
                { match: [{ in: 'cookie', name: 'channel', op: 'equals', value: 'beta' }], upstreams: [{ upstreamId: 'beta', weight: 1 }] },
                { match: [{ in: 'query', name: 'version', op: 'in', values: ['2', '3'] }], upstreams: [{ upstreamId: 'beta', weight: 1 }] },
                // Matches too, but after the header rule: a request with both goes to canary.
                { match: [{ in: 'header', name: 'x-canary', op: 'exists' }], upstreams: [{ upstreamId: 'beta', weight: 1 }] },
              ],
            },
          },
        },
      ],
    });
    assert.equal(await where(gw.http, '/a'), 'main');
    assert.equal(await where(gw.http, '/a', { 'x-canary': '1' }), 'canary');
    assert.equal(await where(gw.http, '/a', { 'x-canary': '0' }), 'beta');
    assert.equal(await where(gw.http, '/a', { cookie: 'theme=dark; channel=beta' }), 'beta');
    assert.equal(await where(gw.http, '/a', { cookie: 'channel=stable' }), 'main');
    assert.equal(await where(gw.http, '/a?version=3'), 'beta');
    assert.equal(await where(gw.http, '/a?version=1'), 'main');
    // Several rules hold: the header rule comes first.
    assert.equal(await where(gw.http, '/a?version=2', { 'x-canary': '1', cookie: 'channel=beta' }), 'canary');
    assert.equal(await where(gw.http, '/a?version=2', { cookie: 'channel=beta' }), 'beta');
    assert.deepEqual([main.seen.length, canary.seen.length, beta.seen.length], [3, 2, 4]);
  });

  it('keeps the route\'s timeouts on the picked upstream; without them, the picked upstream\'s apply', async () => {
    const main = await named('main');
    // Answers after 4 s: a 504 well before that shows the 200 ms read timeout was the one applied.
    const slow = await named('slow', 4000);
    const gw = await gateway({
      upstreams: [
        { id: 'main', nodes: [node(main.port)] },
        // Generous timeouts of its own: the route's must still win.
        { id: 'slow', nodes: [node(slow.port)], timeout: { read: 60000 }, retries: 0 },
        { id: 'slow-strict', nodes: [node(slow.port)], timeout: { read: 200 }, retries: 0 },
      ],
      routes: [
        { id: 'timed', paths: ['/timed'], upstreamId: 'main', timeout: { read: 200 }, plugins: { 'traffic-split': { rules: [{ upstreams: [{ upstreamId: 'slow', weight: 1 }] }] } } },
        { id: 'untimed', paths: ['/untimed'], upstreamId: 'main', plugins: { 'traffic-split': { rules: [{ upstreams: [{ upstreamId: 'slow-strict', weight: 1 }] }] } } },
      ],
    });
    for (const path of ['/timed', '/untimed']) {
      const t0 = Date.now();
      const r = await send(gw.http, path, { timeout: 8000 });
      assert.equal(r.status, 504, `${path}: ${r.body}`);
      assert.match(r.body, /GH_ERR_UPSTREAM_TIMEOUT/);
      // undici checks timeouts on a coarse timer: well under the upstream's 4 s, not exactly 200 ms.
      assert.ok(Date.now() - t0 < 3000, `${path} took ${Date.now() - t0} ms`);
    }
    assert.equal(main.seen.length, 0);
    assert.equal(slow.seen.length, 2);
  });

  it('runs the examples in docs/plugins/traffic-split.md as the page says', async () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/traffic-split.md', import.meta.url), 'utf8');
    type Example = { upstreams: Array<{ id: string; nodes: unknown[] }>; routes: unknown[] };
    const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as Example);
    assert.equal(examples.length, 3, 'weighted canary, canary by condition, blue/green');
    // The page's upstreams, each replaced by a real one that answers with its id.
    const run = async (example: Example) => {
      const upstreams = await Promise.all(example.upstreams.map(async (u) => ({ ...u, nodes: [node((await named(u.id)).port)] })));
      return gateway({ ...example, upstreams });
    };
    const [weighted, conditions, blueGreen] = await Promise.all(examples.map(run));
    const got: string[] = [];
    for (let i = 0; i < 20; i++) got.push(await where(weighted!.http, '/orders/42'));
    assert.deepEqual([got.filter((g) => g === 'orders-canary').length, got.filter((g) => g === 'orders').length], [2, 18]);
    assert.equal(await where(conditions!.http, '/orders/42'), 'orders');
    assert.equal(await where(conditions!.http, '/orders/42', { 'x-canary': '1' }), 'orders-canary');
    assert.equal(await where(conditions!.http, '/orders/42', { cookie: 'channel=beta' }), 'orders-canary');
    assert.equal(await where(conditions!.http, '/orders/42?version=2'), 'orders-canary');
    assert.equal(await where(blueGreen!.http, '/shop/cart'), 'shop-green');
  });
});
