/**
 * The API speaks snake_case (`pending_step`, `expires_at`); this client speaks camelCase
 * (`pendingStep`, `expiresAt`) — for the API's own field names only. What a user, a page or a
 * model put in (a run's `outputs` and `params`, an event's `data`, a planned call's
 * `arguments`, a skill's step program) keeps its keys exactly as given.
 */

/** `"pending_step"` → `"pendingStep"`, as a type. */
export type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

/** An API object with camelCase field names, recursively, except under the `Keep` fields. */
export type Camelize<T, Keep extends string = never> = T extends readonly (infer Item)[]
  ? Camelize<Item, Keep>[]
  : T extends object
    ? {
        -readonly [K in keyof T as K extends string ? CamelCase<K> : K]: K extends Keep
          ? T[K]
          : Camelize<T[K], Keep>;
      }
    : T;

export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** The runtime half of `Camelize`: a fresh object; the `keep` fields' values are copied as they are. */
export function camelize(value: unknown, keep: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((item) => camelize(item, keep));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    // (defineProperty, not `=`: a key named "__proto__" stays a plain field)
    Object.defineProperty(out, camelCase(key), {
      value: keep.has(key) ? item : camelize(item, keep),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
