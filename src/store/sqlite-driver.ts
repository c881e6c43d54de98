/**
 * @module store/sqlite-driver
 * The SQLite library under the embedded store: better-sqlite3 (a maintained, synchronous binding to SQLite's
 * C library), or the runtime's own node:sqlite when better-sqlite3 cannot load, as when the package was built
 * for another Node.js version than the one running. Both are the real SQLite; the store only uses what both
 * offer: exec, and prepared statements with run/get/all.
 */
import { createRequire } from 'node:module';

export interface SqliteStatement {
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Array<Record<string, unknown>>;
}

export interface SqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
  /** Which library opened it, for logs. */
  readonly driver: 'better-sqlite3' | 'node:sqlite';
}

const require = createRequire(import.meta.url);

type BetterSqlite = new (file: string) => { exec(sql: string): void; prepare(sql: string): SqliteStatement; close(): void };
type NodeSqlite = { DatabaseSync: new (file: string) => { exec(sql: string): void; prepare(sql: string): SqliteStatement; close(): void } };

let loadError: Error | null = null;
let better: BetterSqlite | null | undefined;

/**
 * better-sqlite3, if its native part loads in this runtime. The package's JavaScript loads anywhere; the
 * compiled binding only in the Node.js ABI it was built for, and only when the first database opens: so open
 * one in memory to find out, once.
 */
function loadBetter(): BetterSqlite | null {
  if (better !== undefined) return better;
  try {
    const B = require('better-sqlite3') as BetterSqlite;
    new B(':memory:').close();
    better = B;
  } catch (e) {
    loadError = e as Error;
    better = null;
  }
  return better;
}

function loadNode(): NodeSqlite | null {
  try {
    // Present from Node 22.5 (behind a flag until 22.13); absent on Node 20.
    return require('node:sqlite') as NodeSqlite;
  } catch {
    return null;
  }
}

/** Open (creating) a database file, or ':memory:'. */
export function openSqlite(file: string, prefer?: 'better-sqlite3' | 'node:sqlite'): SqliteDatabase {
  const order: Array<'better-sqlite3' | 'node:sqlite'> = prefer === 'node:sqlite' ? ['node:sqlite', 'better-sqlite3'] : ['better-sqlite3', 'node:sqlite'];
  for (const name of order) {
    if (name === 'better-sqlite3') {
      const Better = loadBetter();
      if (Better) {
        const db = new Better(file);
        return { exec: (s) => db.exec(s), prepare: (s) => db.prepare(s), close: () => db.close(), driver: 'better-sqlite3' };
      }
    } else {
      const mod = loadNode();
      if (mod) {
        const db = new mod.DatabaseSync(file);
        return { exec: (s) => db.exec(s), prepare: (s) => db.prepare(s), close: () => db.close(), driver: 'node:sqlite' };
      }
    }
  }
  throw new Error(`no SQLite library can be loaded: better-sqlite3 failed (${loadError?.message ?? 'unknown'}) and this Node.js has no node:sqlite; run "npm rebuild better-sqlite3"`);
}

/** Whether better-sqlite3 works in this runtime (for tests that run the store on both libraries). */
export function betterSqliteAvailable(): boolean {
  return loadBetter() !== null;
}

/** Whether node:sqlite is there (for tests that run the store on both libraries). */
export function nodeSqliteAvailable(): boolean {
  return loadNode() !== null;
}
