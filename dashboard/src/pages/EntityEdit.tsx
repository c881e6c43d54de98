/**
 * Create or edit an entity's draft: the form generated from the API's schema, or the raw document as JSON
 * or YAML. Saving writes the draft only (nothing is served until published); the API's field problems are
 * shown at their fields.
 */
import { useEffect, useRef, useState } from 'react';
import { Alert, Button, Group, Paper, SegmentedControl, Select, Stack, Text, TextInput } from '@mantine/core';
import { IconDeviceFloppy, IconInfoCircle } from '@tabler/icons-react';
import { useNavigate, useParams } from 'react-router';
import { api, ApiError, get, post, put, seg, tenantPath, type EntityView, type JsonSchema } from '../api';
import { useTenant } from '../App';
import { ErrorAlert, Loading, PageHeader } from '../components/common';
import { RawEditor, type RawFormat } from '../components/RawEditor';
import { SchemaForm, type Scope } from '../components/SchemaForm';
import { act } from '../hooks';
import { KINDS, type Kind } from '../kinds';
import { useSession } from '../session';

const SCOPES: Partial<Record<Kind, Scope>> = { routes: 'route', services: 'service', consumers: 'consumer', 'global-plugins': 'global' };

export function EntityEditPage({ kind }: { kind: Kind }) {
  const tenant = useTenant();
  const { id: editId } = useParams();
  const s = useSession();
  const navigate = useNavigate();
  const info = KINDS[kind];
  const creating = editId === undefined;
  const [id, setId] = useState('');
  const [value, setValue] = useState<Record<string, unknown>>({});
  const [etag, setEtag] = useState<number | null>(null);
  const [mode, setMode] = useState<'form' | RawFormat>('form');
  const [loaded, setLoaded] = useState(creating);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [saving, setSaving] = useState(false);
  const [rawKey, setRawKey] = useState(0);
  // The save button is at the end of the form: bring the refusal (listed above the form) into view.
  const errorRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (error) errorRef.current?.scrollIntoView({ block: 'center' });
  }, [error]);

  useEffect(() => {
    if (creating) return;
    get<EntityView>(`${tenantPath(tenant)}/${kind}/${seg(editId!)}`)
      .then((e) => {
        setId(e.id);
        const content = { ...(e.draft ?? e.live ?? {}) };
        if (info.idField) delete content[info.idField];
        setValue(content);
        setEtag(e.revision);
        setLoaded(true);
      })
      .catch((e) => setLoadError(e));
  }, [creating, tenant, kind, editId, info.idField]);

  const pluginInfo = kind === 'global-plugins' ? s.schemas?.plugins.find((p) => p.name === id) : undefined;
  const schema: JsonSchema | undefined = kind === 'global-plugins' ? pluginInfo?.schema : s.schemas?.entities[kind];
  const fieldErrors = error?.fieldErrors() ?? {};
  const canWrite = s.can(tenant, 'write');

  const save = async () => {
    setError(null);
    if (!id) {
      setError(new ApiError(400, 'GH_ERR_ADMIN_INVALID', `The ${kind === 'global-plugins' ? 'plugin' : (info.idField ?? 'id')} is required.`, [{ path: info.idField ?? 'name', message: 'is required' }]));
      return;
    }
    setSaving(true);
    const base = `${tenantPath(tenant)}/${kind}`;
    const r = await act(
      creating ? `Create ${info.singular}` : `Save ${info.singular}`,
      async () => {
        if (kind === 'global-plugins') return creating ? post<EntityView>(base, { name: id, config: value }) : put<EntityView>(`${base}/${seg(id)}`, value);
        const body = { ...value, [info.idField!]: id };
        if (creating) return post<EntityView>(base, body);
        // If-Match: refuse to overwrite a draft someone else changed since it was loaded.
        const res = await fetchPut(`${base}/${seg(id)}`, body, etag);
        return res;
      },
      { success: 'Draft saved. Publish it to make it live.', onError: setError },
    );
    setSaving(false);
    if (r) navigate(`/t/${seg(tenant)}/${kind}/${seg(r.id)}`);
  };

  if (loadError) return <ErrorAlert error={loadError} />;
  if (!loaded || !s.schemas) return <Loading />;
  const idLabel = kind === 'consumers' ? 'User name' : kind === 'global-plugins' ? 'Plugin' : 'Id';
  const idError = fieldErrors[info.idField ?? 'name'];
  return (
    <>
      <PageHeader
        title={creating ? `New ${info.singular}` : `Edit ${info.singular} ${id}`}
        subtitle="Saving writes a draft: nothing is served until it is published."
        crumbs={[{ label: info.title, to: `/t/${seg(tenant)}/${kind}` }, ...(creating ? [] : [{ label: id, to: `/t/${seg(tenant)}/${kind}/${seg(id)}` }]), { label: creating ? 'new' : 'edit' }]}
        actions={
          <SegmentedControl
            aria-label="Editor"
            value={mode}
            onChange={(m) => {
              setMode(m as typeof mode);
              setRawKey((k) => k + 1);
            }}
            data={[
              { value: 'form', label: 'Form' },
              { value: 'json', label: 'JSON' },
              { value: 'yaml', label: 'YAML' },
            ]}
          />
        }
      />
      {!canWrite && (
        <Alert color="yellow" icon={<IconInfoCircle size={18} />} mb="md">
          Your role in this tenant is read-only.
        </Alert>
      )}
      <div ref={errorRef}>
        <ErrorAlert error={error} title="The draft was not saved" />
      </div>
      <Paper withBorder p="lg" radius="md">
        <Stack>
          {kind === 'global-plugins' ? (
            <Select
              label={idLabel}
              required
              disabled={!creating}
              searchable
              data={s.schemas.plugins.filter((p) => p.scopes.includes('global')).map((p) => ({ value: p.name, label: `${p.name} — ${p.description}` }))}
              value={id || null}
              onChange={(v) => setId(v ?? '')}
              error={idError}
            />
          ) : (
            <TextInput label={idLabel} required disabled={!creating} value={id} onChange={(e) => setId(e.currentTarget.value)} error={idError} description={creating ? 'Letters, digits, ".", "_" or "-"; it cannot be changed later.' : undefined} data-path={info.idField ?? 'id'} />
          )}
          {mode === 'form' ? (
            schema ? (
              <SchemaForm schema={schema} value={value} onChange={setValue} errors={fieldErrors} plugins={s.schemas.plugins} scope={SCOPES[kind] ?? 'route'} hide={info.idField ? [info.idField] : []} readOnly={!canWrite} />
            ) : (
              <Text c="dimmed" size="sm">
                Choose a plugin to configure it.
              </Text>
            )
          ) : (
            <RawEditor key={`${mode}-${rawKey}`} value={value} onChange={setValue} format={mode} readOnly={!canWrite} />
          )}
          {canWrite && (
            <Group justify="flex-end">
              <Button variant="default" onClick={() => navigate(-1)}>
                Cancel
              </Button>
              <Button leftSection={<IconDeviceFloppy size={16} />} loading={saving} onClick={() => void save()}>
                {creating ? 'Create draft' : 'Save draft'}
              </Button>
            </Group>
          )}
        </Stack>
      </Paper>
    </>
  );
}

/** PUT with If-Match (the ETag is the draft's revision). */
async function fetchPut(path: string, body: unknown, revision: number | null): Promise<EntityView> {
  if (revision === null) return api<EntityView>('PUT', path, body);
  return api<EntityView>('PUT', path, body, { headers: { 'if-match': `"${revision}"` } });
}
