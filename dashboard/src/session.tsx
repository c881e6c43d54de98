/**
 * Who is signed in: the user, the tenants they can see with their role in each, and what that role lets them
 * do. Screens ask `can(tenant, 'write')` and the like to hide what the API would refuse anyway.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { ApiError, get, post, setCsrfToken, setUnauthorizedHandler, V1, type Me, type Role, type Schemas, type Tenant } from './api';

export type Permission = 'read' | 'write' | 'publish' | 'review' | 'manage';

/** The same table as the admin API's: what each role may do in its tenant. */
const ROLE_PERMISSIONS: Record<Role, Permission[]> = {
  admin: ['read', 'write', 'publish', 'review', 'manage'],
  editor: ['read', 'write', 'publish'],
  reviewer: ['read', 'review'],
  viewer: ['read'],
};

export interface Session {
  me: Me;
  tenants: Tenant[];
  schemas: Schemas | null;
  roleIn(tenant: string): Role | null;
  can(tenant: string, perm: Permission): boolean;
  isSuperadmin: boolean;
  reloadTenants(): Promise<void>;
  logout(): Promise<void>;
}

interface AuthState {
  status: 'loading' | 'anonymous' | 'signed-in';
  session: Session | null;
  login(username: string, password: string): Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

export function useAuth(): AuthState {
  const a = useContext(AuthContext);
  if (!a) throw new Error('useAuth outside AuthProvider');
  return a;
}

export function useSession(): Session {
  const s = useAuth().session;
  if (!s) throw new Error('useSession without a session');
  return s;
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [status, setStatus] = useState<AuthState['status']>('loading');
  const [me, setMe] = useState<Me | null>(null);
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const [schemas, setSchemas] = useState<Schemas | null>(null);

  const signOutLocally = useCallback(() => {
    setCsrfToken(null);
    setMe(null);
    setTenants([]);
    setStatus('anonymous');
  }, []);

  const load = useCallback(async () => {
    try {
      const m = await get<Me>(`${V1}/me`);
      // The CSRF token comes with the session: from the login answer, or from /me after a reload.
      if (m.csrfToken) setCsrfToken(m.csrfToken);
      const [t, s] = await Promise.all([get<{ items: Tenant[] }>(`${V1}/tenants`), get<Schemas>(`${V1}/schemas`).catch(() => null)]);
      setMe(m);
      setTenants(t.items);
      setSchemas(s);
      setStatus('signed-in');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) signOutLocally();
      else {
        setStatus('anonymous');
        throw e;
      }
    }
  }, [signOutLocally]);

  useEffect(() => {
    setUnauthorizedHandler(signOutLocally);
    void load().catch(() => {});
    return () => setUnauthorizedHandler(null);
  }, [load, signOutLocally]);

  const login = useCallback(
    async (username: string, password: string) => {
      const r = await post<{ csrfToken: string }>(`${V1}/login`, { username, password });
      setCsrfToken(r.csrfToken);
      await load();
    },
    [load],
  );

  const session = useMemo<Session | null>(() => {
    if (!me) return null;
    const roleIn = (tenant: string): Role | null => {
      if (me.token?.tenant && me.token.tenant !== tenant) return null;
      if (me.user.superadmin) return 'admin';
      return me.memberships.find((m) => m.tenant === tenant)?.role ?? null;
    };
    return {
      me,
      tenants,
      schemas,
      roleIn,
      can: (tenant, perm) => {
        const r = roleIn(tenant);
        return r !== null && ROLE_PERMISSIONS[r].includes(perm);
      },
      isSuperadmin: me.user.superadmin && (me.token === null || (me.token.tenant === null && me.token.role === null)),
      reloadTenants: async () => setTenants((await get<{ items: Tenant[] }>(`${V1}/tenants`)).items),
      logout: async () => {
        try {
          await post(`${V1}/logout`);
        } finally {
          signOutLocally();
        }
      },
    };
  }, [me, tenants, schemas, signOutLocally]);

  const value = useMemo(() => ({ status, session, login }), [status, session, login]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
