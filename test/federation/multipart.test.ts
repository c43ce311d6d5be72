import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import {
  boundaryOf,
  MultipartError,
  multipartBody,
  newBoundary,
  parseMultipartMedia,
} from "../../src/federation/multipart.js";

/** Feeds `bytes` to the parser in chunks of `size` bytes. */
function chunked(bytes: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return Readable.from(chunks);
}

async function collect(stream: Readable): Promise<Buffer> {
  return Buffer.concat((await stream.toArray()) as Buffer[]);
}

async function written(
  boundary: string,
  media: Buffer,
): Promise<{ body: Buffer; length?: number }> {
  const { body, length } = multipartBody(boundary, {
    contentType: "image/png",
    contentDisposition: "inline; filename=a.png",
    bytes: Readable.from([media]),
    length: media.length,
  });
  return { body: await collect(body), length };
}

describe("federation multipart/mixed", () => {
  it("writes Synapse's layout with an exact Content-Length", async () => {
    const boundary = newBoundary();
    assert.match(boundary, /^[0-9a-f]{32}$/);
    const { body, length } = await written(boundary, Buffer.from("PNGDATA"));
    assert.equal(body.length, length);
    assert.equal(
      body.toString(),
      `\r\n--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}\r\n` +
        `Content-Type: image/png\r\nContent-Disposition: inline; filename=a.png\r\n\r\nPNGDATA\r\n--${boundary}--\r\n`,
    );
  });

  for (const size of [1, 7, 33, 4096]) {
    it(`reads back the media bytes fed in chunks of ${size} bytes`, async () => {
      const boundary = newBoundary();
      const media = randomBytes(20_000);
      const { body } = await written(boundary, media);
      const parsed = await parseMultipartMedia(chunked(body, size), boundary);
      assert.equal(parsed.kind, "bytes");
      if (parsed.kind !== "bytes") return;
      assert.equal(parsed.contentType, "image/png");
      assert.equal(parsed.contentDisposition, "inline; filename=a.png");
      assert.deepEqual(await collect(parsed.bytes), media);
    });
  }

  it("accepts a body without the leading CRLF, and empty media", async () => {
    const boundary = "b0undary";
    const body = Buffer.from(
      `--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}\r\n` +
        `Content-Type: text/plain\r\n\r\n\r\n--${boundary}--\r\n`,
    );
    const parsed = await parseMultipartMedia(chunked(body, 5), boundary);
    assert.equal(parsed.kind, "bytes");
    if (parsed.kind === "bytes") assert.equal((await collect(parsed.bytes)).length, 0);
  });

  it("returns a Location part without reading further", async () => {
    const boundary = "xyz";
    const body = Buffer.from(
      `\r\n--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}\r\n` +
        `Location: https://cdn.example/abc\r\n\r\n\r\n--${boundary}--\r\n`,
    );
    assert.deepEqual(await parseMultipartMedia(chunked(body, 3), boundary), {
      kind: "location",
      location: "https://cdn.example/abc",
    });
  });

  it("fails a truncated body: before the media part, and in the middle of the bytes", async () => {
    const boundary = newBoundary();
    const { body } = await written(boundary, randomBytes(5000));
    await assert.rejects(
      parseMultipartMedia(chunked(body.subarray(0, 40), 8), boundary),
      MultipartError,
    );
    const parsed = await parseMultipartMedia(chunked(body.subarray(0, 3000), 100), boundary);
    assert.equal(parsed.kind, "bytes");
    if (parsed.kind === "bytes") await assert.rejects(collect(parsed.bytes), MultipartError);
  });

  it("refuses an endless preamble instead of buffering it", async () => {
    const junk = Readable.from(
      (function* () {
        for (let i = 0; i < 100; i++) yield Buffer.alloc(4096, 0x61);
      })(),
    );
    await assert.rejects(parseMultipartMedia(junk, "nope"), MultipartError);
  });

  it("reads the boundary from the Content-Type", () => {
    assert.equal(boundaryOf("multipart/mixed; boundary=abc123"), "abc123");
    assert.equal(boundaryOf('Multipart/Mixed; charset=x; boundary="q r"'), "q r");
    assert.equal(boundaryOf("application/json"), undefined);
    assert.equal(boundaryOf(undefined), undefined);
  });
});
