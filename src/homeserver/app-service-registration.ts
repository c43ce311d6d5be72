/**
 * The application-service registration through which the homeserver pushes
 * every room event to mxcd in the attached shape (attached-mode.md §3.2):
 * a `rooms` namespace matching every room id, no user or alias namespaces
 * (so no user-query traffic and no `M_EXCLUSIVE` effects), random tokens.
 *
 * The file is written once by `mxcd appservice generate-registration`; the
 * admin lists it in Synapse's `app_service_config_files` (Conduit-family
 * servers take it through their admin room) and mxcd reads `hs_token` and
 * `as_token` back from the same file, so the two sides cannot drift.
 */
import { randomBytes } from "node:crypto";
import { parse, stringify } from "yaml";

export interface AppServiceRegistration {
  readonly id: string;
  /** Where the homeserver sends transactions: mxcd's internal address; null disables pushes. */
  readonly url: string | null;
  readonly as_token: string;
  readonly hs_token: string;
  readonly sender_localpart: string;
  readonly rate_limited: boolean;
  readonly namespaces: {
    readonly users: readonly Namespace[];
    readonly aliases: readonly Namespace[];
    readonly rooms: readonly Namespace[];
  };
  readonly receive_ephemeral: boolean;
}

interface Namespace {
  readonly regex: string;
  readonly exclusive: boolean;
}

/** Length in bytes of the random tokens (64 hex digits). */
const TOKEN_BYTES = 32;
/** Shortest token accepted when reading a registration written by hand. */
const MIN_TOKEN_LENGTH = 32;

/** A fresh registration with random, distinct tokens. */
export function generateRegistration(options: {
  url: string | null;
  id?: string;
  senderLocalpart?: string;
}): AppServiceRegistration {
  return {
    id: options.id ?? "mxcd",
    url: options.url,
    as_token: randomBytes(TOKEN_BYTES).toString("hex"),
    hs_token: randomBytes(TOKEN_BYTES).toString("hex"),
    sender_localpart: options.senderLocalpart ?? "_mxcd",
    rate_limited: false,
    namespaces: { users: [], aliases: [], rooms: [{ regex: "!.*", exclusive: false }] },
    receive_ephemeral: false,
  };
}

/** The registration as YAML, with a header saying what it is for. */
export function registrationYaml(registration: AppServiceRegistration): string {
  return (
    "# mxcd's application-service registration (docs/attached.md).\n" +
    "# Add this file to the homeserver (Synapse: app_service_config_files) and\n" +
    "# point mxcd's app_service.registration at it. Keep it secret: the tokens\n" +
    "# authenticate the homeserver to mxcd and mxcd to the homeserver.\n" +
    stringify(registration)
  );
}

/**
 * Reads a registration file's text with Synapse's checks: string `id`,
 * `as_token`, `hs_token` and `sender_localpart`, a string-or-null `url`;
 * plus mxcd's own: the tokens are long and distinct. Throws an Error naming
 * the key otherwise.
 */
export function parseRegistration(text: string): AppServiceRegistration {
  const value: unknown = parse(text);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("registration: expected a YAML mapping");
  }
  const raw = value as Record<string, unknown>;
  for (const key of ["id", "as_token", "hs_token", "sender_localpart"] as const) {
    if (typeof raw[key] !== "string" || raw[key] === "") {
      throw new Error(`registration: ${key} must be a non-empty string`);
    }
  }
  if (raw.url !== null && typeof raw.url !== "string") {
    throw new Error("registration: url must be a string or null");
  }
  for (const key of ["as_token", "hs_token"] as const) {
    if ((raw[key] as string).length < MIN_TOKEN_LENGTH) {
      throw new Error(`registration: ${key} must be at least ${MIN_TOKEN_LENGTH} characters`);
    }
  }
  if (raw.as_token === raw.hs_token) {
    throw new Error("registration: as_token and hs_token must differ");
  }
  return raw as unknown as AppServiceRegistration;
}
