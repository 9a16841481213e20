// The operators' portal: a client of the public API like any other. It signs in with an API key, kept in this
// tab's session storage; a viewer key gets a read-only portal (no write control shown; the API refuses anyway).
// Pages are named by the address's hash (#fleet, #firmware, #devices, #device/ID, #rollouts, #rollout/ID, #keys), and
// the page on screen follows the live feed of /v1/events without a reload.

import { forgetKey, keepKey, roleOfKey, signedInKey } from './api.js';
import { $, showError } from './dom.js';
import { showDevice, leaveDevice, shownDevice, wireDevice } from './device.js';
import { showDevices, wireDevices } from './devices.js';
import { fillModelPickers, nextReleases, onUploadDone, showReleases, wireFirmware } from './firmware.js';
import { showFleet } from './fleet.js';
import { showAudit, showKeys, wireKeys } from './keys.js';
import { startLive, stopLive } from './live.js';
import { leaveRollout, showRollout, shownRollout, wireRollout } from './rollout.js';
import { fillReleasePicker, showRollouts, wireRollouts } from './rollouts.js';

const PAGES = ['fleet', 'firmware', 'devices', 'device', 'rollouts', 'rollout', 'keys'];
// Events arriving together refresh the page once: a device or a rollout at most every half second, the lists
// (whose numbers the server recounts every few seconds anyway) at most every 5 s.
const LIVE_REFRESH_MS = { device: 500, rollout: 500, fleet: 5000, rollouts: 5000 };

// The page the address names, with its argument: "#device/ID" is ['device', 'ID'].
function currentPage() {
  const [name, arg] = location.hash.replace(/^#/, '').split('/');
  return PAGES.includes(name) ? [name, arg ?? null] : ['fleet', null];
}

async function run(step) {
  try {
    await step();
    showError('');
  } catch (error) {
    if (error.status === 401) {
      signedOut();
      showError('That API key is not valid here (or no longer). Check it and sign in again.');
      return;
    }
    showError(error.message);
  }
}

// Does `step` (a write), then shows the page again with what the server holds now.
const refresh = (step) => run(async () => {
  try {
    await step();
  } finally {
    await show();
  }
});

async function show() {
  const [name, arg] = currentPage();
  for (const page of PAGES) $(`page-${page}`).hidden = page !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name !== 'device') leaveDevice();
  if (name !== 'rollout') leaveRollout();
  if (name === 'fleet') await showFleet();
  else if (name === 'firmware') await showReleases(null, refresh);
  else if (name === 'devices') await Promise.all([fillModelPickers(), showDevices(null)]);
  else if (name === 'device') await showDevice(arg, refresh);
  else if (name === 'rollouts') await Promise.all([fillReleasePicker(), showRollouts(null)]);
  else if (name === 'rollout') await showRollout(arg, refresh);
  else await Promise.all([showKeys(refresh), showAudit(null)]);
}

// A live event refreshes the page it concerns.
let liveTimer = null;
function onLiveEvent(kind, data) {
  const [name] = currentPage();
  const concerned = (name === 'device' && kind === 'transition' && data.device_id === shownDevice()) ||
    (name === 'rollout' && (kind === 'transition' || data.rollout_id === shownRollout())) ||
    name === 'fleet' || name === 'rollouts';
  if (!concerned || liveTimer !== null) return;
  liveTimer = setTimeout(() => {
    liveTimer = null;
    run(show);
  }, LIVE_REFRESH_MS[name] ?? 500);
}

function onLiveState(state) {
  $('live').textContent = state === 'live' ? 'live' : 'reconnecting…';
  $('live').dataset.state = state;
}

function signedOut() {
  stopLive();
  forgetKey();
  document.body.classList.remove('viewer');
  $('nav').hidden = true;
  for (const page of PAGES) $(`page-${page}`).hidden = true;
  $('sign-in').hidden = false;
  $('key').focus();
}

async function signedIn() {
  const role = await roleOfKey();
  document.body.classList.toggle('viewer', role !== 'admin');
  $('role').textContent = role;
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  startLive(onLiveEvent, onLiveState);
  await show();
}

$('sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  keepKey($('key').value.trim());
  $('key').value = '';
  run(signedIn);
});
$('sign-out').addEventListener('click', () => {
  showError('');
  signedOut();
});
window.addEventListener('hashchange', () => {
  if (signedInKey()) run(show);
});
$('release-model').addEventListener('change', () => run(() => showReleases(null, refresh)));
$('release-next').addEventListener('click', () => run(() => showReleases(nextReleases(), refresh)));
onUploadDone(() => showReleases(null, refresh));
wireFirmware(run);
wireDevices(run);
wireDevice(refresh);
wireRollouts(run);
wireRollout(run);
wireKeys(run, refresh);

if (signedInKey()) run(signedIn);
else signedOut();
