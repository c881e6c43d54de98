/**
 * Rates from two readings of the cumulative per-route counters (GET /api/v1/tenants/{t}/metrics): requests
 * per second, the share of 5xx answers, and the 99th percentile latency from the histogram buckets, over every
 * gateway instance that answered.
 *
 * Rates are taken per instance and then added up, never from the difference of two cluster totals: a total
 * drops when a gateway restarts, leaves or misses a reading, and its difference would be negative or a spike.
 * An instance is paired with its previous reading by id and start time; one that restarted counts from zero
 * if it started after the previous reading, and one not seen before (or seen before that) waits for a second
 * reading. No rate is ever negative.
 */

export interface RouteCounters {
  id: string;
  /** Requests answered since the gateway started, by status code. */
  requests: Record<string, number>;
  /** Latency histogram: cumulative counts at each bound in ms, then the +Inf count; total sum and count. */
  latency: { bucketsMs: number[]; counts: number[]; sumMs: number; count: number };
}

/** One gateway instance's counters in a reading. */
export interface InstanceReading {
  id: string;
  startedAt: string | null;
  /** When its counters were read. */
  at: string;
  ok: boolean;
  /** Why it did not answer. */
  error?: string;
  routes: RouteCounters[];
}

export interface MetricsReading {
  at: string;
  /** The sum over the instances that answered. */
  routes: RouteCounters[];
  /** Each instance's counters (absent from control planes that read a single gateway: `routes` is then its). */
  instances?: InstanceReading[];
}

export interface RouteRates {
  id: string;
  rps: number;
  errorRate: number;
  p99Ms: number | null;
}

const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
const errors = (r: Record<string, number>) => Object.entries(r).reduce((a, [s, n]) => a + (Number(s) >= 500 ? n : 0), 0);

/** The quantile q of a histogram given as cumulative counts per bound (+Inf last), interpolated within a bucket. */
export function quantile(q: number, boundsMs: number[], cumulative: number[]): number | null {
  const n = cumulative.at(-1) ?? 0;
  if (n <= 0) return null;
  const rank = q * n;
  for (let i = 0; i < cumulative.length; i++) {
    if (cumulative[i]! >= rank) {
      if (i >= boundsMs.length) return boundsMs.at(-1) ?? null; // in +Inf: the highest finite bound
      const lo = i === 0 ? 0 : boundsMs[i - 1]!;
      const below = i === 0 ? 0 : cumulative[i - 1]!;
      const inBucket = cumulative[i]! - below;
      return inBucket > 0 ? lo + ((boundsMs[i]! - lo) * (rank - below)) / inBucket : boundsMs[i]!;
    }
  }
  return boundsMs.at(-1) ?? null;
}

/** The instances of a reading; a reading without them is one instance. */
function instancesOf(m: MetricsReading): InstanceReading[] {
  return m.instances ?? [{ id: '', startedAt: null, at: m.at, ok: true, routes: m.routes }];
}

const sameStart = (a: InstanceReading, b: InstanceReading) => a.id === b.id && a.startedAt === b.startedAt;

/**
 * The reading to compare the next one with: `next`, where an instance that did not answer keeps its last good
 * counters from `prev` (same id and start), so the reading after it answers again spans the gap instead of
 * losing it.
 */
export function baseline(prev: MetricsReading | null, next: MetricsReading): MetricsReading {
  if (!prev || !next.instances) return next;
  const before = instancesOf(prev);
  return {
    ...next,
    instances: next.instances.map((n) => (n.ok ? n : (before.find((p) => p.ok && sameStart(p, n)) ?? n))),
  };
}

/** A histogram's cumulative count at `boundMs`: its count at the highest bound of its own not above it. */
function cumulativeAt(boundsMs: number[], counts: number[], boundMs: number): number {
  if (boundMs === Infinity) return counts.at(-1) ?? 0;
  let at = 0;
  for (let i = 0; i < boundsMs.length && boundsMs[i]! <= boundMs; i++) at = counts[i] ?? at;
  return at;
}

interface RouteIncrease {
  requests: Record<string, number>;
  /** Per instance: its bounds and the increase of its cumulative counts. */
  histograms: Array<{ boundsMs: number[]; counts: number[] }>;
  rps: number;
}

/**
 * Rates between an earlier and a later reading, per route over every instance that answered. Within one
 * instance a counter that went down (its counters restarted) counts from zero.
 */
export function rates(prev: MetricsReading, next: MetricsReading): RouteRates[] {
  const before = instancesOf(prev);
  const byRoute = new Map<string, RouteIncrease>();
  const of = (id: string) => {
    let r = byRoute.get(id);
    if (!r) byRoute.set(id, (r = { requests: {}, histograms: [], rps: 0 }));
    return r;
  };
  for (const n of instancesOf(next)) {
    if (!n.ok) continue;
    for (const r of n.routes) of(r.id);
    const p = before.find((x) => x.ok && sameStart(x, n));
    let since: number;
    let counted: Map<string, RouteCounters>;
    if (p) {
      since = Date.parse(p.at);
      counted = new Map(p.routes.map((r) => [r.id, r]));
    } else if (n.startedAt !== null && Date.parse(n.startedAt) >= Date.parse(prev.at)) {
      // Started since the last reading: everything it counted is new.
      since = Date.parse(prev.at);
      counted = new Map();
    } else continue; // first seen, running for who knows how long: its rates start with the next reading
    const seconds = Math.max((Date.parse(n.at) - since) / 1000, 0.001);
    for (const r of n.routes) {
      let was = counted.get(r.id);
      if (was && (total(was.requests) > total(r.requests) || was.latency.count > r.latency.count)) was = undefined;
      const inc = of(r.id);
      let count = 0;
      for (const [s, c] of Object.entries(r.requests)) {
        const d = Math.max(c - (was?.requests[s] ?? 0), 0);
        inc.requests[s] = (inc.requests[s] ?? 0) + d;
        count += d;
      }
      inc.rps += count / seconds;
      // The increase of each bucket; none when the bounds changed under the same start (nothing to pair).
      const base = !was || was.latency.counts.length === 0 ? [] : was.latency.bucketsMs.join() === r.latency.bucketsMs.join() ? was.latency.counts : null;
      if (r.latency.counts.length > 0 && base !== null) {
        inc.histograms.push({ boundsMs: r.latency.bucketsMs, counts: r.latency.counts.map((c, i) => Math.max(c - (base[i] ?? 0), 0)) });
      }
    }
  }
  return [...byRoute].map(([id, inc]) => {
    const count = total(inc.requests);
    const bounds = [...new Set(inc.histograms.flatMap((h) => h.boundsMs))].sort((a, b) => a - b);
    const cumulative = [...bounds, Infinity].map((b) => inc.histograms.reduce((n, h) => n + cumulativeAt(h.boundsMs, h.counts, b), 0));
    return { id, rps: inc.rps, errorRate: count ? errors(inc.requests) / count : 0, p99Ms: quantile(0.99, bounds, cumulative) };
  });
}

/** How many instances answered the reading, of how many, and why the others did not. */
export function reporting(m: MetricsReading): { answered: number; total: number; missing: Array<{ id: string; error: string }> } | null {
  if (!m.instances) return null;
  const missing = m.instances.filter((i) => !i.ok).map((i) => ({ id: i.id, error: i.error ?? 'no answer' }));
  return { answered: m.instances.length - missing.length, total: m.instances.length, missing };
}
