/** Data loading for screens: one call, its result or error, and a way to load again. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { notifications } from '@mantine/notifications';
import { ApiError } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload(): Promise<void>;
}

export function useLoad<T>(fn: () => Promise<T>, deps: unknown[], opts: { pollMs?: number } = {}): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(fn, deps);
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const d = await run();
      if (mine === seq.current) {
        setData(d);
        setError(null);
      }
    } catch (e) {
      if (mine === seq.current) setError(e instanceof ApiError ? e : new ApiError(0, 'GH_ERR_CLIENT', String((e as Error)?.message ?? e)));
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  }, [run]);
  useEffect(() => {
    setData(undefined);
    void reload();
  }, [reload]);
  useEffect(() => {
    if (!opts.pollMs) return;
    const t = setInterval(() => void reload(), opts.pollMs);
    return () => clearInterval(t);
  }, [reload, opts.pollMs]);
  return { data, error, loading, reload };
}

/**
 * Run an action, tell the user how it went, and hand back the result: undefined when it failed, null when it
 * succeeded with no content (204, e.g. a DELETE), so test success with `!== undefined`, not truthiness.
 * A failure is told in a notification, unless `onError` is given: the screen shows it where it happened
 * (a notification would say it twice, and cover the buttons to try again).
 */
export async function act<T>(what: string, fn: () => Promise<T>, opts: { success?: string | ((r: T) => string); onError?: (e: ApiError) => void } = {}): Promise<T | undefined> {
  try {
    const r = await fn();
    const msg = typeof opts.success === 'function' ? opts.success(r) : opts.success;
    if (msg) notifications.show({ color: 'teal', title: what, message: msg });
    return r;
  } catch (e) {
    const err = e instanceof ApiError ? e : new ApiError(0, 'GH_ERR_CLIENT', String((e as Error)?.message ?? e));
    if (opts.onError) opts.onError(err);
    else notifications.show({ color: 'red', title: `${what} failed`, message: describeError(err), autoClose: 8000 });
    return undefined;
  }
}

export function describeError(e: ApiError): string {
  const details = e.details
    .slice(0, 3)
    .map((d) => (d.path ? `${d.path}: ${d.message}` : d.message))
    .join('; ');
  return details ? `${e.message} (${details})` : e.message;
}
