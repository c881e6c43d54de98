/**
 * @module config/declarative-file
 * Reads a declarative file (YAML or JSON) and validates it, reporting every problem with its field path.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { DeclarativeConfig } from '../model/declarative.js';
import { validateDeclarative, type ConfigProblem, type PluginValidator, type ValidationResult } from '../model/validate.js';

/** Parse YAML/JSON text; syntax errors become problems with line and column. */
export function parseDeclarativeText(text: string): { ok: true; value: unknown } | { ok: false; problems: ConfigProblem[] } {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        path: e.linePos ? `(line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '(file)',
        // The library's messages can quote bits of the value (escape sequences): keep only its error kind.
        message: `is not valid YAML (${e.code.toLowerCase().replace(/_/g, ' ')})`,
      })),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // The yaml library's messages quote the alias (which may be a secret starting with "*"): say what, not which.
    const what = /alias/i.test((e as Error).message) ? 'has a YAML alias that cannot be resolved or too many aliases (quote values that start with "*" or "&")' : 'cannot be read as YAML';
    return { ok: false, problems: [{ path: '(file)', message: what }] };
  }
  if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value))) {
    return { ok: false, problems: [{ path: '(root)', message: 'must be a mapping with upstreams, routes, services, consumers, certificates' }] };
  }
  return { ok: true, value: value ?? {} };
}

export function validateDeclarativeText(text: string, registry?: PluginValidator): ValidationResult<DeclarativeConfig> {
  const parsed = parseDeclarativeText(text);
  if (!parsed.ok) return parsed;
  return validateDeclarative(parsed.value, registry);
}

export async function loadDeclarativeFile(path: string, registry?: PluginValidator): Promise<ValidationResult<DeclarativeConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return { ok: false, problems: [{ path: '(file)', message: `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }] };
  }
  return validateDeclarativeText(text, registry);
}

export function formatProblems(problems: ConfigProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('\n');
}
