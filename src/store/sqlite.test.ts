/**
 * @module store/sqlite.test
 * The SQLite store: the conformance suite on a file, with better-sqlite3 and (where the runtime has it)
 * node:sqlite; audit rows that SQL itself cannot change; a schema newer than the code refused; and no
 * acknowledged write lost when the writing process is killed with SIGKILL mid-stream.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeConformance } from './conformance.js';
import { SqliteStore } from './sqlite.js';
import { betterSqliteAvailable, nodeSqliteAvailable, openSqlite } from './sqlite-driver.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'gh-store-'));
}

for (const driver of ['better-sqlite3', 'node:sqlite'] as const) {
  // Under CI on Node 20 better-sqlite3 must work; node:sqlite exists from Node 22 on (the Node 24 run covers it).
  if (driver === 'node:sqlite' && !nodeSqliteAvailable()) continue;
  if (driver === 'better-sqlite3' && !betterSqliteAvailable() && process.versions.node.split('.')[0] !== '20') continue;
  storeConformance(`sqlite (${driver})`, async () => {
    const dir = tempDir();
    const file = join(dir, 'gatehouse.db');
    const store = new SqliteStore(file, driver);
    await store.init();
    assert.equal(store.driver, driver);
    return {
      store,
      reopen: async () => {
        const s = new SqliteStore(file, driver);
        await s.init();
        return s;
      },
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  });
}

describe('sqlite store specifics', () => {
  it('audit rows cannot be updated or deleted, even with SQL', async () => {
    const dir = tempDir();
    const file = join(dir, 'g.db');
    const store = new SqliteStore(file);
    await store.init();
    await store.appendAudit({ actor: 'a', source: 's', tenant: null, kind: 'k', entityId: null, action: 'x', before: null, after: null });
    await store.close();
    const db = openSqlite(file);
    assert.throws(() => db.prepare("UPDATE audit SET actor = 'forged'").run(), /audit records cannot be changed/);
    assert.throws(() => db.prepare('DELETE FROM audit').run(), /audit records cannot be deleted/);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('backup: a consistent copy while the store is in use, refused over an existing file', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir, 'g.db'));
    await store.init();
    const audit = { actor: 'a', source: 's', tenant: 't', kind: 'routes', entityId: null, action: 'x', before: null, after: null };
    await store.writeDraft('t', 'routes', 'r1', { draft: { paths: ['/a'] }, create: true, actor: 'a', audit });
    await store.publish('t', 'routes', 'r1', { actor: 'a', audit });
    await store.backup(join(dir, 'copy', 'backup.db'));
    await assert.rejects(store.backup(join(dir, 'copy', 'backup.db')), /exists/);
    await store.writeDraft('t', 'routes', 'r2', { draft: { paths: ['/b'] }, create: true, actor: 'a', audit });
    await store.close();
    const copy = new SqliteStore(join(dir, 'copy', 'backup.db'));
    await copy.init();
    assert.deepEqual((await copy.live()).entities.map((e) => e.id), ['r1']);
    assert.equal(await copy.getEntity('t', 'routes', 'r2'), null, 'the copy is the state when it was made');
    assert.equal((await copy.queryAudit({})).length, 2);
    await copy.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a store whose schema is newer than this code', async () => {
    const dir = tempDir();
    const file = join(dir, 'g.db');
    const store = new SqliteStore(file);
    await store.init();
    await store.close();
    const db = openSqlite(file);
    db.prepare('UPDATE schema_version SET version = 999').run();
    db.close();
    await assert.rejects(new SqliteStore(file).init(), /newer than this Gatehouse knows/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('no acknowledged write is lost when the writer is killed with SIGKILL', async () => {
    const dir = tempDir();
    const file = join(dir, 'g.db');
    const script = join(dir, 'writer.mjs');
    // The writer acknowledges each write on stdout only after the store call returned, as the admin API does.
    writeFileSync(
      script,
      `import { SqliteStore } from ${JSON.stringify(new URL('./sqlite.js', import.meta.url).href)};
const store = new SqliteStore(${JSON.stringify(file)});
await store.init();
const audit = { actor: 'w', source: 'test', tenant: 'acme', kind: 'routes', entityId: null, action: 'create', before: null, after: null };
for (let i = 0; ; i++) {
  const id = 'r' + i;
  await store.writeDraft('acme', 'routes', id, { draft: { paths: ['/' + i] }, create: true, actor: 'w', audit });
  if (i % 3 === 0) await store.publish('acme', 'routes', id, { actor: 'w', audit });
  process.stdout.write('ack ' + id + '\\n');
}
`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const acked: string[] = [];
    let buf = '';
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) if (l.startsWith('ack ')) acked.push(l.slice(4));
        if (acked.length >= 150) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => resolve());
    });
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    assert.ok(acked.length >= 150, `the writer acknowledged ${acked.length} writes before it was killed`);
    const store = new SqliteStore(file);
    await store.init();
    for (const id of acked) {
      const e = await store.getEntity('acme', 'routes', id);
      assert.ok(e, `acknowledged write ${id} survived`);
      if (Number(id.slice(1)) % 3 === 0) assert.equal(e.liveVersion, 1, `acknowledged publish of ${id} survived`);
    }
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
