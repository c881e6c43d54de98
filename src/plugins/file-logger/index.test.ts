/**
 * @module plugins/file-logger/index.test
 * file-logger: config checks (defaults, refused paths with their field paths, the docs example), then real traffic
 * through an in-process gateway: JSON lines in the file with the default or chosen fields and secrets redacted;
 * the reopen control action after a rename (logrotate); a path that cannot be written reported once at load,
 * counted, requests unaffected, and written again once it can be; the queue written synchronously on close; one
 * file shared by several configs; several processes appending to one file without interleaving lines.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { pino } from 'pino';
import fileLogger, { type FileLoggerStats } from './index.js';
import { builtinRegistry } from '../index.js';
import { validateDeclarative } from '../../model/validate.js';
import { PluginStateStore } from '../../dataplane/plugins/state.js';
import type { PluginContext } from '../../dataplane/plugins/types.js';
import { startInProcessGateway } from '../../process/in-process.js';
import { harness } from '../../../test/helpers/harness.js';
import { node } from '../../../test/helpers/upstream.js';
import { send } from '../../../test/helpers/http.js';
import { pluginEnv } from '../../../test/helpers/plugin-env.js';

const h = harness();
const P = 'routes[0].plugins.file-logger';
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-file-logger-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function validate(plugin: unknown) {
  return validateDeclarative({ upstreams: [{ id: 'up', nodes: [node(1)] }], routes: [{ id: 'r', paths: ['/'], upstreamId: 'up', plugins: { 'file-logger': plugin } }] }, builtinRegistry());
}

function problemsOf(plugin: unknown): string[] {
  const r = validate(plugin);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

async function until(cond: () => boolean, ms = 10000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

function lines(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return text === '' ? [] : text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

function app() {
  return h.upstream((req, res) => {
    const body = JSON.stringify({ ok: true, url: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'sid=upstream-session', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

function routeConfig(upPort: number, plugin: Record<string, unknown>) {
  return { upstreams: [{ id: 'up', nodes: [node(upPort)] }], routes: [{ id: 'r', paths: ['/*'], upstreamId: 'up', plugins: { 'file-logger': plugin } }] };
}

async function control(statusPort: number, action: string): Promise<{ status: number; body: { workers: unknown[] } }> {
  const r = await send(statusPort, `/plugins/file-logger/${action}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  return { status: r.status, body: JSON.parse(r.body) as { workers: unknown[] } };
}

async function stats(statusPort: number): Promise<FileLoggerStats[]> {
  return (await control(statusPort, 'stats')).body.workers[0] as FileLoggerStats[];
}

describe('file-logger config', () => {
  it('fills defaults', () => {
    const r = validate({ path: 'logs/access.jsonl' });
    assert.ok(r.ok);
    assert.deepEqual((r.value.routes[0] as { plugins: Record<string, unknown> }).plugins['file-logger'], {
      path: 'logs/access.jsonl',
      batchMaxSize: 100,
      flushInterval: 1000,
      maxQueue: 10000,
      fields: ['time', 'route', 'service', 'consumer', 'method', 'path', 'status', 'latencyMs', 'upstreamLatencyMs', 'upstream', 'clientIp', 'bytesSent', 'bytesReceived', 'userAgent', 'requestId'],
      includeQuery: false,
      redactQueryArgs: [],
      requestHeaders: [],
      responseHeaders: [],
    });
  });

  it('refuses bad paths and options with their field paths', () => {
    assert.ok(problemsOf({}).some((p) => p.includes('path')));
    assert.ok(problemsOf({ path: '' }).some((p) => p.startsWith(`${P}.path`)));
    assert.ok(problemsOf({ path: 'a\u0000b' }).some((p) => p.startsWith(`${P}.path`)));
    assert.deepEqual(problemsOf({ path: 'logs/' }), [`${P}.path: names a directory, not a file`]);
    assert.deepEqual(problemsOf({ path: '..' }), [`${P}.path: names a directory, not a file`]);
    assert.deepEqual(problemsOf({ path: 'a.log', batchMaxSize: 10, maxQueue: 5 }), [`${P}.maxQueue: must be at least batchMaxSize`]);
    assert.deepEqual(problemsOf({ path: 'a.log', requestHeaders: ['X-A', 'x-a'] }), [`${P}.requestHeaders[1]: repeats header "x-a"`]);
    assert.ok(problemsOf({ path: 'a.log', flushInterval: 0 }).some((p) => p.startsWith(`${P}.flushInterval`)));
    assert.ok(problemsOf({ path: 'a.log', uri: 'http://x' }).length > 0);
  });

  it('the example in docs/plugins/file-logger.md is valid', () => {
    const doc = readFileSync(new URL('../../../../docs/plugins/file-logger.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const r = validateDeclarative(parse(yaml), builtinRegistry());
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
  });
});

describe('file-logger traffic', () => {
  it('appends one JSON record per line with the default fields, secrets redacted', async () => {
    const file = join(dir, 'default.jsonl');
    const up = await app();
    const gw = await h.gateway(
      routeConfig(up.port, { path: file, batchMaxSize: 2, flushInterval: 20, includeQuery: true, requestHeaders: ['Cookie', 'X-Tenant'], responseHeaders: ['Set-Cookie', 'Content-Type'] }),
    );
    for (let i = 0; i < 3; i++) {
      const r = await send(gw.http, `/items/${i}?q=${i}&password=hunter2`, { headers: { cookie: 'sid=client-session', 'x-tenant': 'acme', 'user-agent': 'file-test' } });
      assert.equal(r.status, 200);
    }
    assert.ok(await until(() => lines(file).length === 3));
    const recs = lines(file);
    assert.deepEqual(recs.map((r) => r.path), ['/items/0', '/items/1', '/items/2']);
    const rec = recs[1]!;
    assert.deepEqual(Object.keys(rec), [
      'time',
      'route',
      'service',
      'consumer',
      'method',
      'path',
      'status',
      'latencyMs',
      'upstreamLatencyMs',
      'upstream',
      'clientIp',
      'bytesSent',
      'bytesReceived',
      'userAgent',
      'requestId',
      'query',
      'requestHeaders',
      'responseHeaders',
    ]);
    assert.equal(rec.route, 'r');
    assert.equal(rec.status, 200);
    assert.equal(rec.method, 'GET');
    assert.equal(rec.userAgent, 'file-test');
    assert.equal(rec.upstream, `127.0.0.1:${up.port}`);
    assert.equal(rec.query, 'q=1&password=[redacted]');
    assert.deepEqual(rec.requestHeaders, { cookie: '[redacted]', 'x-tenant': 'acme' });
    assert.deepEqual(rec.responseHeaders, { 'set-cookie': '[redacted]', 'content-type': 'application/json' });
    const text = readFileSync(file, 'utf8');
    for (const secret of ['hunter2', 'client-session', 'upstream-session']) assert.ok(!text.includes(secret), `${secret} logged`);
  });

  it('writes only the chosen fields', async () => {
    const file = join(dir, 'fields.jsonl');
    const up = await app();
    const gw = await h.gateway(routeConfig(up.port, { path: file, batchMaxSize: 1, fields: ['status', 'path', 'method'] }));
    await send(gw.http, '/one');
    await send(gw.http, '/two', { method: 'POST', body: 'x' });
    assert.ok(await until(() => lines(file).length === 2));
    assert.deepEqual(lines(file), [
      { status: 200, path: '/one', method: 'GET' },
      { status: 200, path: '/two', method: 'POST' },
    ]);
  });

  it('reopen after a rename: later records go to a new file at the path', async () => {
    const file = join(dir, 'rotate.jsonl');
    const up = await app();
    const gw = await h.gateway(routeConfig(up.port, { path: file, batchMaxSize: 1, fields: ['path'] }), {}, { statusServer: true });
    await send(gw.http, '/first');
    assert.ok(await until(() => lines(file).length === 1));
    renameSync(file, `${file}.1`);
    // Until reopened the open descriptor follows the renamed file, as with any log writer.
    await send(gw.http, '/second');
    assert.ok(await until(() => lines(`${file}.1`).length === 2));
    assert.equal(existsSync(file), false);
    const r = await control(gw.status!, 'reopen');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { workers: [{ reopened: [file] }] });
    await send(gw.http, '/third');
    assert.ok(await until(() => lines(file).length === 1));
    assert.deepEqual(lines(file), [{ path: '/third' }]);
    assert.deepEqual(lines(`${file}.1`), [{ path: '/first' }, { path: '/second' }]);
    const s = (await stats(gw.status!))[0]!;
    assert.equal(s.reopens, 1);
    assert.equal(s.sent, 3);
    assert.equal(s.open, true);
  });

  it('an unwritable directory: reported once at load, counted, requests unaffected; written once it can be', async () => {
    // A path under a regular file can never be created, whoever the tests run as (root ignores permissions).
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, 'x');
    const missing = join(dir, 'later');
    const file = join(missing, 'access.jsonl');
    const badFile = join(blocker, 'access.jsonl');
    const up = await app();
    const logs: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    });
    const gw = await startInProcessGateway({
      config: {
        upstreams: [{ id: 'up', nodes: [node(up.port)] }],
        routes: [
          { id: 'bad', paths: ['/bad/*'], upstreamId: 'up', plugins: { 'file-logger': { path: badFile, batchMaxSize: 1 } } },
          { id: 'later', paths: ['/later/*'], upstreamId: 'up', plugins: { 'file-logger': { path: file, batchMaxSize: 1 } } },
        ],
      },
      statusServer: true,
      logger: pino({ level: 'info' }, stream),
    });
    h.defer(() => gw.close());
    // Reported when the config loads, before any request.
    assert.ok(await until(() => logs.filter((l) => l.includes('cannot write its file')).length === 2));
    const first = JSON.parse(logs.find((l) => l.includes(badFile))!);
    assert.equal(first.reason, 'ENOTDIR');
    assert.equal(first.level, 50);
    for (let i = 0; i < 5; i++) {
      assert.equal((await send(gw.http, `/bad/${i}`)).status, 200);
      assert.equal((await send(gw.http, `/later/${i}`)).status, 200);
    }
    let all: FileLoggerStats[] = [];
    assert.ok(
      await (async () => {
        for (let i = 0; i < 500; i++) {
          all = await stats(gw.status!);
          if (all.every((s) => s.failed === 5)) return true;
          await new Promise((r) => setTimeout(r, 10));
        }
        return false;
      })(),
      JSON.stringify(all),
    );
    const bad = all.find((s) => s.file === badFile)!;
    assert.equal(bad.error, 'ENOTDIR');
    assert.equal(bad.open, false);
    assert.equal(all.find((s) => s.file === file)!.error, 'ENOENT');
    assert.equal(logs.filter((l) => l.includes('cannot write its file')).length, 2, 'once per file and cause, not per batch');

    // The directory appears (created by an operator): the next batch opens the file and is written.
    mkdirSync(missing);
    await send(gw.http, '/later/ok');
    assert.ok(await until(() => lines(file).length === 1));
    assert.equal(lines(file)[0]!.path, '/later/ok');
    assert.ok(await until(() => logs.some((l) => l.includes('writes its file again'))));
  });

  it('several configs naming one file share one descriptor and queue', async () => {
    const file = join(dir, 'shared.jsonl');
    const up = await app();
    const gw = await h.gateway(
      {
        globalPlugins: { 'file-logger': { path: file, batchMaxSize: 1, fields: ['route'] } },
        upstreams: [{ id: 'up', nodes: [node(up.port)] }],
        routes: [
          { id: 'a', paths: ['/a'], upstreamId: 'up' },
          { id: 'b', paths: ['/b'], upstreamId: 'up', plugins: { 'file-logger': { path: file, batchMaxSize: 1, fields: ['route', 'status'] } } },
        ],
      },
      {},
      { statusServer: true },
    );
    await send(gw.http, '/a');
    await send(gw.http, '/b');
    assert.ok(await until(() => lines(file).length === 2));
    assert.deepEqual(lines(file), [{ route: 'a' }, { route: 'b', status: 200 }]);
    assert.equal((await stats(gw.status!)).length, 1);
  });

  it('closing writes what is queued at once', () => {
    const file = join(dir, 'close.jsonl');
    const store = new PluginStateStore();
    const env = pluginEnv({ plugin: 'file-logger', store });
    const conf = { path: file, batchMaxSize: 100, flushInterval: 600000, maxQueue: 1000, fields: ['method', 'path'], includeQuery: false, redactQueryArgs: [], requestHeaders: [], responseHeaders: [] };
    const inst = fileLogger.create(conf as never, env);
    for (const p of ['/q1', '/q2']) inst.log!({ method: 'GET', path: p, vars: {} } as unknown as PluginContext);
    store.closeAll();
    // Synchronously: a stopping worker exits right after.
    assert.deepEqual(lines(file), [
      { method: 'GET', path: '/q1' },
      { method: 'GET', path: '/q2' },
    ]);
  });

  it('several processes appending to one file never interleave lines', async () => {
    const file = join(dir, 'multi.jsonl');
    const moduleUrl = new URL('./index.js', import.meta.url).href;
    const pinoUrl = import.meta.resolve('pino');
    // Each process writes 4 batches of 500 records of about 2 KiB: writes of about 1 MiB racing each other.
    const script = `
      const { FileSink } = await import(${JSON.stringify(moduleUrl)});
      const { pino } = await import(${JSON.stringify(pinoUrl)});
      const [file, tag] = process.argv.slice(-2);
      const sink = new FileSink(file, { batchMaxSize: 500, flushInterval: 5, maxQueue: 2000 }, pino({ level: 'silent' }));
      const pad = tag.repeat(2000);
      for (let i = 0; i < 2000; i++) sink.queue.push(JSON.stringify({ tag, i, pad }));
      while (sink.queue.stats.sent + sink.queue.stats.failed < 2000) await new Promise((r) => setTimeout(r, 5));
      sink.close();
      process.exit(sink.queue.stats.failed === 0 ? 0 : 1);
    `;
    const run = (tag: string) =>
      new Promise<number>((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', file, tag], { stdio: 'inherit' });
        child.on('exit', (code) => resolve(code ?? 1));
      });
    const codes = await Promise.all([run('a'), run('b'), run('c')]);
    assert.deepEqual(codes, [0, 0, 0]);
    const recs = lines(file);
    assert.equal(recs.length, 6000);
    for (const tag of ['a', 'b', 'c']) {
      const mine = recs.filter((r) => r.tag === tag);
      assert.equal(mine.length, 2000);
      assert.deepEqual(
        mine.map((r) => r.i),
        Array.from({ length: 2000 }, (_, i) => i),
        'each process\'s lines whole and in order',
      );
      assert.ok(mine.every((r) => r.pad === tag.repeat(2000)));
    }
  });
});
