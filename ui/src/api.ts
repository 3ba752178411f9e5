/**
 * The REST API as the page uses it: the bearer token (kept in sessionStorage, so it lives as long
 * as the tab), JSON in and out, and refusals as the API words them (problem+json: title, detail,
 * code).
 */
const TOKEN_KEY = 'vmmr.token';

export const token = {
  get: (): string => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (value: string): void => sessionStorage.setItem(TOKEN_KEY, value),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail: string,
  ) {
    super(detail === '' ? `${status} ${title}` : detail);
  }
}

/** Listeners told when the API refuses the token (401) or accepts a request. */
const authListeners = new Set<(ok: boolean) => void>();
export function onAuth(listener: (ok: boolean) => void): void {
  authListeners.add(listener);
}

export function authHeaders(): Record<string, string> {
  const t = token.get();
  return t === '' ? {} : { authorization: `Bearer ${t}` };
}

export async function problemOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const p = JSON.parse(text) as { title?: string; detail?: string; code?: string };
    return new ApiError(res.status, p.code ?? '', p.title ?? res.statusText, p.detail ?? '');
  } catch {
    return new ApiError(res.status, '', res.statusText, text.slice(0, 200));
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...authHeaders() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) authListeners.forEach((l) => l(false));
  if (!res.ok) throw await problemOf(res);
  authListeners.forEach((l) => l(true));
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** "VMMR_ERR_SRIOV_STATE: detail" for an ApiError, the message otherwise. */
export function describeError(e: unknown): string {
  if (e instanceof ApiError) return e.code === '' ? e.message : `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
