/**
 * Two mxcd servers on loopback federate media: a user of A downloads and
 * thumbnails media uploaded on B, A caches it (byte for byte, Synapse
 * layout), quarantine on A stays on A, A's quarantined hashes quarantine
 * later fetches automatically, and purge_media_cache empties A's cache.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { localContentKey } from "../../src/storage/media-paths.js";
import { forEachEngine } from "../support/databases.js";
import { download, uploadBytes } from "../support/media.js";
import { freePort } from "../support/postgres-cluster.js";
import { startTestServer, type TestServer, type TestUser } from "../support/test-server.js";

const ADMIN = "/_synapse/admin/v1";
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

/** How many federation downloads B has answered (from its /metrics). */
async function federationDownloads(server: TestServer): Promise<number> {
  const text = (await server.http.get("/metrics")).text;
  const match =
    /mxcd_http_requests_total\{method="GET",route="\/_matrix\/federation\/v1\/media\/download\/:mediaId",status="200"\} (\d+)/.exec(
      text,
    );
  return Number(match?.[1] ?? 0);
}

forEachEngine("federation between two mxcd servers", (engine) => {
  let a: TestServer;
  let b: TestServer;
  let aliceOnA: TestUser;
  let adminOnA: TestUser;
  let bobOnB: TestUser;
  before(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const resolvers = {
      "a.test": `http://127.0.0.1:${portA}`,
      "b.test": `http://127.0.0.1:${portB}`,
    };
    const common = { ip_range_whitelist: ["127.0.0.0/8"], federation_custom_resolvers: resolvers };
    b = await startTestServer(engine, {
      ...common,
      server_name: "b.test",
      listen: { host: "127.0.0.1", port: portB },
    });
    a = await startTestServer(engine, {
      ...common,
      server_name: "a.test",
      listen: { host: "127.0.0.1", port: portA },
    });
    aliceOnA = await a.user("alice");
    adminOnA = await a.user("admin", { admin: true });
    bobOnB = await b.user("bob");
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  const fromA = (id: string, query = "") =>
    download(a.baseUrl, `/_matrix/client/v1/media/download/b.test/${id}${query}`, {
      token: aliceOnA.token,
    });

  it("downloads and thumbnails B's media through A; A's cache matches B byte for byte", async () => {
    const png = await sharp({
      create: { width: 300, height: 200, channels: 3, background: "#336699" },
    })
      .png()
      .toBuffer();
    const id = await uploadBytes(bobOnB.http, png, {
      contentType: "image/png",
      filename: "pic.png",
    });
    const got = await fromA(id);
    assert.equal(got.status, 200);
    assert.deepEqual(got.bytes, png);
    assert.equal(got.headers.get("content-type"), "image/png");
    assert.equal(got.headers.get("content-disposition"), "inline; filename=pic.png");
    const again = await fromA(id);
    assert.deepEqual(again.bytes, png, "served from the cache");
    const info = await adminOnA.http.get(`${ADMIN}/media/b.test/${id}`);
    assert.equal(info.status, 200);
    assert.equal(info.body.media_info.media_origin, "b.test");
    assert.equal(info.body.media_info.sha256, sha256(png));
    assert.equal(info.body.media_info.upload_name, "pic.png");
    const thumb = await download(
      a.baseUrl,
      `/_matrix/client/v1/media/thumbnail/b.test/${id}?width=32&height=32&method=crop`,
      {
        token: aliceOnA.token,
      },
    );
    assert.equal(thumb.status, 200);
    assert.equal(thumb.headers.get("content-type"), "image/png");
    const meta = await sharp(thumb.bytes).metadata();
    assert.deepEqual([meta.width, meta.height], [32, 32]);
  });

  it("fetches once for concurrent requests of the same uncached media", async () => {
    const bytes = randomBytes(200_000);
    const id = await uploadBytes(bobOnB.http, bytes);
    const before = await federationDownloads(b);
    const answers = await Promise.all(Array.from({ length: 5 }, () => fromA(id)));
    for (const res of answers) {
      assert.equal(res.status, 200);
      assert.deepEqual(res.bytes, bytes);
    }
    assert.equal((await federationDownloads(b)) - before, 1);
  });

  it("B answers a federation download whose blob is gone with 404 M_NOT_FOUND, not 500", async () => {
    const id = await uploadBytes(bobOnB.http, randomBytes(1000));
    await b.app.store.delete(localContentKey(id));
    const response = await a.app.federation.get(
      "b.test",
      `/_matrix/federation/v1/media/download/${id}`,
      { maxBytes: 64 * 1024 },
    );
    let text = "";
    for await (const chunk of response.body) text += (chunk as Buffer).toString();
    assert.equal(response.status, 404, text);
    assert.equal(JSON.parse(text).errcode, "M_NOT_FOUND");
    // And A, asked by its client, passes the 404 on.
    assert.equal((await fromA(id)).status, 404);
  });

  it("answers 404 for media B does not have", async () => {
    const res = await aliceOnA.http.get("/_matrix/client/v1/media/download/b.test/NoSuchMediaOnB");
    assert.equal(res.status, 404);
    assert.equal(res.body.errcode, "M_NOT_FOUND");
  });

  describe("quarantine", () => {
    it("hides media on A only", async () => {
      const bytes = randomBytes(5000);
      const id = await uploadBytes(bobOnB.http, bytes);
      assert.equal((await fromA(id)).status, 200);
      await adminOnA.http.post(`${ADMIN}/media/quarantine/b.test/${id}`);
      assert.equal((await fromA(id)).status, 404);
      const onB = await download(b.baseUrl, `/_matrix/client/v1/media/download/b.test/${id}`, {
        token: bobOnB.token,
      });
      assert.equal(onB.status, 200);
    });

    it("quarantines a later fetch of identical bytes automatically, with a feed record", async () => {
      const bytes = randomBytes(6000);
      const first = await uploadBytes(bobOnB.http, bytes);
      assert.equal((await fromA(first)).status, 200);
      await adminOnA.http.post(`${ADMIN}/media/quarantine/b.test/${first}`);
      const copy = await uploadBytes(bobOnB.http, bytes);
      // The first request streams while the bytes arrive; the hash match,
      // known at the end, fails it: 404 if nothing was sent yet, else cut off
      // before the last chunk.
      const outcome: number | string = await fromA(copy).then(
        (res) => res.status,
        () => "cut off",
      );
      assert.ok(outcome === 404 || outcome === "cut off", String(outcome));
      assert.equal((await fromA(copy)).status, 404);
      const info = await adminOnA.http.get(`${ADMIN}/media/b.test/${copy}`);
      assert.equal(info.body.media_info.quarantined_by, "system");
      const feed = await adminOnA.http.get(`${ADMIN}/media/quarantine_changes?limit=1000`);
      const record = feed.body.changes.find((c: { media_id: string }) => c.media_id === copy);
      assert.deepEqual(
        [record.origin, record.quarantined, record.quarantined_by],
        ["b.test", true, "system"],
      );
    });

    it("blocks uncached remote media quarantined before it is ever fetched", async () => {
      const id = await uploadBytes(bobOnB.http, randomBytes(100));
      await adminOnA.http.post(`${ADMIN}/media/quarantine/b.test/${id}`);
      assert.equal((await fromA(id)).status, 404);
    });
  });

  it("purge_media_cache empties A's cache and the next request fetches again", async () => {
    const bytes = randomBytes(3000);
    const id = await uploadBytes(bobOnB.http, bytes);
    assert.equal((await fromA(id)).status, 200);
    const purge = await adminOnA.http.post(
      `${ADMIN}/purge_media_cache?before_ts=${Date.now() + 60_000}`,
    );
    assert.equal(purge.status, 200);
    assert.ok(purge.body.deleted >= 1);
    assert.equal((await adminOnA.http.get(`${ADMIN}/media/b.test/${id}`)).status, 404);
    const before = await federationDownloads(b);
    const again = await fromA(id);
    assert.deepEqual(again.bytes, bytes);
    assert.equal((await federationDownloads(b)) - before, 1);
  });
});

forEachEngine("federation safety", (engine) => {
  it("refuses to fetch from private addresses unless allowed", async () => {
    // A listener on loopback that answers like a server without the media:
    // reachable, so only the address guard keeps mxcd from connecting.
    let connections = 0;
    const target = createServer((_req, res) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ errcode: "M_NOT_FOUND", error: "Not found" }));
    });
    target.on("connection", () => {
      connections += 1;
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const port = (target.address() as AddressInfo).port;
    const resolvers = {
      "literal.test": `http://127.0.0.1:${port}`,
      // A name, so the check after DNS (the socket's lookup hook) is the one that refuses.
      "named.test": `http://localhost:${port}`,
    };
    const guarded = await startTestServer(engine, {
      server_name: "d.test",
      federation_custom_resolvers: resolvers,
    });
    const allowed = await startTestServer(engine, {
      server_name: "e.test",
      federation_custom_resolvers: resolvers,
      ip_range_whitelist: ["127.0.0.0/8", "::1"],
    });
    try {
      const user = await guarded.user("u");
      for (const host of ["literal.test", "named.test"]) {
        const res = await user.http.get(`/_matrix/client/v1/media/download/${host}/SomeMediaId`);
        assert.equal(res.status, 502, host);
        assert.equal(res.body.errcode, "M_UNKNOWN", host);
      }
      assert.equal(connections, 0, "no connection was made to the loopback listener");
      // The same listener answers once loopback is allowed: it was reachable.
      const allowedUser = await allowed.user("u");
      const res = await allowedUser.http.get("/_matrix/client/v1/media/download/literal.test/Id");
      assert.equal(res.status, 404);
      assert.ok(connections >= 1, "the allowed server connected");
    } finally {
      await guarded.stop();
      await allowed.stop();
      target.close();
    }
  });
});
