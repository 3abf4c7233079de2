/** Errors of the Twin API, one class per kind of answer (and one for a network that never answered). */

import type { RunStatus } from "./types.js";

/** One problem of an invalid request: which step (1-based) and field, and what is wrong with it. */
export interface Problem {
  step?: number | null;
  field?: string;
  message: string;
  [key: string]: unknown;
}

/** The API answered with an error: `status` (HTTP), `code` (e.g. `not_awaiting_approval`), `detail`. */
export class TwinError extends Error {
  override name = "TwinError";
  /** The HTTP status (0 when no answer came). */
  readonly status: number;
  /** The API's error code: `{"error": "<code>"}`. */
  readonly code: string;
  /** What went wrong, for a person. */
  readonly detail: string;
  /** The error body as the API sent it. */
  readonly body: Record<string, unknown>;
  /** The answer's headers (empty when no answer came). */
  readonly headers: Headers;
  /** The run's status when the answer was about a run (the `X-Twin-Status` header). */
  readonly twinStatus: RunStatus | undefined;

  constructor(
    status: number,
    body: Record<string, unknown>,
    headers: Headers = new Headers(),
    message?: string,
  ) {
    const code = typeof body.error === "string" ? body.error : "error";
    const detail = typeof body.detail === "string" ? body.detail : "";
    super(message ?? `${status} ${code}${detail ? `: ${detail}` : ""}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.body = body;
    this.headers = headers;
    this.twinStatus = (headers.get("x-twin-status") as RunStatus | null) ?? undefined;
  }
}

/** 400 or 422: the request does not fit; `problems` lists each problem when the API names them. */
export class ValidationError extends TwinError {
  override name = "ValidationError";
  get problems(): Problem[] {
    return Array.isArray(this.body.problems) ? (this.body.problems as Problem[]) : [];
  }
}

/** 401: no token, or an unknown or revoked one. */
export class AuthError extends TwinError {
  override name = "AuthError";
}

/** 403: the token's role does not allow this (or the pause is not yours to decide). */
export class ForbiddenError extends TwinError {
  override name = "ForbiddenError";
}

/** 404: no such object in your tenant. */
export class NotFoundError extends TwinError {
  override name = "NotFoundError";
}

/** 409: the run is not in a state that allows this; `runStatus` says which state it is in. */
export class ConflictError extends TwinError {
  override name = "ConflictError";
  get runStatus(): RunStatus | undefined {
    return (
      this.twinStatus ?? (typeof this.body.status === "string" ? (this.body.status as RunStatus) : undefined)
    );
  }
}

/** 409 `already_approved`: you already gave one of the approvals this pause needs; the run still
 * waits for someone else's. */
export class AlreadyApprovedError extends ConflictError {
  override name = "AlreadyApprovedError";
}

/** 429: too many tries; wait `retryAfter` seconds. */
export class RateLimitError extends TwinError {
  override name = "RateLimitError";
  /** Seconds to wait before trying again (the `Retry-After` header; 0 when absent). */
  get retryAfter(): number {
    const value = Number(this.headers.get("retry-after") ?? "0");
    return Number.isFinite(value) && value > 0 ? value : 0;
  }
}

/** 5xx: the server failed (after the retries an idempotent call gets). */
export class ServerError extends TwinError {
  override name = "ServerError";
}

/** No answer at all (connection refused or reset, DNS, timeout), after the retries an idempotent
 * call gets. `cause` is the underlying error. */
export class NetworkError extends TwinError {
  override name = "NetworkError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(0, { error: "network_error", detail: message }, new Headers(), message);
    if (options && "cause" in options) Object.defineProperty(this, "cause", { value: options.cause });
  }
}

/** The error for an answer with an error status. */
export function errorFor(status: number, body: unknown, headers: Headers): TwinError {
  const data: Record<string, unknown> =
    body !== null && typeof body === "object" && !Array.isArray(body)
      ? (body as Record<string, unknown>)
      : { error: "error", detail: typeof body === "string" ? body.slice(0, 1000) : "" };
  if (status === 400 || status === 422) return new ValidationError(status, data, headers);
  if (status === 401) return new AuthError(status, data, headers);
  if (status === 403) return new ForbiddenError(status, data, headers);
  if (status === 404) return new NotFoundError(status, data, headers);
  if (status === 409 && data.error === "already_approved")
    return new AlreadyApprovedError(status, data, headers);
  if (status === 409) return new ConflictError(status, data, headers);
  if (status === 429) return new RateLimitError(status, data, headers);
  if (status >= 500) return new ServerError(status, data, headers);
  return new TwinError(status, data, headers);
}
