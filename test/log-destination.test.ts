/**
 * `mxcd serve`'s buffered log destination (src/logging/log-destination.ts):
 * lines are handed on in chunks, not one by one; a lone line still goes out
 * after the flush interval; and no line is lost when the process exits,
 * however it exits short of being killed outright (real child processes
 * writing to a pipe, as under systemd or docker).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { BufferedLogDestination } from "../src/logging/log-destination.js";
import { createLogger } from "../src/logging/logger.js";
import { requestLogWriter } from "../src/logging/request-log-line.js";
import { waitFor } from "./support/wait-for.js";

// The modules this file imports, as they are here: compiled (npm test runs
// dist/test) or TypeScript through tsx, which the child then loads too.
const MODULE = import.meta.resolve("../src/logging/log-destination.js");
const LOGGER = import.meta.resolve("../src/logging/logger.js");
const CHILD_LOADER = MODULE.endsWith(".ts") ? ["--import", "tsx"] : [];

/** A sink recording the chunks it is given. */
function sink() {
  const chunks: string[] = [];
  return { chunks, out: { write: (chunk: string) => chunks.push(chunk) } };
}

const lineOf = (i: number) => `${JSON.stringify({ n: i, msg: "x".repeat(180) })}\n`;

describe("the buffered log destination", () => {
  it("hands lines on in chunks of the buffer's size, in order", () => {
    const { chunks, out } = sink();
    const destination = new BufferedLogDestination(out, undefined, {
      bufferChars: 4096,
      flushMs: 60_000,
    });
    const lines = Array.from({ length: 1000 }, (_, i) => lineOf(i));
    for (const line of lines) destination.write(line);
    destination.flushSync();
    assert.equal(chunks.join(""), lines.join(""));
    // ~200 characters a line, 4,096 a chunk: about 50 chunks, never one per line.
    assert.ok(chunks.length <= 60, `${chunks.length} chunks for 1000 lines`);
    assert.equal(destination.chunks, chunks.length);
  });

  it("writes a lone line after the flush interval, without another write", async () => {
    const { chunks, out } = sink();
    const destination = new BufferedLogDestination(out, undefined, { flushMs: 20 });
    destination.write(lineOf(1));
    assert.deepEqual(chunks, [], "held, not written at once");
    await waitFor(() => chunks.length === 1, "the timed flush");
    assert.deepEqual(chunks, [lineOf(1)]);
  });

  it("carries the fast path's request lines (pino's stream interface)", () => {
    const { chunks, out } = sink();
    const destination = new BufferedLogDestination(out);
    const logger = createLogger("info", destination);
    const write = requestLogWriter(logger);
    for (let i = 0; i < 3; i++) {
      write({
        id: `req-${i}`,
        method: "GET",
        url: "/_matrix/client/v1/media/download/a/b?access_token=secret",
        remoteAddress: "127.0.0.1",
        statusCode: 200,
        responseTime: 1,
      });
    }
    logger.info("after");
    destination.flushSync();
    const lines = chunks.join("").trim().split("\n");
    assert.equal(lines.length, 4);
    assert.equal(JSON.parse(lines[2]!).reqId, "req-2");
    assert.doesNotMatch(chunks.join(""), /secret/);
  });

  for (const [how, ending] of [
    ["process.exit()", "process.exit(0);"],
    ["the end of the event loop", ""],
    ["an uncaught exception", 'throw new Error("boom");'],
  ] as const) {
    it(`loses no line on ${how}`, async () => {
      const script = `
        const { createLogDestination } = await import(${JSON.stringify(MODULE)});
        const { createLogger } = await import(${JSON.stringify(LOGGER)});
        const logger = createLogger("info", createLogDestination(1, { flushMs: 60_000 }));
        for (let i = 0; i < 500; i++) logger.info({ n: i }, "line");
        ${ending}`;
      const child = spawn(
        process.execPath,
        [...CHILD_LOADER, "--input-type=module", "-e", script],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d;
      });
      child.stderr.resume();
      await once(child, "close");
      const numbers = stdout
        .trim()
        .split("\n")
        .map((line) => (JSON.parse(line) as { n: number }).n);
      assert.deepEqual(
        numbers,
        Array.from({ length: 500 }, (_, i) => i),
      );
    });
  }
});
