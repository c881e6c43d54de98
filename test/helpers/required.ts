/**
 * @module test/helpers/required
 * Suites that need a real server program (etcd, redis-server, dnsmasq, Chromium...) skip on a machine without
 * it, but never under CI, where the program is installed on purpose and its absence must fail the run.
 * Also: the child processes and scratch directories such helpers start, cleaned up when the test process exits.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/** Skip reason for node:test (`missing` says what is absent), or false when `missing` is null; throws under CI. */
export function skipUnlessPresent(missing: string | null): string | false {
  if (missing === null) return false;
  if (process.env.CI === 'true') throw new Error(`${missing}: it is required under CI`);
  return missing;
}

/**
 * Sets a helper's children and scratch directories are tracked in: whatever is still in them when the test
 * process exits is killed (SIGKILL) or removed.
 */
export function cleanupOnExit(): { children: Set<ChildProcess>; dirs: Set<string> } {
  const children = new Set<ChildProcess>();
  const dirs = new Set<string>();
  process.once('exit', () => {
    for (const c of children) c.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return { children, dirs };
}
