// Rollouts: the list, and creating one. "Preview" asks the server for a dry run, which shows the exact number of
// devices per wave (and a sample of them); "Create rollout" is offered only for the settings just previewed, and
// names the dry run's id, so the rollout gets the very waves the preview showed.

import { api } from './api.js';
import { $, appliedBar, link, list, row, when } from './dom.js';

let rolloutNext = null;
let previewed = null; // the JSON text of the settings the preview on screen is for
let previewId = null; // the id the preview's waves were drawn with

export async function showRollouts(after) {
  const query = new URLSearchParams({ limit: '50' });
  if ($('rollout-status').value) query.set('status', $('rollout-status').value);
  if (after) query.set('after', after);
  const page = await api(`/v1/rollouts?${query}`);
  $('rollout-rows').replaceChildren(...page.items.map((r) => row([
    link(`#rollout/${r.id}`, r.name ?? r.id), `${r.model} ${r.version}`, r.status, `${r.current_wave} of ${r.waves.length}`,
    appliedBar(r.counts, r.counts.targets), when(r.created_at)])));
  $('rollout-empty').hidden = page.items.length > 0;
  rolloutNext = page.next;
  $('rollout-next').hidden = rolloutNext === null;
}

export async function fillReleasePicker() {
  const releases = (await api('/v1/releases?limit=100')).items.filter((r) => r.status === 'released');
  const picker = $('create-release');
  const chosen = picker.value;
  picker.replaceChildren(new Option('choose a release', ''), ...releases.map((r) => new Option(`${r.model} ${r.version}`, r.id)));
  if (releases.some((r) => r.id === chosen)) picker.value = chosen;
}

const number = (text) => (text.trim() === '' ? undefined : Number(text));

// The form as the body of POST /v1/rollouts (the server's defaults for every field left empty).
function settings(form) {
  const f = new FormData(form);
  const body = { release_id: f.get('release_id') };
  if (f.get('name').trim()) body.name = f.get('name').trim();
  const filter = {};
  if (list(f.get('tags_all')).length) filter.tags_all = list(f.get('tags_all'));
  if (list(f.get('tags_any')).length) filter.tags_any = list(f.get('tags_any'));
  if (f.get('version').trim()) filter.version = f.get('version').trim();
  if (f.get('serial_prefix').trim()) filter.serial_prefix = f.get('serial_prefix').trim();
  body.filter = filter;
  if (list(f.get('waves')).length) body.waves = list(f.get('waves')).map(Number);
  const perMinute = number(f.get('max_per_minute'));
  if (perMinute !== undefined) body.max_per_minute = perMinute;
  body.success = { min_percent: number(f.get('success_percent')), soak_s: number(f.get('soak_s')) };
  body.failure = { max_percent: number(f.get('failure_percent')), min_failures: number(f.get('min_failures')) };
  body.retries = { max: number(f.get('retries')), backoff_s: number(f.get('backoff_s')) };
  for (const group of ['success', 'failure', 'retries']) {
    for (const [k, v] of Object.entries(body[group])) if (v === undefined) delete body[group][k];
    if (Object.keys(body[group]).length === 0) delete body[group];
  }
  body.start = f.get('start') === 'on';
  return body;
}

function showPreview(p) {
  $('preview-summary').textContent =
    `${p.targets} devices match: ${p.targets - p.skipped} to update, ${p.skipped} skipped (they already run this version or a newer one).`;
  $('preview-rows').replaceChildren(...p.waves.map((w) => row([
    w.wave, `${w.percent}%`, w.targets - w.skipped, w.skipped, w.sample.length ? `${w.sample.join(', ')}` : 'none'],
  [0, 2, 3])));
  $('preview').hidden = false;
}

async function preview(form) {
  const body = settings(form);
  const answer = await api('/v1/rollouts', { method: 'POST', body: { ...body, dry_run: true } });
  previewed = JSON.stringify(body);
  previewId = answer.id;
  showPreview(answer);
  $('create-submit').disabled = false;
}

async function create(form) {
  const body = settings(form);
  if (JSON.stringify(body) !== previewed) {
    $('create-submit').disabled = true;
    throw new Error('The settings changed since the preview: preview again before creating the rollout.');
  }
  const rollout = await api('/v1/rollouts', { method: 'POST', body: { ...body, id: previewId } });
  form.reset();
  $('preview').hidden = true;
  $('create-submit').disabled = true;
  previewed = null;
  location.hash = `#rollout/${rollout.id}`;
}

export function wireRollouts(run) {
  const form = $('create-form');
  form.addEventListener('input', () => {
    $('create-submit').disabled = previewed === null || JSON.stringify(settings(form)) !== previewed;
  });
  $('preview-submit').addEventListener('click', () => {
    if (form.reportValidity()) run(() => preview(form));
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    run(() => create(form));
  });
  $('rollout-status').addEventListener('change', () => run(() => showRollouts(null)));
  $('rollout-next').addEventListener('click', () => run(() => showRollouts(rolloutNext)));
}
