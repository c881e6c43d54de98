/**
 * @module plugins/jwt-auth/index.test
 * jwt-auth: schema and credential checks, the RFC 7515 / 7519 / 8037 test vectors, tokens minted with jose for
 * every algorithm through a real gateway and upstream, the attacks the pinned algorithm stops, time and
 * audience rules, token sources, and JWKS caching, rotation and failure against a local JWKS server.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes, randomUUID, sign as cryptoSign, createPublicKey, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SignJWT, exportJWK, type JWK } from 'jose';
import { startInProcessGateway, type InProcessGateway } from '../../process/in-process.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { createLogger } from '../../core/logger.js';
import { errorBody } from '../../core/errors.js';
import type { PluginContext } from '../../dataplane/plugins/types.js';
import { node, startUpstream, type TestUpstream } from '../../../test/helpers/upstream.js';
import { json, send, type Reply } from '../../../test/helpers/http.js';
import { ALGORITHMS, claimsAcceptable, decodeJws, hmacVerifier, publicKeyVerifier, type Algorithm } from './verify.js';
import { JwksSource, cacheControlMaxAge } from './jwks.js';
import { harness } from '../../../test/helpers/harness.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const { upstream, gateway, defer } = harness();

const INVALID_BODY = errorBody('GH_ERR_AUTH_INVALID').toString();
const REQUIRED_BODY = errorBody('GH_ERR_AUTH_REQUIRED').toString();

/** A refusal is exactly the generic error: no library message, key or claim in it. */
function assertInvalid(r: Reply, what: string): void {
  assert.equal(r.status, 401, `${what}: status`);
  assert.equal(r.body, INVALID_BODY, `${what}: body`);
}

function assertRequired(r: Reply, what: string): void {
  assert.equal(r.status, 401, `${what}: status`);
  assert.equal(r.body, REQUIRED_BODY, `${what}: body`);
}

function upstreamHeaders(r: Reply): Record<string, string> {
  assert.equal(r.status, 200, `expected 200, got ${r.status} ${r.body}`);
  return json(r).headers as Record<string, string>;
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

// ---- keys: one per algorithm family, made once -------------------------------------------------------

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
const ed25519 = generateKeyPairSync('ed25519');
const ed448 = generateKeyPairSync('ed448');
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;

const hsSecret = randomBytes(32).toString('hex'); // 64 ASCII bytes: enough for every HS*
const hs512Base64 = randomBytes(64).toString('base64');

interface AlgCase {
  alg: Algorithm;
  credential: Record<string, unknown>;
  signKey: KeyObject | Uint8Array;
}

const CASES: AlgCase[] = [
  { alg: 'HS256', credential: { secret: hsSecret }, signKey: Buffer.from(hsSecret) },
  { alg: 'HS384', credential: { secret: hsSecret }, signKey: Buffer.from(hsSecret) },
  { alg: 'HS512', credential: { secret: hs512Base64, base64Secret: true }, signKey: Buffer.from(hs512Base64, 'base64') },
  { alg: 'RS256', credential: { publicKey: pem(rsa.publicKey) }, signKey: rsa.privateKey },
  { alg: 'RS384', credential: { publicKey: pem(rsa.publicKey) }, signKey: rsa.privateKey },
  { alg: 'RS512', credential: { publicKey: pem(rsa.publicKey) }, signKey: rsa.privateKey },
  { alg: 'PS256', credential: { publicKey: pem(rsa.publicKey) }, signKey: rsa.privateKey },
  { alg: 'PS384', credential: { publicKey: pem(rsa.publicKey) }, signKey: rsa.privateKey },
  { alg: 'PS512', credential: { publicKey: pem(rsa.publicKey) }, signKey: rsa.privateKey },
  { alg: 'ES256', credential: { publicKey: pem(p256.publicKey) }, signKey: p256.privateKey },
  { alg: 'ES384', credential: { publicKey: pem(p384.publicKey) }, signKey: p384.privateKey },
  { alg: 'ES512', credential: { publicKey: pem(p521.publicKey) }, signKey: p521.privateKey },
  { alg: 'EdDSA', credential: { publicKey: pem(ed25519.publicKey) }, signKey: ed25519.privateKey },
];

/** A token minted by jose (an implementation independent of the one under test). */
async function mint(alg: string, key: KeyObject | Uint8Array, claims: Record<string, unknown>, header: Record<string, unknown> = {}, exp: number | null = nowS() + 300): Promise<string> {
  const jwt = new SignJWT(exp === null ? claims : { exp, ...claims }).setProtectedHeader({ alg, ...header });
  return jwt.sign(key);
}

/** A token put together by hand, for the shapes no honest library would produce. */
function handmade(header: Record<string, unknown>, claims: Record<string, unknown>, signature: (input: string) => string): string {
  const input = `${b64url(header)}.${b64url(claims)}`;
  return `${input}.${signature(input)}`;
}

function consumerFor(c: AlgCase) {
  return { username: `user-${c.alg.toLowerCase()}`, credentials: { 'jwt-auth': { key: `key-${c.alg}`, algorithm: c.alg, ...c.credential } } };
}

function route(up: TestUpstream, plugins: Record<string, unknown>, id = 'r', paths = ['/*']) {
  return { id, paths, upstream: { nodes: [node(up.port)] }, plugins };
}

// ---- schema --------------------------------------------------------------------------------------------

function problemsOf(config: unknown): string[] {
  const r = validateDeclarative(config, builtinRegistry());
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

function credentialProblems(credential: Record<string, unknown>): string[] {
  return problemsOf({ consumers: [{ username: 'c', credentials: { 'jwt-auth': { key: 'c-key', ...credential } } }] });
}

describe('jwt-auth schema', () => {
  it('accepts a credential for every algorithm and fills the route defaults', () => {
    assert.deepEqual(CASES.map((c) => c.alg).sort(), [...ALGORITHMS].sort(), 'every algorithm has a case in these tests');
    const cfg = {
      upstreams: [{ id: 'u', nodes: [node(1)] }],
      consumers: CASES.map(consumerFor),
      routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'jwt-auth': {} } }],
    };
    const r = validateDeclarative(cfg, builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
    assert.deepEqual(r.value.routes[0]!.plugins!['jwt-auth'], {
      claim: 'key',
      from: ['header'],
      header: 'Authorization',
      query: 'jwt',
      cookie: 'jwt',
      hideCredentials: false,
      leeway: 0,
      requireExp: true,
    });
    assert.deepEqual(credentialProblems({ algorithm: 'RS256', jwksUri: 'https://idp.example/.well-known/jwks.json', jwksMaxAge: 300, jwksCooldown: 10 }), []);
    assert.deepEqual(credentialProblems({ algorithm: 'EdDSA', publicKey: pem(ed448.publicKey) }), []);
  });

  it('refuses credentials that break the cross-field rules, naming the field and never the key', () => {
    const ecPem = pem(p256.publicKey);
    const rsaPrivatePem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const rsa1024 = pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ algorithm: 'HS256' }, 'credentials.jwt-auth.secret: is required for HS256'],
      [{ algorithm: 'HS256', secret: 'too-short-secret' }, 'credentials.jwt-auth.secret: must be at least 32 bytes for HS256'],
      [{ algorithm: 'HS512', secret: 'x'.repeat(63) }, 'credentials.jwt-auth.secret: must be at least 64 bytes for HS512'],
      [{ algorithm: 'HS256', secret: 'not base64!'.repeat(5), base64Secret: true }, 'credentials.jwt-auth.secret: is not base64'],
      [{ algorithm: 'HS256', secret: pem(rsa.publicKey) }, 'credentials.jwt-auth.secret: looks like a PEM key'],
      [{ algorithm: 'HS256', secret: hsSecret, publicKey: ecPem }, 'credentials.jwt-auth.publicKey: is not used by HS256'],
      [{ algorithm: 'HS256', secret: hsSecret, jwksUri: 'https://idp.example/jwks' }, 'credentials.jwt-auth.jwksUri: is not used by HS256'],
      [{ algorithm: 'RS256' }, 'credentials.jwt-auth: RS256 needs exactly one of publicKey or jwksUri'],
      [{ algorithm: 'RS256', publicKey: pem(rsa.publicKey), jwksUri: 'https://idp.example/jwks' }, 'credentials.jwt-auth: RS256 needs exactly one of publicKey or jwksUri'],
      [{ algorithm: 'RS256', publicKey: pem(rsa.publicKey), secret: hsSecret }, 'credentials.jwt-auth.secret: is not used by RS256'],
      [{ algorithm: 'RS256', publicKey: ecPem }, 'credentials.jwt-auth.publicKey: is an EC P-256 key; RS256 needs an RSA key'],
      [{ algorithm: 'ES256', publicKey: pem(p384.publicKey) }, 'credentials.jwt-auth.publicKey: is an EC P-384 key; ES256 needs an EC P-256 key'],
      [{ algorithm: 'EdDSA', publicKey: ecPem }, 'credentials.jwt-auth.publicKey: is an EC P-256 key; EdDSA needs an Ed25519 or Ed448 key'],
      [{ algorithm: 'PS256', publicKey: pem(ed25519.publicKey) }, 'credentials.jwt-auth.publicKey: is an Ed25519 key; PS256 needs an RSA key'],
      [{ algorithm: 'RS256', publicKey: rsaPrivatePem }, 'credentials.jwt-auth.publicKey: is a private key'],
      [{ algorithm: 'RS256', publicKey: rsa1024 }, 'credentials.jwt-auth.publicKey: is a 1024-bit RSA key; RS256 needs at least 2048 bits'],
      [{ algorithm: 'RS256', publicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }, 'credentials.jwt-auth.publicKey: cannot be parsed as a PEM public key'],
      [{ algorithm: 'RS256', publicKey: 'ssh-rsa AAAAB3NzaC1yc2E' }, 'credentials.jwt-auth.publicKey: must be a PEM public key'],
      [{ algorithm: 'none', secret: hsSecret }, 'credentials.jwt-auth.algorithm: must be one of'],
      [{ algorithm: 'RS256', jwksUri: 'ftp://idp.example/jwks' }, 'credentials.jwt-auth.jwksUri: must be an http or https URL'],
      [{ algorithm: 'RS256', jwksUri: 'https://user:pw@idp.example/jwks' }, 'credentials.jwt-auth.jwksUri: must not carry a user name or password'],
      [{ algorithm: 'RS256', jwksUri: 'https://idp.example/jwks', jwksCooldown: 100, jwksMaxAge: 50 }, 'credentials.jwt-auth.jwksCooldown: must not be longer than jwksMaxAge'],
      [{ algorithm: 'RS256', publicKey: pem(rsa.publicKey), jwksMaxAge: 60 }, 'credentials.jwt-auth.jwksMaxAge: applies only with jwksUri'],
      [{ algorithm: 'HS256', secret: hsSecret, bogus: 1 }, 'credentials.jwt-auth: has a field that is not known'],
    ];
    for (const [credential, expected] of cases) {
      const problems = credentialProblems(credential);
      assert.ok(problems.some((p) => p.startsWith(`consumers[0].${expected}`)), `${JSON.stringify(expected)} not in:\n${problems.join('\n')}`);
      const text = JSON.stringify(problems);
      for (const secretish of [credential.secret, credential.publicKey]) {
        if (typeof secretish !== 'string') continue;
        // Long enough to be key material, not a word a message might share.
        const body = secretish.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '').slice(8, 40);
        if (body.length >= 16) assert.ok(!text.includes(body), `key material echoed for ${expected}`);
      }
    }
  });

  it('refuses bad route configs, duplicate keys and configuring it on a consumer', () => {
    const up = { upstreams: [{ id: 'u', nodes: [node(1)] }] };
    const routeWith = (c: unknown) => problemsOf({ ...up, routes: [{ id: 'r', paths: ['/'], upstreamId: 'u', plugins: { 'jwt-auth': c } }] });
    assert.ok(routeWith({ from: ['body'] }).some((p) => p.startsWith('routes[0].plugins.jwt-auth.from[0]: must be one of')));
    assert.ok(routeWith({ from: [] }).some((p) => p.startsWith('routes[0].plugins.jwt-auth.from')));
    assert.ok(routeWith({ leeway: 601 }).some((p) => p.startsWith('routes[0].plugins.jwt-auth.leeway')));
    assert.ok(routeWith({ header: 'bad header' }).some((p) => p.startsWith('routes[0].plugins.jwt-auth.header')));
    assert.ok(routeWith({ issuer: [] }).some((p) => p.startsWith('routes[0].plugins.jwt-auth.issuer')));
    assert.ok(routeWith({ claim: '' }).some((p) => p.startsWith('routes[0].plugins.jwt-auth.claim')));
    assert.ok(routeWith({ secret: 'x' }).some((p) => p === 'routes[0].plugins.jwt-auth.secret: is not a known field'));
    const dup = problemsOf({
      consumers: [
        { username: 'a', credentials: { 'jwt-auth': { key: 'same', secret: hsSecret } } },
        { username: 'b', credentials: { 'jwt-auth': { key: 'same', secret: hsSecret } } },
      ],
    });
    assert.ok(dup.some((p) => p === 'consumers[1].credentials.jwt-auth: is the same credential as consumer "a" has'), dup.join('\n'));
    const onConsumer = problemsOf({ consumers: [{ username: 'a', plugins: { 'jwt-auth': {} } }] });
    assert.ok(onConsumer.some((p) => p.startsWith('consumers[0].plugins.jwt-auth: "jwt-auth" cannot be configured on a consumer')));
  });
});

// ---- published test vectors ------------------------------------------------------------------------------

/** RFC 7515 appendix A.1 (also RFC 7519 section 3.1): HS256 with this JWK. */
const A1_KEY = { kty: 'oct', k: 'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow' };
const A1 =
  'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
/** RFC 7515 appendix A.2: RS256 with this public key. */
const A2_KEY = {
  kty: 'RSA',
  e: 'AQAB',
  n:
    'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH' +
    'SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ',
};
const A2 =
  'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.' +
  'cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K' +
  '0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw';
/** RFC 7515 appendix A.3: ES256 with this public key (the signature is raw r||s). */
const A3_KEY = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
const A3 =
  'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.' +
  'DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q';
/** RFC 8037 appendix A.4: Ed25519 over a payload that is not a JWT (so only the signature is checked). */
const RFC8037_KEY = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' };
const RFC8037 = 'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg';
const RFC_EXP = 1300819380;

const noTimeRules = { leeway: 0, requireExp: true, issuers: null, audiences: null };

function flipLastChar(token: string): string {
  const last = token.at(-2) === 'A' ? 'B' : 'A';
  return token.slice(0, -2) + last + token.at(-1);
}

describe('published test vectors', () => {
  it('RFC 7515 A.1 / RFC 7519 3.1: HS256 with the JWK key, and the exp boundary on its claims', () => {
    const jws = decodeJws(A1, 8192)!;
    assert.ok(jws);
    assert.equal(jws.alg, 'HS256');
    assert.deepEqual(jws.claims, { iss: 'joe', exp: RFC_EXP, 'http://example.com/is_root': true });
    const verifier = hmacVerifier('HS256', Buffer.from(A1_KEY.k, 'base64url'));
    assert.equal(verifier(jws.signingInput, jws.signature), true);
    const tampered = decodeJws(flipLastChar(A1), 8192);
    assert.ok(tampered === null || !verifier(tampered.signingInput, tampered.signature));
    assert.equal(hmacVerifier('HS256', randomBytes(64))(jws.signingInput, jws.signature), false);
    // RFC 7519 4.1.4: valid strictly before exp; leeway extends it.
    assert.equal(claimsAcceptable(jws.claims, noTimeRules, RFC_EXP - 1), true);
    assert.equal(claimsAcceptable(jws.claims, noTimeRules, RFC_EXP), false);
    assert.equal(claimsAcceptable(jws.claims, { ...noTimeRules, leeway: 60 }, RFC_EXP + 59), true);
    assert.equal(claimsAcceptable(jws.claims, { ...noTimeRules, issuers: new Set(['joe']) }, RFC_EXP - 1), true);
    assert.equal(claimsAcceptable(jws.claims, { ...noTimeRules, issuers: new Set(['ann']) }, RFC_EXP - 1), false);
    assert.equal(claimsAcceptable(jws.claims, { ...noTimeRules, audiences: new Set(['api']) }, RFC_EXP - 1), false);
  });

  it('RFC 7515 A.2: RS256 with the published RSA key', () => {
    const jws = decodeJws(A2, 8192)!;
    const verifier = publicKeyVerifier('RS256', createPublicKey({ key: A2_KEY, format: 'jwk' }));
    assert.equal(verifier(jws.signingInput, jws.signature), true);
    const other = decodeJws(A2.replace('eyJpc3MiOiJqb2Ui', 'eyJpc3MiOiJqb2Yi'), 8192)!;
    assert.equal(verifier(other.signingInput, other.signature), false, 'a changed payload fails');
    // The same key cannot be used for PS256: the algorithm decides the padding, not the key.
    assert.equal(publicKeyVerifier('PS256', createPublicKey({ key: A2_KEY, format: 'jwk' }))(jws.signingInput, jws.signature), false);
  });

  it('RFC 7515 A.3: ES256 with the published P-256 key, raw r||s only', () => {
    const jws = decodeJws(A3, 8192)!;
    const key = createPublicKey({ key: A3_KEY, format: 'jwk' });
    const verifier = publicKeyVerifier('ES256', key);
    assert.equal(verifier(jws.signingInput, jws.signature), true);
    // The DER form of the same signature is not a JWS signature.
    const r = jws.signature.subarray(0, 32);
    const s = jws.signature.subarray(32);
    const int = (b: Buffer) => (b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
    const der = Buffer.concat([Buffer.from([0x30, 4 + int(r).length + int(s).length, 2, int(r).length]), int(r), Buffer.from([2, int(s).length]), int(s)]);
    assert.equal(verifier(jws.signingInput, der), false);
    assert.throws(() => publicKeyVerifier('ES384', key), /P-384/);
  });

  it('RFC 8037 A.4: EdDSA with the published Ed25519 key', () => {
    const [h, p, s] = RFC8037.split('.') as [string, string, string];
    const verifier = publicKeyVerifier('EdDSA', createPublicKey({ key: RFC8037_KEY, format: 'jwk' }));
    assert.equal(verifier(Buffer.from(`${h}.${p}`), Buffer.from(s, 'base64url')), true);
    assert.equal(verifier(Buffer.from(`${h}.${p}x`), Buffer.from(s, 'base64url')), false);
    assert.equal(decodeJws(RFC8037, 8192), null, 'its payload is not a claims set, so it is not a JWT');
  });

  it('through the gateway: the A.1 key as a base64url secret, selected by iss; the original token is expired', async () => {
    const up = await upstream();
    const gw = await gateway({
      consumers: [{ username: 'joe', credentials: { 'jwt-auth': { key: 'joe', algorithm: 'HS256', secret: A1_KEY.k, base64Secret: true } } }],
      routes: [route(up, { 'jwt-auth': { claim: 'iss' } })],
    });
    assertInvalid(await send(gw.http, '/', { headers: bearer(A1) }), 'RFC token, exp in 2011');
    const fresh = handmade({ typ: 'JWT', alg: 'HS256' }, { iss: 'joe', exp: nowS() + 60, 'http://example.com/is_root': true }, (input) =>
      createHmac('sha256', Buffer.from(A1_KEY.k, 'base64url')).update(input).digest('base64url'),
    );
    assert.equal(upstreamHeaders(await send(gw.http, '/', { headers: bearer(fresh) }))['x-consumer-username'], 'joe');
  });
});

// ---- traffic ---------------------------------------------------------------------------------------------

describe('jwt-auth traffic', () => {
  it('accepts jose-minted tokens for every algorithm, each with its own credential', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers: CASES.map(consumerFor), routes: [route(up, { 'jwt-auth': {} })] });
    for (const c of CASES) {
      const token = await mint(c.alg, c.signKey, { key: `key-${c.alg}` });
      const h = upstreamHeaders(await send(gw.http, '/x', { headers: bearer(token) }));
      assert.equal(h['x-consumer-username'], `user-${c.alg.toLowerCase()}`, c.alg);
      assert.equal(h.authorization, `Bearer ${token}`, 'hideCredentials is off by default');
    }
    // Ed448 is EdDSA too (jose does not sign with it; node:crypto does).
    const ed448Token = handmade({ alg: 'EdDSA' }, { key: 'ed448', exp: nowS() + 60 }, (input) => cryptoSign(null, Buffer.from(input), ed448.privateKey).toString('base64url'));
    const gw448 = await gateway({
      consumers: [{ username: 'ed448-user', credentials: { 'jwt-auth': { key: 'ed448', algorithm: 'EdDSA', publicKey: pem(ed448.publicKey) } } }],
      routes: [route(up, { 'jwt-auth': {} })],
    });
    assert.equal(upstreamHeaders(await send(gw448.http, '/', { headers: bearer(ed448Token) }))['x-consumer-username'], 'ed448-user');
  });

  it('refuses a token signed with another key, or whose header alg differs from the credential', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers: CASES.map(consumerFor), routes: [route(up, { 'jwt-auth': {} })] });
    const otherKeys: Record<string, KeyObject | Uint8Array> = {
      HS256: randomBytes(32), HS384: randomBytes(48), HS512: randomBytes(64),
      RS256: rsaOther.privateKey, RS384: rsaOther.privateKey, RS512: rsaOther.privateKey,
      PS256: rsaOther.privateKey, PS384: rsaOther.privateKey, PS512: rsaOther.privateKey,
      ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
      ES512: generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey,
      EdDSA: generateKeyPairSync('ed25519').privateKey,
    };
    for (const c of CASES) assertInvalid(await send(gw.http, '/', { headers: bearer(await mint(c.alg, otherKeys[c.alg]!, { key: `key-${c.alg}` })) }), `${c.alg} with a wrong key`);
    // The RSA key is right, but RS256's credential does not accept PS256 (nor RS384).
    assertInvalid(await send(gw.http, '/', { headers: bearer(await mint('PS256', rsa.privateKey, { key: 'key-RS256' })) }), 'PS256 on an RS256 credential');
    assertInvalid(await send(gw.http, '/', { headers: bearer(await mint('RS384', rsa.privateKey, { key: 'key-RS256' })) }), 'RS384 on an RS256 credential');
    assertInvalid(await send(gw.http, '/', { headers: bearer(await mint('HS384', Buffer.from(hsSecret), { key: 'key-HS256' })) }), 'HS384 on an HS256 credential');
    assert.equal(up.seen.length, 0, 'nothing reached the upstream');
  });

  it('pins the algorithm: the header must name the credential\'s, even when the signature would verify', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers: CASES.map(consumerFor), routes: [route(up, { 'jwt-auth': {} })] });
    const claims = (alg: string) => ({ key: `key-${alg}`, exp: nowS() + 60 });
    // Signed exactly as the credential's algorithm signs, but the header says something else.
    const rs256 = (input: string) => cryptoSign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url');
    const hs256 = (input: string) => createHmac('sha256', hsSecret).update(input).digest('base64url');
    assert.equal((await send(gw.http, '/', { headers: bearer(handmade({ alg: 'RS256' }, claims('RS256'), rs256)) })).status, 200, 'the control');
    for (const alg of ['PS256', 'RS512', 'none', 'HS256', 'rs256', '']) {
      assertInvalid(await send(gw.http, '/', { headers: bearer(handmade({ alg }, claims('RS256'), rs256)) }), `RS256 signature under alg ${JSON.stringify(alg)}`);
    }
    assertInvalid(await send(gw.http, '/', { headers: bearer(handmade({ alg: 'none' }, claims('HS256'), hs256)) }), 'HS256 MAC under alg none');
    assertInvalid(await send(gw.http, '/', { headers: bearer(handmade({ typ: 'JWT' }, claims('HS256'), hs256)) }), 'HS256 MAC without alg');
  });

  it('refuses alg none, and an HS256 token keyed with the RS256 public key (key confusion)', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers: CASES.map(consumerFor), routes: [route(up, { 'jwt-auth': {} })] });
    const claims = { key: 'key-RS256', exp: nowS() + 60 };
    for (const none of ['none', 'None', 'NONE', 'nOnE']) {
      assertInvalid(await send(gw.http, '/', { headers: bearer(handmade({ alg: none }, claims, () => '')) }), `alg ${none}, empty signature`);
      assertInvalid(await send(gw.http, '/', { headers: bearer(handmade({ alg: none }, claims, () => 'c2ln')) }), `alg ${none}, some signature`);
    }
    for (const [name, material] of [['PEM', pem(rsa.publicKey)], ['DER', rsa.publicKey.export({ type: 'spki', format: 'der' })]] as const) {
      const forged = handmade({ alg: 'HS256', typ: 'JWT' }, claims, (input) => createHmac('sha256', material).update(input).digest('base64url'));
      assertInvalid(await send(gw.http, '/', { headers: bearer(forged) }), `HS256 keyed with the RS256 public key (${name})`);
    }
    // The HS256 credential, by contrast, takes the same construction with its own secret.
    const honest = handmade({ alg: 'HS256' }, { key: 'key-HS256', exp: nowS() + 60 }, (input) => createHmac('sha256', hsSecret).update(input).digest('base64url'));
    assert.equal(upstreamHeaders(await send(gw.http, '/', { headers: bearer(honest) }))['x-consumer-username'], 'user-hs256');
  });

  it('refuses malformed tokens with the generic 401, and treats other schemes as no token', async () => {
    const up = await upstream();
    const gw = await gateway({ consumers: CASES.map(consumerFor), routes: [route(up, { 'jwt-auth': {} })] });
    const good = await mint('HS256', Buffer.from(hsSecret), { key: 'key-HS256' });
    const [h, p, s] = good.split('.') as [string, string, string];
    const malformed: Array<[string, string]> = [
      ['two segments', `${h}.${p}`],
      ['four segments', `${good}.x`],
      ['padding', `${h}.${p}.${s}=`],
      ['base64 alphabet', `${h}.${p}.+${s.slice(1)}`],
      ['stray characters', `${h}.${p}.${s.slice(0, 10)}*${s.slice(10)}`],
      ['header not JSON', `${b64url('{alg')}.${p}.${s}`],
      ['header an array', `${b64url(['HS256'])}.${p}.${s}`],
      ['no alg', `${b64url({ typ: 'JWT' })}.${p}.${s}`],
      ['crit header', handmade({ alg: 'HS256', crit: ['exp'], exp: 1 }, { key: 'key-HS256', exp: nowS() + 60 }, (i) => createHmac('sha256', hsSecret).update(i).digest('base64url'))],
      ['payload not an object', handmade({ alg: 'HS256' }, 'key-HS256' as never, (i) => createHmac('sha256', hsSecret).update(i).digest('base64url'))],
      ['claim not a string', handmade({ alg: 'HS256' }, { key: ['key-HS256'], exp: nowS() + 60 }, (i) => createHmac('sha256', hsSecret).update(i).digest('base64url'))],
      ['no such credential', await mint('HS256', Buffer.from(hsSecret), { key: 'key-nobody' })],
      ['claim missing', await mint('HS256', Buffer.from(hsSecret), { sub: 'key-HS256' })],
      ['too long', await mint('HS256', Buffer.from(hsSecret), { key: 'key-HS256', pad: 'x'.repeat(7000) })],
      ['not a JWT at all', 'opaque-access-token'],
    ];
    for (const [what, token] of malformed) assertInvalid(await send(gw.http, '/', { headers: bearer(token) }), what);
    assertRequired(await send(gw.http, '/'), 'no token');
    assertRequired(await send(gw.http, '/', { headers: { authorization: 'Basic YWxpY2U6cHc=' } }), 'Basic is not ours');
    assertRequired(await send(gw.http, '/', { headers: { authorization: 'Bearer ' } }), 'empty bearer');
    assertRequired(await send(gw.http, '/', { headers: { authorization: good } }), 'Authorization needs the Bearer scheme');
    assert.equal(upstreamHeaders(await send(gw.http, '/', { headers: { authorization: `bEaReR ${good}` } }))['x-consumer-username'], 'user-hs256');
    assert.equal(up.seen.length, 1);
  });

  it('checks exp, nbf, iss and aud, with leeway', async () => {
    const up = await upstream();
    const consumers = [CASES[0]!].map(consumerFor);
    const strict = await gateway({ consumers, routes: [route(up, { 'jwt-auth': { issuer: ['https://idp.example/'], audience: ['orders', 'billing'] } })] });
    const lenient = await gateway({ consumers, routes: [route(up, { 'jwt-auth': { leeway: 60, requireExp: false } })] });
    const key = Buffer.from(hsSecret);
    const t = (claims: Record<string, unknown>, exp: number | null = nowS() + 300) => mint('HS256', key, { key: 'key-HS256', ...claims }, {}, exp);
    const ok = { iss: 'https://idp.example/', aud: 'orders' };
    assert.equal((await send(strict.http, '/', { headers: bearer(await t(ok)) })).status, 200);
    assert.equal((await send(strict.http, '/', { headers: bearer(await t({ ...ok, aud: ['other', 'billing'] })) })).status, 200, 'aud as a list');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t(ok, nowS() - 30)) }), 'expired');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t({ ...ok, nbf: nowS() + 30 })) }), 'not yet valid');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t({ ...ok, iss: 'https://evil.example/' })) }), 'wrong issuer');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t({ aud: 'orders' })) }), 'no issuer');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t({ ...ok, aud: 'payments' })) }), 'wrong audience');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t({ ...ok, aud: ['payments'] })) }), 'wrong audience list');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t({ ...ok, exp: String(nowS() + 300) }, null)) }), 'exp not a number');
    assertInvalid(await send(strict.http, '/', { headers: bearer(await t(ok, null)) }), 'no exp (requireExp)');

    assert.equal((await send(lenient.http, '/', { headers: bearer(await t({}, nowS() - 30)) })).status, 200, 'expired 30 s ago, leeway 60');
    assert.equal((await send(lenient.http, '/', { headers: bearer(await t({ nbf: nowS() + 30 })) })).status, 200, 'valid in 30 s, leeway 60');
    assertInvalid(await send(lenient.http, '/', { headers: bearer(await t({}, nowS() - 120)) }), 'expired beyond the leeway');
    assertInvalid(await send(lenient.http, '/', { headers: bearer(await t({ nbf: nowS() + 120 })) }), 'valid only beyond the leeway');
    assert.equal((await send(lenient.http, '/', { headers: bearer(await t({}, null)) })).status, 200, 'no exp, requireExp false');
  });

  it('reads the token from a header, a query argument or a cookie as configured, and hides it when asked', async () => {
    const up = await upstream();
    const consumers = [CASES[0]!].map(consumerFor);
    const token = await mint('HS256', Buffer.from(hsSecret), { key: 'key-HS256' });
    const gw = await gateway({
      consumers,
      routes: [
        route(up, { 'jwt-auth': {} }, 'header-only', ['/h/*']),
        route(up, { 'jwt-auth': { from: ['header', 'query', 'cookie'], query: 'access_token', cookie: 'session' } }, 'all', ['/a/*']),
        route(up, { 'jwt-auth': { from: ['query', 'cookie', 'header'], hideCredentials: true } }, 'hidden', ['/s/*']),
        route(up, { 'jwt-auth': { header: 'X-Token' } }, 'custom-header', ['/c/*']),
      ],
    });
    assertRequired(await send(gw.http, `/h/x?jwt=${token}`), 'query is off by default');
    assertRequired(await send(gw.http, '/h/x', { headers: { cookie: `jwt=${token}` } }), 'cookie is off by default');

    const q = json(await send(gw.http, `/a/x?a=1&access_token=${token}`));
    assert.equal((q.headers as Record<string, string>)['x-consumer-username'], 'user-hs256');
    assert.equal(q.url, `/a/x?a=1&access_token=${token}`, 'kept upstream when hideCredentials is off');
    const c = upstreamHeaders(await send(gw.http, '/a/x', { headers: { cookie: `theme=dark; session=${token}` } }));
    assert.equal(c['x-consumer-username'], 'user-hs256');
    assertInvalid(await send(gw.http, '/a/x', { headers: { cookie: 'session=garbage' } }), 'a bad cookie token');

    const hq = json(await send(gw.http, `/s/x?a=1&jwt=${token}&b=2`));
    assert.equal(hq.url, '/s/x?a=1&b=2');
    const hc = upstreamHeaders(await send(gw.http, '/s/x', { headers: { cookie: `theme=dark; jwt=${token}; lang=en` } }));
    assert.equal(hc.cookie, 'theme=dark; lang=en', 'only the token cookie is removed');
    const only = upstreamHeaders(await send(gw.http, '/s/x', { headers: { cookie: `jwt=${token}` } }));
    assert.equal(only.cookie, undefined);
    const hh = upstreamHeaders(await send(gw.http, '/s/x', { headers: bearer(token) }));
    assert.equal(hh.authorization, undefined);
    assert.equal(hh['x-consumer-username'], 'user-hs256');
    // Presented twice: the first place in `from` is used and every copy is removed.
    const both = json(await send(gw.http, `/s/x?jwt=${token}`, { headers: bearer(token) }));
    assert.equal(both.url, '/s/x');
    assert.equal((both.headers as Record<string, string>).authorization, undefined);

    assert.equal(upstreamHeaders(await send(gw.http, '/c/x', { headers: { 'x-token': token } }))['x-consumer-username'], 'user-hs256', 'bare token');
    assert.equal(upstreamHeaders(await send(gw.http, '/c/x', { headers: { 'x-token': `Bearer ${token}` } }))['x-consumer-username'], 'user-hs256');
    assertRequired(await send(gw.http, '/c/x', { headers: bearer(token) }), 'Authorization is not read when another header is configured');
  });

  it('selects the credential by the configured claim', async () => {
    const up = await upstream();
    const gw = await gateway({
      consumers: [
        { username: 'issuer-a', credentials: { 'jwt-auth': { key: 'https://a.example/', algorithm: 'ES256', publicKey: pem(p256.publicKey) } } },
        { username: 'issuer-b', credentials: { 'jwt-auth': { key: 'https://b.example/', algorithm: 'RS256', publicKey: pem(rsa.publicKey) } } },
      ],
      routes: [route(up, { 'jwt-auth': { claim: 'iss' } }, 'by-iss', ['/iss/*']), route(up, { 'jwt-auth': { claim: 'client_id' } }, 'by-client', ['/cid/*'])],
    });
    const a = await mint('ES256', p256.privateKey, { iss: 'https://a.example/', key: 'https://b.example/' });
    assert.equal(upstreamHeaders(await send(gw.http, '/iss/x', { headers: bearer(a) }))['x-consumer-username'], 'issuer-a', 'iss decides, not key');
    const b = await mint('RS256', rsa.privateKey, { iss: 'https://b.example/' });
    assert.equal(upstreamHeaders(await send(gw.http, '/iss/x', { headers: bearer(b) }))['x-consumer-username'], 'issuer-b');
    // A token naming b but signed by a's key does not become b (nor a).
    assertInvalid(await send(gw.http, '/iss/x', { headers: bearer(await mint('ES256', p256.privateKey, { iss: 'https://b.example/' })) }), 'names b, signed by a');
    assert.equal(upstreamHeaders(await send(gw.http, '/cid/x', { headers: bearer(await mint('RS256', rsa.privateKey, { client_id: 'https://b.example/' })) }))['x-consumer-username'], 'issuer-b');
    assertInvalid(await send(gw.http, '/cid/x', { headers: bearer(b) }), 'the route reads client_id, which b lacks');
  });

  it('shares a route with key-auth: either credential authenticates', async () => {
    const up = await upstream();
    const gw = await gateway({
      consumers: [
        { username: 'alice', credentials: { 'key-auth': { key: 'alice-secret-key' } } },
        { username: 'bob', credentials: { 'jwt-auth': { key: 'bob', secret: hsSecret } } },
      ],
      routes: [route(up, { 'jwt-auth': {}, 'key-auth': {} })],
    });
    assert.equal(upstreamHeaders(await send(gw.http, '/', { headers: { apikey: 'alice-secret-key' } }))['x-consumer-username'], 'alice');
    assert.equal(upstreamHeaders(await send(gw.http, '/', { headers: bearer(await mint('HS256', Buffer.from(hsSecret), { key: 'bob' })) }))['x-consumer-username'], 'bob');
    assertRequired(await send(gw.http, '/'), 'neither');
    assertInvalid(await send(gw.http, '/', { headers: bearer('a.b.c') }), 'a bad token');
  });

  it('leaves the verified claims in ctx.vars for later plugins', async () => {
    const registry = builtinRegistry();
    const def = registry.get('jwt-auth')!;
    const config: Record<string, unknown> = {};
    assert.deepEqual(registry.validate('jwt-auth', config, 'r', 'route'), []);
    const consumer = { username: 'carol' };
    const credential: Record<string, unknown> = { key: 'carol', secret: hsSecret };
    assert.deepEqual(registry.validate('jwt-auth', credential, 'c', 'credential'), []);
    const credentials = def.indexCredentials!([{ consumer, credential, path: 'consumers[0].credentials.jwt-auth' }]);
    const instance = def.create(config, pluginEnv({ credentials, path: 'r' }));
    const token = await mint('HS256', Buffer.from(hsSecret), { key: 'carol', scope: 'read write' });
    const ctx = { headers: bearer(token), query: '', vars: {} as Record<string, unknown>, removeUpstreamHeader() {}, setUpstreamHeader() {} } as unknown as PluginContext;
    const result = await instance.authenticate!(ctx);
    assert.deepEqual(result, { consumer });
    assert.equal((ctx.vars['jwt-auth'] as Record<string, unknown>).scope, 'read write');
    const bad = { ...ctx, headers: bearer(`${token}x`), vars: {} } as unknown as PluginContext;
    assert.deepEqual(await instance.authenticate!(bad), { invalid: true });
    assert.equal(bad.vars['jwt-auth'], undefined, 'nothing of a refused token is left behind');
  });
});

// ---- JWKS ------------------------------------------------------------------------------------------------

interface JwksServer {
  uri: string;
  /** Requests the server has answered (or refused). */
  hits: number;
  keys: JWK[];
  status: number;
  cacheControl: string | undefined;
  /** When set, requests are held (never answered) to exercise the timeout. */
  hang: boolean;
  /** Replaces the body (for size and shape tests). */
  rawBody: string | undefined;
  close(): Promise<void>;
}

async function jwksServer(keys: JWK[]): Promise<JwksServer> {
  const sockets = new Set<Socket>();
  const state: JwksServer = {
    uri: '',
    hits: 0,
    keys,
    status: 200,
    cacheControl: undefined,
    hang: false,
    rawBody: undefined,
    close: async () => {},
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.hits++;
    if (state.hang) return;
    const body = state.rawBody ?? JSON.stringify({ keys: state.keys });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (state.cacheControl !== undefined) headers['cache-control'] = state.cacheControl;
    res.writeHead(state.status, headers);
    res.end(body);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  let closed = false;
  state.close = () =>
    closed
      ? Promise.resolve()
      : new Promise<void>((r) => {
          closed = true;
          for (const s of sockets) s.destroy();
          server.close(() => r());
        });
  defer(() => state.close());
  return state;
}

async function publicJwk(key: KeyObject, kid: string, extra: Partial<JWK> = {}): Promise<JWK> {
  return { ...(await exportJWK(key)), kid, use: 'sig', ...extra };
}

/** Poll until `check` holds, within a bound: for effects that happen beside the request. */
async function eventually(check: () => boolean | Promise<boolean>, what: string, limitMs = 5000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('JwksSource', () => {
  it('parses Cache-Control max-age', () => {
    assert.equal(cacheControlMaxAge('public, max-age=300'), 300_000);
    assert.equal(cacheControlMaxAge('max-age="60", must-revalidate'), 60_000);
    assert.equal(cacheControlMaxAge('no-store'), 0);
    assert.equal(cacheControlMaxAge('public'), null);
    assert.equal(cacheControlMaxAge(undefined), null);
  });

  it('shares one fetch among concurrent requests, caches for max-age within bounds, and refreshes beside the request', async () => {
    const srv = await jwksServer([await publicJwk(rsa.publicKey, 'k1')]);
    let clock = 1_000_000;
    const source = new JwksSource(srv.uri, { maxAgeMs: 600_000, cooldownMs: 10_000, now: () => clock });
    srv.cacheControl = 'max-age=100';
    const all = await Promise.all(Array.from({ length: 20 }, () => source.verifier('k1', 'RS256')));
    assert.ok(all.every((v) => typeof v === 'function'));
    assert.equal(srv.hits, 1, 'one fetch for twenty concurrent requests');
    clock += 99_000;
    assert.ok(await source.verifier('k1', 'RS256'));
    assert.equal(srv.hits, 1, 'within the server max-age: cached');
    clock += 2_000;
    srv.cacheControl = 'max-age=999999';
    assert.ok(await source.verifier('k1', 'RS256'), 'an expired set still answers for a known key');
    await eventually(() => srv.hits === 2, 'background refresh');
    clock += 599_000;
    assert.ok(await source.verifier('k1', 'RS256'));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.hits, 2, 'max-age is capped at maxAge (600 s), not the server\'s 999999 s');
    clock += 2_000;
    assert.ok(await source.verifier('k1', 'RS256'));
    await eventually(() => srv.hits === 3, 'refresh after the capped max-age');
    srv.cacheControl = 'no-store';
    clock += 700_000;
    await source.verifier('k1', 'RS256');
    await eventually(() => srv.hits === 4, 'refresh');
    clock += 5_000;
    await source.verifier('k1', 'RS256');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.hits, 4, 'no-store still keeps the set for the cooldown');
  });

  it('refetches an unknown kid at most once per cooldown, and picks keys by kid and algorithm', async () => {
    const srv = await jwksServer([await publicJwk(rsa.publicKey, 'rsa-1'), await publicJwk(p256.publicKey, 'ec-1'), await publicJwk(rsaOther.publicKey, 'rsa-ps', { alg: 'PS256' })]);
    let clock = 0;
    const source = new JwksSource(srv.uri, { cooldownMs: 30_000, now: () => clock });
    assert.ok(await source.verifier('rsa-1', 'RS256'));
    assert.ok(await source.verifier('rsa-1', 'PS256'), 'a JWK without alg serves any algorithm its type fits');
    assert.equal(await source.verifier('rsa-ps', 'RS256'), null, 'a JWK with alg serves that algorithm only');
    assert.ok(await source.verifier('rsa-ps', 'PS256'));
    assert.equal(await source.verifier('ec-1', 'RS256'), null, 'kid found but the key type does not fit');
    assert.ok(await source.verifier(undefined, 'ES256'), 'no kid: the one key that fits');
    assert.ok(await source.verifier(undefined, 'RS256'), 'no kid: the one RSA key without a PS256-only alg');
    assert.equal(await source.verifier(undefined, 'PS256'), null, 'no kid and two keys fit PS256: ambiguous');
    assert.equal(srv.hits, 1);
    const flood = await Promise.all(Array.from({ length: 50 }, () => source.verifier(randomUUID(), 'RS256')));
    assert.ok(flood.every((v) => v === null));
    assert.equal(srv.hits, 1, 'unknown kids within the cooldown fetch nothing');
    clock += 30_000;
    srv.keys = [...srv.keys, await publicJwk(rsaOther.publicKey, 'rsa-2')];
    const burst = await Promise.all([source.verifier('rsa-2', 'RS256'), ...Array.from({ length: 20 }, () => source.verifier(randomUUID(), 'RS256'))]);
    assert.ok(burst[0], 'the new kid is found by the one refetch');
    assert.equal(srv.hits, 2, 'one refetch for the whole burst');
  });

  it('keeps the last good keys when the server fails, and retries no faster than the cooldown', async () => {
    const srv = await jwksServer([await publicJwk(ed25519.publicKey, 'ed')]);
    let clock = 0;
    const failures: string[] = [];
    const source = new JwksSource(srv.uri, { maxAgeMs: 60_000, cooldownMs: 10_000, now: () => clock, onFailure: (r) => failures.push(r) });
    assert.ok(await source.verifier('ed', 'EdDSA'));
    for (const [status, body] of [[503, undefined], [200, 'not json'], [200, '{"keys": "nope"}']] as const) {
      srv.status = status;
      srv.rawBody = body;
      clock += 61_000;
      assert.ok(await source.verifier('ed', 'EdDSA'), `still served after ${status} ${body ?? ''}`);
      await eventually(() => failures.length > 0, 'the failed refresh');
      failures.length = 0;
    }
    await srv.close();
    clock += 61_000;
    assert.ok(await source.verifier('ed', 'EdDSA'), 'still served with the server gone');
    await eventually(() => failures.length > 0, 'the failed refresh');
    assert.equal(failures[0], 'ECONNREFUSED');
    const before = source.fetches;
    clock += 1_000;
    assert.equal(await source.verifier('unknown', 'EdDSA'), null);
    assert.equal(source.fetches, before, 'a failed fetch also starts the cooldown');
  });

  it('bounds the response size and time, and skips keys it must not use', async () => {
    const big = await jwksServer([]);
    big.rawBody = JSON.stringify({ keys: [], pad: 'x'.repeat(300 * 1024) });
    const failures: string[] = [];
    assert.equal(await new JwksSource(big.uri, { onFailure: (r) => failures.push(r) }).verifier(undefined, 'RS256'), null);
    assert.deepEqual(failures, ['response too large']);

    const slow = await jwksServer([]);
    slow.hang = true;
    const timeouts: string[] = [];
    assert.equal(await new JwksSource(slow.uri, { timeoutMs: 200, onFailure: (r) => timeouts.push(r) }).verifier('k', 'RS256'), null);
    assert.deepEqual(timeouts, ['TimeoutError'], 'the fetch gave up');

    const privateJwk = { ...(await exportJWK(p256.privateKey)), kid: 'private' };
    const mixed = await jwksServer([
      privateJwk,
      { kty: 'oct', k: A1_KEY.k, kid: 'secret' },
      await publicJwk(p384.publicKey, 'enc', { use: 'enc' }),
      await publicJwk(p384.publicKey, 'ops', { key_ops: ['encrypt'] } as Partial<JWK>),
      { kty: 'RSA', n: 'AQAB', e: 'AQAB', kid: 'broken' },
      await publicJwk(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, 'small'),
      await publicJwk(p384.publicKey, 'good'),
    ]);
    const source = new JwksSource(mixed.uri);
    assert.equal(await source.verifier('private', 'ES256'), null, 'a JWK with private parts is never used');
    assert.equal(await source.verifier('secret', 'HS256' as Algorithm), null, 'an oct key is never used');
    assert.equal(await source.verifier('enc', 'ES384'), null, 'use: enc');
    assert.equal(await source.verifier('ops', 'ES384'), null, 'key_ops without verify');
    assert.equal(await source.verifier('broken', 'RS256'), null);
    assert.equal(await source.verifier('small', 'RS256'), null, 'RSA under 2048 bits');
    assert.ok(await source.verifier('good', 'ES384'));
    assert.equal(mixed.hits, 1);
  });
});

describe('jwt-auth with JWKS', () => {
  it('verifies RS256, ES256 and EdDSA tokens by kid from a JWKS URL', async () => {
    const up = await upstream();
    const srv = await jwksServer([await publicJwk(rsa.publicKey, 'r1'), await publicJwk(p256.publicKey, 'e1'), await publicJwk(ed25519.publicKey, 'd1')]);
    const gw = await gateway({
      consumers: [
        { username: 'rs', credentials: { 'jwt-auth': { key: 'rs', algorithm: 'RS256', jwksUri: srv.uri } } },
        { username: 'es', credentials: { 'jwt-auth': { key: 'es', algorithm: 'ES256', jwksUri: srv.uri } } },
        { username: 'ed', credentials: { 'jwt-auth': { key: 'ed', algorithm: 'EdDSA', jwksUri: srv.uri } } },
      ],
      routes: [route(up, { 'jwt-auth': {} })],
    });
    assert.equal(srv.hits, 0, 'nothing is fetched until a token needs it');
    for (const [alg, key, kid, who] of [['RS256', rsa.privateKey, 'r1', 'rs'], ['ES256', p256.privateKey, 'e1', 'es'], ['EdDSA', ed25519.privateKey, 'd1', 'ed']] as const) {
      assert.equal(upstreamHeaders(await send(gw.http, '/', { headers: bearer(await mint(alg, key, { key: who }, { kid })) }))['x-consumer-username'], who);
    }
    assert.equal(srv.hits, 1, 'three credentials, one URL, one cache');
    assertInvalid(await send(gw.http, '/', { headers: bearer(await mint('ES256', p256.privateKey, { key: 'rs' }, { kid: 'e1' })) }), 'ES256 on the RS256 credential');
    assertInvalid(await send(gw.http, '/', { headers: bearer(await mint('RS256', rsa.privateKey, { key: 'rs' }, { kid: 'e1' })) }), 'kid of an EC key for RS256');
    assertInvalid(await send(gw.http, '/', { headers: bearer(await mint('RS256', rsaOther.privateKey, { key: 'rs' }, { kid: 'r1' })) }), 'right kid, wrong key');
    // A config reload keeps the cache: the same URL is not fetched again.
    gw.apply({ consumers: [{ username: 'rs', credentials: { 'jwt-auth': { key: 'rs', algorithm: 'RS256', jwksUri: srv.uri } } }], routes: [route(up, { 'jwt-auth': {} })] });
    assert.equal(upstreamHeaders(await send(gw.http, '/', { headers: bearer(await mint('RS256', rsa.privateKey, { key: 'rs' }, { kid: 'r1' })) }))['x-consumer-username'], 'rs');
    assert.equal(srv.hits, 1);
  });

  it('picks up a rotated key and drops the removed one', async () => {
    const up = await upstream();
    const srv = await jwksServer([await publicJwk(rsa.publicKey, 'old')]);
    const gw = await gateway({
      consumers: [{ username: 'svc', credentials: { 'jwt-auth': { key: 'svc', algorithm: 'RS256', jwksUri: srv.uri, jwksCooldown: 1 } } }],
      routes: [route(up, { 'jwt-auth': {} })],
    });
    const oldToken = await mint('RS256', rsa.privateKey, { key: 'svc' }, { kid: 'old' });
    const newToken = await mint('RS256', rsaOther.privateKey, { key: 'svc' }, { kid: 'new' });
    assert.equal((await send(gw.http, '/', { headers: bearer(oldToken) })).status, 200);
    srv.keys = [await publicJwk(rsaOther.publicKey, 'new')];
    // The unknown kid is refetched once the cooldown (1 s) since the last fetch has passed.
    await eventually(async () => (await send(gw.http, '/', { headers: bearer(newToken) })).status === 200, 'the new kid is accepted');
    assertInvalid(await send(gw.http, '/', { headers: bearer(oldToken) }), 'the removed key');
    assert.ok(srv.hits >= 2 && srv.hits <= 8, `fetches stay bounded by the cooldown (${srv.hits})`);
  });

  it('a flood of random kids makes a bounded number of fetches', async () => {
    const up = await upstream();
    const srv = await jwksServer([await publicJwk(p256.publicKey, 'k')]);
    const gw = await gateway({
      consumers: [{ username: 'svc', credentials: { 'jwt-auth': { key: 'svc', algorithm: 'ES256', jwksUri: srv.uri } } }],
      routes: [route(up, { 'jwt-auth': {} })],
    });
    const random = () => mint('ES256', p256.privateKey, { key: 'svc' }, { kid: randomUUID() });
    const first = await Promise.all(Array.from({ length: 30 }, async () => send(gw.http, '/', { headers: bearer(await random()) })));
    first.forEach((r, i) => assertInvalid(r, `random kid ${i}`));
    assert.equal(srv.hits, 1, 'thirty concurrent unknown kids: one shared fetch');
    const second = await Promise.all(Array.from({ length: 30 }, async () => send(gw.http, '/', { headers: bearer(await random()) })));
    second.forEach((r, i) => assertInvalid(r, `random kid again ${i}`));
    assert.equal(srv.hits, 1, 'and none more within the cooldown');
    assert.equal((await send(gw.http, '/', { headers: bearer(await mint('ES256', p256.privateKey, { key: 'svc' }, { kid: 'k' })) })).status, 200);
  });

  it('keeps serving the last good keys while the JWKS server is failing or down', async () => {
    const up = await upstream();
    const srv = await jwksServer([await publicJwk(ed25519.publicKey, 'k')]);
    srv.cacheControl = 'max-age=0'; // the set expires after the cooldown (1 s)
    const gw = await gateway({
      consumers: [{ username: 'svc', credentials: { 'jwt-auth': { key: 'svc', algorithm: 'EdDSA', jwksUri: srv.uri, jwksCooldown: 1 } } }],
      routes: [route(up, { 'jwt-auth': {} })],
    });
    const token = await mint('EdDSA', ed25519.privateKey, { key: 'svc' }, { kid: 'k' });
    assert.equal((await send(gw.http, '/', { headers: bearer(token) })).status, 200);
    srv.status = 503;
    // Once the set has expired a request triggers a refresh; it fails and the known key keeps working.
    await eventually(async () => (await send(gw.http, '/', { headers: bearer(token) })).status === 200 && srv.hits >= 2, 'a failed refresh');
    assert.equal((await send(gw.http, '/', { headers: bearer(token) })).status, 200);
    await srv.close();
    await new Promise((r) => setTimeout(r, 1100));
    for (let i = 0; i < 3; i++) assert.equal((await send(gw.http, '/', { headers: bearer(token) })).status, 200, 'server gone, key still known');
    assertInvalid(await send(gw.http, '/', { headers: bearer(await mint('EdDSA', ed25519.privateKey, { key: 'svc' }, { kid: 'other' })) }), 'unknown kid with the server gone');
  });
});
