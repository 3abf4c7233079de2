/** A run that pauses for a person, through the client, against the live server. */

import assert from "node:assert/strict";

import { AuthError, ConflictError, NotFoundError, Twin, ValidationError, isSettled } from "@twin/client";

import { live, liveTest, pay, signInWithCode, site, totp, twin } from "./helpers.js";

liveTest(
  "a run paused at a one-time code resumes at that very step when approved with the code",
  async () => {
    const client = twin();
    const run = await client.agents.run({ goal: "Sign in", url: site("/login"), steps: signInWithCode() });

    assert.equal(run.status, "awaiting_approval");
    assert.equal(run.twinStatus, "awaiting_approval");
    assert.equal(run.httpResponse.headers.get("x-twin-status"), "awaiting_approval");
    const pending = run.pendingStep;
    assert.ok(pending, "a paused run names the step it waits on");
    assert.equal(pending.index, 7);
    assert.equal(pending.kind, "input");
    assert.equal(pending.trigger, "mfa");
    assert.equal(pending.prompt, "One-time code");
    assert.match(pending.pageUrl, /\/otp$/);
    assert.ok(Date.parse(pending.expiresAt) > Date.now(), "expiresAt is a date in the future");
    assert.equal(run.currentStep, 7);
    assert.equal(run.stepCount, 9);
    assert.equal(run.resumedFrom, null);
    assert.equal(JSON.stringify(run).includes("pending_step"), false, "the API's names are camelCased");
    assert.equal(
      "httpResponse" in JSON.parse(JSON.stringify(run)),
      false,
      "the answer is not part of the data",
    );

    // A code that fails the gate's pattern: a ValidationError, and the run still waits.
    await assert.rejects(client.runs.approve(run.id, { input: "12ab" }), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.status, 400);
      assert.equal(error.code, "input_invalid");
      assert.equal(error.twinStatus, "awaiting_approval");
      return true;
    });
    assert.equal((await client.runs.get(run.id)).status, "awaiting_approval");

    const approved = await client.runs.approve(run.id, {
      input: await totp(live.totpSeed),
      note: "from node",
    });
    assert.equal(approved.httpResponse.status, 202);
    assert.notEqual(approved.status, "awaiting_approval");
    const done = await client.runs.wait(run.id, { timeout: 60 });

    assert.equal(done.status, "completed");
    assert.equal(done.twinStatus, "completed");
    assert.equal(done.resumedFrom, pending.index);
    assert.equal(done.pendingStep, null);
    assert.deepEqual(
      done.steps.map((step) => step.status),
      Array(9).fill("done"),
    );
    assert.ok(
      done.steps.every((step) => typeof step.startedAt === "string" && typeof step.finishedAt === "string"),
    );

    // A second approve of the same pause: 409, never a second resume.
    await assert.rejects(client.runs.approve(run.id, { input: "123456" }), (error: unknown) => {
      assert.ok(error instanceof ConflictError);
      assert.equal(error.status, 409);
      assert.equal(error.runStatus, "completed");
      return true;
    });

    const events = await client.runs.events(run.id);
    const names = events.map((event) => event.event);
    for (const name of ["run.awaiting_approval", "run.resumed", "run.completed"])
      assert.ok(names.includes(name), name);
    assert.ok(names.indexOf("run.awaiting_approval") < names.indexOf("run.resumed"));
    const resumed = events.find((event) => event.event === "run.resumed");
    assert.equal(resumed?.step, 7);
    assert.ok(!JSON.stringify(events).includes(await totp(live.totpSeed)), "the code is in no event");
  },
);

liveTest("a rejected payment is never made; outputs keep the names the program gave them", async () => {
  const client = twin();
  const paid = await client.agents.run({ goal: "Pay the invoice", url: site("/pay"), steps: pay() });
  assert.equal(paid.status, "awaiting_approval");
  assert.equal(paid.pendingStep?.kind, "approval");
  assert.equal(paid.pendingStep?.prompt, "Pay $42?");
  await client.runs.approve(paid.id);
  const done = await client.runs.wait(paid.id, { timeout: 60 });
  assert.equal(done.status, "completed");
  assert.equal(done.resumedFrom, 2);
  assert.match(String(done.outputs.receipt_id), /^R-\d{4}$/, "outputs.receipt_id, not outputs.receiptId");
  assert.equal("receiptId" in done.outputs, false);

  const refused = await client.agents.run({ goal: "Pay the invoice", url: site("/pay"), steps: pay() });
  assert.equal(refused.status, "awaiting_approval");
  const rejected = await client.runs.reject(refused.id, { reason: "not this month" });
  assert.equal(rejected.status, "rejected");
  assert.equal(rejected.twinStatus, "rejected");
  assert.notEqual(rejected.steps[1]?.status, "done", "the gated step is never performed");
  assert.deepEqual(rejected.outputs, {});
  // (the Python side checks the fixture site: one payment in all)
});

liveTest("cancel, wait and the errors an integration meets", async () => {
  const client = twin();
  const run = await client.runs.start({ goal: "Pay", url: site("/pay"), steps: pay(), wait: 30 });
  assert.equal(run.status, "awaiting_approval");
  assert.ok(isSettled(run));
  const cancelled = await client.runs.cancel(run.id);
  assert.equal(cancelled.status, "cancelled");
  await assert.rejects(client.runs.approve(run.id), ConflictError);

  await assert.rejects(client.runs.get("00000000-0000-0000-0000-000000000000"), NotFoundError);
  await assert.rejects(
    new Twin({ baseUrl: live.baseUrl, token: "twin_not-a-token" }).runs.get(run.id),
    AuthError,
  );

  await assert.rejects(
    client.runs.start({
      goal: "Nothing",
      steps: [{ action: "goto", url: "ftp://example.invalid/" }, { action: "click" } as never],
    }),
    (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.ok(error.problems.length >= 2, JSON.stringify(error.body));
      assert.deepEqual(
        error.problems.map((problem) => problem.step),
        [1, 2],
      );
      return true;
    },
  );
});

liveTest("the same Idempotency-Key twice starts one run", async () => {
  const client = twin();
  const key = `node-${crypto.randomUUID()}`;
  const first = await client.runs.start({
    goal: "Pay",
    url: site("/pay"),
    steps: pay(),
    idempotencyKey: key,
  });
  const again = await client.runs.start({
    goal: "Pay",
    url: site("/pay"),
    steps: pay(),
    idempotencyKey: key,
  });
  assert.equal(again.id, first.id);
  assert.equal(again.httpResponse.headers.get("idempotent-replayed"), "true");
  await client.runs.cancel(first.id);
});
