/**
 * @module plugins/limit-count/redis
 * Counters in Redis, one per key and window, shared by every gateway that uses the server. One script call per
 * request checks every limit and counts against all of them only when all have room, atomically. Keys hold a
 * hash of the request key, so header or query values used as keys (API keys) are never stored in Redis.
 */
import { createHash } from 'node:crypto';
import { LuaScript, type RedisHandle } from '../../dataplane/limits/redis-clients.js';
import { windowAt, windowName, type CounterLimit, type CounterVerdict } from '../../dataplane/limits/types.js';

/**
 * KEYS: per limit i, the current window's counter (2i-1) and the previous one's (2i).
 * ARGV: cost, then per limit count, weight of the previous window (0 for fixed windows), ttl in ms.
 * Returns {allowed 0|1, index of the limit to report (1-based), its remaining count}.
 */
const SCRIPT = new LuaScript(`
local cost = tonumber(ARGV[1])
local n = #KEYS / 2
local left = {}
for i = 1, n do
  local base = 1 + (i - 1) * 3
  local count = tonumber(ARGV[base + 1])
  local weight = tonumber(ARGV[base + 2])
  local used = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  if weight > 0 then
    used = used + tonumber(redis.call('GET', KEYS[2 * i]) or '0') * weight
  end
  left[i] = count - used
  if left[i] < cost then
    return {0, i, 0}
  end
end
local best = 1
local bestLeft = nil
for i = 1, n do
  local base = 1 + (i - 1) * 3
  local v = redis.call('INCRBY', KEYS[2 * i - 1], cost)
  if v == cost then
    redis.call('PEXPIRE', KEYS[2 * i - 1], tonumber(ARGV[base + 3]))
  end
  local l = left[i] - cost
  if bestLeft == nil or l < bestLeft then
    best = i
    bestLeft = l
  end
end
return {1, best, math.floor(bestLeft)}
`);

export class RedisCounter {
  private readonly names: string[];

  constructor(
    private readonly redis: RedisHandle,
    private readonly limits: readonly CounterLimit[],
    private readonly now: () => number = Date.now,
  ) {
    this.names = limits.map((l) => windowName(l.window, l.sliding));
  }

  /** Rejects when Redis cannot answer (not connected, error, timeout): the caller applies its failure policy. */
  async count(key: string, cost: number): Promise<CounterVerdict> {
    const now = this.now();
    // The hash tag keeps every counter of one key in one slot, as scripts need under Redis Cluster.
    const base = `gatehouse:limit-count:{${createHash('sha256').update(key).digest('base64url')}}:`;
    const keys: string[] = [];
    const args: string[] = [String(cost)];
    const ends: number[] = [];
    this.limits.forEach((l, i) => {
      const w = windowAt(l.window, now);
      const len = w.end - w.start;
      keys.push(`${base}${this.names[i]}:${w.id}`, `${base}${this.names[i]}:${w.id - 1}`);
      const weight = l.sliding ? (w.end - now) / len : 0;
      // A sliding window's counter is read during the next window too.
      const ttl = w.end - now + (l.sliding ? len : 0) + 1000;
      args.push(String(l.count), String(weight), String(Math.ceil(ttl)));
      ends.push(w.end);
    });
    const reply = (await this.redis.eval(SCRIPT, keys, args)) as [number, number, number];
    const i = Number(reply[1]) - 1;
    const limit = this.limits[i]!;
    return { allowed: Number(reply[0]) === 1, limit: limit.count, remaining: Math.max(0, Number(reply[2])), resetMs: ends[i]! - now };
  }
}
