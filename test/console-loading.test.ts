/**
 * How the moderation console loads the review grid (docs/console.md "How the
 * grid loads"), in headless Chromium against a real server:
 * - the grid's first page is requested with the session check, not after it
 *   (the check's `whoami` is held until the listing request has left);
 * - thumbnails load at most four at a time, first tiles first (every
 *   thumbnail request is held until the test releases it);
 * - a tile's picture is fetched only when the tile comes near the window: in
 *   a small window the tiles far below are not fetched until scrolled to,
 *   and a tile that leaves the window before its turn leaves the queue;
 * - with the listing's blur previews, blurred tiles show them and fetch no
 *   thumbnail; a tile fetches its own when unblurred (the other tests take
 *   the previews out of the listing, as for media stored before them);
 * - a second load of the grid fetches no thumbnail again (the browser's HTTP
 *   cache answers), but does fetch a quarantined picture again through the
 *   admin bypass (never cached).
 * Requests are observed where they happen (Playwright's request routing, the
 * server's /metrics), never timed.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Route } from "playwright-core";
import { chromiumMissing, launchChromium } from "./support/chromium.js";
import { uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { photoLike } from "./support/photo-like.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const HERE = "test.local";
const TOKEN_KEY = "mxcd-console-token";
const PICTURES = 9;
const THUMBNAILS = "**/_matrix/client/v1/media/thumbnail/**";
const THUMBNAIL_ROUTE = "/_matrix/client/v1/media/thumbnail/:serverName/:mediaId";
const DOWNLOAD_ROUTE = "/_matrix/client/v1/media/download/:serverName/:mediaId";

/** GETs of `route` the server answered 200 (its fast path counts its answers here too). */
function served(server: TestServer, route: string): Promise<number> {
  return metric(
    server.baseUrl,
    "mxcd_http_requests_total",
    `method="GET",route="${route}",status="200"`,
  );
}

const reason = chromiumMissing();
if (reason) {
  describe("console loading", { skip: `!!! SKIPPED: ${reason}` }, () => {});
} else {
  describe("console loading", () => {
    let server: TestServer;
    let admin: TestUser;
    let browser: Browser;
    /** Media ids, newest first: the grid's order. */
    const newestFirst: string[] = [];
    let quarantined: string;

    /**
     * A context whose pages start signed in as the admin (a reloaded tab).
     * Without `previews`, the listing's blur previews are taken out of its
     * answers (as for media stored before mxcd made them): the tiles then
     * fetch their pictures, which is what most tests here look at.
     */
    const signedIn = async (
      viewport = { width: 1366, height: 860 },
      previews = false,
    ): Promise<BrowserContext> => {
      const context = await browser.newContext({ viewport });
      await context.addInitScript({
        content: `sessionStorage.setItem(${JSON.stringify(TOKEN_KEY)}, ${JSON.stringify(admin.token)});`,
      });
      if (!previews) {
        await context.route(
          (at) => at.pathname === "/_mxcd/admin/v1/media",
          async (route) => {
            const response = await route.fetch();
            const body = await response.json();
            for (const item of body.media ?? []) delete item.blur_preview;
            await route.fulfill({ response, json: body });
          },
        );
      }
      return context;
    };

    const url = () => `${server.baseUrl}/_mxcd/console/`;

    before(async () => {
      server = await startTestServer("sqlite", {
        // The media store is not what this file tests (the S3 store is proven by
        // its own suites): a fixed folder keeps it out of the runner's S3 pass.
        media_store: {
          engine: "filesystem",
          path: mkdtempSync(join(tmpdir(), "mxcd-console-loading-media-")),
        },
      });
      admin = await server.user("admin", { admin: true });
      const alice = await server.user("alice");
      for (let i = 0; i < PICTURES; i++) {
        const bytes = await (await photoLike(800, 600, 500 + i)).jpeg({ quality: 80 }).toBuffer();
        const id = await uploadBytes(alice.http, bytes, {
          contentType: "image/jpeg",
          filename: `p${i}.jpg`,
        });
        newestFirst.unshift(id);
      }
      // The oldest picture is quarantined: the grid shows it through the bypass.
      quarantined = newestFirst.at(-1)!;
      const q = await admin.http.post(`/_synapse/admin/v1/media/quarantine/${HERE}/${quarantined}`);
      assert.equal(q.status, 200);
      // Blur previews are made in the background after each upload; the
      // listing never gives one for the quarantined picture.
      await waitFor(async () => {
        const res = await admin.http.get(`/_mxcd/admin/v1/media?limit=${PICTURES}`);
        const previews = res.body.media.filter((m: { blur_preview?: string }) => m.blur_preview);
        return previews.length === PICTURES - 1;
      }, "every unquarantined picture's blur preview");
      browser = await launchChromium();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    it("requests the grid's first page with the session check, not after it", async () => {
      const context = await signedIn();
      let listingSent!: () => void;
      const listing = new Promise<void>((resolve) => {
        listingSent = resolve;
      });
      context.on("request", (request) => {
        if (request.url().includes("/_mxcd/admin/v1/media?")) listingSent();
      });
      // The session check's whoami answers only once the listing has left:
      // a console that waits for the check before listing never shows the grid.
      await context.route("**/_matrix/client/v3/account/whoami", async (route) => {
        await listing;
        await route.continue();
      });
      try {
        const page = await context.newPage();
        await page.goto(url());
        await page
          .locator("ul.grid > li.tile")
          .nth(PICTURES - 1)
          .waitFor({ state: "attached", timeout: 20_000 });
      } finally {
        listingSent(); // never leave the route hanging
        await context.close();
      }
    });

    it("loads thumbnails at most four at a time, first tiles first", async () => {
      const context = await signedIn();
      const held: { route: Route; mediaId: string }[] = [];
      const order: string[] = [];
      let most = 0;
      await context.route(THUMBNAILS, (route) => {
        const mediaId = new URL(route.request().url()).pathname.split("/").at(-1)!;
        order.push(mediaId);
        held.push({ route, mediaId });
        most = Math.max(most, held.length);
      });
      try {
        const page = await context.newPage();
        await page.goto(url());
        // The quarantined picture comes through the download, not the thumbnail.
        const thumbnails = PICTURES - 1;
        for (let released = 0; released < thumbnails; released++) {
          const expected = Math.min(4, thumbnails - released);
          await waitFor(() => held.length >= expected, `${expected} thumbnail requests`);
          await held.shift()!.route.continue();
        }
        await waitFor(
          async () => (await page.locator("ul.grid img").count()) === PICTURES,
          "every picture shown",
        );
        assert.ok(most <= 4, `at most four thumbnails in flight (saw ${most})`);
        assert.equal(most, 4);
        const grid = newestFirst.filter((id) => id !== quarantined);
        assert.deepEqual(new Set(order.slice(0, 4)), new Set(grid.slice(0, 4)));
        assert.deepEqual(new Set(order), new Set(grid));
      } finally {
        for (const { route } of held) await route.continue().catch(() => {});
        await context.close();
      }
    });

    it("fetches a tile's picture only when the tile comes near the window", async () => {
      // Two columns, and a window about one row of tiles high: the fourth and
      // fifth rows are more than two window heights below the first.
      const context = await signedIn({ width: 480, height: 300 });
      const requested: string[] = [];
      const record = (route: Route) => {
        requested.push(new URL(route.request().url()).pathname.split("/").at(-1)!);
        return route.continue();
      };
      await context.route(THUMBNAILS, record);
      await context.route("**/_matrix/client/v1/media/download/**", record);
      try {
        const page = await context.newPage();
        await page.goto(url());
        const tiles = page.locator("ul.grid > li.tile");
        await tiles.nth(PICTURES - 1).waitFor({ state: "attached", timeout: 20_000 });
        // Per tile, in grid order: its media id, where it is against the
        // window (tops in window heights), and whether its picture has loaded.
        const layout = () =>
          page.evaluate<{ id: string; top: number; bottom: number; shown: boolean }[]>(
            `[...document.querySelectorAll("ul.grid > li.tile")].map((tile) => {
              const box = tile.getBoundingClientRect();
              const img = tile.querySelector("img");
              return {
                id: tile.dataset.mediaId,
                top: box.top / innerHeight,
                bottom: box.bottom / innerHeight,
                shown: !!img && img.complete && img.naturalWidth > 0,
              };
            })`,
          );
        // Settled: every tile on screen shows its picture, and every picture
        // asked for is shown (nothing is in flight or waiting for a slot: a
        // finished fetch starts the next waiting one before its picture shows).
        await waitFor(async () => {
          const now = await layout();
          const shown = now.filter((t) => t.shown).length;
          return (
            now.every((t) => t.shown || t.bottom <= 0 || t.top >= 1) && shown === requested.length
          );
        }, "the tiles on screen showing their pictures, none in flight");
        const settled = await layout();
        // Two window heights below: beyond any read-ahead.
        const far = settled.filter((t) => t.top >= 2).map((t) => t.id);
        assert.ok(
          far.length > 0,
          `some tiles are far below the window: ${JSON.stringify(settled)}`,
        );
        assert.ok(requested.length > 0);
        assert.deepEqual(
          far.filter((id) => requested.includes(id)),
          [],
          "no picture of a tile far below the window was fetched",
        );
        // Scrolled to, the last tile's picture loads.
        const last = tiles.nth(PICTURES - 1);
        await last.scrollIntoViewIfNeeded();
        await last.locator("img").waitFor({ timeout: 20_000 });
        assert.ok(requested.includes(newestFirst.at(-1)!), "the last tile's picture fetched");
      } finally {
        await context.close();
      }
    });

    it("drops a waiting picture from the queue when its tile leaves the window", async () => {
      const context = await signedIn();
      const held: Route[] = [];
      const requested: string[] = [];
      let holding = true;
      const hold = async (route: Route) => {
        requested.push(new URL(route.request().url()).pathname.split("/").at(-1)!);
        if (holding) held.push(route);
        else await route.continue();
      };
      await context.route(THUMBNAILS, hold);
      await context.route("**/_matrix/client/v1/media/download/**", hold);
      try {
        const page = await context.newPage();
        await page.goto(url());
        // Every tile is on screen: four pictures in flight (held), five waiting.
        await waitFor(() => held.length >= 4, "four picture requests");
        // A window too short to reach the grid: no tile is near it any more.
        await page.setViewportSize({ width: 1366, height: 120 });
        await page.evaluate("window.scrollTo(0, 0)");
        // The observer reports during a frame's rendering: two frames later
        // the tiles have been told they left.
        await page.evaluate(
          "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))",
        );
        const shown = () =>
          page.evaluate<number>(
            `[...document.querySelectorAll("ul.grid img")].filter((i) => i.complete && i.naturalWidth > 0).length`,
          );
        // Released, the four finish; a waiting picture would start as each
        // one's fetch ends, before its picture shows.
        holding = false;
        for (const route of held.splice(0)) await route.continue();
        await waitFor(
          async () => (await shown()) === requested.length,
          "the started pictures shown",
        );
        assert.equal(requested.length, 4, `only the started pictures fetched: ${requested.length}`);
        // Back on screen, the rest are asked for again.
        await context.unroute(THUMBNAILS, hold);
        await context.unroute("**/_matrix/client/v1/media/download/**", hold);
        await page.setViewportSize({ width: 1366, height: 860 });
        await waitFor(async () => (await shown()) === PICTURES, "every picture shown");
      } finally {
        for (const route of held) await route.continue().catch(() => {});
        await context.close();
      }
    });

    it("shows blurred tiles from the listing's previews; fetches a picture only when unblurred", async () => {
      const context = await signedIn(undefined, true);
      const requested: string[] = [];
      context.on("request", (request) => {
        const at = new URL(request.url()).pathname;
        if (/\/v1\/media\/(thumbnail|download)\//.test(at)) requested.push(at);
      });
      try {
        const page = await context.newPage();
        await page.goto(url());
        const pictures = () =>
          page.evaluate<{ id: string; src: string; preview: boolean; shown: boolean }[]>(
            `[...document.querySelectorAll("ul.grid > li.tile")].map((tile) => {
              const img = tile.querySelector("img");
              return {
                id: tile.dataset.mediaId,
                src: img ? img.getAttribute("src") : "",
                preview: !!img && img.classList.contains("preview"),
                shown: !!img && img.complete && img.naturalWidth > 0,
              };
            })`,
          );
        await waitFor(async () => {
          const now = await pictures();
          return now.length === PICTURES && now.every((p) => p.shown);
        }, "every tile showing a picture");
        const shown = await pictures();
        for (const p of shown) {
          if (p.id === quarantined) {
            assert.ok(p.src.startsWith("blob:"), "the quarantined picture through the bypass");
            assert.equal(p.preview, false);
          } else {
            assert.ok(p.src.startsWith("blob:"), `${p.id}: ${p.src}`);
            assert.equal(p.preview, true, `${p.id}: the blur preview`);
          }
        }
        assert.deepEqual(
          requested.map((at) => at.split("/").at(-1)),
          [quarantined],
          "no thumbnail fetched, only the quarantined picture's bypass download",
        );
        // Unblurred, a tile fetches its thumbnail (and only its own) and shows it.
        const first = newestFirst[0]!;
        const button = page.locator(`li.tile[data-media-id="${first}"] button.thumb`);
        assert.equal(await button.getAttribute("class"), "thumb blurred");
        await button.click();
        await page.locator(`li.tile[data-media-id="${first}"] img:not(.preview)`).waitFor();
        assert.equal(await button.getAttribute("class"), "thumb");
        assert.equal(requested.length, 2);
        assert.match(requested[1]!, new RegExp(`/thumbnail/${HERE}/${first}$`));
        // Blurred again, it shows the preview again (no CSS blur of the picture).
        await button.click();
        await page.locator(`li.tile[data-media-id="${first}"] img.preview`).waitFor();
        assert.equal(await button.getAttribute("class"), "thumb blurred");
      } finally {
        await context.close();
      }
    });

    it("loads thumbnails once per browser session, a quarantined picture every time", async () => {
      // Routing turns the browser's cache off, so the previews are taken out
      // of the database for this test instead (and put back after it).
      const { db } = server.app.database;
      const stored = await db
        .selectFrom("local_media_repository")
        .select(["media_id", "blur_preview"])
        .where("blur_preview", "is not", null)
        .execute();
      await db.updateTable("local_media_repository").set({ blur_preview: null }).execute();
      const context = await signedIn(undefined, true);
      try {
        const load = async () => {
          const page = await context.newPage();
          await page.goto(url());
          await waitFor(
            async () =>
              (await page.locator("ul.grid img").count()) === PICTURES &&
              (await page.evaluate<boolean>(
                `[...document.querySelectorAll("ul.grid img")].every((i) => i.complete && i.naturalWidth > 0)`,
              )),
            "every picture loaded",
          );
          await page.close();
        };
        const thumbnails0 = await served(server, THUMBNAIL_ROUTE);
        const bypass0 = await served(server, DOWNLOAD_ROUTE);
        await load();
        const thumbnails1 = await served(server, THUMBNAIL_ROUTE);
        const bypass1 = await served(server, DOWNLOAD_ROUTE);
        assert.equal(thumbnails1 - thumbnails0, PICTURES - 1, "first load fetches each thumbnail");
        assert.equal(bypass1 - bypass0, 1, "first load fetches the quarantined picture");
        await load();
        assert.equal(
          (await served(server, THUMBNAIL_ROUTE)) - thumbnails1,
          0,
          "second load: thumbnails from the browser's cache",
        );
        assert.equal(
          (await served(server, DOWNLOAD_ROUTE)) - bypass1,
          1,
          "second load: the quarantined picture fetched again (no-store)",
        );
      } finally {
        for (const row of stored) {
          await db
            .updateTable("local_media_repository")
            .set({ blur_preview: row.blur_preview })
            .where("media_id", "=", row.media_id)
            .execute();
        }
        await context.close();
      }
    });
  });
}
