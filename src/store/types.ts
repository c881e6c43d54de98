/**
 * @module store/types
 * The control plane's store: tenants, users and their roles, API tokens and sessions, the config entities with
 * their drafts and published versions, and the audit trail. One interface, several backends (SQLite embedded;
 * PostgreSQL and etcd later), all held to the same conformance suite (conformance.ts).
 *
 * Every mutation of config takes the audit record that describes it and writes both in one transaction: there
 * is no change without its trace, and no trace of a change that did not happen.
 */

export const ENTITY_KINDS = ['routes', 'services', 'upstreams', 'consumers', 'certificates', 'global-plugins'] as const;
export type EntityKind = (typeof ENTITY_KINDS)[number];

export const ROLES = ['admin', 'editor', 'reviewer', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export interface Tenant {
  id: string;
  name: string;
  /** Changes need a reviewer's approval before they go live. */
  reviewRequired: boolean;
  /** Roles that may publish directly with `skipReview` when review is required (every such publish is audited as such). */
  skipReviewRoles: Role[];
  createdAt: string;
}

export interface User {
  id: string;
  username: string;
  /** scrypt hash in PHC-like form (see control/passwords.ts); never leaves the control plane. */
  passwordHash: string;
  superadmin: boolean;
  disabled: boolean;
  createdAt: string;
}

export interface Membership {
  tenant: string;
  userId: string;
  role: Role;
}

export interface ApiToken {
  id: string;
  userId: string;
  name: string;
  /** SHA-256 of the token; the token itself is shown once and never stored. */
  hash: string;
  /** A token may be narrowed to one tenant and a role no higher than the user's there. */
  tenant: string | null;
  role: Role | null;
  expiresAt: string | null;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface Session {
  /** SHA-256 of the cookie value. */
  hash: string;
  userId: string;
  csrfToken: string;
  expiresAt: string;
  createdAt: string;
}

/** A config entity: its editable draft and what is live. */
export interface EntityRecord {
  tenant: string;
  kind: EntityKind;
  id: string;
  /** The draft (the entity as the declarative file shapes it), or null when its deletion is drafted. */
  draft: Record<string, unknown> | null;
  /** Bumped by every write of the draft: the ETag. */
  revision: number;
  /** The draft differs from what is live (a publish would change something). */
  pending: boolean;
  /** The live content, or null when never published or deleted. */
  live: Record<string, unknown> | null;
  /** The version number of the live content (0: none yet). */
  liveVersion: number;
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

export interface VersionRecord {
  tenant: string;
  kind: EntityKind;
  id: string;
  version: number;
  /** The content that went live, or null for a published deletion. */
  content: Record<string, unknown> | null;
  /** Who wrote the draft that became this version, and who published it. */
  author: string;
  publishedBy: string;
  /** Who approved the change that published it (null: published directly). */
  reviewedBy: string | null;
  /** The change request it came from (null: published directly). */
  changeId: number | null;
  /** 'live': it went live when published; 'gray': it was published to chosen gateway instances only. */
  channel: 'live' | 'gray';
  createdAt: string;
  note: string | null;
}

/**
 * One step of a change request, applied atomically with the others of its change:
 * - publish: make `content` the live state of the entity (null: delete it), if its live version is still `baseVersion`;
 * - gray: serve `content` on the named gateway instances only, as a new version (or as existing `version`);
 * - promote: make the route's active gray release the live version everywhere.
 */
export type ChangeItem =
  | { op: 'publish'; kind: EntityKind; id: string; content: Record<string, unknown> | null; baseVersion: number; note?: string }
  | { op: 'gray'; kind: 'routes'; id: string; content: Record<string, unknown>; baseVersion: number; instances: string[]; version: number | null; note?: string }
  | { op: 'promote'; kind: 'routes'; id: string; grayVersion: number; baseVersion: number };

export const CHANGE_STATUSES = ['open', 'approved', 'rejected', 'withdrawn'] as const;
export type ChangeStatus = (typeof CHANGE_STATUSES)[number];

/** A change request: one or more items reviewed and applied together or not at all. */
export interface ChangeRecord {
  tenant: string;
  id: number;
  title: string;
  description: string | null;
  status: ChangeStatus;
  author: string;
  createdAt: string;
  updatedAt: string;
  /** Who approved, rejected or withdrew it, when, and what they said. */
  decidedBy: string | null;
  decidedAt: string | null;
  comment: string | null;
  items: ChangeItem[];
  /** The versions its approval created. */
  versions: Array<{ kind: EntityKind; id: string; version: number }>;
}

/** A route version served by chosen gateway instances only; the others serve the live version. */
export interface GrayRecord {
  tenant: string;
  routeId: string;
  version: number;
  /** The live version when it started: promote is refused once the live version has moved on. */
  baseVersion: number;
  content: Record<string, unknown>;
  instances: string[];
  createdBy: string;
  createdAt: string;
  changeId: number | null;
}

/** How a set of change items is applied (directly, or by approving change `changeId`). */
export interface ApplyOptions {
  actor: string;
  /** Who wrote the content (the change's author; the actor when published directly). */
  author: string;
  /** The reviewer, when applied by approving a change. */
  reviewer?: string;
  changeId?: number;
  comment?: string;
  note?: string;
  /** One record per item at least; all written in the same transaction. */
  audits: AuditInput[];
}

/** What an audit record says about one mutating call. */
export interface AuditInput {
  actor: string;
  source: string;
  tenant: string | null;
  kind: string;
  entityId: string | null;
  action: string;
  /** Secrets are redacted by the caller before they get here. */
  before: unknown;
  after: unknown;
}

export interface AuditRecord extends AuditInput {
  seq: number;
  at: string;
}

export interface AuditQuery {
  tenant?: string;
  actor?: string;
  kind?: string;
  entityId?: string;
  since?: string;
  until?: string;
  limit?: number;
  /** Records with seq below this (paging backwards from the newest). */
  before?: number;
}

export interface ListOptions {
  limit: number;
  offset: number;
  /** Only ids (or names, for entities that have one) containing this text. */
  search?: string;
  /** Only entities whose draft has this label (`labels: { key: value }`). */
  label?: { key: string; value?: string };
}

/** A write was refused because the caller's view is stale or the entity's state does not allow it. */
export class StoreConflict extends Error {
  constructor(
    readonly reason: 'revision' | 'exists' | 'missing' | 'nothing-to-publish' | 'base' | 'state',
    message: string,
    /** For 'base': which entity moved on, from which version to which. */
    readonly details?: Array<Record<string, unknown>>,
  ) {
    super(message);
    this.name = 'StoreConflict';
  }
}

export interface DraftWrite {
  /** The new draft, or null to draft the deletion. */
  draft: Record<string, unknown> | null;
  /** Refuse unless the draft is at this revision (If-Match); undefined: no check. */
  expectedRevision?: number;
  /** Refuse if the entity exists (create). */
  create?: boolean;
  actor: string;
  audit: AuditInput;
}

/** Every live entity of every tenant, for the config the gateways run, and the revision it is at. */
export interface LiveState {
  revision: number;
  entities: Array<{ tenant: string; kind: EntityKind; id: string; content: Record<string, unknown>; version: number }>;
  /** Active gray releases (route versions served by chosen instances only). */
  gray: GrayRecord[];
}

export interface Store {
  /** Create or migrate the schema. */
  init(): Promise<void>;
  close(): Promise<void>;

  createTenant(t: Omit<Tenant, 'createdAt'>, audit: AuditInput): Promise<Tenant>;
  updateTenant(id: string, patch: Partial<Pick<Tenant, 'name' | 'reviewRequired' | 'skipReviewRoles'>>, audit: AuditInput): Promise<Tenant>;
  getTenant(id: string): Promise<Tenant | null>;
  listTenants(): Promise<Tenant[]>;

  createUser(u: Omit<User, 'createdAt'>, audit: AuditInput): Promise<User>;
  getUserById(id: string): Promise<User | null>;
  getUserByName(username: string): Promise<User | null>;
  listUsers(): Promise<User[]>;
  setPassword(userId: string, passwordHash: string, audit: AuditInput): Promise<void>;

  /** Set (or with null, remove) a user's role in a tenant. */
  setMembership(tenant: string, userId: string, role: Role | null, audit: AuditInput): Promise<void>;
  getMembership(tenant: string, userId: string): Promise<Membership | null>;
  listMembers(tenant: string): Promise<Membership[]>;
  listMemberships(userId: string): Promise<Membership[]>;

  createToken(t: Omit<ApiToken, 'createdAt' | 'lastUsedAt'>, audit: AuditInput): Promise<ApiToken>;
  getTokenByHash(hash: string): Promise<ApiToken | null>;
  listTokens(userId: string): Promise<ApiToken[]>;
  deleteToken(id: string, audit: AuditInput): Promise<boolean>;
  touchToken(id: string, at: string): Promise<void>;

  createSession(s: Omit<Session, 'createdAt'>): Promise<void>;
  getSession(hash: string): Promise<Session | null>;
  deleteSession(hash: string): Promise<void>;
  deleteExpiredSessions(now: string): Promise<number>;

  getEntity(tenant: string, kind: EntityKind, id: string): Promise<EntityRecord | null>;
  listEntities(tenant: string, kind: EntityKind, opts: ListOptions): Promise<{ items: EntityRecord[]; total: number }>;
  /** Write the draft (create, update or delete), checked against expectedRevision. */
  writeDraft(tenant: string, kind: EntityKind, id: string, w: DraftWrite): Promise<EntityRecord>;
  /** Make the draft live as a new version (a drafted deletion removes the live entity). */
  publish(tenant: string, kind: EntityKind, id: string, p: { actor: string; note?: string; audit: AuditInput }): Promise<{ entity: EntityRecord | null; version: VersionRecord }>;
  /**
   * Apply change items in one transaction: every publish/promote item's base version must still be the live
   * version (else StoreConflict 'base' naming them, and nothing changes); with changeId, the change must be open
   * and becomes approved.
   */
  apply(tenant: string, items: ChangeItem[], o: ApplyOptions): Promise<{ versions: VersionRecord[]; change: ChangeRecord | null }>;
  listVersions(tenant: string, kind: EntityKind, id: string): Promise<VersionRecord[]>;
  getVersion(tenant: string, kind: EntityKind, id: string, version: number): Promise<VersionRecord | null>;
  /** Every live entity, and the config revision (bumped by every publish). */
  live(): Promise<LiveState>;
  /** The config revision alone, cheap: callers poll it to learn of publishes made by other processes. */
  liveRevision(): Promise<number>;

  createChange(c: Pick<ChangeRecord, 'tenant' | 'title' | 'description' | 'author' | 'items'>, audit: AuditInput): Promise<ChangeRecord>;
  getChange(tenant: string, id: number): Promise<ChangeRecord | null>;
  listChanges(tenant: string, q: { status?: ChangeStatus; author?: string; limit: number; offset: number }): Promise<{ items: ChangeRecord[]; total: number }>;
  /** Close an open change without applying it (rejected, withdrawn); StoreConflict 'state' when it is not open. */
  closeChange(tenant: string, id: number, d: { status: 'rejected' | 'withdrawn'; actor: string; comment: string | null }, audit: AuditInput): Promise<ChangeRecord>;
  /** Replace an open change's items (a rebase onto the current live versions). */
  updateChangeItems(tenant: string, id: number, items: ChangeItem[], audit: AuditInput): Promise<ChangeRecord>;

  listGray(tenant?: string): Promise<GrayRecord[]>;
  /** Stop a gray release (its instances serve the live version again); false when none was active. */
  deleteGray(tenant: string, routeId: string, audit: AuditInput): Promise<boolean>;

  appendAudit(a: AuditInput): Promise<AuditRecord>;
  queryAudit(q: AuditQuery): Promise<AuditRecord[]>;
}
