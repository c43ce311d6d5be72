/**
 * The moderation console's accessibility and screen sizes (docs/console.md
 * "Accessibility"), in headless Chromium, on PostgreSQL (the e2e suite,
 * test/console-e2e.test.ts, runs on SQLite; this file is the console's
 * PostgreSQL pass, so each engine costs one browser launch, not two):
 *
 * - a keyboard-only walk (no mouse): sign in, triage the grid, open a
 *   media's detail, open a confirmation dialog, check that it keeps focus and
 *   that Escape closes it and gives focus back, then confirm; every focused
 *   control shows a visible focus ring. Effects are checked through the API.
 * - axe-core on every view (login, grid, detail, feed, user, room, the room
 *   list): no
 *   serious or critical violation (contrast included).
 * - laptop screens (1280×720, 1366×768, and 1024×768): no horizontal
 *   scrolling on any view; a screenshot of each in a temporary folder (with
 *   MXCD_UPDATE_CONSOLE_SCREENSHOTS=1 the 1280×720 ones are also copied to
 *   docs/console/laptop-<view>.png).
 * - the room list's search leading to a room's media; pictures' alt text.
 * - the engine-dependent core steps of the e2e suite: the live feed woken by
 *   a quarantine made through the API, a user's media deleted after the
 *   preview.
 *
 * axe-core is injected through the DevTools protocol into an isolated world
 * of the page (`Page.createIsolatedWorld`): it sees the same DOM, but the
 * console's Content-Security-Policy (no inline script, no eval — axe compiles
 * its message templates with `new Function`) stays on for the page itself,
 * so the test checks the console as it is served.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { chromiumMissing, collectPageErrors, launchChromium } from "./support/chromium.js";
import { uploadBytes } from "./support/media.js";
import { photoLike } from "./support/photo-like.js";
import { REPO_URL } from "./support/repo-url.js";
import { createRoom, join as joinRoom, send } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const ADMIN_API = "/_synapse/admin/v1";
const HERE = "test.local";
const VIEWPORTS = [
  { width: 1280, height: 720 },
  { width: 1366, height: 768 },
  { width: 1024, height: 768 },
] as const;
const axeSource = (createRequire(import.meta.url)("axe-core") as { source: string }).source;
const shotsDir = mkdtempSync(join(tmpdir(), "mxcd-console-a11y-"));
const docsDir = new URL("docs/console/", REPO_URL);

/** PostgreSQL when the test runner started a cluster; SQLite (said loudly) otherwise. */
const engine = process.env.MXCD_TEST_POSTGRES_URL ? "postgres" : "sqlite";
if (engine === "sqlite" && process.env.CI === "true") {
  throw new Error("console-a11y: CI requires the PostgreSQL pass (MXCD_TEST_POSTGRES_URL)");
}

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

/** axe-core's serious and critical violations on the page as it is now. */
async function axeViolations(page: Page): Promise<AxeViolation[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const tree = await cdp.send("Page.getFrameTree");
    const world = await cdp.send("Page.createIsolatedWorld", {
      frameId: tree.frameTree.frame.id,
      worldName: "mxcd-axe",
    });
    const injected = await cdp.send("Runtime.evaluate", {
      expression: axeSource,
      contextId: world.executionContextId,
    });
    assert.equal(injected.exceptionDetails, undefined, "axe-core loads");
    const run = await cdp.send("Runtime.evaluate", {
      expression: `axe.run(document, { resultTypes: ["violations"] }).then((r) =>
        r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
          nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) })))`,
      contextId: world.executionContextId,
      awaitPromise: true,
      returnByValue: true,
    });
    assert.equal(run.exceptionDetails, undefined, "axe-core runs");
    const all = run.result.value as AxeViolation[];
    return all.filter((v) => v.impact === "serious" || v.impact === "critical");
  } finally {
    await cdp.detach();
  }
}

async function assertAccessible(page: Page, view: string): Promise<void> {
  const violations = await axeViolations(page);
  assert.deepEqual(
    violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes)}`),
    [],
    `axe-core on the ${view} view`,
  );
}

interface Focused {
  tag: string;
  id: string;
  text: string;
  label: string;
  inDialog: boolean;
  mediaId?: string;
  ring: boolean;
}

/** What has focus: tag, id, text, and whether a focus ring is drawn (an outline or a shadow). */
function focused(page: Page): Promise<Focused | undefined> {
  return page.evaluate<Focused | undefined>(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return undefined;
    const style = getComputedStyle(el);
    const ring =
      (style.outlineStyle !== "none" && Number.parseFloat(style.outlineWidth) >= 2) ||
      style.boxShadow !== "none";
    return {
      tag: el.tagName,
      id: el.id,
      text: (el.innerText ?? "").trim(),
      label: el.getAttribute("aria-label") ?? "",
      inDialog: el.closest("dialog[open]") !== null,
      mediaId: el.dataset.mediaId,
      ring,
    };
  })()`);
}

/** Presses Tab until `match` holds (at most `limit` times); every stop must show its focus. */
async function tabTo(
  page: Page,
  what: string,
  match: (f: Focused) => boolean,
  limit = 40,
): Promise<void> {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const f = await focused(page);
    if (!f) continue;
    assert.ok(f.ring, `a visible focus ring on ${f.tag} "${f.text || f.label || f.id}"`);
    if (match(f)) return;
  }
  throw new Error(`Tab never reached ${what}`);
}

async function noHorizontalScroll(page: Page, view: string, size: string): Promise<void> {
  const { scrollWidth, clientWidth } = await page.evaluate<{
    scrollWidth: number;
    clientWidth: number;
  }>(`(() => {
    const root = document.scrollingElement ?? document.documentElement;
    return { scrollWidth: root.scrollWidth, clientWidth: root.clientWidth };
  })()`);
  assert.ok(
    scrollWidth <= clientWidth,
    `${view} at ${size}: scrollWidth ${scrollWidth} > clientWidth ${clientWidth}`,
  );
  const file = join(shotsDir, `${view}-${size}.png`);
  await page.screenshot({ path: file });
  // The docs show each view on the smallest supported laptop screen.
  if (process.env.MXCD_UPDATE_CONSOLE_SCREENSHOTS === "1" && size === "1280x720") {
    mkdirSync(docsDir, { recursive: true });
    copyFileSync(file, new URL(`laptop-${view}.png`, docsDir));
  }
}

async function png(seed: number, size = 320): Promise<Buffer> {
  return (await photoLike(size, Math.round(size * 0.75), seed)).png().toBuffer();
}

const reason = chromiumMissing();
if (reason) {
  describe("moderation console accessibility", { skip: `!!! SKIPPED: ${reason}` }, () => {});
} else {
  describe(`moderation console accessibility and screen sizes [${engine}]`, () => {
    let server: TestServer;
    let admin: TestUser;
    let alice: TestUser;
    let browser: Browser;
    let page: Page;
    let roomId: string;
    const ids: string[] = [];
    /** The media the keyboard walk deleted. */
    let deleted: string | undefined;
    /** A media item of the room (with its caption) that is still there. */
    const captioned = () => [ids[0], ids[3]].find((id) => id !== deleted)!;
    const pageErrors: string[] = [];
    const info = async (mediaId: string) =>
      (await admin.http.get(`${ADMIN_API}/media/${HERE}/${mediaId}`)).body.media_info as
        | Record<string, unknown>
        | undefined;

    before(async () => {
      // The media store is not what this file tests: a fixed folder keeps it
      // out of the test runner's second (S3) pass.
      const dir = mkdtempSync(join(tmpdir(), "mxcd-console-a11y-media-"));
      server = await startTestServer(engine, { media_store: { engine: "filesystem", path: dir } });
      admin = await server.user("admin", { admin: true, password: "admin-password" });
      alice = await server.user("alice");
      for (let seed = 1; seed <= 4; seed++) {
        ids.push(
          await uploadBytes(alice.http, await png(seed * 7919, 200), {
            contentType: "image/png",
            filename: `holiday-photo-with-a-long-descriptive-name-${seed}.png`,
          }),
        );
      }
      roomId = await createRoom(alice, { preset: "public_chat", name: "Holidays" });
      await joinRoom(admin, roomId);
      for (const id of [ids[0], ids[3]]) {
        await send(alice, roomId, {
          msgtype: "m.image",
          body: "A caption that is rather long, as people write them under holiday photos",
          filename: "holiday.png",
          url: `mxc://${HERE}/${id}`,
        });
      }
      browser = await launchChromium();
      page = await (await browser.newContext({ viewport: VIEWPORTS[1] })).newPage();
      collectPageErrors(page, pageErrors);
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    it("works with the keyboard alone: sign in, triage, detail, a confirmation", async (t) => {
      t.diagnostic(`screenshots: ${shotsDir}`);
      await page.goto(`${server.baseUrl}/_mxcd/console/`);
      await page.getByLabel("User name").waitFor();
      await assertAccessible(page, "login");
      await tabTo(page, "the user name", (f) => f.id === "user");
      await page.keyboard.type("admin");
      await tabTo(page, "the password", (f) => f.id === "password");
      await page.keyboard.type("admin-password");
      await page.keyboard.press("Enter");
      await page.getByText("@admin:test.local").waitFor();

      // The grid takes focus on its first tile; j moves, q quarantines.
      await waitFor(async () => (await focused(page))?.tag === "LI", "focus on the first tile");
      assert.ok((await focused(page))?.ring, "the focused tile shows its focus");
      await page.keyboard.press("j");
      const second = (await focused(page))?.mediaId;
      assert.ok(second);
      await page.keyboard.press("q");
      await waitFor(async () => (await info(second))?.quarantined_by === admin.userId, "q");
      await page.locator(`li.tile.quarantined[data-media-id="${second}"]`).waitFor();
      await page.keyboard.press("j");
      const third = (await focused(page))?.mediaId;
      assert.ok(third);
      await page.keyboard.press("Enter");

      // The detail takes focus at its heading (not lost on the body).
      await page.locator("article.detail h1").waitFor();
      await waitFor(async () => (await focused(page))?.tag === "H1", "focus on the detail's title");
      await tabTo(page, "the Delete button", (f) => f.tag === "BUTTON" && f.text === "Delete");
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog");
      await dialog.waitFor();
      assert.ok((await focused(page))?.inDialog, "focus moves into the dialog");
      await assertAccessible(page, "confirmation dialog");
      // Tab and Shift+Tab stay inside the modal dialog.
      for (const key of ["Tab", "Tab", "Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab"]) {
        await page.keyboard.press(key);
        const f = await focused(page);
        assert.ok(f?.inDialog, `${key} keeps focus in the dialog (on ${JSON.stringify(f)})`);
        assert.ok(f?.ring, "a visible focus ring in the dialog");
      }
      await page.keyboard.press("Escape");
      // The dialog leaves the DOM after the console put focus back (a closed
      // <dialog> stops matching the "dialog" role a moment earlier).
      await page.locator("dialog").waitFor({ state: "detached" });
      await waitFor(
        async () => (await focused(page))?.text === "Delete",
        "Escape gives focus back to the button that opened it",
      );
      assert.notEqual(await info(third), undefined, "Escape deleted nothing");
      // Space opens it again; Enter on the focused "Delete" confirms.
      await page.keyboard.press(" ");
      await dialog.waitFor();
      await tabTo(page, "the dialog's Delete", (f) => f.inDialog && f.text === "Delete", 4);
      await page.keyboard.press("Enter");
      await waitFor(async () => (await info(third)) === undefined, "deleted from the dialog");
      deleted = third;
      await page.locator("li.tile").first().waitFor();
      assert.deepEqual(pageErrors, [], "no script error and no CSP violation");
    });

    it("every view: no serious axe-core violation, no horizontal scroll on laptops", async () => {
      // [view, path, what shows when it is ready]
      const views: [string, string, () => Promise<void>][] = [
        ["grid", "", () => page.locator("li.tile img").first().waitFor()],
        [
          "detail",
          `media/${HERE}/${captioned()}`,
          // The caption the room event gave it, read as text.
          () =>
            page.locator("table.refs .caption").filter({ hasText: "caption: A caption" }).waitFor(),
        ],
        ["feed", "feed", () => page.locator("ol.feed li").first().waitFor()],
        [
          "user",
          `user/${encodeURIComponent(alice.userId)}`,
          () => page.locator("li.tile img").first().waitFor(),
        ],
        [
          "room",
          `room/${encodeURIComponent(roomId)}`,
          () => page.locator("li.tile img").first().waitFor(),
        ],
        ["rooms", "rooms", () => page.getByRole("link", { name: "Holidays" }).waitFor()],
      ];
      for (const [view, path, ready] of views) {
        await page.setViewportSize(VIEWPORTS[1]);
        await page.goto(`${server.baseUrl}/_mxcd/console/${path}`);
        await ready();
        await assertAccessible(page, view);
        for (const viewport of VIEWPORTS) {
          await page.setViewportSize(viewport);
          await noHorizontalScroll(page, view, `${viewport.width}x${viewport.height}`);
        }
      }
      // The login screen, signed out in a fresh tab.
      const login = await page.context().browser()!.newPage({ viewport: VIEWPORTS[0] });
      try {
        await login.goto(`${server.baseUrl}/_mxcd/console/`);
        await login.getByLabel("User name").waitFor();
        for (const viewport of VIEWPORTS) {
          await login.setViewportSize(viewport);
          await noHorizontalScroll(login, "login", `${viewport.width}x${viewport.height}`);
        }
      } finally {
        await login.close();
      }
    });

    it("finds a room in the room list; pictures are described", async () => {
      await page.goto(`${server.baseUrl}/_mxcd/console/rooms`);
      await page.getByLabel("Name, alias or room id").fill("holi");
      await page.keyboard.press("Enter");
      await page.waitForURL(/\/rooms\?search=holi$/);
      const link = page.getByRole("link", { name: "Holidays" });
      await link.focus();
      await page.keyboard.press("Enter");
      await page.locator(".owner-id").filter({ hasText: roomId }).waitFor();
      const summary = await admin.http.get(
        `/_mxcd/admin/v1/media/summary?room_id=${encodeURIComponent(roomId)}`,
      );
      assert.ok(summary.body.count >= 1);
      await waitFor(
        async () => (await page.locator("li.tile").count()) === summary.body.count,
        "the room's media",
      );
      const picture = page.locator("li.tile img").first();
      await picture.waitFor();
      assert.match(
        (await picture.getAttribute("alt")) ?? "",
        /^holiday-photo-with-a-long-descriptive-name-\d\.png \(image\/png\)$/,
      );
    });

    // The core steps that depend on the engine, once on PostgreSQL too: the
    // feed's long poll woken by a quarantine committed elsewhere, and a
    // user's media deleted page by page after the preview.
    it("shows a quarantine made through the API in the live feed", async () => {
      await page.goto(`${server.baseUrl}/_mxcd/console/feed`);
      await page.getByText("Live: waiting for changes").waitFor();
      const target = captioned();
      assert.equal(await page.locator(`ol.feed a[href$="/${target}"]`).count(), 0);
      const res = await admin.http.post(`${ADMIN_API}/media/quarantine/${HERE}/${target}`, {});
      assert.equal(res.status, 200);
      await page.locator(`ol.feed a[href$="/${target}"]`).waitFor();
    });

    it("deletes a user's media after the preview", async () => {
      await page.goto(`${server.baseUrl}/_mxcd/console/user/${encodeURIComponent(alice.userId)}`);
      await page.locator("li.tile").first().waitFor();
      const before = await admin.http.get(`${ADMIN_API}/users/${alice.userId}/media`);
      const count: number = before.body.total;
      assert.ok(count >= 2);
      await page.getByRole("button", { name: "Delete all…" }).focus();
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog");
      await dialog.getByText(`This affects ${count} media`).waitFor();
      await page.keyboard.press("Enter"); // focus starts on the confirm button
      await waitFor(
        async () =>
          (await admin.http.get(`${ADMIN_API}/users/${alice.userId}/media`)).body.total === 0,
        "alice's media deleted",
      );
      await page.getByText(`Deleted ${count} media`).waitFor();
      assert.deepEqual(pageErrors, [], "no script error and no CSP violation");
    });
  });
}
