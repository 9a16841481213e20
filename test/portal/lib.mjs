// What every portal test in a real browser shares: Debian's chromium, headless, driven by puppeteer-core; the
// checks that mean a broken page (a console error, a page error, a dialog); screenshots at the two widths the
// portal is made for; signing in as an operator does.
//
// Each test is a script run by test/integration/it_portal_browser.c against the real ota-server it started. They
// take what they need from the environment: PORTAL_BASE (the server's URL), PORTAL_ADMIN_KEY, PORTAL_VIEWER_KEY,
// PORTAL_SHOTS (the screenshot folder), PORTAL_DEVICE_BIN (ota-device), PORTAL_WORK (a scratch folder).

import { createRequire } from 'node:module';
import { createServer, connect } from 'node:net';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', '.deps', 'package.json'));
const puppeteer = require('puppeteer-core');

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const WIDTHS = [{ name: 'wide', width: 1280, height: 800 }, { name: 'phone', width: 390, height: 844 }];

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Everything that would mean a broken page, gathered while the page runs. A test that provokes an error answer
// on purpose removes the browser's note about it (allow()).
function watch(page, problems) {
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => { problems.push(`dialog: ${d.message()}`); await d.dismiss(); });
}

// Screenshots at both widths; at each, the page fits the window's width (a wide table scrolls by itself).
export async function screenshots(page, name) {
  for (const w of WIDTHS) {
    await page.setViewport({ width: w.width, height: w.height });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= w.width, `${name} is ${width} px wide in a ${w.width} px window`);
    await page.screenshot({ path: join(env('PORTAL_SHOTS'), `${name}-${w.name}.png`), fullPage: true });
  }
  await page.setViewport({ width: 1280, height: 800 });
}

export async function signIn(page, key) {
  await page.waitForSelector('#sign-in:not([hidden])');
  await page.type('#key', key);
  await page.click('#sign-in button[type=submit]');
}

export async function open(page, hash, section) {
  await page.click(`nav a[href="${hash}"]`);
  await page.waitForSelector(`#${section}:not([hidden])`);
}

export const text = (page, selector) => page.$eval(selector, (e) => e.textContent);

// Runs `body(page, problems)` in a fresh browser and exits 0 when it and the page's checks hold.
export function runBrowserTest(name, body) {
  (async () => {
    mkdirSync(env('PORTAL_SHOTS'), { recursive: true });
    const browser = await puppeteer.launch({
      executablePath: '/usr/bin/chromium', headless: true, protocolTimeout: 60000,
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
    });
    const problems = [];
    try {
      const page = await (await browser.createBrowserContext()).newPage();
      page.setDefaultTimeout(15000);
      watch(page, problems);
      await body(page, problems);
      check(problems.length === 0, `problems on the page:\n${problems.join('\n')}`);
    } finally {
      await browser.close();
    }
  })().then(() => {
    console.log(`${name}: ok`);
    process.exit(0); // whatever is left open (a relay's sockets, a child process) must not keep the test waiting
  }, (error) => {
    console.error(`${name}: ${error.stack ?? error.message}`);
    process.exit(1);
  });
}

// Forgets the browser's notes about answers with `status` that the test asked for on purpose.
export function allow(problems, status) {
  const kept = problems.filter((p) => !p.includes(`status of ${status}`));
  problems.splice(0, problems.length, ...kept);
}

// A TCP relay in front of the server whose connections the test can cut at will, as a lost network would:
// { url, cut() }. The browser is pointed at `url`, so the portal knows nothing of it.
export async function lossyLink(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut: () => { for (const s of sockets) s.destroy(); },
  };
}
