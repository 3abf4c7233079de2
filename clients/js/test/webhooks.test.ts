/** Webhooks: an endpoint receives a real delivery from the server; verifyWebhook checks it,
 * and agrees with the standardwebhooks package both ways. */

import assert from "node:assert/strict";
import { type IncomingHttpHeaders, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { WebhookVerificationError, verifyWebhook } from "@twin/client";
import { Webhook } from "standardwebhooks";

import { liveTest, pay, site, twin } from "./helpers.js";

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP endpoint on 127.0.0.1 that keeps what is posted to it. */
async function receiver(): Promise<{ url: string; next: () => Promise<Delivery>; close: () => void }> {
  const waiting: ((delivery: Delivery) => void)[] = [];
  const received: Delivery[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const delivery = { headers: request.headers, body: Buffer.concat(chunks).toString("utf8") };
      const taker = waiting.shift();
      if (taker) taker(delivery);
      else received.push(delivery);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/twin`,
    next: () => {
      const ready = received.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no delivery in 60 s")), 60_000);
        waiting.push((delivery) => {
          clearTimeout(timer);
          resolve(delivery);
        });
      });
    },
    close: () => server.close(),
  };
}

liveTest("a delivery from the server verifies, and nothing altered or replayed does", async () => {
  const client = twin();
  const endpoint = await receiver();
  try {
    const created = await client.webhooks.create(endpoint.url, {
      events: ["run.awaiting_approval"],
      description: "node test",
    });
    assert.match(created.secret, /^whsec_/);
    assert.equal(created.url, endpoint.url);
    assert.ok((await client.webhooks.list()).some((hook) => hook.id === created.id && !("secret" in hook)));

    const run = await client.runs.start({ goal: "Pay", url: site("/pay"), steps: pay(), wait: 30 });
    assert.equal(run.status, "awaiting_approval");
    const delivery = await endpoint.next();

    type Payload = {
      type: string;
      timestamp: string;
      data: { run: { id: string; pending_step: { index: number } } };
    };
    const payload = await verifyWebhook<Payload>(created.secret, delivery.headers, delivery.body);
    assert.equal(payload.type, "run.awaiting_approval");
    assert.equal(payload.data.run.id, run.id);
    assert.equal(payload.data.run.pending_step.index, 2, "the payload is the API's JSON, as signed");

    // The same delivery through a fetch-style Headers, and as bytes.
    const headers = new Headers(delivery.headers as Record<string, string>);
    await verifyWebhook(created.secret, headers, new TextEncoder().encode(delivery.body));
    // The standardwebhooks package agrees that the server signed it.
    const theirs = new Webhook(created.secret).verify(
      delivery.body,
      delivery.headers as Record<string, string>,
    );
    assert.deepEqual(theirs, payload);

    const refuses = (promise: Promise<unknown>, why: RegExp) =>
      assert.rejects(
        promise,
        (error: unknown) => error instanceof WebhookVerificationError && why.test(error.message),
      );
    await refuses(
      verifyWebhook(created.secret, delivery.headers, delivery.body.replace(run.id, crypto.randomUUID())),
      /no signature matches/,
    );
    await refuses(
      verifyWebhook(`whsec_${btoa("another key")}`, delivery.headers, delivery.body),
      /no signature matches/,
    );
    const sent = Number(delivery.headers["webhook-timestamp"]);
    await refuses(
      verifyWebhook(created.secret, delivery.headers, delivery.body, { now: sent + 301 }),
      /too old/,
    );
    await refuses(
      verifyWebhook(created.secret, { ...delivery.headers, "webhook-signature": undefined }, delivery.body),
      /missing/,
    );

    await client.webhooks.delete(created.id);
    assert.ok(!(await client.webhooks.list()).some((hook) => hook.id === created.id));
    await client.runs.cancel(run.id);
  } finally {
    endpoint.close();
  }
});

test("what the standardwebhooks package signs verifies, and what verifyWebhook accepts it accepts", async () => {
  const secret = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
  const signer = new Webhook(secret);
  const body = JSON.stringify({
    type: "run.completed",
    timestamp: new Date().toISOString(),
    data: { run: { id: "r1", outputs: { receipt_id: "R-1" } } },
  });
  const id = `msg_${crypto.randomUUID()}`;
  const now = new Date();
  const signature = signer.sign(id, now, body);
  const headers = {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
    "webhook-signature": signature,
  };

  const payload = await verifyWebhook<{ data: { run: { outputs: Record<string, string> } } }>(
    secret,
    headers,
    body,
  );
  assert.equal(payload.data.run.outputs.receipt_id, "R-1");
  assert.deepEqual(signer.verify(body, headers), payload);
  // Several signatures (a secret being rotated): any one that matches will do.
  const rotated = { ...headers, "webhook-signature": `v1,${btoa("not it")} v2,whatever ${signature}` };
  await verifyWebhook(secret, rotated, body);
  // A secret without the whsec_ prefix is the same key.
  await verifyWebhook(secret.slice("whsec_".length), headers, body);
  await assert.rejects(verifyWebhook(secret, headers, `${body} `), WebhookVerificationError);
  await assert.rejects(verifyWebhook("whsec_%%%", headers, body), /not a whsec_/);
  await assert.rejects(
    verifyWebhook(secret, { ...headers, "webhook-timestamp": "soon" }, body),
    /not a number/,
  );
});
