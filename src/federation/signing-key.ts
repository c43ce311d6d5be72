/**
 * The server's ed25519 signing key, kept in Synapse's `signing.key` format so
 * a Synapse server's key file can be used as it is (and the other way round):
 * one line per key, `ed25519 <version> <unpadded base64 32-byte seed>`; the
 * first line is the key in use (signedjson `read_signing_keys`).
 *
 * Design note: several processes (a scaled-out deployment, parallel tests)
 * may start at once on a missing file. The new file is written whole under a
 * temporary name and then hard-linked to its real name, which fails if
 * another process got there first; the loser reads the winner's key. So no
 * process ever reads a half-written file or signs with a key that is not
 * the one on disk.
 */
import { type KeyObject, randomBytes, randomInt } from "node:crypto";
import { link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import {
  decodeBase64,
  ed25519PrivateKeyFromSeed,
  ed25519PublicKeyToBase64,
  encodeUnpaddedBase64,
} from "./json-signing.js";

/** A signing key ready to use. */
export interface SigningKey {
  /** `ed25519:<version>`, as it appears in `verify_keys` and X-Matrix headers. */
  readonly keyId: string;
  /** The 32-byte seed (what the file stores). */
  readonly seed: Buffer;
  readonly privateKey: KeyObject;
  /** Unpadded base64 of the 32-byte public key, as published in `verify_keys`. */
  readonly publicKeyBase64: string;
}

/** Hands out the current signing key; throws if it is not loaded yet. */
export type SigningKeyProvider = () => SigningKey;

/** A key file that cannot be read as Synapse's signing.key format. */
export class SigningKeyFileError extends Error {
  constructor(path: string, problem: string) {
    super(`signing key file ${path}: ${problem}`);
    this.name = "SigningKeyFileError";
  }
}

/** Key versions: the spec's key id grammar after the `ed25519:` (Matrix spec, "Key IDs"). */
const VERSION = /^[A-Za-z0-9_]+$/;
const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** The key of a version and a 32-byte seed. */
export function signingKeyFromSeed(version: string, seed: Uint8Array): SigningKey {
  if (!VERSION.test(version)) throw new Error(`invalid key version ${JSON.stringify(version)}`);
  const privateKey = ed25519PrivateKeyFromSeed(seed);
  return {
    keyId: `ed25519:${version}`,
    seed: Buffer.from(seed),
    privateKey,
    publicKeyBase64: ed25519PublicKeyToBase64(privateKey),
  };
}

/** A fresh random key whose version is `a_` + 4 random letters or digits, as Synapse makes. */
export function generateSigningKey(): SigningKey {
  let suffix = "";
  for (let i = 0; i < 4; i++) suffix += ALNUM[randomInt(ALNUM.length)];
  return signingKeyFromSeed(`a_${suffix}`, randomBytes(32));
}

/**
 * The keys of a signing.key file's text, in file order (the first is the
 * current one). Blank lines are skipped; any other line that is not
 * `ed25519 <version> <seed>` throws `SigningKeyFileError`.
 */
export function parseSigningKeyFile(text: string, path = "<text>"): SigningKey[] {
  const keys: SigningKey[] = [];
  for (const [index, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === "") continue;
    const fields = line.trim().split(/\s+/);
    const where = `line ${index + 1}`;
    if (fields.length !== 3) throw new SigningKeyFileError(path, `${where}: expected 3 fields`);
    const [algorithm, version, seedBase64] = fields as [string, string, string];
    if (algorithm !== "ed25519") {
      throw new SigningKeyFileError(path, `${where}: unsupported algorithm ${algorithm}`);
    }
    if (!VERSION.test(version)) throw new SigningKeyFileError(path, `${where}: invalid version`);
    const seed = decodeBase64(seedBase64);
    if (seed?.length !== 32) {
      throw new SigningKeyFileError(path, `${where}: the key is not 32 bytes of base64`);
    }
    keys.push(signingKeyFromSeed(version, seed));
  }
  if (keys.length === 0) throw new SigningKeyFileError(path, "no key in the file");
  return keys;
}

/** The signing.key text of keys (signedjson `write_signing_keys`). */
export function formatSigningKeyFile(keys: readonly SigningKey[]): string {
  return keys
    .map(
      (key) => `ed25519 ${key.keyId.slice("ed25519:".length)} ${encodeUnpaddedBase64(key.seed)}\n`,
    )
    .join("");
}

/**
 * The current key of the file at `path`. A missing file is created (with
 * its folder) holding a new key, readable by its owner only (mode 0600).
 * A file that exists but cannot be parsed throws `SigningKeyFileError`:
 * it is never overwritten, since that would change the server's identity.
 */
export async function loadOrCreateSigningKey(path: string): Promise<SigningKey> {
  const existing = await readKeyFile(path);
  if (existing !== undefined) return parseSigningKeyFile(existing, path)[0]!;
  const key = generateSigningKey();
  await mkdir(dirname(path), { recursive: true });
  if (await createExclusively(path, formatSigningKeyFile([key]))) return key;
  // Another process created the file between our read and our write: use its key.
  return parseSigningKeyFile((await readKeyFile(path)) ?? "", path)[0]!;
}

/** Creates `path` holding `text` (mode 0600) unless it exists; false when it did. */
async function createExclusively(path: string, text: string): Promise<boolean> {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(temporary, text, { mode: 0o600, flag: "wx" });
  try {
    await link(temporary, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS") throw error;
    // No hard links on this file system: an exclusive create has a tiny
    // window in which another process could read a partial file.
    return writeFile(path, text, { mode: 0o600, flag: "wx" }).then(
      () => true,
      (e: NodeJS.ErrnoException) => (e.code === "EEXIST" ? false : Promise.reject(e)),
    );
  } finally {
    await unlink(temporary).catch(() => {});
  }
}

async function readKeyFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * The key file of a running server: `load()` (called once at start-up)
 * reads or creates it; `current` hands the key to everything that signs.
 */
export class SigningKeyFile {
  #key: SigningKey | undefined;
  #loading: Promise<SigningKey> | undefined;

  constructor(readonly path: string) {}

  /** Reads (or creates) the key file once; later calls share the result. */
  load(): Promise<SigningKey> {
    this.#loading ??= loadOrCreateSigningKey(this.path).then((key) => {
      this.#key = key;
      return key;
    });
    return this.#loading;
  }

  /** The loaded key; throws before `load()` has finished (a wiring bug). */
  readonly current: SigningKeyProvider = () => {
    if (this.#key === undefined) throw new Error("the signing key is not loaded yet");
    return this.#key;
  };
}
