/**
 * The benches' mxcd launcher (bench/support/mxcd-server.ts) keeps the last
 * lines the server wrote, its log on stdout included, so a failed bench can
 * say why: `lastOutput()` while it runs, and `stop()` rejects quoting them
 * when the server had exited on its own (a crash mid-bench).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, describe, it } from "node:test";
import { Cleanup } from "../bench/support/cleanup.js";
import { type MxcdServer, startMxcd } from "../bench/support/mxcd-server.js";
import { OutputTail } from "../bench/support/processes.js";
import { assertBuilt, CLI } from "./support/cli.js";
import { waitFor } from "./support/wait-for.js";

/** Whether process `pid` is gone. */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

describe("the benches' mxcd launcher", () => {
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it("keeps the server's last log lines and quotes them when it exited on its own", async () => {
    assertBuilt();
    const dir = mkdtempSync(join(tmpdir(), "mxcd-bench-server-"));
    // The shipped config logs at info: one line per request, on stdout.
    const server: MxcdServer = await startMxcd({ cli: CLI, dir, shippedDefaults: true }, cleanup);
    await waitFor(
      () => server.lastOutput().includes("/_matrix/client/v3/login"),
      "the login's request line",
    );
    // An exit the bench did not ask for (SIGINT: mxcd drains and exits 0).
    process.kill(server.pid, "SIGINT");
    await waitFor(() => gone(server.pid), "mxcd's exit");
    await assert.rejects(server.stop(), (error: Error) => {
      assert.match(error.message, /^mxcd exited with code 0 before it was stopped/);
      assert.match(error.message, /--- mxcd stdout \(its log\), last \d+ lines ---/);
      assert.match(error.message, /shutting down: draining in-flight requests/);
      return true;
    });
    await server.stop(); // reported once: the cleanup's call resolves
  });

  it("quotes whole lines only, the last ones", async () => {
    const stream = new PassThrough();
    const tail = new OutputTail(stream, 18);
    stream.write("first\nsecond\n");
    await waitFor(() => tail.text().length > 0, "the first chunk");
    assert.deepEqual(tail.lines(5), ["first", "second"]);
    stream.write("third\nfourth\n");
    // The last 18 characters are "cond\nthird\nfourth\n": "cond" is left out.
    await waitFor(() => tail.text().includes("fourth"), "the second chunk");
    assert.deepEqual(tail.lines(5), ["third", "fourth"]);
    assert.deepEqual(tail.lines(1), ["fourth"]);
  });
});
