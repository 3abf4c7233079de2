/**
 * The objects the API answers with, camelCased: generated from the server's OpenAPI schema
 * (`schema.ts`, by openapi-typescript; a test fails when the two drift apart).
 */

import type { Camelize } from "./camel.js";
import type { components } from "./schema.js";

type Schemas = components["schemas"];

/** What every object this client returns carries besides the API's fields (not enumerable:
 * `JSON.stringify` and spreading leave it out). */
export interface Answered {
  /** The HTTP answer the object came in: its status and headers (e.g. `x-twin-status`). */
  readonly httpResponse: ResponseInfo;
}

export interface ResponseInfo {
  readonly status: number;
  readonly headers: Headers;
  readonly url: string;
}

export type RunStatus = Schemas["RunStatusEnum"];
export type StepStatus = Schemas["StepStatusEnum"];
export type Trigger = Schemas["TriggerEnum"];
export type GateKind = Schemas["GateKindEnum"];

/** Fields whose values are user data: kept exactly as given, never camelCased. */
type RunData = "outputs" | "params" | "arguments";

/** A run: its steps, the step it paused on (`pendingStep`), outputs, cost. */
export type Run = Camelize<Schemas["Run"], RunData> & {
  /** The answer's `X-Twin-Status` header: the run's status when the server answered. */
  readonly twinStatus: RunStatus | undefined;
};
export type Step = Run["steps"][number];
export type PendingStep = NonNullable<Run["pendingStep"]>;
export type Cost = Run["cost"];
export type RunEvent = Camelize<Schemas["RunEvent"], "data">;
export type Approval = Camelize<Schemas["Approval"]>;
export type ApprovalStatus = Schemas["ApprovalStatusEnum"];
export type Secret = Camelize<Schemas["SecretOut"]>;
export type SecretKind = Schemas["SecretKindEnum"];
export type WebhookEndpoint = Camelize<Schemas["Endpoint"]>;
/** A new webhook endpoint: `secret` (`whsec_…`) is shown this once. */
export type WebhookEndpointCreated = Camelize<Schemas["EndpointCreated"]>;
export type WebhookEvent = Schemas["EventsEnum"];
type SkillData = "steps" | "example";
/** A skill step program's step, with its recorded `locator` bundle, exactly as stored. */
export type SkillStep = Record<string, unknown>;
export type Skill = Omit<Camelize<Schemas["Skill"], SkillData>, "steps"> & { steps: SkillStep[] };
export type SkillVersion = Omit<Camelize<Schemas["Version"], SkillData>, "steps"> & { steps: SkillStep[] };
export type SkillPreview = Omit<Camelize<Schemas["Preview"], SkillData>, "steps"> & { steps: SkillStep[] };
export type SkillParam = Skill["params"][number];

/** One step of a step program, as `POST /api/runs` takes it (the contract's own field names). */
export type ProgramStep = NonNullable<Schemas["RunCreate"]["steps"]>[number];
/** A gate: the step waits for a person's approval, input or choice. */
export type Gate = NonNullable<ProgramStep["gate"]>;
export type Params = Record<string, string | number | boolean>;
