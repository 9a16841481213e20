// The portal in a real browser: Debian's chromium, headless, driven by puppeteer-core, against the real
// ota-server that test/integration/it_portal_browser.c started. Signs in as an operator does, checks what the
// page shows and that nothing goes wrong on the way (no console error, no page error, no dialog), and keeps a
// screenshot of each page at 1280 and 390 px wide.
//
// usage: node portal.test.mjs BASE_URL ADMIN_KEY SCREENSHOT_DIR DEVICES
// Exits 0 when every check holds; otherwise prints the first failure and exits 1.

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [base, adminKey, shots, devices] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', '.deps', 'package.json'));
const puppeteer = require('puppeteer-core');

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const WIDTHS = [{ name: 'wide', width: 1280, height: 800 }, { name: 'phone', width: 390, height: 844 }];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Everything that would mean a broken page, gathered while the page runs.
function watch(page, problems) {
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => { problems.push(`dialog: ${d.message()}`); await d.dismiss(); });
}

// Screenshots at both widths; at each, the page fits the window's width (a wide table scrolls by itself).
async function screenshots(page, name) {
  for (const w of WIDTHS) {
    await page.setViewport({ width: w.width, height: w.height });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= w.width, `${name} is ${width} px wide in a ${w.width} px window`);
    await page.screenshot({ path: join(shots, `${name}-${w.name}.png`), fullPage: true });
  }
  await page.setViewport({ width: 1280, height: 800 });
}

async function signIn(page, key) {
  await page.waitForSelector('#sign-in:not([hidden])');
  await page.type('#key', key);
  await page.click('#sign-in button[type=submit]');
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: '/usr/bin/chromium', headless: true, protocolTimeout: 30000,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run',
      '--no-default-browser-check'],
  });
  const problems = [];
  try {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10000);
    watch(page, problems);

    // The page and its files come with the portal's Content-Security-Policy.
    const files = [];
    page.on('response', (r) => { if (r.url().startsWith(base)) files.push(r); });
    const answer = await page.goto(`${base}/`, { waitUntil: 'networkidle0' });
    check(answer.status() === 200, `GET / answered ${answer.status()}`);
    for (const r of files.filter((f) => !new URL(f.url()).pathname.startsWith('/v1/'))) {
      check(r.headers()['content-security-policy'] === CSP, `${r.url()} has no portal CSP`);
    }
    await screenshots(page, 'sign-in');

    // A wrong key: a readable message, still signed out.
    await signIn(page, 'ota_not_a_key_of_this_server');
    await page.waitForSelector('#error:not([hidden])');
    const message = await page.$eval('#error', (e) => e.textContent);
    check(/not valid/.test(message), `wrong key message: ${message}`);
    check(await page.$eval('#sign-in', (e) => !e.hidden), 'the sign-in form went away after a wrong key');
    problems.splice(0, problems.length, ...problems.filter((p) => !/401/.test(p))); // the refused request itself

    // The admin key: the Fleet page with the fleet's numbers.
    await signIn(page, adminKey);
    await page.waitForSelector('#fleet:not([hidden])');
    await page.waitForFunction((n) => document.querySelector('#fleet-summary').textContent.startsWith(`${n} devices`),
      {}, devices);
    check(await page.$eval('#error', (e) => e.hidden), 'an error is shown after signing in');
    const statuses = await page.$$eval('#by-status tr', (rows) => rows.map((r) => r.cells[0].textContent));
    check(statuses.includes('none') && statuses.includes('rolled_back'), `statuses shown: ${statuses}`);
    check(await page.evaluate(() => sessionStorage.getItem('ota.api_key')) !== null, 'the key is not kept');
    await screenshots(page, 'fleet');

    // Devices: a page of 50, the next page, a search; a serial made of markup is shown as text.
    await page.click('a[href="#devices"]');
    await page.waitForSelector('#devices:not([hidden])');
    await page.waitForFunction(() => document.querySelectorAll('#device-rows tr').length === 50);
    check(await page.$eval('#device-next', (e) => !e.hidden), 'no next page with more than 50 devices');
    await screenshots(page, 'devices');
    await page.click('#device-next');
    await page.waitForFunction((n) => document.querySelectorAll('#device-rows tr').length === n - 50, {}, devices);
    check(await page.$eval('#device-next', (e) => e.hidden), 'a next page after the last');
    await page.type('#device-filter input[name=serial_prefix]', '<img');
    await page.click('#device-filter button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#device-rows tr').length === 1);
    const serial = await page.$eval('#device-rows td', (td) => td.textContent);
    check(serial === '<img src=x onerror=alert(1)>', `the markup serial shows as ${serial}`);
    check(await page.$$eval('#device-rows img', (imgs) => imgs.length) === 0, 'markup from the API made an element');
    await page.select('#device-filter select[name=ota_status]', 'applied');
    await page.click('#device-filter button[type=submit]');
    await page.waitForSelector('#device-empty:not([hidden])');

    // Signing out forgets the key.
    await page.click('#sign-out');
    await page.waitForSelector('#sign-in:not([hidden])');
    check(await page.evaluate(() => sessionStorage.getItem('ota.api_key')) === null, 'sign-out kept the key');
    check(problems.length === 0, `problems on the page:\n${problems.join('\n')}`);
  } finally {
    await browser.close();
  }
}

main().then(() => console.log('portal: ok'), (error) => {
  console.error(`portal: ${error.message}`);
  process.exit(1);
});
