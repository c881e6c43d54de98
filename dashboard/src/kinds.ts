/** The config entity kinds: names, id fields, and what their list screens show. */
export type Kind = 'routes' | 'services' | 'upstreams' | 'consumers' | 'certificates' | 'global-plugins';

export interface Column {
  label: string;
  value(content: Record<string, unknown>): string;
}

export interface KindInfo {
  kind: Kind;
  title: string;
  singular: string;
  /** The field of the body that is the entity's id (a global plugin's id is its name, outside the body). */
  idField: string | null;
  blurb: string;
  columns: Column[];
}

const list = (v: unknown) => (Array.isArray(v) ? v.map(String).join(', ') : '');
const plugins = (c: Record<string, unknown>) => Object.keys((c.plugins as Record<string, unknown>) ?? {}).join(', ');

export const KINDS: Record<Kind, KindInfo> = {
  routes: {
    kind: 'routes',
    title: 'Routes',
    singular: 'route',
    idField: 'id',
    blurb: 'Which requests are matched (paths, hosts, methods, conditions) and where they go.',
    columns: [
      { label: 'Name', value: (c) => String(c.name ?? '') },
      { label: 'Paths', value: (c) => list(c.paths) },
      { label: 'Methods', value: (c) => list(c.methods) || 'any' },
      { label: 'Upstream', value: (c) => String(c.upstreamId ?? (c.serviceId ? `service ${c.serviceId}` : c.upstream ? 'inline' : '')) },
      { label: 'Plugins', value: plugins },
    ],
  },
  services: {
    kind: 'services',
    title: 'Services',
    singular: 'service',
    idField: 'id',
    blurb: 'An upstream and plugins shared by several routes.',
    columns: [
      { label: 'Name', value: (c) => String(c.name ?? '') },
      { label: 'Upstream', value: (c) => String(c.upstreamId ?? (c.upstream ? 'inline' : '')) },
      { label: 'Plugins', value: plugins },
    ],
  },
  upstreams: {
    kind: 'upstreams',
    title: 'Upstreams',
    singular: 'upstream',
    idField: 'id',
    blurb: 'The nodes traffic is balanced over, with health checks, retries and timeouts.',
    columns: [
      { label: 'Name', value: (c) => String(c.name ?? '') },
      { label: 'Balancer', value: (c) => String(c.type ?? 'roundrobin') },
      {
        label: 'Nodes',
        value: (c) => {
          const nodes = (c.nodes as Array<{ host: string; port: number }>) ?? [];
          const d = c.discovery as { type?: string; service?: string } | undefined;
          const shown = nodes.slice(0, 3).map((n) => `${n.host}:${n.port}`);
          if (nodes.length > 3) shown.push(`+${nodes.length - 3}`);
          if (d) shown.push(`${d.type ?? 'discovery'}: ${d.service ?? ''}`);
          return shown.join(', ');
        },
      },
    ],
  },
  consumers: {
    kind: 'consumers',
    title: 'Consumers',
    singular: 'consumer',
    idField: 'username',
    blurb: 'API clients and their credentials (secrets are write-only).',
    columns: [
      { label: 'Group', value: (c) => String(c.group ?? '') },
      { label: 'Credentials', value: (c) => Object.keys((c.credentials as Record<string, unknown>) ?? {}).join(', ') },
      { label: 'Plugins', value: plugins },
    ],
  },
  certificates: {
    kind: 'certificates',
    title: 'Certificates',
    singular: 'certificate',
    idField: 'id',
    blurb: 'TLS certificates chosen by SNI on the HTTPS port (the private key is write-only).',
    columns: [{ label: 'SNIs', value: (c) => list(c.snis) }],
  },
  'global-plugins': {
    kind: 'global-plugins',
    title: 'Global plugins',
    singular: 'global plugin',
    idField: null,
    blurb: "Plugins that run on every route of this tenant, below a route's or service's own config of the same plugin.",
    columns: [{ label: 'Config', value: (c) => Object.keys(c).join(', ') || 'defaults' }],
  },
};

export const KIND_LIST: Kind[] = ['routes', 'services', 'upstreams', 'consumers', 'certificates', 'global-plugins'];

export function isKind(k: string | undefined): k is Kind {
  return k !== undefined && k in KINDS;
}
