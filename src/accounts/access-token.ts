/**
 * Access tokens: 32 random bytes, handed out once and stored only as their
 * SHA-256, so a database leak does not leak working tokens.
 */
import { createHash, randomBytes, randomInt } from "node:crypto";

/** A fresh token, `mxcd_<43 base64url chars>`. */
export function newAccessToken(): string {
  return `mxcd_${randomBytes(32).toString("base64url")}`;
}

/** The form a token is stored and looked up in. */
export function hashAccessToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** A device id as Synapse makes them: ten random upper-case letters. */
export function newDeviceId(): string {
  let id = "";
  for (let i = 0; i < 10; i++) id += LETTERS[randomInt(LETTERS.length)];
  return id;
}
