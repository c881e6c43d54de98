/**
 * @module store/sqlite
 * The embedded store: one SQLite file (WAL journal, synchronous=FULL, so a write acknowledged to a caller
 * survives a crash or kill -9), schema migrations numbered and applied in order at start, and every mutation
 * with its audit record in one transaction. Audit rows are protected by triggers against update and delete.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, type SqliteDatabase } from './sqlite-driver.js';
import {
  StoreConflict,
  type ApplyOptions,
  type ChangeItem,
  type ChangeRecord,
  type ChangeStatus,
  type GrayRecord,
  type ApiToken,
  type AuditInput,
  type AuditQuery,
  type AuditRecord,
  type DraftWrite,
  type EntityKind,
  type EntityRecord,
  type ListOptions,
  type LiveState,
  type Membership,
  type Role,
  type Session,
  type Store,
  type Tenant,
  type User,
  type VersionRecord,
} from './types.js';

/** Schema migrations, applied in order; never edit one that has shipped, add the next. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  INSERT INTO meta (key, value) VALUES ('config_revision', '0');
  CREATE TABLE tenants (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, review_required INTEGER NOT NULL, created_at TEXT NOT NULL
  );
  CREATE TABLE users (
    id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    superadmin INTEGER NOT NULL, disabled INTEGER NOT NULL, created_at TEXT NOT NULL
  );
  CREATE TABLE memberships (
    tenant TEXT NOT NULL REFERENCES tenants(id), user_id TEXT NOT NULL REFERENCES users(id), role TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id)
  );
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    tenant TEXT, role TEXT, expires_at TEXT, created_at TEXT NOT NULL, last_used_at TEXT
  );
  CREATE TABLE sessions (
    hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), csrf_token TEXT NOT NULL,
    expires_at TEXT NOT NULL, created_at TEXT NOT NULL
  );
  CREATE TABLE entities (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, draft TEXT, revision INTEGER NOT NULL,
    live TEXT, live_version INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, id)
  );
  CREATE TABLE versions (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, content TEXT,
    author TEXT NOT NULL, published_by TEXT NOT NULL, created_at TEXT NOT NULL, note TEXT,
    PRIMARY KEY (tenant, kind, id, version)
  );
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL,
    tenant TEXT, kind TEXT NOT NULL, entity_id TEXT, action TEXT NOT NULL, before TEXT, after TEXT
  );
  CREATE INDEX audit_tenant ON audit (tenant, seq);
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit records cannot be changed'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit records cannot be deleted'); END;
  `,
  // 2: release controls (review policy, change requests, who reviewed a version, gray releases).
  `
  ALTER TABLE tenants ADD COLUMN skip_review_roles TEXT NOT NULL DEFAULT '["admin"]';
  ALTER TABLE versions ADD COLUMN reviewed_by TEXT;
  ALTER TABLE versions ADD COLUMN change_id INTEGER;
  ALTER TABLE versions ADD COLUMN channel TEXT NOT NULL DEFAULT 'live';
  CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL REFERENCES tenants(id), title TEXT NOT NULL, description TEXT,
    status TEXT NOT NULL, author TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    decided_by TEXT, decided_at TEXT, comment TEXT, items TEXT NOT NULL, versions TEXT NOT NULL DEFAULT '[]'
  );
  CREATE INDEX changes_tenant ON changes (tenant, status, id);
  CREATE TABLE gray_releases (
    tenant TEXT NOT NULL, route_id TEXT NOT NULL, version INTEGER NOT NULL, base_version INTEGER NOT NULL, content TEXT NOT NULL,
    instances TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, change_id INTEGER,
    PRIMARY KEY (tenant, route_id)
  );
  `,
];

type Row = Record<string, unknown>;

const now = (): string => new Date().toISOString();
const text = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(v: unknown): T | null => (v === null || v === undefined ? null : (JSON.parse(String(v)) as T));

function toTenant(r: Row): Tenant {
  return {
    id: String(r.id),
    name: String(r.name),
    reviewRequired: Number(r.review_required) === 1,
    skipReviewRoles: parse<Role[]>(r.skip_review_roles) ?? [],
    createdAt: String(r.created_at),
  };
}
function toUser(r: Row): User {
  return {
    id: String(r.id),
    username: String(r.username),
    passwordHash: String(r.password_hash),
    superadmin: Number(r.superadmin) === 1,
    disabled: Number(r.disabled) === 1,
    createdAt: String(r.created_at),
  };
}
function toToken(r: Row): ApiToken {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    name: String(r.name),
    hash: String(r.hash),
    tenant: (r.tenant as string | null) ?? null,
    role: (r.role as Role | null) ?? null,
    expiresAt: (r.expires_at as string | null) ?? null,
    createdAt: String(r.created_at),
    lastUsedAt: (r.last_used_at as string | null) ?? null,
  };
}
function toEntity(r: Row): EntityRecord {
  const draft = (r.draft as string | null) ?? null;
  const live = (r.live as string | null) ?? null;
  return {
    tenant: String(r.tenant),
    kind: r.kind as EntityKind,
    id: String(r.id),
    draft: parse(draft),
    revision: Number(r.revision),
    pending: draft !== live,
    live: parse(live),
    liveVersion: Number(r.live_version),
    createdAt: String(r.created_at),
    updatedAt: String(r.updated_at),
    updatedBy: String(r.updated_by),
  };
}
function toVersion(r: Row): VersionRecord {
  return {
    tenant: String(r.tenant),
    kind: r.kind as EntityKind,
    id: String(r.id),
    version: Number(r.version),
    content: parse(r.content),
    author: String(r.author),
    publishedBy: String(r.published_by),
    reviewedBy: (r.reviewed_by as string | null) ?? null,
    changeId: r.change_id === null || r.change_id === undefined ? null : Number(r.change_id),
    channel: r.channel === 'gray' ? 'gray' : 'live',
    createdAt: String(r.created_at),
    note: (r.note as string | null) ?? null,
  };
}
function toChange(r: Row): ChangeRecord {
  return {
    tenant: String(r.tenant),
    id: Number(r.id),
    title: String(r.title),
    description: (r.description as string | null) ?? null,
    status: r.status as ChangeStatus,
    author: String(r.author),
    createdAt: String(r.created_at),
    updatedAt: String(r.updated_at),
    decidedBy: (r.decided_by as string | null) ?? null,
    decidedAt: (r.decided_at as string | null) ?? null,
    comment: (r.comment as string | null) ?? null,
    items: parse<ChangeItem[]>(r.items) ?? [],
    versions: parse<ChangeRecord['versions']>(r.versions) ?? [],
  };
}
function toGray(r: Row): GrayRecord {
  return {
    tenant: String(r.tenant),
    routeId: String(r.route_id),
    version: Number(r.version),
    baseVersion: Number(r.base_version),
    content: parse<Record<string, unknown>>(r.content)!,
    instances: parse<string[]>(r.instances) ?? [],
    createdBy: String(r.created_by),
    createdAt: String(r.created_at),
    changeId: r.change_id === null || r.change_id === undefined ? null : Number(r.change_id),
  };
}
function toAudit(r: Row): AuditRecord {
  return {
    seq: Number(r.seq),
    at: String(r.at),
    actor: String(r.actor),
    source: String(r.source),
    tenant: (r.tenant as string | null) ?? null,
    kind: String(r.kind),
    entityId: (r.entity_id as string | null) ?? null,
    action: String(r.action),
    before: parse(r.before),
    after: parse(r.after),
  };
}

/** LIKE pattern for a substring, with the wildcards of the text escaped. */
function likeOf(s: string): string {
  return `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export class SqliteStore implements Store {
  private db: SqliteDatabase | null = null;

  /** `file`: a path (its directory is created) or ':memory:'. */
  constructor(
    private readonly file: string,
    private readonly prefer?: 'better-sqlite3' | 'node:sqlite',
  ) {}

  get driver(): string {
    return this.db?.driver ?? 'closed';
  }

  private get d(): SqliteDatabase {
    if (this.db === null) throw new Error('the store is not open (call init)');
    return this.db;
  }

  async init(): Promise<void> {
    if (this.file !== ':memory:') mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const db = openSqlite(this.file, this.prefer);
    this.db = db;
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = FULL');
    db.exec('PRAGMA foreign_keys = ON');
    db.exec('PRAGMA busy_timeout = 5000');
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = db.prepare('SELECT version FROM schema_version').get();
    let version = row ? Number(row.version) : 0;
    if (!row) db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
    if (version > MIGRATIONS.length) throw new Error(`the store's schema (version ${version}) is newer than this Gatehouse knows (${MIGRATIONS.length}): upgrade Gatehouse`);
    while (version < MIGRATIONS.length) {
      this.tx(() => {
        db.exec(MIGRATIONS[version]!);
        db.prepare('UPDATE schema_version SET version = ?').run(version + 1);
      });
      version++;
    }
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = null;
  }

  /**
   * Write a consistent copy of the whole store to `file` while it stays in use (SQLite's VACUUM INTO: one
   * read transaction, so the copy is the state at one instant). The file must not exist.
   */
  async backup(file: string): Promise<void> {
    if (existsSync(file)) throw new Error(`${file} exists; give a new file name`);
    mkdirSync(dirname(file), { recursive: true });
    this.d.prepare('VACUUM INTO ?').run(file);
  }

  /** Run `fn` in one IMMEDIATE transaction (the write lock is taken at once, so two writers never deadlock). */
  private tx<T>(fn: () => T): T {
    const db = this.d;
    db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      db.exec('COMMIT');
      return out;
    } catch (e) {
      db.exec('ROLLBACK');
      throw e;
    }
  }

  private audit(a: AuditInput): AuditRecord {
    const at = now();
    const r = this.d
      .prepare('INSERT INTO audit (at, actor, source, tenant, kind, entity_id, action, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(at, a.actor, a.source, a.tenant, a.kind, a.entityId, a.action, text(a.before), text(a.after));
    return { ...a, seq: Number(r.lastInsertRowid), at };
  }

  // ---- tenants

  async createTenant(t: Omit<Tenant, 'createdAt'>, audit: AuditInput): Promise<Tenant> {
    return this.tx(() => {
      if (this.d.prepare('SELECT 1 FROM tenants WHERE id = ?').get(t.id)) throw new StoreConflict('exists', `tenant "${t.id}" exists`);
      const createdAt = now();
      this.d
        .prepare('INSERT INTO tenants (id, name, review_required, skip_review_roles, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(t.id, t.name, t.reviewRequired ? 1 : 0, JSON.stringify(t.skipReviewRoles), createdAt);
      this.audit(audit);
      return { ...t, createdAt };
    });
  }

  async updateTenant(id: string, patch: Partial<Pick<Tenant, 'name' | 'reviewRequired' | 'skipReviewRoles'>>, audit: AuditInput): Promise<Tenant> {
    return this.tx(() => {
      const r = this.d.prepare('SELECT * FROM tenants WHERE id = ?').get(id);
      if (!r) throw new StoreConflict('missing', `no tenant "${id}"`);
      const t = { ...toTenant(r), ...patch };
      this.d
        .prepare('UPDATE tenants SET name = ?, review_required = ?, skip_review_roles = ? WHERE id = ?')
        .run(t.name, t.reviewRequired ? 1 : 0, JSON.stringify(t.skipReviewRoles), id);
      this.audit(audit);
      return t;
    });
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const r = this.d.prepare('SELECT * FROM tenants WHERE id = ?').get(id);
    return r ? toTenant(r) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    return this.d.prepare('SELECT * FROM tenants ORDER BY id').all().map(toTenant);
  }

  // ---- users

  async createUser(u: Omit<User, 'createdAt'>, audit: AuditInput): Promise<User> {
    return this.tx(() => {
      if (this.d.prepare('SELECT 1 FROM users WHERE username = ?').get(u.username)) throw new StoreConflict('exists', `user "${u.username}" exists`);
      const createdAt = now();
      this.d
        .prepare('INSERT INTO users (id, username, password_hash, superadmin, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(u.id, u.username, u.passwordHash, u.superadmin ? 1 : 0, u.disabled ? 1 : 0, createdAt);
      this.audit(audit);
      return { ...u, createdAt };
    });
  }

  async getUserById(id: string): Promise<User | null> {
    const r = this.d.prepare('SELECT * FROM users WHERE id = ?').get(id);
    return r ? toUser(r) : null;
  }

  async getUserByName(username: string): Promise<User | null> {
    const r = this.d.prepare('SELECT * FROM users WHERE username = ?').get(username);
    return r ? toUser(r) : null;
  }

  async listUsers(): Promise<User[]> {
    return this.d.prepare('SELECT * FROM users ORDER BY username').all().map(toUser);
  }

  async setPassword(userId: string, passwordHash: string, audit: AuditInput): Promise<void> {
    this.tx(() => {
      const r = this.d.prepare('UPDATE users SET password_hash = ? WHERE id = ?').run(passwordHash, userId);
      if (Number(r.changes) === 0) throw new StoreConflict('missing', 'no such user');
      // A new password ends every session of the user.
      this.d.prepare('DELETE FROM sessions WHERE user_id = ?').run(userId);
      this.audit(audit);
    });
  }

  // ---- memberships

  async setMembership(tenant: string, userId: string, role: Role | null, audit: AuditInput): Promise<void> {
    this.tx(() => {
      if (role === null) this.d.prepare('DELETE FROM memberships WHERE tenant = ? AND user_id = ?').run(tenant, userId);
      else {
        this.d
          .prepare('INSERT INTO memberships (tenant, user_id, role) VALUES (?, ?, ?) ON CONFLICT (tenant, user_id) DO UPDATE SET role = excluded.role')
          .run(tenant, userId, role);
      }
      this.audit(audit);
    });
  }

  async getMembership(tenant: string, userId: string): Promise<Membership | null> {
    const r = this.d.prepare('SELECT * FROM memberships WHERE tenant = ? AND user_id = ?').get(tenant, userId);
    return r ? { tenant: String(r.tenant), userId: String(r.user_id), role: r.role as Role } : null;
  }

  async listMembers(tenant: string): Promise<Membership[]> {
    return this.d
      .prepare('SELECT * FROM memberships WHERE tenant = ? ORDER BY user_id')
      .all(tenant)
      .map((r) => ({ tenant: String(r.tenant), userId: String(r.user_id), role: r.role as Role }));
  }

  async listMemberships(userId: string): Promise<Membership[]> {
    return this.d
      .prepare('SELECT * FROM memberships WHERE user_id = ? ORDER BY tenant')
      .all(userId)
      .map((r) => ({ tenant: String(r.tenant), userId: String(r.user_id), role: r.role as Role }));
  }

  // ---- tokens and sessions

  async createToken(t: Omit<ApiToken, 'createdAt' | 'lastUsedAt'>, audit: AuditInput): Promise<ApiToken> {
    return this.tx(() => {
      const createdAt = now();
      this.d
        .prepare('INSERT INTO tokens (id, user_id, name, hash, tenant, role, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(t.id, t.userId, t.name, t.hash, t.tenant, t.role, t.expiresAt, createdAt);
      this.audit(audit);
      return { ...t, createdAt, lastUsedAt: null };
    });
  }

  async getTokenByHash(hash: string): Promise<ApiToken | null> {
    const r = this.d.prepare('SELECT * FROM tokens WHERE hash = ?').get(hash);
    return r ? toToken(r) : null;
  }

  async listTokens(userId: string): Promise<ApiToken[]> {
    return this.d.prepare('SELECT * FROM tokens WHERE user_id = ? ORDER BY created_at, id').all(userId).map(toToken);
  }

  async deleteToken(id: string, audit: AuditInput): Promise<boolean> {
    return this.tx(() => {
      const r = this.d.prepare('DELETE FROM tokens WHERE id = ?').run(id);
      if (Number(r.changes) === 0) return false;
      this.audit(audit);
      return true;
    });
  }

  async touchToken(id: string, at: string): Promise<void> {
    this.d.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(at, id);
  }

  async createSession(s: Omit<Session, 'createdAt'>): Promise<void> {
    this.d.prepare('INSERT INTO sessions (hash, user_id, csrf_token, expires_at, created_at) VALUES (?, ?, ?, ?, ?)').run(s.hash, s.userId, s.csrfToken, s.expiresAt, now());
  }

  async getSession(hash: string): Promise<Session | null> {
    const r = this.d.prepare('SELECT * FROM sessions WHERE hash = ?').get(hash);
    return r
      ? { hash: String(r.hash), userId: String(r.user_id), csrfToken: String(r.csrf_token), expiresAt: String(r.expires_at), createdAt: String(r.created_at) }
      : null;
  }

  async deleteSession(hash: string): Promise<void> {
    this.d.prepare('DELETE FROM sessions WHERE hash = ?').run(hash);
  }

  async deleteExpiredSessions(at: string): Promise<number> {
    return Number(this.d.prepare('DELETE FROM sessions WHERE expires_at <= ?').run(at).changes);
  }

  // ---- entities

  async getEntity(tenant: string, kind: EntityKind, id: string): Promise<EntityRecord | null> {
    const r = this.d.prepare('SELECT * FROM entities WHERE tenant = ? AND kind = ? AND id = ?').get(tenant, kind, id);
    return r ? toEntity(r) : null;
  }

  async listEntities(tenant: string, kind: EntityKind, opts: ListOptions): Promise<{ items: EntityRecord[]; total: number }> {
    let where = 'tenant = ? AND kind = ?';
    const params: unknown[] = [tenant, kind];
    if (opts.search) {
      where += " AND (id LIKE ? ESCAPE '\\' OR json_extract(coalesce(draft, live), '$.name') LIKE ? ESCAPE '\\')";
      params.push(likeOf(opts.search), likeOf(opts.search));
    }
    if (opts.label) {
      const path = `$.labels."${opts.label.key.replace(/["\\]/g, '')}"`;
      if (opts.label.value === undefined) {
        where += ' AND json_type(coalesce(draft, live), ?) IS NOT NULL';
        params.push(path);
      } else {
        where += ' AND json_extract(coalesce(draft, live), ?) = ?';
        params.push(path, opts.label.value);
      }
    }
    const total = Number(this.d.prepare(`SELECT count(*) AS n FROM entities WHERE ${where}`).get(...params)!.n);
    const items = this.d
      .prepare(`SELECT * FROM entities WHERE ${where} ORDER BY id LIMIT ? OFFSET ?`)
      .all(...params, opts.limit, opts.offset)
      .map(toEntity);
    return { items, total };
  }

  async writeDraft(tenant: string, kind: EntityKind, id: string, w: DraftWrite): Promise<EntityRecord> {
    return this.tx(() => {
      const row = this.d.prepare('SELECT * FROM entities WHERE tenant = ? AND kind = ? AND id = ?').get(tenant, kind, id);
      const at = now();
      if (row === undefined) {
        if (w.draft === null) throw new StoreConflict('missing', `${kind} "${id}" does not exist`);
        if (w.expectedRevision !== undefined) throw new StoreConflict('revision', `${kind} "${id}" does not exist`);
        this.d
          .prepare('INSERT INTO entities (tenant, kind, id, draft, revision, live, live_version, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, 1, NULL, 0, ?, ?, ?)')
          .run(tenant, kind, id, text(w.draft), at, at, w.actor);
      } else {
        if (w.create) throw new StoreConflict('exists', `${kind} "${id}" exists`);
        const current = toEntity(row);
        if (w.expectedRevision !== undefined && w.expectedRevision !== current.revision) {
          throw new StoreConflict('revision', `${kind} "${id}" changed since revision ${w.expectedRevision} (now ${current.revision})`);
        }
        if (w.draft === null && current.live === null) {
          // Nothing live to remove (never published, or its deletion is live): the entity simply goes.
          this.d.prepare('DELETE FROM entities WHERE tenant = ? AND kind = ? AND id = ?').run(tenant, kind, id);
          this.audit(w.audit);
          return { ...current, draft: null, revision: current.revision + 1, pending: false, updatedAt: at, updatedBy: w.actor };
        }
        this.d
          .prepare('UPDATE entities SET draft = ?, revision = revision + 1, updated_at = ?, updated_by = ? WHERE tenant = ? AND kind = ? AND id = ?')
          .run(text(w.draft), at, w.actor, tenant, kind, id);
      }
      this.audit(w.audit);
      return toEntity(this.d.prepare('SELECT * FROM entities WHERE tenant = ? AND kind = ? AND id = ?').get(tenant, kind, id)!);
    });
  }

  async publish(
    tenant: string,
    kind: EntityKind,
    id: string,
    p: { actor: string; note?: string; audit: AuditInput },
  ): Promise<{ entity: EntityRecord | null; version: VersionRecord }> {
    return this.tx(() => {
      const row = this.d.prepare('SELECT * FROM entities WHERE tenant = ? AND kind = ? AND id = ?').get(tenant, kind, id);
      if (row === undefined) throw new StoreConflict('missing', `${kind} "${id}" does not exist`);
      const e = toEntity(row);
      if (!e.pending) throw new StoreConflict('nothing-to-publish', `${kind} "${id}" has no unpublished change`);
      const item: ChangeItem = { op: 'publish', kind, id, content: e.draft, baseVersion: e.liveVersion, note: p.note };
      const [version] = this.applyTx(tenant, [item], { actor: p.actor, author: e.updatedBy, note: p.note, audits: [p.audit] });
      const after = this.d.prepare('SELECT * FROM entities WHERE tenant = ? AND kind = ? AND id = ?').get(tenant, kind, id);
      return { entity: after && after.live !== null ? toEntity(after) : null, version: version! };
    });
  }

  async apply(tenant: string, items: ChangeItem[], o: ApplyOptions): Promise<{ versions: VersionRecord[]; change: ChangeRecord | null }> {
    return this.tx(() => {
      const versions = this.applyTx(tenant, items, o);
      let change: ChangeRecord | null = null;
      if (o.changeId !== undefined) {
        const at = now();
        const r = this.d
          .prepare("UPDATE changes SET status = 'approved', decided_by = ?, decided_at = ?, comment = ?, updated_at = ?, versions = ? WHERE tenant = ? AND id = ? AND status = 'open'")
          .run(o.actor, at, o.comment ?? null, at, JSON.stringify(versions.map((v) => ({ kind: v.kind, id: v.id, version: v.version }))), tenant, o.changeId);
        if (Number(r.changes) === 0) throw new StoreConflict('state', `change ${o.changeId} is not open`);
        change = toChange(this.d.prepare('SELECT * FROM changes WHERE tenant = ? AND id = ?').get(tenant, o.changeId)!);
      }
      return { versions, change };
    });
  }

  /** The live version of an entity (0 when nothing is live and nothing was). */
  private liveVersionOf(tenant: string, kind: EntityKind, id: string): { row: Row | undefined; liveVersion: number } {
    const row = this.d.prepare('SELECT * FROM entities WHERE tenant = ? AND kind = ? AND id = ?').get(tenant, kind, id);
    return { row, liveVersion: row ? Number(row.live_version) : 0 };
  }

  private nextVersion(tenant: string, kind: EntityKind, id: string): number {
    const last = this.d.prepare('SELECT max(version) AS v FROM versions WHERE tenant = ? AND kind = ? AND id = ?').get(tenant, kind, id);
    return Number(last?.v ?? 0) + 1;
  }

  private insertVersion(tenant: string, kind: EntityKind, id: string, content: Record<string, unknown> | null, o: ApplyOptions, channel: 'live' | 'gray', note: string | undefined): VersionRecord {
    const version = this.nextVersion(tenant, kind, id);
    this.d
      .prepare('INSERT INTO versions (tenant, kind, id, version, content, author, published_by, reviewed_by, change_id, channel, created_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(tenant, kind, id, version, text(content), o.author, o.actor, o.reviewer ?? null, o.changeId ?? null, channel, now(), note ?? o.note ?? null);
    return toVersion(this.d.prepare('SELECT * FROM versions WHERE tenant = ? AND kind = ? AND id = ? AND version = ?').get(tenant, kind, id, version)!);
  }

  /** Make `content` the live state of an entity as a new version; the draft stays as it is. */
  private goLive(tenant: string, kind: EntityKind, id: string, row: Row | undefined, content: Record<string, unknown> | null, o: ApplyOptions, note: string | undefined): VersionRecord {
    const v = this.insertVersion(tenant, kind, id, content, o, 'live', note);
    const at = now();
    if (row === undefined) {
      this.d
        .prepare('INSERT INTO entities (tenant, kind, id, draft, revision, live, live_version, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)')
        .run(tenant, kind, id, text(content), text(content), v.version, at, at, o.author);
    } else if (content === null && row.draft === null) {
      this.d.prepare('DELETE FROM entities WHERE tenant = ? AND kind = ? AND id = ?').run(tenant, kind, id);
    } else if (row.draft === row.live && row.draft !== text(content)) {
      // No draft was being worked on (it equalled the live state): it follows the new live state (a rollback).
      this.d
        .prepare('UPDATE entities SET live = ?, draft = ?, live_version = ?, revision = revision + 1, updated_at = ?, updated_by = ? WHERE tenant = ? AND kind = ? AND id = ?')
        .run(text(content), text(content), v.version, at, o.author, tenant, kind, id);
    } else {
      this.d.prepare('UPDATE entities SET live = ?, live_version = ? WHERE tenant = ? AND kind = ? AND id = ?').run(text(content), v.version, tenant, kind, id);
    }
    return v;
  }

  /** Check every item against the current state first (all or nothing), then apply them; inside a transaction. */
  private applyTx(tenant: string, items: ChangeItem[], o: ApplyOptions): VersionRecord[] {
    const moved: Array<Record<string, unknown>> = [];
    // Each item's entity row as checked; items name distinct entities, so applying one never changes another's.
    const rows = new Map<string, Row | undefined>();
    for (const it of items) {
      const key = `${it.kind}/${it.id}`;
      if (rows.has(key)) throw new StoreConflict('state', `${it.kind} "${it.id}" appears twice in one change`);
      const { row, liveVersion } = this.liveVersionOf(tenant, it.kind, it.id);
      rows.set(key, row);
      if (liveVersion !== it.baseVersion) moved.push({ kind: it.kind, id: it.id, baseVersion: it.baseVersion, currentVersion: liveVersion });
      const gray = it.kind === 'routes' ? this.d.prepare('SELECT * FROM gray_releases WHERE tenant = ? AND route_id = ?').get(tenant, it.id) : undefined;
      if (it.op === 'publish') {
        if (it.content === null && (row === undefined || row.live === null)) throw new StoreConflict('state', `${it.kind} "${it.id}" is not live: there is nothing to delete`);
        if (it.content === null && gray) throw new StoreConflict('state', `route "${it.id}" has an active gray release: stop or promote it before deleting the route`);
      } else if (it.op === 'gray') {
        if (gray) throw new StoreConflict('state', `route "${it.id}" already has an active gray release (version ${Number(gray.version)}): stop it first`);
        if (it.version !== null && !this.d.prepare('SELECT 1 FROM versions WHERE tenant = ? AND kind = ? AND id = ? AND version = ?').get(tenant, 'routes', it.id, it.version)) {
          throw new StoreConflict('missing', `route "${it.id}" has no version ${it.version}`);
        }
      } else if (!gray || Number(gray.version) !== it.grayVersion) {
        throw new StoreConflict('state', `route "${it.id}" has no active gray release of version ${it.grayVersion}`);
      }
    }
    if (moved.length) {
      const list = moved.map((m) => `${String(m.kind)} "${String(m.id)}" (based on version ${String(m.baseVersion)}, live is ${String(m.currentVersion)})`).join(', ');
      throw new StoreConflict('base', `the live version moved on since the change was made: ${list}; rebase the change`, moved);
    }
    const out: VersionRecord[] = [];
    for (const it of items) {
      const row = rows.get(`${it.kind}/${it.id}`);
      if (it.op === 'publish') out.push(this.goLive(tenant, it.kind, it.id, row, it.content, o, it.note));
      else if (it.op === 'gray') {
        let version = it.version;
        if (version === null) {
          const v = this.insertVersion(tenant, 'routes', it.id, it.content, o, 'gray', it.note ?? `gray release to ${it.instances.join(', ')}`);
          out.push(v);
          version = v.version;
        }
        this.d
          .prepare('INSERT INTO gray_releases (tenant, route_id, version, base_version, content, instances, created_by, created_at, change_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
          .run(tenant, it.id, version, it.baseVersion, JSON.stringify(it.content), JSON.stringify(it.instances), o.author, now(), o.changeId ?? null);
      } else {
        const gray = toGray(this.d.prepare('SELECT * FROM gray_releases WHERE tenant = ? AND route_id = ?').get(tenant, it.id)!);
        out.push(this.goLive(tenant, 'routes', it.id, row, gray.content, o, `promoted gray version ${gray.version}`));
        this.d.prepare('DELETE FROM gray_releases WHERE tenant = ? AND route_id = ?').run(tenant, it.id);
      }
    }
    this.d.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'config_revision'").run();
    for (const a of o.audits) this.audit(a);
    return out;
  }

  // ---- change requests

  async createChange(c: Pick<ChangeRecord, 'tenant' | 'title' | 'description' | 'author' | 'items'>, audit: AuditInput): Promise<ChangeRecord> {
    return this.tx(() => {
      const at = now();
      const r = this.d
        .prepare("INSERT INTO changes (tenant, title, description, status, author, created_at, updated_at, items) VALUES (?, ?, ?, 'open', ?, ?, ?, ?)")
        .run(c.tenant, c.title, c.description, c.author, at, at, JSON.stringify(c.items));
      const id = Number(r.lastInsertRowid);
      this.audit({ ...audit, entityId: String(id) });
      return toChange(this.d.prepare('SELECT * FROM changes WHERE id = ?').get(id)!);
    });
  }

  async getChange(tenant: string, id: number): Promise<ChangeRecord | null> {
    const r = this.d.prepare('SELECT * FROM changes WHERE tenant = ? AND id = ?').get(tenant, id);
    return r ? toChange(r) : null;
  }

  async listChanges(tenant: string, q: { status?: ChangeStatus; author?: string; limit: number; offset: number }): Promise<{ items: ChangeRecord[]; total: number }> {
    let where = 'tenant = ?';
    const params: unknown[] = [tenant];
    if (q.status !== undefined) {
      where += ' AND status = ?';
      params.push(q.status);
    }
    if (q.author !== undefined) {
      where += ' AND author = ?';
      params.push(q.author);
    }
    const total = Number(this.d.prepare(`SELECT count(*) AS n FROM changes WHERE ${where}`).get(...params)!.n);
    const items = this.d.prepare(`SELECT * FROM changes WHERE ${where} ORDER BY id DESC LIMIT ? OFFSET ?`).all(...params, q.limit, q.offset).map(toChange);
    return { items, total };
  }

  async closeChange(tenant: string, id: number, d: { status: 'rejected' | 'withdrawn'; actor: string; comment: string | null }, audit: AuditInput): Promise<ChangeRecord> {
    return this.tx(() => {
      const at = now();
      const r = this.d
        .prepare("UPDATE changes SET status = ?, decided_by = ?, decided_at = ?, comment = ?, updated_at = ? WHERE tenant = ? AND id = ? AND status = 'open'")
        .run(d.status, d.actor, at, d.comment, at, tenant, id);
      if (Number(r.changes) === 0) {
        if (!this.d.prepare('SELECT 1 FROM changes WHERE tenant = ? AND id = ?').get(tenant, id)) throw new StoreConflict('missing', `no change ${id}`);
        throw new StoreConflict('state', `change ${id} is not open`);
      }
      this.audit(audit);
      return toChange(this.d.prepare('SELECT * FROM changes WHERE id = ?').get(id)!);
    });
  }

  async updateChangeItems(tenant: string, id: number, items: ChangeItem[], audit: AuditInput): Promise<ChangeRecord> {
    return this.tx(() => {
      const r = this.d
        .prepare("UPDATE changes SET items = ?, updated_at = ? WHERE tenant = ? AND id = ? AND status = 'open'")
        .run(JSON.stringify(items), now(), tenant, id);
      if (Number(r.changes) === 0) {
        if (!this.d.prepare('SELECT 1 FROM changes WHERE tenant = ? AND id = ?').get(tenant, id)) throw new StoreConflict('missing', `no change ${id}`);
        throw new StoreConflict('state', `change ${id} is not open`);
      }
      this.audit(audit);
      return toChange(this.d.prepare('SELECT * FROM changes WHERE id = ?').get(id)!);
    });
  }

  // ---- gray releases

  async listGray(tenant?: string): Promise<GrayRecord[]> {
    const rows = tenant === undefined
      ? this.d.prepare('SELECT * FROM gray_releases ORDER BY tenant, route_id').all()
      : this.d.prepare('SELECT * FROM gray_releases WHERE tenant = ? ORDER BY route_id').all(tenant);
    return rows.map(toGray);
  }

  async deleteGray(tenant: string, routeId: string, audit: AuditInput): Promise<boolean> {
    return this.tx(() => {
      const r = this.d.prepare('DELETE FROM gray_releases WHERE tenant = ? AND route_id = ?').run(tenant, routeId);
      if (Number(r.changes) === 0) return false;
      this.d.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'config_revision'").run();
      this.audit(audit);
      return true;
    });
  }

  async listVersions(tenant: string, kind: EntityKind, id: string): Promise<VersionRecord[]> {
    return this.d.prepare('SELECT * FROM versions WHERE tenant = ? AND kind = ? AND id = ? ORDER BY version DESC').all(tenant, kind, id).map(toVersion);
  }

  async getVersion(tenant: string, kind: EntityKind, id: string, version: number): Promise<VersionRecord | null> {
    const r = this.d.prepare('SELECT * FROM versions WHERE tenant = ? AND kind = ? AND id = ? AND version = ?').get(tenant, kind, id, version);
    return r ? toVersion(r) : null;
  }

  async live(): Promise<LiveState> {
    // One read transaction, so the revision matches the entities.
    this.d.exec('BEGIN');
    try {
      const revision = Number(this.d.prepare("SELECT value FROM meta WHERE key = 'config_revision'").get()!.value);
      const entities = this.d
        .prepare('SELECT tenant, kind, id, live, live_version FROM entities WHERE live IS NOT NULL ORDER BY tenant, kind, id')
        .all()
        .map((r) => ({ tenant: String(r.tenant), kind: r.kind as EntityKind, id: String(r.id), content: parse<Record<string, unknown>>(r.live)!, version: Number(r.live_version) }));
      const gray = this.d.prepare('SELECT * FROM gray_releases ORDER BY tenant, route_id').all().map(toGray);
      return { revision, entities, gray };
    } finally {
      this.d.exec('COMMIT');
    }
  }

  async liveRevision(): Promise<number> {
    return Number(this.d.prepare("SELECT value FROM meta WHERE key = 'config_revision'").get()!.value);
  }

  // ---- audit

  async appendAudit(a: AuditInput): Promise<AuditRecord> {
    return this.tx(() => this.audit(a));
  }

  async queryAudit(q: AuditQuery): Promise<AuditRecord[]> {
    let where = '1 = 1';
    const params: unknown[] = [];
    const add = (sql: string, v: unknown) => {
      where += ` AND ${sql}`;
      params.push(v);
    };
    if (q.tenant !== undefined) add('tenant = ?', q.tenant);
    if (q.actor !== undefined) add('actor = ?', q.actor);
    if (q.kind !== undefined) add('kind = ?', q.kind);
    if (q.entityId !== undefined) add('entity_id = ?', q.entityId);
    if (q.since !== undefined) add('at >= ?', q.since);
    if (q.until !== undefined) add('at < ?', q.until);
    if (q.before !== undefined) add('seq < ?', q.before);
    const limit = Math.max(1, Math.min(q.limit ?? 100, 1000));
    return this.d.prepare(`SELECT * FROM audit WHERE ${where} ORDER BY seq DESC LIMIT ?`).all(...params, limit).map(toAudit);
  }
}
