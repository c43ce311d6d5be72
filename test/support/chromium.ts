/**
 * Headless Chromium for the console's end-to-end tests (docs/console.md):
 * Debian's `chromium` driven by playwright-core (no browser download). A
 * suite that launches it leaves a `chromium` run marker, so a CI run where
 * it went missing fails instead of skipping (test/support/run-markers.ts).
 */
import { existsSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";
import { markSuiteRan } from "./run-markers.js";

export const CHROMIUM_PATH = process.env.MXCD_CHROMIUM ?? "/usr/bin/chromium";

/** Why the browser suites cannot run here, or undefined when they can. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `${CHROMIUM_PATH} not found (apt-get install chromium)`;
}

export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  markSuiteRan("chromium");
  return browser;
}

/**
 * Collects the page's uncaught errors, and every request its Content
 * Security Policy refused (Chromium reports those as console errors), into
 * `into`: a console test ends by asserting it is empty.
 */
export function collectPageErrors(page: Page, into: string[]): void {
  page.on("pageerror", (error) => into.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content.Security.Policy/i.test(message.text())) {
      into.push(message.text());
    }
  });
}
