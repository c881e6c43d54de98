/** Line diff of two JSON documents for the side-by-side view (no DOM: unit-tested with the server's tests). */

/** Pretty JSON with object keys sorted, so that two versions line up. */
export function stableJson(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === 'object') return Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])]));
    return x;
  };
  return v === null || v === undefined ? '' : JSON.stringify(sort(v), null, 2);
}

export type Row = { left: string | null; right: string | null; ln: number | null; rn: number | null; kind: 'same' | 'del' | 'add' | 'mod' };

/** `  "name": ` -> the indentation and key, to pair a changed field's old and new line. */
function keyOf(line: string): string | null {
  const m = /^(\s*"(?:[^"\\]|\\.)*"):/.exec(line);
  return m ? m[1]! : null;
}

/**
 * One block of removed and added lines between two unchanged ones: lines of the same field pair up as a
 * changed line; without any such field, lines pair up in order (a changed array item); the rest stand alone.
 */
function pairBlock(a: string[], b: string[], dels: number[], adds: number[]): Row[] {
  const del = (i: number): Row => ({ left: a[i]!, right: null, ln: i + 1, rn: null, kind: 'del' });
  const add = (j: number): Row => ({ left: null, right: b[j]!, ln: null, rn: j + 1, kind: 'add' });
  const mod = (i: number, j: number): Row => ({ left: a[i]!, right: b[j]!, ln: i + 1, rn: j + 1, kind: 'mod' });
  const keyed = dels.some((i) => keyOf(a[i]!) !== null && adds.some((j) => keyOf(b[j]!) === keyOf(a[i]!)));
  const out: Row[] = [];
  if (!keyed) {
    for (let x = 0; x < Math.max(dels.length, adds.length); x++) {
      const i = dels[x];
      const j = adds[x];
      out.push(i !== undefined && j !== undefined ? mod(i, j) : i !== undefined ? del(i) : add(j!));
    }
    return out;
  }
  let next = 0; // the first add not yet shown
  for (const i of dels) {
    const k = keyOf(a[i]!);
    const at = k === null ? -1 : adds.findIndex((j, x) => x >= next && keyOf(b[j]!) === k);
    if (at === -1) {
      out.push(del(i));
      continue;
    }
    while (next < at) out.push(add(adds[next++]!));
    out.push(mod(i, adds[next++]!));
  }
  while (next < adds.length) out.push(add(adds[next++]!));
  return out;
}

/** Line diff by longest common subsequence; deletions and additions next to each other pair up as changed lines. */
export function diffLines(a: string[], b: string[]): Row[] {
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: Array<{ t: 'same' | 'del' | 'add'; i?: number; j?: number }> = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) ops.push({ t: 'same', i: i++, j: j++ });
    else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) ops.push({ t: 'del', i: i++ });
    else ops.push({ t: 'add', j: j++ });
  }
  while (i < n) ops.push({ t: 'del', i: i++ });
  while (j < m) ops.push({ t: 'add', j: j++ });
  const rows: Row[] = [];
  for (let k = 0; k < ops.length; ) {
    const op = ops[k]!;
    if (op.t === 'same') {
      rows.push({ left: a[op.i!]!, right: b[op.j!]!, ln: op.i! + 1, rn: op.j! + 1, kind: 'same' });
      k++;
      continue;
    }
    const dels: number[] = [];
    const adds: number[] = [];
    while (k < ops.length && ops[k]!.t !== 'same') {
      const o = ops[k++]!;
      if (o.t === 'del') dels.push(o.i!);
      else adds.push(o.j!);
    }
    rows.push(...pairBlock(a, b, dels, adds));
  }
  return rows;
}

