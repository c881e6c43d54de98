/**
 * Forms generated from the JSON schemas the admin API validates with (GET /api/v1/schemas): entity fields,
 * and each plugin's config or consumer credential by its own schema, so a new plugin gets a form without
 * dashboard code. Field problems from the API are shown at the field whose path they name.
 */
import { createContext, useContext, useState, type ReactNode } from 'react';
import {
  ActionIcon,
  Badge,
  Button,
  Card,
  Fieldset,
  Group,
  Input,
  MultiSelect,
  NumberInput,
  PasswordInput,
  SegmentedControl,
  Select,
  SimpleGrid,
  Stack,
  Switch,
  TagsInput,
  Text,
  Textarea,
  TextInput,
  Tooltip,
} from '@mantine/core';
import { IconPlus, IconTrash } from '@tabler/icons-react';
import type { JsonSchema, PluginInfo } from '../api';

export type Scope = 'route' | 'service' | 'consumer' | 'global';

interface FormContext {
  errors: Record<string, string>;
  plugins: PluginInfo[];
  scope: Scope;
  readOnly: boolean;
}

const Ctx = createContext<FormContext>({ errors: {}, plugins: [], scope: 'route', readOnly: false });

type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const LABELS: Record<string, string> = { desc: 'Description', snis: 'SNIs', sni: 'SNI', ttl: 'TTL', url: 'URL', uri: 'URI', ip: 'IP' };

/** "upstreamId" -> "Upstream id", "hideCredentials" -> "Hide credentials". */
export function humanize(key: string): string {
  if (LABELS[key]) return LABELS[key]!;
  const words = key
    .replace(/[-_]/g, ' ')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const join = (base: string, key: string) => (base ? `${base}.${key}` : key);

function constOptions(s: JsonSchema): string[] | null {
  if (Array.isArray(s.enum)) return s.enum.map(String);
  if (Array.isArray(s.anyOf) && s.anyOf.length && s.anyOf.every((v) => v.const !== undefined)) return s.anyOf.map((v) => String(v.const));
  return null;
}

/** Errors at this path or below it (for a section that does not render every field). */
function errorsUnder(errors: Record<string, string>, path: string): string[] {
  return Object.entries(errors)
    .filter(([p]) => p === path || p.startsWith(`${path}.`) || p.startsWith(`${path}[`))
    .map(([p, m]) => (p === path ? m : `${p.slice(path.length).replace(/^\./, '')}: ${m}`));
}

function describe(s: JsonSchema): string | undefined {
  const parts: string[] = [];
  if (s.description) parts.push(s.description);
  if (s.default !== undefined && typeof s.default !== 'object') parts.push(`Default: ${String(s.default)}.`);
  return parts.join(' ') || undefined;
}

export interface SchemaFormProps {
  schema: JsonSchema;
  value: Obj;
  onChange(v: Obj): void;
  errors?: Record<string, string>;
  plugins?: PluginInfo[];
  scope?: Scope;
  /** Top-level fields not shown (the id, edited on its own). */
  hide?: string[];
  readOnly?: boolean;
}

/** The fields of an object schema, top level of a form. */
export function SchemaForm({ schema, value, onChange, errors = {}, plugins = [], scope = 'route', hide = [], readOnly = false }: SchemaFormProps) {
  return (
    <Ctx.Provider value={{ errors, plugins, scope, readOnly }}>
      <ObjectFields schema={schema} value={value} onChange={onChange} path="" hide={hide} />
    </Ctx.Provider>
  );
}

function ObjectFields({ schema, value, onChange, path, hide = [] }: { schema: JsonSchema; value: Obj; onChange(v: Obj): void; path: string; hide?: string[] }) {
  const props = Object.entries(schema.properties ?? {}).filter(([k]) => !hide.includes(k));
  const required = new Set(schema.required ?? []);
  // Simple fields first, then sections, keeping the schema's order within each.
  const simple = props.filter(([, s]) => !isSection(s));
  const sections = props.filter(([, s]) => isSection(s));
  const set = (k: string, v: unknown) => {
    const next = { ...value };
    if (v === undefined) delete next[k];
    else next[k] = v;
    onChange(next);
  };
  const field = ([k, s]: [string, JsonSchema]) => <Field key={k} name={k} schema={s} path={join(path, k)} value={value[k]} onChange={(v) => set(k, v)} required={required.has(k) && s.default === undefined} />;
  // Short fields two by two on wide screens; long text, lists of objects and sections across the width.
  const wide = (s: JsonSchema) => s.type === 'string' && multiline(s);
  return (
    <Stack gap="sm">
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md" verticalSpacing="sm">
        {simple.filter(([, s]) => !wide(s)).map(field)}
      </SimpleGrid>
      {simple.filter(([, s]) => wide(s)).map(field)}
      {sections.map(field)}
    </Stack>
  );
}

/** Long text: PEM certificates and keys, bodies and templates. */
function multiline(s: JsonSchema): boolean {
  return (s.maxLength ?? 0) > 8192 || /\bPEM\b/.test(s.description ?? '');
}

function isSection(s: JsonSchema): boolean {
  if (s.type === 'object') return true;
  if (s.type === 'array' && s.items && (s.items.type === 'object' || s.items.anyOf)) return true;
  return false;
}

interface FieldProps {
  name: string;
  schema: JsonSchema;
  path: string;
  value: unknown;
  onChange(v: unknown): void;
  required?: boolean;
  label?: ReactNode;
}

export function Field(p: FieldProps) {
  const ctx = useContext(Ctx);
  const { schema: s, name, path, value, onChange, required } = p;
  const label = p.label ?? humanize(name);
  const error = ctx.errors[path];
  const description = describe(s);
  const common = { label, description, error, required, disabled: ctx.readOnly, 'data-path': path };

  if ((name === 'plugins' || name === 'credentials') && s.type === 'object' && s.patternProperties && !s.properties) {
    return <PluginsEditor mode={name === 'credentials' ? 'credential' : 'config'} label={label} description={s.description} path={path} value={isObj(value) ? value : {}} onChange={(v) => onChange(Object.keys(v).length ? v : undefined)} />;
  }

  const options = constOptions(s);
  if (options) {
    return (
      <Select
        {...common}
        data={options}
        value={value === undefined ? null : String(value)}
        placeholder={s.default !== undefined ? String(s.default) : 'Choose'}
        clearable={!required}
        onChange={(v) => onChange(v === null ? undefined : (s.anyOf?.find((x) => String(x.const) === v)?.const ?? (s.enum?.find((x) => String(x) === v) as unknown) ?? v))}
      />
    );
  }
  if (s.anyOf) return <UnionField {...p} />;

  switch (s.type) {
    case 'string': {
      const str = typeof value === 'string' ? value : '';
      const set = (v: string) => onChange(v === '' ? undefined : v);
      // PEM keys are many lines: a text area even when write-only ("[redacted]" keeps the stored value).
      if (multiline(s)) return <Textarea {...common} value={str} onChange={(e) => set(e.currentTarget.value)} autosize minRows={3} maxRows={14} styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }} />;
      if (s.writeOnly) return <PasswordInput {...common} value={str} onChange={(e) => set(e.currentTarget.value)} autoComplete="new-password" />;
      return <TextInput {...common} value={str} onChange={(e) => set(e.currentTarget.value)} placeholder={s.default !== undefined ? String(s.default) : undefined} />;
    }
    case 'integer':
    case 'number':
      return (
        <NumberInput
          {...common}
          value={typeof value === 'number' ? value : ''}
          onChange={(v) => onChange(v === '' || v === undefined ? undefined : Number(v))}
          allowDecimal={s.type === 'number'}
          min={s.minimum}
          max={s.maximum}
          placeholder={s.default !== undefined ? String(s.default) : undefined}
        />
      );
    case 'boolean':
      return <Switch label={label} description={description} error={error} disabled={ctx.readOnly} data-path={path} checked={typeof value === 'boolean' ? value : s.default === true} onChange={(e) => onChange(e.currentTarget.checked)} />;
    case 'array':
      return <ArrayField {...p} />;
    case 'object':
      if (s.properties) return <ObjectSection {...p} />;
      if (s.patternProperties || s.additionalProperties) return <MapField {...p} />;
      return <JsonField {...p} />;
    default:
      return <JsonField {...p} />;
  }
}

/** An object: a fieldset; an optional one stays folded away until added. */
function ObjectSection({ schema: s, name, path, value, onChange, required, label }: FieldProps) {
  const ctx = useContext(Ctx);
  const present = isObj(value);
  const below = errorsUnder(ctx.errors, path);
  if (!present && !required) {
    return (
      <Group justify="space-between" wrap="nowrap" p="xs" style={{ border: '1px dashed var(--mantine-color-default-border)', borderRadius: 'var(--mantine-radius-sm)' }}>
        <div>
          <Text size="sm" fw={500}>
            {label ?? humanize(name)}
          </Text>
          {s.description && (
            <Text size="xs" c="dimmed">
              {s.description}
            </Text>
          )}
          {below.map((m) => (
            <Text size="xs" c="red" key={m}>
              {m}
            </Text>
          ))}
        </div>
        {!ctx.readOnly && (
          <Button size="xs" variant="light" leftSection={<IconPlus size={14} />} onClick={() => onChange({})}>
            Add
          </Button>
        )}
      </Group>
    );
  }
  return (
    <Fieldset
      data-path={path}
      legend={
        <Group gap="xs">
          <Text size="sm" fw={600}>
            {label ?? humanize(name)}
          </Text>
          {!required && !ctx.readOnly && (
            <Tooltip label="Remove this section">
              <ActionIcon size="sm" variant="subtle" color="red" aria-label={`Remove ${humanize(name)}`} onClick={() => onChange(undefined)}>
                <IconTrash size={14} />
              </ActionIcon>
            </Tooltip>
          )}
        </Group>
      }
    >
      {s.description && (
        <Text size="xs" c="dimmed" mb="xs">
          {s.description}
        </Text>
      )}
      {ctx.errors[path] && (
        <Text size="xs" c="red" mb="xs">
          {ctx.errors[path]}
        </Text>
      )}
      <ObjectFields schema={s} value={present ? value : {}} onChange={onChange} path={path} />
    </Fieldset>
  );
}

function ArrayField(p: FieldProps) {
  const ctx = useContext(Ctx);
  const { schema: s, name, path, value, onChange, required } = p;
  const items = s.items ?? {};
  const arr = Array.isArray(value) ? value : [];
  const label = p.label ?? humanize(name);
  const itemErrors = errorsUnder(ctx.errors, path).filter((m) => m !== ctx.errors[path]);
  const error = [ctx.errors[path], ...itemErrors].filter(Boolean).join('; ') || undefined;
  const options = constOptions(items);
  const common = { label, description: describe(s), error, required, disabled: ctx.readOnly, 'data-path': path };
  if (options) {
    return <MultiSelect {...common} data={options} value={arr.map(String)} onChange={(v) => onChange(v.length ? v : undefined)} clearable searchable />;
  }
  if (items.type === 'string' || items.type === 'integer' || items.type === 'number') {
    const numeric = items.type !== 'string';
    return (
      <TagsInput
        {...common}
        value={arr.map(String)}
        placeholder={arr.length ? undefined : 'Type a value and press Enter'}
        onChange={(v) => onChange(v.length ? v.map((x) => (numeric && x.trim() !== '' && !Number.isNaN(Number(x)) ? Number(x) : x)) : undefined)}
        acceptValueOnBlur
        splitChars={items.type === 'string' && !items.pattern?.includes(',') ? [','] : undefined}
      />
    );
  }
  if (items.type === 'object' || items.anyOf) {
    const set = (i: number, v: unknown) => {
      const next = [...arr];
      if (v === undefined) next.splice(i, 1);
      else next[i] = v;
      onChange(next.length ? next : undefined);
    };
    return (
      <Fieldset
        data-path={path}
        legend={
          <Text size="sm" fw={600}>
            {label}
            {required ? ' *' : ''}
          </Text>
        }
      >
        {s.description && (
          <Text size="xs" c="dimmed" mb="xs">
            {s.description}
          </Text>
        )}
        {ctx.errors[path] && (
          <Text size="xs" c="red" mb="xs">
            {ctx.errors[path]}
          </Text>
        )}
        <Stack gap="xs">
          {arr.map((item, i) => (
            <Card key={i} withBorder padding="sm" radius="sm">
              <Group justify="space-between" mb={4}>
                <Badge variant="light" size="sm">
                  {humanize(name).replace(/s$/, '')} {i + 1}
                </Badge>
                {!ctx.readOnly && (
                  <ActionIcon size="sm" variant="subtle" color="red" aria-label={`Remove ${humanize(name).replace(/s$/, '').toLowerCase()} ${i + 1}`} onClick={() => set(i, undefined)}>
                    <IconTrash size={14} />
                  </ActionIcon>
                )}
              </Group>
              {items.type === 'object' && items.properties ? (
                <ObjectFields schema={items} value={isObj(item) ? item : {}} onChange={(v) => set(i, v)} path={`${path}[${i}]`} />
              ) : (
                <Field name={`${name}[${i}]`} label={`Item ${i + 1}`} schema={items} path={`${path}[${i}]`} value={item} onChange={(v) => set(i, v)} />
              )}
            </Card>
          ))}
          {!ctx.readOnly && (
            <Button
              variant="light"
              size="xs"
              leftSection={<IconPlus size={14} />}
              onClick={() => onChange([...arr, items.type === 'object' ? {} : undefined].filter((x) => x !== undefined))}
              style={{ alignSelf: 'flex-start' }}
            >
              Add {humanize(name).replace(/s$/, '').toLowerCase()}
            </Button>
          )}
        </Stack>
      </Fieldset>
    );
  }
  return <JsonField {...p} />;
}

/** A free-form map (labels, headers, metadata): key and value rows. */
function MapField({ schema: s, name, path, value, onChange, label }: FieldProps) {
  const ctx = useContext(Ctx);
  const obj = isObj(value) ? value : {};
  const [rows, setRows] = useState<Array<[string, string]>>(() => Object.entries(obj).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  const valueSchema = Object.values(s.patternProperties ?? {})[0] ?? (isObj(s.additionalProperties) ? (s.additionalProperties as JsonSchema) : {});
  const stringsOnly = valueSchema.type === 'string';
  const emit = (next: Array<[string, string]>) => {
    setRows(next);
    const out: Obj = {};
    for (const [k, v] of next) {
      if (!k) continue;
      if (stringsOnly) out[k] = v;
      else {
        // Values of any type: numbers, booleans and JSON where they parse, else the text.
        try {
          out[k] = v.trim() === '' ? '' : JSON.parse(v);
        } catch {
          out[k] = v;
        }
      }
    }
    onChange(Object.keys(out).length ? out : undefined);
  };
  return (
    <Input.Wrapper label={label ?? humanize(name)} description={s.description} error={errorsUnder(ctx.errors, path).join('; ') || undefined} data-path={path}>
      <Stack gap={6} mt={4}>
        {rows.map(([k, v], i) => (
          <Group key={i} gap="xs" wrap="nowrap">
            <TextInput aria-label={`${humanize(name)} key ${i + 1}`} placeholder="key" value={k} disabled={ctx.readOnly} onChange={(e) => emit(rows.map((r, j) => (j === i ? [e.currentTarget.value, r[1]] : r)))} style={{ flex: 1 }} />
            <TextInput aria-label={`${humanize(name)} value ${i + 1}`} placeholder="value" value={v} disabled={ctx.readOnly} onChange={(e) => emit(rows.map((r, j) => (j === i ? [r[0], e.currentTarget.value] : r)))} style={{ flex: 2 }} />
            {!ctx.readOnly && (
              <ActionIcon variant="subtle" color="red" aria-label={`Remove ${humanize(name)} entry ${i + 1}`} onClick={() => emit(rows.filter((_, j) => j !== i))}>
                <IconTrash size={14} />
              </ActionIcon>
            )}
          </Group>
        ))}
        {!ctx.readOnly && (
          <Button variant="subtle" size="compact-xs" leftSection={<IconPlus size={12} />} onClick={() => setRows([...rows, ['', '']])} style={{ alignSelf: 'flex-start' }}>
            Add entry
          </Button>
        )}
      </Stack>
    </Input.Wrapper>
  );
}

/** One of several shapes (a number or a named window, a string or a list): pick which, then fill it in. */
function UnionField(p: FieldProps) {
  const ctx = useContext(Ctx);
  const { schema: s, name, value, onChange } = p;
  const variants = s.anyOf!;
  const fits = (v: JsonSchema, x: unknown): boolean => {
    if (x === undefined) return false;
    const opts = constOptions(v);
    if (opts) return opts.includes(String(x));
    if (v.type === 'integer' || v.type === 'number') return typeof x === 'number';
    if (v.type === 'string') return typeof x === 'string';
    if (v.type === 'array') return Array.isArray(x);
    if (v.type === 'boolean') return typeof x === 'boolean';
    if (v.type === 'object') return isObj(x);
    return false;
  };
  const found = variants.findIndex((v) => fits(v, value));
  const [chosen, setChosen] = useState(found === -1 ? 0 : found);
  const current = found === -1 ? chosen : found;
  const variantLabel = (v: JsonSchema) => (constOptions(v) ? 'named' : v.type === 'array' ? 'list' : v.type === 'integer' || v.type === 'number' ? 'number' : (v.type ?? 'value'));
  const labels = variants.map(variantLabel);
  const unique = new Set(labels).size === labels.length;
  return (
    <Group gap="xs" align="flex-start" wrap="nowrap">
      <div style={{ flex: 1 }}>
        <Field {...p} schema={{ ...variants[current]!, description: s.description ?? variants[current]!.description, default: s.default }} />
      </div>
      <SegmentedControl
        mt={22}
        size="xs"
        aria-label={`${humanize(name)}: kind of value`}
        data={variants.map((v, i) => ({ value: String(i), label: unique ? labels[i]! : `${labels[i]} ${i + 1}` }))}
        value={String(current)}
        disabled={ctx.readOnly}
        onChange={(v) => {
          setChosen(Number(v));
          onChange(undefined);
        }}
      />
    </Group>
  );
}

/** Anything the generator has no widget for: edited as JSON. */
function JsonField({ schema: s, name, path, value, onChange, label, required }: FieldProps) {
  const ctx = useContext(Ctx);
  const [text, setText] = useState(value === undefined ? '' : JSON.stringify(value, null, 2));
  const [bad, setBad] = useState<string | null>(null);
  return (
    <Textarea
      label={label ?? humanize(name)}
      description={`${s.description ?? ''} (JSON)`}
      required={required}
      data-path={path}
      error={bad ?? ctx.errors[path]}
      disabled={ctx.readOnly}
      autosize
      minRows={2}
      value={text}
      styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }}
      onChange={(e) => {
        const t = e.currentTarget.value;
        setText(t);
        if (t.trim() === '') {
          setBad(null);
          onChange(undefined);
          return;
        }
        try {
          onChange(JSON.parse(t));
          setBad(null);
        } catch (err) {
          setBad(`Not valid JSON: ${(err as Error).message}`);
        }
      }}
    />
  );
}

/** Plugins on an entity (config) or a consumer's credentials: each by its own schema. */
function PluginsEditor({ mode, label, description, path, value, onChange }: { mode: 'config' | 'credential'; label: ReactNode; description?: string; path: string; value: Obj; onChange(v: Obj): void }) {
  const ctx = useContext(Ctx);
  const [adding, setAdding] = useState<string | null>(null);
  const available = ctx.plugins.filter((p) => (mode === 'credential' ? p.credentialSchema !== null : p.scopes.includes(ctx.scope)) && !(p.name in value));
  const names = Object.keys(value);
  const below = ctx.errors[path];
  return (
    <Fieldset
      data-path={path}
      legend={
        <Text size="sm" fw={600}>
          {label}
        </Text>
      }
    >
      {description && (
        <Text size="xs" c="dimmed" mb="xs">
          {mode === 'credential' ? "The consumer's credential for each auth plugin." : 'Plugins run on matching requests in priority order; each is configured by its own schema.'}
        </Text>
      )}
      {below && (
        <Text size="xs" c="red" mb="xs">
          {below}
        </Text>
      )}
      <Stack gap="sm">
        {names.map((n) => {
          const info = ctx.plugins.find((p) => p.name === n);
          const schema = info ? (mode === 'credential' ? info.credentialSchema : info.schema) : null;
          const cfg = isObj(value[n]) ? (value[n] as Obj) : {};
          const set = (v: unknown) => {
            const next = { ...value };
            if (v === undefined) delete next[n];
            else next[n] = v;
            onChange(next);
          };
          return (
            <Card key={n} withBorder padding="sm" radius="md" data-plugin={n}>
              <Group justify="space-between" mb="xs" wrap="nowrap">
                <div>
                  <Group gap="xs">
                    <Text fw={600} ff="monospace">
                      {n}
                    </Text>
                    {info && (
                      <Badge size="xs" variant="outline">
                        priority {info.priority}
                      </Badge>
                    )}
                  </Group>
                  {info && (
                    <Text size="xs" c="dimmed">
                      {info.description}
                    </Text>
                  )}
                </div>
                {!ctx.readOnly && (
                  <Button size="xs" variant="subtle" color="red" leftSection={<IconTrash size={14} />} onClick={() => set(undefined)} aria-label={`Remove plugin ${n}`}>
                    Remove
                  </Button>
                )}
              </Group>
              {ctx.errors[join(path, n)] && (
                <Text size="xs" c="red" mb="xs">
                  {ctx.errors[join(path, n)]}
                </Text>
              )}
              {schema && schema.properties && Object.keys(schema.properties).length ? (
                <ObjectFields schema={schema} value={cfg} onChange={(v) => set(v)} path={join(path, n)} />
              ) : schema ? (
                <Text size="xs" c="dimmed">
                  This plugin has no settings.
                </Text>
              ) : (
                <JsonField name={n} schema={{ description: 'Unknown plugin' }} path={join(path, n)} value={cfg} onChange={(v) => set(v ?? {})} />
              )}
            </Card>
          );
        })}
        {!names.length && (
          <Text size="sm" c="dimmed">
            {mode === 'credential' ? 'No credentials.' : 'No plugins.'}
          </Text>
        )}
        {!ctx.readOnly && (
          <Group gap="xs" align="flex-end">
            <Select
              aria-label={mode === 'credential' ? 'Credential to add' : 'Plugin to add'}
              placeholder={mode === 'credential' ? 'Add a credential…' : 'Add a plugin…'}
              searchable
              data={available.map((p) => ({ value: p.name, label: p.name }))}
              value={adding}
              onChange={setAdding}
              renderOption={({ option }) => {
                const info = available.find((p) => p.name === option.value);
                return (
                  <div>
                    <Text size="sm" ff="monospace">
                      {option.label}
                    </Text>
                    {info && (
                      <Text size="xs" c="dimmed" lineClamp={1}>
                        {info.description}
                      </Text>
                    )}
                  </div>
                );
              }}
              style={{ flex: 1, maxWidth: 360 }}
            />
            <Button
              variant="light"
              leftSection={<IconPlus size={14} />}
              disabled={!adding}
              onClick={() => {
                if (!adding) return;
                onChange({ ...value, [adding]: {} });
                setAdding(null);
              }}
            >
              Add
            </Button>
          </Group>
        )}
      </Stack>
    </Fieldset>
  );
}
