/** The tenant's name and release policy: whether changes need review, and who may take the skip-review lane. */
import { useEffect, useState } from 'react';
import { Button, Group, MultiSelect, Paper, Stack, Switch, TextInput } from '@mantine/core';
import { ApiError, patch, ROLES, tenantPath, type Role, type Tenant } from '../api';
import { useTenant } from '../App';
import { ErrorAlert, PageHeader } from '../components/common';
import { act } from '../hooks';
import { useSession } from '../session';

export function TenantSettingsPage() {
  const tenant = useTenant();
  const s = useSession();
  const t = s.tenants.find((x) => x.id === tenant)!;
  const [name, setName] = useState(t.name);
  const [reviewRequired, setReviewRequired] = useState(t.reviewRequired);
  const [skip, setSkip] = useState<string[]>(t.skipReviewRoles);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    setName(t.name);
    setReviewRequired(t.reviewRequired);
    setSkip(t.skipReviewRoles);
  }, [t]);
  const canManage = s.can(tenant, 'manage');
  const save = async () => {
    setError(null);
    if (await act('Save tenant settings', () => patch<Tenant>(tenantPath(tenant), { name, reviewRequired, skipReviewRoles: skip as Role[] }), { success: 'Saved.', onError: setError })) await s.reloadTenants();
  };
  const fe = error?.fieldErrors() ?? {};
  return (
    <>
      <PageHeader title="Tenant settings" subtitle={`Tenant ${tenant}`} />
      <Paper withBorder p="lg" radius="md" maw={640}>
        <Stack>
          <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} disabled={!canManage} error={fe.name} />
          <Switch label="Changes need a reviewer's approval" description="Publishes, rollbacks, gray releases and promotions become changes that a reviewer other than their author approves." checked={reviewRequired} onChange={(e) => setReviewRequired(e.currentTarget.checked)} disabled={!canManage} />
          <MultiSelect label="Skip-review lane" description="Roles that may publish without review in an emergency (every such publish is audited as one)." data={ROLES} value={skip} onChange={setSkip} disabled={!canManage || !reviewRequired} error={fe.skipReviewRoles} />
          <ErrorAlert error={error} />
          {canManage && (
            <Group justify="flex-end">
              <Button onClick={() => void save()}>Save</Button>
            </Group>
          )}
        </Stack>
      </Paper>
    </>
  );
}
