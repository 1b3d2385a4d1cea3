// The dashboard's API client: GETs, and POSTs carrying the CSRF token from the page shell.
const token = document.querySelector('meta[name="pgd-csrf"]')?.content ?? '';
export const readOnly = document.querySelector('meta[name="pgd-read-only"]')?.content === 'true';

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function answer(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    throw new ApiError(res.status, `HTTP ${res.status}`);
  }
  if (!res.ok) throw new ApiError(res.status, body?.error ?? `HTTP ${res.status}`, body?.code);
  return body;
}

export async function get(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  return answer(await fetch(qs ? `${path}?${qs}` : path, { headers: { Accept: 'application/json' }, cache: 'no-store' }));
}

export async function post(path, body) {
  return answer(await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token, Accept: 'application/json' },
    body: JSON.stringify(body),
  }));
}
