/** The entity as JSON or YAML text: the alternative to the generated form, for bulk edits and pasting. */
import { useState } from 'react';
import { Textarea } from '@mantine/core';
import YAML from 'yaml';

export type RawFormat = 'json' | 'yaml';

export function toText(value: unknown, format: RawFormat): string {
  return format === 'json' ? JSON.stringify(value, null, 2) : YAML.stringify(value, { indent: 2, lineWidth: 0 });
}

export function parseText(text: string, format: RawFormat): unknown {
  return format === 'json' ? JSON.parse(text) : YAML.parse(text, { strict: true, uniqueKeys: true });
}

export function RawEditor({ value, onChange, format, readOnly, error }: { value: Record<string, unknown>; onChange(v: Record<string, unknown>): void; format: RawFormat; readOnly?: boolean; error?: string }) {
  const [text, setText] = useState(() => toText(value, format));
  const [bad, setBad] = useState<string | null>(null);
  return (
    <Textarea
      aria-label={format === 'json' ? 'JSON' : 'YAML'}
      data-testid="raw-editor"
      value={text}
      readOnly={readOnly}
      autosize
      minRows={16}
      maxRows={40}
      spellCheck={false}
      error={bad ?? error}
      styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)', fontSize: 13 } }}
      onChange={(e) => {
        const t = e.currentTarget.value;
        setText(t);
        try {
          const v = parseText(t, format);
          if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('the document must be an object');
          setBad(null);
          onChange(v as Record<string, unknown>);
        } catch (err) {
          setBad(`Not valid ${format.toUpperCase()}: ${(err as Error).message}`);
        }
      }}
    />
  );
}
