/**
 * Side-by-side diff of two JSON documents (pretty-printed, keys in a stable order) and the field-by-field
 * change list the API computes. Everything is rendered as text.
 */
import { useMemo } from 'react';
import { Badge, Box, Code, Group, ScrollArea, Table, Text } from '@mantine/core';
import type { Change } from '../api';
import classes from './Diff.module.css';
import { diffLines, stableJson, type Row } from '../diff-lines';

export function SideBySideDiff({ before, after, beforeLabel, afterLabel, context = 4 }: { before: unknown; after: unknown; beforeLabel: string; afterLabel: string; context?: number }) {
  const rows = useMemo(() => {
    const a = stableJson(before);
    const b = stableJson(after);
    return diffLines(a ? a.split('\n') : [], b ? b.split('\n') : []);
  }, [before, after]);
  // Unchanged stretches longer than the context are folded.
  const shown: Array<Row | { fold: number }> = [];
  const changed = rows.map((r) => r.kind !== 'same');
  const near = (i: number) => {
    for (let d = -context; d <= context; d++) if (changed[i + d]) return true;
    return false;
  };
  let folded = 0;
  rows.forEach((r, i) => {
    if (near(i) || rows.length <= context * 4) {
      if (folded) shown.push({ fold: folded });
      folded = 0;
      shown.push(r);
    } else folded++;
  });
  if (folded) shown.push({ fold: folded });
  const same = !changed.some(Boolean);
  return (
    <Box className={classes.diff} data-testid="diff">
      <div className={classes.head}>
        <Text size="xs" fw={600}>
          {beforeLabel}
        </Text>
        <Text size="xs" fw={600}>
          {afterLabel}
        </Text>
      </div>
      <ScrollArea.Autosize mah={560}>
        {same && (
          <Text size="sm" c="dimmed" p="sm">
            No differences.
          </Text>
        )}
        <table className={classes.table}>
          <tbody>
            {shown.map((r, i) =>
              'fold' in r ? (
                <tr key={i} className={classes.fold}>
                  <td colSpan={4}>⋯ {r.fold} unchanged lines</td>
                </tr>
              ) : (
                <tr key={i}>
                  <td className={classes.num}>{r.ln ?? ''}</td>
                  <td className={`${classes.code} ${r.kind === 'del' || r.kind === 'mod' ? classes.del : ''} ${r.left === null ? classes.empty : ''}`}>{r.left ?? ''}</td>
                  <td className={classes.num}>{r.rn ?? ''}</td>
                  <td className={`${classes.code} ${r.kind === 'add' || r.kind === 'mod' ? classes.add : ''} ${r.right === null ? classes.empty : ''}`}>{r.right ?? ''}</td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      </ScrollArea.Autosize>
    </Box>
  );
}

const short = (v: unknown) => {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
};

export function ChangeList({ changes }: { changes: Change[] }) {
  if (!changes.length) return <Text size="sm" c="dimmed">No field changes.</Text>;
  return (
    <Table striped withTableBorder fz="sm">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Field</Table.Th>
          <Table.Th>Change</Table.Th>
          <Table.Th>From</Table.Th>
          <Table.Th>To</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {changes.map((c, i) => (
          <Table.Tr key={i}>
            <Table.Td>
              <Code>{c.path}</Code>
            </Table.Td>
            <Table.Td>
              <Badge size="sm" variant="light" color={c.op === 'add' ? 'teal' : c.op === 'remove' ? 'red' : 'yellow'}>
                {c.op}
              </Badge>
            </Table.Td>
            <Table.Td ff="monospace">{short(c.from)}</Table.Td>
            <Table.Td ff="monospace">{short(c.to)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

export function DiffLegend() {
  return (
    <Group gap="xs">
      <Badge color="red" variant="light" size="sm">
        removed
      </Badge>
      <Badge color="teal" variant="light" size="sm">
        added
      </Badge>
    </Group>
  );
}
