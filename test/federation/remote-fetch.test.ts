/**
 * Remote media fetching against a scripted origin server on loopback: the
 * legacy fallback, `Location` parts, failure memory, size limits,
 * `prevent_media_downloads_from` and `allow_remote=false`.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, it } from "node:test";
import { forEachEngine } from "../support/databases.js";
import { download } from "../support/media.js";
import { startTestServer, type TestServer, type TestUser } from "../support/test-server.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** An origin whose answers each test scripts; counts requests by path. */
class FakeOrigin {
  readonly hits = new Map<string, number>();
  handler: Handler = (_req, res) => res.writeHead(500).end();
  readonly server: Server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
    this.handler(req, res);
  });
  get base(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

const multipart = (boundary: string, second: string, bytes = "") =>
  `\r\n--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}\r\n${second}\r\n\r\n${bytes}\r\n--${boundary}--\r\n`;

forEachEngine("remote media fetching", (engine) => {
  let origin: FakeOrigin;
  let server: TestServer;
  let user: TestUser;
  before(async () => {
    origin = new FakeOrigin();
    await new Promise<void>((r) => origin.server.listen(0, "127.0.0.1", r));
    server = await startTestServer(engine, {
      ip_range_whitelist: ["127.0.0.0/8"],
      federation_custom_resolvers: { "origin.test": origin.base, "blocked.test": origin.base },
      prevent_media_downloads_from: ["blocked.test"],
      max_upload_size: 1000,
    });
    user = await server.user("u");
  });
  after(async () => {
    await server.stop();
    origin.server.close();
  });

  const get = (id: string, query = "", host = "origin.test") =>
    download(server.baseUrl, `/_matrix/client/v1/media/download/${host}/${id}${query}`, {
      token: user.token,
    });

  it("falls back to the legacy download when the origin does not know the federation endpoint", async () => {
    origin.handler = (req, res) => {
      if (req.url?.startsWith("/_matrix/federation/")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }));
      } else {
        res.writeHead(200, {
          "content-type": "text/plain",
          "content-disposition": "attachment; filename=old.txt",
        });
        res.end("legacy bytes");
      }
    };
    const res = await get("LegacyOnly");
    assert.equal(res.status, 200);
    assert.equal(res.bytes.toString(), "legacy bytes");
    assert.match(res.headers.get("content-disposition")!, /filename=old\.txt/);
    assert.equal(origin.hits.get("/_matrix/media/v3/download/origin.test/LegacyOnly"), 1);
  });

  it("follows a Location part", async () => {
    origin.handler = (req, res) => {
      if (req.url?.startsWith("/_matrix/federation/")) {
        res.writeHead(200, { "content-type": "multipart/mixed; boundary=bnd" });
        res.end(multipart("bnd", `Location: ${origin.base}/cdn/file`));
      } else {
        res.writeHead(200, { "content-type": "image/png" });
        res.end("from the cdn");
      }
    };
    const res = await get("ViaLocation");
    assert.equal(res.bytes.toString(), "from the cdn");
    assert.equal(res.headers.get("content-type"), "image/png");
  });

  it("passes a remote 404 on, and remembers failures instead of asking again at once", async () => {
    origin.handler = (_req, res) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ errcode: "M_NOT_FOUND", error: "nope" }));
    };
    assert.equal((await get("Missing")).status, 404);
    origin.handler = (_req, res) => res.writeHead(500).end("broken");
    const first = await get("Broken");
    assert.equal(first.status, 502);
    const second = await get("Broken");
    assert.equal(second.status, 502);
    assert.equal(origin.hits.get("/_matrix/federation/v1/media/download/Broken"), 1, "remembered");
  });

  it("answers 502 M_TOO_LARGE for remote media over max_upload_size and caches nothing", async () => {
    origin.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "multipart/mixed; boundary=bnd" });
      res.end(multipart("bnd", "Content-Type: application/octet-stream", "x".repeat(5000)));
    };
    // Synapse (and the spec): remote media over the limit is 502 M_TOO_LARGE.
    // The bytes arrive in one piece, so none reached the client before the
    // meter refused them (the live stream holds back its last chunk).
    const res = await get("TooBig");
    assert.equal(res.status, 502);
    assert.equal(JSON.parse(res.bytes.toString()).errcode, "M_TOO_LARGE");
    const again = await server.http
      .withToken(user.token)
      .get("/_matrix/client/v1/media/download/origin.test/TooBig");
    assert.equal(again.status, 502);
    assert.equal(again.body.errcode, "M_TOO_LARGE");
    const rows = await server.app.database.db
      .selectFrom("remote_media_cache")
      .selectAll()
      .where("media_id", "=", "TooBig")
      .execute();
    assert.equal(rows.length, 0);
  });

  it("answers 502 M_TOO_LARGE when the legacy download declares a length over max_upload_size", async () => {
    origin.handler = (req, res) => {
      if (req.url?.startsWith("/_matrix/federation/")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }));
      } else {
        res.writeHead(200, { "content-type": "text/plain", "content-length": "1001" });
        res.end("y".repeat(1001));
      }
    };
    const res = await get("DeclaredTooBig");
    assert.equal(res.status, 502);
    assert.equal(JSON.parse(res.bytes.toString()).errcode, "M_TOO_LARGE");
  });

  it("never fetches from prevent_media_downloads_from, nor with allow_remote=false", async () => {
    origin.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "multipart/mixed; boundary=bnd" });
      res.end(multipart("bnd", "Content-Type: text/plain", "data"));
    };
    assert.equal((await get("Any", "", "blocked.test")).status, 404);
    assert.equal(origin.hits.get("/_matrix/federation/v1/media/download/Any"), undefined);
    const legacy = await download(
      server.baseUrl,
      "/_matrix/media/v3/download/origin.test/NotFetched?allow_remote=false",
    );
    assert.equal(legacy.status, 404);
    assert.equal(origin.hits.get("/_matrix/federation/v1/media/download/NotFetched"), undefined);
  });
});
