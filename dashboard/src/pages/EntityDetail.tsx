/**
 * One entity: its draft and live state side by side, publish (or submit for review), deletion, its version
 * history with a diff of any two versions and rollback, and for upstreams the resolved nodes with health.
 */
import { useMemo, useState } from 'react';
import { Alert, Anchor, Badge, Button, Checkbox, Code, Group, HoverCard, Paper, SimpleGrid, Stack, Table, Tabs, Text, Title, Tooltip } from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { IconArrowBackUp, IconEdit, IconGitPullRequest, IconInfoCircle, IconRocket, IconTrash } from '@tabler/icons-react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router';
import { api, get, post, seg, tenantPath, type Change, type ChangeRequest, type EntityView, type VersionView } from '../api';
import { useTenant } from '../App';
import { Empty, ErrorAlert, JsonBlock, Loading, PageHeader, StateBadge, StatusBadge, Time } from '../components/common';
import { ChangeList, SideBySideDiff } from '../components/Diff';
import { ReleaseModal, useReviewPolicy, type ReleaseOptions } from '../components/ReleaseModal';
import { act, useLoad } from '../hooks';
import { KINDS, type Kind } from '../kinds';
import { useSession } from '../session';

/** After a publish-like call: tell whether it went live or became a change, and go there. */
export function useReleaseOutcome() {
  const tenant = useTenant();
  const navigate = useNavigate();
  return (r: { change?: ChangeRequest } & Record<string, unknown>, what: string, live?: string) => {
    if (r.change) {
      notifications.show({ color: 'blue', title: 'Submitted for review', message: `${what}: change #${r.change.id} waits for a reviewer.` });
      navigate(`/t/${seg(tenant)}/changes/${r.change.id}`);
      return true;
    }
    notifications.show({ color: 'teal', title: 'Live', message: `${what}: ${live ?? `published${typeof r.version === 'number' ? ` as version ${r.version}` : ''}`}.` });
    return false;
  };
}

export function EntityDetailPage({ kind }: { kind: Kind }) {
  const tenant = useTenant();
  const { id = '' } = useParams();
  const s = useSession();
  const navigate = useNavigate();
  const info = KINDS[kind];
  const [params, setParams] = useSearchParams();
  const tab = params.get('tab') ?? 'state';
  const path = `${tenantPath(tenant)}/${kind}/${seg(id)}`;
  const entity = useLoad(() => get<EntityView>(path), [path]);
  const [publishing, setPublishing] = useState(false);
  const outcome = useReleaseOutcome();
  const { reviewRequired } = useReviewPolicy(tenant);
  const canWrite = s.can(tenant, 'write');
  const canPublish = s.can(tenant, 'publish');
  const e = entity.data;
  if (entity.error) return <ErrorAlert error={entity.error} />;
  if (!e) return <Loading />;
  const content = e.draft ?? e.live ?? {};
  const title = kind !== 'global-plugins' && typeof content.name === 'string' && content.name ? `${content.name}` : e.id;

  const remove = () =>
    modals.openConfirmModal({
      title: `Delete ${info.singular} ${e.id}?`,
      children: (
        <Text size="sm">
          {e.liveVersion > 0 ? 'This drafts the deletion: the live version keeps serving until the deletion is published.' : 'This draft was never published: it is removed at once.'}
        </Text>
      ),
      labels: { confirm: 'Delete', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: async () => {
        const r = await act(`Delete ${info.singular}`, () => api<EntityView | { deleted: true }>('DELETE', path, undefined, { headers: { 'if-match': `"${e.revision}"` } }), { success: e.liveVersion > 0 ? 'Deletion drafted: publish it to remove the live version.' : 'Draft removed.' });
        if (r && 'deleted' in r) navigate(`/t/${seg(tenant)}/${kind}`);
        else if (r) void entity.reload();
      },
    });

  return (
    <>
      <PageHeader
        title={<span data-testid="entity-title">{title}</span>}
        subtitle={
          <Group gap="xs" component="span">
            <Code>{e.id}</Code>
            <StateBadge pending={e.pending} liveVersion={e.liveVersion} draftDeleted={e.draft === null} />
            <Text span size="xs" c="dimmed">
              updated <Time iso={e.updatedAt} /> by {e.updatedBy}
            </Text>
          </Group>
        }
        crumbs={[{ label: info.title, to: `/t/${seg(tenant)}/${kind}` }, { label: e.id }]}
        actions={
          <>
            {canWrite && e.draft !== null && (
              <Button variant="default" component={Link} to={`/t/${seg(tenant)}/${kind}/${seg(e.id)}/edit`} leftSection={<IconEdit size={16} />}>
                Edit
              </Button>
            )}
            {canWrite && e.draft !== null && (
              <Button variant="default" color="red" leftSection={<IconTrash size={16} />} onClick={remove}>
                Delete
              </Button>
            )}
            {canPublish && e.pending && (
              <Button leftSection={reviewRequired ? <IconGitPullRequest size={16} /> : <IconRocket size={16} />} onClick={() => setPublishing(true)}>
                {reviewRequired ? 'Publish…' : 'Publish'}
              </Button>
            )}
          </>
        }
      />
      {e.pending && (
        <Alert color="yellow" icon={<IconInfoCircle size={18} />} mb="md">
          {e.draft === null ? 'The deletion of this entity is drafted.' : e.liveVersion === 0 ? 'This is a draft: nothing is served until it is published.' : `The draft differs from live version ${e.liveVersion}: the gateways serve the live version until the draft is published.`}
        </Alert>
      )}
      <Tabs value={tab} onChange={(v) => setParams(v === 'state' ? {} : { tab: v ?? 'state' }, { replace: true })} keepMounted={false}>
        <Tabs.List mb="md">
          <Tabs.Tab value="state">Draft and live</Tabs.Tab>
          <Tabs.Tab value="history">History</Tabs.Tab>
          {kind === 'upstreams' && <Tabs.Tab value="nodes">Nodes</Tabs.Tab>}
          <Tabs.Tab value="json">JSON</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="state">
          <StatePanel e={e} />
        </Tabs.Panel>
        <Tabs.Panel value="history">
          <HistoryPanel kind={kind} id={e.id} liveVersion={e.liveVersion} pending={e.pending} onChanged={() => void entity.reload()} />
        </Tabs.Panel>
        {kind === 'upstreams' && (
          <Tabs.Panel value="nodes">
            <NodesPanel id={e.id} />
          </Tabs.Panel>
        )}
        <Tabs.Panel value="json">
          <SimpleGrid cols={{ base: 1, md: 2 }}>
            <Paper withBorder p="md">
              <Title order={5} mb="xs">
                Draft
              </Title>
              {e.draft ? <JsonBlock value={e.draft} /> : <Text c="dimmed">deletion drafted</Text>}
            </Paper>
            <Paper withBorder p="md">
              <Title order={5} mb="xs">
                Live {e.liveVersion ? `(version ${e.liveVersion})` : ''}
              </Title>
              {e.live ? <JsonBlock value={e.live} /> : <Text c="dimmed">not live</Text>}
            </Paper>
          </SimpleGrid>
        </Tabs.Panel>
      </Tabs>
      <ReleaseModal
        opened={publishing}
        onClose={() => setPublishing(false)}
        tenant={tenant}
        title={`Publish ${info.singular} ${e.id}`}
        verb="Publish"
        run={async (o: ReleaseOptions) => {
          const r = await post(`${path}/publish`, o);
          if (!outcome(r, `${info.singular} ${e.id}`)) await entity.reload();
        }}
      >
        <SideBySideDiff before={e.live} after={e.draft} beforeLabel={e.liveVersion ? `Live (version ${e.liveVersion})` : 'Not live'} afterLabel={e.draft ? 'Draft' : 'Deleted'} />
      </ReleaseModal>
    </>
  );
}

function StatePanel({ e }: { e: EntityView }) {
  if (!e.pending) {
    return (
      <Paper withBorder p="md" radius="md">
        <Text size="sm" c="dimmed" mb="sm">
          The draft is the live version {e.liveVersion}.
        </Text>
        <Fields content={e.live ?? {}} />
      </Paper>
    );
  }
  return (
    <Paper withBorder p="md" radius="md">
      <SideBySideDiff before={e.live} after={e.draft} beforeLabel={e.liveVersion ? `Live (version ${e.liveVersion})` : 'Not live'} afterLabel={e.draft ? 'Draft' : 'Deleted'} />
    </Paper>
  );
}

/** The top-level fields of an entity as a readable table (values as text). */
function Fields({ content }: { content: Record<string, unknown> }) {
  const rows = Object.entries(content);
  if (!rows.length) return <Text c="dimmed">No fields set (defaults apply).</Text>;
  return (
    <Table withRowBorders fz="sm" data-testid="entity-fields">
      <Table.Tbody>
        {rows.map(([k, v]) => (
          <Table.Tr key={k}>
            <Table.Td w={200} c="dimmed" style={{ verticalAlign: 'top' }}>
              {k}
            </Table.Td>
            <Table.Td style={{ wordBreak: 'break-word' }}>
              {typeof v === 'string' ? v : typeof v === 'object' && v !== null ? <Code block>{JSON.stringify(v, null, 2)}</Code> : String(v)}
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

function HistoryPanel({ kind, id, liveVersion, pending, onChanged }: { kind: Kind; id: string; liveVersion: number; pending: boolean; onChanged(): void }) {
  const tenant = useTenant();
  const s = useSession();
  const path = `${tenantPath(tenant)}/${kind}/${seg(id)}`;
  const versions = useLoad(() => get<{ items: VersionView[] }>(`${path}/versions`), [path]);
  const [picked, setPicked] = useState<number[]>([]);
  const [rollbackTo, setRollbackTo] = useState<VersionView | null>(null);
  const outcome = useReleaseOutcome();
  const items = versions.data?.items ?? [];
  const pair = useMemo(() => {
    if (picked.length === 2) return [...picked].sort((a, b) => a - b) as [number, number];
    if (items.length >= 2 && picked.length === 0) return [items[1]!.version, items[0]!.version] as [number, number];
    return null;
  }, [picked, items]);
  const diff = useLoad(async () => (pair ? get<{ changes: Change[] }>(`${path}/versions/${pair[0]}/diff/${pair[1]}`) : null), [path, pair?.[0], pair?.[1]]);
  const canPublish = s.can(tenant, 'publish');
  if (versions.error) return <ErrorAlert error={versions.error} />;
  if (!versions.data) return <Loading />;
  if (!items.length) return <Empty title="Never published">Versions appear here once the entity is published.</Empty>;
  const byNumber = new Map(items.map((v) => [v.version, v]));
  return (
    <Stack>
      <Paper withBorder p="md" radius="md">
        <Text size="sm" c="dimmed" mb="sm">
          Tick two versions to compare them{canPublish ? '; roll back to publish an earlier version again as a new version' : ''}.
        </Text>
        <Table.ScrollContainer minWidth={760}>
          <Table verticalSpacing="xs" highlightOnHover data-testid="versions-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th w={40} />
                <Table.Th>Version</Table.Th>
                <Table.Th>Published</Table.Th>
                <Table.Th>Author</Table.Th>
                <Table.Th>Reviewed by</Table.Th>
                <Table.Th>Note</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((v) => (
                <Table.Tr key={v.version}>
                  <Table.Td>
                    <Checkbox
                      aria-label={`Compare version ${v.version}`}
                      checked={picked.includes(v.version)}
                      onChange={(ev) => setPicked(ev.currentTarget.checked ? [...picked, v.version].slice(-2) : picked.filter((x) => x !== v.version))}
                    />
                  </Table.Td>
                  <Table.Td>
                    <Group gap={6}>
                      <Text fw={600}>v{v.version}</Text>
                      {v.version === liveVersion && (
                        <Badge size="xs" color="teal">
                          live
                        </Badge>
                      )}
                      {v.channel === 'gray' && (
                        <Badge size="xs" color="orange" variant="light">
                          gray
                        </Badge>
                      )}
                      {v.content === null && (
                        <Badge size="xs" color="red" variant="light">
                          deletion
                        </Badge>
                      )}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    <Time iso={v.createdAt} />
                    <Text size="xs" c="dimmed">
                      by {v.publishedBy}
                    </Text>
                  </Table.Td>
                  <Table.Td>{v.author}</Table.Td>
                  <Table.Td>
                    {v.reviewedBy ?? <Text span c="dimmed">—</Text>}
                    {v.changeId !== null && (
                      <Anchor component={Link} to={`/t/${seg(tenant)}/changes/${v.changeId}`} size="xs" ml={6}>
                        #{v.changeId}
                      </Anchor>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={2}>
                      {v.note ?? ''}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {canPublish && v.version !== liveVersion && v.content !== null && v.channel !== 'gray' && (
                      <Tooltip label={pending ? 'Publish or replace the unpublished draft first' : `Publish version ${v.version} again`} withArrow>
                        <Button size="xs" variant="light" color="orange" leftSection={<IconArrowBackUp size={14} />} disabled={pending} onClick={() => setRollbackTo(v)}>
                          Roll back
                        </Button>
                      </Tooltip>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Paper>
      {pair && byNumber.get(pair[0]) && byNumber.get(pair[1]) && (
        <Paper withBorder p="md" radius="md">
          <Title order={5} mb="sm">
            Version {pair[0]} → version {pair[1]}
          </Title>
          <ErrorAlert error={diff.error} />
          {diff.data && (
            <Stack>
              <ChangeList changes={diff.data.changes} />
              <SideBySideDiff before={byNumber.get(pair[0])!.content} after={byNumber.get(pair[1])!.content} beforeLabel={`Version ${pair[0]}`} afterLabel={`Version ${pair[1]}`} />
            </Stack>
          )}
        </Paper>
      )}
      <ReleaseModal
        opened={rollbackTo !== null}
        onClose={() => setRollbackTo(null)}
        tenant={tenant}
        title={`Roll back ${KINDS[kind].singular} ${id} to version ${rollbackTo?.version ?? ''}`}
        verb="Roll back"
        danger
        run={async (o) => {
          const r = await post(`${path}/rollback`, { version: rollbackTo!.version, ...o });
          if (!outcome(r, `Rollback of ${id} to version ${rollbackTo!.version}`)) {
            await versions.reload();
            onChanged();
          }
        }}
      >
        <Text size="sm">
          Version {rollbackTo?.version}'s content is published again as a new version of this {KINDS[kind].singular} alone; everything else keeps its version.
        </Text>
        {rollbackTo && <SideBySideDiff before={byNumber.get(liveVersion)?.content ?? null} after={rollbackTo.content} beforeLabel={`Live (version ${liveVersion})`} afterLabel={`Version ${rollbackTo.version}`} />}
      </ReleaseModal>
    </Stack>
  );
}

interface NodeView {
  host: string;
  port: number;
  weight: number;
  metadata?: Record<string, unknown> | null;
  source?: string;
  health: 'healthy' | 'unhealthy' | 'unknown';
}

function NodesPanel({ id }: { id: string }) {
  const tenant = useTenant();
  const nodes = useLoad(() => get<{ items: NodeView[]; discovery?: unknown }>(`${tenantPath(tenant)}/upstreams/${seg(id)}/nodes`), [tenant, id], { pollMs: 5000 });
  if (nodes.error) {
    if (nodes.error.status === 404 && nodes.error.code === 'GH_ERR_ROUTE_NOT_FOUND') {
      return <Empty title="Resolved nodes are not available">This control plane does not report resolved upstream nodes.</Empty>;
    }
    return <ErrorAlert error={nodes.error} />;
  }
  if (!nodes.data) return <Loading />;
  if (!nodes.data.items.length) return <Empty title="No nodes">This upstream resolves to no node: requests to it get 503.</Empty>;
  return (
    <Paper withBorder p="md" radius="md">
      <Text size="sm" c="dimmed" mb="sm">
        The nodes the gateway balances over now (static and discovered), with their health. Refreshed every 5 seconds; hover a node for its metadata.
      </Text>
      {nodes.data.discovery !== null && nodes.data.discovery !== undefined && typeof nodes.data.discovery === 'object' && (
        <Group gap={6} mb="sm" data-testid="nodes-discovery">
          <Text size="sm" fw={500}>
            Discovery
          </Text>
          {Object.entries(nodes.data.discovery as Record<string, unknown>)
            .filter(([, v]) => v !== null && typeof v !== 'object')
            .map(([k, v]) => (
              <Badge key={k} variant="outline" size="sm" tt="none">
                {k}: {String(v)}
              </Badge>
            ))}
        </Group>
      )}
      <Table verticalSpacing="xs" data-testid="nodes-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Node</Table.Th>
            <Table.Th>Weight</Table.Th>
            <Table.Th>Source</Table.Th>
            <Table.Th>Health</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {nodes.data.items.map((n) => (
            <Table.Tr key={`${n.host}:${n.port}`}>
              <Table.Td>
                <HoverCard width={320} shadow="md" openDelay={150} disabled={!n.metadata || !Object.keys(n.metadata).length}>
                  <HoverCard.Target>
                    <Text ff="monospace" size="sm" style={{ cursor: n.metadata && Object.keys(n.metadata).length ? 'help' : undefined, textDecoration: n.metadata && Object.keys(n.metadata).length ? 'underline dotted' : undefined }}>
                      {n.host}:{n.port}
                    </Text>
                  </HoverCard.Target>
                  <HoverCard.Dropdown>
                    <Text size="xs" fw={600} mb={4}>
                      Metadata
                    </Text>
                    <JsonBlock value={n.metadata} mah={240} />
                  </HoverCard.Dropdown>
                </HoverCard>
              </Table.Td>
              <Table.Td>{n.weight}</Table.Td>
              <Table.Td>{n.source ?? 'static'}</Table.Td>
              <Table.Td>
                <StatusBadge status={n.health} />
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Paper>
  );
}

