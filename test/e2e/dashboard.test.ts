import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, pageProblems, screenshot } from '../helpers/browser.js';
import { freePort } from '../helpers/ports.js';
import { repoRoot, startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * The dashboard (issue 17) in a real browser: headless Chromium opens /dashboard/ of a Switchboard
 * started the README's way (`npm run build` first: the page is built into dist/web/dashboard).
 */

type Json = Record<string, unknown>;

// What the callbacks given to page.evaluate touch in the browser (the tests compile without DOM types).
declare const window: { innerWidth: number; scrollTo(x: number, y: number): void; marker?: number };
declare const document: {
  documentElement: { scrollWidth: number };
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
};
declare const sessionStorage: { getItem(key: string): string | null };

const TOKEN = 'dashboard-test-token';
const SCREENSHOT = `${repoRoot}test-results/dashboard.png`;

let browser: Browser;
const switchboards: SwitchboardProcess[] = [];
const sfus: Sfu[] = [];
const contexts: BrowserContext[] = [];
const tmpDirs: string[] = [];

async function call(sb: SwitchboardProcess, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(sb.url + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Json) : {} };
}

async function sfu(): Promise<Sfu> {
  const s = await startSfu();
  sfus.push(s);
  return s;
}

async function openDashboard(sb: SwitchboardProcess, opts: { width?: number; height?: number; ignore?: RegExp } = {}) {
  const context = await browser.newContext({ viewport: { width: opts.width ?? 1440, height: opts.height ?? 900 }, colorScheme: 'dark', deviceScaleFactor: 1 });
  contexts.push(context);
  const page = await context.newPage();
  // The page's own stream is cut when the test ends it: not a problem of the page.
  const problems = pageProblems(page, { ignore: opts.ignore ?? /\/events.*ERR_ABORTED/ });
  await page.goto(`${sb.url}/dashboard/`);
  await page.waitForSelector('[data-connection="live"]', { timeout: 10_000 });
  return { page, problems };
}

const row = (id: string, pool = 'rooms') => `tr[data-pool="${pool}"][data-server-id="${id}"]`;

/** Clicks a row's button and confirms the dialog it opens. */
async function clickAndConfirm(page: Page, id: string, action: 'drain' | 'undrain' | 'deregister') {
  await page.click(`${row(id)} button[data-action="${action}"]`);
  if (action !== 'undrain') {
    await page.waitForSelector('dialog[data-dialog="confirm"][open]');
    await page.click('dialog[data-dialog="confirm"] button[data-confirm="yes"]');
  }
}

beforeAll(async () => {
  browser = await launchBrowser();
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await Promise.all(switchboards.map((s) => s.stop()));
  await Promise.all(sfus.map((s) => s.stop()));
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

describe('dashboard in headless Chromium', () => {
  let sb: SwitchboardProcess;
  let web: Sfu[];
  let proxyPort: number;
  const ids = ['sfu-eu-1', 'sfu-eu-2', 'sfu-us-1'];
  const stand: Record<string, Sfu> = {};

  beforeAll(async () => {
    // The proxy too, with two HTTP backends in its `web` pool: the page shows every pool there is.
    web = [await sfu(), await sfu()];
    proxyPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sb-dashboard-'));
    tmpDirs.push(dir);
    const config = join(dir, 'switchboard.yaml');
    writeFileSync(
      config,
      [
        'proxy:',
        `  port: ${proxyPort}`,
        '  workers: 1',
        '  backends:',
        `    - { host: 127.0.0.1, port: ${web[0]!.port} }`,
        `    - { host: 127.0.0.1, port: ${web[1]!.port}, weight: 200 }`,
        '  pools:',
        '    web:',
        '      healthCheck: { path: /health, rise: 1, fall: 1 }',
        '',
      ].join('\n'),
    );
    // Probes every 500 ms (seed thresholds 1/1): a stopped stand-in turns unhealthy within a second.
    // A generous probe timeout: a busy test machine must not make the running stand-ins flap.
    sb = await startSwitchboard({ env: { HOST: '127.0.0.1', HEALTH_CHECK_INTERVAL: '500', HEALTH_CHECK_TIMEOUT: '400' }, args: ['--config-file', config] });
    switchboards.push(sb);
    for (const [i, id] of ids.entries()) {
      stand[id] = await sfu();
      const region = id.includes('-eu-') ? 'eu-west' : 'us-east';
      expect((await call(sb, 'POST', '/register', { serverId: id, serviceUrl: stand[id]!.url, workers: 2 + i, region })).status).toBe(200);
    }
    for (let r = 1; r <= 5; r++) expect((await call(sb, 'POST', `/rooms/standup-${r}`, { maxPeerCount: 2 + r, region: r % 2 ? 'eu-west' : 'us-east' })).status).toBe(200);
    expect((await call(sb, 'POST', '/heartbeat', { serverId: 'sfu-eu-1', load: { consumers: 300, cpu: 41 } })).status).toBe(200);
  });

  it('shows the registered servers, turns a stopped one unhealthy live, drains one with a click', { timeout: 90_000 }, async () => {
    const { page, problems } = await openDashboard(sb);

    // Every registered server is a row of the rooms pool, healthy and active.
    for (const id of ids) await page.waitForSelector(`${row(id)}[data-health="healthy"][data-admin="active"]`);
    expect(await page.locator('tr[data-pool="rooms"][data-server-id]').count()).toBe(3);
    expect(await page.textContent('[data-total="servers"]')).toBe('5');
    // Every pool Switchboard has, in its order.
    expect(await page.$$eval('section.pool', (els) => els.map((e) => e.getAttribute('data-pool')))).toEqual(['rooms', 'turn', 'origins', 'web', 'media']);
    // The HTTP backends: no unit capacity (no bar), their weight; healthy once probed.
    for (const b of web) await page.waitForSelector(`${row(`127.0.0.1:${b.port}`, 'web')}[data-health="healthy"]`, { timeout: 15_000 });
    expect(await page.textContent(`${row(`127.0.0.1:${web[1]!.port}`, 'web')} [data-role="weight"]`)).toMatch(/weight\s*200/);
    expect(await page.locator(`${row(`127.0.0.1:${web[0]!.port}`, 'web')} .bar`).count()).toBe(0);
    // Requests through the proxy, for its chart.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${proxyPort}/health`);
      await res.arrayBuffer();
      expect(res.status).toBe(200);
    }
    // The rooms it placed, across servers: 5 in the pool, each found by id with its server.
    expect(await page.textContent('section[data-pool="rooms"] [data-stat="placements"]')).toBe('5');
    const placed = (await call(sb, 'GET', '/rooms/standup-3')).body;
    await page.fill('input[data-role="search"]', 'standup-3');
    const hit = page.locator('[data-role="search-results"] tr[data-placement-id="standup-3"]');
    await hit.waitFor();
    expect(await hit.textContent()).toContain(String(placed.serverId));
    await page.fill('input[data-role="search"]', '');
    // Reported load from the heartbeat.
    expect(await page.textContent(`${row('sfu-eu-1')} td.reported`)).toMatch(/cpu\s*41/);
    // The event log loaded at start (GET /activity): the registrations, newest first.
    await page.waitForSelector('.log-list li[data-kind="registered"]');

    // Stop one stand-in: its row turns unhealthy with the probe's reason, on the same page load.
    await page.evaluate(() => (window.marker = 42));
    await stand['sfu-us-1']!.stop();
    await page.waitForSelector(`${row('sfu-us-1')}[data-health="unhealthy"]`, { timeout: 15_000 });
    expect(await page.evaluate(() => window.marker)).toBe(42);
    expect((await page.textContent(`${row('sfu-us-1')} [data-role="reason"]`))?.trim()).not.toBe('');
    expect(await page.textContent('[data-total="unhealthy"]')).toBe('1');
    // ... the others stay healthy, and the log says what happened.
    for (const id of ['sfu-eu-1', 'sfu-eu-2']) await page.waitForSelector(`${row(id)}[data-health="healthy"]`);
    await page.waitForSelector('.log-list li[data-kind="health"]', { timeout: 10_000 });

    // Drain another with a click (confirmation dialog): the API then shows it drained.
    await clickAndConfirm(page, 'sfu-eu-2', 'drain');
    await page.waitForSelector(`${row('sfu-eu-2')}[data-admin="drain"] button[data-action="undrain"]`);
    const drained = await call(sb, 'GET', `/servers/${encodeURIComponent('sfu-eu-2')}`);
    expect(drained.status).toBe(200);
    expect(drained.body.adminState).toBe('drain');
    await page.waitForSelector('.log-list li[data-kind="admin"]', { timeout: 10_000 });
    // Cancelling the dialog does nothing.
    await page.click(`${row('sfu-eu-1')} button[data-action="deregister"]`);
    await page.click('dialog[data-dialog="confirm"] button[data-confirm="no"]');
    expect((await call(sb, 'GET', '/servers/sfu-eu-1')).status).toBe(200);
    expect(await page.locator('dialog[open]').count()).toBe(0);

    // A change made elsewhere (the API) shows up too: undrain through the API.
    expect((await call(sb, 'DELETE', '/servers/sfu-eu-2/drain')).status).toBe(200);
    await page.waitForSelector(`${row('sfu-eu-2')}[data-admin="active"]`);
    await clickAndConfirm(page, 'sfu-eu-2', 'drain');
    await page.waitForSelector(`${row('sfu-eu-2')}[data-admin="drain"]`);

    // The charts: one sample every 5 s (GET /stats/history, then `stats` events).
    await page.waitForSelector('figure[data-chart="Placements"] svg path.line', { timeout: 15_000 });
    await page.waitForFunction(() => document.querySelectorAll('figure[data-chart="Placements"] .legend li').length > 0);
    await page.waitForSelector('figure[data-chart="Proxy requests"] svg path.line', { timeout: 15_000 });

    // On a laptop (1440 px) the server table fits its panel: no sideways scrolling.
    const wrap = await page.$eval('section[data-pool="rooms"] .table-wrap', (el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    expect(wrap.scroll).toBeLessThanOrEqual(wrap.client);

    await page.mouse.move(0, 0);
    await screenshot(page, SCREENSHOT);
    expect(problems).toEqual([]);
  });

  it('fits a phone: nothing scrolls sideways, server rows become cards with their buttons in reach', { timeout: 60_000 }, async () => {
    const { page, problems } = await openDashboard(sb, { width: 390, height: 844 });
    await page.waitForSelector(row('sfu-eu-1'));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const wrap = await page.$eval('section[data-pool="rooms"] .table-wrap', (el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
    expect(wrap.scroll).toBeLessThanOrEqual(wrap.client);
    // Health, its reason and the buttons are on screen, not off to the right.
    for (const sel of [`${row('sfu-us-1')} [data-role="health"]`, `${row('sfu-us-1')} [data-role="reason"]`, `${row('sfu-eu-1')} button[data-action="deregister"]`]) {
      const box = await page.locator(sel).boundingBox();
      expect(box, sel).not.toBeNull();
      expect(box!.x + box!.width, sel).toBeLessThanOrEqual(390);
    }
    await page.click(`${row('sfu-eu-1')} button[data-action="drain"]`);
    await page.waitForSelector('dialog[data-dialog="confirm"][open]');
    await page.click('dialog[data-dialog="confirm"] button[data-confirm="no"]');
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, `${repoRoot}test-results/dashboard-phone.png`);
    expect(problems).toEqual([]);
  });
});

describe('dashboard with AUTH_TOKEN', () => {
  let sb: SwitchboardProcess;

  beforeAll(async () => {
    sb = await startSwitchboard({ env: { HOST: '127.0.0.1', HEALTH_CHECK_INTERVAL: '1000', AUTH_TOKEN: TOKEN } });
    switchboards.push(sb);
    const a = await sfu();
    const b = await sfu();
    expect((await call(sb, 'POST', '/register', { serverId: 'sfu-a', serviceUrl: a.url, workers: 2 }, TOKEN)).status).toBe(200);
    expect((await call(sb, 'POST', '/register', { serverId: 'sfu-b', serviceUrl: b.url, workers: 2 }, TOKEN)).status).toBe(200);
  });

  it('reads stay open; Drain asks for the token once, refuses a wrong one, then drains', { timeout: 60_000 }, async () => {
    // The 401s the page gets before it has the token are expected: the browser logs them.
    const { page, problems } = await openDashboard(sb, { ignore: /status of 401|\/events.*ERR_ABORTED/ });
    await page.waitForSelector(`${row('sfu-a')}[data-admin="active"]`);

    // Wrong token first: the dialog comes back saying so; nothing is drained.
    await clickAndConfirm(page, 'sfu-a', 'drain');
    await page.waitForSelector('dialog[data-dialog="token"][open]');
    expect(await page.textContent('dialog[data-dialog="token"] h2')).toBe('Token needed');
    await page.fill('dialog[data-dialog="token"] input[name="token"]', 'not-the-token');
    await page.click('dialog[data-dialog="token"] button[data-confirm="yes"]');
    await page.waitForFunction(() => document.querySelector('dialog[data-dialog="token"][open] h2')?.textContent === 'Token refused');
    expect((await call(sb, 'GET', '/servers/sfu-a')).body.adminState).toBe('active');

    // The right one: drained, and the API says so.
    await page.fill('dialog[data-dialog="token"] input[name="token"]', TOKEN);
    await page.click('dialog[data-dialog="token"] button[data-confirm="yes"]');
    await page.waitForSelector(`${row('sfu-a')}[data-admin="drain"]`);
    expect((await call(sb, 'GET', '/servers/sfu-a')).body.adminState).toBe('drain');
    expect(await page.evaluate(() => sessionStorage.getItem('switchboard.token'))).toBe(TOKEN);

    // Asked once: the next actions send the kept token without a dialog.
    await page.click(`${row('sfu-a')} button[data-action="undrain"]`);
    await page.waitForSelector(`${row('sfu-a')}[data-admin="active"]`);
    await clickAndConfirm(page, 'sfu-b', 'drain');
    await page.waitForSelector(`${row('sfu-b')}[data-admin="drain"]`);
    expect(await page.locator('dialog[data-dialog="token"]').count()).toBe(0);
    expect((await call(sb, 'GET', '/servers/sfu-b')).body.adminState).toBe('drain');

    // Deregister, with the token too: the row goes, and so does the server.
    await clickAndConfirm(page, 'sfu-b', 'deregister');
    await page.waitForSelector(row('sfu-b'), { state: 'detached' });
    expect((await call(sb, 'GET', '/servers/sfu-b')).status).toBe(404);
    expect(problems).toEqual([]);
  });
});

/** Keep one screenshot for the README: `KEEP_SCREENSHOT=1 npx vitest run test/e2e/dashboard.test.ts`. */
afterAll(() => {
  if (process.env.KEEP_SCREENSHOT && existsSync(SCREENSHOT)) copyFileSync(SCREENSHOT, `${repoRoot}docs/images/dashboard.png`);
});
