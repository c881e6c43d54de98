/**
 * @module plugins/opentelemetry/trace-context.test
 * W3C Trace Context vectors (valid, invalid and edge cases of traceparent, version handling), id generation,
 * the trace-id ratio sampler (boundaries, agreement, monotony, share over many ids within a tolerance) and the
 * performance.now() to Unix nanoseconds conversion.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, ratioThreshold, sampledByRatio } from './trace-context.js';
import { unixNano } from './spans.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';

describe('traceparent parsing', () => {
  it('accepts valid version-00 values and reads the sampled flag from bit 0 only', () => {
    assert.deepEqual(parseTraceparent(`00-${T}-${P}-01`), { traceId: T, parentId: P, sampled: true });
    assert.deepEqual(parseTraceparent(`00-${T}-${P}-00`), { traceId: T, parentId: P, sampled: false });
    // Unknown flag bits are ignored: 09 is sampled, 02 and fe are not, ff is.
    assert.equal(parseTraceparent(`00-${T}-${P}-09`)?.sampled, true);
    assert.equal(parseTraceparent(`00-${T}-${P}-02`)?.sampled, false);
    assert.equal(parseTraceparent(`00-${T}-${P}-fe`)?.sampled, false);
    assert.equal(parseTraceparent(`00-${T}-${P}-ff`)?.sampled, true);
    // Ids with a single non-zero digit are valid.
    assert.ok(parseTraceparent(`00-${'0'.repeat(31)}1-${'0'.repeat(15)}1-01`));
  });

  it('refuses malformed values', () => {
    const bad = [
      '',
      '00',
      `00-${T}-${P}-0`, // 54 characters
      `00-${T}-${P}-01-`, // version 00 is exactly 55 characters
      `00-${T}-${P}-01 `,
      ` 00-${T}-${P}-01`,
      `00-${T}-${P}-01,00-${T}-${P}-01`, // two headers joined by node
      `00-${T.toUpperCase()}-${P}-01`, // upper-case hex
      `00-${T}-${P.toUpperCase()}-01`,
      `00-${T}-${P}-0A`,
      `0A-${T}-${P}-01`,
      `00-${'0'.repeat(32)}-${P}-01`, // all-zero trace id
      `00-${T}-${'0'.repeat(16)}-01`, // all-zero parent id
      `00-${T.slice(0, 31)}g-${P}-01`,
      `00-${T}-${P.slice(0, 15)}x-01`,
      `00-${T}-${P}-0x`,
      `00_${T}-${P}-01`,
      `00-${T}_${P}-01`,
      `00-${T}-${P}_01`,
      `00-${T}${P}-01-0`,
      `0-0${T}-${P}-01`,
      `00-${T.slice(1)}-${P}0-01`, // dashes in the wrong places
    ];
    for (const v of bad) assert.equal(parseTraceparent(v), null, JSON.stringify(v));
  });

  it('version ff is invalid; higher versions are parsed by the version-00 rules, extra fields ignored', () => {
    assert.equal(parseTraceparent(`ff-${T}-${P}-01`), null);
    assert.deepEqual(parseTraceparent(`cc-${T}-${P}-01`), { traceId: T, parentId: P, sampled: true });
    assert.deepEqual(parseTraceparent(`01-${T}-${P}-00-what-the-future-will-be-like`), { traceId: T, parentId: P, sampled: false });
    // After the flags, a higher version must have the end of the value or a dash.
    assert.equal(parseTraceparent(`cc-${T}-${P}-01.what`), null);
    assert.equal(parseTraceparent(`cc-${T}-${P}-01x`), null);
    // Its fields are held to the same rules.
    assert.equal(parseTraceparent(`cc-${'0'.repeat(32)}-${P}-01`), null);
    assert.equal(parseTraceparent(`cc-${T}-${P}-1`), null);
    assert.equal(parseTraceparent(`CC-${T}-${P}-01`), null);
  });
});

describe('traceparent generation and ids', () => {
  it('formats version 00 with only the sampled flag, and the result parses back', () => {
    assert.equal(formatTraceparent(T, P, true), `00-${T}-${P}-01`);
    assert.equal(formatTraceparent(T, P, false), `00-${T}-${P}-00`);
    assert.deepEqual(parseTraceparent(formatTraceparent(T, P, true)), { traceId: T, parentId: P, sampled: true });
  });

  it('makes lower-case hex ids of the right length, never all zero, all distinct', () => {
    const traces = new Set<string>();
    const spans = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      assert.match(t, /^[0-9a-f]{32}$/);
      assert.match(s, /^[0-9a-f]{16}$/);
      assert.notEqual(t, '0'.repeat(32));
      assert.notEqual(s, '0'.repeat(16));
      traces.add(t);
      spans.add(s);
      assert.ok(parseTraceparent(formatTraceparent(t, s, false)));
    }
    assert.equal(traces.size, 5000);
    assert.equal(spans.size, 5000);
  });
});

describe('ratio sampler', () => {
  const withRandomness = (r: string) => `${'a'.repeat(18)}${r}`;

  it('ratio 1 samples every trace, ratio 0 none, whatever the id', () => {
    const all = ratioThreshold(1);
    const none = ratioThreshold(0);
    for (const r of ['00000000000000', '00000000000001', '7fffffffffffff', 'ffffffffffffff']) {
      assert.equal(sampledByRatio(withRandomness(r), all), true, r);
      assert.equal(sampledByRatio(withRandomness(r), none), false, r);
    }
  });

  it('compares the rightmost 56 bits with (1 - ratio) * 2^56 exactly', () => {
    const half = ratioThreshold(0.5); // T = 2^55 = 0x80000000000000
    assert.equal(sampledByRatio(withRandomness('80000000000000'), half), true);
    assert.equal(sampledByRatio(withRandomness('7fffffffffffff'), half), false);
    assert.equal(sampledByRatio(withRandomness('80000000000001'), half), true);
    // The low half decides when the high halves are equal.
    const q = ratioThreshold(0.25); // T = 0xc0000000000000
    assert.equal(sampledByRatio(withRandomness('c0000000000000'), q), true);
    assert.equal(sampledByRatio(withRandomness('bfffffffffffff'), q), false);
    // The left 72 bits play no part: every gateway decides on the same bits.
    for (const left of ['000000000000000000', 'ffffffffffffffffff', '0123456789abcdef01']) {
      assert.equal(sampledByRatio(`${left}bfffffffffffff`, q), false);
      assert.equal(sampledByRatio(`${left}c0000000000000`, q), true);
    }
  });

  it('samples the configured share of random trace ids, within a tolerance', () => {
    const ids = Array.from({ length: 20000 }, () => randomBytes(16).toString('hex'));
    for (const ratio of [0.01, 0.1, 0.25, 0.5, 0.9]) {
      const t = ratioThreshold(ratio);
      const share = ids.filter((id) => sampledByRatio(id, t)).length / ids.length;
      // Standard deviation at most 0.0036 here: 0.02 is more than five of them.
      assert.ok(Math.abs(share - ratio) < 0.02, `ratio ${ratio}: sampled ${share}`);
    }
  });

  it('is consistent: a trace sampled at one ratio is sampled at every higher one', () => {
    const ratios = [0.05, 0.2, 0.5, 0.8, 1].map(ratioThreshold);
    for (let i = 0; i < 3000; i++) {
      const id = newTraceId();
      const decisions = ratios.map((t) => sampledByRatio(id, t));
      const first = decisions.indexOf(true);
      assert.ok(first !== -1, 'ratio 1 samples everything');
      assert.ok(decisions.slice(first).every(Boolean), `${id}: ${decisions.join(',')}`);
    }
  });
});

describe('time conversion', () => {
  it('turns performance.now() into Unix nanoseconds with sub-millisecond precision', () => {
    const p = performance.now();
    const before = BigInt(Date.now()) * 1000000n;
    const ns = BigInt(unixNano(p));
    const after = BigInt(Date.now()) * 1000000n;
    // Date.now() has millisecond resolution and the clocks may differ a little: a generous window.
    assert.ok(ns > before - 50000000n && ns < after + 50000000n, `${ns} not near ${before}`);
    assert.match(unixNano(p), /^\d{19}$/);
    // One microsecond later is 1000 ns later (to rounding), and order is kept.
    const d = BigInt(unixNano(p + 0.001)) - ns;
    assert.ok(d >= 999n && d <= 1001n, String(d));
    assert.ok(BigInt(unixNano(p + 0.0000004)) - ns <= 1n);
    const later = BigInt(unixNano(p + 1234.5)) - ns;
    assert.ok(later >= 1234499999n && later <= 1234500001n, String(later));
  });
});
