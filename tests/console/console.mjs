// The operators' console in Debian's headless Chromium, driven by playwright-core. Run by
// crates/otpd/tests/console.rs, which starts otpd, seeds it and passes what it made in
// OTPD_* variables; each scenario below is one named block. Plain Node: node:assert, no
// test framework. Prints "N passed, M failed" last and exits non-zero on any failure.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (crates/otpd/tests/console.rs sets it)`);
  return value;
};

const BASE = env('OTPD_URL');
const NUMBER = env('OTPD_NUMBER');
const CODE = env('OTPD_CODE');
const REFUSAL_REASON = env('OTPD_REFUSAL_REASON');
const REFUSAL_NUMBERS = env('OTPD_REFUSAL_NUMBERS').split(' ');
const PROVIDER_DOWN = env('OTPD_PROVIDER_DOWN');
const PROVIDER_DOWN_ERROR = env('OTPD_PROVIDER_DOWN_ERROR');
const PROVIDER_UP = env('OTPD_PROVIDER_UP');
const BLOCKED = env('OTPD_BLOCKED_NUMBER');
const PREFIX = env('OTPD_QUARANTINED_PREFIX');
const ACCOUNT = env('OTPD_ACCOUNT_SID');
const AUTH_TOKEN = env('OTPD_AUTH_TOKEN');
const SERVICE = env('OTPD_SERVICE_SID');
const SEEDED_KEY = { sid: env('OTPD_API_KEY_SID'), secret: env('OTPD_API_KEY_SECRET') };
const SCREENSHOTS = env('OTPD_SCREENSHOTS');
const operator = (who) => ({
  email: env(`OTPD_${who}_EMAIL`),
  password: env(`OTPD_${who}_PASSWORD`),
});
const ADMIN = operator('ADMIN');
const SUPPORT = operator('SUPPORT');
const VIEWER = operator('VIEWER');
const LOCKED = operator('LOCKED');

const CHROMIUM = '/usr/bin/chromium';
const ACTION_TIMEOUT_MS = 15_000;
// A hung browser or server must not hold CI: the whole run gets this long.
const WATCHDOG_MS = 5 * 60_000;

const started = Date.now();
const watchdog = setTimeout(() => {
  console.error(`console.mjs: still running after ${WATCHDOG_MS / 1000} s; giving up`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
const scenarios = [];
const scenario = (name, run) => scenarios.push({ name, run });

// ---------------------------------------------------------------------------------------
// Helpers

const path = (page) => decodeURIComponent(new URL(page.url()).pathname);

/** A fresh browser profile (cookie jar) with one page. */
async function freshPage(viewport = { width: 1280, height: 800 }, storageState) {
  const context = await browser.newContext({ viewport, storageState });
  const page = await context.newPage();
  page.setDefaultTimeout(ACTION_TIMEOUT_MS);
  // A confirm() before a destructive action is accepted, as an operator would.
  page.on('dialog', (dialog) => dialog.accept());
  return page;
}

/** Clicks a form's submit button and waits for the document its answer (or the redirect it
 * answered) loads; that document's response. */
async function submit(page, button) {
  const [response] = await Promise.all([page.waitForNavigation(), button.click()]);
  return response;
}

/** The status the first request of a navigation answered (a form's POST, before the
 * redirect it may have answered). */
async function firstStatus(response) {
  let request = response.request();
  while (request.redirectedFrom()) request = request.redirectedFrom();
  return (await request.response()).status();
}

/** Submits the sign-in form; the status of the POST (before any redirect). */
async function submitSignIn(page, { email, password }) {
  const form = await page.goto(`${BASE}/console/login`);
  assert.equal(form.status(), 200, 'GET /console/login');
  await page.locator('#login input[name="email"]').fill(email);
  await page.locator('#login input[name="password"][type="password"]').fill(password);
  assert.equal(await page.locator('#login input[type="hidden"][name="csrf"]').count(), 1);
  const response = await submit(
    page,
    page.locator('#login button[type="submit"]', { hasText: 'Sign in' }),
  );
  const posted = response.request().redirectedFrom() ?? response.request();
  assert.equal(posted.method(), 'POST');
  assert.equal(new URL(posted.url()).pathname, '/console/login');
  return firstStatus(response);
}

const signedIn = new Map();

/** A page signed in as `who` (one per operator, made once). */
async function signIn(who) {
  if (!signedIn.has(who.email)) {
    const page = await freshPage();
    const status = await submitSignIn(page, who);
    assert.equal(status, 303, `signing in as ${who.email}`);
    assert.equal(path(page), '/console/');
    signedIn.set(who.email, page);
  }
  return signedIn.get(who.email);
}

/** Opens a console page, asserting it answered 200. */
async function open(page, where) {
  const response = await page.goto(`${BASE}${where}`);
  assert.equal(response.status(), 200, `GET ${where}: ${await response.text()}`);
  return response;
}

/** The action and fields (hidden inputs included, no button) of a form. */
const formOf = (locator) =>
  locator.evaluate((form) => ({
    action: form.getAttribute('action'),
    fields: Object.fromEntries(new FormData(form)),
  }));

/** POSTs `fields` to `action` from inside the page (its cookies and origin, as a form
 * would), following no redirect: status and content type. */
const postFromPage = (page, action, fields) =>
  page.evaluate(
    async ({ action, fields }) => {
      const response = await fetch(action, {
        method: 'POST',
        body: new URLSearchParams(fields),
        redirect: 'manual',
      });
      return { status: response.status, type: response.headers.get('content-type') ?? '' };
    },
    { action, fields },
  );

const csrfOf = async (page) => {
  const token = await page.locator('meta[name="csrf-token"]').getAttribute('content');
  assert.ok(token, 'the page has a csrf-token meta tag');
  return token;
};

const basic = (user, password) =>
  'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

/** `GET /v2/Services` with an API key: the status. */
async function servicesWithKey({ sid, secret }) {
  const response = await fetch(`${BASE}/v2/Services`, {
    headers: { authorization: basic(sid, secret) },
  });
  return response.status;
}

/** A Twilio-dialect start to `to` with the account's credentials: status and body. */
async function twilioStart(to) {
  const response = await fetch(`${BASE}/v2/Services/${SERVICE}/Verifications`, {
    method: 'POST',
    headers: {
      authorization: basic(ACCOUNT, AUTH_TOKEN),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ To: to, Channel: 'sms' }),
  });
  return { status: response.status, body: await response.json() };
}

/** The forms the viewer and CSRF scenarios replay, read from the admin's pages. */
async function adminForms() {
  const page = await signIn(ADMIN);
  await open(page, '/console/fraud');
  const lift = await formOf(
    page.locator(`#quarantines tr[data-prefix="${PREFIX}"] form`).first(),
  );
  const safeList = await formOf(page.locator(`#blocked tr[data-to="${BLOCKED}"] form`).first());
  await open(page, '/console/keys');
  const section = page.locator(`section[data-account="${ACCOUNT}"]`);
  const create = await formOf(section.locator(`form[action$="/api-keys"]`));
  create.fields.name = 'not-created';
  const revoke = await formOf(section.locator(`tr[data-sid="${SEEDED_KEY.sid}"] form`));
  const keyCount = await section.locator('table.api-keys tr[data-sid]').count();
  return { lift, safeList, create, revoke, keyCount };
}

async function assertQuarantined(page) {
  await open(page, '/console/fraud');
  assert.equal(
    await page.locator(`#quarantines tr[data-prefix="${PREFIX}"]`).count() > 0,
    true,
    `${PREFIX} is still quarantined`,
  );
}

// ---------------------------------------------------------------------------------------
// Scenarios

scenario('sign-in', async () => {
  const page = await freshPage();
  const wrong = await submitSignIn(page, { email: ADMIN.email, password: 'not-the-password!' });
  assert.equal(wrong, 401, 'a wrong password');
  assert.equal(path(page), '/console/login', 'stays on the sign-in page');
  assert.equal(
    (await page.locator('p.error[role="alert"]').textContent()).trim(),
    'Wrong email or password.',
  );
  const unknown = await submitSignIn(page, { email: 'nobody@console.test', password: 'whatever-it-is!' });
  assert.equal(unknown, 401, 'an unknown email');
  assert.equal(
    (await page.locator('p.error[role="alert"]').textContent()).trim(),
    'Wrong email or password.',
    'an unknown email reads like a wrong password',
  );

  const right = await submitSignIn(page, ADMIN);
  assert.equal(right, 303, 'the right password');
  assert.equal(path(page), '/console/', 'lands on the overview');
  assert.equal(await page.locator('form#sign-out[method="post"][action="/console/logout"]').count(), 1);
  await csrfOf(page);
  assert.equal(await page.locator('form[role="search"][action="/console/search"] input[name="q"]').count(), 1);
  signedIn.set(ADMIN.email, page);

  // Lockout: five wrong passwords for a throwaway operator, then the right one is refused.
  const locked = await freshPage();
  for (let n = 1; n <= 5; n++) {
    const status = await submitSignIn(locked, { email: LOCKED.email, password: `wrong-password-${n}` });
    assert.ok([401, 429].includes(status), `wrong password ${n}: ${status}`);
  }
  const refused = await submitSignIn(locked, LOCKED);
  assert.equal(refused, 429, 'the right password of a locked operator');
  assert.equal(path(locked), '/console/login');
  assert.match(await locked.locator('p.error[role="alert"]').textContent(), /locked/);
  await locked.context().close();
});

scenario('timeline', async () => {
  const page = await signIn(ADMIN);
  await open(page, '/console/');
  // Typed as people write it; the search normalises it to E.164.
  const typed = NUMBER.replace(/^(\+\d{2})(\d)(\d{2})(\d{2})(\d{2})(\d{2})$/, '$1 $2 $3 $4 $5 $6');
  const search = page.locator('form[role="search"]');
  await search.locator('input[name="q"]').fill(typed);
  const [found] = await Promise.all([
    page.waitForNavigation(),
    search.locator('input[name="q"]').press('Enter'),
  ]);
  assert.equal(await firstStatus(found), 303, 'the search redirects');
  assert.equal(path(page), `/console/numbers/${NUMBER}`);
  assert.ok(new URL(page.url()).pathname.includes('%2B'), 'the + is URL-encoded');

  const entries = await page.locator('ol.timeline > li').evaluateAll((items) =>
    items.map((li) => ({ kind: li.dataset.kind, text: li.textContent.replace(/\s+/g, ' ').trim() })),
  );
  for (const entry of entries) console.log(`   ${entry.kind}: ${entry.text}`);
  // Each step is looked for after the one before: the page lists them in time order.
  let at = -1;
  const next = (what, matches) => {
    const found = entries.findIndex((entry, index) => index > at && matches(entry));
    assert.ok(found > at, `${what}, after entry ${at}`);
    at = found;
  };
  const has = (text, word) => text.toLowerCase().includes(word.toLowerCase());
  const standalone = (text, number) => new RegExp(`(^|[^\\d.:])${number}([^\\d.:]|$)`).test(text);
  next('the refusal with its rule', (e) =>
    e.kind === 'verification.blocked' &&
    has(e.text, REFUSAL_REASON) &&
    REFUSAL_NUMBERS.every((n) => standalone(e.text, n)));
  next('the start', (e) => e.kind === 'verification.started');
  // An attempt a provider refused before the next one took the message is recorded as
  // delivery.provider_failed (docs/operations.md); the console's first contract called it
  // delivery.failed, which is also what a delivery that failed for good is: either reads.
  next(`the attempt ${PROVIDER_DOWN} refused, with its error code`, (e) =>
    ['delivery.failed', 'delivery.provider_failed'].includes(e.kind) &&
    has(e.text, PROVIDER_DOWN) &&
    e.text.includes(PROVIDER_DOWN_ERROR));
  next(`the next attempt, at ${PROVIDER_UP}`, (e) => e.kind === 'delivery.sent' && has(e.text, PROVIDER_UP));
  next('the receipt: delivered', (e) =>
    e.kind === 'delivery.delivered' && has(e.text, PROVIDER_UP) && has(e.text, 'delivered'));
  next('the approval', (e) => e.kind === 'verification.approved');
  // A queued message has no provider yet; every later delivery step has one.
  for (const entry of entries.filter((e) => e.kind.startsWith('delivery.') && e.kind !== 'delivery.queued')) {
    assert.ok(
      [PROVIDER_DOWN, PROVIDER_UP].some((name) => has(entry.text, name)),
      `a delivery entry names its provider: ${entry.text}`,
    );
  }
  const html = await page.content();
  assert.ok(!html.includes(CODE), 'the page never shows the code');
});

scenario('viewer', async () => {
  const forms = await adminForms();
  const page = await signIn(VIEWER);
  for (const where of ['/console/fraud', '/console/keys']) {
    await open(page, where);
    // The header's forms (sign out) are the operator's own; the page's are actions.
    assert.equal(
      await page.locator('main form[method="post" i]').count(),
      0,
      `${where}: a viewer gets no action form`,
    );
    for (const name of ['Lift', 'Add to safe list', 'Create API key', 'Revoke']) {
      assert.equal(await page.getByRole('button', { name }).count(), 0, `${where}: no ${name} button`);
    }
  }
  assert.equal(await page.locator(`section[data-account="${ACCOUNT}"]`).count(), 1, 'the keys page is there');
  await open(page, '/console/fraud');
  assert.equal(await page.locator('#quarantines').count(), 1, 'the fraud page is there');
  const csrf = await csrfOf(page);
  for (const [what, form] of Object.entries({
    lift: forms.lift,
    'safe list': forms.safeList,
    'create an API key': forms.create,
    'revoke an API key': forms.revoke,
  })) {
    const answer = await postFromPage(page, form.action, { ...form.fields, csrf });
    assert.equal(answer.status, 403, `a viewer's POST to ${what} (${form.action})`);
    assert.match(answer.type, /^text\/html/, `${what}: an HTML page`);
  }
  assert.equal(await servicesWithKey(SEEDED_KEY), 200, 'the key the viewer tried to revoke works');
  await assertQuarantined(await signIn(ADMIN));
});

scenario('csrf', async () => {
  const forms = await adminForms();
  const page = await signIn(ADMIN);
  for (const [what, form] of Object.entries({ lift: forms.lift, 'create an API key': forms.create })) {
    const { csrf, ...rest } = form.fields;
    assert.ok(csrf, `${what}: the form carries a csrf field`);
    for (const [how, fields] of [
      ['without csrf', rest],
      ['with a forged csrf', { ...rest, csrf: 'A'.repeat(csrf.length) }],
    ]) {
      const answer = await postFromPage(page, form.action, fields);
      assert.equal(answer.status, 403, `${what} ${how}`);
      assert.match(answer.type, /^text\/html/, `${what} ${how}: an HTML page`);
    }
  }
  await assertQuarantined(page);
  await open(page, '/console/keys');
  assert.equal(
    await page.locator(`section[data-account="${ACCOUNT}"] table.api-keys tr[data-sid]`).count(),
    forms.keyCount,
    'no key was created',
  );
});

scenario('safe list', async () => {
  const before = await twilioStart(BLOCKED);
  assert.equal(before.status, 403, `the blocked number is refused before: ${JSON.stringify(before.body)}`);
  // Support may add to the safe list (the role's permission).
  const page = await signIn(SUPPORT);
  await open(page, '/console/fraud');
  const row = page.locator(`#blocked tr[data-to="${BLOCKED}"]`).first();
  const button = row.getByRole('button', { name: 'Add to safe list' });
  assert.equal(await button.count(), 1, 'the refused number has an Add to safe list button');
  assert.equal(await firstStatus(await submit(page, button)), 303);
  assert.equal(path(page), '/console/fraud', 'back on the fraud page');
  assert.ok(await page.locator('p.notice[role="status"]').isVisible(), 'a notice says it is done');
  const after = await twilioStart(BLOCKED);
  assert.equal(after.status, 201, `the next start passes: ${JSON.stringify(after.body)}`);
  assert.equal(after.body.status, 'pending');
});

scenario('quarantine', async () => {
  const page = await signIn(ADMIN);
  await open(page, '/console/fraud');
  const row = page.locator(`#quarantines tr[data-prefix="${PREFIX}"]`);
  assert.ok((await row.count()) > 0, `${PREFIX} is listed`);
  const lifted = await submit(page, row.first().getByRole('button', { name: 'Lift' }));
  assert.equal(await firstStatus(lifted), 303);
  assert.equal(path(page), '/console/fraud', 'back on the fraud page');
  assert.ok(await page.locator('p.notice[role="status"]').isVisible(), 'a notice says it is done');
  await open(page, '/console/fraud');
  assert.equal(await row.count(), 0, `${PREFIX} is gone from the page`);
  const listed = await fetch(`${BASE}/admin/v1/quarantines`, {
    headers: { authorization: basic(ACCOUNT, AUTH_TOKEN) },
  }).then((r) => r.json());
  assert.deepEqual(
    listed.quarantines.filter((q) => q.prefix === PREFIX),
    [],
    'and from the admin API',
  );
});

scenario('keys', async () => {
  const page = await signIn(ADMIN);
  await open(page, '/console/keys');
  const section = page.locator(`section[data-account="${ACCOUNT}"]`);
  assert.equal(await section.locator(`tr[data-sid="${SEEDED_KEY.sid}"]`).count(), 1, 'the seeded key is listed');
  const create = section.locator('form[action$="/api-keys"]');
  await create.locator('input[name="name"]').fill('browser-test');
  const created = await submit(page, create.getByRole('button', { name: 'Create API key' }));
  assert.equal(created.status(), 200, 'the page with the new key');
  const sid = (await page.locator('code#new-key-sid').textContent()).trim();
  const secret = (await page.locator('code#new-key-secret').textContent()).trim();
  assert.match(sid, /^SK[0-9a-f]{32}$/);
  assert.ok(secret.length >= 16, 'a secret is shown');
  assert.equal(await servicesWithKey({ sid, secret }), 200, 'the new key authenticates');

  await open(page, '/console/keys');
  assert.equal(await page.locator('#new-key-secret').count(), 0, 'the secret is shown once');
  assert.ok(!(await page.content()).includes(secret), 'and never again');
  const row = section.locator(`tr[data-sid="${sid}"]`);
  assert.equal(
    await row.locator(`form[action="/console/keys/${ACCOUNT}/api-keys/${sid}/revoke"]`).count(),
    1,
  );
  const revoked = await submit(page, row.getByRole('button', { name: 'Revoke' }));
  assert.equal(revoked.status(), 200, 'the keys page after the revocation');
  assert.equal(await servicesWithKey({ sid, secret }), 401, 'the revoked key is refused');
  await open(page, '/console/keys');
  assert.equal(await section.locator(`tr[data-sid="${sid}"]`).count(), 0, 'and no longer listed');
  assert.equal(await servicesWithKey(SEEDED_KEY), 200, 'the other key still works');
});

scenario('screenshots', async () => {
  const admin = await signIn(ADMIN);
  await open(admin, `/console/services/${SERVICE}`);
  const state = await admin.context().storageState();
  mkdirSync(SCREENSHOTS, { recursive: true });
  const pages = {
    timeline: `/console/numbers/${encodeURIComponent(NUMBER)}`,
    insights: '/console/insights',
    services: '/console/services',
  };
  for (const [width, height] of [[1280, 800], [360, 780]]) {
    const page = await freshPage({ width, height }, state);
    for (const [name, where] of Object.entries(pages)) {
      await open(page, where);
      const file = join(SCREENSHOTS, `${name}-${width}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(`   ${file}`);
    }
    await page.context().close();
  }
});

// ---------------------------------------------------------------------------------------
// Run

let passed = 0;
let failed = 0;
try {
  // Without a console there is nothing to drive: say so once instead of once per scenario.
  const login = await fetch(`${BASE}/console/login`);
  if (login.status !== 200 || !(await login.text()).includes('id="login"')) {
    throw new Error(`GET /console/login answered ${login.status} without the sign-in form: is the console served?`);
  }
  for (const { name, run } of scenarios) {
    console.log(`== ${name}`);
    const t0 = Date.now();
    try {
      await run();
      passed += 1;
      console.log(`ok ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (error) {
      failed += 1;
      console.log(`FAILED ${name}: ${error.stack ?? error}`);
    }
  }
} catch (error) {
  failed += 1;
  console.log(`FAILED: ${error.message ?? error}`);
} finally {
  await browser.close();
}
console.log(`console.mjs: ${((Date.now() - started) / 1000).toFixed(1)} s in the browser`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
