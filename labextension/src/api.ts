/**
 * Talking to condorhub's server extension, and URLs for files the browser loads directly.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An answer the server refused; `message` is the server's text (it says what to fix). */
export class APIError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

const settings = ServerConnection.makeSettings();

/** A JSON request to {base_url}condorhub/api/<path>; ServerConnection adds the token and XSRF header. */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  query: Record<string, string> = {}
): Promise<T> {
  const qs = new URLSearchParams(query).toString();
  const url =
    URLExt.join(settings.baseUrl, 'condorhub/api', path) + (qs ? `?${qs}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(0, `the Jupyter server does not answer: ${error}`);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new APIError(
      response.status,
      (data && data.message) || text || response.statusText
    );
  }
  return data as T;
}

export function postJSON<T>(path: string, body: unknown): Promise<T> {
  return requestAPI<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

/**
 * URL of a file under the server root for <img>/<iframe>. No XSRF token in it: a URL is readable by the
 * document it loads (a frame's location) and lands in logs. The server does not need one for these GETs:
 * JupyterHub accepts the cookie for navigations and same-origin no-cors loads, and jupyter-server checks
 * that the Referer (condorhub's frame route also: Sec-Fetch-Site) is this origin. Frames use condorhub's
 * own route (condorhub/scan/file), whose policy allows framing by the Lab; /files/ forbids it behind the hub.
 */
export function fileURL(path: string, route = 'files'): string {
  return URLExt.join(settings.baseUrl, route, URLExt.encodeParts(path));
}

/** An absolute URL for a path relative to the server's base URL. */
export function serverURL(path: string): string {
  return URLExt.join(settings.baseUrl, path);
}

/** The first `limit` characters of a text file, through the contents API. */
export async function readText(path: string, limit = 20000): Promise<string> {
  const url =
    URLExt.join(settings.baseUrl, 'api/contents', URLExt.encodeParts(path)) +
    '?type=file&format=text';
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    throw new APIError(
      response.status,
      `cannot read ${path} (${response.status})`
    );
  }
  const model = await response.json();
  const content: string = model.content ?? '';
  return content.length > limit ? content.slice(0, limit) + '\n…' : content;
}
