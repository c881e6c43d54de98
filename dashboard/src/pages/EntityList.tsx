/** A list of one kind of entity in the tenant: search, label and state filters, paging. */
import { useState } from 'react';
import { Anchor, Button, Group, Pagination, Paper, SegmentedControl, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconPlus, IconSearch, IconTag } from '@tabler/icons-react';
import { Link, useSearchParams } from 'react-router';
import { get, seg, tenantPath, type EntityView } from '../api';
import { useTenant } from '../App';
import { Empty, ErrorAlert, Loading, PageHeader, StateBadge, Time } from '../components/common';
import { useLoad } from '../hooks';
import { KINDS, type Kind } from '../kinds';
import { useSession } from '../session';

const PAGE = 25;

export function EntityListPage({ kind }: { kind: Kind }) {
  const tenant = useTenant();
  const s = useSession();
  const info = KINDS[kind];
  const [params, setParams] = useSearchParams();
  const [search, setSearch] = useState(params.get('search') ?? '');
  const [label, setLabel] = useState(params.get('label') ?? '');
  const [state, setState] = useState(params.get('state') ?? 'all');
  const [debSearch] = useDebouncedValue(search, 250);
  const [debLabel] = useDebouncedValue(label, 250);
  const page = Math.max(1, Number(params.get('page') ?? 1) || 1);
  const list = useLoad(async () => {
    const q = new URLSearchParams({ limit: String(PAGE), offset: String((page - 1) * PAGE) });
    if (debSearch) q.set('search', debSearch);
    if (debLabel) q.set('label', debLabel);
    return get<{ items: EntityView[]; total: number }>(`${tenantPath(tenant)}/${kind}?${q}`);
  }, [tenant, kind, debSearch, debLabel, page]);
  const items = (list.data?.items ?? []).filter((e) => state === 'all' || (state === 'pending' ? e.pending : state === 'live' ? e.liveVersion > 0 && !e.pending : e.liveVersion === 0));
  const canWrite = s.can(tenant, 'write');
  const base = `/t/${seg(tenant)}/${kind}`;
  const setPage = (p: number) => {
    const next = new URLSearchParams(params);
    next.set('page', String(p));
    setParams(next);
  };
  return (
    <>
      <PageHeader
        title={info.title}
        subtitle={info.blurb}
        actions={
          canWrite && (
            <Button component={Link} to={`${base}/new`} leftSection={<IconPlus size={16} />}>
              New {info.singular}
            </Button>
          )
        }
      />
      <Paper withBorder p="md" radius="md">
        <Group mb="md" gap="sm" wrap="wrap">
          <TextInput aria-label="Search" placeholder={kind === 'global-plugins' ? 'Search by plugin name' : 'Search by id or name'} leftSection={<IconSearch size={16} />} value={search} onChange={(e) => setSearch(e.currentTarget.value)} style={{ flex: 1, minWidth: 220 }} />
          {kind !== 'global-plugins' && kind !== 'certificates' && (
            <TextInput aria-label="Label filter" placeholder="label, or label:value" leftSection={<IconTag size={16} />} value={label} onChange={(e) => setLabel(e.currentTarget.value)} w={220} />
          )}
          <SegmentedControl
            aria-label="State"
            value={state}
            onChange={setState}
            data={[
              { value: 'all', label: 'All' },
              { value: 'pending', label: 'Unpublished changes' },
              { value: 'live', label: 'Live' },
              { value: 'new', label: 'Never published' },
            ]}
          />
        </Group>
        <ErrorAlert error={list.error} />
        {list.loading && !list.data ? (
          <Loading />
        ) : items.length === 0 ? (
          <Empty title={`No ${info.title.toLowerCase()}${debSearch || debLabel || state !== 'all' ? ' match' : ' yet'}`}>
            {canWrite && !debSearch && !debLabel && state === 'all' ? `Create the first ${info.singular}: it stays a draft until it is published.` : undefined}
          </Empty>
        ) : (
          <Table.ScrollContainer minWidth={720}>
            <Table highlightOnHover verticalSpacing="sm" data-testid="entity-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{kind === 'consumers' ? 'User name' : kind === 'global-plugins' ? 'Plugin' : 'Id'}</Table.Th>
                  {info.columns.map((c) => (
                    <Table.Th key={c.label}>{c.label}</Table.Th>
                  ))}
                  <Table.Th>State</Table.Th>
                  <Table.Th>Updated</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items.map((e) => {
                  const content = e.draft ?? e.live ?? {};
                  return (
                    <Table.Tr key={e.id}>
                      <Table.Td>
                        <Anchor component={Link} to={`${base}/${seg(e.id)}`} fw={500} ff="monospace" size="sm">
                          {e.id}
                        </Anchor>
                      </Table.Td>
                      {info.columns.map((c) => (
                        <Table.Td key={c.label}>
                          <Text size="sm" lineClamp={2} style={c.label === 'Name' || c.label === 'Config' ? { wordBreak: 'break-word' } : { whiteSpace: 'nowrap' }}>
                            {c.value(content)}
                          </Text>
                        </Table.Td>
                      ))}
                      <Table.Td style={{ whiteSpace: 'nowrap' }}>
                        <StateBadge pending={e.pending} liveVersion={e.liveVersion} draftDeleted={e.draft === null} />
                      </Table.Td>
                      <Table.Td>
                        <Time iso={e.updatedAt} />
                        <Text size="xs" c="dimmed">
                          {e.updatedBy}
                        </Text>
                      </Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
        {(list.data?.total ?? 0) > PAGE && (
          <Group justify="space-between" mt="md">
            <Text size="sm" c="dimmed">
              {list.data!.total} in all
            </Text>
            <Pagination total={Math.ceil(list.data!.total / PAGE)} value={page} onChange={setPage} size="sm" />
          </Group>
        )}
      </Paper>
    </>
  );
}
