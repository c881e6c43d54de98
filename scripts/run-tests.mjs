#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's test runner; extra args are passed through.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
const filter = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

let files = walk(dist, []).sort();
if (filter.length) files = files.filter((f) => filter.some((x) => relative(root, f).includes(x)));
if (!files.length) {
  console.error('no test files found');
  process.exit(1);
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...flags, ...files], { stdio: 'inherit', cwd: root });
process.exit(res.status ?? 1);
