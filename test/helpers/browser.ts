/**
 * @module test/helpers/browser
 * A real browser for end-to-end tests: the system's Chromium (Debian package `chromium`) driven by
 * playwright-core, which downloads no browser of its own. Headless, sandbox-free (tests run as root in CI),
 * with every background network feature off, in a fresh profile that playwright removes afterwards.
 *
 * `browserSkip()` follows the other external-program helpers: a reason to skip when Chromium or
 * playwright-core is missing, except under CI, where that is an error.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';
import { skipUnlessPresent } from './required.js';

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((x): x is string => !!x);

export function chromiumPath(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

// The parts of playwright-core's API these tests use (it is loaded at run time, so that the suite compiles
// and skips where it is not installed).
export interface Locator {
  click(o?: { timeout?: number; force?: boolean }): Promise<void>;
  fill(v: string): Promise<void>;
  press(key: string): Promise<void>;
  check(): Promise<void>;
  textContent(): Promise<string | null>;
  innerText(): Promise<string>;
  inputValue(): Promise<string>;
  count(): Promise<number>;
  isVisible(): Promise<boolean>;
  isDisabled(): Promise<boolean>;
  waitFor(o?: { state?: 'attached' | 'detached' | 'visible' | 'hidden'; timeout?: number }): Promise<void>;
  first(): Locator;
  last(): Locator;
  nth(i: number): Locator;
  filter(o: { hasText?: string | RegExp; has?: Locator }): Locator;
  locator(selector: string): Locator;
  getByRole(role: string, o?: { name?: string | RegExp; exact?: boolean }): Locator;
  getByLabel(text: string | RegExp, o?: { exact?: boolean }): Locator;
  getByText(text: string | RegExp, o?: { exact?: boolean }): Locator;
  getByTestId(id: string): Locator;
  evaluate<R>(fn: (el: unknown) => R): Promise<R>;
}

export interface Page {
  goto(url: string, o?: { waitUntil?: 'load' | 'domcontentloaded' | 'networkidle' }): Promise<unknown>;
  url(): string;
  waitForURL(url: string | RegExp | ((u: URL) => boolean), o?: { timeout?: number }): Promise<void>;
  locator(selector: string): Locator;
  getByRole(role: string, o?: { name?: string | RegExp; exact?: boolean }): Locator;
  getByLabel(text: string | RegExp, o?: { exact?: boolean }): Locator;
  getByText(text: string | RegExp, o?: { exact?: boolean }): Locator;
  getByTestId(id: string): Locator;
  screenshot(o: { path: string; fullPage?: boolean }): Promise<unknown>;
  evaluate<R>(fn: () => R): Promise<R>;
  on(event: 'console', fn: (m: { type(): string; text(): string }) => void): void;
  on(event: 'pageerror', fn: (e: Error) => void): void;
  setDefaultTimeout(ms: number): void;
  keyboard: { press(key: string): Promise<void>; type(text: string): Promise<void> };
  close(): Promise<void>;
}

export interface BrowserContext {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export interface Browser {
  newContext(o?: { viewport?: { width: number; height: number }; baseURL?: string; colorScheme?: 'light' | 'dark' }): Promise<BrowserContext>;
  close(): Promise<void>;
}

interface PlaywrightCore {
  chromium: { launch(o: { executablePath: string; headless: boolean; args: string[]; timeout?: number }): Promise<Browser> };
}

async function loadPlaywright(): Promise<PlaywrightCore | null> {
  const name = 'playwright-core';
  try {
    return (await import(name)) as PlaywrightCore;
  } catch {
    return null;
  }
}

/** Why the browser tests cannot run here (to skip), or false; throws under CI, where they must run. */
export async function browserSkip(): Promise<string | false> {
  const missing = !chromiumPath() ? 'Chromium is not installed (Debian package chromium)' : !(await loadPlaywright()) ? 'playwright-core is not installed' : null;
  return skipUnlessPresent(missing);
}

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const pw = await loadPlaywright();
  const exe = chromiumPath();
  if (!pw || !exe) throw new Error('no browser: check browserSkip() first');
  const browser = await pw.chromium.launch({
    executablePath: exe,
    headless: true,
    timeout: 60_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      // Nothing but the pages under test may reach the network (the test machines have none besides loopback).
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-default-apps',
      '--disable-extensions',
      '--metrics-recording-only',
      // No --user-data-dir: launch() makes a new empty profile of its own and removes it on close.
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/** Where the screenshots of a run go: test-output/screenshots/ in the package. */
export function screenshotDir(): string {
  const dir = join(ROOT, 'test-output', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}
