/** The app shell (header with tenant switcher and user menu, navigation) and the screens' routes. */
import { lazy, Suspense, useEffect, type ReactNode } from 'react';
import { ActionIcon, AppShell, Badge, Burger, Center, Divider, Group, Menu, NavLink, ScrollArea, Select, Text, Tooltip, UnstyledButton, useComputedColorScheme, useMantineColorScheme } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import {
  IconArrowsSplit,
  IconCertificate,
  IconChartLine,
  IconGitPullRequest,
  IconHistory,
  IconKey,
  IconLogout,
  IconMoon,
  IconPlug,
  IconRoute,
  IconServer,
  IconUser,
  IconSettings,
  IconStack2,
  IconSun,
  IconTopologyStar3,
  IconUserCircle,
  IconUsers,
  IconUsersGroup,
  IconBuilding,
} from '@tabler/icons-react';
import { Link, Navigate, Route, Routes, useLocation, useNavigate, useParams } from 'react-router';
import { useAuth, useSession } from './session';
import { Loading, RoleBadge } from './components/common';
import { LoginPage } from './pages/Login';
import { EntityListPage } from './pages/EntityList';
import { EntityDetailPage } from './pages/EntityDetail';
import { EntityEditPage } from './pages/EntityEdit';
import { ChangesPage } from './pages/Changes';
import { ChangeDetailPage } from './pages/ChangeDetail';
import { GrayPage } from './pages/Gray';
import { InstancesPage } from './pages/Instances';
import { AuditPage } from './pages/Audit';
import { UsersPage } from './pages/Users';
import { TenantsPage } from './pages/Tenants';
import { MembersPage } from './pages/Members';
import { TenantSettingsPage } from './pages/TenantSettings';
import { TokensPage } from './pages/Tokens';
import { KINDS, type Kind } from './kinds';

const LAST_TENANT = 'gh.tenant';

// The charts library is the largest part of the app: loaded with the overview only.
const OverviewPage = lazy(() => import('./pages/Overview').then((m) => ({ default: m.OverviewPage })));

export function App() {
  const { status } = useAuth();
  const location = useLocation();
  if (status === 'loading') return <Loading label="Starting…" />;
  if (status === 'anonymous') {
    if (location.pathname !== '/login') return <Navigate to={`/login?next=${encodeURIComponent(location.pathname + location.search)}`} replace />;
    return <LoginPage />;
  }
  return (
    <Routes>
      <Route path="/login" element={<AfterLogin />} />
      <Route path="*" element={<Shell />} />
    </Routes>
  );
}

function AfterLogin() {
  const location = useLocation();
  const next = new URLSearchParams(location.search).get('next');
  // Only a path of this app (never another origin).
  return <Navigate to={next && next.startsWith('/') && !next.startsWith('//') ? next : '/'} replace />;
}

function Home() {
  const s = useSession();
  const last = localStorage.getItem(LAST_TENANT);
  const t = s.tenants.find((x) => x.id === last) ?? s.tenants[0];
  if (t) return <Navigate to={`/t/${encodeURIComponent(t.id)}/overview`} replace />;
  if (s.isSuperadmin) return <Navigate to="/tenants" replace />;
  return (
    <Center py={80}>
      <Text c="dimmed">You are not a member of any tenant yet. Ask a tenant admin to add you.</Text>
    </Center>
  );
}

function Shell() {
  const [opened, { toggle, close }] = useDisclosure();
  const location = useLocation();
  useEffect(close, [location.pathname, close]);
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 240, breakpoint: 'sm', collapsed: { mobile: !opened } }} padding="lg">
      <AppShell.Header>
        <Header opened={opened} toggle={toggle} />
      </AppShell.Header>
      <AppShell.Navbar p="xs">
        <AppShell.Section grow component={ScrollArea}>
          <Nav />
        </AppShell.Section>
      </AppShell.Navbar>
      <AppShell.Main>
        <div style={{ maxWidth: 1280, margin: '0 auto' }}>
          <Routes>
            <Route path="/" element={<Home />} />
            <Route path="/t/:tenant/*" element={<TenantRoutes />} />
            <Route path="/instances" element={<InstancesPage />} />
            <Route path="/audit" element={<AuditPage />} />
            <Route path="/users" element={<UsersPage />} />
            <Route path="/tenants" element={<TenantsPage />} />
            <Route path="/tokens" element={<TokensPage />} />
            <Route path="*" element={<NotFound />} />
          </Routes>
        </div>
      </AppShell.Main>
    </AppShell>
  );
}

function NotFound() {
  return (
    <Center py={80}>
      <Text c="dimmed">There is no such page.</Text>
    </Center>
  );
}

function TenantRoutes() {
  const { tenant } = useParams();
  const s = useSession();
  useEffect(() => {
    if (tenant) localStorage.setItem(LAST_TENANT, tenant);
  }, [tenant]);
  if (!tenant || !s.tenants.some((t) => t.id === tenant)) return <NotFound />;
  return (
    <Routes>
      <Route
        path="overview"
        element={
          <Suspense fallback={<Loading />}>
            <OverviewPage />
          </Suspense>
        }
      />
      <Route path="changes" element={<ChangesPage />} />
      <Route path="changes/:id" element={<ChangeDetailPage />} />
      <Route path="gray" element={<GrayPage />} />
      <Route path="members" element={<MembersPage />} />
      <Route path="settings" element={<TenantSettingsPage />} />
      <Route path="audit" element={<AuditPage />} />
      <Route path=":kind" element={<KindGuard>{(k) => <EntityListPage kind={k} />}</KindGuard>} />
      <Route path=":kind/new" element={<KindGuard>{(k) => <EntityEditPage kind={k} />}</KindGuard>} />
      <Route path=":kind/:id" element={<KindGuard>{(k) => <EntityDetailPage kind={k} />}</KindGuard>} />
      <Route path=":kind/:id/edit" element={<KindGuard>{(k) => <EntityEditPage kind={k} />}</KindGuard>} />
      <Route path="*" element={<NotFound />} />
    </Routes>
  );
}

function KindGuard({ children }: { children: (k: Kind) => ReactNode }) {
  const { kind } = useParams();
  if (!kind || !(kind in KINDS)) return <NotFound />;
  return <>{children(kind as Kind)}</>;
}

/** The tenant in the URL, or the last one used. */
export function useTenant(): string {
  const { tenant } = useParams();
  return tenant ?? '';
}

function currentTenant(pathname: string): string | null {
  const m = /^\/t\/([^/]+)/.exec(pathname);
  return m ? decodeURIComponent(m[1]!) : localStorage.getItem(LAST_TENANT);
}

function Header({ opened, toggle }: { opened: boolean; toggle(): void }) {
  const s = useSession();
  const location = useLocation();
  const navigate = useNavigate();
  const tenant = currentTenant(location.pathname);
  const { setColorScheme } = useMantineColorScheme();
  const scheme = useComputedColorScheme('light');
  const role = tenant ? s.roleIn(tenant) : null;
  return (
    <Group h="100%" px="md" justify="space-between" wrap="nowrap">
      <Group gap="sm" wrap="nowrap">
        <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Navigation" />
        <UnstyledButton component={Link} to="/">
          <Group gap={8} wrap="nowrap">
            <img src="/favicon.svg" width={26} height={26} alt="" />
            <Text fw={700} size="lg" visibleFrom="xs">
              Gatehouse
            </Text>
          </Group>
        </UnstyledButton>
        {s.tenants.length > 0 && (
          <Select
            aria-label="Tenant"
            data-testid="tenant-switcher"
            ml="md"
            w={220}
            searchable
            allowDeselect={false}
            value={tenant && s.tenants.some((t) => t.id === tenant) ? tenant : null}
            placeholder="Choose a tenant"
            data={s.tenants.map((t) => ({ value: t.id, label: `${t.name} (${t.id})` }))}
            onChange={(v) => {
              if (!v) return;
              // The same screen in the other tenant, where it is a tenant screen without an entity id.
              const m = /^\/t\/[^/]+\/([^/]+)/.exec(location.pathname);
              const screen = m && (m[1] === 'overview' || m[1] === 'changes' || m[1] === 'gray' || m[1] === 'members' || m[1] === 'settings' || m[1] === 'audit' || m[1]! in KINDS) ? m[1] : 'overview';
              navigate(`/t/${encodeURIComponent(v)}/${screen}`);
            }}
          />
        )}
        {role && <RoleBadge role={role} />}
      </Group>
      <Group gap="xs" wrap="nowrap">
        <Tooltip label={scheme === 'dark' ? 'Light theme' : 'Dark theme'}>
          <ActionIcon variant="default" size="lg" aria-label="Toggle color scheme" onClick={() => setColorScheme(scheme === 'dark' ? 'light' : 'dark')}>
            {scheme === 'dark' ? <IconSun size={18} /> : <IconMoon size={18} />}
          </ActionIcon>
        </Tooltip>
        <Menu position="bottom-end" width={220}>
          <Menu.Target>
            <UnstyledButton aria-label="User menu" data-testid="user-menu">
              <Group gap={6} wrap="nowrap">
                <IconUserCircle size={22} />
                <Text size="sm" fw={500}>
                  {s.me.user.username}
                </Text>
                {s.me.user.superadmin && (
                  <Badge size="xs" color="grape" variant="light">
                    superadmin
                  </Badge>
                )}
              </Group>
            </UnstyledButton>
          </Menu.Target>
          <Menu.Dropdown>
            <Menu.Item component={Link} to="/tokens" leftSection={<IconKey size={16} />}>
              API tokens
            </Menu.Item>
            <Menu.Divider />
            <Menu.Item
              color="red"
              leftSection={<IconLogout size={16} />}
              onClick={() => {
                void s.logout().then(() => navigate('/login'));
              }}
            >
              Log out
            </Menu.Item>
          </Menu.Dropdown>
        </Menu>
      </Group>
    </Group>
  );
}

const KIND_ICONS: Record<Kind, ReactNode> = {
  routes: <IconRoute size={18} />,
  services: <IconStack2 size={18} />,
  upstreams: <IconTopologyStar3 size={18} />,
  consumers: <IconUsers size={18} />,
  certificates: <IconCertificate size={18} />,
  'global-plugins': <IconPlug size={18} />,
};

function Nav() {
  const s = useSession();
  const location = useLocation();
  const tenant = currentTenant(location.pathname);
  const inTenant = tenant && s.tenants.some((t) => t.id === tenant) ? tenant : null;
  const item = (to: string, label: string, icon: ReactNode) => (
    <NavLink key={to} component={Link} to={to} label={label} leftSection={icon} active={location.pathname === to || location.pathname.startsWith(`${to}/`)} />
  );
  const t = inTenant ? `/t/${encodeURIComponent(inTenant)}` : null;
  return (
    <>
      {t && (
        <>
          <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" pt="xs" pb={4}>
            Tenant
          </Text>
          {item(`${t}/overview`, 'Overview', <IconChartLine size={18} />)}
          {(Object.keys(KINDS) as Kind[]).map((k) => item(`${t}/${k}`, KINDS[k].title, KIND_ICONS[k]))}
          <Divider my="xs" />
          <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" pb={4}>
            Release
          </Text>
          {item(`${t}/changes`, 'Changes and review', <IconGitPullRequest size={18} />)}
          {item(`${t}/gray`, 'Gray releases', <IconArrowsSplit size={18} />)}
          <Divider my="xs" />
          <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" pb={4}>
            Team
          </Text>
          {item(`${t}/members`, 'Members', <IconUsersGroup size={18} />)}
          {s.can(inTenant!, 'manage') && item(`${t}/audit`, 'Audit log', <IconHistory size={18} />)}
          {item(`${t}/settings`, 'Tenant settings', <IconSettings size={18} />)}
          <Divider my="xs" />
        </>
      )}
      <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" pb={4}>
        Gateway
      </Text>
      {item('/instances', 'Instances', <IconServer size={18} />)}
      {s.isSuperadmin && (
        <>
          <Divider my="xs" />
          <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" pb={4}>
            Administration
          </Text>
          {item('/tenants', 'Tenants', <IconBuilding size={18} />)}
          {item("/users", "Users", <IconUser size={18} />)}
          {item('/audit', 'Audit log (all)', <IconHistory size={18} />)}
        </>
      )}
    </>
  );
}
