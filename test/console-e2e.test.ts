/**
 * The moderation console end to end (docs/console.md), in headless Chromium
 * (Debian's `chromium` through playwright-core) against a real server with
 * seeded users and photo-like images (real thumbnails and PDQ hashes):
 * a non-admin is refused; the admin signs in; triages the grid with the
 * keyboard; quarantines near duplicates from a media's detail; watches the
 * feed show a quarantine made through the API; deletes a user's media after
 * the preview; hostile file names, captions, user ids and room ids render
 * as text; signing out
 * ends the session. Every step checks its effect through the API, and saves
 * a screenshot in a temporary folder (printed as a diagnostic); with
 * MXCD_UPDATE_CONSOLE_SCREENSHOTS=1 they are also copied to docs/console/.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { chromiumMissing, collectPageErrors, launchChromium } from "./support/chromium.js";
import { uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { photoLike } from "./support/photo-like.js";
import { REPO_URL } from "./support/repo-url.js";
import { createRoom, join as joinRoom, send } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const ADMIN_API = "/_synapse/admin/v1";
const HERE = "test.local";
const HOSTILE_NAME = `<img src=x onerror="window.__xss=1">"><script>window.__xss=2</script>.png`;
const HOSTILE_USER = `@<img src=x onerror="window.__xss=3">:${HERE}`;
const HOSTILE_CAPTION = `<img src=x onerror="window.__xss=4"><b>bold</b> caption`;
const HOSTILE_ROOM = `!<img src=x onerror="window.__xss=5">:${HERE}`;

const shotsDir = mkdtempSync(join(tmpdir(), "mxcd-console-e2e-"));
const docsDir = new URL("docs/console/", REPO_URL);

async function screenshot(page: Page, name: string): Promise<void> {
  const file = join(shotsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.MXCD_UPDATE_CONSOLE_SCREENSHOTS === "1") {
    mkdirSync(docsDir, { recursive: true });
    copyFileSync(file, new URL(`${name}.png`, docsDir));
  }
}

async function png(seed: number, size = 320): Promise<Buffer> {
  return (await photoLike(size, Math.round(size * 0.75), seed)).png().toBuffer();
}

/** A near duplicate of `bytes`: resized and re-encoded as JPEG. */
async function nearCopy(bytes: Buffer, width: number, quality: number): Promise<Buffer> {
  return sharp(bytes).resize(width).jpeg({ quality }).toBuffer();
}

const reason = chromiumMissing();
if (reason) {
  describe("moderation console e2e", { skip: `!!! SKIPPED: ${reason}` }, () => {});
} else {
  describe("moderation console e2e", () => {
    let server: TestServer;
    let admin: TestUser;
    let alice: TestUser;
    let bob: TestUser;
    let browser: Browser;
    let page: Page;
    const ids: Record<string, string> = {};
    const pageErrors: string[] = [];

    const info = async (mediaId: string) =>
      (await admin.http.get(`${ADMIN_API}/media/${HERE}/${mediaId}`)).body.media_info as
        | Record<string, unknown>
        | undefined;

    before(async () => {
      server = await startTestServer("sqlite", {
        // The media store is not what this file tests (the S3 store is proven by
        // its own suites): a fixed folder keeps it out of the runner's S3 pass.
        media_store: {
          engine: "filesystem",
          path: mkdtempSync(join(tmpdir(), "mxcd-console-e2e-media-")),
        },
      });
      admin = await server.user("admin", { admin: true, password: "admin-password" });
      alice = await server.user("alice", { password: "alice-password" });
      bob = await server.user("bob");
      const uploads: [TestUser, string, Buffer, string][] = [];
      const original = await png(1);
      uploads.push([alice, "sunset.png", original, "image/png"]);
      uploads.push([alice, "sunset-small.jpg", await nearCopy(original, 256, 80), "image/jpeg"]);
      uploads.push([alice, "sunset-copy.jpg", await nearCopy(original, 300, 60), "image/jpeg"]);
      for (let seed = 2; seed <= 5; seed++) {
        uploads.push([alice, `photo-${seed}.png`, await png(seed * 7919), "image/png"]);
      }
      for (let seed = 10; seed <= 12; seed++) {
        uploads.push([bob, `bob-${seed}.png`, await png(seed * 104729, 200), "image/png"]);
      }
      uploads.push([bob, HOSTILE_NAME, await png(99, 160), "image/png"]);
      const before = await metric(
        server.baseUrl,
        "mxcd_media_hash_outcomes_total",
        'outcome="hashed"',
      );
      for (const [user, name, bytes, contentType] of uploads) {
        ids[name] = await uploadBytes(user.http, bytes, { contentType, filename: name });
      }
      // Every PDQ hash computed before the near-duplicate look-ups.
      await waitFor(
        async () =>
          (await metric(server.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"')) >=
          before + uploads.length,
        "PDQ hashes of the seeded images",
        60_000,
      );
      browser = await launchChromium();
      const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
      page = await context.newPage();
      collectPageErrors(page, pageErrors);
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    it("refuses a non-admin with a clear message", async (t) => {
      t.diagnostic(`screenshots: ${shotsDir}`);
      await page.goto(`${server.baseUrl}/_mxcd/console/`);
      await page.getByLabel("User name").fill("alice");
      await page.getByLabel("Password").fill("alice-password");
      await page.getByRole("button", { name: "Sign in" }).click();
      const alert = page.getByRole("alert");
      await alert.waitFor();
      assert.match(await alert.innerText(), /@alice:test\.local is not a server admin/);
      assert.equal(await page.evaluate("sessionStorage.length"), 0);
      await screenshot(page, "login-refused");

      // A pasted non-admin token is refused the same way.
      await page.getByText("Use an access token instead").click();
      await page.getByLabel("Admin access token").fill(alice.token);
      await page.getByRole("button", { name: "Use this token" }).click();
      await page.getByRole("alert").filter({ hasText: "not a server admin" }).waitFor();
      assert.equal(await page.evaluate("sessionStorage.length"), 0);
    });

    it("signs the admin in and shows the newest media first", async () => {
      await page.goto(`${server.baseUrl}/_mxcd/console/`);
      await page.getByLabel("User name").fill("admin");
      await page.getByLabel("Password").fill("admin-password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByText("@admin:test.local").waitFor();
      const token = await page.evaluate<string | null>(
        'sessionStorage.getItem("mxcd-console-token")',
      );
      assert.ok(token);
      const whoami = await server.http.withToken(token).get("/_matrix/client/v3/account/whoami");
      assert.equal(whoami.body.user_id, "@admin:test.local");
      // The token is never put in a URL: every request the page made carried it in a header.
      await page.locator("li.tile").first().waitFor();
      const first = await page.locator("li.tile").first().getAttribute("data-media-id");
      assert.equal(first, ids[HOSTILE_NAME], "newest first");
      await page.locator("li.tile img").first().waitFor();
      // Pictures start blurred; a click shows one.
      const picture = page.locator("li.tile").nth(1).locator("button.thumb");
      assert.equal(await picture.getAttribute("class"), "thumb blurred");
      await picture.click();
      assert.equal(await picture.getAttribute("class"), "thumb");
      await screenshot(page, "grid");
    });

    it("triages the grid with the keyboard", async () => {
      const focusedId = () =>
        page.evaluate<string | undefined>("document.activeElement?.dataset.mediaId");
      await page.locator('li.tile[data-index="0"]').focus();
      await page.keyboard.press("j");
      const second = await focusedId();
      assert.ok(second);
      await page.keyboard.press("q");
      await waitFor(async () => (await info(second))?.quarantined_by === "@admin:test.local", "q");
      await page.locator(`li.tile.quarantined[data-media-id="${second}"]`).waitFor();

      await page.keyboard.press("ArrowRight");
      const third = await focusedId();
      assert.ok(third && third !== second);
      await page.keyboard.press("p");
      await waitFor(async () => (await info(third))?.safe_from_quarantine === true, "p");

      await page.keyboard.press("k");
      await waitFor(async () => (await focusedId()) === second, "k moves back");
      await page.keyboard.press("u");
      await waitFor(async () => (await info(second))?.quarantined_by === null, "u");

      await page.keyboard.press("j");
      await page.keyboard.press("j");
      const fourth = await focusedId();
      assert.ok(fourth);
      await page.keyboard.press("b"); // unblur, for the screenshot
      await page.keyboard.press("d");
      const dialog = page.getByRole("dialog");
      await dialog.waitFor();
      await screenshot(page, "delete-confirmation");
      await dialog.getByRole("button", { name: "Delete" }).click();
      await waitFor(async () => (await info(fourth)) === undefined, "d");
      await page.locator(`li.tile[data-media-id="${fourth}"]`).waitFor({ state: "detached" });

      // Bulk: select two with x, quarantine both with q.
      await page.locator('li.tile[data-index="0"]').focus();
      await page.keyboard.press("x");
      const a = await focusedId();
      await page.keyboard.press("j");
      await page.keyboard.press("x");
      const b = await focusedId();
      assert.ok(a && b && a !== b);
      await page.keyboard.press("q");
      await waitFor(
        async () =>
          (await info(a))?.quarantined_by === "@admin:test.local" &&
          (await info(b))?.quarantined_by === "@admin:test.local",
        "bulk quarantine",
      );
      await screenshot(page, "grid-triaged");

      // Filters go to the listing API: only quarantined media, as many as it counts.
      await page.getByLabel("Quarantine", { exact: true }).selectOption("true");
      await page.getByRole("button", { name: "Apply filters" }).click();
      await page.waitForURL(/\?quarantined=true$/);
      const summary = await admin.http.get("/_mxcd/admin/v1/media/summary?quarantined=true");
      assert.ok(summary.body.count >= 2);
      await page.getByText(new RegExp(`^${summary.body.count} media,`)).waitFor();
      await waitFor(
        async () => (await page.locator("li.tile").count()) === summary.body.count,
        "the filtered grid",
      );
      assert.equal(await page.locator("li.tile:not(.quarantined)").count(), 0);
    });

    it("quarantines the near duplicates from a media's detail", async () => {
      const original = ids["sunset.png"]!;
      await page.goto(`${server.baseUrl}/_mxcd/console/media/${HERE}/${original}`);
      await page.getByRole("heading", { name: "sunset.png" }).waitFor();
      const near = page.getByRole("region", { name: "Near duplicates" });
      await near.locator("li.tile").nth(1).waitFor();
      const nearIds = await near
        .locator("li.tile")
        .evaluateAll((tiles) => tiles.map((tile) => tile.getAttribute("data-media-id")));
      assert.deepEqual(
        [...nearIds].sort(),
        [ids["sunset-small.jpg"], ids["sunset-copy.jpg"]].sort(),
        "the two re-encoded copies, nothing else",
      );
      assert.equal(await near.getByText(/^distance \d+$/).count(), 2);
      await page.getByRole("button", { name: "Quarantine all of these near duplicates" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByText("Quarantine 2 near duplicates?").waitFor();
      await dialog.getByRole("button", { name: "Quarantine all" }).click();
      for (const id of nearIds) {
        await waitFor(async () => (await info(id!))?.quarantined_by === "@admin:test.local", id!);
      }
      assert.equal((await info(original))?.quarantined_by, null, "the original is left alone");
      await near.locator("li.tile.quarantined").nth(1).waitFor();
      await screenshot(page, "detail");
    });

    it("shows a quarantine made through the API in the live feed", async () => {
      await page.goto(`${server.baseUrl}/_mxcd/console/feed`);
      await page.getByText("Live: waiting for changes").waitFor();
      const target = ids["photo-5.png"]!;
      assert.equal(await page.locator(`a[href$="/${target}"]`).count(), 0);
      const res = await admin.http.post(`${ADMIN_API}/media/quarantine/${HERE}/${target}`, {});
      assert.equal(res.status, 200);
      const entry = page
        .locator("ol.feed li")
        .filter({ has: page.locator(`a[href$="/${target}"]`) });
      await entry.waitFor();
      assert.match(await entry.innerText(), /quarantined.*by @admin:test\.local/s);
      await screenshot(page, "feed");
      // Filtered to `system`, the admin's quarantine is hidden.
      await page.getByLabel("Quarantined by").fill("system");
      await page.getByRole("button", { name: "Filter" }).click();
      await entry.waitFor({ state: "detached" });
    });

    it("deletes a user's media after showing what it will affect", async () => {
      await page.goto(`${server.baseUrl}/_mxcd/console/user/${encodeURIComponent(bob.userId)}`);
      await page.locator("li.tile").first().waitFor();
      // Triage may have deleted one of bob's: count what is left.
      const before = await admin.http.get(`${ADMIN_API}/users/${bob.userId}/media`);
      const count: number = before.body.total;
      assert.ok(count >= 3);
      const bytes = before.body.media.reduce((t: number, m: any) => t + m.media_length, 0);
      await page.getByRole("button", { name: "Delete all…" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByText(`This affects ${count} media`).waitFor();
      const kib = `${(bytes / 1024).toFixed(1)} KiB`;
      assert.ok((await dialog.innerText()).includes(kib), `the preview shows ${kib}`);
      await screenshot(page, "user-delete-preview");
      await dialog.getByRole("button", { name: `Delete ${count} media` }).click();
      await waitFor(
        async () =>
          (await admin.http.get(`${ADMIN_API}/users/${bob.userId}/media`)).body.total === 0,
        "bob's media deleted",
      );
      await page.getByText(`Deleted ${count} media`).waitFor();
      await screenshot(page, "user-deleted");
    });

    it("renders hostile file names, captions, user ids and room ids as text", async () => {
      const hostile = await uploadBytes(alice.http, await png(4242, 120), {
        contentType: "image/png",
        filename: HOSTILE_NAME,
      });
      // A room event captions it with markup (the admin is in the room, so
      // the console can read the event's text).
      const roomId = await createRoom(alice, { preset: "public_chat" });
      await joinRoom(admin, roomId);
      await send(alice, roomId, {
        msgtype: "m.image",
        body: HOSTILE_CAPTION,
        filename: HOSTILE_NAME,
        url: `mxc://${HERE}/${hostile}`,
      });
      await page.goto(`${server.baseUrl}/_mxcd/console/`);
      const tile = page.locator(`li.tile[data-media-id="${hostile}"]`);
      await tile.waitFor();
      assert.equal(await tile.locator(".tile-name").innerText(), HOSTILE_NAME);
      await page.goto(`${server.baseUrl}/_mxcd/console/media/${HERE}/${hostile}`);
      await page.getByRole("heading", { name: HOSTILE_NAME }).waitFor();
      const caption = page.locator("table.refs .caption");
      await caption.waitFor();
      assert.equal(await caption.innerText(), `caption: ${HOSTILE_CAPTION}`);
      assert.equal(await page.locator("table.refs b").count(), 0, "no markup from the caption");
      await page.goto(`${server.baseUrl}/_mxcd/console/room/${encodeURIComponent(HOSTILE_ROOM)}`);
      await page.locator(".owner-id").filter({ hasText: HOSTILE_ROOM }).waitFor();
      await page.goto(
        `${server.baseUrl}/_mxcd/console/?room_id=${encodeURIComponent(HOSTILE_ROOM)}`,
      );
      // The listing finds nothing for it (or refuses it): either way, as text.
      await page.locator(".empty, [role=alert]").first().waitFor();
      assert.equal(await page.getByLabel("Room", { exact: true }).inputValue(), HOSTILE_ROOM);
      await page.goto(`${server.baseUrl}/_mxcd/console/user/${encodeURIComponent(HOSTILE_USER)}`);
      await page.locator(".owner-id").filter({ hasText: HOSTILE_USER }).waitFor();
      await page.goto(
        `${server.baseUrl}/_mxcd/console/?user_id=${encodeURIComponent(HOSTILE_USER)}`,
      );
      await page.getByLabel("User").first().waitFor();
      assert.equal(await page.evaluate("window.__xss"), undefined);
      assert.equal(await page.locator("img[src='x']").count(), 0);
    });

    it("signs out, ending the session the login made", async () => {
      const token = await page.evaluate<string | null>(
        'sessionStorage.getItem("mxcd-console-token")',
      );
      assert.ok(token);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByLabel("User name").waitFor();
      assert.equal(await page.evaluate("sessionStorage.length"), 0);
      const whoami = await server.http.withToken(token).get("/_matrix/client/v3/account/whoami");
      assert.equal(whoami.status, 401);
      assert.deepEqual(pageErrors, [], "no script error and no CSP violation in the page");
    });
  });
}
