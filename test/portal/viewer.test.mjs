// A viewer key's portal: every page reads as the admin's does, but no write control is shown anywhere, and the
// API refuses a write made with that key anyway (403). Runs after the other browser tests, so there are
// releases, devices, assignments and a rollout to show.

import { allow, check, env, open, runBrowserTest, screenshots, signIn, text } from './lib.mjs';

// The buttons a reader may use: navigation, search and paging.
const READER_BUTTONS = new Set(['Sign out', 'Search', 'Next page']);

async function writeControls(page) {
  return page.evaluate((allowed) => {
    const shown = (e) => e.offsetParent !== null || e.getClientRects().length > 0;
    const controls = [...document.querySelectorAll('button, input[type=file], textarea, .write')].filter(shown);
    return controls.filter((c) => !(c.tagName === 'BUTTON' && allowed.includes(c.textContent)))
      .map((c) => c.outerHTML.slice(0, 80));
  }, [...READER_BUTTONS]);
}

async function noWriteControl(page, name) {
  const found = await writeControls(page);
  check(found.length === 0, `the viewer sees write controls on ${name}: ${found.join(' | ')}`);
  await screenshots(page, `viewer-${name}`);
}

runBrowserTest('viewer', async (page, problems) => {
  await page.goto(`${env('PORTAL_BASE')}/`);
  await signIn(page, env('PORTAL_VIEWER_KEY'));
  await page.waitForSelector('#page-fleet:not([hidden])');
  await page.waitForFunction(() => document.querySelector('#role').textContent === 'viewer');
  await page.waitForFunction(() => document.querySelector('#by-status').rows.length > 0);
  await noWriteControl(page, 'fleet');

  await open(page, '#firmware', 'page-firmware');
  await page.waitForFunction(() => document.querySelector('#release-rows').rows.length > 0);
  await noWriteControl(page, 'firmware');

  await open(page, '#devices', 'page-devices');
  await page.waitForFunction(() => document.querySelector('#device-rows').rows.length > 0);
  await noWriteControl(page, 'devices');
  // A device that was updated: its OTA tab with its history.
  await page.select('#device-filter select[name=ota_status]', 'applied');
  await page.click('#device-filter button[type=submit]');
  await page.waitForFunction(() => {
    const rows = [...document.querySelector('#device-rows').rows];
    return rows.length > 0 && rows.every((r) => r.cells[5].textContent === 'applied');
  });
  await page.$eval('#device-rows a', (a) => a.click()); // in one step: the live page may redraw the table
  await page.waitForSelector('#page-device:not([hidden])');
  await page.waitForFunction(() => document.querySelector('#device-history').rows.length > 0);
  await noWriteControl(page, 'device');

  await open(page, '#rollouts', 'page-rollouts');
  await page.waitForFunction(() => document.querySelector('#rollout-rows').rows.length > 0);
  await noWriteControl(page, 'rollouts');
  await page.$eval('#rollout-rows a', (a) => a.click());
  await page.waitForSelector('#page-rollout:not([hidden])');
  await page.waitForFunction(() => document.querySelector('#wave-rows').rows.length > 0);
  await noWriteControl(page, 'rollout');

  // The API refuses the viewer's write whatever the page shows.
  const status = await page.evaluate(async () => {
    const answer = await fetch('/v1/models', {
      method: 'POST',
      headers: { Authorization: `Bearer ${sessionStorage.getItem('ota.api_key')}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'viewer-made', name: 'Viewer' }),
    });
    return answer.status;
  });
  check(status === 403, `a viewer's POST /v1/models answered ${status}`);
  allow(problems, 403);
  check(await text(page, '#error') === '', 'an error is shown to the viewer');
});
