// One device and its OTA tab: what it reports, Assign (a release of its model), the active assignment with its
// download progress, and the history of its assignments with every transition. The page follows the live feed
// (app.js shows the page again on each transition of this device) and, while a download runs, asks again for the
// device every few seconds for the progress, which the server writes in bulk and sends no event for.

import { api } from './api.js';
import { $, bar, button, el, facts, link, list, percent, row, when } from './dom.js';

const PROGRESS_POLL_MS = 3000;
const HISTORY = 10; // assignments shown with their transitions

let shown = null; // the device id on screen
let poll = null;

const yesNo = (b) => (b === null || b === undefined ? 'not reported' : b ? 'yes' : 'no');

function battery(b) {
  if (!b) return 'not reported';
  return [b.percent !== undefined && b.percent !== null ? `${b.percent}%` : null, b.state].filter(Boolean).join(', ');
}

function progressOf(a) {
  const p = a.progress;
  if (!p) return a.status === 'delivered' ? 'delivered; no progress reported yet' : a.status;
  if (!p.total) return `${p.state}`;
  return bar(p.bytes, p.total, `${p.state} ${percent(p.bytes, p.total)}% (${p.bytes}/${p.total})`);
}

function showActive(d, refresh) {
  const a = d.active_assignment;
  $('device-active').replaceChildren();
  if (!a) {
    $('device-active').append(el('p', '', 'No active assignment.'));
    return;
  }
  const cancel = button('Cancel this assignment', () => refresh(() => api(`/v1/assignments/${a.id}/cancel`, { method: 'POST' })), 'write');
  $('device-active').append(facts([
    ['Version', a.version], ['Status', el('span', `status ${a.status}`, a.status)], ['Created', when(a.created_at)],
    ['Delivered', when(a.delivered_at)], ['Deliveries', a.deliveries], ['Progress', progressOf(a)],
    ['Rollout', a.rollout_id ? link(`#rollout/${a.rollout_id}`, a.rollout_id) : 'none (assigned by hand)'],
  ]), cancel);
}

function showDetails(d) {
  $('device-title').textContent = `${d.serial}${d.name ? ` (${d.name})` : ''}`;
  $('device-facts').replaceChildren(facts([
    ['Model', d.model], ['Firmware version', d.firmware_version ?? 'never reported'],
    ['OTA status', d.ota_status], ['Connectivity', d.connectivity ?? 'not reported'], ['Battery', battery(d.battery)],
    ['Recording', yesNo(d.recording)], ['Bluetooth with the app', yesNo(d.ble_connected)],
    ['Last seen', when(d.last_seen_at)], ['Tags', (d.tags ?? []).join(', ') || 'none'], ['Id', d.id],
  ]));
  // Redrawn on every live update: what the operator is typing stays.
  if (document.activeElement !== $('device-tags')) $('device-tags').value = (d.tags ?? []).join(', ');
}

// The releases this device may be given: its model's, released ones only.
async function fillAssignPicker(d) {
  const releases = (await api(`/v1/releases?model=${encodeURIComponent(d.model)}&limit=100`)).items
    .filter((r) => r.status === 'released');
  const picker = $('assign-release');
  const chosen = picker.value;
  picker.replaceChildren(...releases.map((r) => new Option(r.version, r.id)));
  if (releases.some((r) => r.id === chosen)) picker.value = chosen;
  $('assign-form').querySelector('button[type=submit]').disabled = releases.length === 0;
  $('assign-none').hidden = releases.length > 0;
}

async function showHistory(id) {
  const page = await api(`/v1/devices/${id}/assignments?limit=${HISTORY}`);
  const detailed = await Promise.all(page.items.map((a) => api(`/v1/assignments/${a.id}`)));
  $('device-history').replaceChildren(...detailed.map((a) => {
    const steps = el('ol', 'transitions', ...a.events.map((e) =>
      el('li', '', `${when(e.at)}: ${e.from ?? 'created'} → ${e.to}${e.reason ? ` (${e.reason})` : ''}`)));
    const tr = row([a.version, el('span', `status ${a.status}`, a.status), when(a.created_at), steps]);
    tr.dataset.id = a.id;
    return tr;
  }));
  $('device-history-empty').hidden = page.items.length > 0;
}

// While a download runs: the device alone again (its facts and the active assignment with the progress), not
// its history and releases; once the assignment is no longer delivered, the whole page.
function pollProgress(id, refresh) {
  clearTimeout(poll);
  poll = setTimeout(async () => {
    if (shown !== id) return;
    const d = await api(`/v1/devices/${id}`).catch(() => null);
    if (shown !== id) return;
    if (d?.active_assignment?.status !== 'delivered') {
      refresh(async () => {}); // and an error, if it was one, is shown there
      return;
    }
    showDetails(d);
    showActive(d, refresh);
    pollProgress(id, refresh);
  }, PROGRESS_POLL_MS);
}

export async function showDevice(id, refresh) {
  if (shown !== id) {
    $('assign-result').textContent = '';
    $('assign-form').reset();
  }
  shown = id;
  const d = await api(`/v1/devices/${id}`);
  showDetails(d);
  showActive(d, refresh);
  $('device-section').dataset.status = d.active_assignment?.status ?? d.ota_status;
  await Promise.all([fillAssignPicker(d), showHistory(id)]);
  clearTimeout(poll);
  if (d.active_assignment?.status === 'delivered') pollProgress(id, refresh);
}

export const shownDevice = () => shown;

export function leaveDevice() {
  shown = null;
  clearTimeout(poll);
}

export function wireDevice(refresh) {
  $('assign-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const body = { release_id: $('assign-release').value };
    if ($('assign-downgrade').checked) body.allow_downgrade = true;
    refresh(async () => {
      const a = await api(`/v1/devices/${shown}/assignments`, { method: 'POST', body });
      $('assign-result').textContent = `Assigned ${a.version}: pending until the device's next heartbeat.`;
    });
  });
  $('tags-form').addEventListener('submit', (event) => {
    event.preventDefault();
    refresh(() => api(`/v1/devices/${shown}`, { method: 'PATCH', body: { tags: list($('device-tags').value) } }));
  });
}
