/**
 * Gray releases: put a route version on chosen gateway instances (from the live instance list), see which
 * instance serves which version, stop (back to the live version) or promote (live everywhere).
 */
import { useState } from 'react';
import { Alert, Anchor, Badge, Button, Card, Group, MultiSelect, Paper, Select, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { modals } from '@mantine/modals';
import { IconArrowsSplit, IconInfoCircle, IconPlayerStop, IconRocket } from '@tabler/icons-react';
import { Link } from 'react-router';
import { get, post, del, seg, tenantPath, V1, type EntityView, type GrayRelease, type Instance, type VersionView } from '../api';
import { useTenant } from '../App';
import { Empty, ErrorAlert, Loading, PageHeader, StatusBadge, Time } from '../components/common';
import { ReleaseModal } from '../components/ReleaseModal';
import { act, useLoad } from '../hooks';
import { useSession } from '../session';
import { useReleaseOutcome } from './EntityDetail';

export function GrayPage() {
  const tenant = useTenant();
  const s = useSession();
  const base = `/admin/services/gray/${seg(tenant)}/routes`;
  const grays = useLoad(() => get<{ items: GrayRelease[] }>(base), [base], { pollMs: 3000 });
  const instances = useLoad(() => get<{ items: Instance[] }>(`${V1}/instances`), [], { pollMs: 3000 });
  // The release being promoted stays set while its dialog closes (its title names the route).
  const [promoting, setPromoting] = useState<GrayRelease | null>(null);
  const [promoteOpen, setPromoteOpen] = useState(false);
  const outcome = useReleaseOutcome();
  const canPublish = s.can(tenant, 'publish');

  const stop = (g: GrayRelease) =>
    modals.openConfirmModal({
      title: `Stop the gray release of route ${g.routeId}?`,
      children: <Text size="sm">Its instances go back to the live version at once. No review is needed: it returns to what was approved.</Text>,
      labels: { confirm: 'Stop', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: async () => {
        if ((await act('Stop gray release', () => del(`${base}/${seg(g.routeId)}`), { success: `Route ${g.routeId}: every instance serves the live version again.` })) !== undefined) await Promise.all([grays.reload(), instances.reload()]);
      },
    });

  return (
    <>
      <PageHeader title="Gray releases" subtitle="Try a route version on chosen gateway instances before it goes live everywhere." />
      <Stack>
        {canPublish && <StartGray instances={instances.data?.items ?? []} onStarted={() => void Promise.all([grays.reload(), instances.reload()])} />}
        <Paper withBorder p="md" radius="md">
          <Title order={4} mb="sm">
            Active
          </Title>
          <ErrorAlert error={grays.error} />
          {!grays.data ? (
            <Loading />
          ) : grays.data.items.length === 0 ? (
            <Empty title="No gray release is running">Every instance serves the live version of every route.</Empty>
          ) : (
            <SimpleGrid cols={{ base: 1, md: 2 }} data-testid="gray-list">
              {grays.data.items.map((g) => (
                <Card key={g.routeId} withBorder radius="md" data-testid="gray-card">
                  <Group justify="space-between" mb="xs">
                    <Anchor component={Link} to={`/t/${seg(tenant)}/routes/${seg(g.routeId)}`} fw={600} ff="monospace">
                      route {g.routeId}
                    </Anchor>
                    <Group gap={4}>
                      <Badge color="orange">gray {g.version === null ? 'draft' : `v${g.version}`}</Badge>
                      <Badge color="teal" variant="light">
                        live v{g.baseVersion}
                      </Badge>
                    </Group>
                  </Group>
                  <Text size="xs" c="dimmed" mb="sm">
                    started by {g.createdBy} <Time iso={g.createdAt} />
                  </Text>
                  <Table fz="sm" verticalSpacing={4}>
                    <Table.Tbody>
                      {g.instances.map((i) => (
                        <Table.Tr key={i.id}>
                          <Table.Td ff="monospace">{i.id}</Table.Td>
                          <Table.Td>
                            <StatusBadge status={i.state} />
                          </Table.Td>
                        </Table.Tr>
                      ))}
                    </Table.Tbody>
                  </Table>
                  {canPublish && (
                    <Group justify="flex-end" mt="sm">
                      <Button size="xs" variant="default" color="red" leftSection={<IconPlayerStop size={14} />} onClick={() => stop(g)}>
                        Stop
                      </Button>
                      <Button
                        size="xs"
                        leftSection={<IconRocket size={14} />}
                        onClick={() => {
                          setPromoting(g);
                          setPromoteOpen(true);
                        }}
                      >
                        Promote
                      </Button>
                    </Group>
                  )}
                </Card>
              ))}
            </SimpleGrid>
          )}
        </Paper>
        <Paper withBorder p="md" radius="md">
          <Title order={4} mb="sm">
            Where each version runs
          </Title>
          <ErrorAlert error={instances.error} />
          {!instances.data ? (
            <Loading />
          ) : (
            <Table verticalSpacing="xs" data-testid="gray-instances">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Instance</Table.Th>
                  <Table.Th>Config revision</Table.Th>
                  <Table.Th>Gray versions served (this tenant)</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {instances.data.items.map((i) => {
                  const mine = (i.gray ?? []).filter((g) => g.tenant === tenant);
                  return (
                    <Table.Tr key={i.id}>
                      <Table.Td ff="monospace">{i.id}</Table.Td>
                      <Table.Td>{i.revision ?? '—'}</Table.Td>
                      <Table.Td>
                        {mine.length ? (
                          <Group gap={4}>
                            {mine.map((g) => (
                              <Badge key={g.routeId} color="orange" variant="light" tt="none">
                                {g.routeId} v{g.version}
                              </Badge>
                            ))}
                          </Group>
                        ) : (
                          <Text size="sm" c="dimmed">
                            live versions only
                          </Text>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          )}
        </Paper>
      </Stack>
      <ReleaseModal
        opened={promoteOpen}
        onClose={() => setPromoteOpen(false)}
        tenant={tenant}
        title={`Promote the gray version of route ${promoting?.routeId ?? ''}`}
        verb="Promote"
        run={async (o) => {
          const r = await post(`${base}/${seg(promoting!.routeId)}/promote`, o);
          if (!outcome(r, `Route ${promoting!.routeId}`)) await Promise.all([grays.reload(), instances.reload()]);
        }}
      >
        <Text size="sm">The gray version becomes the live version on every instance, and the gray release ends.</Text>
      </ReleaseModal>
    </>
  );
}

function StartGray({ instances, onStarted }: { instances: Instance[]; onStarted(): void }) {
  const tenant = useTenant();
  const routes = useLoad(() => get<{ items: EntityView[] }>(`${tenantPath(tenant)}/routes?limit=500`), [tenant]);
  const [routeId, setRouteId] = useState<string | null>(null);
  const [version, setVersion] = useState<string | null>(null);
  const [picked, setPicked] = useState<string[]>([]);
  // What the confirmation is about, kept while the dialog closes after the form is reset.
  const [confirming, setConfirming] = useState<{ routeId: string; version: string; instances: string[] } | null>(null);
  const outcome = useReleaseOutcome();
  const route = routes.data?.items.find((r) => r.id === routeId);
  const versions = useLoad(async () => (routeId ? get<{ items: VersionView[] }>(`${tenantPath(tenant)}/routes/${seg(routeId)}/versions`) : { items: [] }), [tenant, routeId]);
  const versionOptions = [
    ...(route?.pending && route.draft ? [{ value: 'draft', label: 'The current draft (published as a new version)' }] : []),
    ...(versions.data?.items ?? []).filter((v) => v.content !== null && v.version !== route?.liveVersion).map((v) => ({ value: String(v.version), label: `Version ${v.version}${v.note ? ` — ${v.note}` : ''}` })),
  ];
  return (
    <Paper withBorder p="md" radius="md">
      <Title order={4} mb={4}>
        Start a gray release
      </Title>
      <Text size="sm" c="dimmed" mb="md">
        The chosen instances serve the chosen version of the route; every other instance keeps the live version.
      </Text>
      {instances.length === 0 && (
        <Alert color="yellow" icon={<IconInfoCircle size={18} />} mb="sm">
          No gateway instance is registered.
        </Alert>
      )}
      <Group align="flex-end" gap="sm" wrap="wrap">
        <Select label="Route" placeholder="Choose a route" searchable data={(routes.data?.items ?? []).filter((r) => r.liveVersion > 0).map((r) => r.id)} value={routeId} onChange={(v) => { setRouteId(v); setVersion(null); }} w={240} />
        <Select label="Version" placeholder={routeId ? (versionOptions.length ? 'Choose a version' : 'No other version') : 'Choose a route first'} data={versionOptions} value={version} onChange={setVersion} disabled={!routeId} w={320} />
        <MultiSelect label="Instances" placeholder="Choose instances" data={instances.map((i) => ({ value: i.id, label: `${i.id}${i.hostname ? ` (${i.hostname})` : ''}` }))} value={picked} onChange={setPicked} searchable w={320} />
        <Button leftSection={<IconArrowsSplit size={16} />} disabled={!routeId || !version || !picked.length} onClick={() => setConfirming({ routeId: routeId!, version: version!, instances: picked })}>
          Start…
        </Button>
      </Group>
      <ReleaseModal
        opened={confirming !== null}
        onClose={() => setConfirming(null)}
        tenant={tenant}
        title={`Gray release of route ${confirming?.routeId ?? ''}`}
        verb="Start gray release"
        run={async (o) => {
          const c = confirming!;
          const r = await post(`/admin/services/gray/${seg(tenant)}/routes`, { routeId: c.routeId, instances: c.instances, version: c.version === 'draft' ? 'draft' : Number(c.version), ...o });
          if (!outcome(r, `Gray release of route ${c.routeId}`, `version ${String(r.version)} on ${c.instances.join(', ')}`)) onStarted();
          setRouteId(null);
          setVersion(null);
          setPicked([]);
        }}
      >
        {confirming && (
          <Text size="sm">
            {confirming.version === 'draft' ? 'The current draft' : `Version ${confirming.version}`} of route {confirming.routeId} on {confirming.instances.join(', ')}; every other instance keeps the live version.
          </Text>
        )}
      </ReleaseModal>
    </Paper>
  );
}
