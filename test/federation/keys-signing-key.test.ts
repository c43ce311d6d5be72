import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  ed25519PublicKeyFromBase64,
  signJson,
  verifyJsonSignature,
} from "../../src/federation/json-signing.js";
import {
  formatSigningKeyFile,
  generateSigningKey,
  loadOrCreateSigningKey,
  parseSigningKeyFile,
  SigningKeyFile,
  SigningKeyFileError,
} from "../../src/federation/signing-key.js";

// The spec's test-vector seed and its public key (reference §4.3).
const SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const SPEC_PUBLIC_KEY = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";

const scratch = () => mkdtempSync(join(tmpdir(), "mxcd-signing-key-"));

describe("signing.key files", () => {
  it("creates a missing file (and its folder) with mode 0600 and reads the same key back", async () => {
    const path = join(scratch(), "keys", "nested", "signing.key");
    const created = await loadOrCreateSigningKey(path);
    assert.match(created.keyId, /^ed25519:a_[A-Za-z0-9]{4}$/);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.match(readFileSync(path, "utf8"), /^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$/);
    const again = await loadOrCreateSigningKey(path);
    assert.equal(again.keyId, created.keyId);
    assert.equal(again.publicKeyBase64, created.publicKeyBase64);
    assert.deepEqual(again.seed, created.seed);
    // No temporary file is left behind.
    assert.deepEqual(readdirSync(join(path, "..")), ["signing.key"]);
  });

  it("reads a Synapse-format file written by hand: first key is current", async () => {
    const path = join(scratch(), "synapse.signing.key");
    writeFileSync(path, `ed25519 auto ${SPEC_SEED}\ned25519 a_old ${"A".repeat(43)}\n\n`);
    const key = await loadOrCreateSigningKey(path);
    assert.equal(key.keyId, "ed25519:auto");
    assert.equal(key.publicKeyBase64, SPEC_PUBLIC_KEY);
    const signed = signJson({ x: 1 }, "s", key.keyId, key.privateKey);
    assert.ok(
      verifyJsonSignature(signed, "s", key.keyId, ed25519PublicKeyFromBase64(SPEC_PUBLIC_KEY)!),
    );
    assert.equal(readFileSync(path, "utf8").split("\n")[0], `ed25519 auto ${SPEC_SEED}`);
  });

  it("round-trips through format and parse, CRLF and padding included", () => {
    const keys = [generateSigningKey(), generateSigningKey()];
    const parsed = parseSigningKeyFile(formatSigningKeyFile(keys).replaceAll("\n", "\r\n"));
    assert.deepEqual(
      parsed.map((k) => [k.keyId, k.publicKeyBase64]),
      keys.map((k) => [k.keyId, k.publicKeyBase64]),
    );
    assert.equal(
      parseSigningKeyFile(`ed25519 v ${SPEC_SEED}=`)[0]!.publicKeyBase64,
      SPEC_PUBLIC_KEY,
    );
  });

  it("refuses malformed files and never overwrites them", async () => {
    const bad = [
      "",
      "\n\n",
      `ed25519 ${SPEC_SEED}`,
      `rsa v ${SPEC_SEED}`,
      `ed25519 bad:version ${SPEC_SEED}`,
      "ed25519 v c2hvcnQ",
      `ed25519 v ${SPEC_SEED} extra`,
    ];
    for (const text of bad) {
      assert.throws(() => parseSigningKeyFile(text), SigningKeyFileError, JSON.stringify(text));
    }
    const path = join(scratch(), "signing.key");
    writeFileSync(path, "garbage\n");
    await assert.rejects(loadOrCreateSigningKey(path), SigningKeyFileError);
    assert.equal(readFileSync(path, "utf8"), "garbage\n");
  });

  it("gives every concurrent creator the one key that ends up on disk", async () => {
    const path = join(scratch(), "signing.key");
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateSigningKey(path)));
    const onDisk = parseSigningKeyFile(readFileSync(path, "utf8"))[0]!;
    for (const key of keys) assert.equal(key.publicKeyBase64, onDisk.publicKeyBase64);
  });

  it("SigningKeyFile loads once and refuses use before loading", async () => {
    const file = new SigningKeyFile(join(scratch(), "signing.key"));
    assert.throws(() => file.current(), /not loaded/);
    const [a, b] = await Promise.all([file.load(), file.load()]);
    assert.equal(a, b);
    assert.equal(file.current(), a);
  });
});
