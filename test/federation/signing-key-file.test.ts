import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  ed25519PublicKeyFromBase64,
  verifyJsonSignature,
} from "../../src/federation/json-signing.js";
import {
  formatSigningKeyFile,
  generateSigningKey,
  loadOrCreateSigningKey,
  MAX_SIGNING_KEY_FILE_BYTES,
  parseSigningKeyFile,
  parseSigningKeyLines,
  readKeyFile,
  SigningKeyFile,
  SigningKeyFileError,
} from "../../src/federation/signing-key.js";
import { parseXMatrixHeader, RequestSigner, requestJson } from "../../src/federation/x-matrix.js";

// The spec's test-vector seed and its public key.
const SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const PUBLIC = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
const OTHER_SEED = "A".repeat(43);

const scratch = () => mkdtempSync(join(tmpdir(), "mxcd-signing-key-file-"));

/** Asserts `text` is refused with a SigningKeyFileError whose message matches and quotes no seed. */
function refuses(text: string, message: RegExp) {
  assert.throws(
    () => parseSigningKeyFile(text, "hs.key"),
    (error: unknown) => {
      assert.ok(error instanceof SigningKeyFileError, String(error));
      assert.match(error.message, /^signing key file hs\.key: /);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /YJDBA9|AAAAAAAA/, "the message quotes a seed");
      return true;
    },
    JSON.stringify(text.slice(0, 80)),
  );
}

describe("signing.key parsing (hostile input)", () => {
  it("reads Synapse's file as it is: several lines, first is current, CRLF and spaces", () => {
    const text = `  ed25519 a_hs01 ${SEED}  \r\n\r\ned25519 a_old\t${OTHER_SEED}\r\n`;
    const lines = parseSigningKeyLines(text, "hs.key");
    assert.deepEqual(
      lines.map((l) => [l.key.keyId, l.line]),
      [
        ["ed25519:a_hs01", 1],
        ["ed25519:a_old", 3],
      ],
    );
    assert.equal(lines[0]!.key.publicKeyBase64, PUBLIC);
    assert.equal(lines[0]!.text, `  ed25519 a_hs01 ${SEED}  `);
  });

  it("refuses each malformed file with a clear message", () => {
    refuses("", /no key in the file/);
    refuses("\n \r\n\t\n", /no key in the file/);
    refuses(`ed25519 v ${SEED.slice(0, -1)}!`, /line 1: the key is not 32 bytes of base64/);
    refuses("ed25519 v c2hvcnQ", /not 32 bytes/); // 5 bytes
    refuses(`ed25519 v ${SEED}${SEED}`, /not 32 bytes/); // 64 characters, 48 bytes
    refuses(`ed25519 v ${SEED.slice(0, 42)}`, /not 32 bytes/); // 4n+2: 31 bytes
    refuses(`rsa v ${SEED}`, /unsupported algorithm rsa \(only ed25519\)/);
    // A seed in the algorithm column is not quoted back (it would reach a log).
    refuses(`${SEED} v ed25519`, /line 1: unsupported algorithm \(only ed25519\)$/);
    refuses(`ed25519 bad:version ${SEED}`, /invalid version/);
    refuses(`ed25519 v ${SEED} extra`, /expected 3 fields/);
    refuses(
      `ed25519 a ${SEED}\ned25519 b ${OTHER_SEED}\ned25519 a ${OTHER_SEED}\n`,
      /line 3: key id ed25519:a repeats line 1/,
    );
    refuses(`ed25519 v \u0000${SEED.slice(1)}`, /not 32 bytes/);
    // A byte-order mark is white space to the parser, so an editor's BOM does no harm.
    assert.equal(parseSigningKeyFile(`\uFEFFed25519 v ${SEED}`)[0]!.publicKeyBase64, PUBLIC);
  });

  it("refuses a 10 MB text or file without reading it whole", async () => {
    refuses(`ed25519 a ${SEED}\n`.repeat(200_000), /larger than 65536 bytes/);
    const path = join(scratch(), "huge.key");
    writeFileSync(path, `ed25519 a ${SEED}\n`);
    truncateSync(path, 10 * 1024 * 1024);
    await assert.rejects(loadOrCreateSigningKey(path), /huge\.key: larger than 65536 bytes/);
    // Exactly at the cap is still read.
    const atCap = join(scratch(), "cap.key");
    const line = `ed25519 a ${SEED}\n`;
    writeFileSync(atCap, line + " ".repeat(MAX_SIGNING_KEY_FILE_BYTES - line.length));
    assert.equal((await readKeyFile(atCap))?.length, MAX_SIGNING_KEY_FILE_BYTES);
    assert.equal((await loadOrCreateSigningKey(atCap)).publicKeyBase64, PUBLIC);
  });

  it("a file that is not a regular file gives an error, not a crash", async () => {
    await assert.rejects(loadOrCreateSigningKey(scratch()), /EISDIR|illegal operation/);
  });

  it("with create: false a missing file is an error and nothing is written", async () => {
    const dir = scratch();
    const file = new SigningKeyFile(join(dir, "signing.key"), false);
    await assert.rejects(file.load(), /signing\.key: does not exist/);
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe("signing with a multi-line file", () => {
  it("signs X-Matrix requests with the first key only", async () => {
    const first = generateSigningKey();
    const second = generateSigningKey("mxcd_", 8);
    const path = join(scratch(), "signing.key");
    writeFileSync(path, formatSigningKeyFile([first, second]));
    const file = new SigningKeyFile(path);
    await file.load();
    assert.equal(file.current().keyId, first.keyId);

    const uri = "/_matrix/federation/v1/media/download/abc";
    const header = new RequestSigner("us.test", file.current).authorizationHeader(
      "GET",
      uri,
      "them.test",
    );
    const credentials = parseXMatrixHeader(header)!;
    assert.equal(credentials.key, first.keyId);
    const signed = {
      ...requestJson({ method: "GET", uri, origin: "us.test", destination: "them.test" }),
      signatures: { "us.test": { [credentials.key]: credentials.sig } },
    };
    const verifies = (publicKey: string) =>
      verifyJsonSignature(
        signed,
        "us.test",
        credentials.key,
        ed25519PublicKeyFromBase64(publicKey)!,
      );
    assert.ok(verifies(first.publicKeyBase64));
    assert.ok(!verifies(second.publicKeyBase64));
  });
});
