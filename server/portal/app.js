// The operators' portal: a client of the public API like any other. It signs in with an API key, kept in this
// tab's session storage, and inserts every text from the API as text (textContent), never as markup.

const KEY = 'ota.api_key';
const $ = (id) => document.getElementById(id);

// The API with the signed-in key: the parsed answer, or an Error carrying the contract's error message.
async function api(path) {
  const answer = await fetch(path, { headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    const message = body?.error?.message ?? `the server answered ${answer.status}`;
    const error = new Error(message);
    error.status = answer.status;
    throw error;
  }
  return body;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = message === '';
}

// A table row of texts; `numbers` says which cells are right-aligned numbers.
function row(cells, numbers = []) {
  const tr = document.createElement('tr');
  cells.forEach((text, i) => {
    const td = document.createElement('td');
    td.textContent = String(text);
    if (numbers.includes(i)) td.className = 'number';
    tr.append(td);
  });
  return tr;
}

async function showFleet() {
  const fleet = await api('/v1/fleet');
  $('fleet-summary').textContent =
    `${fleet.devices} devices, ${fleet.seen_last_24h} seen in the last 24 hours (as of ${fleet.as_of}).`;
  $('by-version').replaceChildren(
    ...fleet.by_version.map((v) => row([v.model, v.version ?? 'never reported', v.devices], [2])));
  $('by-status').replaceChildren(
    ...Object.entries(fleet.by_ota_status).map(([status, n]) => row([status, n], [1])));
  $('fleet').hidden = false;
}

// Devices: one page of rows at a time (the API's keyset pages), whatever the fleet's size.
let deviceQuery = '';
let deviceNext = null;

async function showDevices(after) {
  const query = new URLSearchParams(deviceQuery);
  query.set('limit', '50');
  if (after) query.set('after', after);
  const page = await api(`/v1/devices?${query}`);
  $('device-rows').replaceChildren(...page.items.map((d) => row([
    d.serial, d.model, d.firmware_version ?? 'never reported', (d.tags ?? []).join(', '), d.ota_status,
    d.last_seen_at ?? 'never'])));
  $('device-empty').hidden = page.items.length > 0;
  deviceNext = page.next;
  $('device-next').hidden = deviceNext === null;
}

// The filter form as query parameters: the empty fields are left out.
function filterQuery(form) {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (value.trim() !== '') query.append(name, value.trim());
  }
  return query.toString();
}

// Shows the page the address names (#fleet, #devices), the Fleet page by default.
async function route() {
  const devices = location.hash === '#devices';
  $('fleet').hidden = devices;
  $('devices').hidden = !devices;
  if (devices) await showDevices(null);
  else await showFleet();
}

async function run(step) {
  try {
    await step();
    showError('');
  } catch (error) {
    if (error.status === 401) {
      signedOut();
      showError('That API key is not valid here. Check it and sign in again.');
      return;
    }
    showError(error.message);
  }
}

function signedOut() {
  sessionStorage.removeItem(KEY);
  $('nav').hidden = true;
  $('fleet').hidden = true;
  $('devices').hidden = true;
  $('sign-in').hidden = false;
  $('key').focus();
}

async function signedIn() {
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  await run(route);
}

$('sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $('key').value.trim());
  $('key').value = '';
  signedIn();
});
$('device-filter').addEventListener('submit', (event) => {
  event.preventDefault();
  deviceQuery = filterQuery(event.target);
  run(() => showDevices(null));
});
$('device-next').addEventListener('click', () => run(() => showDevices(deviceNext)));
window.addEventListener('hashchange', () => {
  if (sessionStorage.getItem(KEY)) run(route);
});
$('sign-out').addEventListener('click', () => {
  showError('');
  signedOut();
});

if (sessionStorage.getItem(KEY)) signedIn();
else signedOut();
