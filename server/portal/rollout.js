// One rollout: its status and settings, progress per wave, pause / resume / advance / cancel (each offered only
// where its status allows it), and its devices with their state, which says why any of them is not updated yet.
// app.js calls refreshRollout on the live feed's events.

import { api } from './api.js';
import { $, appliedBar, button, facts, link, row, when } from './dom.js';

const ACTIONS = {
  pause: ['running'],
  resume: ['paused'],
  advance: ['running', 'paused'],
  cancel: ['running', 'paused'],
};

let shown = null;
let targetNext = null;

function showSummary(r, refresh) {
  $('rollout-title').textContent = r.name ?? r.id;
  const c = r.counts;
  $('rollout-facts').replaceChildren(facts([
    ['Release', `${r.model} ${r.version}`],
    ['Status', r.status + (r.paused_reason ? ` (${r.paused_reason})` : '')],
    ['Wave', `${r.current_wave} of ${r.waves.length}`],
    ['Targets', `${c.targets} (${c.skipped} skipped)`],
    ['Now', `${c.waiting} waiting, ${c.blocked} blocked, ${c.pending} pending, ${c.delivered} delivered`],
    ['Outcomes', `${c.applied} applied, ${c.failed} failed, ${c.rolled_back} rolled back, ${c.canceled} canceled, ${c.retries} retries`],
    ['Filter', JSON.stringify(r.config.filter)],
    ['Pacing', r.config.max_per_minute ? `${r.config.max_per_minute} first deliveries a minute` : 'none'],
    ['Created', when(r.created_at)], ['Finished', r.finished_at ? when(r.finished_at) : 'not yet'],
  ]));
  $('rollout-section').dataset.status = r.status;
  $('rollout-actions').replaceChildren(...Object.entries(ACTIONS)
    .filter(([, statuses]) => statuses.includes(r.status))
    .map(([action]) => button(action[0].toUpperCase() + action.slice(1),
      () => refresh(() => api(`/v1/rollouts/${r.id}/${action}`, { method: 'POST' })), 'write')));
  $('wave-rows').replaceChildren(...r.waves.map((w) => row([
    w.wave, `${w.percent}%`, w.targets, w.opened_at ? when(w.opened_at) : 'not open',
    w.gate_passed_at ? when(w.gate_passed_at) : '—', appliedBar(w.counts, w.targets),
    `${w.counts.failed} failed, ${w.counts.rolled_back} rolled back`], [0, 2])));
}

async function showTargets(after) {
  const query = new URLSearchParams({ limit: '50' });
  if ($('target-state').value) query.set('state', $('target-state').value);
  if (after) query.set('after', after);
  const page = await api(`/v1/rollouts/${shown}/devices?${query}`);
  $('target-rows').replaceChildren(...page.items.map((t) => row([
    link(`#device/${t.device_id}`, t.serial), t.wave, t.state, t.attempts, t.reason ?? ''], [1, 3])));
  $('target-empty').hidden = page.items.length > 0;
  targetNext = page.next;
  $('target-next').hidden = targetNext === null;
}

export async function showRollout(id, refresh) {
  if (shown !== id) $('target-state').value = '';
  shown = id;
  const r = await api(`/v1/rollouts/${id}`);
  showSummary(r, refresh);
  await showTargets(null);
}

export const shownRollout = () => shown;
export const leaveRollout = () => { shown = null; };

export function wireRollout(run) {
  $('target-state').addEventListener('change', () => run(() => showTargets(null)));
  $('target-next').addEventListener('click', () => run(() => showTargets(targetNext)));
}
