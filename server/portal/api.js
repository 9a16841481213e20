// The portal's client of the public API: every request carries the signed-in API key, and every failure becomes
// an ApiError whose message is the contract's `message` (with the fields a 422 names), ready to show.

const KEY = 'ota.api_key';

export const signedInKey = () => sessionStorage.getItem(KEY);
export const keepKey = (key) => sessionStorage.setItem(KEY, key);
export const forgetKey = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error;
    let message = error?.message ?? `The server answered ${status}.`;
    const fields = error?.details?.fields;
    if (fields && typeof fields === 'object') {
      message += ` (${Object.entries(fields).map(([name, why]) => `${name}: ${why}`).join('; ')})`;
    }
    super(message);
    this.status = status;
    this.code = error?.code ?? null;
    this.details = error?.details ?? null;
  }
}

const authorization = () => ({ Authorization: `Bearer ${signedInKey()}` });

// `body`, when given, is sent as JSON. Resolves to the parsed answer (null for 204).
export async function api(path, { method = 'GET', body } = {}) {
  const headers = authorization();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let answer;
  try {
    answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { error: { message: 'The server cannot be reached. Check the connection and try again.' } });
  }
  const parsed = answer.status === 204 ? null : await answer.json().catch(() => null);
  if (!answer.ok) throw new ApiError(answer.status, parsed);
  return parsed;
}

// Sends `body` with XMLHttpRequest, the one browser API that reports upload progress: onProgress(sent, total).
// `withKey` is false for a presigned URL, which carries its own signature and must not see the API key.
export function send(method, url, body, { withKey = true, onProgress = () => {} } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    if (withKey) xhr.setRequestHeader('Authorization', authorization().Authorization);
    xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.total));
    xhr.addEventListener('load', () => {
      let parsed = null;
      try {
        parsed = xhr.responseText === '' ? null : JSON.parse(xhr.responseText);
      } catch {
        parsed = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(parsed);
      else reject(new ApiError(xhr.status, parsed));
    });
    const lost = () => reject(new ApiError(0, { error: { message: `The upload to ${new URL(url, location.href).host} failed: the connection was lost or refused.` } }));
    xhr.addEventListener('error', lost);
    xhr.addEventListener('abort', lost);
    xhr.send(body);
  });
}

// The role of the signed-in key: 'admin' or 'viewer' (a viewer's portal shows no write control).
export async function roleOfKey() {
  return (await api('/v1/whoami')).role;
}
