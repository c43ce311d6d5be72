/**
 * Hostile pass over the remote download rate limiter (docs/media.md "Rate
 * limits"): forged and malformed `X-Forwarded-For` headers, with
 * `listen.x_forwarded` off (the header must be ignored) and on (its
 * left-most entry keys the bucket, whatever it holds). Every answer is a
 * download or 429 `M_LIMIT_EXCEEDED`, never a 500: the bucket key goes into
 * the database, so an over-long or odd forwarded address must not break the
 * statement (MMR #643: a limiter failure answered 500).
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { download } from "./support/media.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

/** An origin answering every federation media download with `size` bytes (multipart). */
function startOrigin(size: number): Promise<Server & { hits: () => number }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    const body = Buffer.concat([
      Buffer.from(
        "\r\n--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nContent-Type: text/plain\r\n\r\n",
      ),
      Buffer.alloc(size, 0x61),
      Buffer.from("\r\n--b--\r\n"),
    ]);
    res.writeHead(200, {
      "content-type": "multipart/mixed; boundary=b",
      "content-length": String(body.length),
    });
    res.end(body);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(Object.assign(server, { hits: () => hits }))),
  );
}

/** Forwarded-for values an attacker (or a confused proxy) may send. */
const HOSTILE_FORWARDED = [
  "x".repeat(8_000), // over PostgreSQL's btree entry limit as a key
  `${"2001:db8::1, ".repeat(600)}203.0.113.9`,
  "",
  " ",
  ",,,",
  " , 203.0.113.1",
  "unknown",
  "203.0.113.1:4711",
  "[2001:db8::1]:443",
  "::ffff:203.0.113.1",
  "999.999.999.999",
  "203.0.113.1\t",
  "\u00ff\u00fe latin-1",
  "'; DROP TABLE rate_limit_buckets; --",
  "%00",
];

forEachEngine("hostile: remote download limiter and X-Forwarded-For", (engine) => {
  let origin: Server & { hits: () => number };
  const servers: TestServer[] = [];
  before(async () => {
    origin = await startOrigin(1000);
  });
  after(async () => {
    for (const server of servers) await server.stop();
    origin.close();
  });

  it("100 concurrent uncached fetches from one forged address: 200 or 429 only, at most what fits", async () => {
    const server = await startTestServer(engine, {
      ip_range_whitelist: ["127.0.0.0/8"],
      federation_custom_resolvers: {
        "origin.test": `http://127.0.0.1:${(origin.address() as AddressInfo).port}`,
      },
      enable_authenticated_media: false,
      // Room for three 1000-byte downloads (and their multipart framing).
      remote_media_download_burst_count: 3500,
      remote_media_download_per_second: 1,
      listen: { host: "127.0.0.1", port: 0, x_forwarded: true },
    });
    servers.push(server);
    const hitsBefore = origin.hits();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        download(server.baseUrl, `/_matrix/media/v3/download/origin.test/c${i}`, {
          headers: { "x-forwarded-for": "198.51.100.7" },
        }),
      ),
    );
    const statuses = answers.map((a) => a.status);
    assert.deepEqual(
      statuses.filter((s) => s !== 200 && s !== 429),
      [],
      "only 200 and 429",
    );
    const fetched = statuses.filter((s) => s === 200).length;
    assert.ok(fetched >= 1 && fetched <= 3, `${fetched} fetched; the bucket holds 3`);
    // Requests may reach the origin beyond what fits: the headroom check charges
    // nothing, so concurrent fetches pass it together and are refused on the
    // declared length (Synapse's order, docs/media.md); never more than asked.
    assert.ok(origin.hits() - hitsBefore <= 100);
    for (const refused of answers.filter((a) => a.status === 429)) {
      assert.equal(JSON.parse(refused.bytes.toString()).errcode, "M_LIMIT_EXCEEDED");
    }
  });

  for (const xForwarded of [false, true]) {
    it(`x_forwarded ${xForwarded}: every hostile X-Forwarded-For is answered 200 or 429, never 500`, async () => {
      const server = await startTestServer(engine, {
        ip_range_whitelist: ["127.0.0.0/8"],
        federation_custom_resolvers: {
          "origin.test": `http://127.0.0.1:${(origin.address() as AddressInfo).port}`,
        },
        enable_authenticated_media: false,
        // Room for one 1000-byte download per bucket, then 429.
        remote_media_download_burst_count: 1500,
        remote_media_download_per_second: 1,
        listen: { host: "127.0.0.1", port: 0, x_forwarded: xForwarded },
      });
      servers.push(server);
      let n = 0;
      const statuses: number[] = [];
      for (const forwarded of HOSTILE_FORWARDED) {
        for (let i = 0; i < 2; i++) {
          const res = await download(
            server.baseUrl,
            `/_matrix/media/v3/download/origin.test/m${xForwarded}_${n++}`,
            { headers: { "x-forwarded-for": forwarded } },
          );
          const what = `${JSON.stringify(forwarded.slice(0, 40))} → ${res.status} ${res.bytes.toString().slice(0, 200)}`;
          assert.ok(res.status === 200 || res.status === 429, what);
          if (res.status === 429) {
            const body = JSON.parse(res.bytes.toString());
            assert.equal(body.errcode, "M_LIMIT_EXCEEDED", what);
            assert.equal(typeof body.retry_after_ms, "number", what);
          }
          statuses.push(res.status);
        }
      }
      if (!xForwarded) {
        // One bucket, the peer's: the first download fits, every other is refused.
        assert.deepEqual(
          statuses,
          statuses.map((_, i) => (i === 0 ? 200 : 429)),
        );
      } else {
        assert.ok(statuses.includes(429), "a forged address still has a bucket");
      }
    });
  }
});
