/** Small pieces every screen uses: page header, error and empty states, times, badges, JSON blocks. */
import type { ReactNode } from 'react';
import { Alert, Anchor, Badge, Box, Breadcrumbs, Center, Code, Group, Loader, ScrollArea, Stack, Text, Title, Tooltip } from '@mantine/core';
import { IconAlertTriangle, IconInbox } from '@tabler/icons-react';
import { Link } from 'react-router';
import type { ApiError } from '../api';

export function PageHeader({ title, subtitle, actions, crumbs }: { title: ReactNode; subtitle?: ReactNode; actions?: ReactNode; crumbs?: Array<{ label: string; to?: string }> }) {
  return (
    <Stack gap={4} mb="lg">
      {crumbs && crumbs.length > 0 && (
        <Breadcrumbs separator="›" fz="sm">
          {crumbs.map((c, i) =>
            c.to ? (
              <Anchor key={i} component={Link} to={c.to} size="sm">
                {c.label}
              </Anchor>
            ) : (
              <Text key={i} size="sm" c="dimmed">
                {c.label}
              </Text>
            ),
          )}
        </Breadcrumbs>
      )}
      <Group justify="space-between" align="flex-end" wrap="wrap" gap="sm">
        <div style={{ minWidth: 0 }}>
          <Title order={2} style={{ wordBreak: 'break-word' }}>
            {title}
          </Title>
          {subtitle && (
            <Text c="dimmed" size="sm" mt={2}>
              {subtitle}
            </Text>
          )}
        </div>
        {actions && <Group gap="xs">{actions}</Group>}
      </Group>
    </Stack>
  );
}

export function ErrorAlert({ error, title }: { error: ApiError | null | undefined; title?: string }) {
  if (!error) return null;
  return (
    <Alert color="red" icon={<IconAlertTriangle size={18} />} title={title ?? 'Something went wrong'} mb="md" data-testid="error-alert">
      <Text size="sm">{error.message}</Text>
      {error.details.length > 0 && (
        <Box component="ul" m={0} mt={4} pl="md">
          {error.details.map((d, i) => (
            <li key={i}>
              <Text size="sm">
                {d.path ? <Code>{d.path}</Code> : null} {d.message}
              </Text>
            </li>
          ))}
        </Box>
      )}
      <Text size="xs" c="dimmed" mt={4}>
        {error.code}
      </Text>
    </Alert>
  );
}

export function Loading({ label }: { label?: string }) {
  return (
    <Center py="xl">
      <Group gap="xs">
        <Loader size="sm" />
        <Text c="dimmed" size="sm">
          {label ?? 'Loading…'}
        </Text>
      </Group>
    </Center>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <Center py={48}>
      <Stack align="center" gap={6}>
        <IconInbox size={36} stroke={1.3} color="var(--mantine-color-dimmed)" />
        <Text fw={500}>{title}</Text>
        {children && (
          <Text size="sm" c="dimmed" ta="center" maw={420}>
            {children}
          </Text>
        )}
      </Stack>
    </Center>
  );
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function relTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((t - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 45) return rtf.format(s, 'second');
  if (a < 2700) return rtf.format(Math.round(s / 60), 'minute');
  if (a < 64800) return rtf.format(Math.round(s / 3600), 'hour');
  if (a < 2592000) return rtf.format(Math.round(s / 86400), 'day');
  return new Date(t).toLocaleDateString();
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <Text span c="dimmed">—</Text>;
  return (
    <Tooltip label={new Date(iso).toLocaleString()} openDelay={300}>
      <Text span size="sm">
        {relTime(iso)}
      </Text>
    </Tooltip>
  );
}

export function JsonBlock({ value, mah = 480 }: { value: unknown; mah?: number }) {
  return (
    <ScrollArea.Autosize mah={mah}>
      <Code block data-testid="json">
        {JSON.stringify(value, null, 2)}
      </Code>
    </ScrollArea.Autosize>
  );
}

const STATUS_COLORS: Record<string, string> = {
  open: 'blue',
  approved: 'teal',
  rejected: 'red',
  withdrawn: 'gray',
  serving: 'teal',
  pending: 'yellow',
  gone: 'red',
  unknown: 'gray',
  healthy: 'teal',
  unhealthy: 'red',
};

export function StatusBadge({ status }: { status: string }) {
  return (
    <Badge variant="light" color={STATUS_COLORS[status] ?? 'gray'}>
      {status}
    </Badge>
  );
}

const ROLE_COLORS: Record<string, string> = { admin: 'grape', editor: 'blue', reviewer: 'orange', viewer: 'gray' };

export function RoleBadge({ role }: { role: string | null }) {
  if (!role) return null;
  return (
    <Badge variant="dot" color={ROLE_COLORS[role] ?? 'gray'}>
      {role}
    </Badge>
  );
}

/** Draft/live state of an entity as one badge. */
export function StateBadge({ pending, liveVersion, draftDeleted }: { pending: boolean; liveVersion: number; draftDeleted?: boolean }) {
  const style = { overflow: 'visible' as const, flexShrink: 0 };
  if (draftDeleted)
    return (
      <Badge color="red" variant="light" style={style}>
        deletion drafted
      </Badge>
    );
  if (liveVersion === 0)
    return (
      <Badge color="gray" variant="light" style={style}>
        draft only
      </Badge>
    );
  if (pending)
    return (
      <Badge color="yellow" variant="light" style={style}>
        v{liveVersion} live + draft
      </Badge>
    );
  return (
    <Badge color="teal" variant="light" style={style}>
      v{liveVersion} live
    </Badge>
  );
}
