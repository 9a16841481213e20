// Devices: search and filters over keyset pages of 50 (the page never asks for more, whatever the fleet's size),
// registering a device (its token shown this once), and adding or removing tags on every device the filter
// matches, in one request.

import { api } from './api.js';
import { $, formQuery, link, list, row, when } from './dom.js';

let deviceQuery = new URLSearchParams();
let deviceNext = null;

export async function showDevices(after) {
  const query = new URLSearchParams(deviceQuery);
  query.set('limit', '50');
  if (after) query.set('after', after);
  const page = await api(`/v1/devices?${query}`);
  $('device-rows').replaceChildren(...page.items.map((d) => row([
    link(`#device/${d.id}`, d.serial), d.name ?? '', d.model, d.firmware_version ?? 'never reported',
    (d.tags ?? []).join(', '), d.ota_status, when(d.last_seen_at)])));
  $('device-empty').hidden = page.items.length > 0;
  deviceNext = page.next;
  $('device-next').hidden = deviceNext === null;
}

// The search form as the fleet filter of POST /v1/devices/tags (the same devices the list shows).
function filterOfSearch() {
  const filter = {};
  for (const [name, value] of deviceQuery) {
    if (name === 'tag') (filter.tags_all ??= []).push(value);
    else if (name !== 'ota_status') filter[name] = value;
  }
  return filter;
}

async function register(form) {
  const fields = new FormData(form);
  const body = { serial: fields.get('serial').trim(), model: fields.get('model') };
  if (fields.get('name').trim()) body.name = fields.get('name').trim();
  const tags = list(fields.get('tags'));
  if (tags.length) body.tags = tags;
  const device = await api('/v1/devices', { method: 'POST', body });
  form.reset();
  $('register-id').replaceChildren(link(`#device/${device.id}`, device.id));
  $('register-token').textContent = device.token;
  $('register-result').hidden = false;
  await showDevices(null);
}

async function tagByFilter(form) {
  const fields = new FormData(form);
  const body = { filter: filterOfSearch() };
  const add = list(fields.get('add'));
  const remove = list(fields.get('remove'));
  if (add.length) body.add = add;
  if (remove.length) body.remove = remove;
  const answer = await api('/v1/devices/tags', { method: 'POST', body });
  $('tag-result').textContent = `${answer.matched} devices matched the search and were changed.`;
  form.reset();
  await showDevices(null);
}

export function wireDevices(run) {
  $('device-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    deviceQuery = formQuery(event.target);
    $('tag-scope').textContent = deviceQuery.has('ota_status')
      ? 'The OTA status is not part of a tag change: every device matching the other fields is changed.'
      : '';
    run(() => showDevices(null));
  });
  $('device-next').addEventListener('click', () => run(() => showDevices(deviceNext)));
  $('register-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run(() => register(event.target));
  });
  $('tag-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run(() => tagByFilter(event.target));
  });
}
