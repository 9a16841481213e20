// Signing in, the Fleet page and the Devices page: a wrong key gets a readable message; the admin key sees the
// fleet's numbers; the device list pages through more than one page of 50, searches, and shows a serial made
// of markup as text; every portal file comes with the portal's Content-Security-Policy; signing out forgets the key.
// Needs PORTAL_DEVICES: how many devices the server holds (more than 50; one has a serial made of markup).

import { allow, check, CSP, env, open, runBrowserTest, screenshots, signIn, text } from './lib.mjs';

runBrowserTest('sign-in', async (page, problems) => {
  const base = env('PORTAL_BASE');
  const devices = Number(env('PORTAL_DEVICES'));

  // The page and its files come with the portal's Content-Security-Policy.
  const files = [];
  page.on('response', (r) => { if (r.url().startsWith(base)) files.push(r); });
  const answer = await page.goto(`${base}/`, { waitUntil: 'networkidle0' });
  check(answer.status() === 200, `GET / answered ${answer.status()}`);
  const portalFiles = files.filter((f) => !new URL(f.url()).pathname.startsWith('/v1/'));
  check(portalFiles.length >= 8, `only ${portalFiles.length} portal files were loaded`);
  for (const r of portalFiles) check(r.headers()['content-security-policy'] === CSP, `${r.url()} has no portal CSP`);
  await screenshots(page, 'sign-in');

  // A wrong key: a readable message, still signed out.
  await signIn(page, 'ota_not_a_key_of_this_server');
  await page.waitForSelector('#error:not([hidden])');
  check(/not valid/.test(await text(page, '#error')), `wrong key message: ${await text(page, '#error')}`);
  check(await page.$eval('#sign-in', (e) => !e.hidden), 'the sign-in form went away after a wrong key');
  allow(problems, 401);

  // The admin key: the Fleet page with the fleet's numbers.
  await signIn(page, env('PORTAL_ADMIN_KEY'));
  await page.waitForSelector('#page-fleet:not([hidden])');
  await page.waitForFunction((n) => document.querySelector('#fleet-summary').textContent.startsWith(`${n} devices`),
    {}, devices);
  check(await page.$eval('#error', (e) => e.hidden), 'an error is shown after signing in');
  check(await text(page, '#role') === 'admin', `role shown: ${await text(page, '#role')}`);
  await page.waitForFunction(() => document.querySelector('#live').textContent === 'live');
  const statuses = await page.$$eval('#by-status tr', (rows) => rows.map((r) => r.cells[0].textContent));
  check(statuses.includes('none') && statuses.includes('rolled_back'), `statuses shown: ${statuses}`);
  check(await page.evaluate(() => sessionStorage.getItem('ota.api_key')) !== null, 'the key is not kept');
  await screenshots(page, 'fleet');

  // Devices: a page of 50, the next page, a search; a serial made of markup is shown as text.
  await open(page, '#devices', 'page-devices');
  await page.waitForFunction(() => document.querySelectorAll('#device-rows tr').length === 50);
  check(await page.$eval('#device-next', (e) => !e.hidden), 'no next page with more than 50 devices');
  await screenshots(page, 'devices');
  await page.click('#device-next');
  await page.waitForFunction((n) => document.querySelectorAll('#device-rows tr').length === n - 50, {}, devices);
  check(await page.$eval('#device-next', (e) => e.hidden), 'a next page after the last');
  await page.type('#device-filter input[name=serial_prefix]', '<img');
  await page.click('#device-filter button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#device-rows tr').length === 1);
  const serial = await text(page, '#device-rows td');
  check(serial === '<img src=x onerror=alert(1)>', `the markup serial shows as ${serial}`);
  check(await page.$$eval('#device-rows img', (imgs) => imgs.length) === 0, 'markup from the API made an element');
  // Tags on every device a search matches: BULK-1 and BULK-10 to BULK-19, one request.
  await page.$eval('#device-filter input[name=serial_prefix]', (input) => { input.value = 'BULK-1'; });
  await page.click('#device-filter button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#device-rows tr').length === 11);
  await page.type('#tag-form input[name=add]', 'lab');
  await page.click('#tag-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#tag-result').textContent.startsWith('11 devices'));
  await page.$eval('#device-filter input[name=serial_prefix]', (input) => { input.value = ''; });
  await page.type('#device-filter input[name=tag]', 'lab');
  await page.click('#device-filter button[type=submit]');
  await page.waitForFunction(() => [...document.querySelectorAll('#device-rows tr')]
    .filter((r) => r.cells[4].textContent === 'lab').length === 11 && document.querySelectorAll('#device-rows tr').length === 11);
  await page.$eval('#device-filter input[name=tag]', (input) => { input.value = ''; });
  await page.select('#device-filter select[name=ota_status]', 'applied');
  await page.click('#device-filter button[type=submit]');
  await page.waitForSelector('#device-empty:not([hidden])');

  // Every control can be reached with the keyboard and has a label.
  const unlabeled = await page.$$eval('input, select, textarea', (controls) =>
    controls.filter((c) => c.labels.length === 0 && !c.getAttribute('aria-label')).map((c) => c.outerHTML));
  check(unlabeled.length === 0, `controls without a label: ${unlabeled.join(' ')}`);
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement !== document.body), 'Tab reaches no control');

  // Signing out forgets the key.
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in:not([hidden])');
  check(await page.evaluate(() => sessionStorage.getItem('ota.api_key')) === null, 'sign-out kept the key');
});
