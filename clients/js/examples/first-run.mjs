// The README's first run from JavaScript: sign in to the demo site, pause at the one-time code,
// approve with the code a person types, resume at that very step.
//
//   TWIN_TOKEN=… node clients/js/examples/first-run.mjs
//
// TWIN_URL (default http://127.0.0.1:8000) is Twin, TWIN_DEMO_URL (default http://127.0.0.1:8001)
// the demo site `make run` serves. The code is read from stdin: type the one your authenticator
// app shows for the demo's seed JBSWY3DPEHPK3PXP, or pipe in `.venv/bin/python -m vault.totp JBSWY3DPEHPK3PXP`.

import { createInterface } from "node:readline/promises";

import { Twin } from "@twin/client";

const twin = new Twin({
  baseUrl: process.env.TWIN_URL ?? "http://127.0.0.1:8000",
  token: process.env.TWIN_TOKEN ?? "",
});
const demo = process.env.TWIN_DEMO_URL ?? "http://127.0.0.1:8001";

const goal = "Sign in to the demo shop";
const url = `${demo}/login`;
const steps = [
  { action: "goto", url },
  { action: "fill", selector: "#user", value: "alice" },
  { action: "fill", selector: "#password", value: "wonderland" },
  { action: "click", selector: "#login" },
  { action: "goto", url: `${demo}/otp` },
  {
    action: "fill",
    selector: "#otp",
    value: "{{input}}",
    gate: { kind: "input", prompt: "One-time code", pattern: "^[0-9]{6}$" },
  },
  { action: "click", selector: "#verify" },
  { action: "assert_text", text: "Confirm payment" },
];

const run = await twin.agents.run({ goal, url, steps });
if (run.status === "awaiting_approval") {
  // surface run.pendingStep to a human, then:
  console.log(`paused at step ${run.pendingStep.index} of ${run.stepCount}: ${run.pendingStep.prompt}`);
  const person = createInterface({ input: process.stdin, output: process.stderr });
  const otp = (await person.question(`${run.pendingStep.prompt}: `)).trim();
  person.close();
  await twin.runs.approve(run.id, { input: otp });
}
const done = await twin.runs.wait(run.id);
console.log(`x-twin-status: ${done.twinStatus}`);
console.log(`resumed from step ${done.resumedFrom} of ${done.stepCount}`);
