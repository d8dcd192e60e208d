import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium (`apt-get install chromium`); CHROMIUM_PATH to use another build. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Headless Chromium through playwright-core (no browser download: the system's own). */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`no Chromium at ${CHROMIUM_PATH}: apt-get install chromium, or set CHROMIUM_PATH`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * Collects what the page says went wrong (uncaught errors, console errors, failed requests), so
 * a test can assert there was none and a failure shows the browser's side.
 */
export function pageProblems(page: Page, opts: { ignore?: RegExp } = {}): string[] {
  const problems: string[] = [];
  const keep = (text: string) => {
    if (!opts.ignore?.test(text)) problems.push(text);
  };
  page.on('pageerror', (err) => keep(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') keep(`console: ${msg.text()}`);
  });
  page.on('requestfailed', (req) => keep(`requestfailed: ${req.method()} ${req.url()} ${req.failure()?.errorText ?? ''}`));
  return problems;
}

/** A screenshot under test-results/ (created when missing). */
export async function screenshot(page: Page, path: string, fullPage = true): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage, animations: 'disabled' });
}
