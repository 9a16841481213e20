// The Bota flow as an operator does it, in the browser, with the bundled device client beside it: sign in, create
// a model, upload a firmware .bin and .ufw and watch the progress bar move (a big image through a presigned upload
// too), register a device (its token shown once), open its OTA tab, assign the release, run `ota-device run
// --once`, and watch the tab go pending → delivered (with the download's progress) → applied without a reload.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, env, open, runBrowserTest, screenshots, signIn, text } from './lib.mjs';

const NOTES = '<b>Faster pairing</b> & <img src=x onerror=alert(2)>';

function run(bin, args) {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    child.on('close', (status) => resolve({ status, output }));
  });
}

// Samples the upload's progress bar until the upload is done: the values it showed on the way.
async function watchUpload(page) {
  const seen = [];
  for (let i = 0; i < 600; i++) {
    const state = await page.evaluate(() => {
      const p = document.querySelector('#upload-progress progress');
      return { value: p ? p.value : null, max: p ? p.max : null, done: !document.querySelector('#upload-result').hidden,
        error: !document.querySelector('#error').hidden };
    });
    if (state.value !== null) seen.push(state);
    if (state.done || state.error) return seen;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return seen;
}

async function upload(page, version, model, bin, ufw, notes) {
  await page.type('#upload-form input[name=version]', version);
  await page.select('#upload-form select[name=model]', model);
  await (await page.$('#upload-form input[name=bin]')).uploadFile(bin);
  if (ufw) await (await page.$('#upload-form input[name=ufw]')).uploadFile(ufw);
  if (notes) await page.type('#upload-form textarea[name=notes]', notes);
  await page.click('#upload-form button[type=submit]');
  const seen = await watchUpload(page);
  check(await page.$eval('#error', (e) => e.hidden), `upload of ${version}: ${await text(page, '#error')}`);
  const midway = seen.filter((s) => s.value > 0 && s.value < s.max);
  check(midway.length > 0, `the progress bar of ${version} never showed a part done: ${JSON.stringify(seen.slice(0, 5))}`);
  const last = seen[seen.length - 1];
  check(last.value === last.max, `the progress bar of ${version} ended at ${last.value} of ${last.max}`);
  await page.waitForFunction((v) => [...document.querySelectorAll('#release-rows tr')]
    .some((tr) => tr.cells[1].textContent === v), {}, version);
}

// Records, inside the page, every status the OTA tab shows and the download progress bar's values.
async function recordOtaTab(page) {
  await page.evaluate(() => {
    window.otaSeen = { statuses: [document.querySelector('#device-section').dataset.status], progress: [] };
    new MutationObserver(() => {
      const status = document.querySelector('#device-section').dataset.status;
      const seen = window.otaSeen;
      if (seen.statuses[seen.statuses.length - 1] !== status) seen.statuses.push(status);
      const bar = document.querySelector('#device-active progress');
      if (bar) seen.progress.push({ value: bar.value, max: bar.max, label: bar.nextSibling.textContent });
    }).observe(document.querySelector('#device-section'), { attributes: true, childList: true, subtree: true });
  });
}

runBrowserTest('bota', async (page) => {
  const work = env('PORTAL_WORK');
  mkdirSync(work, { recursive: true });
  const bin = join(work, 'bota-1.1.0.bin');
  const ufw = join(work, 'bota-1.1.0.ufw');
  const big = join(work, 'bota-1.2.0.bin');
  writeFileSync(bin, randomBytes(3 * 1024 * 1024));
  writeFileSync(ufw, randomBytes(64 * 1024));
  writeFileSync(big, randomBytes(9 * 1024 * 1024));
  const suffix = randomBytes(4).toString('hex');
  const model = `bota-${suffix}`;
  const serial = `BOTA-${suffix}`;

  await page.goto(`${env('PORTAL_BASE')}/`);
  await signIn(page, env('PORTAL_ADMIN_KEY'));
  await page.waitForSelector('#page-fleet:not([hidden])');
  await page.evaluate(() => { window.sameDocument = true; }); // gone if the page is ever loaded again

  // Firmware: a new model, then a .bin and a .ufw over a slow link, so the bar has time to move.
  await open(page, '#firmware', 'page-firmware');
  await page.type('#model-form input[name=id]', model);
  await page.type('#model-form input[name=name]', 'Bota Pin');
  await page.click('#model-form button[type=submit]');
  await page.waitForFunction((m) => document.querySelector('#model-result').textContent.includes(m), {}, model);
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * 1024 * 1024 });
  await upload(page, '1.1.0', model, bin, ufw, NOTES);
  // A big image goes to storage through a presigned PUT, not through POST /v1/releases.
  const presigned = [];
  page.on('request', (r) => { if (r.method() === 'PUT' || r.url().endsWith('/v1/uploads')) presigned.push(r.url()); });
  await upload(page, '1.2.0', model, big, null, null);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  check(presigned.some((u) => u.endsWith('/v1/uploads')) && presigned.some((u) => !u.endsWith('/v1/uploads')),
    `the 9 MiB image did not go through a presigned upload: ${presigned}`);
  const notes = await page.$$eval('#release-rows tr', (rows) => rows.map((r) => r.cells[5].textContent));
  check(notes.includes(NOTES), `the release notes show as ${notes}`);
  check(await page.$$eval('#release-rows img, #release-rows b', (e) => e.length) === 0, 'release notes made elements');
  await screenshots(page, 'firmware');

  // 1.2.0 withdrawn, then deleted; each asks for a second click.
  const rowOf = (version) => page.$$eval('#release-rows tr', (rows, v) => {
    const r = rows.find((tr) => tr.cells[1].textContent === v);
    return r ? r.cells[2].textContent : null;
  }, version);
  const clickIn = (version, label) => page.$$eval('#release-rows tr', (rows, v, l) => {
    const r = rows.find((tr) => tr.cells[1].textContent === v);
    [...r.querySelectorAll('button')].find((b) => b.textContent === l).click();
  }, version, label);
  await clickIn('1.2.0', 'Withdraw');
  await page.waitForSelector('#firmware-confirm:not([hidden])');
  check(await rowOf('1.2.0') === 'released', 'one click withdrew the release');
  await clickIn('1.2.0', 'Withdraw');
  await page.waitForFunction(() => [...document.querySelectorAll('#release-rows tr')]
    .some((tr) => tr.cells[1].textContent === '1.2.0' && tr.cells[2].textContent === 'withdrawn'));
  await clickIn('1.2.0', 'Delete');
  await clickIn('1.2.0', 'Delete');
  await page.waitForFunction(() => ![...document.querySelectorAll('#release-rows tr')]
    .some((tr) => tr.cells[1].textContent === '1.2.0'));

  // Devices: register the device; its token is shown once.
  await open(page, '#devices', 'page-devices');
  await page.type('#register-form input[name=serial]', serial);
  await page.select('#register-form select[name=model]', model);
  await page.click('#register-form button[type=submit]');
  await page.waitForSelector('#register-result:not([hidden])');
  const token = await text(page, '#register-token');
  const deviceId = await text(page, '#register-id');
  check(token.length >= 20 && !/\s/.test(token), `token shown: ${token}`);
  await screenshots(page, 'device-registered');

  // The factory writes the id and token into the device.
  const state = join(work, `state-${suffix}`);
  const provisioned = await run(env('PORTAL_DEVICE_BIN'), ['--state', state, 'register', '--server', env('PORTAL_BASE'),
    '--device-id', deviceId, '--token', token, '--serial', serial, '--model', model, '--version', '1.0.0']);
  check(provisioned.status === 0, `ota-device register: ${provisioned.output}`);

  // The OTA tab: assign 1.1.0.
  await page.click('#register-id a');
  await page.waitForSelector('#page-device:not([hidden])');
  await page.waitForFunction((s) => document.querySelector('#device-title').textContent === s, {}, serial);
  await page.waitForFunction(() => [...document.querySelectorAll('#assign-release option')].some((o) => o.text === '1.1.0'));
  const release = await page.$$eval('#assign-release option', (options) => options.find((o) => o.text === '1.1.0').value);
  await page.select('#assign-release', release);
  await page.click('#assign-form button[type=submit]');
  await page.waitForSelector('#device-section[data-status=pending]');
  await recordOtaTab(page);

  // The device, beside the browser: one heartbeat and the download it leads to, over a slow link, then the
  // heartbeat that reports the new version. The tab follows without a reload.
  const device = run(env('PORTAL_DEVICE_BIN'), ['--state', state, 'run', '--once', '--throttle', '200000']);
  await page.waitForSelector('#device-section[data-status=delivered]', { timeout: 30000 });
  await page.waitForSelector('#device-active progress', { timeout: 30000 });
  await screenshots(page, 'device-ota-downloading');
  const ran = await device;
  check(ran.status === 0, `ota-device run --once: ${ran.output}`);
  await page.waitForSelector('#device-section[data-status=applied]', { timeout: 30000 });
  const seen = await page.evaluate(() => window.otaSeen);
  check(seen.statuses.join(' ') === 'pending delivered applied', `the OTA tab showed ${seen.statuses.join(' → ')}`);
  const midway = seen.progress.filter((p) => p.value > 0 && p.value < p.max);
  check(midway.length > 0 && /^downloading \d+% \(\d+\/3145728\)$/.test(midway[0].label),
    `no download progress shown: ${JSON.stringify(seen.progress.slice(0, 3))}`);
  await page.waitForFunction(() => document.querySelector('#device-history').textContent.includes('delivered → applied'));
  const facts = await text(page, '#device-facts');
  check(facts.includes('1.1.0'), `the device's version is not shown as 1.1.0: ${facts}`);
  check(await page.evaluate(() => window.sameDocument === true), 'the page was loaded again');
  // The device's own tags, edited on its page.
  await page.type('#device-tags', 'field, bota');
  await page.click('#tags-form button[type=submit]');
  await page.waitForFunction(() => /Tags(bota, field|field, bota)/.test(document.querySelector('#device-facts').textContent));
  await screenshots(page, 'device-ota');
});
