/**
 * Access tokens: 32 random bytes, handed out once and stored only as their
 * SHA-256, so a database leak does not leak working tokens.
 */
import * as crypto from "node:crypto";
import { createHash, randomBytes, randomInt } from "node:crypto";

/** A fresh token, `mxcd_<43 base64url chars>`. */
export function newAccessToken(): string {
  return `mxcd_${randomBytes(32).toString("base64url")}`;
}

/**
 * One-shot `crypto.hash` (Node ≥ 20.12) where there is one: unlike
 * `createHash`, it makes no Hash object, whose native handle the garbage
 * collector must then finalise; this runs on every authenticated request
 * (bench/README.md, "Fourth session: where the fast path's CPU goes").
 */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: "hex") => string })
  .hash;

/** The form a token is stored and looked up in. */
export function hashAccessToken(token: string): string {
  if (oneShot) return oneShot("sha256", token, "hex");
  return createHash("sha256").update(token).digest("hex");
}

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** A device id as Synapse makes them: ten random upper-case letters. */
export function newDeviceId(): string {
  let id = "";
  for (let i = 0; i < 10; i++) id += LETTERS[randomInt(LETTERS.length)];
  return id;
}
