/**
 * The filesystem store's `sendTo` (issue 15, "Large files"; bench/README.md
 * "Large downloads"): bytes exact for whole files and ranges, at most two
 * chunks in flight (a sink that never acknowledges gets no third write),
 * concurrent answers never share a buffer (they are reused between answers), a
 * client that goes away stops the reads and leaves no open file, and a file
 * that grows or shrinks during the send never yields more bytes than were
 * announced.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  truncateSync,
} from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { BlobNotFoundError, type ByteSink } from "../src/storage/blob-store.js";
import { FilesystemBlobStore } from "../src/storage/filesystem/filesystem-blob-store.js";
import { waitFor } from "./support/wait-for.js";

const MIB = 1024 * 1024;

/** A sink that records writes and acknowledges them only when told. */
class HeldSink extends EventEmitter implements ByteSink {
  readonly chunks: Buffer[] = [];
  readonly pending: ((error?: Error | null) => void)[] = [];
  ended = false;
  destroyed = false;
  error: Error | undefined;
  write(chunk: Uint8Array, callback: (error?: Error | null) => void): boolean {
    // Copied: the sender reuses its buffers once acknowledged.
    this.chunks.push(Buffer.from(chunk));
    this.pending.push(callback);
    return false;
  }
  end(): void {
    this.ended = true;
    this.emit("close");
  }
  destroy(error?: Error): void {
    this.destroyed = true;
    this.error = error;
    this.emit("close");
  }
  /** Acknowledges every write so far. */
  release(): void {
    for (const callback of this.pending.splice(0)) callback();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Open descriptors of this process that point at `path`. */
function openFds(path: string): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) count += 1;
    } catch {
      // closed between the listing and the readlink
    }
  }
  return count;
}

describe("filesystem store: sendTo", () => {
  let root: string;
  let store: FilesystemBlobStore;
  const content = randomBytes(5 * MIB + 12_345);
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "mxcd-send-to-"));
    store = new FilesystemBlobStore(root);
    await store.write("a/big", Readable.from([content]));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  /** Sends with a sink that acknowledges every write at once. */
  const sendAll = async (key: string, range?: { start: number; end: number }) => {
    const sink = new HeldSink();
    let announced = -1;
    const sent = store.sendTo(key, range, (length) => {
      announced = length;
      return sink;
    });
    const pump = setInterval(() => sink.release(), 1);
    try {
      await sent;
    } finally {
      clearInterval(pump);
    }
    return { sink, announced };
  };

  it("sends whole files and ranges byte-exact, and ends the sink", async () => {
    const whole = await sendAll("a/big");
    assert.equal(whole.announced, content.length);
    assert.ok(whole.sink.bytes.equals(content));
    assert.equal(whole.sink.ended, true);
    for (const [start, end] of [
      [0, 0],
      [MIB - 1, MIB],
      [MIB, 3 * MIB - 1],
      [12, content.length - 1],
      [content.length - 5, content.length + 100],
    ] as const) {
      const part = await sendAll("a/big", { start, end });
      assert.ok(part.sink.bytes.equals(content.subarray(start, end + 1)), `${start}-${end}`);
      assert.equal(part.announced, Math.min(end, content.length - 1) - start + 1);
    }
    await store.write("a/empty", Readable.from([Buffer.alloc(0)]));
    const empty = await sendAll("a/empty");
    assert.equal(empty.sink.bytes.length, 0);
    assert.equal(empty.sink.ended, true);
  });

  it("rejects a missing blob before the head is written", async () => {
    let started = false;
    await assert.rejects(
      store.sendTo("a/missing", undefined, () => {
        started = true;
        return new HeldSink();
      }),
      BlobNotFoundError,
    );
    assert.equal(started, false);
  });

  it("keeps at most two chunks in flight until the sink acknowledges", async () => {
    const sink = new HeldSink();
    const sent = store.sendTo("a/big", undefined, () => sink);
    await waitFor(() => sink.chunks.length === 2, "two writes");
    // Nothing acknowledged: no third write comes, however long the wait for
    // the next observable step (the first acknowledgement below) takes.
    await new Promise((done) => setImmediate(done));
    assert.equal(sink.chunks.length, 2);
    const first = sink.pending.shift()!;
    first();
    await waitFor(() => sink.chunks.length === 3, "a third write");
    assert.equal(sink.pending.length, 2);
    sink.destroy();
    await sent;
  });

  it("stops reading and closes the file when the sink closes", async () => {
    const path = join(root, "a", "big");
    const sink = new HeldSink();
    const sent = store.sendTo("a/big", undefined, () => sink);
    await waitFor(() => sink.chunks.length === 2, "two writes");
    assert.equal(openFds(path), 1);
    sink.destroy();
    sink.release();
    await sent;
    assert.equal(sink.chunks.length, 2);
    assert.equal(openFds(path), 0);
  });

  it("stops when an HTTP client disconnects mid-file, leaving no open file", async () => {
    const path = join(root, "a", "big");
    let finished: Promise<void> | undefined;
    const server = createServer((_req, res) => {
      finished = store.sendTo("a/big", undefined, (length) => {
        res.writeHead(200, { "content-length": length });
        return res;
      });
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    try {
      const { port } = server.address() as AddressInfo;
      let received = 0;
      await new Promise<void>((done, fail) => {
        const req = request({ port, host: "127.0.0.1", path: "/" }, (res) => {
          res.on("data", (chunk: Buffer) => {
            received += chunk.length;
            if (received >= MIB) req.destroy();
          });
          res.on("close", done);
        });
        req.on("error", () => done());
        req.on("timeout", () => fail(new Error("timeout")));
        req.end();
      });
      assert.ok(received < content.length);
      await waitFor(() => finished !== undefined, "the send to start");
      await finished;
      assert.equal(openFds(path), 0);
    } finally {
      server.close();
    }
  });

  it("keeps concurrent answers' bytes apart while buffers are reused between answers", async () => {
    const other = randomBytes(4 * MIB + 777);
    await store.write("a/other", Readable.from([other]));
    const server = createServer((req, res) => {
      void store.sendTo(req.url === "/big" ? "a/big" : "a/other", undefined, (length) => {
        res.writeHead(200, { "content-length": length });
        return res;
      });
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const { port } = server.address() as AddressInfo;
    const get = (path: string) =>
      new Promise<Buffer>((done, fail) => {
        request({ port, host: "127.0.0.1", path }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => done(Buffer.concat(chunks)));
          res.on("error", fail);
        })
          .on("error", fail)
          .end();
      });
    try {
      for (let round = 0; round < 3; round++) {
        const paths = ["/big", "/other", "/big", "/other"];
        const bodies = await Promise.all(paths.map(get));
        bodies.forEach((body, i) => {
          assert.ok(body.equals(paths[i] === "/big" ? content : other), `round ${round}, ${i}`);
        });
      }
    } finally {
      server.close();
    }
  });

  it("never sends more than announced when the file grows, and cuts the answer when it shrinks", async () => {
    await store.write("a/grows", Readable.from([content.subarray(0, 3 * MIB + 5)]));
    const grows = new HeldSink();
    const pump = setInterval(() => grows.release(), 1);
    await store.sendTo("a/grows", undefined, (length) => {
      appendFileSync(join(root, "a", "grows"), randomBytes(2 * MIB));
      assert.equal(length, 3 * MIB + 5);
      return grows;
    });
    clearInterval(pump);
    assert.ok(grows.bytes.equals(content.subarray(0, 3 * MIB + 5)));
    assert.equal(grows.ended, true);

    await store.write("a/shrinks", Readable.from([content.subarray(0, 3 * MIB)]));
    const shrinks = new HeldSink();
    const pump2 = setInterval(() => shrinks.release(), 1);
    await store.sendTo("a/shrinks", undefined, (length) => {
      truncateSync(join(root, "a", "shrinks"), MIB + 10);
      assert.equal(length, 3 * MIB);
      return shrinks;
    });
    clearInterval(pump2);
    assert.ok(shrinks.bytes.equals(content.subarray(0, MIB + 10)));
    assert.equal(shrinks.ended, false);
    assert.equal(shrinks.destroyed, true);
  });
});
