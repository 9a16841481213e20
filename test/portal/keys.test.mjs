// Keys and audit: an admin makes a viewer key (shown once, and it works), finds its creation in the audit log by
// action and by target, revokes it with a second click (the API refuses it from then on), and finds the earlier
// tests' writes in the log with the key that made them. Runs after the Bota and rollout tests, so the log holds
// their releases and rollout.

import { allow, check, env, open, runBrowserTest, screenshots, signIn, text } from './lib.mjs';

// The status the server answers `key` on GET /v1/whoami, asked from the page (the portal's own origin).
const whoamiStatus = (page, key) => page.evaluate(async (k) =>
  (await fetch('/v1/whoami', { headers: { Authorization: `Bearer ${k}` } })).status, key);

// The audit rows on screen after searching for `action` and `targetId` (either may be '').
async function searchAudit(page, action, targetId) {
  await page.$eval('#audit-filter input[name=action]', (e, v) => { e.value = v; }, action);
  await page.$eval('#audit-filter input[name=target_id]', (e, v) => { e.value = v; }, targetId);
  // The rows of the last search go first, so that the wait below sees this search's answer, not the last one's.
  await page.$eval('#audit-rows', (tbody) => tbody.replaceChildren());
  await page.click('#audit-filter button[type=submit]');
  await page.waitForFunction((a) => {
    const rows = [...document.querySelector('#audit-rows').rows];
    return rows.length > 0 && rows.every((r) => a === '' || r.cells[2].textContent === a);
  }, {}, action);
  return page.$$eval('#audit-rows tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
}

runBrowserTest('keys', async (page, problems) => {
  await page.goto(`${env('PORTAL_BASE')}/`);
  await signIn(page, env('PORTAL_ADMIN_KEY'));
  await page.waitForSelector('#page-fleet:not([hidden])');
  await open(page, '#keys', 'page-keys');
  await page.waitForFunction(() => document.querySelector('#key-rows').rows.length > 0);

  // A viewer key whose name is markup: shown once, as text, and it works at once.
  const name = '<b>ci-reader</b>';
  await page.type('#key-form input[name=name]', name);
  await page.select('#key-form select[name=role]', 'viewer');
  await page.click('#key-form button[type=submit]');
  await page.waitForSelector('#key-result:not([hidden])');
  const key = await text(page, '#key-secret');
  check(/^ota_\S+$/.test(key), `the new key is shown as ${JSON.stringify(key)}`);
  check((await text(page, '#key-name')) === `${name} (viewer)`, 'the new key is not named as typed');
  check(await whoamiStatus(page, key) === 200, 'the new key is refused');
  await page.waitForFunction((n) => [...document.querySelector('#key-rows').rows].some((r) => r.cells[0].textContent === n), {}, name);
  const keyId = await page.$$eval('#key-rows tr', (rows, n) => rows.find((r) => r.cells[0].textContent === n).dataset.id, name);
  check(await page.$('#key-rows b') === null, 'a key name was inserted as markup');
  await screenshots(page, 'keys');

  // Its creation in the audit log, found by action and by target, with the key that made it.
  const created = await searchAudit(page, 'api_key.create', keyId);
  check(created.length === 1, `${created.length} audit rows for the key's creation`);
  check(created[0][1] !== '', 'the audit row names no key');
  check(created[0][3].includes(keyId), `the audit row's target is ${created[0][3]}`);

  // Revoke: the first click asks, the second revokes; the key is refused from then on.
  const revoke = () => page.$$eval('#key-rows tr', (rows, id) =>
    rows.find((r) => r.dataset.id === id).querySelector('button').click(), keyId);
  await revoke();
  await page.waitForSelector('#keys-confirm:not([hidden])');
  check(await whoamiStatus(page, key) === 200, 'the key was revoked at the first click');
  await revoke();
  await page.waitForFunction((id) => {
    const r = [...document.querySelector('#key-rows').rows].find((tr) => tr.dataset.id === id);
    return r && r.cells[4].textContent !== '' && r.querySelector('button') === null;
  }, {}, keyId);
  const deadline = Date.now() + 5000;
  let status = 200;
  while (status !== 401 && Date.now() < deadline) {
    status = await whoamiStatus(page, key);
    if (status !== 401) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  check(status === 401, `the revoked key still gets ${status} after 5 s`);
  allow(problems, 401);
  const revoked = await searchAudit(page, 'api_key.revoke', keyId);
  check(revoked.length === 1, `${revoked.length} audit rows for the revocation`);

  // The earlier tests' writes are there, newest first.
  const releases = await searchAudit(page, 'release.create', '');
  check(releases.length >= 2, `${releases.length} release.create rows`);
  const rollouts = await searchAudit(page, 'rollout.create', '');
  check(rollouts.length >= 1, 'no rollout.create row');
  const all = await searchAudit(page, '', '');
  check(all[0][2] === 'api_key.revoke', `the newest entry is ${all[0][2]}`);
  await screenshots(page, 'audit');
  check(await text(page, '#error') === '', `an error is shown: ${await text(page, '#error')}`);
});
