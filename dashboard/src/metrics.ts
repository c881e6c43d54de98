/**
 * Rates from two readings of the cumulative per-route counters (GET /api/v1/tenants/{t}/metrics): requests
 * per second, the share of 5xx answers, and the 99th percentile latency from the histogram buckets.
 */

export interface RouteCounters {
  id: string;
  /** Requests answered since the gateway started, by status code. */
  requests: Record<string, number>;
  /** Latency histogram: cumulative counts at each bound in ms, then the +Inf count; total sum and count. */
  latency: { bucketsMs: number[]; counts: number[]; sumMs: number; count: number };
}

export interface MetricsReading {
  at: string;
  routes: RouteCounters[];
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

/** Rates between an earlier and a later reading; a route whose counters went down (gateway restart) counts from zero. */
export function rates(prev: MetricsReading, next: MetricsReading): RouteRates[] {
  const seconds = Math.max((Date.parse(next.at) - Date.parse(prev.at)) / 1000, 0.001);
  const before = new Map(prev.routes.map((r) => [r.id, r]));
  return next.routes.map((r) => {
    let p = before.get(r.id);
    if (p && total(p.requests) > total(r.requests)) p = undefined;
    const reqs: Record<string, number> = {};
    for (const [s, n] of Object.entries(r.requests)) reqs[s] = n - (p?.requests[s] ?? 0);
    const count = total(reqs);
    const cum = r.latency.counts.map((c, i) => c - (p?.latency.counts[i] ?? 0));
    return { id: r.id, rps: count / seconds, errorRate: count ? errors(reqs) / count : 0, p99Ms: quantile(0.99, r.latency.bucketsMs, cum) };
  });
}
