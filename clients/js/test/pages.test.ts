/** Listings page after page: 120 runs the Python side made, read 25 at a time. */

import assert from "node:assert/strict";

import { live, liveTest, twin } from "./helpers.js";

const TOTAL = Number(process.env.TWIN_RUNS_MADE ?? "120");
const FAILED = Number(process.env.TWIN_RUNS_FAILED ?? "40");

liveTest("every run, newest first, once each, fetched a page at a time", async () => {
  let calls = 0;
  const counted: typeof fetch = (input, init) => {
    calls += 1;
    return fetch(input, init);
  };
  const client = twin({ fetch: counted });

  const runs = [];
  for await (const run of client.runs.list({ pageSize: 25 })) runs.push(run);

  assert.equal(runs.length, TOTAL);
  assert.equal(new Set(runs.map((run) => run.id)).size, TOTAL, "no run twice");
  const times = runs.map((run) => Date.parse(run.createdAt));
  assert.deepEqual(
    times,
    [...times].sort((a, b) => b - a),
    "newest first",
  );
  assert.equal(calls, Math.ceil(TOTAL / 25));
  assert.equal(runs[0]?.twinStatus, undefined, "a listing's runs carry no X-Twin-Status of their own");

  const sizes = [];
  for await (const page of client.runs.list({ pageSize: 50 }).pages()) sizes.push(page.length);
  assert.deepEqual(sizes, [50, 50, TOTAL - 100]);

  calls = 0;
  const first = await client.runs.list({ pageSize: 25 }).toArray({ max: 30 });
  assert.deepEqual(
    first.map((run) => run.id),
    runs.slice(0, 30).map((run) => run.id),
  );
  assert.equal(calls, 2, "no page is fetched before it is needed");

  const failed = await client.runs.list({ status: "failed", pageSize: 15 }).toArray();
  assert.equal(failed.length, FAILED);
  assert.ok(failed.every((run) => run.status === "failed"));
  assert.ok(live.baseUrl);
});

liveTest("the approvals listing pages the same way", async () => {
  const client = twin();
  const pending = await client.approvals.list({ status: "pending", order: "oldest", pageSize: 7 }).toArray();
  const expected = Number(process.env.TWIN_PENDING_MADE ?? "0");
  assert.equal(pending.length, expected);
  assert.equal(new Set(pending.map((approval) => approval.id)).size, expected);
  const times = pending.map((approval) => Date.parse(approval.createdAt));
  assert.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    "oldest first",
  );
  assert.ok(pending.every((approval) => approval.status === "pending" && typeof approval.runId === "string"));
});
