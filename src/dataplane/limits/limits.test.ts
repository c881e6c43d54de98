/**
 * @module dataplane/limits/limits.test
 * The gateway's shared limit state with a fake clock: fixed, sliding and calendar windows, several limits at
 * once, leases handed to workers (never more than the limit in total, whatever the interleaving), leaky
 * buckets and concurrency slots.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocalLimits } from './local.js';
import { LeasedLimits, type LimitsChannel } from './leased.js';
import { windowAt, type CounterLimit, type CounterVerdict } from './types.js';

function clock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms), set: (v: number) => (t = v) };
}

const perSecond = (count: number, sliding = false): CounterLimit => ({ count, window: { ms: 1000 }, sliding });

describe('windows', () => {
  it('ms windows align to the epoch; calendar months and years to UTC', () => {
    const t = Date.UTC(2026, 1, 15, 12, 30, 5, 250);
    assert.deepEqual(windowAt({ ms: 1000 }, t), { id: Math.floor(t / 1000), start: t - 250, end: t + 750 });
    const day = windowAt({ ms: 86_400_000 }, t);
    assert.equal(day.start, Date.UTC(2026, 1, 15));
    const month = windowAt({ calendar: 'month' }, t);
    assert.deepEqual([month.start, month.end], [Date.UTC(2026, 1, 1), Date.UTC(2026, 2, 1)]);
    assert.equal(windowAt({ calendar: 'month' }, Date.UTC(2026, 11, 31, 23)).end, Date.UTC(2027, 0, 1), 'December rolls into the next year');
    assert.equal(windowAt({ calendar: 'month' }, Date.UTC(2027, 0, 1)).id, windowAt({ calendar: 'month' }, Date.UTC(2026, 11, 1)).id + 1, 'consecutive ids across a year');
    const year = windowAt({ calendar: 'year' }, t);
    assert.deepEqual([year.start, year.end], [Date.UTC(2026, 0, 1), Date.UTC(2027, 0, 1)]);
  });
});

describe('LocalLimits counters', () => {
  it('fixed window: count per window, remaining and reset, a new window starts from zero', () => {
    const c = clock();
    const l = new LocalLimits(c.now);
    const got = [1, 2, 3, 4].map(() => l.count('k', [perSecond(3)], 1));
    assert.deepEqual(
      got.map((v) => [v.allowed, v.remaining]),
      [
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
      ],
    );
    assert.equal(got[3]!.resetMs, 1000);
    c.advance(400);
    assert.equal(l.count('k', [perSecond(3)], 1).resetMs, 600, 'reset counts down');
    assert.equal(l.count('other', [perSecond(3)], 1).allowed, true, 'keys count apart');
    c.advance(600);
    assert.equal(l.count('k', [perSecond(3)], 1).remaining, 2, 'the next window starts afresh');
  });

  it('sliding window: the previous window weighs in by its overlap', () => {
    const c = clock();
    const l = new LocalLimits(c.now);
    const lim = [perSecond(10, true)];
    for (let i = 0; i < 10; i++) assert.equal(l.count('k', lim, 1).allowed, true);
    assert.equal(l.count('k', lim, 1).allowed, false);
    c.advance(1000); // start of the next window: the previous one still counts fully
    assert.equal(l.count('k', lim, 1).allowed, false, 'at the boundary the last second is still full');
    c.advance(500); // half of the previous window overlaps: 5 used
    const ok = [1, 2, 3, 4, 5, 6].map(() => l.count('k', lim, 1).allowed);
    assert.deepEqual(ok, [true, true, true, true, true, false]);
    c.advance(2000);
    assert.equal(l.count('k', lim, 1).remaining, 9, 'a window two back no longer counts');
  });

  it('several limits: allowed only when all have room, and then counted in all; reports the tightest', () => {
    const c = clock();
    const l = new LocalLimits(c.now);
    const lims: CounterLimit[] = [perSecond(5), { count: 7, window: { calendar: 'month' }, sliding: false }];
    const first = l.count('k', lims, 1);
    assert.deepEqual([first.limit, first.remaining], [5, 4]);
    for (let i = 0; i < 4; i++) l.count('k', lims, 1);
    const refused = l.count('k', lims, 1);
    assert.deepEqual([refused.allowed, refused.limit], [false, 5], 'the per-second limit refused');
    c.advance(1000);
    const next = l.count('k', lims, 1);
    assert.deepEqual([next.allowed, next.limit, next.remaining], [true, 7, 1], 'now the month is the tightest');
    l.count('k', lims, 1);
    const monthOut = l.count('k', lims, 1);
    assert.deepEqual([monthOut.allowed, monthOut.limit], [false, 7]);
    assert.equal(monthOut.resetMs, Date.UTC(2026, 1, 1) - c.now(), 'resets at the start of next month');
    c.advance(2000);
    assert.equal(l.count('k', lims, 1).allowed, false, 'a refusal by one limit counts in none: the second still has room, the month none');
  });

  it('sweep forgets ended windows', () => {
    const c = clock();
    const l = new LocalLimits(c.now);
    l.count('a', [perSecond(1)], 1);
    l.bucket('b', 10, 0);
    c.advance(5000);
    l.sweep();
    assert.deepEqual(l.size, { counters: 0, buckets: 0, slots: 0 });
  });
});

/** A channel to a primary's LocalLimits, with replies delivered when the test says so. */
function channelTo(primary: LocalLimits, workers: number, delayed = false) {
  const queue: Array<() => void> = [];
  let grants = 0;
  const ch: LimitsChannel = {
    grant: (key, limits, cost) => {
      grants++;
      const r = primary.grant(key, limits, cost, workers);
      return delayed ? new Promise((res) => queue.push(() => res(r))) : Promise.resolve(r);
    },
    bucket: (key, rate, burst) => Promise.resolve(primary.bucket(key, rate, burst)),
    acquire: (key, max) => Promise.resolve(primary.acquire(key, max)),
    release: (key) => primary.release(key),
  };
  return { ch, flush: () => queue.splice(0).forEach((f) => f()), grants: () => grants };
}

async function take(l: LeasedLimits, key: string, lims: CounterLimit[]): Promise<CounterVerdict> {
  return l.count(key, lims, 1);
}

describe('LeasedLimits (workers spending leases from the primary)', () => {
  it('two workers together never exceed the limit, and use it up', async () => {
    const c = clock();
    const primary = new LocalLimits(c.now);
    const a = channelTo(primary, 2);
    const b = channelTo(primary, 2);
    const wa = new LeasedLimits(a.ch, c.now);
    const wb = new LeasedLimits(b.ch, c.now);
    const lims = [{ count: 1000, window: { ms: 60_000 }, sliding: false }];
    let allowed = 0;
    // Interleaved, uneven traffic: worker a takes twice as much.
    for (let i = 0; i < 1500; i++) {
      if ((await take(wa, 'k', lims)).allowed) allowed++;
      if ((await take(wa, 'k', lims)).allowed) allowed++;
      if ((await take(wb, 'k', lims)).allowed) allowed++;
    }
    assert.equal(allowed, 1000, 'exactly the limit: leases shrink to one request as it runs out');
    assert.ok(a.grants() + b.grants() < 300, `most requests spent leases, not messages (${a.grants() + b.grants()} grants)`);
  });

  it('a synchronous answer while the lease lasts; requests waiting on one refill share it', async () => {
    const c = clock();
    const primary = new LocalLimits(c.now);
    const ch = channelTo(primary, 1, true);
    const w = new LeasedLimits(ch.ch, c.now);
    const lims = [{ count: 100, window: { ms: 60_000 }, sliding: false }];
    const pending = [w.count('k', lims, 1), w.count('k', lims, 1), w.count('k', lims, 1)];
    assert.ok(pending.every((p) => p instanceof Promise));
    assert.equal(ch.grants(), 1, 'one refill in flight for the key');
    ch.flush();
    const got = await Promise.all(pending);
    assert.ok(got.every((v) => v.allowed));
    const sync = w.count('k', lims, 1);
    assert.ok(!(sync instanceof Promise), 'spent from the lease without a message');
    assert.equal((sync as CounterVerdict).allowed, true);
  });

  it('more waiters than one lease holds: they ask again, none is refused while the limit has room', async () => {
    const c = clock();
    const primary = new LocalLimits(c.now);
    // With 8 workers a lease is an eighth of a quarter of what is left: 3 tokens of 100.
    const ch = channelTo(primary, 8, true);
    const w = new LeasedLimits(ch.ch, c.now);
    const lims = [{ count: 100, window: { ms: 60_000 }, sliding: false }];
    const pending = Array.from({ length: 10 }, () => w.count('k', lims, 1));
    for (let i = 0; i < 20; i++) {
      ch.flush();
      await new Promise((r) => setImmediate(r));
    }
    const got = await Promise.all(pending);
    assert.deepEqual(got.map((v) => v.allowed), Array(10).fill(true));
    assert.ok(ch.grants() > 1, 'it took several grants');
  });

  it('leases end with their window: the next window needs a fresh grant', async () => {
    const c = clock();
    const primary = new LocalLimits(c.now);
    const ch = channelTo(primary, 1);
    const w = new LeasedLimits(ch.ch, c.now);
    const lims = [perSecond(2)];
    assert.equal((await take(w, 'k', lims)).allowed, true);
    assert.equal((await take(w, 'k', lims)).allowed, true);
    assert.equal((await take(w, 'k', lims)).allowed, false);
    c.advance(1000);
    assert.equal((await take(w, 'k', lims)).allowed, true);
  });

  it('several limits: a refused request spends nothing from the others', async () => {
    const c = clock();
    const primary = new LocalLimits(c.now);
    const w = new LeasedLimits(channelTo(primary, 1).ch, c.now);
    const lims: CounterLimit[] = [perSecond(1), { count: 3, window: { ms: 3_600_000 }, sliding: false }];
    const seen: boolean[] = [];
    for (let s = 0; s < 5; s++) {
      seen.push((await take(w, 'k', lims)).allowed, (await take(w, 'k', lims)).allowed);
      c.advance(1000);
    }
    assert.deepEqual(seen, [true, false, true, false, true, false, false, false, false, false]);
  });
});

describe('leaky bucket and slots', () => {
  it('bucket: the first request goes at once, the next ones are delayed by 1/rate each, beyond the burst refused', () => {
    const c = clock();
    const l = new LocalLimits(c.now);
    const v = [0, 1, 2, 3].map(() => l.bucket('k', 10, 2));
    assert.deepEqual(
      v.map((x) => [x.allowed, Math.round(x.delayMs)]),
      [
        [true, 0],
        [true, 100],
        [true, 200],
        [false, 0],
      ],
    );
    assert.equal(v[3]!.retryAfterMs, 100);
    c.advance(100); // one request drained
    assert.equal(l.bucket('k', 10, 2).allowed, true);
    c.advance(10_000);
    assert.equal(Math.round(l.bucket('k', 10, 2).delayMs), 0, 'a drained bucket delays nothing');
  });

  it('slots: at most max at once, given back on release', () => {
    const l = new LocalLimits();
    assert.deepEqual([l.acquire('k', 2), l.acquire('k', 2), l.acquire('k', 2)], [true, true, false]);
    l.release('k');
    assert.equal(l.acquire('k', 2), true);
    l.release('k');
    l.release('k');
    assert.equal(l.size.slots, 0, 'no entry is left for a key with nothing held');
  });
});
