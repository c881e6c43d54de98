/**
 * @module core/errors.test
 * Keeps the error table and docs/errors.md in step, and checks the JSON bodies.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS, errorBody, type ErrorCode } from './errors.js';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
const rows = new Map<string, { status: number; message: string }>();
for (const line of doc.split('\n')) {
  const m = /^\| (GH_ERR_[A-Z_]+) \| (\d{3}) \| ([^|]+) \|/.exec(line);
  if (m) rows.set(m[1]!, { status: Number(m[2]), message: m[3]!.trim() });
}

it('docs/errors.md lists every error code with its status and message', () => {
  for (const [code, def] of Object.entries(ERRORS)) {
    assert.ok(rows.has(code), `${code} is missing from docs/errors.md`);
    assert.equal(rows.get(code)!.status, def.status, `${code} status`);
    assert.equal(rows.get(code)!.message, def.message, `${code} message`);
  }
});

it('docs/errors.md lists no code the gateway does not have', () => {
  for (const code of rows.keys()) assert.ok(code in ERRORS, `${code} is documented but does not exist`);
});

it('codes follow GH_ERR_<AREA>_<WHAT> and bodies are the documented JSON', () => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    assert.match(code, /^GH_ERR_[A-Z]+(_[A-Z]+)*$/);
    assert.deepEqual(JSON.parse(errorBody(code).toString()), { error: { code, message: ERRORS[code].message } });
  }
});
