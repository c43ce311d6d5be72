import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  combineSigningKeysCommand,
  generateSigningKeyCommand,
} from "../../src/cli/signing-key-command.js";
import {
  formatSigningKeyFile,
  generateSigningKey,
  parseSigningKeyFile,
  SigningKeyFileError,
} from "../../src/federation/signing-key.js";
import { runCli } from "../support/cli.js";

const SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";

/** A folder with a two-line homeserver key file (CRLF, odd spacing) and an mxcd key file. */
function world() {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-signing-key-combine-"));
  const hsText = `ed25519 a_hs01  ${SEED}\r\n\ned25519 a_hs00 ${"A".repeat(43)}\n`;
  const hs = join(dir, "homeserver.signing.key");
  writeFileSync(hs, hsText);
  const mxcdKey = generateSigningKey("mxcd_", 8);
  const mxcd = join(dir, "mxcd.signing.key");
  writeFileSync(mxcd, formatSigningKeyFile([mxcdKey]));
  const out = join(dir, "combined.signing.key");
  return { dir, hs, hsText, mxcd, mxcdKey, out };
}

/** Runs combine and expects a refusal that leaves the folder exactly as it was. */
async function refused(
  w: ReturnType<typeof world>,
  options: Partial<Parameters<typeof combineSigningKeysCommand>[0]>,
  message: RegExp,
) {
  const before = snapshot(w.dir);
  await assert.rejects(
    combineSigningKeysCommand({ homeserverKey: w.hs, mxcdKey: w.mxcd, output: w.out, ...options }),
    (error: unknown) => {
      assert.ok(error instanceof SigningKeyFileError, String(error));
      assert.match(error.message, message);
      return true;
    },
  );
  assert.deepEqual(snapshot(w.dir), before, "a refusal changed the folder");
}

function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((name) => [name, readFileSync(join(dir, name), "utf8")]),
  );
}

describe("mxcd signing-key combine", () => {
  it("writes the homeserver's lines first, unchanged and in order, then mxcd's (0600)", async () => {
    const w = world();
    await combineSigningKeysCommand({ homeserverKey: w.hs, mxcdKey: w.mxcd, output: w.out });
    const text = readFileSync(w.out, "utf8");
    assert.deepEqual(text.split("\n"), [
      `ed25519 a_hs01  ${SEED}`,
      `ed25519 a_hs00 ${"A".repeat(43)}`,
      formatSigningKeyFile([w.mxcdKey]).trimEnd(),
      "",
    ]);
    assert.equal(statSync(w.out).mode & 0o777, 0o600);
    const keys = parseSigningKeyFile(text);
    assert.deepEqual(
      keys.map((k) => k.keyId),
      ["ed25519:a_hs01", "ed25519:a_hs00", w.mxcdKey.keyId],
    );
    assert.equal(keys[2]!.publicKeyBase64, w.mxcdKey.publicKeyBase64);
    // No temporary file is left, the inputs are untouched.
    assert.deepEqual(readdirSync(w.dir).sort(), [
      "combined.signing.key",
      "homeserver.signing.key",
      "mxcd.signing.key",
    ]);
    assert.equal(readFileSync(w.hs, "utf8"), w.hsText);
  });

  it("refuses a malformed homeserver or mxcd file", async () => {
    const w = world();
    writeFileSync(w.hs, `ed25519 a_hs01 ${SEED}\nnot a key line at all\n`);
    await refused(w, {}, /homeserver\.signing\.key: line 2: expected 3 fields/);
    const v = world();
    writeFileSync(v.mxcd, "");
    await refused(v, {}, /mxcd\.signing\.key: no key in the file/);
    const u = world();
    await refused(u, { homeserverKey: join(u.dir, "missing") }, /missing: does not exist/);
  });

  it("refuses colliding key ids and an mxcd key already in the homeserver file", async () => {
    const w = world();
    writeFileSync(w.mxcd, `ed25519 a_hs00 ${"B".repeat(43)}\n`);
    await refused(
      w,
      {},
      /key id ed25519:a_hs00 is already used by .*homeserver\.signing\.key \(line 3\)/,
    );
    const v = world();
    writeFileSync(v.mxcd, `ed25519 mxcd_x ${SEED}\n`); // the homeserver's key under another id
    await refused(v, {}, /already in .*homeserver\.signing\.key \(line 1, ed25519:a_hs01\)/);
  });

  it("never overwrites the output without --force", async () => {
    const w = world();
    writeFileSync(w.out, "anything\n");
    await refused(w, {}, /combined\.signing\.key: exists; it is never overwritten \(use --force\)/);
    // In place over the homeserver's own file, too.
    await refused(w, { output: w.hs }, /homeserver\.signing\.key: exists/);
  });

  it("--force in place keeps the homeserver's key first; a second run is refused", async () => {
    const w = world();
    await combineSigningKeysCommand({
      homeserverKey: w.hs,
      mxcdKey: w.mxcd,
      output: w.hs,
      force: true,
    });
    const keys = parseSigningKeyFile(readFileSync(w.hs, "utf8"));
    assert.deepEqual(
      keys.map((k) => k.keyId),
      ["ed25519:a_hs01", "ed25519:a_hs00", w.mxcdKey.keyId],
    );
    assert.equal(statSync(w.hs).mode & 0o777, 0o600);
    await refused(w, { output: w.hs, force: true }, /already in/);
  });

  it("--force refuses to drop a line of the file it replaces or change its first key", async () => {
    const w = world();
    // The live file has a third key the given homeserver file (an old copy) lacks.
    writeFileSync(w.out, `${w.hsText}ed25519 a_hs02 ${"C".repeat(43)}\n`);
    await refused(
      w,
      { force: true },
      /combined\.signing\.key: overwriting it would drop ed25519:a_hs02/,
    );
    const v = world();
    writeFileSync(v.out, `ed25519 a_hs00 ${"A".repeat(43)}\ned25519 a_hs01 ${SEED}\n`);
    await refused(v, { force: true }, /would change its first \(signing\) key ed25519:a_hs00/);
    const u = world();
    writeFileSync(u.out, "garbage\n");
    await refused(u, { force: true }, /combined\.signing\.key: line 1: expected 3 fields/);
    const t = world();
    await refused(t, { output: t.mxcd, force: true }, /is the mxcd key file/);
  });

  it("generate writes an mxcd_ key (0600) and never overwrites", async () => {
    const w = world();
    const path = join(w.dir, "new.key");
    await generateSigningKeyCommand({ output: path });
    const [key, ...rest] = parseSigningKeyFile(readFileSync(path, "utf8"));
    assert.match(key!.keyId, /^ed25519:mxcd_[A-Za-z0-9]{8}$/);
    assert.equal(rest.length, 0);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const before = readFileSync(path, "utf8");
    await assert.rejects(generateSigningKeyCommand({ output: path }), /new\.key: exists/);
    assert.equal(readFileSync(path, "utf8"), before);
  });

  it("the CLI exits non-zero with the message and writes nothing", async () => {
    const w = world();
    writeFileSync(w.mxcd, `ed25519 a_hs01 ${"B".repeat(43)}\n`);
    const result = await runCli([
      "signing-key",
      "combine",
      "--homeserver-key",
      w.hs,
      "--mxcd-key",
      w.mxcd,
      "-o",
      w.out,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /key id ed25519:a_hs01 is already used/);
    assert.deepEqual(readdirSync(w.dir).sort(), ["homeserver.signing.key", "mxcd.signing.key"]);
    const ok = await runCli(["signing-key", "generate", "-o", join(w.dir, "cli.key")]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /key ed25519:mxcd_/);
  });
});
