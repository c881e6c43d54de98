/** Members of the tenant and their roles; tenant admins add, change and remove them. */
import { useState } from 'react';
import { ActionIcon, Autocomplete, Button, Group, Paper, Select, Table, Text, Tooltip } from '@mantine/core';
import { modals } from '@mantine/modals';
import { IconTrash, IconUserPlus } from '@tabler/icons-react';
import { del, get, put, ROLES, seg, tenantPath, V1, type Role, type User } from '../api';
import { useTenant } from '../App';
import { ErrorAlert, Loading, PageHeader, RoleBadge } from '../components/common';
import { act, useLoad } from '../hooks';
import { useSession } from '../session';

const ROLE_HELP: Record<Role, string> = {
  admin: 'everything in the tenant, members and audit included',
  editor: 'writes drafts and submits them',
  reviewer: "approves or rejects others' changes",
  viewer: 'reads',
};

export function MembersPage() {
  const tenant = useTenant();
  const s = useSession();
  const members = useLoad(() => get<{ items: Array<{ user: string; role: Role }> }>(`${tenantPath(tenant)}/members`), [tenant]);
  const users = useLoad(async () => (s.isSuperadmin ? (await get<{ items: User[] }>(`${V1}/users`)).items : []), [s.isSuperadmin]);
  const [user, setUser] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const canManage = s.can(tenant, 'manage');
  const setMember = async (name: string, r: Role) => {
    if (await act('Set role', () => put(`${tenantPath(tenant)}/members/${seg(name)}`, { role: r }), { success: `${name} is ${r} in ${tenant}.` })) {
      setUser('');
      await members.reload();
    }
  };
  const remove = (name: string) =>
    modals.openConfirmModal({
      title: `Remove ${name} from ${tenant}?`,
      children: <Text size="sm">They lose every role in this tenant at once.</Text>,
      labels: { confirm: 'Remove', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: async () => {
        if ((await act('Remove member', () => del(`${tenantPath(tenant)}/members/${seg(name)}`), { success: `${name} removed.` })) !== undefined) await members.reload();
      },
    });
  return (
    <>
      <PageHeader title="Members" subtitle="Who can do what in this tenant." />
      {canManage && (
        <Paper withBorder p="md" radius="md" mb="md">
          <Group align="flex-end" gap="sm">
            <Autocomplete label="User" placeholder="user name" data={(users.data ?? []).map((u) => u.username)} value={user} onChange={setUser} w={240} />
            <Select label="Role" data={ROLES.map((r) => ({ value: r, label: `${r} — ${ROLE_HELP[r]}` }))} value={role} onChange={(v) => setRole((v as Role) ?? 'viewer')} allowDeselect={false} w={380} />
            <Button leftSection={<IconUserPlus size={16} />} disabled={!user.trim()} onClick={() => void setMember(user.trim(), role)}>
              Add member
            </Button>
          </Group>
        </Paper>
      )}
      <Paper withBorder p="md" radius="md">
        <ErrorAlert error={members.error} />
        {!members.data ? (
          <Loading />
        ) : (
          <Table verticalSpacing="sm" data-testid="members-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>User</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {members.data.items.map((m) => (
                <Table.Tr key={m.user}>
                  <Table.Td fw={500}>{m.user}</Table.Td>
                  <Table.Td>
                    {canManage ? (
                      <Select aria-label={`Role of ${m.user}`} data={ROLES} value={m.role} allowDeselect={false} onChange={(v) => v && v !== m.role && void setMember(m.user, v as Role)} w={160} />
                    ) : (
                      <RoleBadge role={m.role} />
                    )}
                  </Table.Td>
                  <Table.Td>
                    {canManage && (
                      <Tooltip label="Remove from the tenant">
                        <ActionIcon variant="subtle" color="red" aria-label={`Remove ${m.user}`} onClick={() => remove(m.user)}>
                          <IconTrash size={16} />
                        </ActionIcon>
                      </Tooltip>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Paper>
    </>
  );
}
