/**
 * @module plugins/basic-auth/index.test
 * basic-auth: schema and credential checks, the index it builds (no plain passwords, scrypt checked once,
 * bounded), then real traffic through an in-process gateway to a real upstream.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { parse } from 'yaml';
import { startInProcessGateway, type InProcessGateway } from '../../process/in-process.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import type { AuthResult, PluginContext, PluginInstance } from '../../dataplane/plugins/types.js';
import type { Consumer } from '../../model/consumer.js';
import { node, startUpstream, type TestUpstream } from '../../../test/helpers/upstream.js';
import { json, send, type Reply } from '../../../test/helpers/http.js';
import basicAuth, { type BasicAuthIndex } from './index.js';
import { Limiter, parseScrypt, scryptLimiter } from './scrypt.js';
import { harness } from '../../../test/helpers/harness.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const { upstream, gateway } = harness();

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
const code = (r: Reply) => (json(r).error as { code: string }).code;

/** Made by Python's hashlib.scrypt (an independent implementation) for the password "correct horse". */
const PYTHON_HASH = '$scrypt$ln=14,r=8,p=1$0/VMzfFfr02vOh+z9yXagQ$hVon7bP7mFgGL+Dane6LssAhjUQ2bGCoFepm6Xds584';

const DOC = readFileSync(new URL('../../../../docs/plugins/basic-auth.md', import.meta.url), 'utf8');

/** Run the node one-liner from docs/plugins/basic-auth.md, as a reader would, on a password. */
function hashWithDocOneLiner(password: string): string {
  const doc = DOC;
  const script = /node -e '([^']*scryptSync[^']*)'/.exec(doc)?.[1];
  assert.ok(script, 'the doc has the hashing one-liner');
  return execFileSync(process.execPath, ['-e', script], { input: password, encoding: 'utf8', timeout: 10_000 }).trim();
}

const consumers = [
  { username: 'alice', credentials: { 'basic-auth': { username: 'alice', password: 'alice-password' } } },
  { username: 'bob', credentials: { 'basic-auth': { username: 'bob@example', password: 'pässwört-ü' }, 'key-auth': { key: 'bob-secret-key-1' } } },
  { username: 'carol', credentials: { 'basic-auth': { username: 'carol', passwordHash: PYTHON_HASH } } },
];

function routeConfig(upPort: number, plugins: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { consumers, routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(upPort)] }, plugins }], ...extra };
}

function problemsOf(config: unknown): string[] {
  const r = validateDeclarative(config, builtinRegistry());
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('basic-auth schema', () => {
  const up = { upstreams: [{ id: 'u', nodes: [node(1)] }] };
  const route = (plugins: Record<string, unknown>) => ({ ...up, routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins }] });

  it('accepts good configs and credentials, filling defaults', () => {
    const cfg = { ...route({ 'basic-auth': {} }), consumers };
    const r = validateDeclarative(cfg, builtinRegistry());
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    assert.deepEqual(r.value.routes[0]!.plugins!['basic-auth'], { realm: 'gatehouse', hideCredentials: true });
    assert.deepEqual(problemsOf(route({ 'basic-auth': { realm: 'orders api', hideCredentials: false } })), []);
  });

  it('refuses bad route config with the field path', () => {
    const p = problemsOf(route({ 'basic-auth': { realm: 'a"b', bogus: 1 } }));
    assert.ok(p.some((x) => x.startsWith('routes[0].plugins.basic-auth.realm')), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('routes[0].plugins.basic-auth.bogus: is not a known field')), p.join('\n'));
    const onConsumer = problemsOf({ consumers: [{ username: 'c', plugins: { 'basic-auth': {} } }] });
    assert.ok(onConsumer.some((x) => x.startsWith('consumers[0].plugins.basic-auth: "basic-auth" cannot be configured on a consumer')), onConsumer.join('\n'));
  });

  it('refuses bad credentials without echoing secrets', () => {
    const cred = (c: unknown) => ({ consumers: [{ username: 'c', credentials: { 'basic-auth': c } }] });
    const cases: Array<[unknown, RegExp]> = [
      [{ username: 'c' }, /^consumers\[0\]\.credentials\.basic-auth\.password: is required/],
      [{ username: 'c', password: 'long-enough-1', passwordHash: PYTHON_HASH }, /^consumers\[0\]\.credentials\.basic-auth\.passwordHash: give either/],
      [{ username: 'a:b', password: 'long-enough-1' }, /^consumers\[0\]\.credentials\.basic-auth\.username/],
      [{ username: 'c', password: 'short' }, /^consumers\[0\]\.credentials\.basic-auth\.password/],
      [{ username: 'c', passwordHash: '$2b$10$notscryptnotscryptnotscryptnotscryptnotscryptnots' }, /passwordHash: is not a PHC scrypt string/],
      [{ username: 'c', passwordHash: PYTHON_HASH.replace('ln=14', 'ln=17') }, /passwordHash: needs more than 64 MiB/],
      [{ username: 'c', passwordHash: PYTHON_HASH.replace('ln=14', 'ln=4') }, /passwordHash: ln .* must be 10 to 20/],
      [{ username: 'c', passwordHash: '$scrypt$ln=14,r=8,p=1$c2FsdA$hVon7bP7mFgGL+Dane6LssAhjUQ2bGCoFepm6Xds584' }, /passwordHash: salt must be at least 8 bytes/],
      [{ username: 'c', password: 'long-enough-1', extra: true }, /credentials\.basic-auth: has a field that is not known/],
    ];
    for (const [c, expected] of cases) {
      const p = problemsOf(cred(c));
      assert.ok(p.some((x) => expected.test(x)), `${JSON.stringify(c)}:\n${p.join('\n')}`);
      assert.ok(!p.join('\n').includes('long-enough-1') && !p.join('\n').includes('hVon7bP7'), 'no secret in the messages');
    }
  });

  it('refuses two consumers with the same user name', () => {
    const p = problemsOf({
      consumers: [
        { username: 'a', credentials: { 'basic-auth': { username: 'same', password: 'password-a' } } },
        { username: 'b', credentials: { 'basic-auth': { username: 'same', password: 'password-b' } } },
      ],
    });
    assert.ok(p.some((x) => /^consumers\[1\]\.credentials\.basic-auth: .*consumer "a"/.test(x)), p.join('\n'));
  });

  it('parses PHC strings from the doc one-liner and from Python', () => {
    const fromDoc = hashWithDocOneLiner('x');
    const parsed = parseScrypt(fromDoc);
    assert.ok(typeof parsed !== 'string', fromDoc);
    assert.deepEqual([parsed.ln, parsed.r, parsed.p, parsed.salt.length, parsed.hash.length], [15, 8, 1, 16, 32]);
    const py = parseScrypt(PYTHON_HASH);
    assert.ok(typeof py !== 'string');
    assert.equal(py.ln, 14);
  });
});

/** Call the plugin directly, as the chain does, with a minimal context. */
function direct(entries: Array<{ username: string; credential: Record<string, string> }>) {
  const index = basicAuth.indexCredentials!(
    entries.map((e, i) => ({ consumer: { username: e.username } as Consumer, credential: e.credential as never, path: `consumers[${i}].credentials.basic-auth` })),
  );
  const instance: PluginInstance = basicAuth.create({ realm: 'gatehouse', hideCredentials: true }, pluginEnv({ credentials: index, path: 'routes[0].plugins.basic-auth' }));
  const auth = (authorization: string | undefined): Promise<AuthResult> => {
    const ctx = { headers: { authorization }, removeUpstreamHeader() {} } as unknown as PluginContext;
    return Promise.resolve(instance.authenticate!(ctx));
  };
  return { index, instance, auth };
}

const who = (r: AuthResult) => ('consumer' in r ? r.consumer.username : 'missing' in r ? 'missing' : 'invalid');

describe('basic-auth index', () => {
  it('keeps no plain password once built', () => {
    const { index } = direct([
      { username: 'alice', credential: { username: 'alice', password: 'plain-canary-password' } },
      { username: 'carol', credential: { username: 'carol', passwordHash: PYTHON_HASH } },
    ]);
    const dump = inspect(index, { depth: 10, maxArrayLength: Infinity, maxStringLength: Infinity });
    assert.ok(dump.includes('alice') && dump.includes('carol'), 'the dump shows the index');
    assert.ok(!dump.includes('plain-canary-password'), 'the password is not kept');
    const bytes = Buffer.from('plain-canary-password');
    for (const e of (index as BasicAuthIndex).byUser.values()) assert.ok(e.digest === null || e.digest.indexOf(bytes) === -1);
  });

  it('checks a hash with scrypt once, then by digest; bursts of one credential share a check', async () => {
    const { auth } = direct([{ username: 'carol', credential: { username: 'carol', passwordHash: PYTHON_HASH } }]);
    const before = scryptLimiter.started;
    const burst = await Promise.all(Array.from({ length: 5 }, () => auth(basic('carol', 'correct horse'))));
    assert.deepEqual(burst.map(who), ['carol', 'carol', 'carol', 'carol', 'carol']);
    assert.equal(scryptLimiter.started - before, 1, 'one scrypt check for the burst');
    assert.equal(who(await auth(basic('carol', 'correct horse'))), 'carol');
    assert.equal(scryptLimiter.started - before, 1, 'the verified password costs no more scrypt');

    assert.equal(who(await auth(basic('carol', 'wrong horse'))), 'invalid');
    assert.equal(scryptLimiter.started - before, 2);
    assert.equal(who(await auth(basic('carol', 'wrong horse'))), 'invalid');
    assert.equal(scryptLimiter.started - before, 2, 'a repeated wrong password is remembered');
    assert.equal(who(await auth(basic('carol', 'correct horse'))), 'carol', 'the right one still works');
  });

  it('refuses an unknown user at the cost of a known one', async () => {
    const mixed = direct([
      { username: 'alice', credential: { username: 'alice', password: 'alice-password' } },
      { username: 'carol', credential: { username: 'carol', passwordHash: PYTHON_HASH } },
    ]);
    let before = scryptLimiter.started;
    assert.equal(who(await mixed.auth(basic('nobody', 'whatever-1'))), 'invalid');
    assert.equal(scryptLimiter.started - before, 1, 'an unknown name is checked against the dummy hash');
    before = scryptLimiter.started;
    assert.equal(who(await mixed.auth(basic('alice', 'wrong-password'))), 'invalid');
    assert.equal(scryptLimiter.started - before, 1, 'so is a wrong plain password, when some credential is hashed');
    before = scryptLimiter.started;
    assert.equal(who(await mixed.auth(basic('alice', 'alice-password'))), 'alice');
    assert.equal(scryptLimiter.started - before, 0, 'a right plain password costs no scrypt');

    const plain = direct([{ username: 'alice', credential: { username: 'alice', password: 'alice-password' } }]);
    before = scryptLimiter.started;
    assert.equal(who(await plain.auth(basic('nobody', 'whatever-1'))), 'invalid');
    assert.equal(who(await plain.auth(basic('alice', 'wrong-password'))), 'invalid');
    assert.equal(scryptLimiter.started - before, 0, 'without hashes every refusal is one HMAC');
  });

  it('parses the header strictly', async () => {
    const { auth } = direct([
      { username: 'alice', credential: { username: 'alice', password: 'alice:pass:word' } },
      { username: 'bob', credential: { username: 'bob', password: 'bob?>password' } },
    ]);
    assert.equal(who(await auth(undefined)), 'missing');
    assert.equal(who(await auth('Bearer abc.def.ghi')), 'missing', 'another scheme is not ours');
    assert.equal(who(await auth('Basicabc')), 'missing');
    assert.equal(who(await auth('Basic')), 'invalid');
    assert.equal(who(await auth('Basic !!!!')), 'invalid');
    assert.equal(who(await auth(`Basic ${Buffer.from('alice').toString('base64')}`)), 'invalid', 'no colon');
    assert.equal(who(await auth(`Basic ${Buffer.from(':alice:pass:word').toString('base64')}`)), 'invalid', 'empty user');
    const good = basic('alice', 'alice:pass:word');
    assert.equal(who(await auth(good)), 'alice', 'the password may hold colons');
    assert.equal(who(await auth(`basic   ${good.slice(6)}`)), 'alice', 'scheme is case-insensitive');
    // bob's token is Ym9iOmJvYj8+cGFzc3dvcmQ= : node's decoder would also take it URL-safe, unpadded or with spaces.
    assert.equal(who(await auth('Basic Ym9iOmJvYj8+cGFzc3dvcmQ=')), 'bob');
    for (const lenient of ['Ym9iOmJvYj8-cGFzc3dvcmQ=', 'Ym9iOmJvYj8+cGFzc3dvcmQ', 'Ym9i OmJvYj8+cGFzc3dvcmQ=']) {
      assert.equal(Buffer.from(lenient, 'base64').toString(), 'bob:bob?>password', 'node decodes it leniently');
      assert.equal(who(await auth(`Basic ${lenient}`)), 'invalid', `${lenient} is refused as malformed`);
    }
  });
});

describe('Limiter', () => {
  it('runs at most maxRunning at once, queues maxWaiting, refuses the rest', async () => {
    const l = new Limiter(2, 1);
    const gates: Array<() => void> = [];
    const task = () => new Promise<number>((r) => gates.push(() => r(1)));
    const a = l.run(task);
    const b = l.run(task);
    const c = l.run(task);
    assert.ok(a && b && c);
    assert.equal(l.run(task), null, 'the fourth is refused');
    assert.equal(gates.length, 2, 'two running');
    gates.shift()!();
    await a;
    await new Promise((r) => setImmediate(r));
    assert.equal(gates.length, 2, 'the queued one took the free slot');
    gates.splice(0).forEach((g) => g());
    assert.deepEqual(await Promise.all([b, c]), [1, 1]);
    assert.equal(l.peak, 2);
    assert.equal(l.started, 3);
    assert.ok(l.run(task), 'free again');
    gates.splice(0).forEach((g) => g());
  });
});

describe('basic-auth traffic', () => {
  it('authenticates, hides the credential, sends the consumer upstream', async () => {
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, { 'basic-auth': {} }));
    const ok = await send(gw.http, '/x', { headers: { authorization: basic('alice', 'alice-password'), 'x-consumer-username': 'mallory' } });
    assert.equal(ok.status, 200);
    const h = json(ok).headers as Record<string, string>;
    assert.equal(h['x-consumer-username'], 'alice');
    assert.equal(h.authorization, undefined, 'Authorization is removed before forwarding');

    const utf8 = json(await send(gw.http, '/x', { headers: { authorization: basic('bob@example', 'pässwört-ü') } }));
    assert.equal((utf8.headers as Record<string, string>)['x-consumer-username'], 'bob', 'UTF-8 passwords; the consumer name, not the Basic user name');

    const hashed = json(await send(gw.http, '/x', { headers: { authorization: basic('carol', 'correct horse') } }));
    assert.equal((hashed.headers as Record<string, string>)['x-consumer-username'], 'carol', 'a passwordHash credential');
    assert.equal(up.seen.length, 3);
  });

  it('refuses wrong, unknown and malformed credentials; challenges a missing one', async () => {
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, { 'basic-auth': {} }));
    const refusals: Array<[string | undefined, number, string]> = [
      [basic('alice', 'wrong-password'), 401, 'GH_ERR_AUTH_INVALID'],
      [basic('nobody', 'alice-password'), 401, 'GH_ERR_AUTH_INVALID'],
      [basic('carol', 'wrong horse'), 401, 'GH_ERR_AUTH_INVALID'],
      ['Basic %%%not-base64%%%', 401, 'GH_ERR_AUTH_INVALID'],
      [`Basic ${Buffer.from('alice-password').toString('base64')}`, 401, 'GH_ERR_AUTH_INVALID'],
      [undefined, 401, 'GH_ERR_AUTH_REQUIRED'],
      ['Bearer some.jwt.token', 401, 'GH_ERR_AUTH_REQUIRED'],
    ];
    for (const [authorization, status, expected] of refusals) {
      const r = await send(gw.http, '/x', { headers: authorization === undefined ? {} : { authorization } });
      assert.equal(r.status, status, String(authorization));
      assert.equal(code(r), expected, String(authorization));
      if (expected === 'GH_ERR_AUTH_REQUIRED') assert.equal(r.headers['www-authenticate'], 'Basic realm="gatehouse"');
      else assert.equal(r.headers['www-authenticate'], undefined, 'no challenge when a credential was refused');
      assert.ok(!r.body.includes('alice') && !r.body.includes('carol'), 'the answer names nobody');
    }
    assert.equal(up.seen.length, 0, 'nothing reached the upstream');
  });

  it('uses the configured realm, and keeps the header when hideCredentials is false', async () => {
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, { 'basic-auth': { realm: 'orders api', hideCredentials: false } }));
    assert.equal((await send(gw.http, '/')).headers['www-authenticate'], 'Basic realm="orders api"');
    const auth = basic('alice', 'alice-password');
    const r = json(await send(gw.http, '/', { headers: { authorization: auth } }));
    assert.equal((r.headers as Record<string, string>).authorization, auth);
  });

  it('with key-auth on the same route, either credential authenticates', async () => {
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, { 'basic-auth': {}, 'key-auth': {} }));
    const byKey = await send(gw.http, '/', { headers: { apikey: 'bob-secret-key-1' } });
    assert.equal((json(byKey).headers as Record<string, string>)['x-consumer-username'], 'bob');
    const byBasic = await send(gw.http, '/', { headers: { authorization: basic('alice', 'alice-password') } });
    assert.equal((json(byBasic).headers as Record<string, string>)['x-consumer-username'], 'alice');
    const wrongBasicRightKey = await send(gw.http, '/', { headers: { authorization: basic('alice', 'nope-nope'), apikey: 'bob-secret-key-1' } });
    assert.equal(wrongBasicRightKey.status, 200, 'any one auth plugin that succeeds authenticates');
    const h = json(wrongBasicRightKey).headers as Record<string, string>;
    assert.equal(h['x-consumer-username'], 'bob');
    assert.equal(h.authorization, undefined, 'the refused Basic credential is still not forwarded');

    const none = await send(gw.http, '/');
    assert.equal(none.status, 401);
    assert.equal(code(none), 'GH_ERR_AUTH_REQUIRED');
    assert.equal(none.headers['www-authenticate'], 'Basic realm="gatehouse"');
    const bothWrong = await send(gw.http, '/', { headers: { authorization: basic('alice', 'nope-nope'), apikey: 'wrong-key-123' } });
    assert.equal(code(bothWrong), 'GH_ERR_AUTH_INVALID');
    assert.equal(up.seen.length, 3);
  });

  it('accepts a hash made with the documented one-liner', async () => {
    const up = await upstream();
    const hash = hashWithDocOneLiner('from the doc 1');
    const gw = await gateway({
      consumers: [{ username: 'dora', credentials: { 'basic-auth': { username: 'dora', passwordHash: hash } } }],
      routes: [{ id: 'r', paths: ['/*'], upstream: { nodes: [node(up.port)] }, plugins: { 'basic-auth': {} } }],
    });
    assert.equal((await send(gw.http, '/', { headers: { authorization: basic('dora', 'from the doc 1') } })).status, 200);
    assert.equal((await send(gw.http, '/', { headers: { authorization: basic('dora', 'from the doc 2') } })).status, 401);
  });

  it('a flood of wrong guesses runs few scrypt checks at once and every guess is refused', async () => {
    const up = await upstream();
    const gw = await gateway(routeConfig(up.port, { 'basic-auth': {} }));
    const before = scryptLimiter.started;
    // 40 guesses arrive within milliseconds; each check takes tens: 2 run, 32 wait, the rest are refused at once.
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => send(gw.http, '/', { headers: { authorization: basic('carol', `guess-${i}`) } })));
    assert.deepEqual(new Set(replies.map((r) => `${r.status} ${code(r)}`)), new Set(['401 GH_ERR_AUTH_INVALID']));
    assert.ok(scryptLimiter.peak <= scryptLimiter.maxRunning, `peak ${scryptLimiter.peak}`);
    const checked = scryptLimiter.started - before;
    assert.ok(checked <= scryptLimiter.maxRunning + scryptLimiter.maxWaiting, `${checked} checks ran for 40 guesses`);
    assert.equal(up.seen.length, 0);
  });
});

describe('basic-auth doc', () => {
  it('the example in docs/plugins/basic-auth.md is valid and answers as the page shows', async () => {
    const yamlBlock = /```yaml\n([\s\S]*?)```/.exec(DOC)?.[1];
    assert.ok(yamlBlock, 'the doc has the example config');
    const example = parse(yamlBlock) as { consumers: unknown[]; routes: Array<Record<string, unknown>> };
    const up = await upstream();
    const gw = await gateway({ ...example, upstreams: [{ id: 'orders', nodes: [node(up.port)] }] });
    const ok = await send(gw.http, '/orders/1', { headers: { authorization: basic('alice', 'correct horse battery') } });
    assert.equal(ok.status, 200);
    assert.equal((json(ok).headers as Record<string, string>)['x-consumer-username'], 'alice');
    const hashed = await send(gw.http, '/orders/1', { headers: { authorization: basic('batch', 'correct horse') } });
    assert.equal((json(hashed).headers as Record<string, string>)['x-consumer-username'], 'billing-batch', 'the example hash is of "correct horse"');
    const none = await send(gw.http, '/orders/1');
    assert.equal(code(none), 'GH_ERR_AUTH_REQUIRED');
    assert.equal(none.headers['www-authenticate'], 'Basic realm="gatehouse"');
    assert.equal(code(await send(gw.http, '/orders/1', { headers: { authorization: basic('alice', 'wrong password') } })), 'GH_ERR_AUTH_INVALID');
    assert.equal(code(await send(gw.http, '/orders/1', { headers: { authorization: 'Basic !!!' } })), 'GH_ERR_AUTH_INVALID');
  });
});
