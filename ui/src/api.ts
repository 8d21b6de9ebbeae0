// Calls to the node's HTTP API with the session's credentials, and the
// errors they end in.
import { session } from './session';

/** A refused or failed call: the HTTP status and the API's error type and text. */
export class APIError extends Error {
  constructor(
    readonly status: number,
    readonly errorType: string,
    message: string,
  ) {
    super(message);
  }
}

export interface APIResult<T> {
  data: T;
  warnings: string[];
  infos: string[];
}

export type Params = Record<string, string | string[] | undefined>;

function encode(params: Params): URLSearchParams {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
  }
  return p;
}

/** The error a response carries: the Prometheus API's JSON, or plain text. */
async function errorOf(resp: Response): Promise<APIError> {
  const text = await resp.text().catch(() => '');
  try {
    const j = JSON.parse(text) as { status?: string; errorType?: string; error?: string };
    if (j.status === 'error') return new APIError(resp.status, j.errorType ?? '', j.error ?? text);
  } catch {
    // not JSON
  }
  return new APIError(resp.status, '', text.trim() || resp.statusText || `HTTP ${resp.status}`);
}

/**
 * fetch for every call to the node. credentials 'omit': the token goes in
 * its own header, and the browser must neither send credentials of its
 * own nor open its Basic-auth prompt on a 401 (the node offers Basic to
 * tools; a prompt would hold the call until someone answered it).
 */
export function nodeFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  return fetch(input, { ...init, credentials: 'omit' });
}

async function send(path: string, init: RequestInit): Promise<Response> {
  let resp: Response;
  try {
    resp = await nodeFetch(path, { ...init, headers: { ...session.headers(), ...(init.headers as Record<string, string>) } });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new APIError(0, 'network', `the node did not answer: ${(e as Error).message}`);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

/**
 * Calls the Prometheus API: GET with the parameters in the URL, or POST
 * with them as a form (query and query_range, whose expressions may be
 * long).
 */
export async function call<T>(path: string, params: Params = {}, opts: { method?: 'GET' | 'POST'; signal?: AbortSignal } = {}): Promise<APIResult<T>> {
  const p = encode(params);
  const init: RequestInit = { method: opts.method ?? 'GET', signal: opts.signal, headers: { Accept: 'application/json' } };
  let url = path;
  if (init.method === 'POST') {
    init.body = p;
    init.headers = { ...(init.headers as Record<string, string>), 'Content-Type': 'application/x-www-form-urlencoded' };
  } else if ([...p].length) {
    url += '?' + p.toString();
  }
  const resp = await send(url, init);
  const j = (await resp.json()) as { status: string; data: T; warnings?: string[]; infos?: string[]; error?: string; errorType?: string };
  if (j.status !== 'success') throw new APIError(resp.status, j.errorType ?? '', j.error ?? 'unexpected answer');
  return { data: j.data, warnings: j.warnings ?? [], infos: j.infos ?? [] };
}

/** GETs a JSON document that is not in the API's envelope (/ring?format=json). */
export async function getJSON<T>(path: string, signal?: AbortSignal): Promise<T> {
  const resp = await send(path, { signal, headers: { Accept: 'application/json' } });
  return (await resp.json()) as T;
}

/** GETs a text document (/ready). */
export async function getText(path: string, signal?: AbortSignal): Promise<{ ok: boolean; text: string }> {
  try {
    const resp = await nodeFetch(path, { signal });
    return { ok: resp.ok, text: (await resp.text()).trim() };
  } catch (e) {
    return { ok: false, text: (e as Error).message };
  }
}

/** A sentence for an error, for people. */
export function describe(e: unknown): string {
  if (e instanceof APIError) {
    switch (e.status) {
      case 401:
        return e.message.includes('org id') ? `${e.message} — choose a tenant` : `${e.message} — sign in with a token`;
      case 403:
        return `${e.message} (403)`;
      case 429:
        return `${e.message} (429)`;
    }
    return e.errorType ? `${e.errorType}: ${e.message}` : e.message;
  }
  return (e as Error)?.message ?? String(e);
}
