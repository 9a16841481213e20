// Fleet: the fleet's numbers (GET /v1/fleet, at most 10 s old) and the running rollouts with their progress.

import { api } from './api.js';
import { $, appliedBar, link, row, when } from './dom.js';

export async function showFleet() {
  const [fleet, rollouts] = await Promise.all([api('/v1/fleet'), api('/v1/rollouts?status=running&limit=20')]);
  $('fleet-summary').textContent =
    `${fleet.devices} devices, ${fleet.seen_last_24h} seen in the last 24 hours (counted ${when(fleet.as_of)}).`;
  $('by-version').replaceChildren(
    ...fleet.by_version.map((v) => row([v.model, v.version ?? 'never reported', v.devices], [2])));
  $('by-status').replaceChildren(
    ...Object.entries(fleet.by_ota_status).map(([status, n]) => row([status, n], [1])));
  $('fleet-rollouts').replaceChildren(...rollouts.items.map((r) => row([
    link(`#rollout/${r.id}`, r.name ?? r.id), `${r.model} ${r.version}`, `wave ${r.current_wave} of ${r.waves.length}`,
    appliedBar(r.counts, r.counts.targets)])));
  $('fleet-rollouts').closest('.scroll').hidden = rollouts.items.length === 0;
  $('fleet-rollouts-empty').hidden = rollouts.items.length > 0;
}
