/**
 * What the tests share: the live server and fixture site the Python suite started
 * (`tests/client/test_js_client.py` passes them in the environment), the step programs they run,
 * and a TOTP code for the fixture site's one-time-code page.
 */

import { test } from "node:test";

import { type ProgramStep, Twin, type TwinOptions } from "@twin/client";

export const live = {
  baseUrl: process.env.TWIN_BASE_URL ?? "",
  token: process.env.TWIN_TOKEN ?? "",
  site: process.env.TWIN_SITE_URL ?? "",
  totpSeed: process.env.TWIN_TOTP_SEED ?? "",
};

/** A test against the live server: skipped (saying why) when run outside `make test`. */
export function liveTest(name: string, fn: () => Promise<void>): void {
  const skip =
    live.baseUrl && live.token ? false : "needs the live server: run it through make test (pytest)";
  test(name, { skip, timeout: 120_000 }, fn);
}

export function twin(options: Partial<TwinOptions> = {}): Twin {
  return new Twin({ baseUrl: live.baseUrl, token: live.token, ...options });
}

export function site(path: string): string {
  return new URL(path, live.site).href;
}

/** Sign in, then a one-time code typed by a person (the pause at step 7 of 9). */
export function signInWithCode(): ProgramStep[] {
  return [
    { action: "goto", url: site("/login") },
    { action: "fill", selector: "#user", value: "alice" },
    { action: "fill", selector: "#password", value: "wonderland" },
    { action: "click", selector: "#login" },
    { action: "wait_for", selector: "#welcome" },
    { action: "goto", url: site("/otp") },
    {
      action: "fill",
      selector: "#otp",
      value: "{{input}}",
      gate: { kind: "input", prompt: "One-time code", pattern: "^[0-9]{6}$" },
    },
    { action: "click", selector: "#verify" },
    { action: "assert_text", text: "Confirm payment" },
  ];
}

/** Pay $42, approved by a person first (the pause at step 2 of 4); the receipt is extracted. */
export function pay(): ProgramStep[] {
  return [
    { action: "goto", url: site("/pay") },
    { action: "click", selector: "#pay", gate: { kind: "approval", prompt: "Pay $42?" } },
    { action: "assert_text", text: "Payment complete" },
    { action: "extract", selector: "#receipt", name: "receipt_id" },
  ];
}

function base32(seed: string): Uint8Array<ArrayBuffer> {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const char of seed.replace(/=+$/, "").toUpperCase()) {
    const value = alphabet.indexOf(char);
    if (value < 0) throw new Error(`not base32: ${char}`);
    bits += value.toString(2).padStart(5, "0");
  }
  const bytes = new Uint8Array(Math.floor(bits.length / 8));
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  return bytes;
}

/** The current RFC 6238 code (SHA-1, 30 s, 6 digits) of a base32 seed: what an authenticator app shows. */
export async function totp(seed: string, at = Date.now()): Promise<string> {
  const counter = new DataView(new ArrayBuffer(8));
  counter.setBigUint64(0, BigInt(Math.floor(at / 30_000)));
  const key = await crypto.subtle.importKey("raw", base32(seed), { name: "HMAC", hash: "SHA-1" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, counter.buffer));
  const offset = mac[mac.length - 1]! & 0x0f;
  const code =
    ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!;
  return String(code % 1_000_000).padStart(6, "0");
}
