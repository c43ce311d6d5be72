/**
 * Thumbnails under hostile load and input: memory bounded whatever the
 * concurrency (originals loaded once per flight, at most
 * `max_thumbnail_concurrency` at a time, decisions remembered), types taken
 * from the bytes with nosniff, animation budgets, deletion racing
 * pre-generation, and a missing blob. Every effect is read from `/metrics`
 * or the store, never from timing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import type { App } from "../src/app.js";
import { localContentKey, localThumbnailPrefix } from "../src/storage/media-paths.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { until } from "./support/mxcd-processes.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const THUMB = "/_matrix/client/v1/media/thumbnail/test.local";
const LOADS = "mxcd_thumbnail_source_loads_total";
const GENERATED = "mxcd_thumbnails_generated_total";

function png(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: "#c81e5a" } })
    .png()
    .toBuffer();
}

/** A GIF of `frames` square frames of `side` pixels, alternating red and blue (no two alike in a row). */
function gif(frames: number, side: number): Promise<Buffer> {
  const frameBytes = side * side * 4;
  const raw = Buffer.alloc(frameBytes * frames);
  for (let f = 0; f < frames; f++) {
    for (let i = f * frameBytes; i < (f + 1) * frameBytes; i += 4) {
      raw[i] = f % 2 ? 255 : 0;
      raw[i + 2] = f % 2 ? 0 : 255;
      raw[i + 3] = 255;
    }
  }
  const options = {
    raw: { width: side, height: side * frames, channels: 4 as const, pageHeight: side },
  };
  return sharp(raw, options).gif().toBuffer();
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function thumbnail(server: TestServer, user: TestUser, id: string, query: string) {
  return download(server.baseUrl, `${THUMB}/${id}?${query}`, { token: user.token });
}

/** Runs `n` thumbnail requests at once; `query(i)` gives each its parameters. */
function wave(
  server: TestServer,
  user: TestUser,
  id: string,
  n: number,
  query: (i: number) => string,
) {
  return Promise.all(Array.from({ length: n }, (_, i) => thumbnail(server, user, id, query(i))));
}

/** The change of the metric over `work`. */
async function delta(
  server: TestServer,
  name: string,
  labels: string,
  work: () => Promise<unknown>,
) {
  const before = await metric(server.baseUrl, name, labels);
  await work();
  return (await metric(server.baseUrl, name, labels)) - before;
}

forEachEngine("thumbnail hardening", (engine) => {
  describe("memory: originals loaded once, a few at a time, decisions remembered", () => {
    let server: TestServer;
    let alice: TestUser;
    before(async () => {
      server = await startTestServer(engine, {
        dynamic_thumbnails: true,
        thumbnail_sizes: [],
        max_image_pixels: 1_000_000,
        max_thumbnail_concurrency: 2,
      });
      alice = await server.user("alice");
    });
    after(() => server.stop());

    it("loads the original once and generates once for 48 concurrent requests of one size", async () => {
      const id = await uploadBytes(alice.http, await png(600, 400), { contentType: "image/png" });
      let answers: Awaited<ReturnType<typeof wave>> = [];
      const loads = await delta(server, LOADS, "", async () => {
        const generated = await delta(server, GENERATED, 'trigger="request"', async () => {
          answers = await wave(server, alice, id, 48, () => "width=50&height=50&method=crop");
        });
        assert.equal(generated, 1, "one thumbnail rendered for 48 requests");
      });
      assert.equal(loads, 1, "the original read into memory once");
      for (const res of answers) {
        assert.equal(res.status, 200);
        assert.deepEqual(res.bytes, answers[0]!.bytes);
      }
    });

    it("holds at most max_thumbnail_concurrency originals at once, however many sizes are asked", async () => {
      const id = await uploadBytes(alice.http, await png(700, 500), { contentType: "image/png" });
      const generated = await delta(server, GENERATED, 'trigger="request"', async () => {
        const answers = await wave(server, alice, id, 16, (i) => `width=${40 + i}&height=40`);
        for (const res of answers) assert.equal(res.status, 200);
      });
      assert.equal(generated, 16);
      const peak = await metric(server.baseUrl, "mxcd_thumbnail_sources_in_memory", 'stat="peak"');
      assert.ok(peak >= 1 && peak <= 2, `peak ${peak}`);
      assert.equal(await metric(server.baseUrl, "mxcd_thumbnail_source_bytes"), 0);
    });

    it("remembers 'serve the original': a second wave reads nothing", async () => {
      const small = await png(100, 80);
      const id = await uploadBytes(alice.http, small, { contentType: "image/png" });
      const first = await delta(server, LOADS, "", async () => {
        const answers = await wave(server, alice, id, 24, () => "width=320&height=240");
        for (const res of answers) assert.deepEqual(res.bytes, small);
      });
      assert.equal(first, 1);
      const second = await delta(server, LOADS, "", async () => {
        const answers = await wave(server, alice, id, 24, (i) => `width=${200 + i}&height=200`);
        for (const res of answers) assert.deepEqual(res.bytes, small);
      });
      assert.equal(second, 0);
    });

    it("remembers 'too large' and 'not an image': a second wave reads nothing", async () => {
      const big = await uploadBytes(alice.http, await png(1200, 1000), {
        contentType: "image/png",
      });
      const junk = await uploadBytes(alice.http, "no image here", { contentType: "image/png" });
      const first = await delta(server, LOADS, "", async () => {
        for (const res of await wave(server, alice, big, 12, () => "width=32&height=32")) {
          assert.equal(res.status, 413);
        }
        for (const res of await wave(server, alice, junk, 12, () => "width=32&height=32")) {
          assert.equal(res.status, 400);
        }
      });
      assert.equal(first, 2);
      const second = await delta(server, LOADS, "", async () => {
        for (const res of await wave(server, alice, big, 12, (i) => `width=${60 + i}&height=60`)) {
          assert.equal(res.status, 413);
        }
        for (const res of await wave(server, alice, junk, 12, (i) => `width=${60 + i}&height=9`)) {
          assert.equal(res.status, 400);
        }
      });
      assert.equal(second, 0);
    });

    it("answers 404 M_NOT_FOUND when the original's bytes are gone", async () => {
      const id = await uploadBytes(alice.http, await png(300, 300), { contentType: "image/png" });
      await server.app.store.delete(localContentKey(id));
      const res = await alice.http.get(`${THUMB}/${id}?width=32&height=32`);
      assert.equal(res.status, 404);
      assert.equal(res.body.errcode, "M_NOT_FOUND");
    });
  });

  describe("types from the bytes, nosniff everywhere", () => {
    let server: TestServer;
    let alice: TestUser;
    let id: string;
    const bytes = gif(1, 20);
    before(async () => {
      server = await startTestServer(engine, { thumbnail_sizes: [] });
      alice = await server.user("alice");
      id = await uploadBytes(alice.http, await bytes, { contentType: "text/html" });
    });
    after(() => server.stop());

    it("serves a GIF uploaded as text/html as image/gif when the original is the thumbnail", async () => {
      const res = await thumbnail(server, alice, id, "width=64&height=64");
      assert.equal(res.status, 200);
      assert.deepEqual(res.bytes, await bytes);
      assert.equal(res.headers.get("content-type"), "image/gif");
      assert.match(res.headers.get("content-disposition")!, /^inline/);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    });

    it("makes a PNG thumbnail of it, inline with nosniff", async () => {
      const res = await thumbnail(server, alice, id, "width=8&height=8&method=crop");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "image/png");
      assert.equal(res.headers.get("content-disposition"), "inline; filename=thumbnail.png");
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    });

    it("downloads it as the declared type, as an attachment, with nosniff", async () => {
      const res = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/download/test.local/${id}`,
        {
          token: alice.token,
        },
      );
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-disposition")!, /^attachment/);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    });

    it("sends nosniff on media errors and federation media too", async () => {
      for (const path of [
        `${THUMB}/nosuchmedia?width=8&height=8`,
        "/_matrix/media/v3/download/test.local/nosuchmedia",
        "/_matrix/federation/v1/media/download/nosuchmedia",
      ]) {
        const res = await download(server.baseUrl, path, { token: alice.token });
        assert.ok(res.status >= 400, path);
        assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
      }
    });
  });

  describe("animation budgets", () => {
    let server: TestServer;
    let alice: TestUser;
    before(async () => {
      server = await startTestServer(engine, {
        dynamic_thumbnails: true,
        thumbnail_sizes: [],
        max_thumbnail_frames: 100,
        thumbnail_timeout: "1s",
      });
      alice = await server.user("alice");
    });
    after(() => server.stop());

    const stillOf = async (res: Awaited<ReturnType<typeof thumbnail>>) => {
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "image/png");
      assert.equal((await sharp(res.bytes).metadata()).pages ?? 1, 1);
    };

    it("gives a still for an animation over max_thumbnail_frames, without decoding its frames", async () => {
      const id = await uploadBytes(alice.http, await gif(300, 64), { contentType: "image/gif" });
      const fallbacks = await delta(
        server,
        "mxcd_thumbnail_still_fallbacks_total",
        'reason="budget"',
        async () =>
          stillOf(
            await thumbnail(server, alice, id, "width=16&height=16&method=crop&animated=true"),
          ),
      );
      assert.equal(fallbacks, 1);
      const within = await uploadBytes(alice.http, await gif(50, 64), { contentType: "image/gif" });
      const animated = await thumbnail(server, alice, within, "width=16&height=16&animated=true");
      assert.equal(animated.headers.get("content-type"), "image/webp");
    });
  });

  describe("time budget", () => {
    let server: TestServer;
    let alice: TestUser;
    before(async () => {
      server = await startTestServer(engine, {
        dynamic_thumbnails: true,
        thumbnail_sizes: [],
        max_thumbnail_frames: 100_000,
        thumbnail_timeout: "1s",
      });
      alice = await server.user("alice");
    });
    after(() => server.stop());

    it("gives a still when an animation runs over thumbnail_timeout (60,000 frames)", async () => {
      // About ten seconds of animated work on the development machine: far over 1 s.
      const id = await uploadBytes(alice.http, await gif(60_000, 4), { contentType: "image/gif" });
      const fallbacks = await delta(
        server,
        "mxcd_thumbnail_still_fallbacks_total",
        'reason="timeout"',
        async () => {
          const res = await thumbnail(
            server,
            alice,
            id,
            "width=2&height=2&method=crop&animated=true",
          );
          assert.equal(res.status, 200);
          assert.equal(res.headers.get("content-type"), "image/png");
        },
      );
      assert.equal(fallbacks, 1);
    });
  });

  describe("deletion racing pre-generation", () => {
    let server: TestServer;
    let alice: TestUser;
    let admin: TestUser;
    /** A pause point: once armed, the next call waits at it until released. */
    const gate = () => ({ armed: false, arrived: deferred(), released: deferred() });
    let writes = gate(); // the first thumbnail write
    let listings = gate(); // the end of a listing of thumbnails
    const pass = async (g: ReturnType<typeof gate>) => {
      if (!g.armed) return;
      g.armed = false;
      g.arrived.resolve();
      await g.released.promise;
    };
    const pauseStore = (app: App) => {
      const store = app.store as { write: App["store"]["write"]; list: App["store"]["list"] };
      const write = store.write.bind(store);
      const list = store.list.bind(store);
      store.write = async (key, source, options) => {
        if (key.startsWith("local_thumbnails/")) await pass(writes);
        return write(key, source, options);
      };
      store.list = async function* (prefix) {
        yield* list(prefix);
        if (prefix.startsWith("local_thumbnails/")) await pass(listings);
      };
    };
    const leftovers = async (id: string) => {
      const rows = await server.app.database.db
        .selectFrom("local_media_repository_thumbnails")
        .select("media_id")
        .where("media_id", "=", id)
        .execute();
      const prefix = localThumbnailPrefix(id);
      const files = (await allKeys(server.app.store)).filter((k) => k.startsWith(prefix));
      return { rows: rows.length, files };
    };
    const pregenerationsDone = () =>
      until(
        async () => (await metric(server.baseUrl, "mxcd_thumbnail_pregenerations_running")) === 0,
      );
    before(async () => {
      server = await startTestServer(engine, {}, { beforeStart: pauseStore });
      alice = await server.user("alice");
      admin = await server.user("admin", { admin: true });
    });
    after(() => server.stop());

    it("leaves no thumbnail file and no row when the media is deleted mid-way", async () => {
      writes = gate();
      writes.armed = true;
      const id = await uploadBytes(alice.http, await png(1000, 800), { contentType: "image/png" });
      await writes.arrived.promise; // the first thumbnail is rendered; its write waits
      const deleted = await admin.http.delete(`/_synapse/admin/v1/media/test.local/${id}`);
      assert.deepEqual(deleted.body, { deleted_media: [id], total: 1 });
      writes.released.resolve();
      await pregenerationsDone();
      assert.deepEqual(await leftovers(id), { rows: 0, files: [] });
      assert.equal(await metric(server.baseUrl, "mxcd_thumbnails_discarded_total"), 1);
    });

    it("sweeps thumbnails written between the deletion's listing and its rows", async () => {
      writes = gate();
      listings = gate();
      writes.armed = true;
      listings.armed = true;
      const id = await uploadBytes(alice.http, await png(1000, 800), { contentType: "image/png" });
      await writes.arrived.promise;
      const deletion = admin.http.delete(`/_synapse/admin/v1/media/test.local/${id}`);
      await listings.arrived.promise; // the deletion listed no thumbnails; its rows wait
      writes.released.resolve(); // pre-generation writes and records every size meanwhile
      await pregenerationsDone();
      assert.ok((await leftovers(id)).files.length > 0, "the race happened");
      listings.released.resolve();
      assert.deepEqual((await deletion).body, { deleted_media: [id], total: 1 });
      assert.deepEqual(await leftovers(id), { rows: 0, files: [] });
    });
  });
});
