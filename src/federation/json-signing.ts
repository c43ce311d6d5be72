/**
 * Signing JSON objects (Matrix spec, appendices "Signing JSON"; reference
 * §4.3): ed25519 over the canonical JSON of the object without its
 * `signatures` and `unsigned` members, the signature written as unpadded
 * base64 under `signatures[entity][keyId]`. Also the ed25519 and base64
 * helpers every other federation module uses, so Node's key formats stay in
 * this one file.
 */
import {
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from "node:crypto";
import { canonicalJson } from "./canonical-json.js";

/** `{entity: {keyId: signature}}`, the shape of a signed object's `signatures`. */
export type Signatures = Record<string, Record<string, string>>;

/** Unpadded standard base64, the encoding of every key and signature in Matrix. */
export function encodeUnpaddedBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replace(/=+$/, "");
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64_URL = /^[A-Za-z0-9\-_]*={0,2}$/;

/**
 * Bytes of padded or unpadded base64 (standard or URL-safe alphabet, not
 * mixed, as Synapse's decoder accepts); undefined when the text is not base64.
 */
export function decodeBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text) && !BASE64_URL.test(text)) return undefined;
  const unpadded = text.replace(/=+$/, "");
  // A length of 4n+1 characters cannot come from any byte string.
  if (unpadded.length % 4 === 1) return undefined;
  if (text.length !== unpadded.length && text.length % 4 !== 0) return undefined;
  return Buffer.from(unpadded, "base64");
}

// PKCS#8 DER of an ed25519 private key is this fixed prefix + the 32-byte seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** The ed25519 private key of a 32-byte seed (the form Synapse's signing.key stores). */
export function ed25519PrivateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new Error(`an ed25519 seed is 32 bytes, not ${seed.length}`);
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}

/** The ed25519 public key of 32 raw bytes given in base64; undefined when malformed. */
export function ed25519PublicKeyFromBase64(text: string): KeyObject | undefined {
  const bytes = decodeBase64(text);
  if (bytes?.length !== 32) return undefined;
  return createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: bytes.toString("base64url") },
    format: "jwk",
  });
}

/** Unpadded base64 of the 32 raw bytes of an ed25519 public (or private) key. */
export function ed25519PublicKeyToBase64(key: KeyObject): string {
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  const jwk = publicKey.export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.x !== "string") throw new Error("not an ed25519 key");
  return encodeUnpaddedBase64(Buffer.from(jwk.x, "base64url"));
}

/** The bytes that are signed: canonical JSON without `signatures` and `unsigned`. */
function signedBytes(object: Record<string, unknown>): Buffer {
  const { signatures: _signatures, unsigned: _unsigned, ...rest } = object;
  return Buffer.from(canonicalJson(rest), "utf8");
}

/**
 * A copy of `object` signed by `entity` with `keyId` (e.g. `ed25519:a_Abcd`):
 * existing signatures are kept, ours is added or replaced, `unsigned` is
 * left as it was. Throws `CanonicalJsonError` when the object has no
 * canonical form (a float, for instance).
 */
export function signJson<T extends Record<string, unknown>>(
  object: T,
  entity: string,
  keyId: string,
  privateKey: KeyObject,
): Omit<T, "signatures"> & { signatures: Signatures } {
  const signature = cryptoSign(null, signedBytes(object), privateKey);
  const existing = (object.signatures ?? {}) as Signatures;
  const signatures: Signatures = {
    ...existing,
    [entity]: { ...existing[entity], [keyId]: encodeUnpaddedBase64(signature) },
  };
  return { ...object, signatures };
}

/**
 * True when `object` carries a signature by `entity` with `keyId` that
 * verifies with `publicKey`. Anything malformed (no such signature, not
 * base64, an object with no canonical form) is simply false: the caller
 * decides what an unverified object means.
 */
export function verifyJsonSignature(
  object: unknown,
  entity: string,
  keyId: string,
  publicKey: KeyObject,
): boolean {
  if (typeof object !== "object" || object === null || Array.isArray(object)) return false;
  const record = object as Record<string, unknown>;
  const signature = signatureOf(record.signatures, entity, keyId);
  const bytes = signature === undefined ? undefined : decodeBase64(signature);
  if (bytes === undefined || bytes.length !== 64) return false;
  try {
    return cryptoVerify(null, signedBytes(record), publicKey, bytes);
  } catch {
    return false;
  }
}

/** The signature string at `signatures[entity][keyId]`, if the shapes are right. */
function signatureOf(signatures: unknown, entity: string, keyId: string): string | undefined {
  const byEntity = ownMember(signatures, entity);
  const value = ownMember(byEntity, keyId);
  return typeof value === "string" ? value : undefined;
}

/** `container[name]` when `container` is an object that has it as its own member. */
function ownMember(container: unknown, name: string): unknown {
  if (typeof container !== "object" || container === null) return undefined;
  return Object.hasOwn(container, name) ? (container as Record<string, unknown>)[name] : undefined;
}
