// Keys and audit (admin only): the API keys (a new key is shown this once; revoking takes a second click, and
// every server instance refuses the key within seconds), and the audit log of every write made with a key,
// newest first, searchable by action and target, in keyset pages of 50.

import { api } from './api.js';
import { $, button, confirmed, formQuery, row, when } from './dom.js';

let auditQuery = new URLSearchParams();
let auditNext = null;

function keyActions(k, refresh) {
  if (k.revoked_at) return '';
  return button('Revoke', () => refresh(async () => {
    if (confirmed('keys-confirm', `Revoke the key ${k.name}? Whoever uses it is refused from now on.`)) {
      await api(`/v1/api-keys/${k.id}`, { method: 'DELETE' });
    }
  }));
}

export async function showKeys(refresh) {
  const keys = (await api('/v1/api-keys')).items;
  $('key-rows').replaceChildren(...keys.map((k) => {
    const tr = row([k.name, k.role, when(k.created_at), when(k.last_used_at), k.revoked_at ? when(k.revoked_at) : '',
      keyActions(k, refresh)]);
    tr.dataset.id = k.id;
    return tr;
  }));
}

// An audit entry's details in one line: "version: 1.2.0, model: bota-pin".
function detailText(details) {
  if (!details || typeof details !== 'object') return '';
  return Object.entries(details).map(([name, value]) =>
    `${name}: ${typeof value === 'object' ? JSON.stringify(value) : value}`).join(', ');
}

export async function showAudit(after) {
  const query = new URLSearchParams(auditQuery);
  query.set('limit', '50');
  if (after) query.set('after', after);
  const page = await api(`/v1/audit?${query}`);
  $('audit-rows').replaceChildren(...page.items.map((a) => row([
    when(a.at), a.actor?.name ?? a.actor?.api_key_id ?? '', a.action,
    a.target ? `${a.target.type} ${a.target.id ?? ''}` : '', detailText(a.details)])));
  $('audit-empty').hidden = page.items.length > 0;
  auditNext = page.next;
  $('audit-next').hidden = auditNext === null;
}

async function createKey(form) {
  const fields = new FormData(form);
  const created = await api('/v1/api-keys', { method: 'POST', body: { name: fields.get('name').trim(), role: fields.get('role') } });
  form.reset();
  $('key-name').textContent = `${created.name} (${created.role})`;
  $('key-secret').textContent = created.key;
  $('key-result').hidden = false;
}

export function wireKeys(run, refresh) {
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    refresh(() => createKey(event.target));
  });
  $('audit-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    auditQuery = formQuery(event.target);
    run(() => showAudit(null));
  });
  $('audit-next').addEventListener('click', () => run(() => showAudit(auditNext)));
}
