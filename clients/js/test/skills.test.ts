/** The vault and skills through the client: a secret typed at the action, a run compiled into a skill, replayed. */

import assert from "node:assert/strict";

import { NotFoundError, type ProgramStep } from "@twin/client";

import { liveTest, site, twin } from "./helpers.js";

function signIn(password: string): ProgramStep[] {
  return [
    { action: "goto", url: site("/login") },
    { action: "fill", selector: "#user", value: "alice", label: "Type the user name" },
    { action: "fill", selector: "#password", value: password, label: "Type the password" },
    { action: "click", selector: "#login", label: "Sign in" },
    { action: "wait_for", selector: "#welcome" },
  ];
}

liveTest(
  "a secret reaches the page only at the action, and the run becomes a skill that replays",
  async () => {
    const client = twin();
    const origin = new URL(site("/")).origin;
    const stored = await client.secrets.put("shop_password", "wonderland", { origins: [origin] });
    assert.deepEqual(
      [stored.name, stored.kind, stored.version, stored.origins],
      ["shop_password", "password", 1, [origin]],
    );
    assert.equal(JSON.stringify(stored).includes("wonderland"), false, "the value is write-only");
    const listed = await client.secrets.list();
    assert.ok(listed.some((secret) => secret.name === "shop_password"));
    assert.equal(JSON.stringify(listed).includes("wonderland"), false);

    const run = await client.agents.run({
      goal: "Sign in to the shop",
      url: site("/login"),
      steps: signIn("{{secrets.shop_password}}"),
    });
    assert.equal(run.status, "completed", run.error ?? "");
    assert.equal(run.planner, null);

    const preview = await client.skills.preview(run.id);
    assert.equal(preview.steps.length, 5);
    const version = await client.skills.compile(run.id, {
      slug: "shop-sign-in",
      name: "Sign in to the shop",
    });
    assert.equal(version.slug, "shop-sign-in");
    assert.equal(version.version, 1);
    assert.equal(version.sourceRun, run.id);
    assert.equal(JSON.stringify(version).includes("wonderland"), false, "no secret value in a skill");
    const password = version.steps.find((step) => step.label === "Type the password");
    assert.equal(password?.value, "{{secrets.shop_password}}");
    assert.ok(
      password?.locator && typeof password.locator === "object",
      "the recorded locator bundle, as stored",
    );

    const skills = await client.skills.list();
    assert.ok(skills.some((skill) => skill.slug === "shop-sign-in"));
    const skill = await client.skills.get("shop-sign-in");
    assert.equal(skill.version, 1);
    assert.equal(typeof skill.stats.runs, "number");

    const replay = await client.skills.run("shop-sign-in", {}, { timeout: 60 });
    assert.equal(replay.status, "completed", replay.error ?? "");
    assert.equal(replay.planner, "skill");
    assert.deepEqual(replay.skill, { slug: "shop-sign-in", version: 1 });
    assert.equal(replay.cost.modelCalls, 0);

    await client.skills.archive("shop-sign-in");
    assert.ok(!(await client.skills.list()).some((each) => each.slug === "shop-sign-in"));
    await client.secrets.delete("shop_password");
    assert.ok(!(await client.secrets.list()).some((secret) => secret.name === "shop_password"));
    await assert.rejects(client.secrets.delete("shop_password"), NotFoundError);
  },
);
