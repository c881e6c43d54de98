/**
 * @module plugins/traffic-split
 * Sends a share of a route's requests to other named upstreams: weighted splits (canary, blue/green) and
 * rules on headers, query arguments and cookies, picked in the before-upstream phase.
 */
import { Type, type Static } from '@sinclair/typebox';
import { definePlugin, type PluginContext } from '../../dataplane/plugins/types.js';
import { compileConditions, type RequestPredicate } from '../../dataplane/router/conditions.js';
import type { RouterRequest } from '../../dataplane/router/types.js';
import { Id, MatchCondition } from '../../model/common.js';
import { PRIORITIES } from '../priorities.js';

/** Large enough for percentages with fractions (weights 1 to 10000), small enough that sums stay exact. */
const MAX_WEIGHT = 1_000_000;

const Entry = Type.Object(
  {
    upstreamId: Type.Optional({ ...Id, description: 'A named upstream of the config; leave it out for the route\'s own upstream.' }),
    weight: Type.Integer({ minimum: 0, maximum: MAX_WEIGHT, description: 'Share of the rule\'s requests, relative to the other entries\' weights; 0 sends none.' }),
  },
  { additionalProperties: false, description: 'One destination of a rule and its weight.' },
);

const Rule = Type.Object(
  {
    match: Type.Optional(
      Type.Array(MatchCondition, {
        minItems: 1,
        maxItems: 64,
        description: 'The rule applies to requests that satisfy all of these conditions (the same conditions as a route\'s match); without it, to every request.',
      }),
    ),
    upstreams: Type.Array(Entry, { minItems: 1, maxItems: 64, description: 'Where the rule\'s requests go, by weight.' }),
  },
  { additionalProperties: false, description: 'A rule: which requests, and how they are shared between upstreams.' },
);

const Config = Type.Object(
  {
    rules: Type.Array(Rule, {
      minItems: 1,
      maxItems: 64,
      description: 'Tried in order; the first whose conditions hold picks the upstream. A request no rule takes goes to the route\'s upstream.',
    }),
  },
  { additionalProperties: false, description: 'traffic-split config.' },
);
type Config = Static<typeof Config>;
type Entry = Static<typeof Entry>;

/** Picks the upstream id for one request of a rule; undefined means the route's own upstream. */
type Picker = () => string | undefined;

/**
 * nginx's smooth weighted round robin: every pick adds each entry's weight to its running score, takes the
 * highest score and takes the total off it. Over any run of `total` picks each entry is chosen exactly
 * `weight` times, spread out (10/90 gives one canary request in every ten, not ten in a row), with no
 * randomness, so a split is exact and tests and operators can reason about it.
 */
function compilePicker(entries: readonly Entry[]): Picker {
  const live = entries.filter((e) => e.weight > 0);
  // Single destination (canary by header, blue/green at 0/100): no state and no arithmetic per request.
  if (live.length === 1) {
    const only = live[0]!.upstreamId;
    return () => only;
  }
  const ids = live.map((e) => e.upstreamId);
  const weights = live.map((e) => e.weight);
  const total = weights.reduce((a, b) => a + b, 0);
  // Per plugin instance, that is per route (and consumer) and per config: a new config starts a new cycle.
  const scores = new Array<number>(live.length).fill(0);
  // HOT PATH: synchronous, so two requests never interleave within a pick.
  return () => {
    let best = 0;
    for (let i = 0; i < scores.length; i++) {
      scores[i]! += weights[i]!;
      if (scores[i]! > scores[best]!) best = i;
    }
    scores[best]! -= total;
    return ids[best];
  };
}

/** What the condition predicate reads of a request (it only looks at headers, query and cookies). */
function routerView(ctx: PluginContext): RouterRequest {
  return { method: ctx.method, host: '', path: ctx.path, query: ctx.query, headers: ctx.headers };
}

interface CompiledRule {
  readonly matches: RequestPredicate | null;
  readonly pick: Picker;
}

export default definePlugin<Config>({
  name: 'traffic-split',
  version: '1.0.0',
  priority: PRIORITIES['traffic-split'],
  description: 'Sends a weighted share of requests, or those matching conditions, to other named upstreams.',
  schema: Config,
  check(config) {
    const problems: Array<[string, string]> = [];
    config.rules.forEach((rule, i) => {
      const at = `rules[${i}]`;
      if (rule.upstreams.every((e) => e.weight === 0)) problems.push([`${at}.upstreams`, 'needs at least one entry with a weight above 0']);
      // Two entries for one destination would make the weights say something other than what they look like.
      const seen = new Set<string | undefined>();
      rule.upstreams.forEach((e, j) => {
        if (seen.has(e.upstreamId)) {
          problems.push([`${at}.upstreams[${j}]`, e.upstreamId === undefined ? 'duplicates the route\'s own upstream (an entry without upstreamId)' : `duplicates upstream "${e.upstreamId}" of this rule`]);
        }
        seen.add(e.upstreamId);
      });
      // A rule without match takes every request: the rules after it would never be tried.
      if (i > 0 && config.rules.slice(0, i).some((r) => r.match === undefined)) {
        problems.push([at, 'is never tried: an earlier rule has no match and takes every request']);
      }
      // The same rules as a route's match conditions (model/validate.ts), with this plugin's field paths.
      (rule.match ?? []).forEach((m, j) => {
        const mp = `${at}.match[${j}]`;
        const op = m.op ?? 'equals';
        if ((op === 'equals' || op === 'notEquals' || op === 'regex') && m.value === undefined) problems.push([`${mp}.value`, `is required for op ${op}`]);
        if ((op === 'in' || op === 'notIn') && !m.values) problems.push([`${mp}.values`, `is required for op ${op}`]);
        if (op === 'regex' && m.value !== undefined) {
          try {
            new RegExp(m.value);
          } catch (e) {
            problems.push([`${mp}.value`, `is not a valid regular expression: ${(e as Error).message}`]);
          }
        }
      });
    });
    return problems;
  },
  // Validation refuses a config whose entries name an upstream it does not have (model/validate.ts).
  upstreamReferences(config) {
    const refs: Array<[string, string]> = [];
    config.rules.forEach((rule, i) =>
      rule.upstreams.forEach((e, j) => {
        if (e.upstreamId !== undefined) refs.push([`rules[${i}].upstreams[${j}].upstreamId`, e.upstreamId]);
      }),
    );
    return refs;
  },
  create(config, env) {
    const rules: CompiledRule[] = config.rules.map((rule, i) => {
      if (rule.upstreams.every((e) => e.weight === 0)) throw new Error(`${env.path}.rules[${i}].upstreams: needs at least one entry with a weight above 0`);
      // Throws a ConditionCompileError naming the config path if check() was skipped and a condition is bad.
      return { matches: compileConditions(`${env.path}.rules[${i}]`, rule.match), pick: compilePicker(rule.upstreams) };
    });

    return {
      // HOT PATH on routes with the plugin: conditions compiled above, one pick; the view only for rules with match.
      beforeUpstream(ctx) {
        let view: RouterRequest | null = null;
        for (let i = 0; i < rules.length; i++) {
          const rule = rules[i]!;
          if (rule.matches !== null && !rule.matches((view ??= routerView(ctx)))) continue;
          const id = rule.pick();
          // Validation refuses unknown ids, so this only happens if the plugin was given an unchecked config:
          // fail loudly (500 GH_ERR_PLUGIN_FAILED, counted per plugin) rather than quietly serve the wrong upstream.
          if (id !== undefined && !ctx.useUpstream(id)) throw new Error(`traffic-split: upstream "${id}" does not exist`);
          return;
        }
      },
    };
  },
});
