/**
 * The homeserver's side of federation keys, for attached-mode tests: what
 * Synapse does with its `signing.key` file, written from the Matrix spec
 * (server-server API "Publishing Keys", "Request Authentication";
 * appendices "Canonical JSON", "Signing JSON") and the reference
 * (attached-mode.md §2) — deliberately not from mxcd's federation code, so
 * a bug there cannot hide behind the same bug here.
 *
 * - `readSynapseKeyFile`: `ed25519 <version> <base64 seed>` per line.
 * - `HomeserverKeys`: the key document of `GET /_matrix/key/v2/server`,
 *   publishing every key of the file under `verify_keys` and signed by every
 *   one of them (Synapse's `local_key_resource.py`). The file is read when
 *   the object is made, as Synapse reads it at start: to "restart Synapse",
 *   make a new one.
 * - `xMatrixHeader`: signs a request as a server would (to forge ones with a
 *   wrong destination).
 */
import {
  createPrivateKey,
  createPublicKey,
  sign as ed25519Sign,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { readFileSync } from "node:fs";

/** One line of a Synapse `signing.key` file. */
export interface HomeserverKey {
  /** `ed25519:<version>`. */
  readonly keyId: string;
  readonly privateKey: KeyObject;
  /** Unpadded base64 of the 32-byte public key. */
  readonly publicKey: string;
}

// RFC 8410: the PKCS#8 DER of an ed25519 key is this prefix followed by the 32-byte seed.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

const unpadded = (bytes: Buffer) => bytes.toString("base64").replace(/=+$/, "");

function keyOf(version: string, seed: Buffer): HomeserverKey {
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  // The SPKI DER of an ed25519 public key ends with its 32 raw bytes.
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return { keyId: `ed25519:${version}`, privateKey, publicKey: unpadded(spki.subarray(-32)) };
}

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** A new key line as Synapse's `generate_signing_key` writes it (`a_` + 4 letters or digits). */
export function newSynapseKeyLine(): string {
  const version = `a_${[...randomBytes(4)].map((b) => LETTERS[b % LETTERS.length]).join("")}`;
  return `ed25519 ${version} ${unpadded(randomBytes(32))}\n`;
}

/** The keys of a Synapse `signing.key` file, in file order (the first one signs Synapse's traffic). */
export function readSynapseKeyFile(path: string): HomeserverKey[] {
  const keys: HomeserverKey[] = [];
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const [algorithm, version, seed] = line.trim().split(/\s+/);
    if (algorithm !== "ed25519" || !version || !seed) throw new Error(`bad key line in ${path}`);
    keys.push(keyOf(version, Buffer.from(seed, "base64")));
  }
  return keys;
}

/**
 * Canonical JSON (spec appendix): object keys sorted by code point, no
 * insignificant white space. Enough for the ASCII-only objects signed here.
 */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const object = value as Record<string, unknown>;
    const members = Object.keys(object)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The unpadded base64 ed25519 signature of an object without its `signatures` and `unsigned`. */
function signatureOf(object: Record<string, unknown>, key: HomeserverKey): string {
  const { signatures: _signatures, unsigned: _unsigned, ...rest } = object;
  return unpadded(ed25519Sign(null, Buffer.from(canonicalJson(rest)), key.privateKey));
}

/** What a homeserver publishes at `/_matrix/key/v2/server`, from the key file it started with. */
export class HomeserverKeys {
  readonly keys: readonly HomeserverKey[];
  /** How many key documents were handed out. */
  served = 0;

  constructor(
    readonly serverName: string,
    keyFilePath: string,
    private readonly validityMs = 24 * 3_600_000,
  ) {
    this.keys = readSynapseKeyFile(keyFilePath);
  }

  /** The key document: every key under `verify_keys`, signed by each of them. */
  document(now = Date.now()): Record<string, unknown> {
    this.served += 1;
    const verifyKeys: Record<string, { key: string }> = {};
    for (const key of this.keys) verifyKeys[key.keyId] = { key: key.publicKey };
    const document = {
      server_name: this.serverName,
      verify_keys: verifyKeys,
      old_verify_keys: {},
      valid_until_ts: now + this.validityMs,
    };
    const signatures: Record<string, string> = {};
    for (const key of this.keys) signatures[key.keyId] = signatureOf(document, key);
    return { ...document, signatures: { [this.serverName]: signatures } };
  }
}

/** The `Authorization: X-Matrix ...` value of a GET signed by `origin` with `key` (spec v1.3+). */
export function xMatrixHeader(request: {
  uri: string;
  origin: string;
  destination: string;
  key: HomeserverKey;
}): string {
  const { uri, origin, destination, key } = request;
  const sig = signatureOf({ method: "GET", uri, origin, destination }, key);
  return `X-Matrix origin="${origin}",destination="${destination}",key="${key.keyId}",sig="${sig}"`;
}

/** The parameters of an X-Matrix header, loosely parsed (for counting who sent what). */
export function xMatrixParams(header: string | undefined): Record<string, string> {
  const params: Record<string, string> = {};
  if (!header?.startsWith("X-Matrix ")) return params;
  for (const match of header.slice(9).matchAll(/(\w+)="?([^",]*)"?/g)) {
    params[match[1]!] = match[2]!;
  }
  return params;
}
