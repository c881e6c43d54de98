/** The current user's API tokens: create one (shown once), list them, revoke one. */
import { useState } from 'react';
import { ActionIcon, Alert, Badge, Button, Code, CopyButton, Group, Modal, Paper, Select, Stack, Table, Text, TextInput, Tooltip } from '@mantine/core';
import { modals } from '@mantine/modals';
import { IconCheck, IconCopy, IconKey, IconTrash } from '@tabler/icons-react';
import { ApiError, del, get, post, ROLES, seg, V1, type TokenView } from '../api';
import { Empty, ErrorAlert, Loading, PageHeader, Time } from '../components/common';
import { act, useLoad } from '../hooks';
import { useSession } from '../session';

export function TokensPage() {
  const s = useSession();
  const tokens = useLoad(() => get<{ items: TokenView[] }>(`${V1}/tokens`), []);
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [tenant, setTenant] = useState<string | null>(null);
  const [role, setRole] = useState<string | null>(null);
  const [expires, setExpires] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [made, setMade] = useState<string | null>(null);
  const create = async () => {
    setError(null);
    const body: Record<string, unknown> = { name };
    if (tenant) body.tenant = tenant;
    if (role) body.role = role;
    if (expires) body.expiresAt = new Date(expires).toISOString();
    const r = await act('Create token', () => post<{ token: string }>(`${V1}/tokens`, body), { onError: setError });
    if (r) {
      setMade(r.token);
      setName('');
      setTenant(null);
      setRole(null);
      setExpires('');
      await tokens.reload();
    }
  };
  const revoke = (t: TokenView) =>
    modals.openConfirmModal({
      title: `Revoke token ${t.name}?`,
      children: <Text size="sm">Scripts using it get 401 from now on.</Text>,
      labels: { confirm: 'Revoke', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: async () => {
        if ((await act('Revoke token', () => del(`${V1}/tokens/${seg(t.id)}`), { success: 'Revoked.' })) !== undefined) await tokens.reload();
      },
    });
  const fe = error?.fieldErrors() ?? {};
  return (
    <>
      <PageHeader
        title="API tokens"
        subtitle={`Tokens of ${s.me.user.username}, for scripts and CI: Authorization: Bearer <token>.`}
        actions={
          <Button leftSection={<IconKey size={16} />} onClick={() => { setMade(null); setOpen(true); }}>
            New token
          </Button>
        }
      />
      <Paper withBorder p="md" radius="md">
        <ErrorAlert error={tokens.error} />
        {!tokens.data ? (
          <Loading />
        ) : tokens.data.items.length === 0 ? (
          <Empty title="No tokens" />
        ) : (
          <Table verticalSpacing="sm" data-testid="tokens-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Narrowed to</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tokens.data.items.map((t) => (
                <Table.Tr key={t.id}>
                  <Table.Td fw={500}>{t.name}</Table.Td>
                  <Table.Td>
                    {t.tenant ? (
                      <Badge variant="light" tt="none">
                        {t.tenant}
                        {t.role ? ` · ${t.role}` : ''}
                      </Badge>
                    ) : (
                      <Text size="sm" c="dimmed">
                        everything you can do
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Time iso={t.createdAt} />
                  </Table.Td>
                  <Table.Td>
                    <Time iso={t.lastUsedAt} />
                  </Table.Td>
                  <Table.Td>{t.expiresAt ? <Time iso={t.expiresAt} /> : <Text size="sm" c="dimmed">never</Text>}</Table.Td>
                  <Table.Td>
                    <ActionIcon variant="subtle" color="red" aria-label={`Revoke ${t.name}`} onClick={() => revoke(t)}>
                      <IconTrash size={16} />
                    </ActionIcon>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Paper>
      <Modal opened={open} onClose={() => setOpen(false)} title={<Text fw={600}>{made ? 'Your new token' : 'New API token'}</Text>} centered size="lg">
        {made ? (
          <Stack>
            <Alert color="yellow">This is the only time the token is shown. Store it now.</Alert>
            <Group gap="xs" wrap="nowrap">
              <Code block style={{ flex: 1, wordBreak: 'break-all' }} data-testid="new-token">
                {made}
              </Code>
              <CopyButton value={made}>
                {({ copied, copy }) => (
                  <Tooltip label={copied ? 'Copied' : 'Copy'}>
                    <ActionIcon variant="light" onClick={copy} aria-label="Copy token">
                      {copied ? <IconCheck size={16} /> : <IconCopy size={16} />}
                    </ActionIcon>
                  </Tooltip>
                )}
              </CopyButton>
            </Group>
            <Group justify="flex-end">
              <Button onClick={() => setOpen(false)}>Done</Button>
            </Group>
          </Stack>
        ) : (
          <Stack>
            <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fe.name} placeholder="ci-deploy" />
            <Select label="Tenant" description="Narrow the token to one tenant" clearable data={s.tenants.map((t) => t.id)} value={tenant} onChange={setTenant} error={fe.tenant} />
            <Select label="Role" description="And to a role no higher than yours there" clearable data={ROLES} value={role} onChange={setRole} disabled={!tenant} error={fe.role} />
            <TextInput label="Expires" type="datetime-local" value={expires} onChange={(e) => setExpires(e.currentTarget.value)} error={fe.expiresAt} />
            <ErrorAlert error={error} title="The token was not created" />
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpen(false)}>
                Cancel
              </Button>
              <Button disabled={!name.trim()} onClick={() => void create()}>
                Create
              </Button>
            </Group>
          </Stack>
        )}
      </Modal>
    </>
  );
}
