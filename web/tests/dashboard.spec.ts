// End-to-end test of the dashboard in Chromium against a real `whatstyle serve` (started by
// tests/cli/web_dashboard.sh): sign in, upload, live training to the end, profile charts,
// chat, WhatsApp (link a number, drafts of signed webhook messages edited and sent, sent as
// is, discarded, the mode changed; the Graph API stand-in receives the replies), keys, CSRF
// refusals, another user's resources, sign out everywhere, export and delete, sign up; axe on
// every page; screenshots at phone and desktop widths.
import { test, expect, type Page, type BrowserContext } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run tests/cli/web_dashboard.sh)`);
  return v;
};
const KEY = env('WS_KEY');
const SAMPLE = env('WS_SAMPLE');
const OTHER_JOB = env('WS_OTHER_JOB');
const OTHER_KEY_ID = env('WS_OTHER_KEY_ID');
const SHOTS = env('WS_SHOTS');
const WA_SECRET = env('WS_WA_SECRET');
const WA_PNID = env('WS_WA_PNID');
const WA_TOKEN = env('WS_WA_TOKEN');
const WA_GRAPH_LOG = env('WS_WA_GRAPH_LOG');
const DIST = fileURLToPath(new URL('../dist', import.meta.url));

let ctx: BrowserContext;
let page: Page;

async function axe(p: Page, where: string) {
  const r = await new AxeBuilder({ page: p }).analyze();
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${where}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

async function shots(p: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  for (const [label, width, height] of [['desktop', 1280, 800], ['phone', 390, 844]] as const) {
    await p.setViewportSize({ width, height });
    await p.waitForTimeout(250); // charts resize on the next frame
    await p.screenshot({ path: join(SHOTS, `dashboard-${name}-${label}.png`), fullPage: true });
    // responsive: nothing wider than the screen (wide tables scroll inside their own box)
    const overflow = await p.evaluate(() => {
      const w = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > w + 1 && !e.closest('.heat-scroll, .table-scroll'));
      const out = wide.slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`);
      if (document.documentElement.scrollWidth > w) out.push(`page scrolls to ${document.documentElement.scrollWidth}px`);
      return out;
    });
    expect(overflow, `${name} at ${width}px`).toEqual([]);
  }
  await p.setViewportSize({ width: 1280, height: 800 });
}

/** A text message to the linked number in the shape of Meta's webhook, signed like Meta signs it. */
async function webhook(p: Page, wamid: string, from: string, text: string) {
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: WA_PNID },
      contacts: [{ profile: { name: 'Test' }, wa_id: from }],
      messages: [{ id: wamid, from, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } }],
    } }] }],
  });
  const sig = 'sha256=' + createHmac('sha256', WA_SECRET).update(body).digest('hex');
  const r = await p.request.post('/v1/whatsapp/webhook', { data: body, headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': sig } });
  expect(r.status()).toBe(200);
}

/** The text messages the Graph API stand-in received with 200, by recipient. */
function graphTexts(): { to: string; text: string; context: string }[] {
  let lines: string[] = [];
  try {
    lines = readFileSync(WA_GRAPH_LOG, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
  return lines.map((l) => JSON.parse(l) as { status: number; body?: { type?: string; to?: string; text?: { body: string }; context?: { message_id: string } } })
    .filter((e) => e.status === 200 && e.body?.type === 'text')
    .map((e) => ({ to: e.body!.to!, text: e.body!.text!.body, context: e.body!.context?.message_id ?? '' }));
}

async function go(p: Page, route: string, heading: RegExp) {
  await p.goto(`/#/${route}`);
  await expect(p.getByRole('heading', { level: 1 })).toHaveText(heading);
}

test.describe.serial('dashboard', () => {
  test.beforeAll(async ({ browser }) => {
    ctx = await browser.newContext();
    page = await ctx.newPage();
    page.on('pageerror', (e) => {
      throw e;
    });
  });
  test.afterAll(async () => {
    await ctx.close();
  });

  test('the JavaScript stays under 100 KB gzipped', () => {
    const assets = join(DIST, 'assets');
    const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
    const gz = js.reduce((n, f) => n + gzipSync(readFileSync(join(assets, f)), { level: 9 }).length, 0);
    console.log(`bundle: ${js.length} JS file(s), ${(gz / 1024).toFixed(1)} KB gzipped`); // eslint-disable-line no-console
    expect(gz).toBeLessThan(100 * 1024);
  });

  test('served with a strict CSP and caching', async ({ request }) => {
    const index = await request.get('/');
    expect(index.status()).toBe(200);
    expect(index.headers()['content-type']).toContain('text/html');
    expect(index.headers()['cache-control']).toBe('no-cache');
    const csp = index.headers()['content-security-policy'];
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    const asset = (await index.text()).match(/\/assets\/[^"]+\.js/)![0];
    const a = await request.get(asset);
    expect(a.headers()['content-type']).toContain('text/javascript');
    expect(a.headers()['cache-control']).toContain('immutable');
  });

  test('sign in', async () => {
    await page.goto('/');
    await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    await axe(page, 'sign in');
    await shots(page, 'signin');
    await page.getByLabel('API key').fill('ws_live_00000000_notarealkeynotarealkeynotarealkeynotareal');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('alert')).toContainText(/not valid|not an API key/);
    await page.getByLabel('API key').fill(KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
    const cookie = (await ctx.cookies()).find((c) => c.name === 'ws_session')!;
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Strict');
  });

  test('upload, choose the person, watch training to the end', async () => {
    await go(page, 'upload', /Teach the clone/);
    await page.setInputFiles('#file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello\nworld\n') });
    await expect(page.getByRole('alert')).toContainText('not a WhatsApp chat export');
    await page.setInputFiles('#file', { name: 'photo.png', mimeType: 'image/png', buffer: Buffer.from('png') });
    await expect(page.getByRole('alert')).toContainText('is not a WhatsApp export');
    await page.setInputFiles('#file', { name: 'big.txt', mimeType: 'text/plain', buffer: Buffer.alloc(1_100_000, 'a') });
    await expect(page.getByRole('alert')).toContainText('this server takes exports up to 1 MB');
    await page.setInputFiles('#file', SAMPLE);
    await expect(page.getByRole('radio', { name: /Maya/ })).toBeVisible();
    await page.getByRole('radio', { name: /Maya/ }).check();
    await page.getByLabel('Training time').selectOption('5');
    await axe(page, 'upload');
    await shots(page, 'upload');
    await page.getByRole('button', { name: 'Start training' }).click();
    await expect(page).toHaveURL(/#\/training/);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Training the clone of Maya');
    await expect(page.getByTestId('job-status')).toHaveText(/Waiting to start|Training/); // live, not yet done
    // leave while it trains and come back: the page picks the job up again
    await go(page, 'keys', /API keys/);
    await go(page, 'training', /Training the clone of Maya/);
    await expect(page.getByTestId('job-status')).toHaveText('Done', { timeout: 360_000 });
    await expect(page.getByTestId('verdict')).toContainText('checks on');
    await expect(page.getByRole('progressbar', { name: 'Training progress' })).toHaveAttribute('value', '1');
    await axe(page, 'training');
    await shots(page, 'training');
  });

  test('the style profile as charts', async () => {
    await go(page, 'profile', /Your style/);
    await expect(page.locator('.uplot canvas')).toHaveCount(2);
    await expect(page.locator('table.heat td.cell')).toHaveCount(168);
    await expect(page.getByText('Favourite emoji')).toBeVisible();
    await expect(page.getByText('Signature phrases')).toBeVisible();
    await axe(page, 'profile');
    await shots(page, 'profile');
  });

  test('chat with the clone', async () => {
    await go(page, 'chat', /Chat with your clone/);
    // every render of the reply bubble, and whether the confidence (the done event) was shown
    await page.evaluate(() => {
      const w = window as unknown as { seen: { text: string; done: boolean; stop: boolean }[] };
      w.seen = [];
      new MutationObserver(() => {
        const bubble = document.querySelector('[data-testid="reply-text"]');
        const card = document.querySelector('[data-testid="last-reply"]');
        const stop = [...document.querySelectorAll('button')].some((b) => b.textContent === 'Stop');
        if (bubble) w.seen.push({ text: bubble.textContent ?? '', done: (card?.textContent ?? '').includes('Confidence'), stop });
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.getByLabel('Your message').fill('are you coming tonight?');
    await page.getByLabel('Your message').press('Enter'); // Enter sends, Shift+Enter is a new line
    const last = page.getByTestId('last-reply');
    await expect(last).toContainText('Confidence');
    await expect(page.getByRole('button', { name: 'Stop' })).toHaveCount(0);
    await expect(last.locator('.bubble.them')).not.toBeEmpty();
    const seen = await page.evaluate(
      () => (window as unknown as { seen: { text: string; done: boolean; stop: boolean }[] }).seen,
    );
    // tokens were on the page before the done event: the bubble grew while no confidence was
    // shown, with the Stop button there
    const early = seen.filter((x) => !x.done && x.text !== '' && x.text !== '…');
    expect(early.length).toBeGreaterThan(0);
    expect(early.every((x) => x.stop)).toBe(true);
    // the final reply is announced once in the polite live region, not token by token
    const final = await last.locator('.bubble.them').textContent();
    await expect(page.getByRole('status').filter({ hasText: 'The clone replied' })).toHaveText(`The clone replied: ${final}`);
    await expect(page.locator('ol.history li')).toHaveCount(1);
    await axe(page, 'chat');
    await shots(page, 'chat');
  });

  test('WhatsApp: link a number, drafts edited and sent, sent as is, discarded, the mode changed', async () => {
    await go(page, 'whatsapp', /WhatsApp/);
    await expect(page.getByText('No number linked yet')).toBeVisible();
    // a wrong token format is refused in words; then the real link
    await page.getByLabel('Phone number id').fill('+1 555');
    await page.getByLabel('Access token').fill(WA_TOKEN);
    await page.getByRole('button', { name: 'Link number' }).click();
    await expect(page.getByRole('alert')).toContainText('phone_number_id');
    await page.getByLabel('Phone number id').fill(WA_PNID);
    await page.getByRole('button', { name: 'Link number' }).click();
    const mode = page.getByLabel(`Mode of ${WA_PNID}`);
    await expect(mode).toHaveValue('draft');
    // three people write; the clone drafts a reply to each
    await webhook(page, 'wamid.WEB1', '16505550101', 'are you coming to the barbecue tonight?');
    await webhook(page, 'wamid.WEB2', '16505550102', 'did you see the match?');
    await webhook(page, 'wamid.WEB3', '16505550103', 'can you lend me your bike tomorrow?');
    const drafts = page.locator('li.draft[data-status="pending"]');
    await expect(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      await expect(drafts).toHaveCount(3, { timeout: 1000 });
    }).toPass({ timeout: 120_000 });
    const of = (contact: string) => page.locator('li.draft', { hasText: contact });
    await expect(of('16505550101')).toContainText('are you coming to the barbecue tonight?');
    await expect(of('16505550101')).toContainText('Confidence');
    await expect(of('16505550101')).toContainText('Draft mode: waiting for approval');
    await axe(page, 'whatsapp');
    await shots(page, 'whatsapp');
    // a state-changing call without the CSRF token is refused
    const id = (await of('16505550102').getAttribute('data-draft'))!;
    const noCsrf = await page.evaluate(async (d) => (await fetch(`/v1/whatsapp/drafts/${d}/approve`, { method: 'POST' })).status, id);
    expect(noCsrf).toBe(403);
    // edit, then send, with the keyboard alone: Enter on Edit puts the focus in the labelled box
    await of('16505550101').getByRole('button', { name: 'Edit' }).focus();
    await page.keyboard.press('Enter');
    await expect(of('16505550101').getByLabel('Your reply')).toBeFocused();
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('yes!! see you at 8');
    await page.keyboard.press('Tab');
    await expect(of('16505550101').getByRole('button', { name: 'Send edited reply' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(of('16505550101')).toHaveCount(0); // no longer waiting
    // send another as the clone wrote it; discard the third
    const suggested = (await of('16505550102').locator('.bubble.out').textContent())!.replace('The clone suggests: ', '');
    await of('16505550102').getByRole('button', { name: 'Send' }).click();
    await of('16505550103').getByRole('button', { name: 'Discard' }).click();
    await expect(drafts).toHaveCount(0);
    // the stand-in received both replies, each answering its message
    await expect.poll(() => graphTexts().length, { timeout: 60_000 }).toBe(2);
    expect(graphTexts().sort((a, b) => a.to.localeCompare(b.to))).toEqual([
      { to: '16505550101', text: 'yes!! see you at 8', context: 'wamid.WEB1' },
      { to: '16505550102', text: suggested, context: 'wamid.WEB2' },
    ]);
    await page.getByLabel('Show').selectOption('sent');
    await expect(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      await expect(page.locator('li.draft[data-status="sent"]')).toHaveCount(2, { timeout: 1000 });
    }).toPass({ timeout: 60_000 });
    await expect(of('16505550101').getByTestId('draft-status')).toHaveText('Sent');
    await page.getByLabel('Show').selectOption('discarded');
    await expect(of('16505550103')).toContainText('can you lend me your bike tomorrow?');
    await expect(of('16505550103').getByRole('button')).toHaveCount(0);
    // the number's mode, changed from the page
    await mode.selectOption('auto');
    await expect(page.getByRole('status').filter({ hasText: 'auto mode' })).toHaveCount(1);
    const links = await (await page.request.get('/v1/whatsapp/links')).json() as { items: { phone_number_id: string; mode: string }[] };
    expect(links.items).toEqual([expect.objectContaining({ phone_number_id: WA_PNID, mode: 'auto' })]);
    await mode.selectOption('off');
    await expect(mode).toHaveValue('off');
  });

  test('API keys: create (shown once), list, revoke', async () => {
    await go(page, 'keys', /API keys/);
    await page.getByLabel('Name of the new key').fill('laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = (await page.getByTestId('new-key').textContent())!;
    expect(key).toMatch(/^ws_live_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    const id = key.slice(0, 16);
    const row = page.locator(`tr[data-key="${id}"]`);
    await expect(row).toContainText('active');
    await axe(page, 'keys');
    await shots(page, 'keys');
    page.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: `Revoke ${id}` }).click();
    await expect(row).toContainText('revoked');
    // the revoked key no longer opens a session
    const r = await page.request.post('/v1/session', { data: { key } });
    expect(r.status()).toBe(401);
  });

  test('CSRF token missing: refused; another user\'s resources: unreachable', async () => {
    const out = await page.evaluate(async ([job, keyId]) => {
      const s = await (await fetch('/v1/session')).json();
      const json = { 'Content-Type': 'application/json' };
      return {
        createNoCsrf: (await fetch('/v1/keys', { method: 'POST', headers: json, body: '{}' })).status,
        deleteNoCsrf: (await fetch('/v1/me', { method: 'DELETE' })).status,
        wrongCsrf: (await fetch('/v1/session', { method: 'DELETE', headers: { 'X-CSRF-Token': 'x' + s.csrf_token } })).status,
        otherJob: (await fetch(`/v1/training-jobs/${job}`)).status,
        otherEvents: (await fetch(`/v1/training-jobs/${job}/events`)).status,
        otherKey: (await fetch(`/v1/keys/${keyId}`, { method: 'DELETE', headers: { 'X-CSRF-Token': s.csrf_token } })).status,
        keysMine: ((await (await fetch('/v1/keys')).json()).items as { key_id: string }[]).every((k) => k.key_id !== keyId),
      };
    }, [OTHER_JOB, OTHER_KEY_ID]);
    expect(out).toEqual({ createNoCsrf: 403, deleteNoCsrf: 403, wrongCsrf: 403, otherJob: 404, otherEvents: 404, otherKey: 404, keysMine: true });
    await page.reload();
    await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible(); // still signed in
  });

  test('signing out ends the session everywhere', async ({ browser }) => {
    const other = await browser.newContext();
    const r = await other.request.post('/v1/session', { data: { key: KEY } });
    expect(r.status()).toBe(200);
    expect((await other.request.get('/v1/session')).status()).toBe(200);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    expect((await other.request.get('/v1/session')).status()).toBe(401);
    await other.close();
    // keyboard only: Tab to the key field, type, Enter
    await page.locator('body').focus();
    for (let i = 0; i < 5 && !(await page.getByLabel('API key').evaluate((e) => e === document.activeElement)); i++)
      await page.keyboard.press('Tab');
    await expect(page.getByLabel('API key')).toBeFocused();
    await page.keyboard.type(KEY);
    await page.keyboard.press('Enter');
    await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
  });

  test('export and delete all my data', async () => {
    await go(page, 'data', /My data/);
    await axe(page, 'data');
    await shots(page, 'data');
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download my data' }).click();
    expect((await download).suggestedFilename()).toBe('whatstyle-export.json');
    const del = page.getByRole('button', { name: 'Delete all my data' });
    await expect(del).toBeDisabled();
    await page.getByLabel('Type delete to confirm').fill('delete');
    await del.click();
    await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    await page.getByLabel('API key').fill(KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('alert')).toContainText('not valid');
  });

  test('sign up shows the first key once', async ({ browser }) => {
    const c = await browser.newContext();
    const p = await c.newPage();
    await p.goto('/');
    await p.getByLabel('Your name').fill('Zoe');
    await p.getByRole('button', { name: 'Create an account' }).click();
    await expect(p.getByRole('heading', { name: 'Welcome, Zoe' })).toBeVisible();
    await expect(p.getByLabel('Your new API key')).toHaveText(/^ws_live_/);
    await axe(p, 'sign up');
    await p.getByRole('button', { name: 'Continue' }).click();
    await expect(p.getByRole('navigation', { name: 'Main' })).toBeVisible();
    await go(p, 'profile', /Style/);
    await expect(p.getByText('No trained clone yet')).toBeVisible();
    await c.close();
  });
});
