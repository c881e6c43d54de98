/**
 * @module plugins/logging/record.test
 * The access record on its own: default fields and their values from a request context, field selection,
 * query redaction (credential-looking names, encoded names, extra names), request and response headers with the
 * credential headers always redacted, values cut to a bounded length, and the cross-field checks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PluginContext, ResponseHead } from '../../dataplane/plugins/types.js';
import { checkRecordOptions, compileRecord, DEFAULT_FIELDS, MAX_VALUE_LENGTH, redactQuery, type RecordConfig } from './record.js';

function options(over: Partial<RecordConfig> = {}): RecordConfig {
  return { fields: [...DEFAULT_FIELDS], includeQuery: false, redactQueryArgs: [], requestHeaders: [], responseHeaders: [], ...over };
}

function fakeCtx(over: Record<string, unknown> = {}): PluginContext {
  const vars: Record<string, unknown> = {};
  return {
    startedAt: Date.UTC(2025, 0, 2, 3, 4, 5, 678),
    start: 1000,
    endedAt: 1012.3456,
    routeId: 'orders',
    serviceId: 'billing',
    consumer: { username: 'alice' },
    method: 'POST',
    path: '/orders/42',
    query: 'a=1&apikey=k3y&token=t0k',
    status: 201,
    res: { writableFinished: true },
    upstreamLatency: 7.5,
    node: { key: '10.0.0.5:8080' },
    clientIp: '192.0.2.7',
    bytesSent: 120,
    bytesReceived: 33,
    headers: {
      host: 'api.example.com',
      'user-agent': 'curl/8.0',
      'x-request-id': 'client-id-1',
      authorization: 'Bearer sekret',
      cookie: 'session=abc',
      'proxy-authorization': 'Basic eA==',
      'x-tenant': 'acme',
    },
    errorCode: null,
    vars,
    ...over,
  } as unknown as PluginContext;
}

describe('log record', () => {
  it('has the default fields with their values', () => {
    const rec = compileRecord(options(), 'x').build(fakeCtx());
    assert.deepEqual(rec, {
      time: '2025-01-02T03:04:05.678Z',
      route: 'orders',
      service: 'billing',
      consumer: 'alice',
      method: 'POST',
      path: '/orders/42',
      status: 201,
      latencyMs: 12.346,
      upstreamLatencyMs: 7.5,
      upstream: '10.0.0.5:8080',
      clientIp: '192.0.2.7',
      bytesSent: 120,
      bytesReceived: 33,
      userAgent: 'curl/8.0',
      requestId: 'client-id-1',
    });
    assert.deepEqual(Object.keys(rec), DEFAULT_FIELDS, 'in the documented order');
  });

  it('writes null for what a request does not have, 499 for a client that left, and the request-id plugin\'s id', () => {
    const ctx = fakeCtx({
      serviceId: null,
      consumer: null,
      node: null,
      upstreamLatency: -1,
      status: 0,
      res: { writableFinished: false },
      headers: {},
      errorCode: 'GH_ERR_UPSTREAM_UNAVAILABLE',
    });
    ctx.vars['request-id'] = 'generated-id';
    const rec = compileRecord(options({ fields: ['service', 'consumer', 'upstream', 'upstreamLatencyMs', 'status', 'userAgent', 'requestId', 'host', 'error'] }), 'x').build(ctx);
    assert.deepEqual(rec, {
      service: null,
      consumer: null,
      upstream: null,
      upstreamLatencyMs: null,
      status: 499,
      userAgent: null,
      requestId: 'generated-id',
      host: null,
      error: 'GH_ERR_UPSTREAM_UNAVAILABLE',
    });
  });

  it('keeps only the chosen fields', () => {
    const rec = compileRecord(options({ fields: ['status', 'path', 'host'] }), 'x').build(fakeCtx());
    assert.deepEqual(rec, { status: 201, path: '/orders/42', host: 'api.example.com' });
  });

  it('adds the query with credential values redacted', () => {
    const rec = compileRecord(options({ fields: [], includeQuery: true }), 'x').build(fakeCtx());
    assert.deepEqual(rec, { query: 'a=1&apikey=[redacted]&token=[redacted]' });
  });

  it('redacts credential-looking query arguments, encoded names and extra names', () => {
    const q = [
      'page=2',
      'api_key=1',
      'API-KEY=2',
      'key=3',
      'access_token=4',
      'refresh_token=5',
      'password=6',
      'client_secret=7',
      'X-Amz-Signature=8',
      'X-Amz-Credential=9',
      'sig=10',
      'acc%65ss_token=11',
      'mykey=12',
      'flag',
      'token',
      '=empty',
      'q=a%20b',
    ].join('&');
    assert.equal(
      redactQuery(q, new Set(['mykey'])),
      [
        'page=2',
        'api_key=[redacted]',
        'API-KEY=[redacted]',
        'key=[redacted]',
        'access_token=[redacted]',
        'refresh_token=[redacted]',
        'password=[redacted]',
        'client_secret=[redacted]',
        'X-Amz-Signature=[redacted]',
        'X-Amz-Credential=[redacted]',
        'sig=[redacted]',
        'acc%65ss_token=[redacted]',
        'mykey=[redacted]',
        'flag',
        'token',
        '=empty',
        'q=a%20b',
      ].join('&'),
    );
    assert.equal(redactQuery(''), '');
    assert.equal(redactQuery('bad%zzname=1&token=x'), 'bad%zzname=1&token=[redacted]');
  });

  it('adds the named request headers, Authorization, Proxy-Authorization and Cookie always redacted', () => {
    const rec = compileRecord(options({ fields: [], requestHeaders: ['X-Tenant', 'Authorization', 'cookie', 'Proxy-Authorization', 'X-Missing'] }), 'x').build(fakeCtx());
    assert.deepEqual(rec, { requestHeaders: { 'x-tenant': 'acme', authorization: '[redacted]', cookie: '[redacted]', 'proxy-authorization': '[redacted]' } });
    assert.doesNotMatch(JSON.stringify(rec), /sekret|session=abc|eA==/);
  });

  it('adds the named response headers as finally written, Set-Cookie always redacted', () => {
    const b = compileRecord(options({ fields: [], responseHeaders: ['Content-Type', 'Set-Cookie', 'X-Cache', 'Vary'] }), 'x');
    const ctx = fakeCtx();
    const head: ResponseHead = { status: 200, headers: ['Content-Type', 'text/plain', 'Set-Cookie', 'sid=1', 'set-cookie', 'sid=2', 'vary', 'a', 'Vary', 'b'] };
    b.captureHead!(ctx, head);
    // A response phase that runs after the logger's (a higher-priority plugin) still changes what is logged.
    head.headers.push('X-Cache', 'HIT');
    assert.deepEqual(b.build(ctx), { responseHeaders: { 'content-type': 'text/plain', 'set-cookie': '[redacted]', vary: ['a', 'b'], 'x-cache': 'HIT' } });
    assert.deepEqual(b.build(fakeCtx()), { responseHeaders: {} }, 'no head captured: none logged');
    assert.equal(compileRecord(options(), 'x').captureHead, undefined, 'no hook without responseHeaders');
  });

  it('cuts long values', () => {
    const long = 'a'.repeat(MAX_VALUE_LENGTH + 500);
    const rec = compileRecord(options({ fields: ['userAgent', 'path'], requestHeaders: ['x-long'] }), 'x').build(
      fakeCtx({ path: `/${long}`, headers: { 'user-agent': long, 'x-long': long } }),
    );
    assert.equal((rec.userAgent as string).length, MAX_VALUE_LENGTH + 3);
    assert.equal((rec.path as string).length, MAX_VALUE_LENGTH + 3);
    assert.equal((rec.requestHeaders as Record<string, string>)['x-long']!.length, MAX_VALUE_LENGTH + 3);
  });

  it('checks the options across fields', () => {
    assert.deepEqual(checkRecordOptions(options()), []);
    assert.deepEqual(checkRecordOptions(options({ fields: [] })), [['fields', 'is empty and nothing else is logged: records would be empty']]);
    assert.deepEqual(checkRecordOptions(options({ fields: [], includeQuery: true })), []);
    assert.deepEqual(checkRecordOptions(options({ requestHeaders: ['X-A', 'x-a'] })), [['requestHeaders[1]', 'repeats header "x-a"']]);
    assert.deepEqual(checkRecordOptions(options({ redactQueryArgs: ['k'] })), [['redactQueryArgs', 'has no effect without includeQuery: true']]);
  });
});
