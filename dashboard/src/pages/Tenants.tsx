/** Tenants: the ones the user can see, and (superadmins) creating one. */
import { useState } from 'react';
import { Anchor, Badge, Button, Checkbox, Group, Modal, Paper, Stack, Table, Text, TextInput } from '@mantine/core';
import { IconPlus } from '@tabler/icons-react';
import { Link } from 'react-router';
import { ApiError, post, seg, V1, type Tenant } from '../api';
import { ErrorAlert, PageHeader, RoleBadge, Time } from '../components/common';
import { act } from '../hooks';
import { useSession } from '../session';

export function TenantsPage() {
  const s = useSession();
  const [open, setOpen] = useState(false);
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [review, setReview] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const create = async () => {
    setError(null);
    const r = await act('Create tenant', () => post<Tenant>(`${V1}/tenants`, { id, name, reviewRequired: review }), { success: (t) => `Tenant ${t.id} created.`, onError: setError });
    if (r) {
      setOpen(false);
      setId('');
      setName('');
      await s.reloadTenants();
    }
  };
  const fe = error?.fieldErrors() ?? {};
  return (
    <>
      <PageHeader
        title="Tenants"
        subtitle="Product lines, each with its own routes, services, upstreams, consumers, members and release policy."
        actions={
          s.isSuperadmin && (
            <Button leftSection={<IconPlus size={16} />} onClick={() => setOpen(true)}>
              New tenant
            </Button>
          )
        }
      />
      <Paper withBorder p="md" radius="md">
        <Table verticalSpacing="sm" data-testid="tenants-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Tenant</Table.Th>
              <Table.Th>Release policy</Table.Th>
              <Table.Th>Your role</Table.Th>
              <Table.Th>Created</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {s.tenants.map((t) => (
              <Table.Tr key={t.id}>
                <Table.Td>
                  <Anchor component={Link} to={`/t/${seg(t.id)}/overview`} fw={500}>
                    {t.name}
                  </Anchor>{' '}
                  <Text span size="xs" c="dimmed" ff="monospace">
                    {t.id}
                  </Text>
                </Table.Td>
                <Table.Td>
                  {t.reviewRequired ? (
                    <Group gap={4}>
                      <Badge variant="light">review required</Badge>
                      {t.skipReviewRoles.length > 0 && (
                        <Text size="xs" c="dimmed">
                          skip lane: {t.skipReviewRoles.join(', ')}
                        </Text>
                      )}
                    </Group>
                  ) : (
                    <Badge variant="light" color="gray">
                      publish directly
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>
                  <RoleBadge role={s.roleIn(t.id)} />
                </Table.Td>
                <Table.Td>
                  <Time iso={t.createdAt} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Paper>
      <Modal opened={open} onClose={() => setOpen(false)} title={<Text fw={600}>New tenant</Text>} centered>
        <Stack>
          <TextInput label="Id" description="Lower-case letters, digits and '-', up to 32 characters (the product line's SaaS id)" required value={id} onChange={(e) => setId(e.currentTarget.value)} error={fe.id} />
          <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fe.name} />
          <Checkbox label="Changes need a reviewer's approval" checked={review} onChange={(e) => setReview(e.currentTarget.checked)} />
          <ErrorAlert error={error} title="The tenant was not created" />
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
