// Firmware: the models, the releases of one model (newest first, a page at a time), Upload Firmware, withdraw and
// delete. An upload shows a real progress bar: a small file goes to POST /v1/releases as multipart form data; a
// file over PRESIGNED_FROM goes straight to storage through a presigned PUT (POST /v1/uploads), and the release
// then names its upload_id, so a big image never has to fit in one request to this server.

import { api, send } from './api.js';
import { $, bar, button, confirmed, el, row, when } from './dom.js';

const PRESIGNED_FROM = 8 * 1024 * 1024;

let releaseNext = null;
let afterUpload = () => {};

const size = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

// The models as <option>s of every model picker on the pages (the first option stays: "any" or "choose").
export async function fillModelPickers() {
  const models = (await api('/v1/models')).items;
  for (const picker of document.querySelectorAll('select.models')) {
    const chosen = picker.value;
    const first = picker.options[0];
    picker.replaceChildren(first, ...models.map((m) => new Option(`${m.name} (${m.id})`, m.id)));
    if (models.some((m) => m.id === chosen)) picker.value = chosen;
  }
  return models;
}

function releaseActions(r, refresh) {
  const actions = el('span', 'actions write');
  if (r.status === 'released') {
    actions.append(button('Withdraw', () => refresh(async () => {
      if (confirmed('firmware-confirm', `Withdraw ${r.model} ${r.version}? Its pending assignments are canceled.`)) {
        await api(`/v1/releases/${r.id}`, { method: 'PATCH', body: { status: 'withdrawn' } });
      }
    })));
  }
  actions.append(button('Delete', () => refresh(async () => {
    if (confirmed('firmware-confirm', `Delete ${r.model} ${r.version} and its files?`)) await api(`/v1/releases/${r.id}`, { method: 'DELETE' });
  })));
  return actions;
}

function artifactText(a) {
  return a ? `${size(a.size)}, SHA-256 ${a.sha256.slice(0, 12)}…` : 'none';
}

export async function showReleases(after, refresh) {
  await fillModelPickers();
  const query = new URLSearchParams({ limit: '50' });
  if ($('release-model').value) query.set('model', $('release-model').value);
  if (after) query.set('after', after);
  const page = await api(`/v1/releases?${query}`);
  $('release-rows').replaceChildren(...page.items.map((r) => {
    const tr = row([r.model, r.version, r.status, artifactText(r.artifacts.bin), artifactText(r.artifacts.ufw),
      r.notes ?? '', when(r.created_at), releaseActions(r, refresh)]);
    tr.dataset.id = r.id;
    return tr;
  }));
  $('release-empty').hidden = page.items.length > 0;
  releaseNext = page.next;
  $('release-next').hidden = releaseNext === null;
}

export const nextReleases = () => releaseNext;

// One artifact through a presigned PUT: the upload_id that POST /v1/releases names.
async function presignedUpload(artifact, file, onProgress) {
  const upload = await api('/v1/uploads', { method: 'POST', body: { artifact, size: file.size } });
  await send(upload.method, upload.url, file, { withKey: false, onProgress });
  return upload.upload_id;
}

function showProgress(sent, total) {
  $('upload-progress').replaceChildren(bar(sent, total, `${size(sent)} of ${size(total)} sent`));
}

// Uploads the form's files, reporting one progress over all of them, and answers the created release.
async function uploadRelease(form) {
  const fields = new FormData(form);
  const bin = fields.get('bin');
  const ufw = fields.get('ufw');
  const files = [bin, ufw].filter((f) => f instanceof File && f.size > 0);
  const total = files.reduce((sum, f) => sum + f.size, 0);
  showProgress(0, total);
  if (total <= PRESIGNED_FROM) {
    if (!(ufw instanceof File) || ufw.size === 0) fields.delete('ufw');
    return send('POST', '/v1/releases', fields, { onProgress: (sent) => showProgress(Math.min(sent, total), total) });
  }
  const body = { version: fields.get('version'), model: fields.get('model') };
  if (fields.get('notes')) body.notes = fields.get('notes');
  let done = 0;
  for (const [name, file] of [['bin', bin], ['ufw', ufw]]) {
    if (!(file instanceof File) || file.size === 0) continue;
    body[name] = { upload_id: await presignedUpload(name, file, (sent) => showProgress(done + sent, total)) };
    done += file.size;
  }
  return api('/v1/releases', { method: 'POST', body });
}

export function onUploadDone(callback) {
  afterUpload = callback;
}

export function wireFirmware(run) {
  $('upload-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    $('upload-result').hidden = true;
    run(async () => {
      try {
        const release = await uploadRelease(form);
        $('upload-result').replaceChildren(`Uploaded ${release.model} ${release.version}: .bin `,
          el('code', '', release.artifacts.bin.sha256), ` (CRC32 ${release.artifacts.bin.crc32}).`);
        $('upload-result').hidden = false;
        form.reset();
        await afterUpload(release);
      } finally {
        submit.disabled = false;
      }
    });
  });
  $('model-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    run(async () => {
      const fields = new FormData(form);
      const body = { id: fields.get('id').trim(), name: fields.get('name').trim() };
      const model = await api('/v1/models', { method: 'POST', body });
      form.reset();
      await fillModelPickers();
      $('upload-form').model.value = model.id;
      $('model-result').textContent = `Model ${model.name} (${model.id}) created.`;
    });
  });
}
