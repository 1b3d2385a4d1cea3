/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no
 * browser is downloaded): a running instance turns green live, a signal sent from the page
 * finishes the workflow, a screenshot of the instance page (docs/img/ui-instance.png, rewritten
 * when missing or with PG_DURABLE_UPDATE_SCREENSHOT=1), two roles
 * see only their own instances, and an XSS payload in a query, a label and a result stays inert.
 *
 * Where /usr/bin/chromium (or $PG_DURABLE_CHROMIUM) is missing these tests skip, loudly: a banner
 * on the console and every test reported as skipped with the reason.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUiServer, type UiServer } from '../../src/ui/server';
import { asRole, createTenant, freshDatabase, scalar, url } from '../support/db';
import { startWorker, waitFor } from '../support/worker';

const CHROMIUM = process.env.PG_DURABLE_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const SKIP_REASON = `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set PG_DURABLE_CHROMIUM)`;
if (!haveChromium) {
  console.warn(`\n${'!'.repeat(100)}\n!! ui-browser tests SKIPPED: ${SKIP_REASON}\n${'!'.repeat(100)}\n`);
}
const SCREENSHOT = join(process.cwd(), 'docs/img/ui-instance.png');

const XSS_LABEL = '<img src=x onerror="window.__xss=1">';
const XSS_QUERY = `SELECT '<script>window.__xss=2</script><img src=x onerror="window.__xss=3">' AS html`;

let db: string;
let alice: string;
let bob: string;
let uiA: UiServer;
let uiB: UiServer;
let browser: Browser;
let context: BrowserContext;
let profile: string;

const start = (role: string, expr: string, label: string | null = null) =>
  asRole(db, role, (c) => scalar<string>(c, `SELECT df.start(${expr}, $1)`, [label]));

async function newPage(): Promise<Page> {
  const page = await context.newPage();
  page.on('dialog', (d) => void d.accept()); // the cancel confirmation
  return page;
}

describe.skipIf(!haveChromium)(`the dashboard in Chromium${haveChromium ? '' : ` (SKIPPED: ${SKIP_REASON})`}`, () => {
  beforeAll(async () => {
    db = await freshDatabase('ui_browser');
    alice = await createTenant(db, 'alice');
    bob = await createTenant(db, 'bob');
    startWorker(url(db));
    uiA = await startUiServer({ databaseUrl: url(db, alice), port: 0 });
    uiB = await startUiServer({ databaseUrl: url(db, bob), port: 0 });
    const { chromium } = await import('playwright-core');
    profile = mkdtempSync(join(tmpdir(), 'pg-durable-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    browser = context.browser() as Browser;
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    await uiA?.close();
    await uiB?.close();
  });

  it('a running instance turns green live, and a signal sent from the page finishes it', async () => {
    const id = await start(alice, "'SELECT pg_sleep(1.5), 1 AS one' ~> df.wait_for_signal('approve') ~> 'SELECT 3 AS three'", 'order-42');
    const page = await newPage();
    await page.goto(`${uiA.url}i/${id}`);
    // Running while the first step sleeps ...
    await page.locator('h1 .badge.running').waitFor({ timeout: 15_000 });
    // ... then waiting for the signal: the first step is green in the node table and in the graph.
    await page.locator('#signals .waiting').getByText('approve').waitFor({ timeout: 15_000 });
    await page.locator('#nodes tbody tr').filter({ hasText: 'pg_sleep' }).locator('.badge.completed').waitFor();
    await page.locator('#graph svg g.node.completed').first().waitFor();
    await page.locator('#timeline .vis-item.run-completed').first().waitFor();
    expect(await page.locator('#signal-name').inputValue()).toBe('approve');
    await page.locator('#signal-payload').fill('{"approved_by": "alice"}');
    await page.locator('#send-signal').click();
    await page.locator('.message.ok').getByText('OK').waitFor();
    await page.locator('h1 .badge.completed').waitFor({ timeout: 15_000 }); // green: the workflow finished
    // The graph's three steps (the THEN chain is drawn as edges) are all green.
    await expect.poll(() => page.locator('#graph svg g.node.completed').count()).toBe(3);
    expect(await page.locator('#signals').textContent()).toContain('approved_by');
    await page.close();
  });

  it('renders the instance page for a screenshot (docs/img/ui-instance.png)', async () => {
    // A step, then a JOIN of a retried step (its first attempt fails: nextval is not rolled back)
    // and a slower one, then a last step: bars of different lengths, a failed attempt, all green.
    await asRole(db, alice, (c) => c.query('CREATE SEQUENCE tries'));
    const id = await start(
      alice,
      `'SELECT pg_sleep(0.3), 41 AS answer' |=> 'a'
       ~> (df.retry('SELECT pg_sleep(0.2), 1 / (nextval(''tries'') - 1) AS ok', 3, 0)
           & 'SELECT pg_sleep(0.6), ''fetched'' AS report')
       ~> 'SELECT pg_sleep(0.2), ''published'' AS status'`,
      'nightly-report',
    );
    const page = await newPage();
    await page.setViewportSize({ width: 1280, height: 1250 });
    await page.goto(`${uiA.url}i/${id}`);
    await page.locator('h1 .badge.completed').waitFor({ timeout: 20_000 });
    await page.locator('#graph svg g.node.completed').first().waitFor();
    await page.locator('#timeline .vis-item.run-failed').first().waitFor();
    await page.waitForTimeout(300); // let the timeline settle after fit()
    const png = await page.screenshot({ fullPage: false });
    // The committed README image is rewritten only when missing or asked for, so test runs leave
    // the tree clean; otherwise this run's image goes to a temp file and is compared loosely.
    const update = !existsSync(SCREENSHOT) || process.env.PG_DURABLE_UPDATE_SCREENSHOT === '1';
    const target = update ? SCREENSHOT : join(profile, 'ui-instance.png');
    mkdirSync(join(target, '..'), { recursive: true });
    writeFileSync(target, png);
    // Loose comparison: a real PNG of a reasonable size, as large as the committed one, showing
    // what the page is about (text checks below).
    const size = (b: Buffer) => [b.readUInt32BE(16), b.readUInt32BE(20)];
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(statSync(target).size).toBeGreaterThan(20_000);
    expect(size(png)).toEqual(size(readFileSync(SCREENSHOT)));
    const text = (await page.locator('main').textContent()) ?? '';
    for (const expected of ['nightly-report', 'Graph', 'Timeline', 'Nodes', 'attempt 2', 'RETRY', 'published']) expect(text).toContain(expected);
    expect(await page.locator('#graph svg').textContent()).toContain("|=> 'a'"); // entity codes decoded, as text
    await page.close();
  });

  it("two roles' dashboards each list only their own instances", async () => {
    const mine = await start(alice, "'SELECT 1'", 'alice-only');
    const theirs = await start(bob, "'SELECT 2'", 'bob-only');
    const page = await newPage();
    await page.goto(uiA.url);
    await page.locator('#instances').getByText(mine).waitFor();
    expect(await page.locator('#instances').textContent()).not.toContain(theirs);
    await page.goto(uiB.url);
    await page.locator('#instances').getByText(theirs).waitFor();
    const bobText = (await page.locator('#instances').textContent()) ?? '';
    expect(bobText).not.toContain(mine);
    expect(bobText).not.toContain('alice-only');
    await page.goto(`${uiB.url}i/${mine}`);
    await page.locator('.error').getByText('not found').waitFor();
    await page.close();
  });

  it('XSS payloads in a query, a label and a result are rendered inert', async () => {
    const id = await start(alice, pg.escapeLiteral(XSS_QUERY), XSS_LABEL);
    expect(await asRole(db, alice, (c) => waitFor(c, id))).toBe('completed');
    const page = await newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(uiA.url);
    await page.locator('#instances').getByText(XSS_LABEL).waitFor(); // shown as text
    await page.goto(`${uiA.url}i/${id}`);
    await page.locator('h1 .badge.completed').waitFor();
    await page.locator('#graph svg').waitFor();
    await expect.poll(() => page.locator('#nodes').textContent()).toContain('<script>window.__xss=2</script>');
    await page.locator('#timeline .vis-item').first().waitFor();
    await page.waitForTimeout(500);
    expect(await page.evaluate(() => (globalThis as unknown as { __xss?: unknown }).__xss)).toBeUndefined();
    expect(await page.locator('main img, main script').count()).toBe(0);
    expect(await page.locator('h1 .label').textContent()).toBe(XSS_LABEL);
    expect(errors).toEqual([]);
    await page.close();
  });
});
