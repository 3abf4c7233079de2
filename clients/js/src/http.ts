/**
 * Sending one API call: the token, a JSON body, `Idempotency-Key`, the caller's `AbortSignal`
 * and a timeout, retries of idempotent calls, and the answer (or an error of the right class).
 */

import { camelize } from "./camel.js";
import { NetworkError, TwinError, errorFor } from "./errors.js";
import type { ResponseInfo } from "./types.js";

export const VERSION = "0.1.0";
/** The server holds a `?wait=` call at most this many seconds. */
export const MAX_WAIT = 60;

export interface TwinOptions {
  /** Where Twin answers, e.g. `http://127.0.0.1:8000` (what `make run` prints). */
  baseUrl: string;
  /** An API token (`make token`, `createtenant`, or the dashboard's API tokens page). */
  token: string;
  /** Seconds a call may take before it is given up (a long-poll's `wait` is added to it). Default 30. */
  timeout?: number;
  /** How many times an idempotent call is tried again after a 502, 503, 504 or a network error. Default 2. */
  maxRetries?: number;
  /** Seconds before the first retry; each next one waits twice as long (with jitter). Default 0.5. */
  retryDelay?: number;
  /** Another `fetch` (a proxy agent, a test's): the global one by default. */
  fetch?: typeof fetch;
  /** Headers sent with every call. */
  headers?: Record<string, string>;
}

/** What every call takes. */
export interface CallOptions {
  /** Abort the call (and its retries and waits) with this signal. */
  signal?: AbortSignal;
}

/** What every call that creates or decides takes. */
export interface IdempotentOptions extends CallOptions {
  /** Sent as `Idempotency-Key`: a retry with the same key gets the first answer and changes nothing.
   * A fresh key is made for each call when you give none. */
  idempotencyKey?: string;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export interface Call {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  /** A path under the base URL (`/api/runs`), or the absolute URL of a next page. */
  path: string;
  query?: Query;
  body?: unknown;
  /** Safe to send again (GETs, DELETEs, and POSTs the server keys by `Idempotency-Key`). */
  retry: boolean;
  idempotencyKey?: string;
  /** Seconds the server may hold the answer (`?wait=`): added to the timeout. */
  wait?: number;
  signal?: AbortSignal | undefined;
}

export interface Answer {
  data: unknown;
  info: ResponseInfo;
}

const RETRY_STATUSES = new Set([502, 503, 504]);

export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

/** One path segment (an id, a slug, a name), encoded: a `/` or `?` in it cannot change the URL. */
export function segment(value: string | number): string {
  return encodeURIComponent(String(value));
}

/** Seconds as the API's `wait` takes them: 0 to 60. */
export function clampWait(seconds: number | undefined): number {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) return 0;
  return Math.min(seconds, MAX_WAIT);
}

export class Transport {
  readonly baseUrl: URL;
  readonly #token: string;
  readonly #timeout: number;
  readonly #maxRetries: number;
  readonly #retryDelay: number;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;

  constructor(options: TwinOptions) {
    if (!options || typeof options.baseUrl !== "string" || !options.baseUrl) {
      throw new TypeError("new Twin({ baseUrl, token }): baseUrl is required, e.g. http://127.0.0.1:8000");
    }
    if (typeof options.token !== "string" || !options.token) {
      throw new TypeError("new Twin({ baseUrl, token }): token is required (make token prints one)");
    }
    let base: URL;
    try {
      base = new URL(options.baseUrl.replace(/\/+$/, "") + "/");
    } catch {
      throw new TypeError(`new Twin({ baseUrl }): ${JSON.stringify(options.baseUrl)} is not a URL`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new TypeError(`new Twin({ baseUrl }): ${base.protocol} is not http: or https:`);
    }
    this.baseUrl = base;
    this.#token = options.token;
    this.#timeout = options.timeout ?? 30;
    this.#maxRetries = Math.max(0, Math.floor(options.maxRetries ?? 2));
    this.#retryDelay = options.retryDelay ?? 0.5;
    const given = options.fetch ?? globalThis.fetch;
    if (typeof given !== "function")
      throw new TypeError("no fetch: use Node 20 or later, or pass options.fetch");
    this.#fetch = given.bind(globalThis);
    this.#headers = { ...(options.headers ?? {}) };
  }

  /** The call's URL: a path under the base URL, or a next page's URL (which must be on the same origin). */
  url(call: Call): URL {
    const url = /^https?:\/\//i.test(call.path)
      ? new URL(call.path)
      : new URL(call.path.replace(/^\/+/, ""), this.baseUrl);
    if (url.origin !== this.baseUrl.origin) {
      // (a next page elsewhere would be sent the token: never)
      throw new TwinError(0, { error: "foreign_url", detail: `refusing to send the token to ${url.origin}` });
    }
    for (const [key, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    return url;
  }

  async send(call: Call): Promise<Answer> {
    const url = this.url(call);
    const headers: Record<string, string> = {
      Accept: "application/json",
      "User-Agent": `twin-client-js/${VERSION}`,
      ...this.#headers,
      Authorization: `Bearer ${this.#token}`,
    };
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    if (call.idempotencyKey !== undefined) headers["Idempotency-Key"] = call.idempotencyKey;
    const limit = (this.#timeout + (call.wait ?? 0)) * 1000;
    for (let attempt = 0; ; attempt++) {
      call.signal?.throwIfAborted();
      const timer = AbortSignal.timeout(limit);
      const signal = call.signal ? anySignal([call.signal, timer]) : timer;
      let response: Response;
      try {
        response = await this.#fetch(url, { method: call.method, headers, body, signal });
      } catch (error) {
        if (call.signal?.aborted) throw call.signal.reason;
        const why = timer.aborted ? `no answer in ${limit / 1000} s` : describe(error);
        if (call.retry && attempt < this.#maxRetries) {
          await this.#pause(attempt, undefined, call.signal);
          continue;
        }
        throw new NetworkError(`${call.method} ${url.pathname}: ${why}`, { cause: error });
      }
      if (RETRY_STATUSES.has(response.status) && call.retry && attempt < this.#maxRetries) {
        await response.body?.cancel().catch(() => undefined);
        await this.#pause(attempt, response.headers.get("retry-after"), call.signal);
        continue;
      }
      let data: unknown;
      try {
        data = await readBody(response);
      } catch (error) {
        if (call.signal?.aborted) throw call.signal.reason;
        throw new NetworkError(`${call.method} ${url.pathname}: the answer broke off (${describe(error)})`, {
          cause: error,
        });
      }
      if (response.status >= 400) throw errorFor(response.status, data, response.headers);
      return {
        data,
        info: { status: response.status, headers: response.headers, url: response.url || url.href },
      };
    }
  }

  async #pause(attempt: number, retryAfter: string | null | undefined, signal?: AbortSignal): Promise<void> {
    const asked = Number(retryAfter ?? "");
    const backoff = this.#retryDelay * 2 ** attempt * (0.75 + Math.random() / 2);
    const seconds = Number.isFinite(asked) && asked > 0 ? Math.min(asked, 30) : Math.min(backoff, 30);
    await sleep(seconds, signal);
  }
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    if (response.status >= 400) return text;
    throw new TwinError(response.status, {
      error: "not_json",
      detail: `the answer is not JSON: ${text.slice(0, 200)}`,
    });
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

/** Wait `seconds`, or until `signal` aborts (then throw its reason). */
export function sleep(seconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = () => {
      signal?.removeEventListener("abort", stop);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, seconds * 1000));
    const stop = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}

/** A signal that aborts when any of `signals` does (`AbortSignal.any` where there is one). */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (typeof any === "function") return any.call(AbortSignal, signals);
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

/** The URL of the next page (`Link: <…>; rel="next"`), if any. */
export function nextLink(headers: Headers): string | undefined {
  const link = headers.get("link");
  if (!link) return undefined;
  for (const part of link.split(",")) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /(^|;)\s*rel="?next"?\s*(;|$)/i.test(match[2] ?? "")) return match[1];
  }
  return undefined;
}

/** An API object as this client returns it: camelCased (but for the `keep` fields), with its answer. */
export function answered<T>(data: unknown, keep: ReadonlySet<string>, info: ResponseInfo): T {
  const value = camelize(data, keep) as object;
  Object.defineProperty(value, "httpResponse", { value: info, enumerable: false });
  return value as T;
}
