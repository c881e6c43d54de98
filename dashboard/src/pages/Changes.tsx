/**
 * Changes: the review queue (open changes by others), my changes, my unpublished drafts to submit as one
 * change, and every change by status.
 */
import { useState } from 'react';
import { Anchor, Badge, Button, Checkbox, Group, Modal, Paper, SegmentedControl, Stack, Table, Tabs, Text, Textarea, TextInput } from '@mantine/core';
import { IconGitPullRequest, IconSend } from '@tabler/icons-react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { ApiError, get, post, seg, tenantPath, type ChangeRequest, type EntityView } from '../api';
import { useTenant } from '../App';
import { Empty, ErrorAlert, Loading, PageHeader, StatusBadge, Time } from '../components/common';
import { act, useLoad } from '../hooks';
import { KIND_LIST, KINDS, type Kind } from '../kinds';
import { useSession } from '../session';

export function ChangesPage() {
  const tenant = useTenant();
  const s = useSession();
  const [params, setParams] = useSearchParams();
  const canReview = s.can(tenant, 'review');
  const canWrite = s.can(tenant, 'write');
  const tab = params.get('tab') ?? (canReview ? 'queue' : canWrite ? 'mine' : 'all');
  return (
    <>
      <PageHeader title="Changes and review" subtitle="Drafts go live through changes: submitted by their author, approved or rejected by a reviewer, published all together or not at all." />
      <Tabs value={tab} onChange={(v) => setParams({ tab: v ?? 'queue' }, { replace: true })} keepMounted={false}>
        <Tabs.List mb="md">
          {canReview && <Tabs.Tab value="queue">Review queue</Tabs.Tab>}
          {canWrite && <Tabs.Tab value="mine">My changes</Tabs.Tab>}
          {canWrite && <Tabs.Tab value="drafts">My drafts</Tabs.Tab>}
          <Tabs.Tab value="all">All changes</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="queue">
          <ChangeTable query={{ status: 'open' }} exclude={s.me.user.username} empty="Nothing waits for your review." />
        </Tabs.Panel>
        <Tabs.Panel value="mine">
          <ChangeTable query={{ author: s.me.user.username }} withStatusFilter empty="You have submitted no change." />
        </Tabs.Panel>
        <Tabs.Panel value="drafts">
          <Drafts />
        </Tabs.Panel>
        <Tabs.Panel value="all">
          <ChangeTable query={{}} withStatusFilter empty="No changes." />
        </Tabs.Panel>
      </Tabs>
    </>
  );
}

function ChangeTable({ query, exclude, withStatusFilter, empty }: { query: Record<string, string>; exclude?: string; withStatusFilter?: boolean; empty: string }) {
  const tenant = useTenant();
  const [status, setStatus] = useState(query.status ?? 'all');
  const list = useLoad(() => {
    const q = new URLSearchParams({ ...query, limit: '100' });
    if (withStatusFilter && status !== 'all') q.set('status', status);
    return get<{ items: ChangeRequest[]; total: number }>(`${tenantPath(tenant)}/changes?${q}`);
  }, [tenant, JSON.stringify(query), status]);
  const items = (list.data?.items ?? []).filter((c) => c.author !== exclude);
  return (
    <Paper withBorder p="md" radius="md">
      {withStatusFilter && (
        <SegmentedControl
          mb="md"
          aria-label="Status"
          value={status}
          onChange={setStatus}
          data={['all', 'open', 'approved', 'rejected', 'withdrawn'].map((v) => ({ value: v, label: v[0]!.toUpperCase() + v.slice(1) }))}
        />
      )}
      <ErrorAlert error={list.error} />
      {!list.data ? (
        <Loading />
      ) : items.length === 0 ? (
        <Empty title={empty} />
      ) : (
        <Table highlightOnHover verticalSpacing="sm" data-testid="changes-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Change</Table.Th>
              <Table.Th>Items</Table.Th>
              <Table.Th>Author</Table.Th>
              <Table.Th>Submitted</Table.Th>
              <Table.Th>Status</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {items.map((c) => (
              <Table.Tr key={c.id}>
                <Table.Td>
                  <Anchor component={Link} to={`/t/${seg(tenant)}/changes/${c.id}`} fw={500}>
                    #{c.id} {c.title}
                  </Anchor>
                </Table.Td>
                <Table.Td>
                  <Group gap={4}>
                    {c.items.slice(0, 4).map((it, i) => (
                      <Badge key={i} variant="outline" size="sm" color={it.op === 'publish' ? 'gray' : 'orange'} tt="none">
                        {it.op !== 'publish' ? `${it.op} ` : ''}
                        {KINDS[it.kind as Kind]?.singular ?? it.kind} {it.id}
                      </Badge>
                    ))}
                    {c.items.length > 4 && <Text size="xs">+{c.items.length - 4}</Text>}
                  </Group>
                </Table.Td>
                <Table.Td>{c.author}</Table.Td>
                <Table.Td>
                  <Time iso={c.createdAt} />
                </Table.Td>
                <Table.Td>
                  <StatusBadge status={c.status} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Paper>
  );
}

/** Every entity of the tenant with unpublished changes (one page of each kind). */
async function loadDrafts(tenant: string): Promise<Array<{ kind: Kind; e: EntityView }>> {
  const out: Array<{ kind: Kind; e: EntityView }> = [];
  const pages = await Promise.all(KIND_LIST.map((k) => get<{ items: EntityView[] }>(`${tenantPath(tenant)}/${k}?limit=500`).then((r) => r.items.map((e) => ({ kind: k, e })))));
  for (const p of pages) out.push(...p.filter((x) => x.e.pending));
  return out;
}

function Drafts() {
  const tenant = useTenant();
  const s = useSession();
  const navigate = useNavigate();
  const drafts = useLoad(() => loadDrafts(tenant), [tenant]);
  const [picked, setPicked] = useState<string[]>([]);
  const [open, setOpen] = useState(false);
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const key = (d: { kind: Kind; e: EntityView }) => `${d.kind}/${d.e.id}`;
  const mine = (drafts.data ?? []).filter((d) => d.e.updatedBy === s.me.user.username);
  const others = (drafts.data ?? []).filter((d) => d.e.updatedBy !== s.me.user.username);
  const all = [...mine, ...others];
  const submit = async () => {
    setBusy(true);
    setError(null);
    const items = all.filter((d) => picked.includes(key(d))).map((d) => ({ kind: d.kind, id: d.e.id }));
    const r = await act('Submit change', () => post<ChangeRequest>(`${tenantPath(tenant)}/changes`, { title, description: description || undefined, items }), { success: (c) => `Change #${c.id} waits for a reviewer.`, onError: setError });
    setBusy(false);
    if (r) navigate(`/t/${seg(tenant)}/changes/${r.id}`);
  };
  if (drafts.error) return <ErrorAlert error={drafts.error} />;
  if (!drafts.data) return <Loading />;
  if (!all.length) return <Empty title="No unpublished drafts">Create or edit an entity: its draft shows here until it is submitted and published.</Empty>;
  return (
    <Paper withBorder p="md" radius="md">
      <Group justify="space-between" mb="sm">
        <Text size="sm" c="dimmed">
          Pick the drafts that belong together: they are reviewed as one change and go live together.
        </Text>
        <Button leftSection={<IconSend size={16} />} disabled={!picked.length} onClick={() => setOpen(true)}>
          Submit {picked.length || ''} for review
        </Button>
      </Group>
      <Table verticalSpacing="xs" data-testid="drafts-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th w={40}>
              <Checkbox aria-label="Pick all" checked={picked.length === all.length} indeterminate={picked.length > 0 && picked.length < all.length} onChange={(e) => setPicked(e.currentTarget.checked ? all.map(key) : [])} />
            </Table.Th>
            <Table.Th>Entity</Table.Th>
            <Table.Th>What</Table.Th>
            <Table.Th>Last edited</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {all.map((d) => (
            <Table.Tr key={key(d)}>
              <Table.Td>
                <Checkbox aria-label={`Pick ${KINDS[d.kind].singular} ${d.e.id}`} checked={picked.includes(key(d))} onChange={(e) => setPicked(e.currentTarget.checked ? [...picked, key(d)] : picked.filter((x) => x !== key(d)))} />
              </Table.Td>
              <Table.Td>
                <Anchor component={Link} to={`/t/${seg(tenant)}/${d.kind}/${seg(d.e.id)}`} ff="monospace" size="sm">
                  {KINDS[d.kind].singular} {d.e.id}
                </Anchor>
              </Table.Td>
              <Table.Td>
                <Badge variant="light" color={d.e.draft === null ? 'red' : d.e.liveVersion === 0 ? 'teal' : 'yellow'}>
                  {d.e.draft === null ? 'delete' : d.e.liveVersion === 0 ? 'create' : 'update'}
                </Badge>
              </Table.Td>
              <Table.Td>
                <Time iso={d.e.updatedAt} />{' '}
                <Text span size="xs" c="dimmed">
                  by {d.e.updatedBy}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <Modal opened={open} onClose={() => setOpen(false)} title={<Text fw={600}>Submit for review</Text>} size="lg" centered>
        <Stack>
          <TextInput label="Title" required value={title} onChange={(e) => setTitle(e.currentTarget.value)} placeholder="What this change does" error={error?.fieldErrors().title} />
          <Textarea label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} autosize minRows={3} placeholder="Why, and how to check it" />
          <Text size="sm" c="dimmed">
            {picked.length} draft{picked.length === 1 ? '' : 's'}: {picked.join(', ')}
          </Text>
          <ErrorAlert error={error} title="The change was not submitted" />
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setOpen(false)}>
              Cancel
            </Button>
            <Button leftSection={<IconGitPullRequest size={16} />} loading={busy} disabled={!title.trim()} onClick={() => void submit()}>
              Submit
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Paper>
  );
}
