/**
 * @module sync/file-source
 * Standalone mode's config source: a declarative file, validated on every change and emitted only when valid.
 * Watches the file's directory (editors and config tools replace files by rename) with a short debounce.
 */
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { DeclarativeConfig } from '../model/declarative.js';
import type { ConfigProblem, PluginValidator } from '../model/validate.js';
import { validateDeclarativeText } from '../config/declarative-file.js';

import type { ConfigSource, ConfigSourceEvents } from './source.js';

export class FileConfigSource extends EventEmitter<ConfigSourceEvents> implements ConfigSource {
  readonly path: string;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastText: string | null = null;
  private revision = 0;
  private loading: Promise<void> | null = null;
  private again = false;

  constructor(path: string, private readonly registry?: PluginValidator, private readonly debounceMs = 100) {
    super();
    this.path = resolve(path);
  }

  get describe(): string {
    return this.path;
  }

  /** Load once; resolves with the problems if the file is invalid (nothing is emitted then). */
  async load(): Promise<{ ok: true; config: DeclarativeConfig; revision: number } | { ok: false; problems: ConfigProblem[] }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      return { ok: false, problems: [{ path: '(file)', message: `${this.path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }] };
    }
    const result = validateDeclarativeText(text, this.registry);
    if (!result.ok) return { ok: false, problems: result.problems };
    this.lastText = text;
    this.revision++;
    return { ok: true, config: result.value, revision: this.revision };
  }

  /** Re-read now (SIGHUP); emits 'config' or 'invalid'. Unchanged content is ignored unless forced. */
  async reload(force = false): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      do {
        this.again = false;
        let text: string;
        try {
          text = await readFile(this.path, 'utf8');
        } catch (e) {
          // A file mid-replace can be missing for a moment; the rename event that follows reloads it.
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          this.emit('invalid', [{ path: '(file)', message: `cannot be read: ${(e as Error).message}` }]);
          continue;
        }
        if (!force && text === this.lastText) continue;
        // An empty file is what a writer leaves between truncating and writing (`cmd > routes.yaml`, in-place
        // saves); it would otherwise be a valid config with no routes and take every route down until the
        // write lands. The write that follows reloads again.
        if (text.trim() === '') {
          this.emit('invalid', [{ path: '(file)', message: 'is empty (a write in progress?); not applied. To remove every route write "routes: []"' }]);
          continue;
        }
        const result = validateDeclarativeText(text, this.registry);
        if (!result.ok) {
          this.emit('invalid', result.problems);
          continue;
        }
        this.lastText = text;
        this.revision++;
        this.emit('config', result.value, this.revision);
      } while (this.again);
    })().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  watch(): void {
    const name = basename(this.path);
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
      if (file !== null && file !== name) return;
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.reload().catch((e: unknown) => this.emit('invalid', [{ path: '(file)', message: `could not be reloaded (${(e as Error)?.name ?? 'error'})` }]));
      }, this.debounceMs);
    });
    this.watcher.on('error', () => {});
  }

  close(): void {
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
  }
}
