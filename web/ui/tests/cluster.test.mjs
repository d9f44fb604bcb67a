// The /cluster page of a real three-node cluster: who owns what (the
// ingester and scraper rings) and who leads (the ruler's raft group, the
// notifier's gossip peers), seen from one node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, launch, watch, screenshot, poll } from './harness.mjs';

let cluster;
let browser;

before(async () => {
  cluster = await startCluster(3);
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (cluster) await cluster.stop();
});

test('cluster page of three nodes: rings, raft leader and notifier peers', async () => {
  const url = cluster.nodes[0].url;
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  const problems = watch(page, url);
  await page.goto(url + '/cluster');

  const ring = page.locator('.card.ring .ring-table tbody tr');
  await poll(async () => (await ring.count()) === 3, { what: 'three ingesters in the ring', timeoutMs: 60000 });
  await poll(async () => (await page.locator('.card.ring .ring-table .badge', { hasText: 'ACTIVE' }).count()) === 3, { what: 'three ACTIVE ingesters', timeoutMs: 60000 });
  const shares = (await page.locator('.card.ring').innerText()).match(/\d+\.\d%/g).map(parseFloat);
  assert.equal(shares.length, 3);
  assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 0.5, `token shares ${shares} sum to 100%`);

  const scrapers = page.locator('.card.scrapers .ring-table tbody tr');
  await poll(async () => (await scrapers.count()) === 3, { what: 'three scrapers in the scraper ring', timeoutMs: 60000 });

  const leader = page.locator('.card.ruler .ruler-leader');
  await poll(async () => /127\.0\.0\.\d+:\d+/.test(await leader.innerText()), { what: 'a raft leader', timeoutMs: 60000 });
  assert.equal(await page.locator('.card.ruler .peers tbody tr').count(), 3);
  assert.equal(await page.locator('.card.ruler .peers .badge', { hasText: 'leader' }).count(), 1);

  await poll(async () => (await page.locator('.card.notifier .peers tbody tr').count()) === 3, { what: 'three notifier peers', timeoutMs: 60000 });
  await screenshot(page, 'cluster-three-nodes');
  assert.deepEqual(problems, []);
  await ctx.close();
});
