/**
 * Verify a webhook from Twin: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), with Web Crypto — the
 * same code in Node ≥ 20, Deno, Bun, workers and browsers.
 */

/** Five minutes either side of now: an older (replayed) or future message is refused. */
export const TOLERANCE = 300;

export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
}

/** A request's headers: a `Headers`, or a plain object (Node's `req.headers`, any case). */
export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** Seconds either side of now a message's timestamp may be. Default 300. */
  tolerance?: number;
  /** The time to check against, in seconds (for tests). */
  now?: number;
}

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  for (const [key, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (key.toLowerCase() === name) return Array.isArray(value) ? value.join(" ") : value;
  }
  return undefined;
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const raw = atob(text); // throws on anything but base64
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function toBytes(body: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof body === "string") return new TextEncoder().encode(body);
  return body instanceof Uint8Array ? body : new Uint8Array(body);
}

/**
 * The message's JSON payload (`{type, timestamp, data: {run}}`) if `body` was signed with
 * `secret` (the `whsec_…` the endpoint was created with) recently; else a
 * `WebhookVerificationError`. Pass the raw body exactly as received — not a re-serialized object.
 */
export async function verifyWebhook<T = unknown>(
  secret: string,
  headers: HeadersLike,
  body: string | Uint8Array | ArrayBuffer,
  { tolerance = TOLERANCE, now }: VerifyOptions = {},
): Promise<T> {
  const id = header(headers, "webhook-id");
  const stamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !stamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  if (!/^\d{1,12}$/.test(stamp.trim()))
    throw new WebhookVerificationError("webhook-timestamp is not a number of seconds");
  const timestamp = Number(stamp.trim());
  const current = now ?? Date.now() / 1000;
  if (Math.abs(current - timestamp) > tolerance) {
    throw new WebhookVerificationError("the message is too old or from the future (replayed?)");
  }
  let key: Uint8Array<ArrayBuffer>;
  try {
    key = fromBase64(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
  } catch {
    throw new WebhookVerificationError("the secret is not a whsec_… key");
  }
  if (key.length === 0) throw new WebhookVerificationError("the secret is not a whsec_… key");
  const raw = toBytes(body);
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + raw.length);
  signed.set(prefix);
  signed.set(raw, prefix.length);
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new WebhookVerificationError("no Web Crypto here (crypto.subtle): use Node 20 or later");
  const hmac = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  for (const candidate of signatures.split(" ")) {
    const [version, value] = candidate.split(",", 2);
    if (version !== "v1" || !value) continue;
    let given: Uint8Array<ArrayBuffer>;
    try {
      given = fromBase64(value);
    } catch {
      continue;
    }
    // (subtle.verify compares in constant time)
    if (await subtle.verify("HMAC", hmac, given, signed)) {
      const text = new TextDecoder().decode(raw);
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new WebhookVerificationError("the body is signed but is not JSON");
      }
    }
  }
  throw new WebhookVerificationError("no signature matches (wrong secret, or the body was changed)");
}
