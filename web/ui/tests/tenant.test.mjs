// Browser test of the UI against a multi-tenant pharos
// (-multitenancy.enabled): every API call needs X-Scope-OrgID, so the UI
// asks for a tenant, sends it, and reads each tenant's data only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPharos, remoteWrite, launch, watch, screenshot, poll } from './harness.mjs';

let pharos;
let browser;

before(async () => {
  pharos = await startPharos({ args: ['-multitenancy.enabled'] });
  browser = await launch();
  const now = Date.now();
  await remoteWrite(pharos.url, [{ labels: { __name__: 'ui_tenant_metric', team: 'a' }, samples: [[now, 7]] }], { 'X-Scope-OrgID': 'team-a' });
  await remoteWrite(pharos.url, [{ labels: { __name__: 'ui_tenant_metric', team: 'b' }, samples: [[now, 8]] }], { 'X-Scope-OrgID': 'team-b' });
});

after(async () => {
  if (browser) await browser.close();
  if (pharos) await pharos.stop();
});

// query runs expr in the first panel's table.
async function query(page, expr) {
  const box = page.locator('textarea[aria-label="expression"]').first();
  await box.fill(expr);
  await box.press('Enter');
}

// showsTeam queries ui_tenant_metric and requires the one series of team.
async function showsTeam(page, team) {
  await query(page, 'ui_tenant_metric');
  await poll(async () => (await page.locator('.result-table tbody tr').count()) === 1, { what: `team-${team}'s series` });
  assert.match(await page.locator('.result-table').innerText(), new RegExp(`team="${team}"`));
}

test('multi-tenant: the UI asks for a tenant, then reads as it', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  const problems = watch(page, pharos.url);
  await page.goto(pharos.url + '/graph');

  // Without a tenant every call is refused: the page says why, and the top
  // bar asks for one.
  await query(page, 'ui_tenant_metric');
  await page.locator('.error', { hasText: 'choose the tenant to read as' }).first().waitFor();
  const input = page.locator('.tenant-form.needed input[aria-label="tenant"]');
  await input.waitFor();
  await screenshot(page, 'tenant-1-needed');

  // As team-a: its series only, and the top bar says whose data this is.
  await input.fill('team-a');
  await input.press('Enter');
  await page.locator('button.tenant', { hasText: 'tenant: team-a' }).waitFor();
  await showsTeam(page, 'a');
  assert.doesNotMatch(await page.locator('.result-table').innerText(), /team="b"/);
  await screenshot(page, 'tenant-2-team-a');

  // Other pages read as the tenant too (the rule and target APIs need one),
  // once the ruler has a leader to answer.
  await poll(async () => (await fetch(pharos.url + '/api/v1/rules', { headers: { 'X-Scope-OrgID': 'team-a' } })).ok, { what: 'a ruler leader' });
  await page.locator('.nav a', { hasText: 'Rules' }).click();
  await page.locator('.rules-table, p.empty').first().waitFor();
  assert.equal(await page.locator('.error').count(), 0, 'no refusal on /rules');

  // Changed to team-b: the same query shows team-b's series.
  await page.locator('.nav a', { hasText: 'Graph' }).click();
  await page.locator('button.tenant').click();
  const again = page.locator('.tenant-form input[aria-label="tenant"]');
  await again.fill('team-b');
  await again.press('Enter');
  await page.locator('button.tenant', { hasText: 'tenant: team-b' }).waitFor();
  await showsTeam(page, 'b');
  await screenshot(page, 'tenant-3-team-b');

  // The only console errors are the browser's notes of the refused calls
  // before a tenant was chosen.
  assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), []);
  await ctx.close();
});
