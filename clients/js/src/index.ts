export {
  Agents,
  Approvals,
  type AgentRun,
  type Approve,
  type Compile,
  type CreateWebhook,
  isSettled,
  type ListApprovals,
  type ListRuns,
  Paginated,
  type PutSecret,
  type Reject,
  type RunSkill,
  Runs,
  Secrets,
  SETTLED,
  Skills,
  type StartRun,
  Twin,
  type WaitOptions,
  Webhooks,
} from "./client.js";
export {
  AlreadyApprovedError,
  AuthError,
  ConflictError,
  ForbiddenError,
  NetworkError,
  NotFoundError,
  type Problem,
  RateLimitError,
  ServerError,
  TwinError,
  ValidationError,
} from "./errors.js";
export { type CallOptions, type IdempotentOptions, MAX_WAIT, type TwinOptions, VERSION } from "./http.js";
export type * from "./types.js";
export {
  type HeadersLike,
  TOLERANCE,
  type VerifyOptions,
  verifyWebhook,
  WebhookVerificationError,
} from "./webhooks.js";
export type { CamelCase, Camelize } from "./camel.js";
export type { components, paths } from "./schema.js";
export { Twin as default } from "./client.js";
