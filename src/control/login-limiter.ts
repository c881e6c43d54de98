/**
 * @module control/login-limiter
 * Slows password guessing: after 5 failed logins for a user name, or 20 from one address, within 15 minutes,
 * further attempts are refused until the oldest failure ages out. A success clears the user name's count.
 * Memory is bounded: entries age out and the map is swept.
 */
const WINDOW_MS = 15 * 60 * 1000;
const PER_USER = 5;
const PER_ADDRESS = 20;
const MAX_ENTRIES = 100_000;

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  private recent(key: string): number[] {
    const t = this.now();
    const list = (this.failures.get(key) ?? []).filter((x) => x > t - WINDOW_MS);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** Milliseconds until another attempt is allowed (0: now). */
  check(username: string, address: string): number {
    const t = this.now();
    const u = this.recent(`u:${username}`);
    const a = this.recent(`a:${address}`);
    let wait = 0;
    if (u.length >= PER_USER) wait = Math.max(wait, u[u.length - PER_USER]! + WINDOW_MS - t);
    if (a.length >= PER_ADDRESS) wait = Math.max(wait, a[a.length - PER_ADDRESS]! + WINDOW_MS - t);
    return wait;
  }

  failed(username: string, address: string): void {
    if (this.failures.size > MAX_ENTRIES) this.sweep();
    for (const k of [`u:${username}`, `a:${address}`]) this.failures.set(k, [...this.recent(k), this.now()]);
  }

  succeeded(username: string, _address: string): void {
    this.failures.delete(`u:${username}`);
  }

  sweep(): void {
    for (const k of [...this.failures.keys()]) this.recent(k);
  }
}
