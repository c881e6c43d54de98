/** The audit trail: who changed what, when, from where, with filters and the before/after of each record. */
import { Fragment, useState } from 'react';
import { ActionIcon, Button, Code, Group, Paper, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconChevronDown, IconChevronRight } from '@tabler/icons-react';
import { useParams } from 'react-router';
import { get, V1, type AuditRecord } from '../api';
import { Empty, ErrorAlert, Loading, PageHeader, Time } from '../components/common';
import { SideBySideDiff } from '../components/Diff';
import { useLoad } from '../hooks';

const PAGE = 100;

export function AuditPage() {
  const { tenant } = useParams();
  const [user, setUser] = useState('');
  const [kind, setKind] = useState('');
  const [entity, setEntity] = useState('');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [filters] = useDebouncedValue({ user, kind, entity, since, until }, 300);
  const [before, setBefore] = useState<number[]>([]);
  const [expanded, setExpanded] = useState<number | null>(null);
  const cursor = before.at(-1);
  const list = useLoad(() => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (tenant) q.set('tenant', tenant);
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, k === 'since' || k === 'until' ? new Date(v).toISOString() : v);
    if (cursor !== undefined) q.set('before', String(cursor));
    return get<{ items: AuditRecord[] }>(`${V1}/audit?${q}`);
  }, [tenant, JSON.stringify(filters), cursor]);
  const items = list.data?.items ?? [];
  return (
    <>
      <PageHeader title={tenant ? 'Audit log' : 'Audit log, every tenant'} subtitle="Every change, newest first; secrets are redacted. Records cannot be changed or deleted." />
      <Paper withBorder p="md" radius="md">
        <Group mb="md" gap="sm" wrap="wrap" align="flex-end">
          <TextInput label="User" value={user} onChange={(e) => { setUser(e.currentTarget.value); setBefore([]); }} w={160} />
          <TextInput label="Kind" placeholder="routes, member, token…" value={kind} onChange={(e) => { setKind(e.currentTarget.value); setBefore([]); }} w={180} />
          <TextInput label="Entity" value={entity} onChange={(e) => { setEntity(e.currentTarget.value); setBefore([]); }} w={180} />
          <TextInput label="Since" type="datetime-local" value={since} onChange={(e) => { setSince(e.currentTarget.value); setBefore([]); }} w={210} />
          <TextInput label="Until" type="datetime-local" value={until} onChange={(e) => { setUntil(e.currentTarget.value); setBefore([]); }} w={210} />
        </Group>
        <ErrorAlert error={list.error} />
        {!list.data ? (
          <Loading />
        ) : items.length === 0 ? (
          <Empty title="No records match" />
        ) : (
          <Table.ScrollContainer minWidth={860}>
            <Table verticalSpacing="xs" highlightOnHover data-testid="audit-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th w={32} />
                  <Table.Th>When</Table.Th>
                  <Table.Th>Who</Table.Th>
                  <Table.Th>Action</Table.Th>
                  {!tenant && <Table.Th>Tenant</Table.Th>}
                  <Table.Th>Entity</Table.Th>
                  <Table.Th>From</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items.map((r) => (
                  <Fragment key={r.seq}>
                    <Table.Tr>
                      <Table.Td>
                        {(r.before !== null || r.after !== null) && (
                          <ActionIcon variant="subtle" size="sm" aria-label={`Details of record ${r.seq}`} onClick={() => setExpanded(expanded === r.seq ? null : r.seq)}>
                            {expanded === r.seq ? <IconChevronDown size={14} /> : <IconChevronRight size={14} />}
                          </ActionIcon>
                        )}
                      </Table.Td>
                      <Table.Td>
                        <Time iso={r.at} />
                      </Table.Td>
                      <Table.Td>{r.actor}</Table.Td>
                      <Table.Td>
                        <Code>{r.action}</Code>
                      </Table.Td>
                      {!tenant && <Table.Td>{r.tenant ?? '—'}</Table.Td>}
                      <Table.Td>
                        <Text size="sm" ff="monospace">
                          {r.entityId ?? ''}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        <Text size="xs" c="dimmed">
                          {r.source}
                        </Text>
                      </Table.Td>
                    </Table.Tr>
                    {expanded === r.seq && (
                      <Table.Tr>
                        <Table.Td colSpan={tenant ? 6 : 7}>
                          <SideBySideDiff before={r.before} after={r.after} beforeLabel="Before" afterLabel="After" />
                        </Table.Td>
                      </Table.Tr>
                    )}
                  </Fragment>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
        <Group justify="flex-end" mt="sm" gap="xs">
          <Button variant="default" size="xs" disabled={!before.length} onClick={() => setBefore(before.slice(0, -1))}>
            Newer
          </Button>
          <Button variant="default" size="xs" disabled={items.length < PAGE} onClick={() => setBefore([...before, items.at(-1)!.seq])}>
            Older
          </Button>
        </Group>
      </Paper>
    </>
  );
}
