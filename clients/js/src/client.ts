/**
 * `new Twin({ baseUrl, token })`: the REST API as calls that read like the product.
 *
 * ```ts
 * const run = await twin.agents.run({ goal, url });
 * if (run.status === "awaiting_approval") {
 *   // surface run.pendingStep to a human, then:
 *   await twin.runs.approve(run.id, { input: otp });
 * }
 * ```
 */

import {
  type Call,
  type CallOptions,
  type IdempotentOptions,
  MAX_WAIT,
  type Query,
  Transport,
  type TwinOptions,
  answered,
  clampWait,
  newIdempotencyKey,
  nextLink,
  segment,
} from "./http.js";
import type {
  Answered,
  Approval,
  ApprovalStatus,
  Params,
  ProgramStep,
  ResponseInfo,
  Run,
  RunEvent,
  RunStatus,
  Secret,
  SecretKind,
  Skill,
  SkillPreview,
  SkillVersion,
  WebhookEndpoint,
  WebhookEndpointCreated,
  WebhookEvent,
} from "./types.js";

const RUN_DATA: ReadonlySet<string> = new Set(["outputs", "params", "arguments"]);
const EVENT_DATA: ReadonlySet<string> = new Set(["data"]);
const SKILL_DATA: ReadonlySet<string> = new Set(["steps", "example"]);
const NONE: ReadonlySet<string> = new Set();

/** The statuses a run does not leave by itself: it has ended, or it waits for a person. */
export const SETTLED: ReadonlySet<RunStatus> = new Set<RunStatus>([
  "awaiting_approval",
  "completed",
  "failed",
  "rejected",
  "cancelled",
  "expired",
]);

/** Whether the run has ended or waits for a person (not `queued` or `running`). */
export function isSettled(run: { status: RunStatus }): boolean {
  return SETTLED.has(run.status);
}

function toRun(data: unknown, info: ResponseInfo): Run & Answered {
  const run = answered<Run & Answered>(data, RUN_DATA, info);
  const header = info.headers.get("x-twin-status");
  // (a listing's answer carries no X-Twin-Status: its runs have none)
  Object.defineProperty(run, "twinStatus", { value: header ?? undefined, enumerable: false });
  return run;
}

function list<T>(
  data: unknown,
  info: ResponseInfo,
  read: (item: unknown, info: ResponseInfo) => T,
): T[] & Answered {
  const items = (Array.isArray(data) ? data : []).map((item) => read(item, info));
  Object.defineProperty(items, "httpResponse", { value: info, enumerable: false });
  return items as T[] & Answered;
}

function reader<T>(keep: ReadonlySet<string>) {
  return (data: unknown, info: ResponseInfo): T & Answered => answered<T & Answered>(data, keep, info);
}

const toEvent = reader<RunEvent>(EVENT_DATA);
const toApproval = reader<Approval>(NONE);
const toSkill = reader<Skill>(SKILL_DATA);
const toVersion = reader<SkillVersion>(SKILL_DATA);
const toPreview = reader<SkillPreview>(SKILL_DATA);
const toSecret = reader<Secret>(NONE);
const toEndpoint = reader<WebhookEndpoint>(NONE);
const toCreatedEndpoint = reader<WebhookEndpointCreated>(NONE);

function compact<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/**
 * Every item of a listing, fetched a page at a time as you iterate (`for await (const run of …)`).
 * The server's `Link: <…>; rel="next"` leads from one page to the next.
 */
export class Paginated<T> implements AsyncIterable<T> {
  readonly #twin: Twin;
  readonly #first: Call;
  readonly #read: (item: unknown, info: ResponseInfo) => T;

  constructor(twin: Twin, first: Call, read: (item: unknown, info: ResponseInfo) => T) {
    this.#twin = twin;
    this.#first = first;
    this.#read = read;
  }

  /** The pages, one array each (with its `httpResponse`). */
  async *pages(): AsyncGenerator<T[] & Answered, void, undefined> {
    let call: Call | undefined = this.#first;
    while (call) {
      const { data, info } = await this.#twin.transport.send(call);
      yield list(data, info, this.#read);
      const next = nextLink(info.headers);
      call = next ? { method: "GET", path: next, retry: true, signal: this.#first.signal } : undefined;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page;
  }

  /** The items in one array: all of them, or the first `max`. */
  async toArray({ max = Infinity }: { max?: number } = {}): Promise<T[]> {
    const items: T[] = [];
    if (max <= 0) return items;
    for await (const item of this) {
      items.push(item);
      if (items.length >= max) break;
    }
    return items;
  }
}

// -- what the calls take -------------------------------------------------------------------------------
/** A run: a step program (`steps`), or a goal and URL alone (the agent plans it, or a skill answers). */
export interface StartRun extends IdempotentOptions {
  goal?: string;
  url?: string;
  /** The step program (see the contract's "A step program"). */
  steps?: ProgramStep[];
  /** Values for `{{params.NAME}}`. */
  params?: Params;
  /** The agent: `"auto"` (a matching skill replays) or `"always"` (the model plans). */
  plan?: "auto" | "always";
  /** Record the session video (when the server records video). */
  recordVideo?: boolean;
  /** Run this skill (id or slug) with `params`, at `version` (the newest by default). */
  skill?: string;
  version?: number;
  /** Seconds (0–60) the server holds the answer until the run pauses or ends. */
  wait?: number;
}

export interface WaitOptions extends CallOptions {
  /** Seconds to wait in all (the long-poll is repeated, 60 s at a time). Default 300. Then the run as it is. */
  timeout?: number;
}

export interface AgentRun extends Omit<StartRun, "wait"> {
  /** Seconds to wait until the run pauses or ends. Default 300. Then the run as it is. */
  timeout?: number;
}

export interface Approve extends IdempotentOptions {
  /** The value an `input` gate asks for (checked against the gate's `pattern`). */
  input?: string;
  /** One of a `choice` gate's `options`. */
  choice?: string;
  /** A note kept with the decision in the audit trail. */
  note?: string;
}

export interface Reject extends IdempotentOptions {
  reason?: string;
}

export interface ListRuns extends CallOptions {
  status?: RunStatus;
  /** Runs a page (1–200). Default 50. */
  pageSize?: number;
}

export interface ListApprovals extends CallOptions {
  status?: ApprovalStatus;
  /** `newest` (default), `oldest`, or `urgent` (soonest expiry first). */
  order?: "newest" | "oldest" | "urgent";
  /** Approvals a page (1–500). Default 100. */
  pageSize?: number;
}

export interface Compile extends IdempotentOptions {
  slug?: string;
  name?: string;
  /** `{ param: "a literal the run used" }`: the literal becomes `{{params.param}}` wherever it was used. */
  params?: Record<string, unknown>;
  /** Whether a goal-only run may be answered by this skill (default: the server's). */
  answersGoals?: boolean;
}

export interface RunSkill extends IdempotentOptions {
  version?: number;
  /** Wait until the run pauses or ends (default true). */
  wait?: boolean;
  /** Seconds to wait in all. Default 300. */
  timeout?: number;
}

export interface PutSecret extends CallOptions {
  kind?: SecretKind;
  /** The origins (`https://shop.example`) whose pages may receive it; elsewhere a step pauses `blocked`. */
  origins?: string[];
}

export interface CreateWebhook extends CallOptions {
  /** The events to deliver (all by default). */
  events?: WebhookEvent[];
  description?: string;
}

// -- the client ----------------------------------------------------------------------------------------
export class Twin {
  /** How calls are sent (base URL, token, retries). */
  readonly transport: Transport;
  readonly runs: Runs;
  readonly agents: Agents;
  readonly approvals: Approvals;
  readonly skills: Skills;
  readonly secrets: Secrets;
  readonly webhooks: Webhooks;

  constructor(options: TwinOptions) {
    this.transport = new Transport(options);
    this.runs = new Runs(this);
    this.agents = new Agents(this);
    this.approvals = new Approvals(this);
    this.skills = new Skills(this);
    this.secrets = new Secrets(this);
    this.webhooks = new Webhooks(this);
  }

  /** Send a call and read its answer with `read`. */
  async send<T>(call: Call, read: (data: unknown, info: ResponseInfo) => T): Promise<T> {
    const { data, info } = await this.transport.send(call);
    return read(data, info);
  }
}

function startCall(body: StartRun): Call {
  const { signal, idempotencyKey, wait, recordVideo, ...rest } = body;
  const seconds = clampWait(wait);
  const query: Query = seconds ? { wait: seconds } : {};
  return {
    method: "POST",
    path: "/api/runs",
    query,
    body: compact({ ...rest, record_video: recordVideo }),
    retry: true,
    idempotencyKey: idempotencyKey ?? newIdempotencyKey(),
    wait: seconds,
    signal,
  };
}

export class Runs {
  readonly #twin: Twin;

  constructor(twin: Twin) {
    this.#twin = twin;
  }

  /** Start a run and answer at once (`queued`), or after up to `wait` seconds; `agents.run` waits until it settles. */
  start(body: StartRun): Promise<Run & Answered> {
    return this.#twin.send(startCall(body), toRun);
  }

  /** The run; with `wait` (0–60 s) the answer comes when it pauses or ends, or when `wait` runs out. */
  get(runId: string, { wait, signal }: { wait?: number } & CallOptions = {}): Promise<Run & Answered> {
    const seconds = clampWait(wait);
    return this.#twin.send(
      {
        method: "GET",
        path: `/api/runs/${segment(runId)}`,
        query: seconds ? { wait: seconds } : {},
        retry: true,
        wait: seconds,
        signal,
      },
      toRun,
    );
  }

  /** The tenant's runs, newest first, page after page: `for await (const run of twin.runs.list())`. */
  list({ status, pageSize = 50, signal }: ListRuns = {}): Paginated<Run & Answered> {
    return new Paginated(
      this.#twin,
      { method: "GET", path: "/api/runs", query: { status, limit: pageSize }, retry: true, signal },
      toRun,
    );
  }

  /** Until the run pauses for a person or ends (long-polls of up to 60 s), or `timeout` runs out: then as it is. */
  async wait(runId: string, { timeout = 300, signal }: WaitOptions = {}): Promise<Run & Answered> {
    const deadline = Date.now() + timeout * 1000;
    for (;;) {
      const left = (deadline - Date.now()) / 1000;
      const run = await this.get(runId, { wait: Math.max(0, Math.min(left, MAX_WAIT)), signal });
      if (isSettled(run) || left <= 0) return run;
    }
  }

  /** Approve the paused step, with the `input` or `choice` its gate asks for; the run resumes at that step. */
  approve(runId: string, { input, choice, note, ...options }: Approve = {}): Promise<Run & Answered> {
    return this.#act(runId, "approve", compact({ input, choice, note }), options);
  }

  /** Reject the paused step: it is never performed and the run ends `rejected`. */
  reject(runId: string, { reason, ...options }: Reject = {}): Promise<Run & Answered> {
    return this.#act(runId, "reject", compact({ reason }), options);
  }

  cancel(runId: string, options: IdempotentOptions = {}): Promise<Run & Answered> {
    return this.#act(runId, "cancel", {}, options);
  }

  /** A POST that decides about the run: keyed by `Idempotency-Key`, so retried safely. */
  #act(
    runId: string,
    verb: "approve" | "reject" | "cancel",
    body: object,
    { idempotencyKey, signal }: IdempotentOptions,
  ): Promise<Run & Answered> {
    return this.#twin.send(
      {
        method: "POST",
        path: `/api/runs/${segment(runId)}/${verb}`,
        body,
        retry: true,
        idempotencyKey: idempotencyKey ?? newIdempotencyKey(),
        signal,
      },
      toRun,
    );
  }

  /** The run's whole trail, oldest first (every page of its events). */
  events(
    runId: string,
    { pageSize = 100, signal }: { pageSize?: number } & CallOptions = {},
  ): Promise<RunEvent[]> {
    return new Paginated(
      this.#twin,
      {
        method: "GET",
        path: `/api/runs/${segment(runId)}/events`,
        query: { limit: pageSize },
        retry: true,
        signal,
      },
      toEvent,
    ).toArray();
  }
}

export class Agents {
  readonly #twin: Twin;

  constructor(twin: Twin) {
    this.#twin = twin;
  }

  /**
   * Start a run and wait until it is done or paused for a person (or `timeout`, default 300 s).
   *
   * With `steps`, Twin performs that program. Without, the agent does `goal` from `url`: a skill
   * of yours that answers the goal replays (`run.planner === "skill"`), else a language model
   * plans it a step at a time (`"model"`). A server with no model answers a `ValidationError`
   * (`planner_not_configured`) when no skill matches.
   */
  async run({ timeout = 300, ...body }: AgentRun): Promise<Run & Answered> {
    const run = await this.#twin.runs.start({ ...body, wait: Math.min(timeout, MAX_WAIT) });
    if (isSettled(run)) return run;
    return this.#twin.runs.wait(run.id, { timeout: Math.max(timeout - MAX_WAIT, 0), signal: body.signal });
  }
}

export class Approvals {
  readonly #twin: Twin;

  constructor(twin: Twin) {
    this.#twin = twin;
  }

  /** The tenant's pauses (`status: "pending"`: those waiting for a person), newest first unless `order`. */
  list({ status, order, pageSize = 100, signal }: ListApprovals = {}): Paginated<Approval & Answered> {
    return new Paginated(
      this.#twin,
      {
        method: "GET",
        path: "/api/approvals",
        query: { status, order, limit: pageSize },
        retry: true,
        signal,
      },
      toApproval,
    );
  }
}

export class Skills {
  readonly #twin: Twin;

  constructor(twin: Twin) {
    this.#twin = twin;
  }

  /** The tenant's skills, the most recently updated first (`archived: true`: those too). */
  list({ archived = false, signal }: { archived?: boolean } & CallOptions = {}): Promise<
    (Skill & Answered)[] & Answered
  > {
    return this.#twin.send(
      { method: "GET", path: "/api/skills", query: archived ? { archived: 1 } : {}, retry: true, signal },
      (data, info) => list(data, info, toSkill),
    );
  }

  /** A skill by id or slug, with its newest version inline. */
  get(idOrSlug: string, { signal }: CallOptions = {}): Promise<Skill & Answered> {
    return this.#twin.send(
      { method: "GET", path: `/api/skills/${segment(idOrSlug)}`, retry: true, signal },
      toSkill,
    );
  }

  /** Every version of the skill, the newest first. */
  versions(slug: string, { signal }: CallOptions = {}): Promise<(SkillVersion & Answered)[] & Answered> {
    return this.#twin.send(
      { method: "GET", path: `/api/skills/${segment(slug)}/versions`, retry: true, signal },
      (data, info) => list(data, info, toVersion),
    );
  }

  version(slug: string, number: number, { signal }: CallOptions = {}): Promise<SkillVersion & Answered> {
    if (!Number.isInteger(number) || number < 1)
      throw new TypeError("a skill version is a whole number from 1");
    return this.#twin.send(
      { method: "GET", path: `/api/skills/${segment(slug)}/versions/${number}`, retry: true, signal },
      toVersion,
    );
  }

  /** Compile a completed run into a new skill version (the same slug again: the next version). */
  compile(
    runId: string,
    { slug, name, params, answersGoals, idempotencyKey, signal }: Compile = {},
  ): Promise<SkillVersion & Answered> {
    return this.#twin.send(
      {
        method: "POST",
        path: `/api/runs/${segment(runId)}/compile`,
        body: compact({ slug, name, params, answers_goals: answersGoals }),
        retry: true,
        idempotencyKey: idempotencyKey ?? newIdempotencyKey(),
        signal,
      },
      toVersion,
    );
  }

  /** What `compile` would give, with the literals it suggests as parameters; stores nothing. */
  preview(
    runId: string,
    { params, signal }: { params?: Record<string, unknown> } & CallOptions = {},
  ): Promise<SkillPreview & Answered> {
    return this.#twin.send(
      {
        method: "GET",
        path: `/api/runs/${segment(runId)}/compile`,
        query: params ? { params: JSON.stringify(params) } : {},
        retry: true,
        signal,
      },
      toPreview,
    );
  }

  /** Run the skill (its newest version unless `version`) and wait until it is done or paused for a person. */
  async run(
    skill: string,
    params: Params = {},
    { version, wait = true, timeout = 300, idempotencyKey, signal }: RunSkill = {},
  ): Promise<Run & Answered> {
    const run = await this.#twin.runs.start({
      skill,
      params,
      version,
      wait: wait ? Math.min(timeout, MAX_WAIT) : 0,
      idempotencyKey,
      signal,
    });
    if (!wait || isSettled(run)) return run;
    return this.#twin.runs.wait(run.id, { timeout: Math.max(timeout - MAX_WAIT, 0), signal });
  }

  /** Archive the skill: no longer listed or run; its runs keep their link to it. */
  async archive(slug: string, { signal }: CallOptions = {}): Promise<void> {
    await this.#twin.transport.send({
      method: "DELETE",
      path: `/api/skills/${segment(slug)}`,
      retry: true,
      signal,
    });
  }
}

export class Secrets {
  readonly #twin: Twin;

  constructor(twin: Twin) {
    this.#twin = twin;
  }

  /** Store a secret (the same name again: a new version). The value is write-only: no answer contains it. */
  put(name: string, value: string, { kind, origins, signal }: PutSecret = {}): Promise<Secret & Answered> {
    // (not retried: the request carries the value, which the server keeps nowhere but the vault)
    return this.#twin.send(
      {
        method: "POST",
        path: "/api/secrets",
        body: compact({ name, value, kind, origins }),
        retry: false,
        signal,
      },
      toSecret,
    );
  }

  list({ signal }: CallOptions = {}): Promise<(Secret & Answered)[] & Answered> {
    return this.#twin.send({ method: "GET", path: "/api/secrets", retry: true, signal }, (data, info) =>
      list(data, info, toSecret),
    );
  }

  async delete(name: string, { signal }: CallOptions = {}): Promise<void> {
    await this.#twin.transport.send({
      method: "DELETE",
      path: `/api/secrets/${segment(name)}`,
      retry: true,
      signal,
    });
  }
}

export class Webhooks {
  readonly #twin: Twin;

  constructor(twin: Twin) {
    this.#twin = twin;
  }

  /** Deliver the events to `url`, signed; the answer's `secret` (`whsec_…`) is shown this once. */
  create(
    url: string,
    { events, description, signal }: CreateWebhook = {},
  ): Promise<WebhookEndpointCreated & Answered> {
    // (not retried: a second endpoint would be created)
    return this.#twin.send(
      {
        method: "POST",
        path: "/api/webhooks",
        body: compact({ url, events, description }),
        retry: false,
        signal,
      },
      toCreatedEndpoint,
    );
  }

  list({ signal }: CallOptions = {}): Promise<(WebhookEndpoint & Answered)[] & Answered> {
    return this.#twin.send({ method: "GET", path: "/api/webhooks", retry: true, signal }, (data, info) =>
      list(data, info, toEndpoint),
    );
  }

  async delete(id: string, { signal }: CallOptions = {}): Promise<void> {
    await this.#twin.transport.send({
      method: "DELETE",
      path: `/api/webhooks/${segment(id)}`,
      retry: true,
      signal,
    });
  }
}
