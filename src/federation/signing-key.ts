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
import { type FileHandle, link, mkdir, open, rename, unlink, writeFile } from "node:fs/promises";
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

/**
 * A fresh random key. The default version is `a_` + 4 random letters or
 * digits, as Synapse makes; `mxcd signing-key generate` asks for
 * `mxcd_` + 8, so an extra key published beside a homeserver's `a_` key
 * cannot take its id.
 */
export function generateSigningKey(prefix = "a_", length = 4): SigningKey {
  let suffix = "";
  for (let i = 0; i < length; i++) suffix += ALNUM[randomInt(ALNUM.length)];
  return signingKeyFromSeed(`${prefix}${suffix}`, randomBytes(32));
}

/** A signing.key file holds a few short lines; anything bigger is not one (and is not read whole). */
export const MAX_SIGNING_KEY_FILE_BYTES = 64 * 1024;

/** One key of a signing.key file with the line it came from. */
export interface SigningKeyLine {
  readonly key: SigningKey;
  /** The line as written, without its line break (kept byte for byte by `combine`). */
  readonly text: string;
  /** 1-based line number in the file. */
  readonly line: number;
}

/**
 * The keys of a signing.key file's text, in file order, with their lines
 * (the first is the current one). Blank lines are skipped, CRLF and
 * surrounding spaces are accepted; any other line that is not
 * `ed25519 <version> <seed>`, a repeated key id, or an empty file throws
 * `SigningKeyFileError`. Messages never quote a seed.
 */
export function parseSigningKeyLines(text: string, path = "<text>"): SigningKeyLine[] {
  if (Buffer.byteLength(text) > MAX_SIGNING_KEY_FILE_BYTES) {
    throw new SigningKeyFileError(path, `larger than ${MAX_SIGNING_KEY_FILE_BYTES} bytes`);
  }
  const keys: SigningKeyLine[] = [];
  const seen = new Map<string, number>();
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    if (raw.trim() === "") continue;
    const fields = raw.trim().split(/\s+/);
    const line = index + 1;
    const where = `line ${line}`;
    if (fields.length !== 3) throw new SigningKeyFileError(path, `${where}: expected 3 fields`);
    const [algorithm, version, seedBase64] = fields as [string, string, string];
    if (algorithm !== "ed25519") {
      // Quote a short word ("rsa") but never what could be a seed in the wrong column.
      const named = /^[A-Za-z0-9_-]{1,16}$/.test(algorithm) ? ` ${algorithm}` : "";
      throw new SigningKeyFileError(path, `${where}: unsupported algorithm${named} (only ed25519)`);
    }
    if (!VERSION.test(version)) throw new SigningKeyFileError(path, `${where}: invalid version`);
    const seed = decodeBase64(seedBase64);
    if (seed?.length !== 32) {
      throw new SigningKeyFileError(path, `${where}: the key is not 32 bytes of base64`);
    }
    const key = signingKeyFromSeed(version, seed);
    const earlier = seen.get(key.keyId);
    if (earlier !== undefined) {
      throw new SigningKeyFileError(path, `${where}: key id ${key.keyId} repeats line ${earlier}`);
    }
    seen.set(key.keyId, line);
    keys.push({ key, text: raw.replace(/\r$/, ""), line });
  }
  if (keys.length === 0) throw new SigningKeyFileError(path, "no key in the file");
  return keys;
}

/**
 * The keys of a signing.key file's text, in file order: the first is the
 * one to sign with (Synapse signs with the first line and publishes them
 * all). Errors as `parseSigningKeyLines`.
 */
export function parseSigningKeyFile(text: string, path = "<text>"): SigningKey[] {
  return parseSigningKeyLines(text, path).map((entry) => entry.key);
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
 * With `create: false` a missing file throws `SigningKeyFileError` instead.
 * Only the first key is returned: the others are published (by Synapse)
 * but never used to sign.
 */
export async function loadOrCreateSigningKey(
  path: string,
  options: { readonly create?: boolean } = {},
): Promise<SigningKey> {
  const existing = await readKeyFile(path);
  if (existing !== undefined) return parseSigningKeyFile(existing, path)[0]!;
  if (options.create === false) {
    // A new key would be one no other server can find (e.g. the homeserver
    // publishes the keys in attached mode): say so instead of making one.
    throw new SigningKeyFileError(path, "does not exist (see `mxcd signing-key generate`)");
  }
  const key = generateSigningKey();
  await mkdir(dirname(path), { recursive: true });
  if (await createExclusively(path, formatSigningKeyFile([key]))) return key;
  // Another process created the file between our read and our write: use its key.
  return parseSigningKeyFile((await readKeyFile(path)) ?? "", path)[0]!;
}

/** Creates `path` holding `text` (mode 0600) unless it exists; false when it did. */
async function createExclusively(path: string, text: string): Promise<boolean> {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFlushed(temporary, text);
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

/** The file's text, or undefined when it does not exist; refuses a file above the size cap. */
export async function readKeyFile(path: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    // Read at most one byte past the cap, so a huge file (or /dev/zero) costs nothing.
    const buffer = Buffer.alloc(MAX_SIGNING_KEY_FILE_BYTES + 1);
    let size = 0;
    while (size < buffer.length) {
      const { bytesRead } = await handle.read(buffer, size, buffer.length - size, null);
      if (bytesRead === 0) break;
      size += bytesRead;
    }
    if (size > MAX_SIGNING_KEY_FILE_BYTES) {
      throw new SigningKeyFileError(path, `larger than ${MAX_SIGNING_KEY_FILE_BYTES} bytes`);
    }
    return buffer.subarray(0, size).toString("utf8");
  } finally {
    await handle.close();
  }
}

/**
 * The text of a signing.key file for a homeserver that publishes mxcd's key
 * beside its own (reference attached-mode.md §2): every line of
 * `homeserver` first, unchanged and in order (so the homeserver keeps
 * signing with its first line), then every line of `mxcd`.
 * `SigningKeyFileError` when either file is malformed, when an mxcd key is
 * already in the homeserver file (same public key) or takes the id of one
 * of its keys, or when the result would not read back as exactly those
 * keys in that order. `replacing`, the text of a file the result will
 * overwrite, must lose no key and keep its first key first.
 */
export function combineSigningKeyFiles(
  homeserver: { readonly path: string; readonly text: string },
  mxcd: { readonly path: string; readonly text: string },
  replacing?: { readonly path: string; readonly text: string },
): string {
  const ours = parseSigningKeyLines(homeserver.text, homeserver.path);
  const theirs = parseSigningKeyLines(mxcd.text, mxcd.path);
  for (const { key, line } of theirs) {
    const same = ours.find((entry) => entry.key.publicKeyBase64 === key.publicKeyBase64);
    if (same !== undefined) {
      throw new SigningKeyFileError(
        mxcd.path,
        `line ${line}: this key is already in ${homeserver.path} (line ${same.line}, ${same.key.keyId})`,
      );
    }
    const clash = ours.find((entry) => entry.key.keyId === key.keyId);
    if (clash !== undefined) {
      throw new SigningKeyFileError(
        mxcd.path,
        `line ${line}: key id ${key.keyId} is already used by ${homeserver.path} (line ${clash.line}); generate a new key with \`mxcd signing-key generate\``,
      );
    }
  }
  const text = [...ours, ...theirs].map((entry) => `${entry.text}\n`).join("");
  // Read the result back: it must be the homeserver's keys, in order, then ours.
  const expected = [...ours, ...theirs].map((entry) => entry.key);
  const back = parseSigningKeyFile(text, "the combined file");
  const same = (a: SigningKey, b: SigningKey) => a.keyId === b.keyId && a.seed.equals(b.seed);
  if (back.length !== expected.length || back.some((key, i) => !same(key, expected[i]!))) {
    throw new SigningKeyFileError(homeserver.path, "the combined file would not keep every line");
  }
  if (replacing !== undefined) {
    const old = parseSigningKeyFile(replacing.text, replacing.path);
    const lost = old.filter((key) => !back.some((kept) => same(kept, key)));
    if (lost.length > 0) {
      throw new SigningKeyFileError(
        replacing.path,
        `overwriting it would drop ${lost.map((key) => key.keyId).join(", ")}`,
      );
    }
    if (!same(old[0]!, back[0]!)) {
      throw new SigningKeyFileError(
        replacing.path,
        `overwriting it would change its first (signing) key ${old[0]!.keyId}`,
      );
    }
  }
  return text;
}

/**
 * Writes `text` to `path` with mode 0600, all or nothing: a temporary file
 * in the same folder, flushed, then renamed over `path` (`overwrite`) or
 * hard-linked to it, which fails if `path` exists. `SigningKeyFileError`
 * when `path` exists and `overwrite` is false. No temporary file is left.
 */
export async function writeKeyFileAtomically(
  path: string,
  text: string,
  options: { readonly overwrite: boolean },
): Promise<void> {
  if (!options.overwrite) {
    if (await createExclusively(path, text)) return;
    throw new SigningKeyFileError(path, "exists; it is never overwritten");
  }
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFlushed(temporary, text);
    await rename(temporary, path);
  } finally {
    await unlink(temporary).catch(() => {});
  }
}

async function writeFlushed(path: string, text: string): Promise<void> {
  const handle = await open(path, "wx", 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The key file of a running server: `load()` (called once at start-up)
 * reads or creates it; `current` hands the key to everything that signs.
 */
export class SigningKeyFile {
  #key: SigningKey | undefined;
  #loading: Promise<SigningKey> | undefined;

  constructor(
    readonly path: string,
    /** False: a missing file is an error, not a new key (attached mode). */
    readonly createIfMissing = true,
  ) {}

  /** Reads (or creates) the key file once; later calls share the result. */
  load(): Promise<SigningKey> {
    this.#loading ??= loadOrCreateSigningKey(this.path, { create: this.createIfMissing }).then(
      (key) => {
        this.#key = key;
        return key;
      },
    );
    return this.#loading;
  }

  /** The loaded key; throws before `load()` has finished (a wiring bug). */
  readonly current: SigningKeyProvider = () => {
    if (this.#key === undefined) throw new Error("the signing key is not loaded yet");
    return this.#key;
  };
}
