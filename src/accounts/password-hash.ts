/**
 * Password hashing with scrypt. The stored form records its parameters so
 * they can be raised later without breaking old hashes:
 * `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>`.
 *
 * The KDF itself runs wherever the injected `Kdf` runs it (in mxcd, the
 * worker pool of password-hash-pool.ts). Every verification costs exactly
 * one KDF run, whether the account exists, has no password or has a
 * malformed hash: those check against a dummy hash with the default
 * parameters, so a wrong password takes as long for an unknown user as for
 * a real one and login timing does not reveal which accounts exist.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";

const N = 16384;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;

/**
 * Bounds on parameters read back from the database: N a power of two up to
 * 2^20, r and p up to 64, at most 64 MiB of scrypt memory. Anything else is
 * treated as a malformed hash (a dummy check, then "no").
 */
const MAX_LOG2_N = 20;
const MAX_R_OR_P = 64;
const MAX_MEMORY = 64 * 1024 * 1024;

/** One scrypt derivation. */
export interface ScryptJob {
  readonly password: string;
  readonly salt: Buffer;
  readonly n: number;
  readonly r: number;
  readonly p: number;
  readonly keyLength: number;
}

/** Runs scrypt somewhere; may refuse with a `MatrixError` when busy. */
export interface Kdf {
  derive(job: ScryptJob): Promise<Buffer>;
}

/** Counts of completed KDF runs, for metrics and tests. */
export interface PasswordHashCounts {
  readonly hashes: number;
  readonly verifications: number;
}

/** Checked against when there is no real hash: default cost, never matches. */
const DUMMY = {
  n: N,
  r: R,
  p: P,
  salt: Buffer.alloc(16),
  expected: Buffer.alloc(KEY_LENGTH),
};

export class PasswordHasher {
  #hashes = 0;
  #verifications = 0;

  constructor(private readonly kdf: Kdf) {}

  get counts(): PasswordHashCounts {
    return { hashes: this.#hashes, verifications: this.#verifications };
  }

  /** Hashes a password for storage. */
  async hash(password: string): Promise<string> {
    const salt = randomBytes(16);
    const key = await this.kdf.derive({ password, salt, n: N, r: R, p: P, keyLength: KEY_LENGTH });
    this.#hashes++;
    return ["scrypt", N, R, P, salt.toString("base64"), key.toString("base64")].join("$");
  }

  /**
   * True when `password` matches `stored`. `null` (no such user, or no
   * password) and malformed hashes cost one dummy KDF run and give false.
   */
  async verify(password: string, stored: string | null): Promise<boolean> {
    const parsed = (stored !== null && parseStoredHash(stored)) || undefined;
    const target = parsed ?? DUMMY;
    const key = await this.kdf.derive({
      password,
      salt: target.salt,
      n: target.n,
      r: target.r,
      p: target.p,
      keyLength: target.expected.length,
    });
    this.#verifications++;
    return parsed !== undefined && key.length === parsed.expected.length
      ? timingSafeEqual(key, parsed.expected)
      : false;
  }
}

/** The parts of a stored hash, or undefined when malformed or out of bounds. */
function parseStoredHash(stored: string) {
  const [scheme, n, r, p, salt, hash, ...rest] = stored.split("$");
  if (scheme !== "scrypt" || !n || !r || !p || !salt || !hash || rest.length > 0) return undefined;
  const [nn, rr, pp] = [Number(n), Number(r), Number(p)];
  const powerOfTwo = Number.isInteger(Math.log2(nn)) && nn >= 2 && nn <= 2 ** MAX_LOG2_N;
  const small = (x: number) => Number.isInteger(x) && x >= 1 && x <= MAX_R_OR_P;
  if (!powerOfTwo || !small(rr) || !small(pp) || 128 * nn * rr > MAX_MEMORY) return undefined;
  const expected = Buffer.from(hash, "base64");
  if (expected.length < 16 || expected.length > 64) return undefined;
  return { n: nn, r: rr, p: pp, salt: Buffer.from(salt, "base64"), expected };
}
