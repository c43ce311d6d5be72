/**
 * Loopback networking helpers: pick a free port, wait for a server to answer,
 * and look at one response the way wrk will see it.
 */
import { createHash } from "node:crypto";
import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

/**
 * Polls `url` until it answers with any HTTP status, or rejects after
 * `timeoutMs`. `alive` lets the caller stop early when its server has died.
 */
export async function waitForHttp(
  url: string,
  timeoutMs: number,
  alive: () => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`the server for ${url} exited while starting`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1_000) });
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`no answer from ${url} after ${timeoutMs} ms`);
}

/** SHA-256 (hex) and length of a response body; rejects unless the status is 200. */
export async function bodyDigest(
  url: string,
  headers: Record<string, string>,
): Promise<{ sha256: string; bytes: number }> {
  const response = await fetch(url, { headers });
  if (response.status !== 200 || !response.body) {
    throw new Error(`GET ${url} answered ${response.status}: ${await response.text()}`);
  }
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of response.body) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * Size in bytes of the status line and headers of a keep-alive GET, as wrk
 * counts them: subtracting it per response from wrk's byte count leaves the
 * payload alone, so servers with chattier headers are compared fairly.
 */
export function responseHeaderBytes(url: string, headers: Record<string, string>): Promise<number> {
  const { hostname, port, pathname, search } = new URL(url);
  const lines = [`GET ${pathname}${search} HTTP/1.1`, `Host: ${hostname}:${port}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  const request = `${lines.join("\r\n")}\r\n\r\n`;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(request));
    let head = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.destroy();
      const status = head.subarray(0, head.indexOf("\r\n")).toString();
      if (!/^HTTP\/1\.1 200 /.test(status)) reject(new Error(`GET ${url}: ${status}`));
      else resolve(end + 4);
    });
    socket.once("error", reject);
  });
}
