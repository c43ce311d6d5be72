/**
 * The UploadMeter and its quota allowance (issue 15's upload, issue 17's
 * reservations): a body that stays within what was reserved up front (the
 * declared Content-Length) costs no further reservation step while it
 * streams — nothing per chunk — and a body without a length asks once per
 * step it outgrows, before the bytes past the grant are passed on. The
 * hashes are of exactly the bytes passed on.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { it } from "node:test";
import { feedMeter, type UploadAllowance, UploadMeter } from "../src/media/upload-meter.js";

const CHUNK = 64 * 1024;
const STEP = 1024 * 1024;

/** An allowance that grants `initial` bytes, then `step` more each time it is asked. */
function countingAllowance(initial: number, step: number) {
  const asked: number[] = [];
  const allowance: UploadAllowance = {
    granted: initial,
    async ensure(total: number) {
      asked.push(total);
      const grown = Math.max(total, this.granted + step);
      (this as { granted: number }).granted = grown;
      return grown;
    },
  };
  return { allowance, asked };
}

/** Streams `body` in 64 KiB chunks through a meter into a sink; returns what the sink got. */
async function meter(body: Buffer, allowance: UploadAllowance) {
  const chunks: Buffer[] = [];
  for (let at = 0; at < body.length; at += CHUNK) chunks.push(body.subarray(at, at + CHUNK));
  const meter = new UploadMeter(64 * STEP, undefined, allowance);
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      received.push(chunk);
      done();
    },
  });
  await Promise.all([feedMeter(Readable.from(chunks), meter), pipeline(meter, sink)]);
  return { meter, received: Buffer.concat(received) };
}

const hex = (algorithm: string, bytes: Buffer) => createHash(algorithm).update(bytes).digest("hex");

it("asks for no more room while a body stays within its declared length", async () => {
  const body = randomBytes(5 * STEP + 12_345);
  const { allowance, asked } = countingAllowance(body.length, STEP);
  const { meter: done, received } = await meter(body, allowance);
  assert.deepEqual(asked, [], "no reservation step for a body within its declared length");
  assert.ok(received.equals(body));
  assert.equal(done.bytes, body.length);
  assert.equal(done.sha256(), hex("sha256", body));
  assert.equal(done.md5(), hex("md5", body));
});

it("asks once per step for a body without a length, never per chunk", async () => {
  const body = randomBytes(5 * STEP + 12_345);
  const { allowance, asked } = countingAllowance(STEP, STEP);
  const { meter: done, received } = await meter(body, allowance);
  // 1 MiB granted up front, 1 MiB more each time the bytes pass the grant: 5 steps.
  assert.equal(asked.length, 5, `steps asked at ${asked.join(", ")}`);
  for (const [i, total] of asked.entries()) {
    // The first chunk past the grant (the last one is shorter).
    const expected = Math.min((i + 1) * STEP + CHUNK, body.length);
    assert.equal(total, expected, "asked as the first chunk past the grant arrived");
  }
  assert.ok(received.equals(body));
  assert.equal(done.sha256(), hex("sha256", body));
  assert.equal(done.md5(), hex("md5", body));
});
