/**
 * @module process/limits-ipc.test
 * The primary's shared limits with workers spending leases, wired as the IPC wires them (messages delivered
 * asynchronously): whatever the interleaving, the workers together let exactly `count` requests through; a
 * worker that finds a limit spent gets the others' unspent tokens back rather than refusing early.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LeasedLimits } from '../dataplane/limits/leased.js';
import type { CounterLimit } from '../dataplane/limits/types.js';
import type { PrimaryToWorker } from '../sync/messages.js';
import { PrimaryLimits } from './limits-ipc.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

function gateway(workerCount: number) {
  const workers: LeasedLimits[] = [];
  const primary = new PrimaryLimits(
    () => workerCount,
    (id: number, msg: PrimaryToWorker) => {
      const w = workers[id];
      if (!w || msg.t !== 'limits-reclaim') return false;
      // Delivered on a later turn, as IPC is.
      void tick().then(() => primary.returned({ id: msg.id, returned: w.reclaim(msg.key, msg.limits) }));
      return true;
    },
  );
  for (let id = 0; id < workerCount; id++) {
    workers.push(
      new LeasedLimits({
        grant: async (key, limits, cost) => {
          await tick();
          return (await primary.handle(id, { op: 'grant', key, limits: [...limits], cost })) as never;
        },
        bucket: async () => ({ allowed: true, delayMs: 0, retryAfterMs: 0 }),
        acquire: async () => true,
        release: () => {},
      }),
    );
  }
  return { primary, workers };
}

describe('shared counters across workers', () => {
  const lim: CounterLimit[] = [{ count: 50, window: { ms: 3_600_000 }, sliding: false }];

  it('traffic that moves from one worker to another still gets the whole limit', async () => {
    const { primary, workers } = gateway(2);
    let allowed = 0;
    // Worker 0 takes the early traffic (and leases), then all traffic goes to worker 1.
    for (let i = 0; i < 20; i++) if ((await workers[0]!.count('k', lim, 1)).allowed) allowed++;
    for (let i = 0; i < 60; i++) if ((await workers[1]!.count('k', lim, 1)).allowed) allowed++;
    assert.equal(allowed, 50, 'worker 1 got worker 0\'s unspent tokens back');
    primary.close();
  });

  it('random interleaving over four workers: exactly the limit, never more', async () => {
    for (let round = 0; round < 5; round++) {
      const { primary, workers } = gateway(4);
      let allowed = 0;
      const all: Promise<void>[] = [];
      for (let i = 0; i < 200; i++) {
        const w = workers[Math.floor(Math.random() * 4)]!;
        all.push(Promise.resolve(w.count('k', lim, 1)).then((v) => void (v.allowed && allowed++)));
        if (i % 7 === 0) await tick();
      }
      await Promise.all(all);
      assert.equal(allowed, 50, `round ${round}`);
      primary.close();
    }
  });
});
