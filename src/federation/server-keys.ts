/**
 * Server key documents (Matrix spec, server-server API "Publishing Keys" and
 * "Querying Keys Through Another Server"; reference §4.4): the one this
 * server publishes at `GET /_matrix/key/v2/server` (the current verify key,
 * the old ones from `old_signing_keys`, how long the answer may be cached,
 * a self-signature by the current key), and the checks a document fetched
 * from another server must pass before its keys are trusted.
 */
import type { KeyObject } from "node:crypto";
import {
  ed25519PublicKeyFromBase64,
  type Signatures,
  signJson,
  verifyJsonSignature,
} from "./json-signing.js";
import type { SigningKeyProvider } from "./signing-key.js";

/** A key the server no longer signs with (Synapse's `old_signing_keys` entry). */
export interface OldVerifyKey {
  /** Unpadded base64 of the 32-byte public key. */
  readonly key: string;
  /** When the key stopped being used, in ms since the epoch. */
  readonly expired_ts: number;
}

/** The wire shape of a server key document. */
export interface ServerKeyDocument {
  readonly server_name: string;
  readonly verify_keys: Record<string, { key: string }>;
  readonly old_verify_keys: Record<string, OldVerifyKey>;
  readonly valid_until_ts: number;
  readonly signatures: Signatures;
}

export interface ServerKeysOptions {
  readonly serverName: string;
  readonly signingKey: SigningKeyProvider;
  /** Key id (`ed25519:<version>`) → old public key; valid for old event signatures only. */
  readonly oldKeys: Readonly<Record<string, OldVerifyKey>>;
  /** How long from now the document says it is valid (`key_refresh_interval`), in ms. */
  readonly validityMs: number;
  readonly now?: () => number;
}

/** Builds the signed key document; stateless, so every call reflects the current time. */
export class ServerKeys {
  readonly #options: ServerKeysOptions;
  readonly #now: () => number;

  constructor(options: ServerKeysOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The document, signed by the current key. An old key that has the
   * current key's id is left out: one id cannot be both current and old.
   */
  document(): ServerKeyDocument {
    const { serverName, oldKeys, validityMs } = this.#options;
    const key = this.#options.signingKey();
    const oldVerifyKeys: Record<string, OldVerifyKey> = {};
    for (const [keyId, old] of Object.entries(oldKeys)) {
      if (keyId !== key.keyId) oldVerifyKeys[keyId] = { key: old.key, expired_ts: old.expired_ts };
    }
    const unsigned = {
      server_name: serverName,
      verify_keys: { [key.keyId]: { key: key.publicKeyBase64 } },
      old_verify_keys: oldVerifyKeys,
      valid_until_ts: this.#now() + validityMs,
    };
    return signJson(unsigned, serverName, key.keyId, key.privateKey);
  }
}

/** A fetched key document that must not be trusted; the message says why. */
export class KeyDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyDocumentError";
  }
}

/** A remote server's verify key and until when it may be used. */
export interface TrustedKey {
  readonly publicKey: KeyObject;
  /** min(`valid_until_ts`, fetch time + 7 days), in ms (spec: consumers' cap). */
  readonly expiresAt: number;
}

const MAX_KEY_CACHE_MS = 7 * 24 * 3_600_000;

/**
 * The current verify keys of a key document fetched for `serverName`, or
 * `KeyDocumentError` unless: `server_name` is `serverName`, `valid_until_ts`
 * is after `now`, and it is self-signed by at least one of its
 * `verify_keys` with every self-signature by those keys valid (Synapse
 * `process_v2_response`). `old_verify_keys` are ignored: they are valid for
 * old events only, never for requests. Keys of other algorithms than
 * ed25519 are skipped.
 */
export function validateServerKeyDocument(
  body: unknown,
  serverName: string,
  now: number,
): Map<string, TrustedKey> {
  if (!isRecord(body)) throw new KeyDocumentError("the key document is not a JSON object");
  if (body.server_name !== serverName) {
    throw new KeyDocumentError(`the key document is for ${String(body.server_name)}`);
  }
  const validUntil = body.valid_until_ts;
  if (!Number.isSafeInteger(validUntil) || (validUntil as number) <= now) {
    throw new KeyDocumentError("the key document has expired (valid_until_ts)");
  }
  const publicKeys = new Map<string, KeyObject>();
  const verifyKeys = isRecord(body.verify_keys) ? body.verify_keys : {};
  for (const [keyId, entry] of Object.entries(verifyKeys)) {
    if (!keyId.startsWith("ed25519:") || !isRecord(entry) || typeof entry.key !== "string")
      continue;
    const publicKey = ed25519PublicKeyFromBase64(entry.key);
    if (publicKey) publicKeys.set(keyId, publicKey);
  }
  if (publicKeys.size === 0) throw new KeyDocumentError("the key document has no ed25519 key");
  if (!isSignedBy(body, serverName, publicKeys)) {
    throw new KeyDocumentError("the key document is not validly signed by its server");
  }
  const expiresAt = Math.min(validUntil as number, now + MAX_KEY_CACHE_MS);
  return new Map([...publicKeys].map(([keyId, publicKey]) => [keyId, { publicKey, expiresAt }]));
}

/**
 * True when `object` has at least one signature by `entity` with one of
 * `keys` and every signature by `entity` with one of `keys` verifies
 * (signatures by other key ids are ignored, as the spec says).
 */
export function isSignedBy(
  object: Record<string, unknown>,
  entity: string,
  keys: ReadonlyMap<string, KeyObject>,
): boolean {
  const signatures = isRecord(object.signatures) ? object.signatures[entity] : undefined;
  if (!isRecord(signatures)) return false;
  let verified = false;
  for (const keyId of Object.keys(signatures)) {
    const key = keys.get(keyId);
    if (key === undefined) continue;
    if (!verifyJsonSignature(object, entity, keyId, key)) return false;
    verified = true;
  }
  return verified;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
