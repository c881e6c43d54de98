/**
 * @module test/helpers/control
 * A control plane on a fresh SQLite store in a temp dir, driven through fastify's inject (no sockets), with
 * a superadmin and helpers to make users, tenants, members and tokens.
 */
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ControlPlane } from '../../src/control/server.js';
import { hashPassword, newId } from '../../src/control/secrets.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { Role } from '../../src/store/types.js';
import { builtinRegistry } from '../../src/plugins/index.js';

export interface Call {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

export interface TestControl {
  cp: ControlPlane;
  store: SqliteStore;
  /** A token of the superadmin. */
  root: string;
  call(method: string, url: string, opts?: { token?: string; body?: unknown; headers?: Record<string, string>; cookie?: string }): Promise<Call>;
  /** Create a user with a role in a tenant and return a token of theirs (narrowed when `narrow`). */
  member(tenant: string, role: Role, name?: string): Promise<string>;
  /** Create a tenant; without review unless asked (most tests are about something else). */
  tenant(id: string, opts?: { reviewRequired?: boolean; skipReviewRoles?: Role[] }): Promise<void>;
  logs: string[];
}

const audit = { actor: 'test', source: 'test', tenant: null, kind: 'test', entityId: null, action: 'setup', before: null, after: null };

export async function startControl(): Promise<TestControl> {
  const dir = mkdtempSync(join(tmpdir(), 'gh-control-'));
  const store = new SqliteStore(join(dir, 'gatehouse.db'));
  await store.init();
  const logs: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => logs.push(s) });
  const cp = new ControlPlane({ store, plugins: builtinRegistry(), logger });
  await cp.app.ready();
  const rootUser = await store.createUser({ id: newId(), username: 'root', passwordHash: await hashPassword('root-password-123'), superadmin: true, disabled: false }, audit);
  after(async () => {
    await cp.app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const call: TestControl['call'] = async (method, url, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.cookie) headers.cookie = opts.cookie;
    const res = await cp.app.inject({ method: method as 'GET', url, headers, payload: opts.body === undefined ? undefined : JSON.stringify(opts.body), ...(opts.body === undefined ? {} : { headers: { ...headers, 'content-type': 'application/json' } }) });
    let body: unknown = null;
    try {
      body = res.body ? JSON.parse(res.body) : null;
    } catch {
      body = null;
    }
    return { status: res.statusCode, headers: res.headers, body, text: res.body };
  };
  // The superadmin's token, made through the API as a script would after logging in.
  const login = await call('POST', '/api/v1/login', { body: { username: 'root', password: 'root-password-123' } });
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const tok = await call('POST', '/api/v1/tokens', { cookie, headers: { 'x-csrf-token': login.body.csrfToken }, body: { name: 'root' } });
  const root = tok.body.token as string;
  void rootUser;
  let n = 0;
  return {
    cp,
    store,
    root,
    call,
    logs,
    async tenant(id, opts = {}) {
      const r = await call('POST', '/api/v1/tenants', { token: root, body: { id, name: id.toUpperCase(), reviewRequired: opts.reviewRequired ?? false, ...(opts.skipReviewRoles ? { skipReviewRoles: opts.skipReviewRoles } : {}) } });
      if (r.status !== 201) throw new Error(`tenant ${id}: ${r.status} ${r.text}`);
    },
    async member(tenant, role, name) {
      const username = name ?? `${role}-${tenant}-${++n}`;
      // Users are made in the store directly (their password is never used: tokens are), to keep tests fast.
      let user = await store.getUserByName(username);
      user ??= await store.createUser({ id: newId(), username, passwordHash: 'scrypt$1$1$1$AA$AA', superadmin: false, disabled: false }, audit);
      await store.setMembership(tenant, user.id, role, audit);
      const id = newId();
      const token = `ght_test_${id}_${username}`;
      const { sha256 } = await import('../../src/control/secrets.js');
      await store.createToken({ id, userId: user.id, name: 'test', hash: sha256(token), tenant: null, role: null, expiresAt: null }, audit);
      return token;
    },
  };
}
