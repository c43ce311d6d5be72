/**
 * Connection limits of the HTTP layer: the lingering close after an early
 * answer (an over-limit upload must always be answered 413, never with a
 * reset), and the header and body-idle timeouts (a stalled client's
 * connection is closed). Raw sockets, so nothing is hidden by a client
 * library's retries.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { allKeys } from "./support/media.js";
import { until } from "./support/mxcd-processes.js";
import { storeTempFiles } from "./support/store-files.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const LIMIT = 64 * 1024;
/** Far larger than loopback socket buffers, so the client is still sending when mxcd answers. */
const BODY = 16 * 1024 * 1024;

function socketTo(baseUrl: string): Promise<Socket> {
  const url = new URL(baseUrl);
  const socket = connect(Number(url.port), url.hostname);
  return once(socket, "connect").then(() => socket);
}

/**
 * Sends an upload of `BODY` bytes as python's http.client does — the whole
 * body first, then reads the answer — and returns what it read, or the
 * socket error that cut it off.
 */
async function uploadThenRead(
  baseUrl: string,
  token: string,
  chunked: boolean,
): Promise<{ answer: string; error?: string }> {
  const socket = await socketTo(baseUrl);
  let answer = "";
  let error: string | undefined;
  socket.on("data", (d: Buffer) => {
    answer += d.toString("latin1");
  });
  socket.on("error", (e: NodeJS.ErrnoException) => {
    error ??= e.code ?? e.message;
  });
  // Read nothing until the body is sent (python does not either).
  socket.pause();
  const closed = once(socket, "close");
  const framing = chunked ? "transfer-encoding: chunked" : `content-length: ${BODY}`;
  socket.write(
    `POST /_matrix/media/v3/upload HTTP/1.1\r\nhost: localhost\r\n` +
      `authorization: Bearer ${token}\r\n${framing}\r\n\r\n`,
  );
  const chunk = randomBytes(64 * 1024);
  for (let sent = 0; sent < BODY && !socket.destroyed; sent += chunk.length) {
    const data = chunked
      ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")])
      : chunk;
    if (!socket.write(data)) await Promise.race([once(socket, "drain"), closed]);
  }
  if (chunked && !socket.destroyed) socket.write("0\r\n\r\n");
  socket.resume();
  await closed;
  return { answer, error };
}

describe("lingering close after an early answer", () => {
  let server: TestServer;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer("sqlite", { max_upload_size: LIMIT });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  for (const chunked of [false, true]) {
    const kind = chunked ? "a chunked" : "a declared";
    it(`always answers ${kind} over-limit upload with 413 M_TOO_LARGE, never a reset (10 tries)`, async () => {
      for (let i = 0; i < 10; i++) {
        const { answer, error } = await uploadThenRead(server.baseUrl, alice.token, chunked);
        assert.equal(error, undefined, `try ${i}: ${error}`);
        assert.match(answer, /^HTTP\/1\.1 413 /, `try ${i}`);
        assert.match(answer, /"errcode":"M_TOO_LARGE"/);
        assert.match(answer, /connection: close/i);
      }
    });
  }

  const python = spawnSync("python3", ["--version"]).status === 0;
  it(
    "answers python's http.client with 413 (5 tries)",
    { skip: !python && "no python3" },
    async () => {
      const url = new URL(server.baseUrl);
      const script = `
import http.client, sys
for i in range(5):
    c = http.client.HTTPConnection("${url.hostname}", ${url.port})
    c.request("POST", "/_matrix/media/v3/upload", body=b"x" * ${BODY},
              headers={"Authorization": "Bearer ${alice.token}"})
    r = c.getresponse()
    print(r.status, r.read().decode())
    c.close()
`;
      const child = spawn("python3", ["-c", script]);
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d;
      });
      child.stderr.on("data", (d: Buffer) => {
        err += d;
      });
      const [code] = await once(child, "exit");
      assert.equal(code, 0, err);
      const lines = out.trim().split("\n");
      assert.equal(lines.length, 5);
      for (const line of lines) assert.match(line, /^413 .*M_TOO_LARGE/);
    },
  );

  it("still serves the next request on a new connection", async () => {
    const res = await server.http.get("/health");
    assert.equal(res.status, 200);
  });
});

/** A closing that never comes fails the test instead of hanging the file. */
const STALL = { timeout: 20_000 };

describe("header and body-idle timeouts (http_timeouts)", () => {
  let server: TestServer;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer("sqlite", {
      http_timeouts: { headers: "1s", body_idle: "1s" },
    });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  /** Sends `head` (and `body`), then collects the answer until the server closes the socket. */
  async function sendAndWaitForClose(head: string, body = ""): Promise<string> {
    const socket = await socketTo(server.baseUrl);
    let answer = "";
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
    });
    socket.on("error", () => {});
    const closed = once(socket, "close");
    socket.write(head + body);
    await closed;
    return answer;
  }

  it("answers 408 and closes a connection whose headers never finish", STALL, async () => {
    const answer = await sendAndWaitForClose("GET /health HTTP/1.1\r\nhost: localhost\r\n");
    assert.match(answer, /^HTTP\/1\.1 408 /);
  });

  it("closes an upload whose body stalls after one byte, and leaves no file", STALL, async () => {
    const keys = await allKeys(server.app.store);
    const answer = await sendAndWaitForClose(
      `POST /_matrix/media/v3/upload HTTP/1.1\r\nhost: localhost\r\n` +
        `authorization: Bearer ${alice.token}\r\ncontent-length: 1000\r\n\r\n`,
      "x",
    );
    assert.equal(answer, "", "no answer: the connection was closed");
    const config = server.app.config.media_store;
    if (config.engine === "filesystem") await until(() => storeTempFiles(config.path).length === 0);
    assert.deepEqual(await allKeys(server.app.store), keys);
  });

  it("closes a JSON request whose body stalls", STALL, async () => {
    const answer = await sendAndWaitForClose(
      `POST /_matrix/client/v3/login HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n`,
      '{"type":',
    );
    assert.equal(answer, "");
  });

  it("keeps a slow upload that never stalls for long", async () => {
    const socket = await socketTo(server.baseUrl);
    let answer = "";
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
    });
    const closed = once(socket, "close");
    const body = randomBytes(40);
    socket.write(
      `POST /_matrix/media/v3/upload HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n` +
        `authorization: Bearer ${alice.token}\r\ncontent-length: ${body.length}\r\n\r\n`,
    );
    // 40 bytes, one every 50 ms: two seconds in all, twice body_idle.
    for (const byte of body) {
      socket.write(Buffer.of(byte));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await closed;
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /content_uri/);
  });
});
