/**
 * `mxcd signing-key generate` and `mxcd signing-key combine` (docs/attached.md,
 * "Federation keys"). Both write with mode 0600, all or nothing, and never
 * overwrite a file unless told to with --force; a refusal writes nothing.
 */
import { realpath } from "node:fs/promises";
import {
  combineSigningKeyFiles,
  formatSigningKeyFile,
  generateSigningKey,
  readKeyFile,
  SigningKeyFileError,
  writeKeyFileAtomically,
} from "../federation/signing-key.js";

/** `mxcd signing-key generate -o FILE`: a new key whose id (`mxcd_…`) no homeserver makes. */
export async function generateSigningKeyCommand(options: { output: string }): Promise<void> {
  const key = generateSigningKey("mxcd_", 8);
  await writeKeyFileAtomically(options.output, formatSigningKeyFile([key]), { overwrite: false });
  console.error(`wrote ${options.output}: key ${key.keyId}, public key ${key.publicKeyBase64}`);
}

/**
 * `mxcd signing-key combine --homeserver-key HS --mxcd-key MXCD -o OUT [--force]`:
 * OUT = HS's lines, unchanged and in order, then MXCD's.
 */
export async function combineSigningKeysCommand(options: {
  homeserverKey: string;
  mxcdKey: string;
  output: string;
  force?: boolean;
}): Promise<void> {
  const homeserver = { path: options.homeserverKey, text: await mustRead(options.homeserverKey) };
  const mxcd = { path: options.mxcdKey, text: await mustRead(options.mxcdKey) };
  if ((await sameFile(options.mxcdKey, options.output)) === true) {
    throw new SigningKeyFileError(options.output, "is the mxcd key file; write somewhere else");
  }
  const existing = await readKeyFile(options.output);
  if (existing !== undefined && options.force !== true) {
    throw new SigningKeyFileError(options.output, "exists; it is never overwritten (use --force)");
  }
  const replacing = existing === undefined ? undefined : { path: options.output, text: existing };
  const text = combineSigningKeyFiles(homeserver, mxcd, replacing);
  await writeKeyFileAtomically(options.output, text, { overwrite: existing !== undefined });
  console.error(
    `wrote ${options.output}: the homeserver's keys first, then mxcd's. Point the homeserver's ` +
      "signing_key_path at it and restart it; keep mxcd's signing_key_path on the mxcd key file.",
  );
}

async function mustRead(path: string): Promise<string> {
  const text = await readKeyFile(path);
  if (text === undefined) throw new SigningKeyFileError(path, "does not exist");
  return text;
}

/** True when both paths name one existing file; undefined when either is missing. */
async function sameFile(a: string, b: string): Promise<boolean | undefined> {
  try {
    return (await realpath(a)) === (await realpath(b));
  } catch {
    return undefined;
  }
}
