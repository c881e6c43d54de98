/**
 * @module plugins/api-breaker
 * A circuit breaker per route and upstream node. Outcomes of proxied requests are judged in the log phase;
 * a node opens after consecutive failures or an error ratio over a rolling window, is kept out of the
 * route's traffic while open (ctx.avoidNode: the balancer and retries skip it), then lets a few probe
 * requests through (half-open) and closes after enough of them succeed; a failed probe opens it again, for
 * longer when maxOpenDuration allows. When no node of the upstream is left, the route answers with its
 * configured fallback (degradation) or 503 GH_ERR_CIRCUIT_OPEN.
 *
 * Breakers live in plugin state keyed by the config's scope, so config reloads keep them; each worker process
 * keeps its own and judges on the traffic it serves.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ControlError, definePlugin, type PluginContext, type PluginControlEnv, type PluginResponse } from '../../dataplane/plugins/types.js';
import type { NodeState } from '../../dataplane/upstream/types.js';
import type { UpstreamRuntime } from '../../dataplane/upstream/upstream.js';
import { ERRORS, errorBody } from '../../core/errors.js';
import { PRIORITIES } from '../priorities.js';
import { HeaderValues } from '../util.js';

const NAME = 'api-breaker';

const ErrorRatio = Type.Object(
  {
    threshold: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      description: 'Share of failed requests over the window (above 0, up to 1) at which the node opens.',
    }),
    minRequests: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 20,
      description: 'Requests the window must hold before the ratio is judged, so a handful of early failures does not open the node.',
    }),
    window: Type.Integer({
      minimum: 100,
      maximum: 3_600_000,
      default: 10000,
      description: 'Milliseconds of traffic the ratio is computed over: a rolling window of 10 buckets of a tenth of this each.',
    }),
  },
  { additionalProperties: false, description: 'Open a node when its share of failed requests over a rolling window reaches threshold.' },
);

const Fallback = Type.Object(
  {
    status: Type.Integer({ minimum: 200, maximum: 599, description: 'Status of the fallback response.' }),
    headers: HeaderValues('Headers of the fallback response, by name (not the framing headers: content-length, transfer-encoding, connection...).'),
    body: Type.Optional(Type.String({ maxLength: 65536, description: 'Body of the fallback response, sent as given (content-type text/plain unless headers set one).' })),
  },
  { additionalProperties: false, description: 'Answer sent while every node of the upstream is open, instead of 503 GH_ERR_CIRCUIT_OPEN: a degraded response.' },
);

const Config = Type.Object(
  {
    failureStatuses: Type.Array(Type.Integer({ minimum: 400, maximum: 599, description: 'An HTTP status (400 to 599).' }), {
      default: [500, 502, 503, 504],
      maxItems: 100,
      uniqueItems: true,
      description: 'Upstream answer statuses that count as a failure of the node; connection failures and upstream timeouts always do.',
    }),
    consecutiveFailures: Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      default: 5,
      description: 'Failures in a row (without a success between them) that open a node; 0 turns this rule off (then errorRatio is required).',
    }),
    errorRatio: Type.Optional(ErrorRatio),
    openDuration: Type.Integer({
      minimum: 100,
      maximum: 86_400_000,
      default: 30000,
      description: 'Milliseconds a node stays open before it lets probe requests through (half-open).',
    }),
    maxOpenDuration: Type.Optional(
      Type.Integer({
        minimum: 100,
        maximum: 86_400_000,
        description: 'Each failed probe doubles the time the node stays open, up to this many milliseconds; without it every opening lasts openDuration.',
      }),
    ),
    halfOpenProbes: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 1,
      description: 'Requests a half-open node may take at a time; the others are kept off it while those probes are in flight.',
    }),
    successesToClose: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 3,
      description: 'Successful probes that close a half-open node; one failed probe opens it again.',
    }),
    fallback: Type.Optional(Fallback),
  },
  { additionalProperties: false, description: 'api-breaker on a route, service or globally: a circuit breaker per route and upstream node.' },
);
type Config = Static<typeof Config>;

/** Headers the gateway frames the response with; a configured copy would contradict it. */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection']);

/** Buckets of the rolling error-ratio window. */
const BUCKETS = 10;

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
type BreakerState = typeof CLOSED | typeof OPEN | typeof HALF_OPEN;
const STATE_NAMES = ['closed', 'open', 'half-open'] as const;

const OK = 0;
const FAILED = 1;
const NEITHER = 2;
type Outcome = typeof OK | typeof FAILED | typeof NEITHER;

/**
 * The breakers' time source: monotonic milliseconds (wall-clock jumps must not open or close anything).
 * Tests replace it with setClock to walk through open, half-open and closed without sleeping.
 */
let clock: () => number = () => performance.now();

/** Replace the breakers' clock (tests); null restores the monotonic clock. */
export function setClock(fn: (() => number) | null): void {
  clock = fn ?? (() => performance.now());
}

/**
 * Requests and failures over the last BUCKETS buckets of `bucketMs`, with running sums: recording is O(1)
 * (amortised: moving on clears at most BUCKETS buckets), and no timestamp is kept per request.
 */
class RollingWindow {
  readonly total = new Uint32Array(BUCKETS);
  readonly failed = new Uint32Array(BUCKETS);
  /** Absolute index (time / bucketMs) of the newest bucket; -1 while empty. */
  head = -1;
  sumTotal = 0;
  sumFailed = 0;

  constructor(readonly bucketMs: number) {}

  record(now: number, failed: boolean): void {
    const idx = Math.floor(now / this.bucketMs);
    if (idx > this.head) this.advance(idx);
    const slot = this.head % BUCKETS;
    this.total[slot]!++;
    this.sumTotal++;
    if (failed) {
      this.failed[slot]!++;
      this.sumFailed++;
    }
  }

  private advance(idx: number): void {
    if (this.head < 0 || idx - this.head >= BUCKETS) {
      this.reset();
    } else {
      for (let i = this.head + 1; i <= idx; i++) {
        const slot = i % BUCKETS;
        this.sumTotal -= this.total[slot]!;
        this.sumFailed -= this.failed[slot]!;
        this.total[slot] = 0;
        this.failed[slot] = 0;
      }
    }
    this.head = idx;
  }

  /** Requests and failures within the window as of `now`, without moving it (the status action). */
  counts(now: number): [number, number] {
    if (this.head < 0) return [0, 0];
    // Buckets older than the window as of `now` (or of the newest record) no longer count.
    const from = Math.max(this.head, Math.floor(now / this.bucketMs)) - BUCKETS + 1;
    let total = 0;
    let failed = 0;
    for (let j = from; j <= this.head; j++) {
      total += this.total[j % BUCKETS]!;
      failed += this.failed[j % BUCKETS]!;
    }
    return [total, failed];
  }

  reset(): void {
    this.total.fill(0);
    this.failed.fill(0);
    this.sumTotal = 0;
    this.sumFailed = 0;
    this.head = -1;
  }
}

/** One node's breaker for one route. */
class NodeBreaker {
  state: BreakerState = CLOSED;
  /** Failures in a row while closed. */
  consecutive = 0;
  window: RollingWindow | null = null;
  /** clock() time the node may take probes again (open). */
  openUntil = 0;
  /** How long the last opening lasted (grows on failed probes up to maxOpenDuration). */
  openFor = 0;
  /** Counts entries into half-open, so a probe's late answer never frees a slot of a later half-open spell. */
  epoch = 0;
  /** Probes in flight (half-open). */
  probes = 0;
  /** After this clock() time, probes in flight whose outcome never came are forgotten. */
  leaseUntil = 0;
  /** Successful probes so far (half-open). */
  successes = 0;
  /** Times it opened, for the status action. */
  openings = 0;

  constructor(readonly key: string) {}
}

/** The breakers of one route's traffic to one upstream, aligned with the upstream's node list. */
class TargetBreakers {
  /** The node list `list` was built for; the upstream's list is replaced (never edited) when nodes change. */
  nodes: readonly NodeState[] | null = null;
  list: NodeBreaker[] = [];
  readonly byKey = new Map<string, NodeBreaker>();
  /** Breakers not closed: while 0, requests skip the breaker loop entirely. */
  notClosed = 0;

  constructor(
    readonly route: string,
    readonly upstream: string,
  ) {}

  sync(nodes: readonly NodeState[]): void {
    const list: NodeBreaker[] = [];
    const seen = new Set<string>();
    for (const n of nodes) {
      let b = this.byKey.get(n.key);
      if (b === undefined) {
        b = new NodeBreaker(n.key);
        this.byKey.set(n.key, b);
      }
      list.push(b);
      seen.add(n.key);
    }
    // Nodes that left the upstream (config change, discovery) take their breakers with them.
    for (const k of this.byKey.keys()) if (!seen.has(k)) this.byKey.delete(k);
    let notClosed = 0;
    for (const b of this.byKey.values()) if (b.state !== CLOSED) notClosed++;
    this.list = list;
    this.nodes = nodes;
    this.notClosed = notClosed;
  }
}

/** What one config scope keeps across reloads: its targets by route and upstream. */
class BreakerStore {
  readonly targets = new Map<string, TargetBreakers>();

  /** Counters for /metrics (gatehouse_plugin_events_total): circuits opened, per route. */
  metrics(): Array<{ event: string; value: number; labels: Record<string, string> }> {
    const byRoute = new Map<string, number>();
    for (const t of this.targets.values()) {
      let n = 0;
      for (const b of t.byKey.values()) n += b.openings;
      byRoute.set(t.route, (byRoute.get(t.route) ?? 0) + n);
    }
    return [...byRoute].map(([route, value]) => ({ event: 'circuits_opened', value, labels: { route } }));
  }

  get(route: string, upstream: string): TargetBreakers {
    const k = `${route}\0${upstream}`;
    let t = this.targets.get(k);
    if (t === undefined) {
      t = new TargetBreakers(route, upstream);
      this.targets.set(k, t);
    }
    return t;
  }
}

/** Problems of a fallback's headers, as [relative path, message]. */
function fallbackProblems(config: Config): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  const f = config.fallback;
  if (f === undefined) return problems;
  for (const name of Object.keys(f.headers ?? {})) {
    if (FRAMING_HEADERS.has(name.toLowerCase())) problems.push([`fallback.headers.${name}`, 'is set by the gateway and cannot be configured']);
  }
  if (f.body !== undefined && f.body !== '' && (f.status === 204 || f.status === 304)) problems.push(['fallback.body', `cannot be sent with status ${f.status}, which has no body`]);
  return problems;
}

function configProblems(config: Config): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  if (config.consecutiveFailures === 0 && config.errorRatio === undefined) problems.push(['consecutiveFailures', 'is 0 and there is no errorRatio: nothing would ever open the breaker']);
  if (config.maxOpenDuration !== undefined && config.maxOpenDuration < config.openDuration) problems.push(['maxOpenDuration', 'must not be shorter than openDuration']);
  problems.push(...fallbackProblems(config));
  return problems;
}

/** The fallback response, built once per config: every degraded answer is the same. */
function fallbackResponse(config: Config): PluginResponse | null {
  const f = config.fallback;
  if (f === undefined) return null;
  const headers: Record<string, string> = { ...f.headers };
  const hasType = Object.keys(headers).some((k) => k.toLowerCase() === 'content-type');
  if (f.body !== undefined && f.body !== '' && !hasType) headers['content-type'] = 'text/plain; charset=utf-8';
  return Object.freeze({ status: f.status, ...(f.body !== undefined ? { body: Buffer.from(f.body) } : {}), headers: Object.freeze(headers) });
}

const CIRCUIT_OPEN_BODY = errorBody('GH_ERR_CIRCUIT_OPEN');
const CIRCUIT_OPEN_STATUS = ERRORS.GH_ERR_CIRCUIT_OPEN.status;

/** The per-worker status of breakers for the status action (JSON-able). */
interface BreakerReport {
  scope: string;
  route: string;
  upstream: string;
  node: string;
  state: (typeof STATE_NAMES)[number];
  consecutiveFailures: number;
  openings: number;
  /** Milliseconds until an open node takes probes; 0 otherwise. */
  retryInMs: number;
  probesInFlight: number;
  successes: number;
  /** Requests and failures in the error-ratio window (0 without errorRatio). */
  windowRequests: number;
  windowFailures: number;
}

function stringArg(args: Record<string, unknown>, name: string): string | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > 512) throw new ControlError(`${name} must be a non-empty string of at most 512 characters`);
  return v;
}

const FILTERS = ['scope', 'route', 'upstream', 'node'];

/** Breakers matching the control action's filters (scope, route, upstream id, node "host:port"). */
function* matching(args: Record<string, unknown>, env: PluginControlEnv, extra: string[]): Generator<[string, TargetBreakers, NodeBreaker]> {
  for (const k of Object.keys(args)) {
    if (!FILTERS.includes(k) && !extra.includes(k)) throw new ControlError(`unknown field "${k.slice(0, 64)}": this action takes ${[...FILTERS, ...extra].join(', ')}`);
  }
  const scope = stringArg(args, 'scope');
  const route = stringArg(args, 'route');
  const upstream = stringArg(args, 'upstream');
  const node = stringArg(args, 'node');
  for (const key of env.stateKeys()) {
    if (scope !== undefined && key !== scope) continue;
    const store = env.state<BreakerStore>(key);
    if (!(store instanceof BreakerStore)) continue;
    for (const t of store.targets.values()) {
      if (route !== undefined && t.route !== route) continue;
      // Upstream runtime keys are "upstream:<id>" for named upstreams, "route:<id>"/"service:<id>" for inline ones.
      if (upstream !== undefined && t.upstream !== upstream && t.upstream !== `upstream:${upstream}`) continue;
      for (const b of t.byKey.values()) {
        if (node !== undefined && b.key !== node) continue;
        yield [key, t, b];
      }
    }
  }
}

export default definePlugin<Config>({
  name: NAME,
  version: '1.0.0',
  priority: PRIORITIES[NAME],
  description: 'Circuit breaker per route and upstream node: opens on consecutive failures or an error ratio, probes half-open, answers a fallback or 503 while every node is open.',
  schema: Config,
  // A breaker per consumer would split one route's view of a node by caller: not configurable on consumers.
  scopes: ['global', 'service', 'route'],
  check: configProblems,
  create(config, env) {
    const problems = configProblems(config);
    if (problems.length > 0) throw new Error(`${env.path}.${problems[0]![0]}: ${problems[0]![1]}`);
    const log = env.logger;
    const store = env.state(env.scope, () => new BreakerStore());

    // A lookup table instead of a Set: the log phase checks a status per request.
    const failureStatus = new Uint8Array(600);
    for (const s of config.failureStatuses) failureStatus[s] = 1;
    const consecutiveLimit = config.consecutiveFailures;
    const ratio = config.errorRatio;
    const bucketMs = ratio !== undefined ? Math.max(1, Math.ceil(ratio.window / BUCKETS)) : 0;
    const openDuration = config.openDuration;
    const maxOpen = config.maxOpenDuration ?? openDuration;
    const halfOpenProbes = config.halfOpenProbes;
    const successesToClose = config.successesToClose;
    const fallback = fallbackResponse(config);

    // One instance serves one route; its targets are looked up once per upstream runtime, not per request.
    let cachedUp: UpstreamRuntime | null = null;
    let cachedRoute = '';
    let cachedTarget: TargetBreakers | null = null;
    /** Probe slots this instance handed out whose outcome has not come yet: only then is ctx.vars read. */
    let outstanding = 0;

    /** HOT PATH */
    function targetFor(ctx: PluginContext): TargetBreakers {
      const up = ctx.upstream;
      let t: TargetBreakers;
      if (up === cachedUp && ctx.routeId === cachedRoute) t = cachedTarget!;
      else {
        t = store.get(ctx.routeId, up.key);
        cachedUp = up;
        cachedRoute = ctx.routeId;
        cachedTarget = t;
      }
      if (t.nodes !== up.nodes) t.sync(up.nodes);
      return t;
    }

    function open(t: TargetBreakers, b: NodeBreaker, now: number, ms: number, why: string): void {
      if (b.state === CLOSED) t.notClosed++;
      b.state = OPEN;
      b.openFor = ms;
      b.openUntil = now + ms;
      b.consecutive = 0;
      b.window?.reset();
      b.probes = 0;
      b.successes = 0;
      b.openings++;
      // Routes, upstream keys and "host:port" only: nothing of the request.
      log.warn({ route: t.route, upstream: t.upstream, node: b.key, openMs: ms, why }, 'circuit opened');
    }

    function close(t: TargetBreakers, b: NodeBreaker): void {
      if (b.state !== CLOSED) t.notClosed--;
      b.state = CLOSED;
      b.consecutive = 0;
      b.window?.reset();
      b.openFor = 0;
      b.probes = 0;
      b.successes = 0;
      log.info({ route: t.route, upstream: t.upstream, node: b.key }, 'circuit closed');
    }

    /** Judge the final attempt: what the node answered, not what the gateway made of the request. */
    function outcomeOf(ctx: PluginContext): Outcome {
      const code = ctx.errorCode;
      if (code !== null) return code === 'GH_ERR_UPSTREAM_UNAVAILABLE' || code === 'GH_ERR_UPSTREAM_TIMEOUT' ? FAILED : NEITHER;
      const status = ctx.status;
      // No answer was written: the client left before the node answered.
      if (status === 0) return NEITHER;
      if (status < 600 && failureStatus[status] === 1) return FAILED;
      // Cut short after a good head: the client left, or the node broke off mid-body; neither is clear.
      return ctx.res.writableFinished ? OK : NEITHER;
    }

    function recordClosed(t: TargetBreakers, b: NodeBreaker, outcome: Outcome, now: number): void {
      if (outcome === NEITHER) return;
      const failed = outcome === FAILED;
      if (ratio !== undefined) {
        // The window's bucket width follows the config; a reload that changes it starts a new window.
        if (b.window === null || b.window.bucketMs !== bucketMs) b.window = new RollingWindow(bucketMs);
        b.window.record(now, failed);
      }
      if (!failed) {
        b.consecutive = 0;
        return;
      }
      b.consecutive++;
      if (consecutiveLimit > 0 && b.consecutive >= consecutiveLimit) {
        open(t, b, now, openDuration, 'consecutive failures');
        return;
      }
      const w = b.window;
      if (ratio !== undefined && w !== null && w.sumTotal >= ratio.minRequests && w.sumFailed >= ratio.threshold * w.sumTotal) {
        open(t, b, now, openDuration, 'error ratio');
      }
    }

    function recordProbe(t: TargetBreakers, b: NodeBreaker, outcome: Outcome, now: number): void {
      if (b.probes > 0) b.probes--;
      if (outcome === FAILED) {
        // Each failed probe doubles the time open, up to maxOpenDuration (which defaults to openDuration: no growth).
        open(t, b, now, Math.min(Math.max(b.openFor, openDuration) * 2, maxOpen), 'probe failed');
      } else if (outcome === OK && ++b.successes >= successesToClose) {
        close(t, b);
      }
    }

    return {
      // HOT PATH on routes with the plugin: one cached lookup and a counter while every breaker is closed.
      beforeUpstream(ctx) {
        const t = targetFor(ctx);
        if (t.notClosed === 0) return;
        const now = clock();
        const nodes = t.nodes!;
        const list = t.list;
        // An upgrade's outcome never reaches the log phase, so it must not hold a probe slot.
        const upgrade = ctx.headers.upgrade !== undefined;
        let usable = 0;
        let blocked = 0;
        let soonest = Infinity;
        for (let i = 0; i < list.length; i++) {
          const b = list[i]!;
          const node = nodes[i]!;
          const eligible = node.healthy && node.weight > 0;
          if (b.state === CLOSED) {
            if (eligible) usable++;
            continue;
          }
          if (b.state === OPEN) {
            if (now < b.openUntil) {
              ctx.avoidNode(node);
              blocked++;
              if (b.openUntil - now < soonest) soonest = b.openUntil - now;
              continue;
            }
            b.state = HALF_OPEN;
            b.epoch++;
            b.probes = 0;
            b.successes = 0;
            log.info({ route: t.route, upstream: t.upstream, node: b.key }, 'circuit half-open');
          }
          // Half-open. Probes whose outcome never came (lost) stop holding their slots after a lease.
          if (b.probes > 0 && now >= b.leaseUntil) b.probes = 0;
          if (!upgrade && eligible && b.probes < halfOpenProbes) {
            // Reserve a slot; the balancer may still pick another node, and the log phase gives it back then.
            b.probes++;
            const up = ctx.upstream;
            b.leaseUntil = now + Math.max(openDuration, up.timeouts.connect + up.timeouts.read);
            const held = (ctx.vars[NAME] ??= []) as Array<NodeBreaker | number>;
            held.push(b, b.epoch);
            outstanding++;
            usable++;
          } else {
            ctx.avoidNode(node);
            blocked++;
            // Full of probes: worth trying again shortly.
            if (1000 < soonest) soonest = 1000;
          }
        }
        if (usable > 0 || blocked === 0) return;
        // Every node that could take the request is open: degrade.
        ctx.errorCode = 'GH_ERR_CIRCUIT_OPEN';
        if (fallback !== null) return fallback;
        return {
          status: CIRCUIT_OPEN_STATUS,
          body: CIRCUIT_OPEN_BODY,
          headers: { 'content-type': 'application/json', 'retry-after': String(Math.max(1, Math.ceil(soonest / 1000))) },
        };
      },

      log(ctx) {
        const held = outstanding > 0 ? (ctx.vars[NAME] as Array<NodeBreaker | number> | undefined) : undefined;
        const node = ctx.node;
        if (node === null && held === undefined) return;
        const t = targetFor(ctx);
        const now = clock();
        const b = node !== null ? t.byKey.get(node.key) : undefined;
        const outcome = b !== undefined ? outcomeOf(ctx) : NEITHER;
        let probed = false;
        if (held !== undefined) {
          for (let i = 0; i < held.length; i += 2) {
            const hb = held[i] as NodeBreaker;
            const epoch = held[i + 1] as number;
            outstanding--;
            // A slot of an earlier half-open spell was already dropped when the breaker moved on.
            if (hb.state !== HALF_OPEN || hb.epoch !== epoch) continue;
            if (hb === b) {
              probed = true;
              recordProbe(t, hb, outcome, now);
            } else if (hb.probes > 0) {
              hb.probes--;
            }
          }
          ctx.vars[NAME] = undefined;
        }
        // Outcomes of requests sent before a node opened, or to a half-open node without a slot, are stale.
        if (b !== undefined && !probed && b.state === CLOSED) recordClosed(t, b, outcome, now);
      },
    };
  },
  control: {
    /** Breakers of this worker that are not closed (all of them with `all: true`), optionally filtered. */
    status(args, env) {
      const all = args.all;
      if (all !== undefined && typeof all !== 'boolean') throw new ControlError('all must be true or false');
      const now = clock();
      const breakers: BreakerReport[] = [];
      for (const [scope, t, b] of matching(args, env, ['all'])) {
        if (all !== true && b.state === CLOSED) continue;
        const [windowRequests, windowFailures] = b.window !== null ? b.window.counts(now) : [0, 0];
        breakers.push({
          scope,
          route: t.route,
          upstream: t.upstream,
          node: b.key,
          state: STATE_NAMES[b.state],
          consecutiveFailures: b.consecutive,
          openings: b.openings,
          retryInMs: b.state === OPEN ? Math.max(0, Math.ceil(b.openUntil - now)) : 0,
          probesInFlight: b.state === HALF_OPEN ? b.probes : 0,
          successes: b.state === HALF_OPEN ? b.successes : 0,
          windowRequests,
          windowFailures,
        });
      }
      return { breakers };
    },
    /** Close breakers by hand (the upstream is known to be fixed), optionally filtered; answers how many. */
    reset(args, env) {
      let reset = 0;
      for (const [, t, b] of matching(args, env, [])) {
        if (b.state !== CLOSED) {
          t.notClosed--;
          reset++;
        }
        b.state = CLOSED;
        b.consecutive = 0;
        b.window?.reset();
        b.openFor = 0;
        b.probes = 0;
        b.successes = 0;
      }
      return { reset };
    },
  },
});
