// A rollout made from the Rollouts page as an operator does it: the preview (a dry run) shows the exact devices
// per wave, Create is offered only for the settings just previewed, and the rollout's page then follows its
// devices live (without a reload) while they heartbeat, through pause, resume and advance to completion. A lost
// event stream comes back with Last-Event-ID. The fleet (a model, a release, 12 devices tagged "eu" and 4 not)
// is made through the API; the devices heartbeat from here with their own tokens, as devices do.

import { randomBytes } from 'node:crypto';
import { check, env, lossyLink, open, runBrowserTest, screenshots, signIn, text } from './lib.mjs';

const EU = 12;
const OTHERS = 4;

async function call(method, path, key, body) {
  const answer = await fetch(`${env('PORTAL_BASE')}${path}`, {
    method, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const parsed = await answer.json().catch(() => null);
  if (!answer.ok) throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(parsed)}`);
  return parsed;
}

async function makeFleet(admin) {
  const suffix = randomBytes(4).toString('hex');
  const model = `fleet-${suffix}`;
  await call('POST', '/v1/models', admin, { id: model, name: 'Fleet Tracker' });
  const release = await call('POST', '/v1/releases', admin,
    { version: '2.0.0', model, bin: { blob: randomBytes(4096).toString('base64') } });
  const devices = [];
  for (let i = 0; i < EU + OTHERS; i++) {
    const d = await call('POST', '/v1/devices', admin, {
      serial: `FL-${suffix}-${i}`, model, firmware_version: '1.0.0', tags: i < EU ? ['eu'] : ['us'],
    });
    devices.push(d);
  }
  return { model, release, devices };
}

// One heartbeat of every device: those with a manifest report the new version at their next one, as a device
// that installed it would (the flow of a real device is the Bota test's).
async function heartbeatAll(devices) {
  for (const d of devices) {
    const path = `/v1/devices/${d.id}/heartbeat`;
    const answer = await call('POST', path, d.token, { firmware_version: d.version ?? '1.0.0' });
    if (answer.ota) d.version = answer.ota.version;
  }
}

async function action(page, name) {
  const buttons = await page.$$('#rollout-actions button');
  for (const b of buttons) {
    if (await b.evaluate((e) => e.textContent) === name) return b.click();
  }
  throw new Error(`no ${name} button`);
}

// Heartbeats of every device until `n` of them got the new version, then the heartbeat that reports it.
async function updateAll(devices, n) {
  for (let round = 0; round < 50 && devices.filter((d) => d.version === '2.0.0').length < n; round++) {
    await heartbeatAll(devices);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await heartbeatAll(devices);
}

const status = (page) => page.$eval('#rollout-section', (e) => e.dataset.status);
const waveApplied = (page, wave) => page.$eval('#wave-rows', (rows, w) => rows.rows[w - 1].cells[5].textContent, wave);

runBrowserTest('rollout', async (page, problems) => {
  const admin = env('PORTAL_ADMIN_KEY');
  const fleet = await makeFleet(admin);
  const eu = fleet.devices.slice(0, EU);
  const streams = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/events')) streams.push(r.headers()['last-event-id'] ?? null); });

  const link = await lossyLink(env('PORTAL_BASE'));
  await page.goto(`${link.url}/`);
  await signIn(page, admin);
  await page.waitForSelector('#page-fleet:not([hidden])');
  await page.evaluate(() => { window.sameDocument = true; }); // gone if the page is ever loaded again
  await open(page, '#rollouts', 'page-rollouts');
  await page.waitForFunction((id) => [...document.querySelectorAll('#create-release option')].some((o) => o.value === id),
    {}, fleet.release.id);

  // The preview: 12 devices tagged eu, in two waves, with their sample.
  await page.select('#create-release', fleet.release.id);
  await page.type('#create-form input[name=name]', '2.0.0 for EU');
  await page.type('#create-form input[name=tags_all]', 'eu');
  await page.type('#create-form input[name=waves]', '50, 100');
  await page.type('#create-form input[name=soak_s]', '3600'); // wave 2 opens when the operator says so
  check(await page.$eval('#create-submit', (b) => b.disabled), 'Create is offered before a preview');
  await page.click('#preview-submit');
  await page.waitForSelector('#preview:not([hidden])');
  const summary = await text(page, '#preview-summary');
  check(summary.startsWith(`${EU} devices match: ${EU} to update, 0 skipped`), `preview: ${summary}`);
  const perWave = () => page.$$eval('#preview-rows tr', (rows) => rows.map((r) => Number(r.cells[2].textContent)));
  let waves = await perWave();
  check(waves.length === 2 && waves[0] + waves[1] === EU && waves[0] > 0, `preview per wave: ${waves}`);
  await screenshots(page, 'rollout-preview');

  // Changed settings need a new preview.
  await page.type('#create-form input[name=max_per_minute]', '600');
  check(await page.$eval('#create-submit', (b) => b.disabled), 'Create is offered for settings not previewed');
  await page.click('#preview-submit');
  await page.waitForFunction(() => !document.querySelector('#create-submit').disabled);
  waves = await perWave();
  await page.click('#create-submit');
  await page.waitForSelector('#page-rollout:not([hidden]) #rollout-section[data-status=running]');
  const rolloutId = page.url().split('#rollout/')[1];
  const created = await call('GET', `/v1/rollouts/${rolloutId}`, admin);
  check(created.counts.targets === EU && created.waves[0].targets === waves[0] && created.waves[1].targets === waves[1],
    `created ${created.waves.map((w) => w.targets)}, previewed ${waves}`);

  // The devices heartbeat: wave 1's get their manifest once the engine admitted them, then report the new
  // version. The page follows.
  await updateAll(eu, waves[0]);
  await page.waitForFunction((n) => document.querySelector('#wave-rows').rows[0].cells[5].textContent.startsWith(`${n} of ${n} applied`),
    { timeout: 20000 }, waves[0]);
  check((await waveApplied(page, 2)).startsWith('0 of'), `wave 2 before its gate: ${await waveApplied(page, 2)}`);
  await screenshots(page, 'rollout');

  // Why the others are not updated: wave 2 waits for its gate.
  await page.select('#target-state', 'waiting');
  await page.waitForFunction((n) => document.querySelectorAll('#target-rows tr').length === n, {}, waves[1]);

  // Pause and resume from the page.
  await action(page, 'Pause');
  await page.waitForSelector('#rollout-section[data-status=paused]');
  check((await text(page, '#rollout-facts')).includes('paused (operator)'), 'the pause reason is not shown');
  const resume = await page.$$eval('#rollout-actions button', (b) => b.map((x) => x.textContent));
  check(resume.join() === 'Resume,Advance,Cancel', `actions on a paused rollout: ${resume}`);
  await action(page, 'Resume');
  await page.waitForSelector('#rollout-section[data-status=running]');

  // A lost event stream is opened again with the last event's id, and nothing is missed.
  const before = streams.length;
  link.cut();
  await page.waitForFunction(() => document.querySelector('#live').textContent !== 'live');
  await page.waitForFunction(() => document.querySelector('#live').textContent === 'live', { timeout: 20000 });
  check(streams.length > before && /^[0-9]+-[0-9]+$/.test(streams[streams.length - 1] ?? ''),
    `the stream was not opened again with Last-Event-ID: ${JSON.stringify(streams)}`);
  const cutNote = (p) => p.includes('ERR_INCOMPLETE_CHUNKED_ENCODING'); // the browser's note about the cut itself
  problems.splice(0, problems.length, ...problems.filter((p) => !cutNote(p)));

  // Advance: wave 2 opens before its soak is over; its devices update; the rollout completes.
  await action(page, 'Advance');
  await page.waitForFunction(() => document.querySelector('#wave-rows').rows[1].cells[3].textContent !== 'not open');
  await updateAll(eu, EU);
  await page.waitForSelector('#rollout-section[data-status=completed]', { timeout: 30000 });
  check((await waveApplied(page, 2)).startsWith(`${waves[1]} of ${waves[1]} applied`), `wave 2: ${await waveApplied(page, 2)}`);
  check(await page.$$eval('#rollout-actions button', (b) => b.length) === 0, 'actions offered on a completed rollout');
  check(await page.evaluate(() => window.sameDocument === true), 'the page was loaded again');
  await screenshots(page, 'rollout-completed');

  // The list shows it, completed.
  await open(page, '#rollouts', 'page-rollouts');
  await page.waitForFunction(() => document.querySelector('#rollout-rows').textContent.includes('2.0.0 for EU'));
  await screenshots(page, 'rollouts');
});
