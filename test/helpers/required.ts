/**
 * @module test/helpers/required
 * Suites that need a real server program (etcd, redis-server, dnsmasq, Chromium...) skip on a machine without
 * it, but never under CI, where the program is installed on purpose and its absence must fail the run.
 */

/** Skip reason for node:test (`missing` says what is absent), or false when `missing` is null; throws under CI. */
export function skipUnlessPresent(missing: string | null): string | false {
  if (missing === null) return false;
  if (process.env.CI === 'true') throw new Error(`${missing}: it is required under CI`);
  return missing;
}
