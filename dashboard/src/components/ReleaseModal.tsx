/**
 * Confirm a release (publish, rollback, gray release, promote) by the tenant's policy: publish at once where
 * no review is needed, else submit for review, with the skip-review lane offered to the roles the tenant
 * allows. Tells the caller whether it went live or became a change.
 */
import { useEffect, useState, type ReactNode } from 'react';
import { Alert, Button, Checkbox, Group, Modal, Stack, Text, Textarea } from '@mantine/core';
import { IconAlertTriangle, IconInfoCircle } from '@tabler/icons-react';
import { ApiError } from '../api';
import { useSession } from '../session';
import { ErrorAlert } from './common';

export interface ReleaseOptions {
  note?: string;
  skipReview?: boolean;
}

export function useReviewPolicy(tenant: string) {
  const s = useSession();
  const t = s.tenants.find((x) => x.id === tenant);
  const role = s.roleIn(tenant);
  const reviewRequired = t?.reviewRequired ?? true;
  return { reviewRequired, maySkip: reviewRequired && role !== null && (t?.skipReviewRoles ?? []).includes(role) };
}

export function ReleaseModal({
  opened,
  onClose,
  tenant,
  title,
  children,
  verb,
  danger,
  withNote = true,
  run,
}: {
  opened: boolean;
  onClose(): void;
  tenant: string;
  title: string;
  children?: ReactNode;
  /** "Publish", "Roll back", "Start gray release", "Promote". */
  verb: string;
  danger?: boolean;
  withNote?: boolean;
  run(o: ReleaseOptions): Promise<unknown>;
}) {
  const { reviewRequired, maySkip } = useReviewPolicy(tenant);
  const [note, setNote] = useState('');
  const [skip, setSkip] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    if (opened) {
      setNote('');
      setSkip(false);
      setError(null);
    }
  }, [opened]);
  const direct = !reviewRequired || skip;
  return (
    <Modal opened={opened} onClose={onClose} title={<Text fw={600}>{title}</Text>} size="lg" centered>
      <Stack>
        {children}
        {reviewRequired ? (
          <Alert color={skip ? 'orange' : 'blue'} icon={skip ? <IconAlertTriangle size={18} /> : <IconInfoCircle size={18} />}>
            {skip ? 'This goes live at once, without a review. The audit log records it as a skip-review publish.' : 'This tenant requires review: this becomes a change that a reviewer other than you approves before it goes live.'}
          </Alert>
        ) : (
          <Alert color="teal" icon={<IconInfoCircle size={18} />}>
            This tenant publishes without review: this goes live on every gateway at once.
          </Alert>
        )}
        {withNote && <Textarea label="Note" placeholder="Why (kept with the version and in the audit log)" value={note} onChange={(e) => setNote(e.currentTarget.value)} autosize minRows={2} maxLength={1024} />}
        {maySkip && <Checkbox label="Skip review (emergency lane)" checked={skip} onChange={(e) => setSkip(e.currentTarget.checked)} />}
        <ErrorAlert error={error} title={`${verb} was refused`} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button
            color={danger ? 'red' : undefined}
            loading={busy}
            onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                await run({ note: note.trim() || undefined, skipReview: skip || undefined });
                onClose();
              } catch (e) {
                setError(e instanceof ApiError ? e : new ApiError(0, 'GH_ERR_CLIENT', String(e)));
              } finally {
                setBusy(false);
              }
            }}
          >
            {direct ? verb : `${verb}: submit for review`}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
