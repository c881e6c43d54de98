/**
 * @module config/settings
 * Static settings (gatehouse.yaml): schema, defaults, GATEHOUSE_* environment overrides and flag overrides.
 * Precedence: flags > environment > file > defaults.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import { StringEnum } from '../model/common.js';
import { validateSchema, type ConfigProblem } from '../model/validate.js';
import { parseRule } from '../core/cidr.js';
import { checkResolverAddresses } from '../discovery/dns.js';

const Port = (def: number, description: string) => Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

export const ProxySettings = Type.Object(
  {
    host: Type.String({ default: '0.0.0.0', description: 'Address the proxy listens on.' }),
    http: Port(9080, 'HTTP port (0 picks a free port; -1 is not allowed).'),
    https: Type.Integer({ minimum: -1, maximum: 65535, default: 9443, description: 'HTTPS port with SNI certificates and HTTP/2; -1 turns it off.' }),
    http2: Type.Boolean({ default: true, description: 'Offer HTTP/2 via ALPN on the HTTPS port.' }),
    fastHttp1: Type.Boolean({
      default: true,
      description:
        "Read plain HTTP/1.1 requests without a body on the HTTP port with the gateway's own reader (see docs/proxying.md); false leaves every request to node's HTTP server.",
    }),
    maxHeaderSize: Type.Integer({ minimum: 1024, maximum: 1048576, default: 16384, description: 'Largest request head in bytes (431 above it).' }),
    maxUrlLength: Type.Integer({ minimum: 64, maximum: 1048576, default: 8192, description: 'Longest request target in bytes (414 above it).' }),
    maxBodySize: Type.Integer({ minimum: 0, default: 16777216, description: 'Default largest request body in bytes (413 above it); 0 for no limit. Routes may override.' }),
    headersTimeout: Type.Integer({ minimum: 100, default: 30000, description: 'Milliseconds a client has to send the request head.' }),
    requestTimeout: Type.Integer({ minimum: 0, default: 300000, description: 'Milliseconds a client has to send the whole request; 0 for none.' }),
    keepAliveTimeout: Type.Integer({ minimum: 0, default: 60000, description: 'Milliseconds an idle client keep-alive connection is kept.' }),
    slashes: StringEnum(['merge', 'keep', 'reject'], {
      default: 'merge',
      description: 'Policy for empty path segments ("//"): merge them into one, keep them, or reject the request with 400.',
    }),
    ambiguousPaths: StringEnum(['reject', 'allow'], {
      default: 'reject',
      description:
        'Paths that backends read differently: ";" path parameters and encoded "/", "\\" or ";" (%2F, %5C, %3B). reject answers 400; allow keeps them inside their segment.',
    }),
    trustedProxies: Type.Array(Type.String(), {
      default: [],
      description: 'Addresses or CIDR ranges of proxies in front of the gateway whose X-Forwarded-* headers are trusted.',
    }),
    realIpHeader: Type.String({ default: 'x-forwarded-for', description: 'Header a trusted proxy puts the client address in.' }),
  },
  { additionalProperties: false, default: {}, description: 'The proxy listeners.' },
);

export const StatusSettings = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', description: 'Address of the status server.' }),
    port: Port(9091, 'Port of /metrics, /healthz and /readyz; 0 picks a free port.'),
    advertiseAddress: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 300,
        description:
          'Cluster mode: where the control plane reads this gateway\'s /metrics, as "host" or "host:port" (the port defaults to status.port). Default: status.host, or for 0.0.0.0 and :: the machine\'s first non-loopback IPv4 address (else a global IPv6 one, else its host name).',
      }),
    ),
  },
  { additionalProperties: false, default: {}, description: 'Gateway status server.' },
);

export const AdminSettings = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', description: 'Address of the admin API and dashboard.' }),
    port: Port(9180, 'Port of the admin API and dashboard.'),
  },
  { additionalProperties: false, default: {}, description: 'Control plane listener.' },
);

export const ConfigProviderSettings = Type.Object(
  {
    type: StringEnum(['file', 'etcd'], { default: 'file', description: 'Where the gateway reads routes: a declarative file or etcd.' }),
    path: Type.Optional(Type.String({ description: 'The declarative file (type file).' })),
    endpoints: Type.Optional(Type.Array(Type.String(), { description: 'etcd client URLs (type etcd), tried in turn: http://10.0.0.1:2379.' })),
    prefix: Type.String({ default: '/gatehouse', description: 'etcd key prefix (type etcd): config under <prefix>/config/, instances under <prefix>/instances/.' }),
    username: Type.Optional(Type.String({ description: 'etcd user (type etcd, when etcd has auth enabled).' })),
    password: Type.Optional(Type.String({ description: 'Password of the etcd user; GATEHOUSE_CONFIG_PROVIDER_PASSWORD keeps it out of the file.' })),
    tls: Type.Optional(
      Type.Object(
        {
          ca: Type.Optional(Type.String({ description: 'PEM file of the CA that signed the etcd server certificates.' })),
          cert: Type.Optional(Type.String({ description: 'PEM file of a client certificate, for etcd with client certificate auth.' })),
          key: Type.Optional(Type.String({ description: 'PEM file of the client certificate\'s key.' })),
          rejectUnauthorized: Type.Boolean({ default: true, description: 'Refuse etcd servers whose certificate does not verify.' }),
        },
        { additionalProperties: false, description: 'TLS to etcd (https endpoints).' },
      ),
    ),
    timeout: Type.Integer({ minimum: 100, maximum: 60000, default: 2000, description: 'Milliseconds one etcd request may take.' }),
  },
  { additionalProperties: false, default: {}, description: 'Config source of the gateway.' },
);

/** PEM files for TLS to a discovery source (read when the source is first used). */
const DiscoveryTls = Type.Object(
  {
    ca: Type.Optional(Type.String({ description: 'PEM file of the CA that signed the server certificates.' })),
    cert: Type.Optional(Type.String({ description: 'PEM file of a client certificate, for servers that require one.' })),
    key: Type.Optional(Type.String({ description: "PEM file of the client certificate's key." })),
    rejectUnauthorized: Type.Boolean({ default: true, description: 'Refuse servers whose certificate does not verify.' }),
  },
  { additionalProperties: false, description: 'TLS to the source (https addresses).' },
);

export const DnsDiscoverySettings = Type.Object(
  {
    resolvers: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        minItems: 1,
        maxItems: 16,
        description: 'DNS servers to ask, as "ip", "ip:port" or "[ipv6]:port", tried in order; default: the system resolvers (/etc/resolv.conf).',
      }),
    ),
    timeout: Type.Integer({ minimum: 10, maximum: 60000, default: 2000, description: 'Milliseconds one query may take before it is sent again (or the lookup fails).' }),
    tries: Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'How many times a query is sent to each resolver before the lookup fails.' }),
    minTtl: Type.Integer({ minimum: 1, maximum: 86400, default: 1, description: 'Seconds an answer is kept at least before the name is looked up again (answers with a smaller TTL, 0 included, are kept this long).' }),
    maxTtl: Type.Integer({ minimum: 1, maximum: 86400, default: 300, description: 'Seconds an answer is kept at most, whatever its TTL.' }),
    retryInterval: Type.Integer({ minimum: 100, maximum: 600000, default: 2000, description: 'Milliseconds before a failed lookup is tried again; doubles with each failure in a row, up to maxTtl.' }),
    family: StringEnum(['ipv4-first', 'ipv4', 'ipv6', 'both'], {
      default: 'ipv4-first',
      description: 'Address records used: ipv4-first (A records, or AAAA when a name has no A record), ipv4 (A only), ipv6 (AAAA only), both.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'The dns discovery source: A/AAAA and SRV lookups.' },
);
export type DnsDiscoverySettings = Static<typeof DnsDiscoverySettings>;

export const EtcdDiscoverySettings = Type.Object(
  {
    endpoints: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description: 'etcd client URLs, tried in turn; default: configProvider.endpoints (with its user, password and TLS) when configProvider.type is etcd.',
      }),
    ),
    prefix: Type.String({ pattern: '^/', default: '/gatehouse/registry', description: 'Registry prefix: instances of service S are the keys <prefix>/S/<instance id>.' }),
    username: Type.Optional(Type.String({ description: 'etcd user, when etcd has auth enabled.' })),
    password: Type.Optional(Type.String({ description: 'Password of the etcd user; GATEHOUSE_DISCOVERY_ETCD_PASSWORD keeps it out of the file.' })),
    tls: Type.Optional(DiscoveryTls),
    timeout: Type.Integer({ minimum: 100, maximum: 60000, default: 2000, description: 'Milliseconds one etcd request may take.' }),
  },
  { additionalProperties: false, default: {}, description: 'The etcd discovery source: a registry prefix services write their instances under.' },
);
export type EtcdDiscoverySettings = Static<typeof EtcdDiscoverySettings>;

export const ConsulClusterSettings = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$',
      description: 'The name upstreams use in discovery.cluster; GATEHOUSE_DISCOVERY_CONSUL_<NAME>_TOKEN (name upper-cased, "-" as "_") sets its token.',
    }),
    address: Type.String({ pattern: '^https?://[^/?#]+/?$', description: 'The Consul HTTP API: http(s)://host:port.' }),
    token: Type.Optional(Type.String({ description: 'ACL token sent with every request; empty for none.' })),
    datacenter: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "Datacenter to ask about; default: the agent's own." })),
    tls: Type.Optional(DiscoveryTls),
    wait: Type.Integer({ minimum: 1000, maximum: 600000, default: 30000, description: 'Milliseconds a blocking query waits for a change before Consul answers anyway.' }),
    timeout: Type.Integer({ minimum: 100, maximum: 60000, default: 5000, description: 'Milliseconds a request may take beyond its blocking wait.' }),
    kvPrefix: Type.String({ default: 'upstreams', description: 'consul-kv: the KV folder holding one folder of nodes per service.' }),
  },
  { additionalProperties: false, description: 'One Consul cluster.' },
);
export type ConsulClusterSettings = Static<typeof ConsulClusterSettings>;

export const DiscoverySettings = Type.Object(
  {
    emptyGracePeriod: Type.Integer({
      minimum: 0,
      maximum: 86_400_000,
      default: 30000,
      description: 'Milliseconds a source must keep answering "no nodes" before an upstream loses the nodes it had; upstreams may override it.',
    }),
    startWait: Type.Integer({
      minimum: 0,
      maximum: 60000,
      default: 3000,
      description: 'Milliseconds a config that needs a new discovery watch waits for its first answer before it is applied (at start and on changes); 0 applies at once.',
    }),
    dns: DnsDiscoverySettings,
    etcd: EtcdDiscoverySettings,
    consul: Type.Array(ConsulClusterSettings, {
      default: [],
      description: 'Consul clusters (consul and consul-kv sources); an upstream names one in discovery.cluster, and the first is used when it names none.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'Service discovery sources that upstreams name in their discovery field (see docs/discovery).' },
);
export type DiscoverySettings = Static<typeof DiscoverySettings>;

/**
 * The Consul cluster an upstream names (discovery.cluster), or the first one configured when it names none.
 * Throws an Error saying what is missing when there is no such cluster.
 */
export function consulCluster(discovery: DiscoverySettings, name?: string): ConsulClusterSettings {
  if (discovery.consul.length === 0) throw new Error('no Consul cluster is configured (settings: discovery.consul)');
  if (name === undefined) return discovery.consul[0]!;
  const found = discovery.consul.find((c) => c.name === name);
  if (!found) throw new Error(`no Consul cluster named "${name}" in discovery.consul (known: ${discovery.consul.map((c) => c.name).join(', ')})`);
  return found;
}

export const AccessLogSettings = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Write one JSON line per request to stdout.' }),
  },
  { additionalProperties: false, default: {}, description: 'Access log.' },
);

export const Settings = Type.Object(
  {
    proxy: ProxySettings,
    status: StatusSettings,
    admin: AdminSettings,
    workers: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })], {
      default: 'auto',
      description: 'Gateway worker processes: a number, or auto for one per core.',
    }),
    dataDir: Type.String({ default: './data', description: 'Directory for local state.' }),
    instanceId: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'Name of this gateway instance; defaults to <hostname>-<proxy port>.' })),
    instanceLabels: Type.Record(Type.String({ pattern: '^[A-Za-z0-9._-]{1,63}$' }), Type.String({ maxLength: 256 }), {
      default: {},
      description: 'Labels this gateway instance reports in the instance list (zone, rack, canary...); GATEHOUSE_INSTANCE_LABELS takes JSON.',
    }),
    configProvider: ConfigProviderSettings,
    accessLog: AccessLogSettings,
    log: Type.Object(
      { level: StringEnum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], { default: 'info', description: 'Log level.' }) },
      { additionalProperties: false, default: {}, description: 'Process log.' },
    ),
    plugins: Type.Object(
      {
        directory: Type.Optional(Type.String({ description: 'Directory of custom plugin modules (*.js, *.mjs), each exporting a plugin definition as default; loaded at start.' })),
      },
      { additionalProperties: false, default: {}, description: 'Plugins beyond the built-in ones.' },
    ),
    shutdownTimeout: Type.Integer({ minimum: 0, default: 30000, description: 'Milliseconds SIGTERM waits for in-flight requests before exiting.' }),
    discovery: DiscoverySettings,
  },
  { additionalProperties: false, description: 'Static settings of a Gatehouse process.' },
);
export type Settings = Static<typeof Settings>;

export class SettingsError extends Error {
  constructor(readonly problems: ConfigProblem[], readonly source: string) {
    super(`invalid settings in ${source}:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}

/** camelCase -> CAMEL_CASE as used in GATEHOUSE_* variables. */
function envName(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

function objectProps(schema: TSchema): Record<string, TSchema> | undefined {
  if (schema.type === 'object' && schema.properties) return schema.properties as Record<string, TSchema>;
  return undefined;
}

function coerce(schema: TSchema, raw: string): unknown {
  const types = new Set<string>();
  const collect = (s: TSchema) => {
    if (s.anyOf) (s.anyOf as TSchema[]).forEach(collect);
    else if (s.const !== undefined) types.add(`const:${s.const}`);
    else if (s.type) types.add(String(s.type));
  };
  collect(schema);
  if (types.has(`const:${raw}`)) return raw;
  if ((types.has('integer') || types.has('number')) && /^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  if (types.has('boolean') && (raw === 'true' || raw === 'false')) return raw === 'true';
  if (types.has('array')) {
    const t = raw.trim();
    if (t.startsWith('[')) {
      try {
        return JSON.parse(t);
      } catch {
        return raw;
      }
    }
    return t === '' ? [] : t.split(',').map((s) => s.trim());
  }
  if (types.has('object')) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

/**
 * Apply GATEHOUSE_* variables: the key path in upper snake case joined by "_"
 * (GATEHOUSE_PROXY_HTTP, GATEHOUSE_INSTANCE_ID, GATEHOUSE_CONFIG_PROVIDER_TYPE). Unknown names are ignored
 * except that they are returned so the caller can warn.
 */
export function applyEnv(target: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const unknown: string[] = [];
  const consulTokens: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('GATEHOUSE_') || value === undefined) continue;
    // Read by the control plane at first start, never part of the settings tree.
    if (name === 'GATEHOUSE_ADMIN_PASSWORD') continue;
    // A Consul cluster's token: the clusters are a list, placed after the list itself may have come from the env.
    if (CONSUL_TOKEN_ENV.test(name)) {
      consulTokens.push([name, value]);
      continue;
    }
    let rest = name.slice('GATEHOUSE_'.length);
    let schema: TSchema = Settings;
    let obj: Record<string, unknown> = target;
    let placed = false;
    while (rest) {
      const props = objectProps(schema);
      if (!props) break;
      const key = Object.keys(props)
        .sort((a, b) => envName(b).length - envName(a).length)
        .find((k) => rest === envName(k) || rest.startsWith(`${envName(k)}_`));
      if (!key) break;
      rest = rest.slice(envName(key).length + 1);
      if (!rest) {
        obj[key] = coerce(props[key]!, value);
        placed = true;
        break;
      }
      const next = obj[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) obj[key] = {};
      obj = obj[key] as Record<string, unknown>;
      schema = props[key]!;
    }
    if (!placed) unknown.push(name);
  }
  for (const [name, value] of consulTokens) if (!applyConsulToken(target, name, value)) unknown.push(name);
  return unknown;
}

const CONSUL_TOKEN_ENV = /^GATEHOUSE_DISCOVERY_CONSUL_(.+)_TOKEN$/;

/** GATEHOUSE_DISCOVERY_CONSUL_<NAME>_TOKEN: the token of the listed cluster whose name, upper-cased with "-" as "_", is NAME. */
function applyConsulToken(target: Record<string, unknown>, name: string, value: string): boolean {
  const wanted = CONSUL_TOKEN_ENV.exec(name)![1]!;
  const discovery = target.discovery as { consul?: unknown } | undefined;
  const clusters = Array.isArray(discovery?.consul) ? (discovery.consul as unknown[]) : [];
  const cluster = clusters.find(
    (c): c is Record<string, unknown> =>
      typeof c === 'object' && c !== null && typeof (c as { name?: unknown }).name === 'string' && (c as { name: string }).name.toUpperCase().replace(/-/g, '_') === wanted,
  );
  if (!cluster) return false;
  cluster.token = value;
  return true;
}

const HOST_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/**
 * "host", "host:port", "[ipv6]" or "[ipv6]:port" (an IPv6 address alone may go without brackets) as host and
 * port (null when not given); a message saying what is wrong otherwise.
 */
export function parseHostPort(text: string): { host: string; port: number | null } | string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || text.includes('/')) return 'must be "host" or "host:port", without a scheme (http://) or a path';
  let host = text;
  let port: string | null = null;
  const bracketed = /^\[([^\]]*)\](?::([^:]*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2] ?? null;
    if (isIP(host) !== 6) return `"[${host}]" is not an IPv6 address`;
  } else if (isIP(text) !== 6) {
    const colon = text.lastIndexOf(':');
    if (colon !== -1) {
      host = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
    if (isIP(host) !== 4 && !HOST_NAME.test(host)) return `"${host}" is not a host name or IP address (write an IPv6 address with a port as "[addr]:port")`;
  }
  if (port !== null && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)) return `the port "${port}" is not a number from 1 to 65535`;
  return { host, port: port === null ? null : Number(port) };
}

/** Rules over the status section the schema cannot say. */
function checkStatusSettings(s: Settings['status']): ConfigProblem[] {
  if (s.advertiseAddress === undefined) return [];
  const parsed = parseHostPort(s.advertiseAddress);
  return typeof parsed === 'string' ? [{ path: 'status.advertiseAddress', message: parsed }] : [];
}

/** Rules over the discovery section the schema cannot say. */
function checkDiscoverySettings(d: DiscoverySettings): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const names = new Set<string>();
  d.consul.forEach((c, i) => {
    const envKey = c.name.toUpperCase().replace(/-/g, '_');
    if (names.has(envKey)) problems.push({ path: `discovery.consul[${i}].name`, message: `duplicates the cluster name "${c.name}"` });
    names.add(envKey);
  });
  if (d.dns.minTtl > d.dns.maxTtl) problems.push({ path: 'discovery.dns.minTtl', message: `must not be above maxTtl (${d.dns.maxTtl})` });
  (d.dns.resolvers ?? []).forEach((r, i) => {
    for (const message of checkResolverAddresses([r])) problems.push({ path: `discovery.dns.resolvers[${i}]`, message });
  });
  return problems;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let obj = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof obj[p] !== 'object' || obj[p] === null) obj[p] = {};
    obj = obj[p] as Record<string, unknown>;
  }
  obj[parts[parts.length - 1]!] = value;
}

export interface LoadSettingsOptions {
  /** Path of gatehouse.yaml; absent means defaults only. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Flag overrides by dotted key path ("proxy.http"). */
  overrides?: Record<string, unknown>;
}

export function loadSettings(opts: LoadSettingsOptions = {}): { settings: Settings; unknownEnv: string[] } {
  let raw: Record<string, unknown> = {};
  const source = opts.file ?? '(defaults)';
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (e) {
      throw new SettingsError([{ path: '(file)', message: `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }], source);
    }
    try {
      raw = (parseYaml(text) as Record<string, unknown>) ?? {};
    } catch (e) {
      throw new SettingsError([{ path: '(file)', message: `is not valid YAML: ${(e as Error).message}` }], source);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new SettingsError([{ path: '(root)', message: 'must be a mapping' }], source);
  }
  const unknownEnv = applyEnv(raw, opts.env ?? process.env);
  for (const [k, v] of Object.entries(opts.overrides ?? {})) if (v !== undefined) setPath(raw, k, v);
  const result = validateSchema<Settings>(Settings, raw);
  if (!result.ok) throw new SettingsError(result.problems, source);
  const settings = result.value;
  const bad = settings.proxy.trustedProxies.flatMap((e, i) => {
    const r = parseRule(e);
    return typeof r === 'string' ? [{ path: `proxy.trustedProxies[${i}]`, message: r }] : [];
  });
  bad.push(...checkStatusSettings(settings.status));
  bad.push(...checkDiscoverySettings(settings.discovery));
  if (bad.length) throw new SettingsError(bad, source);
  settings.instanceId ??= `${hostname()}-${settings.proxy.http}`;
  return { settings, unknownEnv };
}
