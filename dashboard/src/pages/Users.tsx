/** Users (superadmins): every user, and creating one. */
import { useState } from 'react';
import { Badge, Button, Checkbox, Group, Modal, Paper, PasswordInput, Stack, Table, Text, TextInput } from '@mantine/core';
import { IconUserPlus } from '@tabler/icons-react';
import { ApiError, get, post, V1, type User } from '../api';
import { Empty, ErrorAlert, Loading, PageHeader, Time } from '../components/common';
import { act, useLoad } from '../hooks';
import { useSession } from '../session';

export function UsersPage() {
  const s = useSession();
  const users = useLoad(() => get<{ items: User[] }>(`${V1}/users`), []);
  const [open, setOpen] = useState(false);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [superadmin, setSuperadmin] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  if (!s.isSuperadmin) return <Empty title="Only superadmins manage users" />;
  const create = async () => {
    setError(null);
    const r = await act('Create user', () => post<User>(`${V1}/users`, { username, password, ...(superadmin ? { superadmin: true } : {}) }), { success: (u) => `${u.username} can log in now; add them to tenants under Members.`, onError: setError });
    if (r) {
      setOpen(false);
      setUsername('');
      setPassword('');
      setSuperadmin(false);
      await users.reload();
    }
  };
  const fe = error?.fieldErrors() ?? {};
  return (
    <>
      <PageHeader
        title="Users"
        subtitle="People who log in to the dashboard or make API tokens. Roles are given per tenant, under Members."
        actions={
          <Button leftSection={<IconUserPlus size={16} />} onClick={() => setOpen(true)}>
            New user
          </Button>
        }
      />
      <Paper withBorder p="md" radius="md">
        <ErrorAlert error={users.error} />
        {!users.data ? (
          <Loading />
        ) : (
          <Table verticalSpacing="sm" data-testid="users-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>User</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {users.data.items.map((u) => (
                <Table.Tr key={u.id}>
                  <Table.Td fw={500}>{u.username}</Table.Td>
                  <Table.Td>
                    <Time iso={u.createdAt} />
                  </Table.Td>
                  <Table.Td>
                    <Group gap={4}>
                      {u.superadmin && <Badge color="grape">superadmin</Badge>}
                      {u.disabled && <Badge color="gray">disabled</Badge>}
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Paper>
      <Modal opened={open} onClose={() => setOpen(false)} title={<Text fw={600}>New user</Text>} centered>
        <Stack>
          <TextInput label="User name" required value={username} onChange={(e) => setUsername(e.currentTarget.value)} error={fe.username} />
          <PasswordInput label="Password" description="12 characters at least" required value={password} onChange={(e) => setPassword(e.currentTarget.value)} error={fe.password} autoComplete="new-password" />
          <Checkbox label="Superadmin (everything in every tenant)" checked={superadmin} onChange={(e) => setSuperadmin(e.currentTarget.checked)} />
          <ErrorAlert error={error} title="The user was not created" />
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setOpen(false)}>
              Cancel
            </Button>
            <Button onClick={() => void create()}>Create</Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
