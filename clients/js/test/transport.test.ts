/**
 * How calls are sent, against small servers of the test's own on 127.0.0.1 (not Twin: these
 * answer 503s, drop connections and hang on purpose): retries, Idempotency-Key, AbortSignal,
 * rate limits, pages that point elsewhere, and camelCase that never touches user data.
 */

import assert from "node:assert/strict";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { NetworkError, RateLimitError, ServerError, Twin, TwinError } from "@twin/client";

type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void;

async function serve(handler: Handler): Promise<{
  url: string;
  seen: { method: string; url: string; headers: IncomingMessage["headers"] }[];
  close: () => Promise<void>;
}> {
  const seen: { method: string; url: string; headers: IncomingMessage["headers"] }[] = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      seen.push({ method: request.method ?? "", url: request.url ?? "", headers: request.headers });
      handler(request, response, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, { "Content-Type": "application/json", ...headers }).end(JSON.stringify(body));
}

const RUN = {
  id: "6f1c6a0e-0000-4000-8000-000000000001",
  status: "completed",
  current_step: 2,
  step_count: 2,
  resumed_from: 1,
  steps: [
    {
      index: 1,
      action: "goto",
      status: "done",
      started_at: "2026-01-01T00:00:00Z",
      finished_at: "2026-01-01T00:00:01Z",
    },
  ],
  pending_step: null,
  outputs: { receipt_id: "R-1", nested_thing: { inner_key: 1 }, ["__proto__"]: { polluted: true } },
  params: { account_name: "Checking" },
  created_at: "2026-01-01T00:00:00Z",
};

function client(url: string, options: Record<string, unknown> = {}): Twin {
  return new Twin({ baseUrl: url, token: "twin_test", retryDelay: 0.01, ...options });
}

test("a GET answered 503 twice is tried again and answers; the answer is camelCased but for user data", async () => {
  let calls = 0;
  const server = await serve((_request, response) => {
    calls += 1;
    if (calls <= 2) return json(response, 503, { error: "unavailable" });
    json(response, 200, RUN, { "X-Twin-Status": "completed" });
  });
  try {
    const run = await client(server.url).runs.get(RUN.id);
    assert.equal(calls, 3);
    assert.equal(run.resumedFrom, 1);
    assert.equal(run.steps[0]?.startedAt, "2026-01-01T00:00:00Z");
    assert.equal(run.twinStatus, "completed");
    assert.deepEqual(Object.keys(run.outputs), ["receipt_id", "nested_thing", "__proto__"]);
    assert.deepEqual(run.outputs.nested_thing, { inner_key: 1 });
    assert.deepEqual(run.params, { account_name: "Checking" });
    assert.equal(({} as Record<string, unknown>).polluted, undefined, "no prototype was touched");
    assert.equal(server.seen[0]?.headers.authorization, "Bearer twin_test");
    assert.match(String(server.seen[0]?.headers["user-agent"]), /^twin-client-js\//);
  } finally {
    await server.close();
  }
});

test("a decision retried after a 502 carries the same Idempotency-Key each time", async () => {
  let calls = 0;
  const server = await serve((_request, response) => {
    calls += 1;
    if (calls === 1) return json(response, 502, { error: "bad_gateway" });
    json(response, 202, { ...RUN, status: "running" }, { "X-Twin-Status": "running" });
  });
  try {
    const run = await client(server.url).runs.approve(RUN.id, { input: "123456" });
    assert.equal(run.status, "running");
    const keys = server.seen.map((call) => call.headers["idempotency-key"]);
    assert.equal(keys.length, 2);
    assert.ok(keys[0] && keys[0] === keys[1], `same key: ${keys.join(", ")}`);
    assert.equal(server.seen[0]?.url, `/api/runs/${RUN.id}/approve`);

    await client(server.url).runs.approve(RUN.id, { idempotencyKey: "mine-1" });
    assert.equal(server.seen.at(-1)?.headers["idempotency-key"], "mine-1");
  } finally {
    await server.close();
  }
});

test("a call that is not idempotent is not retried", async () => {
  const server = await serve((_request, response) =>
    json(response, 503, { error: "unavailable", detail: "down" }),
  );
  try {
    await assert.rejects(client(server.url).webhooks.create("http://127.0.0.1:9/hook"), (error: unknown) => {
      assert.ok(error instanceof ServerError);
      assert.equal(error.status, 503);
      assert.equal(error.detail, "down");
      return true;
    });
    assert.equal(server.seen.length, 1);
  } finally {
    await server.close();
  }
});

test("a dropped connection is retried, then reported as a NetworkError", async () => {
  const server = await serve((request) => request.socket.destroy());
  try {
    await assert.rejects(client(server.url, { maxRetries: 2 }).runs.get(RUN.id), (error: unknown) => {
      assert.ok(error instanceof NetworkError);
      assert.equal(error.status, 0);
      assert.match(error.message, new RegExp(`GET /api/runs/${RUN.id}`));
      return true;
    });
    assert.equal(server.seen.length, 3);
  } finally {
    await server.close();
  }
});

test("an AbortSignal stops a long-poll at once, and a retry's wait", async () => {
  const server = await serve(() => undefined); // never answers
  try {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(new Error("the person left")), 200);
    await assert.rejects(
      client(server.url).runs.get(RUN.id, { wait: 30, signal: controller.signal }),
      /the person left/,
    );
    assert.ok(Date.now() - started < 5000);
    assert.match(server.seen[0]?.url ?? "", /\?wait=30$/);

    await assert.rejects(
      client(server.url).runs.get(RUN.id, { signal: AbortSignal.abort() }),
      (error: unknown) => {
        assert.equal((error as Error).name, "AbortError");
        return true;
      },
    );
  } finally {
    await server.close();
  }
  const down = await serve((_request, response) => json(response, 503, { error: "unavailable" }));
  try {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const slow = client(down.url, { retryDelay: 60 });
    const started = Date.now();
    await assert.rejects(
      slow.runs.get(RUN.id, { signal: controller.signal }),
      (error: unknown) => (error as Error).name === "AbortError",
    );
    assert.ok(Date.now() - started < 5000, "the backoff's wait is aborted too");
  } finally {
    await down.close();
  }
});

test("429 is a RateLimitError with retryAfter; a timeout is a NetworkError", async () => {
  const server = await serve((request, response) => {
    if (request.url?.includes("slow")) return; // never answers
    json(response, 429, { error: "throttled", detail: "slow down" }, { "Retry-After": "7" });
  });
  try {
    await assert.rejects(client(server.url).runs.get(RUN.id), (error: unknown) => {
      assert.ok(error instanceof RateLimitError);
      assert.equal(error.retryAfter, 7);
      return true;
    });
    await assert.rejects(
      client(server.url, { timeout: 0.3, maxRetries: 0 }).skills.get("slow"),
      (error: unknown) => {
        assert.ok(error instanceof NetworkError);
        assert.match(error.message, /no answer in 0.3 s/);
        return true;
      },
    );
  } finally {
    await server.close();
  }
});

test("a next page on another origin is refused: the token goes nowhere else", async () => {
  const elsewhere = await serve((_request, response) => json(response, 200, []));
  const server = await serve((_request, response) =>
    json(response, 200, [RUN], { Link: `<${elsewhere.url}/api/runs?before=x>; rel="next"` }),
  );
  try {
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const run of client(server.url).runs.list()) seen.push(run);
      })(),
      (error: unknown) => error instanceof TwinError && error.code === "foreign_url",
    );
    assert.equal(seen.length, 1);
    assert.equal(elsewhere.seen.length, 0);
  } finally {
    await server.close();
    await elsewhere.close();
  }
});

test("ids and names are sent as one path segment each; bad options are refused up front", async () => {
  const server = await serve((_request, response) => response.writeHead(204).end());
  try {
    await client(server.url).secrets.delete("a/../b?c");
    assert.equal(server.seen[0]?.url, "/api/secrets/a%2F..%2Fb%3Fc");
    await client(`${server.url}/twin/`).skills.archive("x");
    assert.equal(server.seen[1]?.url, "/twin/api/skills/x");
  } finally {
    await server.close();
  }
  assert.throws(() => new Twin({ baseUrl: "", token: "t" }), /baseUrl is required/);
  assert.throws(() => new Twin({ baseUrl: "http://127.0.0.1:1", token: "" }), /token is required/);
  assert.throws(() => new Twin({ baseUrl: "file:///etc", token: "t" }), /not http/);
});
