/**
 * @module plugins/logging/batch.test
 * The logger plugins' batching queue on its own, with a fake sink: batches by size and by time, one batch at a
 * time, the bound (drops counted, one warning per interval), retries with backoff then giving up, refusals not
 * retried, stop() handing back what was not sent, options changed by a reload.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { BatchFailed, BatchQueue, BatchRefused, failureReason, type BatchOptions } from './batch.js';

interface Line {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function fakeLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => lines.push({ level, obj, msg });
  return { logger: { warn: at('warn'), error: at('error'), info: at('info') } as unknown as Logger, lines };
}

const OPTS: BatchOptions = { batchMaxSize: 3, flushInterval: 60_000, maxQueue: 10, retries: 0, retryDelay: 10 };

/** A sink whose calls are kept, each settled by the test. */
function controlledSink() {
  const calls: Array<{ records: string[]; ok: () => void; fail: (e: unknown) => void }> = [];
  const send = (records: string[]) =>
    new Promise<void>((ok, fail) => {
      calls.push({ records, ok, fail });
    });
  return { calls, send };
}

const tick = () => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('BatchQueue', () => {
  it('sends a batch as soon as batchMaxSize records wait, one batch at a time', async () => {
    const { calls, send } = controlledSink();
    const q = new BatchQueue(OPTS, send, fakeLogger().logger, {});
    for (let i = 0; i < 7; i++) q.push(`r${i}`);
    await tick();
    assert.equal(calls.length, 1, 'only one batch on its way');
    assert.deepEqual(calls[0]!.records, ['r0', 'r1', 'r2']);
    assert.equal(q.queued, 7, 'the batch on its way still counts towards the bound');
    calls[0]!.ok();
    await until(() => calls.length === 2);
    assert.deepEqual(calls[1]!.records, ['r3', 'r4', 'r5']);
    calls[1]!.ok();
    await tick();
    await tick();
    // One record left: it waits for the flush interval (60 s here), not sent at once.
    assert.equal(calls.length, 2);
    assert.equal(q.queued, 1);
    assert.equal(q.stats.sent, 6);
    assert.equal(q.stats.batches, 2);
    q.stop();
  });

  it('sends a partial batch once flushInterval has passed', async () => {
    const { calls, send } = controlledSink();
    const q = new BatchQueue({ ...OPTS, flushInterval: 20 }, send, fakeLogger().logger, {});
    q.push('a');
    q.push('b');
    assert.equal(calls.length, 0);
    await until(() => calls.length === 1);
    assert.deepEqual(calls[0]!.records, ['a', 'b']);
    calls[0]!.ok();
    await until(() => q.queued === 0);
    q.stop();
  });

  it('drops records past maxQueue, counts them and warns once per interval', async () => {
    const { calls, send } = controlledSink();
    const { logger, lines } = fakeLogger();
    let now = 1_000_000;
    const q = new BatchQueue({ ...OPTS, maxQueue: 5 }, send, logger, { collector: 'http://c' }, () => now);
    for (let i = 0; i < 25; i++) q.push(`r${i}`);
    assert.equal(q.queued, 5);
    assert.equal(q.stats.dropped, 20);
    const warns = lines.filter((l) => l.msg.includes('queue full'));
    assert.equal(warns.length, 1, 'one warning for the burst');
    assert.equal(warns[0]!.obj.collector, 'http://c');
    assert.equal(warns[0]!.obj.maxQueue, 5);
    now += 10_001;
    q.push('late');
    const again = lines.filter((l) => l.msg.includes('queue full'));
    assert.equal(again.length, 2);
    assert.equal(again[1]!.obj.dropped, 20, 'the second warning counts the drops since the first');
    assert.equal(calls.length, 1);
    q.stop();
  });

  it('retries a failed batch with growing delays, then delivers it', async () => {
    const attempts: number[] = [];
    let n = 0;
    const send = async (records: string[]) => {
      attempts.push(Date.now());
      assert.deepEqual(records, ['a', 'b', 'c']);
      if (++n < 3) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1 secret-path'), { code: 'ECONNREFUSED' });
    };
    const { logger, lines } = fakeLogger();
    const q = new BatchQueue({ ...OPTS, retries: 3, retryDelay: 30 }, send, logger, { collector: 'http://c' });
    q.push('a');
    q.push('b');
    q.push('c');
    await until(() => q.stats.sent === 3);
    assert.equal(n, 3);
    assert.equal(q.stats.retried, 2);
    assert.equal(q.stats.failed, 0);
    assert.equal(q.queued, 0);
    // Backoff: at least the base delay before the first retry and twice it before the second.
    assert.ok(attempts[1]! - attempts[0]! >= 25, `first retry after ${attempts[1]! - attempts[0]!} ms`);
    assert.ok(attempts[2]! - attempts[1]! >= 55, `second retry after ${attempts[2]! - attempts[1]!} ms`);
    const warn = lines.find((l) => l.msg.includes('will retry'))!;
    assert.equal(warn.obj.reason, 'ECONNREFUSED', 'the reason is the code, never the message');
    assert.doesNotMatch(JSON.stringify(lines), /secret-path/);
    q.stop();
  });

  it('gives a batch up after its retries, counts it failed, and goes on with the next', async () => {
    let calls = 0;
    const send = async (records: string[]) => {
      calls++;
      if (records[0] === 'a') throw new BatchFailed('status 503');
    };
    const { logger, lines } = fakeLogger();
    const q = new BatchQueue({ ...OPTS, retries: 2, retryDelay: 5, flushInterval: 5 }, send, logger, {});
    for (const r of ['a', 'b', 'c', 'd']) q.push(r);
    await until(() => q.stats.failed === 3);
    assert.equal(calls, 3, 'the first try and two retries');
    await until(() => q.stats.sent === 1);
    assert.equal(q.queued, 0);
    assert.ok(lines.some((l) => l.obj.reason === 'status 503'));
    q.stop();
  });

  it('a reload\'s options apply from the next batch', async () => {
    const { calls, send } = controlledSink();
    const q = new BatchQueue(OPTS, send, fakeLogger().logger, {});
    q.push('a');
    q.push('b');
    await tick();
    assert.equal(calls.length, 0, 'two records: batchMaxSize 3 is not reached');
    q.configure({ ...OPTS, batchMaxSize: 2 });
    q.push('c');
    await tick();
    assert.deepEqual(calls[0]!.records, ['a', 'b'], 'the new batchMaxSize applies');
    calls[0]!.ok();
    q.stop();
  });

  it('does not retry a batch the sink refused', async () => {
    let calls = 0;
    const send = async () => {
      calls++;
      throw new BatchRefused('status 400');
    };
    const q = new BatchQueue({ ...OPTS, retries: 5, retryDelay: 1 }, send, fakeLogger().logger, {});
    for (const r of ['a', 'b', 'c']) q.push(r);
    await until(() => q.stats.failed === 3);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(calls, 1);
    assert.equal(q.stats.retried, 0);
    q.stop();
  });

  it('a sink that throws synchronously is a failed batch, not a crash', async () => {
    const q = new BatchQueue(
      OPTS,
      () => {
        throw new Error('boom');
      },
      fakeLogger().logger,
      {},
    );
    for (const r of ['a', 'b', 'c']) q.push(r);
    await until(() => q.stats.failed === 3);
    q.stop();
  });

  it('stop() hands back what is not on the wire and drops later records', async () => {
    const { calls, send } = controlledSink();
    const q = new BatchQueue(OPTS, send, fakeLogger().logger, {});
    for (let i = 0; i < 5; i++) q.push(`r${i}`);
    await tick();
    assert.equal(calls.length, 1);
    assert.deepEqual(q.stop(), ['r3', 'r4']);
    q.push('after');
    assert.equal(q.stats.dropped, 1);
    calls[0]!.ok();
    await until(() => q.stats.sent === 3);
    assert.equal(calls.length, 1, 'no batch after stop');
    assert.equal(q.queued, 0);
  });

  it('stop() during a retry wait hands the batch back', async () => {
    const send = async () => {
      throw new BatchFailed('status 500');
    };
    const q = new BatchQueue({ ...OPTS, retries: 3, retryDelay: 60_000 }, send, fakeLogger().logger, {});
    for (const r of ['a', 'b', 'c', 'd']) q.push(r);
    await until(() => q.stats.retried === 1);
    assert.deepEqual(q.stop(), ['a', 'b', 'c', 'd']);
  });

  it('failureReason never returns an error message', () => {
    assert.equal(failureReason(Object.assign(new Error('GET /x?token=abc'), { code: 'ECONNRESET' })), 'ECONNRESET');
    assert.equal(failureReason(new TypeError('https://user:pw@host')), 'TypeError');
    assert.equal(failureReason(new BatchFailed('status 502')), 'status 502');
    assert.equal(failureReason(null), 'unknown');
  });
});
