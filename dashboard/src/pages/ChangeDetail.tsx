/**
 * One change: what each item does (side by side with what is live now), and the review actions: approve,
 * reject with a comment, withdraw, or rebase after the live version moved on.
 */
import { useState } from 'react';
import { Alert, Anchor, Badge, Button, Card, Group, Modal, Paper, Stack, Text, Textarea, Title } from '@mantine/core';
import { modals } from '@mantine/modals';
import { IconCheck, IconGitMerge, IconInfoCircle, IconX, IconArrowBackUp } from '@tabler/icons-react';
import { Link, useParams } from 'react-router';
import { ApiError, get, post, seg, tenantPath, type ChangeItemView, type ChangeRequest } from '../api';
import { useTenant } from '../App';
import { ErrorAlert, Loading, PageHeader, StatusBadge, Time } from '../components/common';
import { ChangeList, SideBySideDiff } from '../components/Diff';
import { act, useLoad } from '../hooks';
import { KINDS, type Kind } from '../kinds';
import { useSession } from '../session';

export function ChangeDetailPage() {
  const tenant = useTenant();
  const { id = '' } = useParams();
  const s = useSession();
  const path = `${tenantPath(tenant)}/changes/${seg(id)}`;
  const change = useLoad(() => get<ChangeRequest>(path), [path]);
  const [deciding, setDeciding] = useState<'approve' | 'reject' | null>(null);
  const [comment, setComment] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [conflict, setConflict] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const c = change.data;
  if (change.error) return <ErrorAlert error={change.error} />;
  if (!c) return <Loading />;
  const me = s.me.user.username;
  const isAuthor = c.author === me;
  const open = c.status === 'open';
  const canReview = open && s.can(tenant, 'review') && !isAuthor;
  const canHandle = open && (isAuthor || s.can(tenant, 'manage'));
  // An item whose live version moved on since it was submitted: approval would be refused until it is rebased.
  const stale = open && c.items.some(isStale);

  const decide = async () => {
    setBusy(true);
    setError(null);
    const kind = deciding!;
    const r = await act(
      kind === 'approve' ? `Approve change #${c.id}` : `Reject change #${c.id}`,
      () => post(`${path}/${kind}`, kind === 'approve' ? (comment.trim() ? { comment: comment.trim() } : {}) : { comment: comment.trim() }),
      {
        success: kind === 'approve' ? 'Approved: its items are live.' : 'Rejected: nothing went live.',
        onError: (e) => {
          setError(e);
          if (e.code === 'GH_ERR_ADMIN_CONFLICT') setConflict(e);
        },
      },
    );
    setBusy(false);
    if (r) {
      setDeciding(null);
      setComment('');
      await change.reload();
    }
  };

  const withdraw = () =>
    modals.openConfirmModal({
      title: `Withdraw change #${c.id}?`,
      children: <Text size="sm">The change is closed without going live; the drafts stay as they are.</Text>,
      labels: { confirm: 'Withdraw', cancel: 'Keep it' },
      confirmProps: { color: 'red' },
      onConfirm: async () => {
        if (await act('Withdraw change', () => post(`${path}/withdraw`), { success: 'Withdrawn.' })) await change.reload();
      },
    });

  const rebase = async () => {
    if (await act('Rebase change', () => post(`${path}/rebase`), { success: 'Rebased on the current live versions: a reviewer sees the new differences.' })) {
      setConflict(null);
      await change.reload();
    }
  };

  return (
    <>
      <PageHeader
        title={
          <Group gap="sm" component="span">
            <span>
              #{c.id} {c.title}
            </span>
            <StatusBadge status={c.status} />
          </Group>
        }
        subtitle={
          <>
            by {c.author}, <Time iso={c.createdAt} />
            {c.decidedBy && (
              <>
                {' '}
                · {c.status} by {c.decidedBy} <Time iso={c.decidedAt} />
              </>
            )}
          </>
        }
        crumbs={[{ label: 'Changes', to: `/t/${seg(tenant)}/changes` }, { label: `#${c.id}` }]}
        actions={
          <>
            {canHandle && (
              <Button variant="default" leftSection={<IconArrowBackUp size={16} />} onClick={withdraw}>
                Withdraw
              </Button>
            )}
            {canReview && (
              <Button color="red" variant="light" leftSection={<IconX size={16} />} onClick={() => setDeciding('reject')}>
                Reject
              </Button>
            )}
            {canReview && (
              <Button color="teal" leftSection={<IconCheck size={16} />} disabled={stale} onClick={() => setDeciding('approve')}>
                Approve
              </Button>
            )}
          </>
        }
      />
      {open && isAuthor && s.can(tenant, 'review') && (
        <Alert color="blue" icon={<IconInfoCircle size={18} />} mb="md">
          You wrote this change: another reviewer approves it.
        </Alert>
      )}
      {open && (conflict || stale) && (
        <Alert color="orange" icon={<IconGitMerge size={18} />} mb="md" title="The live config moved on" data-testid="change-stale">
          <Text size="sm">{conflict ? conflict.message : 'What is live changed since this change was submitted: it cannot be approved until it is rebased on the current live versions.'}</Text>
          {canHandle ? (
            <Button mt="sm" size="xs" variant="light" color="orange" onClick={() => void rebase()}>
              Rebase on the current live versions
            </Button>
          ) : (
            <Text size="sm" mt={4}>
              Its author can rebase it on the current live versions.
            </Text>
          )}
        </Alert>
      )}
      {(c.description || c.comment) && (
        <Paper withBorder p="md" radius="md" mb="md">
          {c.description && (
            <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>
              {c.description}
            </Text>
          )}
          {c.comment && (
            <Alert mt={c.description ? 'sm' : 0} color={c.status === 'rejected' ? 'red' : 'gray'} title={`Comment by ${c.decidedBy ?? 'reviewer'}`} data-testid="change-comment">
              <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>
                {c.comment}
              </Text>
            </Alert>
          )}
        </Paper>
      )}
      <Stack>
        {c.items.map((it, i) => (
          <ItemCard key={i} it={it} tenant={tenant} />
        ))}
      </Stack>
      <Modal opened={deciding !== null} onClose={() => setDeciding(null)} title={<Text fw={600}>{deciding === 'approve' ? `Approve change #${c.id}` : `Reject change #${c.id}`}</Text>} centered>
        <Stack>
          <Text size="sm">{deciding === 'approve' ? 'Every item goes live at once, on every gateway, or none does.' : 'Nothing goes live; tell the author why.'}</Text>
          <Textarea label="Comment" required={deciding === 'reject'} value={comment} onChange={(e) => setComment(e.currentTarget.value)} autosize minRows={3} />
          <ErrorAlert error={error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeciding(null)}>
              Cancel
            </Button>
            <Button color={deciding === 'approve' ? 'teal' : 'red'} loading={busy} disabled={deciding === 'reject' && !comment.trim()} onClick={() => void decide()}>
              {deciding === 'approve' ? 'Approve and publish' : 'Reject'}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}

/** The item's entity went live again after the change was made from it (a promote is checked by the API). */
function isStale(it: ChangeItemView): boolean {
  return it.liveVersion !== undefined && it.op !== 'promote' && it.liveVersion !== it.baseVersion;
}

function ItemCard({ it, tenant }: { it: ChangeItemView; tenant: string }) {
  const info = KINDS[it.kind as Kind];
  const what =
    it.op === 'gray'
      ? `Gray release to ${(it.instances ?? []).join(', ')}`
      : it.op === 'promote'
        ? `Promote gray version ${it.grayVersion}`
        : it.content === null
          ? 'Delete'
          : it.baseVersion === 0
            ? 'Create'
            : `Update (based on version ${it.baseVersion})`;
  const stale = isStale(it);
  return (
    <Card withBorder radius="md" padding="md" data-testid="change-item">
      <Group justify="space-between" mb="sm">
        <Group gap="xs">
          <Badge variant="light" color={it.op === 'publish' ? 'indigo' : 'orange'}>
            {it.op}
          </Badge>
          <Anchor component={Link} to={`/t/${seg(tenant)}/${it.kind}/${seg(it.id)}`} fw={600} ff="monospace">
            {info?.singular ?? it.kind} {it.id}
          </Anchor>
          <Text size="sm" c="dimmed">
            {what}
          </Text>
        </Group>
        {stale && (
          <Badge color="orange" variant="outline">
            live is now version {it.liveVersion}
          </Badge>
        )}
      </Group>
      {it.note && (
        <Text size="sm" mb="sm">
          {it.note}
        </Text>
      )}
      {/* A whole entity created or deleted is one "(entity)" change: the side-by-side view says it all. */}
      {it.changes && !(it.changes.length === 1 && it.changes[0]!.path === '(entity)') && (
        <>
          <Title order={6} mb={4}>
            Field changes
          </Title>
          <ChangeList changes={it.changes} />
        </>
      )}
      {(it.content !== undefined || it.live !== undefined) && (
        <div style={{ marginTop: 12 }}>
          <SideBySideDiff before={it.live ?? null} after={it.content ?? null} beforeLabel={it.liveVersion ? `Live now (version ${it.liveVersion})` : 'Not live now'} afterLabel={it.op === 'gray' ? 'Gray version' : it.content === null ? 'Deleted' : 'Proposed'} />
        </div>
      )}
    </Card>
  );
}
