/** Every gateway instance: address, version, config revision, heartbeat, and the gray releases it serves. */
import { Badge, Group, Paper, Table, Text, Tooltip } from '@mantine/core';
import { get, V1, type Instance } from '../api';
import { Empty, ErrorAlert, Loading, PageHeader, Time } from '../components/common';
import { useLoad } from '../hooks';

function addresses(a: Record<string, unknown> | undefined): string {
  if (!a) return '';
  return Object.entries(a)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' · ');
}

export function InstancesPage() {
  const list = useLoad(() => get<{ items: Instance[] }>(`${V1}/instances`), [], { pollMs: 5000 });
  return (
    <>
      <PageHeader title="Gateway instances" subtitle="The gateways serving this control plane's config, refreshed every 5 seconds." />
      <Paper withBorder p="md" radius="md">
        <ErrorAlert error={list.error} />
        {!list.data ? (
          <Loading />
        ) : list.data.items.length === 0 ? (
          <Empty title="No instance is registered">Gateways register when they start with this control plane's config provider.</Empty>
        ) : (
          <Table.ScrollContainer minWidth={900}>
            <Table verticalSpacing="sm" data-testid="instances-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Instance</Table.Th>
                  <Table.Th>Addresses</Table.Th>
                  <Table.Th>Version</Table.Th>
                  <Table.Th>Config revision</Table.Th>
                  <Table.Th>Heartbeat</Table.Th>
                  <Table.Th>Gray releases served</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.data.items.map((i) => (
                  <Table.Tr key={i.id}>
                    <Table.Td>
                      <Text ff="monospace" size="sm" fw={500}>
                        {i.id}
                      </Text>
                      <Text size="xs" c="dimmed">
                        {i.hostname}
                        {i.pid ? ` · pid ${i.pid}` : ''}
                      </Text>
                      {i.labels && Object.keys(i.labels).length > 0 && (
                        <Group gap={4} mt={4}>
                          {Object.entries(i.labels).map(([k, v]) => (
                            <Badge key={k} size="xs" variant="outline" tt="none">
                              {k}={v}
                            </Badge>
                          ))}
                        </Group>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{addresses(i.addresses)}</Text>
                      {i.statusUrl !== undefined && (
                        <Text size="xs" c="dimmed" ff="monospace">
                          {i.statusUrl === null ? 'no status URL advertised' : `metrics read at ${i.statusUrl}`}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>{i.version ?? '—'}</Table.Td>
                    <Table.Td>
                      <Group gap={6}>
                        <Text size="sm">{i.revision ?? '—'}</Text>
                        {i.configSourceOk === false && (
                          <Tooltip label="This instance cannot read its config source: it keeps serving its last config">
                            <Badge color="red" size="xs">
                              source down
                            </Badge>
                          </Tooltip>
                        )}
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Time iso={i.heartbeat} />
                    </Table.Td>
                    <Table.Td>
                      {(i.gray ?? []).length ? (
                        <Group gap={4}>
                          {i.gray!.map((g) => (
                            <Badge key={`${g.tenant}/${g.routeId}`} color="orange" variant="light" tt="none">
                              {g.tenant}/{g.routeId} v{g.version}
                            </Badge>
                          ))}
                        </Group>
                      ) : (
                        <Text size="sm" c="dimmed">
                          none
                        </Text>
                      )}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </Paper>
    </>
  );
}
