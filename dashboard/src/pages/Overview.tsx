/**
 * The tenant at a glance: how many entities, open changes, gray releases and instances; and per route the
 * requests per second, error rate and p99 latency over every gateway instance, charted since the page opened,
 * with how many instances answered.
 */
import { useEffect, useRef, useState } from 'react';
import { Alert, Anchor, Badge, Group, Paper, SimpleGrid, Stack, Table, Text, ThemeIcon, Title } from '@mantine/core';
import { LineChart } from '@mantine/charts';
import { IconAlertTriangle, IconArrowsSplit, IconGitPullRequest, IconRoute, IconServer, IconTopologyStar3, IconUsers } from '@tabler/icons-react';
import { Link } from 'react-router';
import { ApiError, get, seg, tenantPath, V1, type ChangeRequest, type GrayRelease, type Instance } from '../api';
import { useTenant } from '../App';
import { Empty, ErrorAlert, PageHeader } from '../components/common';
import { useLoad } from '../hooks';
import { baseline, rates, reporting, type MetricsReading, type RouteRates } from '../metrics';

const SAMPLE_MS = 5000;
const KEEP = 60;
const COLORS = ['indigo.6', 'teal.6', 'orange.6', 'grape.6', 'cyan.6', 'red.6', 'lime.7', 'pink.6'];

interface Point {
  t: string;
  rates: RouteRates[];
}

export function OverviewPage() {
  const tenant = useTenant();
  const counts = useLoad(async () => {
    const count = (k: string) => get<{ total: number }>(`${tenantPath(tenant)}/${k}?limit=1`).then((r) => r.total);
    const [routes, upstreams, consumers, open, grays, instances] = await Promise.all([
      count('routes'),
      count('upstreams'),
      count('consumers'),
      get<{ total: number; items: ChangeRequest[] }>(`${tenantPath(tenant)}/changes?status=open&limit=1`).then((r) => r.total, () => null),
      get<{ items: GrayRelease[] }>(`/admin/services/gray/${seg(tenant)}/routes`).then((r) => r.items.length, () => null),
      get<{ items: Instance[] }>(`${V1}/instances`).then((r) => r.items.length, () => null),
    ]);
    return { routes, upstreams, consumers, open, grays, instances };
  }, [tenant]);
  const t = `/t/${seg(tenant)}`;
  const stats = [
    { label: 'Routes', value: counts.data?.routes, icon: <IconRoute size={20} />, to: `${t}/routes`, color: 'indigo' },
    { label: 'Upstreams', value: counts.data?.upstreams, icon: <IconTopologyStar3 size={20} />, to: `${t}/upstreams`, color: 'teal' },
    { label: 'Consumers', value: counts.data?.consumers, icon: <IconUsers size={20} />, to: `${t}/consumers`, color: 'cyan' },
    { label: 'Open changes', value: counts.data?.open, icon: <IconGitPullRequest size={20} />, to: `${t}/changes`, color: 'blue' },
    { label: 'Gray releases', value: counts.data?.grays, icon: <IconArrowsSplit size={20} />, to: `${t}/gray`, color: 'orange' },
    { label: 'Instances', value: counts.data?.instances, icon: <IconServer size={20} />, to: '/instances', color: 'grape' },
  ];
  return (
    <>
      <PageHeader title="Overview" subtitle={`Tenant ${tenant}`} />
      <ErrorAlert error={counts.error} />
      <SimpleGrid cols={{ base: 2, sm: 3, lg: 6 }} mb="lg">
        {stats.map((s) => (
          <Paper key={s.label} withBorder p="md" radius="md" component={Link} to={s.to} style={{ textDecoration: 'none', color: 'inherit' }}>
            <Group justify="space-between" align="flex-start" wrap="nowrap" gap="xs">
              <div style={{ minWidth: 0 }}>
                <Text size="sm" c="dimmed" fw={600} truncate>
                  {s.label}
                </Text>
                <Text fw={700} size="xl" mt={4}>
                  {s.value === undefined ? '…' : s.value === null ? '—' : s.value}
                </Text>
              </div>
              <ThemeIcon variant="light" color={s.color} size="lg" radius="md">
                {s.icon}
              </ThemeIcon>
            </Group>
          </Paper>
        ))}
      </SimpleGrid>
      <Traffic tenant={tenant} />
    </>
  );
}

function Traffic({ tenant }: { tenant: string }) {
  const [points, setPoints] = useState<Point[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [report, setReport] = useState<ReturnType<typeof reporting>>(null);
  const last = useRef<MetricsReading | null>(null);
  useEffect(() => {
    let stopped = false;
    last.current = null;
    setPoints([]);
    setError(null);
    setReport(null);
    const read = async () => {
      try {
        const m = await get<MetricsReading>(`${tenantPath(tenant)}/metrics`);
        if (stopped) return;
        setError(null);
        setReport(reporting(m));
        if (last.current) {
          const r = rates(last.current, m);
          setPoints((p) => [...p, { t: new Date(m.at).toLocaleTimeString(), rates: r }].slice(-KEEP));
        }
        last.current = baseline(last.current, m);
      } catch (e) {
        if (!stopped) setError(e instanceof ApiError ? e : new ApiError(0, 'GH_ERR_CLIENT', String(e)));
      }
    };
    void read();
    const timer = setInterval(() => void read(), SAMPLE_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [tenant]);

  if (error?.status === 404 && error.code === 'GH_ERR_ROUTE_NOT_FOUND') {
    return (
      <Paper withBorder p="md" radius="md">
        <Empty title="Traffic metrics are not available">This control plane does not serve route metrics. Each gateway's status port serves them at /metrics for Prometheus.</Empty>
      </Paper>
    );
  }
  const latest = points.at(-1)?.rates ?? [];
  // The busiest routes get a line each.
  const routes = [...new Set(points.flatMap((p) => p.rates.filter((r) => r.rps > 0).map((r) => r.id)))]
    .sort((a, b) => (latest.find((r) => r.id === b)?.rps ?? 0) - (latest.find((r) => r.id === a)?.rps ?? 0))
    .slice(0, COLORS.length);
  const series = routes.map((id, i) => ({ name: id, color: COLORS[i]! }));
  const data = (pick: (r: RouteRates) => number | null) =>
    points.map((p) => {
      const row: Record<string, string | number | null> = { t: p.t };
      for (const id of routes) {
        const r = p.rates.find((x) => x.id === id);
        row[id] = r ? pick(r) : null;
      }
      return row;
    });
  return (
    <Stack>
      <ErrorAlert error={error} title="Metrics cannot be read" />
      <Group justify="space-between" align="center" gap="sm">
        <Title order={4}>Traffic by route</Title>
        {report && report.total > 0 && (
          <Badge variant="light" color={report.answered === report.total ? 'teal' : report.answered === 0 ? 'red' : 'orange'} data-testid="gateways-reporting">
            {report.answered} of {report.total} {report.total === 1 ? 'gateway' : 'gateways'} reporting
          </Badge>
        )}
      </Group>
      {report && report.missing.length > 0 && (
        <Alert color="orange" icon={<IconAlertTriangle size={18} />} title="Not every gateway answered: the rates leave them out" data-testid="gateways-missing">
          <Stack gap={2}>
            {report.missing.map((m) => (
              <Text key={m.id} size="sm">
                <Text span ff="monospace" size="sm">
                  {m.id}
                </Text>
                : {m.error}
              </Text>
            ))}
          </Stack>
        </Alert>
      )}
      {report && report.total === 0 ? (
        <Paper withBorder p="md" radius="md">
          <Empty title="No gateway is running">No gateway instance is registered with this control plane, so there is no traffic to show.</Empty>
        </Paper>
      ) : points.length === 0 ? (
        <Paper withBorder p="md" radius="md">
          <Text c="dimmed" size="sm">
            Reading the gateways' counters: the first rates show after {SAMPLE_MS / 1000} seconds.
          </Text>
        </Paper>
      ) : routes.length === 0 ? (
        <Paper withBorder p="md" radius="md">
          <Empty title="No traffic">No route of this tenant has answered a request since this page opened.</Empty>
        </Paper>
      ) : (
        <SimpleGrid cols={{ base: 1, lg: 3 }}>
          <Chart title="Requests per second" data={data((r) => Number(r.rps.toFixed(2)))} series={series} unit="/s" />
          <Chart title="Error rate (5xx)" data={data((r) => Number((r.errorRate * 100).toFixed(2)))} series={series} unit="%" />
          <Chart title="p99 latency" data={data((r) => (r.p99Ms === null ? null : Number(r.p99Ms.toFixed(1))))} series={series} unit=" ms" />
        </SimpleGrid>
      )}
      {latest.length > 0 && (
        <Paper withBorder p="md" radius="md">
          <Table verticalSpacing="xs" data-testid="traffic-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Route</Table.Th>
                <Table.Th>Requests/s</Table.Th>
                <Table.Th>Errors</Table.Th>
                <Table.Th>p99</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {[...latest]
                .sort((a, b) => b.rps - a.rps)
                .map((r) => (
                  <Table.Tr key={r.id}>
                    <Table.Td>
                      <Anchor component={Link} to={`/t/${seg(tenant)}/routes/${seg(r.id)}`} ff="monospace" size="sm">
                        {r.id}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>{r.rps.toFixed(2)}</Table.Td>
                    <Table.Td c={r.errorRate > 0.01 ? 'red' : undefined}>{(r.errorRate * 100).toFixed(1)}%</Table.Td>
                    <Table.Td>{r.p99Ms === null ? '—' : `${r.p99Ms.toFixed(1)} ms`}</Table.Td>
                  </Table.Tr>
                ))}
            </Table.Tbody>
          </Table>
        </Paper>
      )}
    </Stack>
  );
}

function Chart({ title, data, series, unit }: { title: string; data: Array<Record<string, string | number | null>>; series: Array<{ name: string; color: string }>; unit: string }) {
  return (
    <Paper withBorder p="md" radius="md">
      <Text fw={600} mb="sm">
        {title}
      </Text>
      <LineChart h={220} data={data} dataKey="t" series={series} curveType="monotone" withDots={false} unit={unit} withLegend legendProps={{ verticalAlign: 'bottom' }} connectNulls tickLine="none" gridAxis="y" />
    </Paper>
  );
}
