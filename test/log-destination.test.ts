/**
 * `mxcd serve`'s buffered log destination (src/logging/log-destination.ts):
 * lines are handed on in chunks, not one by one; a lone line still goes out
 * after the flush interval; and no line is lost when the process exits,
 * however it exits short of being killed outright (real child processes
 * writing to a pipe, as under systemd or docker); and when nobody reads that
 * pipe, memory stays bounded (lines beyond the backlog are dropped, counted
 * on /metrics and announced in the log) and the process still exits; and
 * when the reader of that pipe or socket has gone (EPIPE), the process
 * neither crashes nor keeps trying: one failed write, then every line is
 * dropped and counted.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { BufferedLogDestination } from "../src/logging/log-destination.js";
import { registerLogMetrics } from "../src/logging/log-metrics.js";
import { createLogger } from "../src/logging/logger.js";
import { requestLogWriter } from "../src/logging/request-log-line.js";
import { assertBuilt } from "./support/cli.js";
import { REPO_URL } from "./support/repo-url.js";
import { waitFor } from "./support/wait-for.js";

// The modules this file imports, as they are here: compiled (npm test runs
// dist/test) or TypeScript through tsx, which the child then loads too.
const MODULE = import.meta.resolve("../src/logging/log-destination.js");
const LOGGER = import.meta.resolve("../src/logging/logger.js");
const WRITER = import.meta.resolve("../src/logging/fd-chunk-writer.js");
const CHILD_LOADER = MODULE.endsWith(".ts") ? ["--import", "tsx"] : [];
// The built modules (npm run build), for a child under plain node.
const BUILT_MODULE = new URL("dist/src/logging/log-destination.js", REPO_URL).href;
const BUILT_LOGGER = new URL("dist/src/logging/logger.js", REPO_URL).href;

/** A sink recording the chunks it is given. */
function sink() {
  const chunks: string[] = [];
  return { chunks, out: { write: (chunk: string) => chunks.push(chunk) } };
}

const lineOf = (i: number) => `${JSON.stringify({ n: i, msg: "x".repeat(180) })}\n`;

describe("the buffered log destination", () => {
  it("hands lines on in chunks of the buffer's size, in order", () => {
    const { chunks, out } = sink();
    const destination = new BufferedLogDestination(out, {
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
    const destination = new BufferedLogDestination(out, { flushMs: 20 });
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

  it("counts chunks its writer drops, on /metrics, and announces them once the writer takes lines again", async () => {
    // The writer's contract: `write` returns false for a chunk it refused (full).
    const written: string[] = [];
    const writer = {
      full: true,
      write(chunk: string) {
        if (writer.full) return false;
        written.push(chunk);
        return true;
      },
    };
    const destination = new BufferedLogDestination(writer, { flushMs: 60_000 });
    const logger = createLogger("info", destination);
    const registry = new Registry();
    registerLogMetrics(registry, logger);
    for (let i = 0; i < 3; i++) logger.info({ n: i }, "lost");
    destination.flush();
    logger.info({ n: 3 }, "lost too");
    destination.flush();
    assert.equal(destination.droppedLines, 4);
    assert.match(await registry.metrics(), /^mxcd_log_lines_dropped_total 4$/m);
    writer.full = false;
    logger.info({ n: 4 }, "kept");
    destination.flush();
    const lines = written
      .join("")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    assert.deepEqual(
      lines.map((line) => [line.level, line.droppedLines, line.n]),
      [
        [40, 4, undefined],
        [30, undefined, 4],
      ],
    );
    logger.info({ n: 5 }, "kept");
    destination.flush();
    assert.equal(written.length, 2, "announced once");
    assert.doesNotMatch(written[1]!, /droppedLines/);
  });

  it("drops and counts the lines beyond its backlog while stdout is not read, and says so in the log", async () => {
    const backlog = 64 * 1024;
    const total = 5000;
    const script = `
      const { createLogDestination } = await import(${JSON.stringify(MODULE)});
      const { createLogger } = await import(${JSON.stringify(LOGGER)});
      const destination = createLogDestination(1, { backlogBytes: ${backlog}, bufferChars: 4096, flushMs: 60_000 });
      const logger = createLogger("info", destination);
      // Synchronously: the writer completes no write meanwhile, so every kept byte is held.
      for (let i = 0; i < ${total}; i++) logger.info({ n: i, pad: "x".repeat(150) }, "line");
      destination.flush(); // the last partial chunk too
      process.stderr.write(JSON.stringify({ dropped: destination.droppedLines }) + "\\n");
      process.stdin.once("data", () => {
        logger.info({ n: ${total} }, "after");
        process.stdin.destroy();
      });`;
    const child = spawn(process.execPath, [...CHILD_LOADER, "--input-type=module", "-e", script], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    try {
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => {
        stderr += d;
      });
      // stdout is not read until the child has logged everything.
      child.stdout.pause();
      await waitFor(() => stderr.includes("\n") || child.exitCode !== null, "the report");
      const { dropped } = JSON.parse(stderr) as { dropped: number };
      assert.ok(dropped > 0, "lines beyond the backlog were dropped");
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d;
      });
      child.stdout.resume(); // a data listener alone does not undo pause()
      const count = (msg: string) => stdout.split("\n").filter((l) => l.includes(`"msg":"${msg}"`));
      // Every line the writer kept arrives; then one more line goes out at exit.
      await waitFor(() => count("line").length >= total - dropped, "the kept lines");
      child.stdin.write("go");
      await once(child, "close");
      const lines = stdout.trim().split("\n");
      const kept = count("line");
      assert.equal(kept.length, total - dropped, "every line was either written or counted");
      const warnings = lines.map((line) => JSON.parse(line)).filter((line) => line.level === 40);
      assert.deepEqual(
        warnings.map((line) => line.droppedLines),
        [dropped],
        "the log itself says how many were lost, once",
      );
      assert.equal(JSON.parse(lines.at(-1)!).msg, "after");
    } finally {
      if (child.exitCode === null) child.kill();
    }
  });

  it("holds at most its backlog in memory while the pipe is full", async () => {
    const script = `
      const { FdChunkWriter } = await import(${JSON.stringify(WRITER)});
      void process.stdout; // non-blocking, as createLogDestination makes it
      const writer = new FdChunkWriter(1, 65536, 0);
      let refused = 0;
      let most = 0;
      for (let i = 0; i < 4096; i++) {
        if (writer.write("x".repeat(1023) + "\\n") === false) refused++;
        most = Math.max(most, writer.queuedBytes);
      }
      process.stderr.write(JSON.stringify({ refused, most }));
      process.exit(0);`;
    const child = spawn(process.execPath, [...CHILD_LOADER, "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.pause(); // never read: 4 MiB do not fit in the pipe
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    await once(child, "close");
    const { refused, most } = JSON.parse(stderr) as { refused: number; most: number };
    assert.ok(refused > 0, "chunks beyond the backlog were refused");
    assert.ok(most <= 65536, `${most} bytes held, backlog 65536`);
  });

  it("exits when stdout is full and never read", { timeout: 120_000 }, async (t) => {
    // The built modules under plain node: tsx itself opens process.stdout,
    // which would hide whether mxcd makes a blocking stdout non-blocking.
    assertBuilt();
    const script = `
      const { createLogDestination } = await import(${JSON.stringify(BUILT_MODULE)});
      const { createLogger } = await import(${JSON.stringify(BUILT_LOGGER)});
      const logger = createLogger("info", createLogDestination(1, { flushMs: 60_000 }));
      for (let i = 0; i < 20000; i++) logger.info({ n: i, pad: "x".repeat(150) }, "line");
      process.exit(0);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    // A child that hangs (the failure this test looks for) must not outlive it.
    t.after(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    child.stdout.pause(); // never read: ~4 MiB do not fit in the pipe
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    const [code] = await once(child, "exit");
    assert.equal(code, 0, stderr);
  });

  // The child counts its write(2) calls on fd 1 (the writer's named import
  // of writeSync sees the patch through syncBuiltinESMExports), logs one
  // line, and once the parent says its reader is gone, logs 1000 more and
  // exits: a crash, a retry loop or a blocking exit flush shows in its report.
  const epipeScript = `
    import fs from "node:fs";
    import { syncBuiltinESMExports } from "node:module";
    let writes = 0;
    const writeSync = fs.writeSync;
    fs.writeSync = (fd, ...rest) => {
      if (fd === 1) writes += 1;
      return writeSync(fd, ...rest);
    };
    syncBuiltinESMExports();
    const { createLogDestination } = await import(${JSON.stringify(MODULE)});
    const { createLogger } = await import(${JSON.stringify(LOGGER)});
    const destination = createLogDestination(1, { bufferChars: 1, flushMs: 60_000 });
    const logger = createLogger("info", destination);
    logger.info("first");
    const report = (what) => fs.writeSync(2, JSON.stringify(what) + "\\n");
    process.stdin.once("data", () => {
      const before = writes;
      for (let i = 0; i < 1000; i++) logger.info({ n: i }, "after the reader left");
      destination.flush();
      report({ logged: writes - before, dropped: destination.droppedLines });
      process.on("exit", () => report({ atExit: writes - before }));
      process.exit(0);
    });`;

  for (const [how, reader] of [
    ["a socket (as spawn's pipes), its reader closed", "socket"],
    ["a pipe whose reader (head -n 1) exited", "pipe"],
  ] as const) {
    it(`neither crashes nor spins when stdout is ${how} (EPIPE)`, async (t) => {
      const node = [process.execPath, ...CHILD_LOADER, "--input-type=module", "-e", epipeScript];
      const child =
        reader === "socket"
          ? spawn(node[0]!, node.slice(1), { stdio: ["pipe", "pipe", "pipe"] })
          : // A real pipe(2), as `mxcd serve | head`: head takes the first line
            // and exits; the group closes its copy of the pipe before saying so.
            spawn(
              "sh",
              ["-c", '"$@" | { head -n 1 >&2; exec 0<&-; echo gone >&2; }', "sh", ...node],
              {
                stdio: ["pipe", "ignore", "pipe"],
              },
            );
      t.after(() => {
        if (child.exitCode === null) child.kill("SIGKILL");
      });
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => {
        stderr += d;
      });
      if (reader === "socket") {
        let stdout = "";
        child.stdout!.on("data", (d: Buffer) => {
          stdout += d;
        });
        await waitFor(() => stdout.includes("\n"), "the first line");
        child.stdout!.destroy();
        await once(child.stdout!, "close");
        assert.match(stdout, /"msg":"first"/);
      } else {
        await waitFor(() => stderr.includes("gone\n"), "head's exit");
        assert.match(stderr, /"msg":"first"/);
      }
      child.stdin!.write("go");
      const [code] = await once(child, "exit");
      assert.equal(code, 0, stderr);
      const reports = stderr
        .split("\n")
        .filter((line) => line.startsWith('{"logged"') || line.startsWith('{"atExit"'))
        .map((line) => JSON.parse(line));
      assert.deepEqual(
        reports,
        [{ logged: 1, dropped: 1000 }, { atExit: 1 }],
        "one failed write, then none (no retry, none at exit); every later line counted",
      );
    });
  }
});
